"""Liveness and readiness: /healthz says the process runs, /readyz that it can serve a turn."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from gateway.api.routing import StrictJsonRoute
from gateway.clients.serving import probe_roles

router = APIRouter(route_class=StrictJsonRoute, tags=["health"])


@router.get("/healthz")
async def healthz() -> dict:
    return {"status": "ok"}


@router.get("/readyz")
async def readyz(request: Request) -> JSONResponse:
    state = request.app.state
    timeout = state.settings.readiness_timeout_s

    async def check_db() -> str:
        try:
            async with state.db.connection(timeout=timeout) as conn:
                await conn.execute("SELECT 1")
            return "ok"
        except Exception as e:  # any failure means "not ready"; the reason is reported, not raised
            return f"unavailable: {type(e).__name__}"

    stt, tts = state.speech.stt.client, state.speech.tts.client    # the clients voice turns go through
    db, roles = await asyncio.gather(check_db(), probe_roles(state.serving, timeout, {"stt": stt, "tts": tts}))
    checks = {"database": db, **{f"serving.{r}": v for r, v in roles.items()}}
    ready = all(v == "ok" for v in checks.values())
    return JSONResponse({"status": "ready" if ready else "not_ready", "checks": checks},
                        status_code=200 if ready else 503)


@router.get("/metrics", include_in_schema=False)
async def metrics(request: Request) -> Response:
    body, content_type = request.app.state.metrics.render()
    return Response(body, media_type=content_type)
