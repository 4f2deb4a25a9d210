"""Hand-off to a human: while a colleague has a session, the user's messages go to them and their replies
come back over the same chat stream.

Every message is a turn in the session's history, so the agent's console, the user's stream and a
second gateway replica all read the same rows: the user's request records its message at once, then
waits (polling, a few times a second) for the agent's reply, up to ``handoff_wait_s``; past that it
ends with a short "a colleague will be with you" note that is not stored.
"""

from __future__ import annotations

import asyncio
import hashlib
import time

from psycopg_pool import AsyncConnectionPool

from gateway.clients.llm import OpenedStream, canned_chunks, chunk_event
from gateway.dialogue.notices import record_message
from gateway.dialogue.turn import Turn
from gateway.safety.redact import Redactor
from gateway.store import sessions as sessions_repo
from gateway.store import vault as vault_repo

AGENT_MODEL_PREFIX = "agent:"


class Relay:
    def __init__(self, pool: AsyncConnectionPool, record, redactor: Redactor, wait_s: float, poll_s: float = 0.25) -> None:
        self.pool, self.record, self.redactor, self.wait_s, self.poll_s = pool, record, redactor, wait_s, poll_s

    async def __call__(self, turn: Turn) -> OpenedStream:
        await self.record(turn)          # the agent sees the message now, not when the stream ends
        turn.recorded = True
        completion_id = f"chatcmpl-{turn.request_id}"
        waiting_note = turn.pack.pack.canned.agent_wait if turn.pack is not None else "A colleague will reply shortly."
        after = turn.seq or 0

        async def rest():
            deadline = time.monotonic() + self.wait_s
            while time.monotonic() < deadline:
                async with self.pool.connection() as conn:
                    rows = await sessions_repo.list_turns(conn, turn.tenant_id, turn.session_id, after_seq=after)
                    replies = [r["content"] for r in rows if r["role"] == "assistant"]
                    if replies:   # the agent's values (sealed when they wrote) back, as the echo policy allows
                        vault = await vault_repo.session_vault(conn, turn.tenant_id, turn.session_id)
                if replies:
                    text = self.redactor.restore("\n\n".join(replies), vault, reveal=turn.caller_is_owner)
                    yield [chunk_event(completion_id, "agent", {"role": "assistant", "content": text}, None),
                           chunk_event(completion_id, "agent", {}, "stop")]
                    return
                await asyncio.sleep(self.poll_s)
            yield canned_chunks(waiting_note, "agent", completion_id)

        turn.ttft_s = None
        return OpenedStream("agent", "agent", False, False, [], rest())


async def post_agent_message(pool: AsyncConnectionPool, redactor: Redactor, tenant_id: str, session_id, agent: str,
                             text: str, channel: str) -> int:
    """Store a colleague's message as an assistant turn (redacted, like every stored text)."""
    async with pool.connection() as conn, conn.transaction():
        return await record_message(conn, redactor, tenant_id, session_id, text, channel=channel,
                                    model=f"{AGENT_MODEL_PREFIX}{agent}"[:200],
                                    request_id=f"agent-{hashlib.sha256(agent.encode()).hexdigest()[:8]}",
                                    audit_as=("handoff.message", agent))
