"""The turn pipeline: small stages over one ``Turn``, in the order docs/gateway.md ("A turn") gives.

    preprocess → check_input → dialogue → guard → understand → decide → ground → context → generate
    → postprocess → redact_output → record

``dialogue``, ``understand`` and ``decide`` act only for tenants with a domain pack (gateway/dialogue/
decide.py); a stage that answers by itself (a flow's question, a blocked message, "I don't know") sets
``turn.canned_reply`` and generation streams that instead of calling the model. A stage is any object
with a ``name`` and ``async __call__(turn)``. Generation streams, so the API layer drives it: ``prepare``
runs everything before it, ``open`` starts it, and ``finish`` runs everything after it, whatever
happened to the stream.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from typing import Protocol

from psycopg_pool import AsyncConnectionPool

from gateway.clients.llm import LLMChain, OpenedStream, canned_chunks, chunk_event
from gateway.dialogue.context import fixed_tokens, window_exceeded
from gateway.dialogue.summary import RollingSummarizer
from gateway.dialogue.tokens import TokenCounter
from gateway.dialogue.turn import Turn, message_text
from gateway.errors import InvalidRequest
from gateway.observability import Metrics
from gateway.safety.redact import rename_placeholders
from gateway.store import audit
from gateway.store import dialogue as dialogue_repo
from gateway.store import sessions as repo
from gateway.store import vault as vault_repo
from gateway.store.audit import AuditEvent

log = logging.getLogger("enclave.gateway.turn")


class Stage(Protocol):
    name: str

    async def __call__(self, turn: Turn) -> None: ...


class CheckInput:
    """After preprocess: an empty message, one over the tenant's input cap, or messages that cannot fit the
    model's window whatever history is dropped, are refused before any work (a domain pack's stages may act
    on the bank's systems before the context is built: a refusal after them would come too late)."""

    name = "check_input"

    def __init__(self, counter: TokenCounter, window_tokens: int | None = None) -> None:
        self.counter, self.window_tokens = counter, window_tokens

    async def __call__(self, turn: Turn) -> None:
        if not turn.is_tool_result and not turn.text:
            raise InvalidRequest("empty_message", "the last user message is empty after normalisation", "messages")
        turn.input_tokens = self.counter.count_contents(turn.input_messages)
        if turn.input_tokens > turn.max_input_tokens:
            raise InvalidRequest("input_too_long", f"the message has {turn.input_tokens} tokens; this tenant allows "
                                 f"{turn.max_input_tokens} per message", "messages")
        if self.window_tokens is None:
            return
        needed = fixed_tokens(self.counter, turn, turn.input_messages, turn.input_tokens)   # context adds the system message
        if needed > self.window_tokens - turn.max_output_tokens:
            raise window_exceeded(needed, self.window_tokens, turn.max_output_tokens)


class Postprocess:
    """Settle what the reply is before it is stored. Chat text is stored exactly as the client received it
    (markdown, untouched); the trust layer's output filter and voice's spoken-style rewrite plug in here.
    Today: complete the accounting when the upstream did not report it."""

    name = "postprocess"

    def __init__(self, counter: TokenCounter) -> None:
        self.counter = counter

    async def __call__(self, turn: Turn) -> None:
        if turn.completion_tokens is None or turn.status != "complete":
            # Interrupted or replaced replies: count what was actually sent, not what was generated.
            turn.completion_tokens = self.counter.count(turn.reply_text)
        if turn.finish_reason is None and turn.status == "complete":
            turn.finish_reason = "stop"


