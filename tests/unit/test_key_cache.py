"""The API-key cache: a burst of requests that all miss it (the entry just expired) sends one lookup."""

from __future__ import annotations

import asyncio
from contextlib import asynccontextmanager

from gateway.auth import KeyCache


class _CountingPool:
    """Stands in for psycopg_pool: every connection answers the key lookup after a short delay."""

    def __init__(self) -> None:
        self.queries = 0

    @asynccontextmanager
    async def connection(self):
        pool = self

        class _Cursor:
            async def fetchone(self):
                return ("tenant-1", "user", "enc_abcd1234", None, None, None)

        class _Conn:
            async def execute(self, _sql, _params):
                pool.queries += 1
                await asyncio.sleep(0.01)
                return _Cursor()

        yield _Conn()


def test_concurrent_misses_share_one_lookup_and_a_cancelled_waiter_does_not_cancel_it() -> None:
    async def burst() -> tuple[list, int]:
        cache, pool = KeyCache(ttl_s=60), _CountingPool()
        waiters = [asyncio.ensure_future(cache.resolve(pool, "enc_abcd1234_secret")) for _ in range(16)]
        await asyncio.sleep(0)
        waiters[0].cancel()                                  # a client that went away mid-lookup
        done = await asyncio.gather(*waiters[1:])
        again = await cache.resolve(pool, "enc_abcd1234_secret")  # now cached
        return [*done, again], pool.queries

    identities, queries = asyncio.run(burst())
    assert queries == 1
    assert {i.tenant_id for i in identities} == {"tenant-1"}
    assert all(i.subject == "enc_abcd1234" and i.roles == {"user"} for i in identities)
