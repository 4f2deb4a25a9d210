"""The pipeline's trust stages: redact everything the turn brings in before anything else sees it, and
redact what the client was sent before it is stored or audited.

After ``Guard`` the turn carries only placeholders — the context builder, the LLM, the logs, the turns
table and the audit log never see an original. The originals travel in ``turn.vault`` (sealed) and are
written to the vault in the turn's own transaction by ``Record``.
"""

from __future__ import annotations

from typing import Any

from psycopg_pool import AsyncConnectionPool

from gateway.dialogue.turn import Turn, message_text
from gateway.safety.injection import InjectionScorer, InjectionVerdict, sanitize, with_semantic
from gateway.safety.redact import Redactor, SessionVault
from gateway.store import vault as vault_repo


def redact_message(message: dict[str, Any], redactor: Redactor, vault: SessionVault) -> dict[str, Any]:
    """The message with its text redacted: the content, and the arguments of the tool calls it carries (a
    client's assistant message can hold '{"email": "jane@example.com"}', sent to the model and stored)."""
    content = message.get("content")
    if isinstance(content, str):
        message = {**message, "content": redactor.redact(content, vault)}
    elif isinstance(content, list):
        parts = [{**p, "text": redactor.redact(p["text"], vault)} if isinstance(p, dict) and "text" in p else p
                 for p in content]
        message = {**message, "content": parts}
    calls = message.get("tool_calls")
    if isinstance(calls, list):
        message = {**message, "tool_calls": [_redact_call(c, redactor, vault) for c in calls]}
    return message


def _redact_call(call: Any, redactor: Redactor, vault: SessionVault) -> Any:
    function = call.get("function") if isinstance(call, dict) else None
    if not isinstance(function, dict) or not isinstance(function.get("arguments"), str):
        return call
    return {**call, "function": {**function, "arguments": redactor.redact(function["arguments"], vault)}}


BLOCKED_DEFAULT = "I can't help with that request. If you need something else, just ask."


class Guard:
    """Injection check, then redaction. The injection score is taken on the text as the user sent it
    (control tokens count against it), then those tokens are stripped. A block answers with a safe reply
    and queues the exchange for review; a fence lets it through, marked as untrusted data for the model."""

    name = "guard"

    def __init__(self, pool: AsyncConnectionPool, redactor: Redactor, block_at: float = 0.75, fence_at: float = 0.4) -> None:
        self.pool, self.redactor = pool, redactor
        self.default_scorer = InjectionScorer(block_at=block_at, fence_at=fence_at)
        self._scorers: dict[tuple[float, float], InjectionScorer] = {}

    def scorer(self, turn: Turn) -> InjectionScorer:
        if turn.pack is None:
            return self.default_scorer
        g = turn.pack.pack.guard
        key = (g.block_at, g.fence_at)
        if key not in self._scorers:
            self._scorers[key] = InjectionScorer(block_at=g.block_at, fence_at=g.fence_at)
        return self._scorers[key]

    async def check_injection(self, turn: Turn) -> InjectionVerdict | None:
        """The heuristic verdict on the raw text; the text is sanitised afterwards. A long text is scored in
        steps that give the event loop back (``score_async``): the other streams of this process go on."""
        if turn.is_tool_result or not turn.text:
            return None
        scorer = self.scorer(turn)
        verdict = await scorer.score_async(turn.text)
        # Earlier messages a stateless client sends along reach the model too: the worst of them counts.
        for m in turn.extra_messages:
            if m.get("role") in ("user", "assistant"):
                other = await scorer.score_async(message_text(m))
                if other.score > verdict.score:
                    verdict = other
        clean = sanitize(turn.text)
        if clean != turn.text:
            turn.text = clean
            if turn.input_messages and turn.input_messages[-1].get("role") == "user":
                turn.input_messages[-1] = {**turn.input_messages[-1], "content": clean}
        return verdict

    async def semantic(self, turn: Turn, verdict: InjectionVerdict) -> InjectionVerdict:
        """For a pack tenant: the embedding classifier's view, on the redacted text. The vector is kept for
        the intent classifier (one embedding call per turn serves both)."""
        lp = turn.pack
        if lp is None or lp.guard_model is None or lp.classifier is None or not turn.text or turn.mode != "bot":
            return verdict
        turn.text_vector = await lp.classifier.vectors([turn.text])
        p_attack = float(lp.guard_model.probability(turn.text_vector, "attack")[0])
        return with_semantic(verdict, p_attack, lp.pack.guard.semantic_weight, self.scorer(turn))

    def apply(self, turn: Turn, verdict: InjectionVerdict | None) -> None:
        if verdict is None or verdict.action == "pass":
            return
        turn.injection = {"score": round(verdict.score, 3), "reasons": list(verdict.reasons), "action": verdict.action}
        turn.review.append({"kind": "injection", "reason": f"{verdict.action}: {', '.join(verdict.reasons) or 'score'}",
                            "detail": turn.injection})
        if verdict.action == "block":
            turn.canned_reply = turn.pack.pack.canned.blocked if turn.pack is not None else BLOCKED_DEFAULT
        else:
            turn.fence_input = True

    async def __call__(self, turn: Turn) -> None:
        verdict = await self.check_injection(turn)
        rows: list[tuple] = []
        if not turn.session_is_new:
            async with self.pool.connection() as conn:
                rows = await vault_repo.load_session_entries(conn, turn.tenant_id, turn.session_id)
        vault = SessionVault.from_rows(turn.tenant_id, str(turn.session_id), rows)
        r = self.redactor
        last = turn.input_messages[-1] if turn.input_messages else {}
        text_is_last = last.get("role") == "user" and last.get("content") == turn.text
        turn.input_messages = [redact_message(m, r, vault) for m in turn.input_messages]
        turn.extra_messages = [redact_message(m, r, vault) for m in turn.extra_messages]
        if turn.session_is_new and turn.session.get("system_prompt") and turn.pack is None:   # a pack's is the operator's
            turn.session = {**turn.session, "system_prompt": r.redact(turn.session["system_prompt"], vault)}
        turn.pii_found = dict(vault.counts)
        if text_is_last:   # the message just redacted (placeholders follow the value, so a second pass would agree)
            turn.text = turn.input_messages[-1]["content"]
        elif turn.text:    # preprocessing changed it: its values are known now, not counted twice
            turn.text = r.redact(turn.text, vault)
            vault.counts = dict(turn.pii_found)
        turn.vault = vault
        if verdict is not None:
            verdict = await self.semantic(turn, verdict)
        self.apply(turn, verdict)


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
