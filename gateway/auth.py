"""Who is calling, and may they: API keys and OIDC tokens resolved to a tenant and roles; a role check
on every route; a rate limit per key.

Every route declares who may call it with one of the ``Annotated`` identities at the bottom (``ChatCaller``,
``AuditorCaller``…) or is listed in ``PUBLIC_ROUTES``; the role × route test walks the app to prove it.
Key lookups are cached for a few seconds: a revoked key stops working within ``AUTH_CACHE_TTL_S``
without a DB round trip on every streamed turn.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Literal

import psycopg
from fastapi import Depends, Request
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from gateway.errors import Forbidden, RateLimited, Unauthenticated
from gateway.oidc import OidcVerifier, TokenRejected
from gateway.store.api_keys import KEY_FORMAT, KEY_PREFIX, ROLES, hash_key

log = logging.getLogger("enclave.gateway")

AUTH_CACHE_TTL_S = 10.0
# Probes and scraping need no identity; the actions webhook is authenticated by its HMAC signature instead.
# "/" is the UI's page; the UI's config and code exchange come before any sign-in.
PUBLIC_ROUTES = frozenset({"/healthz", "/readyz", "/metrics", "/v1/actions/webhook", "/", "/v1/ui/config",
                           "/v1/ui/oidc/token"})


@dataclass(frozen=True)
class Identity:
    tenant_id: str
    roles: frozenset[str]
    subject: str                       # an API key's public prefix, or "oidc:<sub>": never a secret
    kind: Literal["api_key", "oidc"] = "api_key"
    rate_limit_per_min: int | None = None
    max_input_tokens: int | None = None   # the tenant's caps; None: the gateway defaults apply
    max_output_tokens: int | None = None

    @property
    def role(self) -> str:
        """The most privileged role (for display)."""
        return max(self.roles, key=ROLES.index) if self.roles else ""

    @property
    def sees_all_sessions(self) -> bool:
        """Staff (``user``) see their own sessions; agents, supervisors and admins the tenant's."""
        return bool(self.roles & {"agent", "supervisor", "admin"})


class _TtlCache:
    def __init__(self, ttl_s: float) -> None:
        self.ttl_s = ttl_s
        self._entries: dict[str, tuple[float, object]] = {}

    def get(self, key: str) -> tuple[bool, object]:
        hit = self._entries.get(key)
        if hit is not None and hit[0] > time.monotonic():
            self._entries[key] = self._entries.pop(key)    # most recently used last: eviction spares it
            return True, hit[1]
        return False, None

    def put(self, key: str, value: object) -> None:
        if len(self._entries) > 10_000:
            # Expired entries first, then the oldest half: clearing everything let a flood of made-up keys
            # push every real key out of the cache (and each of their requests to the database).
            now = time.monotonic()
            self._entries = {k: v for k, v in self._entries.items() if v[0] > now}
            if len(self._entries) > 5_000:
                self._entries = dict(list(self._entries.items())[-5_000:])
        self._entries[key] = (time.monotonic() + self.ttl_s, value)

    def drop_where(self, predicate: Callable[[object], bool]) -> None:
        for key in [k for k, (_t, v) in self._entries.items() if predicate(v)]:
            del self._entries[key]


class KeyCache:
    """API key → Identity, and tenant slug → tenant row (for OIDC), each for a few seconds."""

    def __init__(self, ttl_s: float = AUTH_CACHE_TTL_S) -> None:
        self._keys, self._tenants = _TtlCache(ttl_s), _TtlCache(ttl_s)
        self._loading: dict[tuple[str, str], asyncio.Task] = {}
        self._revocations = 0      # bumped by forget(): a lookup that started before it must not be cached

    async def _once(self, key: tuple[str, str], load: Callable[[], Awaitable[object]]) -> object:
        """Concurrent misses for one key share one database lookup. When the cache entry expires under a
        burst (16 requests in the same millisecond), each request would otherwise send its own query and
        queue for a pooled connection before the model is even called. A waiter that is cancelled (its
        client went away) does not cancel the lookup the others are waiting for."""
        task = self._loading.get(key)
        if task is None:
            task = self._loading[key] = asyncio.ensure_future(load())
            task.add_done_callback(lambda _t: self._loading.pop(key, None))
        return await asyncio.shield(task)

    async def resolve(self, pool: AsyncConnectionPool, key: str,
                      before_lookup: Callable[[], None] | None = None) -> Identity | None:
        """``before_lookup`` runs on a cache miss, before the database is asked (it may refuse by raising)."""
        digest = hash_key(key)
        hit, value = self._keys.get(digest)
        if hit:
            return value  # type: ignore[return-value]
        if before_lookup is not None:
            before_lookup()
        return await self._once(("key", digest), lambda: self._load_key(pool, digest))  # type: ignore[return-value]

    async def _load_key(self, pool: AsyncConnectionPool, digest: str) -> Identity | None:
        revocations = self._revocations
        async with pool.connection() as conn:
            cur = await conn.execute(
                "SELECT k.tenant_id, k.role, k.prefix, k.rate_limit_per_min, t.max_input_tokens, t.max_output_tokens "
                "FROM api_keys k JOIN tenants t ON t.id = k.tenant_id WHERE k.key_sha256 = %s AND k.revoked_at IS NULL",
                (digest,))
            row = await cur.fetchone()
        identity = Identity(str(row[0]), frozenset({row[1]}), row[2], "api_key", row[3], row[4], row[5]) if row else None
        if revocations == self._revocations:   # else it may have read a key revoked while it ran
            self._keys.put(digest, identity)
        return identity

    def forget(self, subject: str) -> None:
        """A key revoked through this gateway stops working here at once (elsewhere within the TTL)."""
        self._revocations += 1
        self._keys.drop_where(lambda identity: identity is not None and identity.subject == subject)

    async def tenant(self, pool: AsyncConnectionPool, slug: str) -> tuple | None:
        hit, value = self._tenants.get(slug)
        if hit:
            return value  # type: ignore[return-value]
        return await self._once(("tenant", slug), lambda: self._load_tenant(pool, slug))  # type: ignore[return-value]

    async def _load_tenant(self, pool: AsyncConnectionPool, slug: str) -> tuple | None:
        async with pool.connection() as conn:
            cur = await conn.execute("SELECT id, max_input_tokens, max_output_tokens FROM tenants WHERE slug = %s", (slug,))
            row = await cur.fetchone()
        self._tenants.put(slug, row)
        return row


