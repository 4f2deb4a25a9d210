"""The rolling summary is redacted before it is stored, on the real database.

The summary is written by the model from redacted history, but a model can restate a value in a form the
history never held (here, an e-mail address it "remembers"). The LLM is scripted so the test controls what
it writes; the store, the vault and the redactor are the appliance's own.
"""

from __future__ import annotations

import asyncio
import uuid

import psycopg
import pytest
from psycopg_pool import AsyncConnectionPool

from gateway.clients.llm import ChunkEvent, OpenedStream
from gateway.dialogue.context import ContextPolicy
from gateway.dialogue.summary import RollingSummarizer
from gateway.dialogue.tokens import TokenCounter
from gateway.observability import Metrics
from gateway.safety.pii import DEFAULT_PATTERNS, PiiDetector
from gateway.safety.redact import Redactor
from gateway.safety.vault import StaticKey, VaultCipher
from gateway.store import api_keys
from gateway.store import sessions as repo
from tests.integration.conftest import Appliance

pytestmark = pytest.mark.timeout(120)


class ScriptedChain:
    """Stands in for the LLM chain: every call streams the same reply."""

    def __init__(self, reply: str) -> None:
        self.reply, self.payloads = reply, []

    async def open(self, payload: dict) -> OpenedStream:
        self.payloads.append(payload)
        event = ChunkEvent(raw=b"{}", content=self.reply, finish_reason="stop")
        return OpenedStream(upstream="primary", model="scripted", fallback=False, canned=False, _buffered=[event],
                            _rest=None)


def test_a_summary_that_restates_a_value_is_stored_redacted(appliance: Appliance) -> None:
    with psycopg.connect(appliance.database_url, autocommit=True) as conn:
        tenant = str(api_keys.ensure_tenant(conn, "summaries", "Summary test"))
    chain = ScriptedChain("The user, reachable at ada.lovelace@example.org, wants a savings account.")
    redactor = Redactor(PiiDetector(DEFAULT_PATTERNS), VaultCipher(StaticKey(b"s" * 32)))
    policy = ContextPolicy(window_tokens=4096, summary_threshold_tokens=10, summary_keep_turns=1, summary_max_tokens=40)

    async def scenario() -> None:
        async with AsyncConnectionPool(appliance.database_url, min_size=1, max_size=2, open=False,
                                       kwargs={"autocommit": True}) as pool:
            async with pool.connection() as conn:
                session = await repo.create_session(conn, tenant, channel="api", created_by="test")
                for text in ("I would like to open a savings account for my daughter, she is twelve.",
                             "Is there a minimum deposit to open it?"):
                    await repo.record_turn(conn, tenant, session["id"], str(uuid.uuid4()), "api", "r", [
                        repo.TurnRow("user", text, 20, "complete"),
                        repo.TurnRow("assistant", "Yes, happy to help with that.", 8, "complete")])
            summarizer = RollingSummarizer(pool, chain, TokenCounter(None), policy, Metrics(), redactor)
            assert await summarizer.maybe_summarise(tenant, session["id"])
            async with pool.connection() as conn:
                stored = await repo.get_session(conn, tenant, session["id"])
                vault = await (await conn.execute("SELECT placeholder, pii_type FROM pii_vault WHERE session_id = %s",
                                                  (session["id"],))).fetchall()
        assert len(chain.payloads) == 1 and "savings account for my daughter" in \
            chain.payloads[0]["messages"][1]["content"]
        assert "ada.lovelace" not in stored["summary"]
        assert vault and vault[0][0] in stored["summary"], (stored["summary"], vault)

    asyncio.run(scenario())
