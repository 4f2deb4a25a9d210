"""Rolling summary: when a session's un-summarised history passes a token threshold, the LLM condenses
it (with the previous summary) into a new one, stored with the session. Runs after a turn is recorded,
off the reply's path, at most once at a time per session.

The summary is written by the model from redacted history, so it should hold only placeholders; it is
still redacted against the session's vault before it is stored, like every other text the model writes,
because the model can restate a value in a form the history never held."""

from __future__ import annotations

import asyncio
import logging

from psycopg_pool import AsyncConnectionPool

from gateway.clients.llm import LLMChain
from gateway.dialogue.context import ContextPolicy
from gateway.dialogue.tokens import PER_MESSAGE_OVERHEAD, TokenCounter
from gateway.observability import Metrics
from gateway.safety.redact import Redactor
from gateway.store import sessions as repo
from gateway.store import vault as vault_repo

log = logging.getLogger("enclave.gateway.summary")

INSTRUCTION = ("Summarise the conversation below for the assistant's own memory: the user's goal, facts they "
               "gave, decisions and open questions. At most five short sentences. Do not invent anything.")


class RollingSummarizer:
    def __init__(self, pool: AsyncConnectionPool, chain: LLMChain, counter: TokenCounter, policy: ContextPolicy,
                 metrics: Metrics, redactor: Redactor | None = None) -> None:
        self.pool, self.chain, self.counter, self.policy, self.metrics = pool, chain, counter, policy, metrics
        self.redactor = redactor
        self._running: set[str] = set()

    def due(self, history_tokens: int) -> bool:
        return history_tokens > self.policy.summary_threshold_tokens

    def worth_checking(self, prompt_tokens: int, completion_tokens: int, history_trimmed: bool) -> bool:
        """Cheap pre-check after a turn, without the DB: when the whole un-summarised history fitted in the
        prompt, prompt + reply bound its size, so a short conversation never costs a query."""
        return history_trimmed or self.due(prompt_tokens + completion_tokens)

    async def maybe_summarise(self, tenant_id: str, session_id) -> bool:
        """Summarise if due; returns whether a new summary was stored."""
        key = str(session_id)
        if key in self._running:
            return False
        self._running.add(key)
        try:
            return await self._summarise(tenant_id, session_id)
        except asyncio.CancelledError:
            raise
        except Exception:
            self.metrics.summaries.labels("error").inc()
            log.exception("summary failed", extra={"session_id": key})
            return False
        finally:
            self._running.discard(key)

    async def _summarise(self, tenant_id: str, session_id) -> bool:
        async with self.pool.connection() as conn:
            session = await repo.get_session(conn, tenant_id, session_id)
            if session is None:
                return False
            rows = await repo.list_turns(conn, tenant_id, session_id, after_seq=session["summary_upto_seq"])
        rows = [r for r in rows if r["status"] != "failed"]
        if not rows or not self.due(sum(self.counter.count(r["content"]) for r in rows)):
            return False
        seqs = sorted({r["seq"] for r in rows})
        keep = self.policy.summary_keep_turns
        # Keep the newest turns verbatim; when all of them are "newest", still condense all but the last.
        n_older = len(seqs) - keep if len(seqs) > keep else max(1, len(seqs) - 1)
        earlier = f"(earlier summary) {session['summary']}\n" if session.get("summary") else ""
        transcript, upto = self._transcript(rows, seqs[:n_older], earlier)
        payload = {"messages": [{"role": "system", "content": INSTRUCTION}, {"role": "user", "content": transcript}],
                   "max_tokens": self.policy.summary_max_tokens}
        opened = await self.chain.open(payload)
        if opened.canned:
            self.metrics.summaries.labels("skipped").inc()
            return False
        parts, finish = [], None
        async for ev in opened:
            parts.append(ev.content)
            finish = ev.finish_reason or finish
        summary = "".join(parts).strip()
        if opened.failed_midway or not summary:
            self.metrics.summaries.labels("skipped").inc()
            log.warning("summary skipped: the model returned nothing usable",
                        extra={"session_id": str(session_id), "chars": len("".join(parts)), "finish_reason": finish,
                               "failed_midway": opened.failed_midway})
            return False
        async with self.pool.connection() as conn, conn.transaction():
            if self.redactor is not None:
                vault = await vault_repo.locked_session_vault(conn, tenant_id, session_id)
                summary = self.redactor.redact(summary, vault)
                await vault_repo.store_entries(conn, tenant_id, session_id, vault.new_entries)
            await repo.save_summary(conn, tenant_id, session_id, summary, upto, self.counter.count(summary))
        self.metrics.summaries.labels("written").inc()
        log.info("summary written", extra={"session_id": str(session_id), "upto_seq": upto,
                                           "turns": len([q for q in seqs if q <= upto])})
        return True

    def _transcript(self, rows: list[dict], older: list[int], earlier: str) -> tuple[str, int]:
        """The earlier summary and the oldest of ``older``'s turns that fit the model's window beside the
        instruction and the summary's own tokens, and the last turn taken. A long backlog is condensed over
        several passes instead of sent whole, past the window, to fail the same way after every turn; a turn
        that alone is too long goes in cut to fit."""
        budget = (self.policy.window_tokens - self.policy.summary_max_tokens - self.counter.count(INSTRUCTION)
                  - self.counter.count(earlier) - 4 * PER_MESSAGE_OVERHEAD)
        by_seq: dict[int, list[str]] = {}
        for r in rows:
            by_seq.setdefault(r["seq"], []).append(f"{r['role']}: {r['content']}")
        parts, used, upto = [], 0, older[0]
        for seq in older:
            text = "\n".join(by_seq.get(seq, []))
            n = self.counter.count(text) + 1
            if used + n > budget:
                if parts:
                    break
                text = text[:max(1, len(text) * max(budget, 1) // n * 9 // 10)]   # chars in proportion, with margin
            parts.append(text)
            used += n
            upto = seq
        return earlier + "\n".join(parts), upto