class Record:
    """Persist the turn in one transaction — its messages, the vault entries it sealed, its audit entry —
    so all of it lands or none; then count it and schedule the rolling summary."""

    name = "record"

    def __init__(self, pool: AsyncConnectionPool, counter: TokenCounter, metrics: Metrics,
                 summarizer: RollingSummarizer, background: set[asyncio.Task],
                 model_revisions: dict[str, str] | None = None, redactor=None) -> None:
        self.pool, self.counter, self.metrics, self.summarizer, self.background = pool, counter, metrics, summarizer, background
        self.model_revisions = model_revisions or {}
        self.redactor = redactor

    async def __call__(self, turn: Turn) -> None:
        reply = turn.stored_reply if turn.stored_reply is not None else turn.reply_text
        completion_tokens = turn.completion_tokens or 0
        prompt_tokens = turn.upstream_prompt_tokens or turn.prompt_tokens
        rows = [input_row(m, turn) for m in turn.input_messages]
        if not turn.relay:   # a relayed message's reply is the agent's own turn
            rows.append(repo.TurnRow("assistant", reply, completion_tokens, turn.status, model=turn.model,
                                     ttft_ms=_ms(turn.ttft_s), total_ms=_ms(turn.total_s),
                                     finish_reason=turn.finish_reason, tool_calls=turn.tool_calls or None,
                                     latency=turn.voice_latency))
        state = None
        if turn.dialogue_state is not None and self.redactor is not None and turn.vault is not None:
            from gateway.dialogue.actions import redact_json
            state = redact_json(turn.dialogue_state.to_json(), self.redactor, turn.vault)
        t0 = time.perf_counter()
        if (turn.vault is None or not turn.vault.new_entries) and state is None and not turn.review and turn.handoff is None:
            # Most turns write only their rows and their audit entry: one statement, committed by itself (the
            # pool's connections are autocommit). One round trip instead of BEGIN, turn, append, COMMIT cost
            # the gateway 0.7 ms less CPU a turn, which counts when many streams end at once.
            async with self.pool.connection() as conn:
                await self._record_turn(conn, turn, rows, self.audit_event(turn, rows, prompt_tokens, completion_tokens))
        else:
            await self._record_in_transaction(turn, rows, state, prompt_tokens, completion_tokens)
        model = turn.model or "none"
        m = self.metrics
        m.turns.labels(turn.channel, model, turn.status).inc()
        m.tokens.labels("in", turn.channel, model).inc(prompt_tokens)
        m.tokens.labels("out", turn.channel, model).inc(completion_tokens)
        for pii_type, n in {**turn.pii_found, **turn.pii_in_reply}.items():
            m.pii_redactions.labels(pii_type).inc(n)
        if turn.dialogue.get("decision"):
            m.decisions.labels(turn.dialogue["decision"].split(":")[0]).inc()
        if turn.understood is not None:
            m.intents.labels(turn.understood.intent or "none", turn.understood.source).inc()
        if turn.handoff is not None:
            m.handoffs.labels(turn.handoff["reason"]).inc()
        if turn.injection:
            m.injections.labels(turn.injection["action"]).inc()
        if turn.ttft_s is not None:
            m.ttft.labels(turn.channel, model).observe(turn.ttft_s)
        if turn.total_s is not None:
            m.turn_latency.labels(turn.channel, model).observe(turn.total_s)
        log.info("turn recorded", extra={"session_id": str(turn.session_id), "seq": turn.seq, "status": turn.status,
                                         "upstream": turn.upstream, "model": turn.model, "fallback": turn.fallback,
                                         "prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                                         "history_turns": turn.history_turns, "ttft_ms": _ms(turn.ttft_s),
                                         "total_ms": _ms(turn.total_s), "store_ms": _ms(time.perf_counter() - t0),
                                         "pii_redacted": sum(turn.pii_found.values())})
        if self.summarizer.worth_checking(turn.prompt_tokens, completion_tokens, turn.history_trimmed):
            task = asyncio.create_task(self.summarizer.maybe_summarise(turn.tenant_id, turn.session_id))
            self.background.add(task)
            task.add_done_callback(self.background.discard)

    def _redacted(self, value, turn: Turn):
        if self.redactor is None or turn.vault is None:
            return value
        from gateway.dialogue.actions import redact_json
        return redact_json(value, self.redactor, turn.vault)

    @staticmethod
    async def _record_turn(conn, turn: Turn, rows: list[repo.TurnRow], audit_event: AuditEvent | None = None) -> None:
        turn.seq = await repo.record_turn(conn, turn.tenant_id, turn.session_id, turn.id, turn.channel, turn.request_id,
                                          rows, title_hint=turn.text,
                                          new_session=turn.session if turn.session_is_new else None,
                                          audit_event=audit_event)

    async def _record_in_transaction(self, turn: Turn, rows: list[repo.TurnRow], state: dict | None, prompt_tokens: int,
                                     completion_tokens: int) -> None:
        """The turn with what else it brought (vault entries, dialogue state, review items, a handoff) and its
        audit entry, in one transaction; the audit entry last, so the chain's head is locked the least."""
        async with self.pool.connection() as conn, conn.transaction():
            if turn.vault is not None and turn.vault.new_entries and not turn.session_is_new and self.redactor:
                rows, state = await self._reconcile_vault(conn, turn, rows, state)
            await self._record_turn(conn, turn, rows)
            if turn.vault is not None:
                await vault_repo.store_entries(conn, turn.tenant_id, turn.session_id, turn.vault.new_entries)
            if state is not None:
                await dialogue_repo.save_state(conn, turn.tenant_id, turn.session_id, state)
            for item in turn.review:
                await dialogue_repo.add_review_item(conn, turn.tenant_id, item["kind"], item["reason"],
                                                    session_id=turn.session_id, detail={**item.get("detail", {}),
                                                                                        "turn_id": turn.id})
            if turn.handoff is not None:
                h = turn.handoff
                h["id"] = await dialogue_repo.open_handoff(conn, turn.tenant_id, turn.session_id, h["reason"], h["intent"],
                                                           self._redacted(h["entities"], turn),
                                                           self._redacted(h["summary"], turn), h["summary_by"])
                await dialogue_repo.set_mode(conn, turn.tenant_id, turn.session_id, "human")
                if turn.vault is not None:   # values first seen in the summary
                    await vault_repo.store_entries(conn, turn.tenant_id, turn.session_id, turn.vault.new_entries)
            await audit.append(conn, self.audit_event(turn, rows, prompt_tokens, completion_tokens))

    async def _reconcile_vault(self, conn, turn: Turn, rows: list[repo.TurnRow],
                               state: dict | None) -> tuple[list[repo.TurnRow], dict | None]:
        """Under the session's row lock (which the turn's own insert takes anyway, so no new wait order), check
        this turn's new placeholders against the vault as committed now: a concurrent turn of the session may
        have stored the same number for another value. Anything renamed is renamed in all the turn stores."""
        committed = await vault_repo.locked_session_vault(conn, turn.tenant_id, turn.session_id)
        remap = self.redactor.reconcile(turn.vault, committed)
        if not remap:
            return rows, state
        log.info("placeholders renumbered after a concurrent turn", extra={"session_id": str(turn.session_id),
                                                                            "renamed": len(remap)})
        from gateway.dialogue.actions import map_strings

        def rename(value):
            return map_strings(value, lambda text: rename_placeholders(text, remap))
        rows = [dataclasses.replace(r, content=rename(r.content), tool_calls=rename(r.tool_calls)) for r in rows]
        turn.tool_calls, turn.dialogue, turn.review = rename(turn.tool_calls), rename(turn.dialogue), rename(turn.review)
        if turn.handoff is not None:
            turn.handoff = rename(turn.handoff)
        return rows, rename(state)

    def audit_event(self, turn: Turn, rows: list[repo.TurnRow], prompt_tokens: int, completion_tokens: int) -> AuditEvent:
        """What the audit log keeps of a turn: all of it redacted, enough to reconstruct the decision."""
        system = next((m.get("content") for m in turn.messages if m.get("role") == "system"), None)
        return AuditEvent(
            action="chat.turn", actor=turn.actor, tenant_id=turn.tenant_id, session_id=str(turn.session_id),
            turn_id=turn.id, channel=turn.channel,
            content={
                "input": [{"role": r.role, "content": r.content, "tool_call_id": r.tool_call_id}
                          for r in (rows if turn.relay else rows[:-1])],
                "output": None if turn.relay else rows[-1].content, "tool_calls": turn.tool_calls or [],
                "model": turn.model, "model_revision": self.model_revisions.get(turn.model or ""),
                "upstream": turn.upstream, "fallback": turn.fallback,
                "prompt_template_sha256": audit.sha256_hex(system) if isinstance(system, str) else None,
                "retrieved_documents": turn.retrieved_documents, "citations": turn.citations, "grounding": turn.grounding,
                **({"dialogue": self._redacted(turn.dialogue, turn)} if turn.dialogue else {}),
                **({"injection": turn.injection} if turn.injection else {}),
                **({"handoff": {k: str(v) for k, v in turn.handoff.items() if k in ("id", "reason", "intent", "summary_by")}}
                   if turn.handoff else {}),
                "decisions": {"status": turn.status, "finish_reason": turn.finish_reason,
                              "pii_redacted": turn.pii_found, "pii_in_reply": turn.pii_in_reply,
                              "history_turns": turn.history_turns, "history_trimmed": turn.history_trimmed},
                "tokens": {"prompt": prompt_tokens, "completion": completion_tokens},
                "latency_ms": {"ttft": _ms(turn.ttft_s), "total": _ms(turn.total_s), **(turn.voice_latency or {})},
                "request_id": turn.request_id,
            })


