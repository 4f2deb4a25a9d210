"""The pipeline's trust stages: redact everything the turn brings in before anything else sees it, and
redact what the client was sent before it is stored or audited.

After ``Guard`` the turn carries only placeholders — the context builder, the LLM, the logs, the turns
table and the audit log never see an original. The originals travel in ``turn.vault`` (sealed) and are
written to the vault in the turn's own transaction by ``Record``.
"""

from __future__ import annotations

from typing import Any

from psycopg_pool import AsyncConnectionPool

from gateway.dialogue.turn import Turn
from gateway.safety.redact import Redactor, SessionVault
from gateway.store import vault as vault_repo


def redact_message(message: dict[str, Any], redactor: Redactor, vault: SessionVault) -> dict[str, Any]:
    content = message.get("content")
    if isinstance(content, str):
        return {**message, "content": redactor.redact(content, vault)}
    if isinstance(content, list):
        parts = [{**p, "text": redactor.redact(p["text"], vault)} if isinstance(p, dict) and "text" in p else p
                 for p in content]
        return {**message, "content": parts}
    return message


class Guard:
    name = "guard"

    def __init__(self, pool: AsyncConnectionPool, redactor: Redactor) -> None:
        self.pool, self.redactor = pool, redactor

    async def __call__(self, turn: Turn) -> None:
        rows: list[tuple] = []
        if not turn.session_is_new:
            async with self.pool.connection() as conn:
                rows = await vault_repo.load_session_entries(conn, turn.tenant_id, turn.session_id)
        vault = SessionVault.from_rows(turn.tenant_id, str(turn.session_id), rows)
        r = self.redactor
        turn.input_messages = [redact_message(m, r, vault) for m in turn.input_messages]
        turn.extra_messages = [redact_message(m, r, vault) for m in turn.extra_messages]
        if turn.session_is_new and turn.session.get("system_prompt"):
            turn.session = {**turn.session, "system_prompt": r.redact(turn.session["system_prompt"], vault)}
        turn.pii_found = dict(vault.counts)
        turn.text = r.redact(turn.text, vault)   # the new message's text again: known values, not counted twice
        vault.counts = dict(turn.pii_found)
        turn.vault = vault


class RedactOutput:
    """The reply as stored and audited: what the client was sent, with every value back in placeholder form
    (the owner's echoed values map to their placeholders again; anything new the model wrote is sealed)."""

    name = "redact_output"

    def __init__(self, redactor: Redactor) -> None:
        self.redactor = redactor

    async def __call__(self, turn: Turn) -> None:
        if turn.vault is None:
            turn.vault = SessionVault(turn.tenant_id, str(turn.session_id))
        before = dict(turn.vault.counts)
        turn.stored_reply = self.redactor.redact(turn.reply_text, turn.vault)
        turn.pii_in_reply = {k: v - before.get(k, 0) for k, v in turn.vault.counts.items() if v - before.get(k, 0)}