def over_limit(rate: int, wait_s: float) -> RateLimited:
    return RateLimited("rate_limited", f"over this key's limit of {rate} requests per minute; retry in "
                       f"{math.ceil(wait_s)} s", wait_s)


class RateLimiter:
    """A token bucket per caller: ``per_min`` requests a minute, bursts up to that many."""

    def __init__(self, default_per_min: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.default_per_min, self.clock = default_per_min, clock
        self._buckets: dict[str, tuple[float, float]] = {}    # subject → (tokens, last refill)

    def level(self, subject: str, rate: int) -> float:
        """The tokens ``subject``'s bucket holds now (full for a subject not seen)."""
        tokens, last = self._buckets.get(subject, (float(rate), self.clock()))
        return min(float(rate), tokens + (self.clock() - last) * rate / 60.0)

    def spend(self, subject: str, tokens: float) -> None:
        """Take one token from a bucket that held ``tokens`` (from :meth:`level`)."""
        self._buckets[subject] = (tokens - 1.0, self.clock())
        if len(self._buckets) > 100_000:
            self._buckets.clear()

    def check(self, subject: str, per_min: int | None) -> None:
        rate = per_min or self.default_per_min
        tokens = self.level(subject, rate)
        if tokens < 1.0:
            self._buckets[subject] = (tokens, self.clock())
            raise over_limit(rate, (1.0 - tokens) * 60.0 / rate)
        self.spend(subject, tokens)

    async def acquire(self, subject: str, per_min: int | None) -> None:
        self.check(subject, per_min)


class FailedAuthLimiter:
    """Unknown API keys, per client address: past ``per_min`` a minute, a key from that address that is not
    in the cache is refused (429) without a lookup. Rate limits apply to known keys only, so a flood of
    made-up keys cost a database query each, unlimited. Keys in use stay cached, so colleagues behind the
    same proxy are not locked out by one client's mistakes."""

    def __init__(self, per_min: int = 600, clock: Callable[[], float] = time.monotonic) -> None:
        self.per_min = per_min
        self._buckets = RateLimiter(per_min, clock)      # the same token bucket, per address

    def refuse_if_over(self, address: str) -> None:
        if (tokens := self._buckets.level(address, self.per_min)) < 1.0:
            wait_s = (1.0 - tokens) * 60.0 / self.per_min
            raise RateLimited("too_many_failed_attempts", "too many unknown API keys from this address; retry in "
                              f"{math.ceil(wait_s)} s", wait_s)

    def count(self, address: str) -> None:
        self._buckets.spend(address, self._buckets.level(address, self.per_min))


class SharedRateLimiter:
    """The same bucket kept in Postgres (``take_rate_token``), for a gateway of several processes: in each
    process's memory a key would get its limit once per process. One small statement per request. While
    Postgres does not answer (within ``timeout_s``), each process falls back to its own buckets rather than
    refusing everyone: the turn would fail on storage anyway, but the models list and health stay up."""

    PRUNE_EVERY = 10_000   # requests between deletions of buckets idle for a day (a row per key or OIDC subject)

    def __init__(self, pool: AsyncConnectionPool, default_per_min: int, timeout_s: float = 2.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.pool, self.default_per_min, self.timeout_s, self.clock = pool, default_per_min, timeout_s, clock
        self.fallback = RateLimiter(default_per_min, clock)
        self._calls = 0
        self._warned_at = -math.inf

    async def acquire(self, subject: str, per_min: int | None) -> None:
        rate = per_min or self.default_per_min
        try:
            async with self.pool.connection(timeout=self.timeout_s) as conn:
                row = await (await conn.execute("SELECT take_rate_token(%s, %s)", (subject, rate))).fetchone()
                self._calls += 1
                if self._calls % self.PRUNE_EVERY == 0:
                    await conn.execute("DELETE FROM rate_buckets WHERE refilled_at < now() - interval '1 day'")
        except (psycopg.Error, PoolTimeout) as e:
            if self.clock() - self._warned_at > 60:
                self._warned_at = self.clock()
                log.warning("rate limits fall back to this process's own buckets: Postgres did not answer",
                            extra={"detail": repr(e)[:300]})
            self.fallback.check(subject, per_min)
            return
        wait = float(row[0]) if row else 0.0
        if wait > 0:
            raise over_limit(rate, wait)


async def _oidc_identity(request: Request, verifier: OidcVerifier, token: str) -> Identity:
    state = request.app.state
    try:
        claims = await verifier.verify(token)
    except TokenRejected as e:
        raise Unauthenticated("invalid_token", str(e)) from None
    slug = claims.get(verifier.tenant_claim)
    if not isinstance(slug, str) or not slug:
        raise Unauthenticated("invalid_token", f"the token has no '{verifier.tenant_claim}' claim naming a tenant")
    tenant = await state.key_cache.tenant(state.db, slug)
    if tenant is None:
        raise Forbidden("unknown_tenant", f"tenant '{slug}' is not configured on this appliance")
    roles = frozenset(r for r in verifier.roles_of(claims) if r in ROLES)
    return Identity(str(tenant[0]), roles, f"oidc:{claims['sub']}", "oidc", None, tenant[1], tenant[2])


async def authenticate(request: Request) -> Identity:
    """The caller's identity from ``Authorization: Bearer …`` (an ``enc_`` API key or an OIDC JWT)."""
    cached = getattr(request.state, "identity", None)
    if cached is not None:
        return cached
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise Unauthenticated("missing_api_key", "send an API key or an OIDC token as 'Authorization: Bearer <token>'")
    identity = await identify(request, token)
    request.state.identity = identity
    return identity


async def identify(request, token: str) -> Identity:
    """A bearer token (API key or OIDC JWT) to an identity, rate limit applied. ``request`` is any HTTP
    connection (a WebSocket too: browsers cannot set its headers, so the voice channel passes the token in
    its first message)."""
    state = request.app.state
    if token.startswith(KEY_PREFIX):
        client = request.client.host if request.client else "-"
        identity = await state.key_cache.resolve(state.db, token, lambda: state.failed_auth.refuse_if_over(client)) \
            if KEY_FORMAT.match(token) else None
        if identity is None:
            state.failed_auth.count(client)
            raise Unauthenticated("invalid_api_key", "the API key is unknown or revoked")
    elif token.count(".") == 2 and state.oidc is not None:
        identity = await _oidc_identity(request, state.oidc, token)
    else:
        raise Unauthenticated("invalid_api_key", "the bearer token is neither an Enclave API key nor an OIDC token "
                              + ("" if state.oidc is not None else "(OIDC is not configured here)"))
    try:
        await state.rate_limiter.acquire(identity.subject, identity.rate_limit_per_min)
    except RateLimited:
        state.metrics.rate_limited.inc()
        raise
    return identity


class RequireRoles:
    """A route's declaration of who may call it (the role × route test reads ``roles``)."""

    def __init__(self, *roles: str) -> None:
        unknown = set(roles) - set(ROLES)
        if unknown:
            raise ValueError(f"unknown roles {unknown}")
        self.roles = frozenset(roles)

    async def __call__(self, request: Request) -> Identity:
        identity = await authenticate(request)
        if not identity.roles & self.roles:
            have = ", ".join(sorted(identity.roles)) or "none"
            raise Forbidden("role_not_allowed", f"this needs one of the roles {', '.join(sorted(self.roles))}; "
                            f"the caller has {have}")
        return identity


CHAT_ROLES = ("user", "agent", "supervisor", "admin")
AnyCaller = Annotated[Identity, Depends(RequireRoles(*ROLES))]
ChatCaller = Annotated[Identity, Depends(RequireRoles(*CHAT_ROLES))]
AuditorCaller = Annotated[Identity, Depends(RequireRoles("auditor"))]
AdminCaller = Annotated[Identity, Depends(RequireRoles("admin"))]
CuratorCaller = Annotated[Identity, Depends(RequireRoles("supervisor", "admin"))]   # manages the knowledge base
ReviewerCaller = Annotated[Identity, Depends(RequireRoles("supervisor", "admin"))]  # approves actions, clears flags
ReviewReader = Annotated[Identity, Depends(RequireRoles("supervisor", "auditor", "admin"))]
AgentCaller = Annotated[Identity, Depends(RequireRoles("agent", "supervisor", "admin"))]  # takes hand-offs