def input_row(message: dict, turn: Turn) -> repo.TurnRow:
    content = message_text(message)
    if message["role"] == "user":
        return repo.TurnRow("user", content, turn.input_tokens, "complete", language=turn.language)
    return repo.TurnRow(message["role"], content, 0, "complete", tool_calls=message.get("tool_calls"),
                        tool_call_id=message.get("tool_call_id"))


def _ms(s: float | None) -> float | None:
    return None if s is None else round(s * 1000.0, 2)


def framed(opened: OpenedStream, prefix: str | None, suffix: str | None, completion_id: str) -> OpenedStream:
    """The LLM's stream with the flow's own words around it: ``prefix`` first, ``suffix`` just before the
    finishing chunk (a stream that breaks off never gets the suffix)."""
    model = opened.model

    async def rest():
        pending = suffix
        async for batch in opened.batches():
            if pending:
                out = []
                for ev in batch:
                    if ev.finish_reason is not None and pending:
                        cid = ev.id or completion_id
                        if ev.content:   # the finishing chunk may carry the last words: they come first
                            out.append(chunk_event(cid, model, {"content": ev.content}, None))
                        out.append(chunk_event(cid, model, {"content": pending}, None))
                        out.append(chunk_event(cid, model, {}, ev.finish_reason) if ev.content else ev)
                        pending = None
                        continue
                    out.append(ev)
                batch = out
            yield batch
        result.failed_midway = opened.failed_midway

    head = [chunk_event(completion_id, model, {"role": "assistant", "content": prefix}, None)] if prefix else []
    result = OpenedStream(opened.upstream, model, opened.fallback, opened.canned, head, rest(), opened.aclose, opened.ttft_s)
    return result


