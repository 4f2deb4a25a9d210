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
