"""Who is calling: API keys (``Authorization: Bearer enc_…``) resolved to a tenant and a role.

The trust-layer issue extends this (OIDC, role checks per route, rate limits); routes already depend on
``CurrentIdentity`` so that work does not touch them. Key lookups are cached for a few seconds: a
revoked key stops working within ``AUTH_CACHE_TTL_S`` without a DB round trip on every streamed turn.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from psycopg_pool import AsyncConnectionPool

from gateway.errors import Unauthenticated
from gateway.store.api_keys import hash_key

AUTH_CACHE_TTL_S = 10.0


@dataclass(frozen=True)
class Identity:
    tenant_id: str
    role: str
    key_prefix: str
    max_input_tokens: int | None = None   # the tenant's caps; None: the gateway defaults apply
    max_output_tokens: int | None = None


class KeyCache:
    def __init__(self, ttl_s: float = AUTH_CACHE_TTL_S) -> None:
        self.ttl_s = ttl_s
        self._entries: dict[str, tuple[float, Identity | None]] = {}

    async def resolve(self, pool: AsyncConnectionPool, key: str) -> Identity | None:
        digest = hash_key(key)
        now = time.monotonic()
        hit = self._entries.get(digest)
        if hit is not None and hit[0] > now:
            return hit[1]
        async with pool.connection() as conn:
            cur = await conn.execute(
                "SELECT k.tenant_id, k.role, k.prefix, t.max_input_tokens, t.max_output_tokens "
                "FROM api_keys k JOIN tenants t ON t.id = k.tenant_id WHERE k.key_sha256 = %s AND k.revoked_at IS NULL",
                (digest,))
            row = await cur.fetchone()
        identity = Identity(str(row[0]), row[1], row[2], row[3], row[4]) if row else None
        if len(self._entries) > 10_000:
            self._entries.clear()
        self._entries[digest] = (now + self.ttl_s, identity)
        return identity


async def current_identity(request: Request) -> Identity:
    header = request.headers.get("authorization", "")
    scheme, _, key = header.partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        raise Unauthenticated("missing_api_key", "send an API key as 'Authorization: Bearer <key>'")
    identity = await request.app.state.key_cache.resolve(request.app.state.db, key.strip())
    if identity is None:
        raise Unauthenticated("invalid_api_key", "the API key is unknown or revoked")
    return identity


CurrentIdentity = Annotated[Identity, Depends(current_identity)]
