"""An assistant-side message that is not the reply to a user turn (an agent's words in a hand-off, the
outcome of an action that finished later): stored redacted as a one-row turn of the session."""

from __future__ import annotations

import uuid

from psycopg import AsyncConnection

from gateway.safety.redact import Redactor
from gateway.store import audit
from gateway.store import sessions as sessions_repo
from gateway.store import vault as vault_repo


async def record_message(conn: AsyncConnection, redactor: Redactor, tenant_id: str, session_id, text: str, *,
                         channel: str, model: str, request_id: str, audit_as: tuple[str, str],
                         turn_id: str | None = None) -> int:
    """Call inside the caller's transaction; values first seen in ``text`` are sealed in the session's vault.
    ``audit_as`` is (action, actor) of the audit entry stored with it: what the bank says in a session is in
    the hash-chained log like every reply (an agent's words were not)."""
    vault = await vault_repo.locked_session_vault(conn, tenant_id, session_id)
    stored = redactor.redact(text, vault)
    await vault_repo.store_entries(conn, tenant_id, session_id, vault.new_entries)
    action, actor = audit_as
    event = audit.AuditEvent(action, actor, tenant_id, str(session_id), content={"model": model, "output": stored})
    return await sessions_repo.record_turn(conn, tenant_id, session_id, turn_id or str(uuid.uuid4()), channel, request_id,
                                           [sessions_repo.TurnRow("assistant", stored, 0, "complete", model=model)],
                                           audit_event=event)
