"""The gateway's view of the serving plane: one pooled httpx client, per-role health probes."""

from __future__ import annotations

import asyncio

import httpx

from models.catalog import ROLE_HEALTH_PATHS


async def probe_roles(client: httpx.AsyncClient, timeout_s: float,
                      overrides: dict[str, httpx.AsyncClient] | None = None) -> dict[str, str]:
    """role -> "ok" or a short reason. Probed concurrently so /readyz costs one round trip. ``overrides``: the
    client a role is really called through, when it is not the serving plane (ENCLAVE_STT_URL, _TTS_URL):
    probing the plane instead said "ready" while the speech host in use was down."""

    async def probe(role: str) -> str:
        try:
            r = await (overrides or {}).get(role, client).get(ROLE_HEALTH_PATHS[role], timeout=timeout_s)
        except httpx.HTTPError as e:
            return f"unreachable: {type(e).__name__}"
        return "ok" if r.status_code == 200 else f"HTTP {r.status_code}"

    roles = list(ROLE_HEALTH_PATHS)
    results = await asyncio.gather(*(probe(r) for r in roles))
    return dict(zip(roles, results, strict=True))
