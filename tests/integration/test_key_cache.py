"""The API-key cache against the appliance's real Postgres: a burst of requests that all miss it (the
entry just expired) sends one lookup, and a waiter whose client went away does not cancel it."""

from __future__ import annotations

import asyncio

from psycopg_pool import AsyncConnectionPool

from gateway.auth import KeyCache
from tests.integration.conftest import Appliance


class _CountedPool:
    """The real pool, counting the connections the cache takes from it (one per database lookup)."""

    def __init__(self, pool: AsyncConnectionPool) -> None:
        self.pool, self.lookups = pool, 0

    def connection(self):
        self.lookups += 1
        return self.pool.connection()


def test_concurrent_misses_share_one_lookup_and_a_cancelled_waiter_does_not_cancel_it(appliance: Appliance) -> None:
    async def burst() -> tuple[list, int]:
        async with AsyncConnectionPool(appliance.database_url, min_size=1, max_size=4, open=False) as pool:
            counted, cache = _CountedPool(pool), KeyCache(ttl_s=60)
            waiters = [asyncio.ensure_future(cache.resolve(counted, appliance.api_key)) for _ in range(16)]
            await asyncio.sleep(0)
            waiters[0].cancel()                                   # a client that went away mid-lookup
            done = await asyncio.gather(*waiters[1:])
            again = await cache.resolve(counted, appliance.api_key)   # now cached
            return [*done, again], counted.lookups

    identities, lookups = asyncio.run(burst())
    assert lookups == 1
    assert all(i is not None for i in identities)
    assert len({(i.tenant_id, i.subject, i.roles) for i in identities}) == 1   # one identity, the dev admin key's
    assert "admin" in identities[0].roles and appliance.api_key.startswith(identities[0].subject)