class TurnPipeline:
    def __init__(self, before: list[Stage], chain: LLMChain, after: list[Stage], relay=None) -> None:
        self.before, self.chain, self.after = before, chain, after
        self.relay = relay   # async (turn) -> OpenedStream, for sessions a colleague took over

    @property
    def stage_names(self) -> list[str]:
        return [s.name for s in self.before] + ["generate"] + [s.name for s in self.after]

    async def prepare(self, turn: Turn) -> None:
        """Everything up to generation. Raises a 4xx error before anything has been written."""
        for stage in self.before:
            await stage(turn)
        turn.prepared_at = time.monotonic()

    async def open(self, turn: Turn) -> OpenedStream:
        if turn.relay and self.relay is not None:   # a colleague answers: record the message, wait for them
            turn.model, turn.upstream, turn.fallback = "agent", "agent", False
            return await self.relay(turn)
        if turn.canned_reply is not None:   # a stage answered already (a flow, "I don't know", a block)
            turn.model, turn.upstream, turn.fallback = "enclave", "enclave", False
            turn.ttft_s = time.perf_counter() - turn.started
            events = canned_chunks(turn.canned_reply, "enclave", f"chatcmpl-{turn.request_id}")
            return OpenedStream("enclave", "enclave", False, False, events, None)
        params = {k: v for k, v in turn.params.items() if v is not None}
        params["max_tokens"] = turn.max_output_tokens
        opened = await self.chain.open({**params, "messages": turn.messages})
        turn.model, turn.upstream, turn.fallback = opened.model, opened.upstream, opened.fallback
        if opened.canned:
            turn.status = "failed"
        turn.ttft_s = None if opened.canned else time.perf_counter() - turn.started
        if turn.reply_prefix or turn.reply_suffix:
            return framed(opened, turn.reply_prefix, turn.reply_suffix, f"chatcmpl-{turn.request_id}")
        return opened

    async def finish(self, turn: Turn) -> None:
        for stage in self.after:
            if turn.recorded and stage.name == "record":
                continue
            await stage(turn)
