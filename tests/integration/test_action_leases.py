"""An action's claim, on the real database: a runner whose lease ran out loses the action to the one that
took it over, and can neither extend its lease (so it does not call the tool again) nor settle the outcome."""

from __future__ import annotations

import asyncio
import uuid

import psycopg
import pytest

from gateway.store import api_keys
from gateway.store import dialogue as repo
from gateway.store import sessions as sessions_repo
from tests.integration.conftest import Appliance

pytestmark = pytest.mark.timeout(120)


def test_a_lapsed_claim_is_taken_over_and_cannot_act_again(appliance: Appliance) -> None:
    with psycopg.connect(appliance.database_url, autocommit=True) as conn:
        tenant = str(api_keys.ensure_tenant(conn, "leases", "Lease test"))

    async def scenario() -> None:
        async with await psycopg.AsyncConnection.connect(appliance.database_url, autocommit=True) as conn:
            session = await sessions_repo.create_session(conn, tenant, channel="api", created_by="test")
            action, created = await repo.insert_action(conn, tenant, session["id"], f"k-{uuid.uuid4()}", "transfer",
                                                       "money", {"amount": "10.00"}, "approved", risk_reason=None,
                                                       flow=None, step=None)
            assert created
            first = await repo.claim(conn, action["id"], 0.2)
            assert first is not None and await repo.claim(conn, action["id"], 30) is None   # held: nobody else
            assert await repo.extend_lease(conn, action["id"], first["attempts"], 0.2)
            await asyncio.sleep(0.4)                                # the first runner stalls past its lease
            second = await repo.claim(conn, action["id"], 30)       # another runner takes the action over
            assert second is not None and second["attempts"] == first["attempts"] + 1
            assert not await repo.extend_lease(conn, action["id"], first["attempts"], 30)   # so the first stops
            assert await repo.finish(conn, action["id"], "executed", {}, None, attempt=first["attempts"]) is None
            done = await repo.finish(conn, action["id"], "executed", {"output": {"ref": "R2"}}, None,
                                     attempt=second["attempts"])
            assert done is not None and done["state"] == "executed"

    asyncio.run(scenario())


SLOW_TOOL_CALLS: list[float] = []


async def slow_tool(args: dict) -> dict:
    """A Python tool slower than the lease (it has no timeout of its own)."""
    SLOW_TOOL_CALLS.append(asyncio.get_running_loop().time())
    await asyncio.sleep(3.0)
    return {"ref": f"SLOW-{len(SLOW_TOOL_CALLS)}"}


def test_a_tool_slower_than_the_lease_is_not_called_twice(appliance: Appliance) -> None:
    """The executor renews its lease while the call is in flight, so another runner passing by meanwhile
    (every second, in this gateway or another) finds the action held, not abandoned."""
    from psycopg_pool import AsyncConnectionPool

    from gateway.dialogue.actions import Actions, ToolExecutor
    from gateway.dialogue.packs import Tool
    from gateway.safety.pii import DEFAULT_PATTERNS, PiiDetector
    from gateway.safety.redact import Redactor
    from gateway.safety.vault import StaticKey, VaultCipher

    with psycopg.connect(appliance.database_url, autocommit=True) as conn:
        tenant = str(api_keys.ensure_tenant(conn, "leases", "Lease test"))
    tool = Tool(description="slow", parameters={"type": "object"}, python=f"{__name__}:slow_tool", side_effect="money")

    class Packs:
        def for_tenant_id(self, tenant_id: str):
            return type("LoadedPack", (), {"tools": {"slow": tool}})()

    async def scenario() -> None:
        SLOW_TOOL_CALLS.clear()
        async with AsyncConnectionPool(appliance.database_url, min_size=1, max_size=4, open=False,
                                       kwargs={"autocommit": True}) as pool:
            async with pool.connection() as conn:
                session = await sessions_repo.create_session(conn, tenant, channel="api", created_by="test")
                action, _ = await repo.insert_action(conn, tenant, session["id"], f"k-{uuid.uuid4()}", "slow", "money",
                                                     {}, "approved", risk_reason=None, flow=None, step=None)
            redactor = Redactor(PiiDetector(DEFAULT_PATTERNS), VaultCipher(StaticKey(b"k" * 32)))
            actions = Actions(pool, ToolExecutor(client=None), redactor, Packs(), lease_s=1.0)
            first = asyncio.create_task(actions.run(action["id"], {}))
            await asyncio.sleep(1.5)                      # past the lease the call started with
            second = await actions.run(action["id"], None)   # a runner passing by: must not take it over
            done = await first
            assert len(SLOW_TOOL_CALLS) == 1, SLOW_TOOL_CALLS
            assert done.state == "executed" and not done.duplicate and done.output == {"ref": "SLOW-1"}
            assert second.duplicate

    asyncio.run(scenario())
