"""The gateway's view of the serving plane: one pooled httpx client, per-role health probes."""

from __future__ import annotations

import asyncio

import httpx

from models.catalog import ROLE_HEALTH_PATHS


async def probe_roles(client: httpx.AsyncClient, timeout_s: float) -> dict[str, str]:
    """role -> "ok" or a short reason. Probed concurrently so /readyz costs one round trip."""

    async def probe(path: str) -> str:
        try:
            r = await client.get(path, timeout=timeout_s)
        except httpx.HTTPError as e:
            return f"unreachable: {type(e).__name__}"
        return "ok" if r.status_code == 200 else f"HTTP {r.status_code}"

    roles = list(ROLE_HEALTH_PATHS)
    results = await asyncio.gather(*(probe(ROLE_HEALTH_PATHS[r]) for r in roles))
    return dict(zip(roles, results, strict=True))
