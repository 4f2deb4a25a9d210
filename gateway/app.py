"""The gateway's app factory. The lifespan owns the DB pool and the serving client; routers per feature."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from fastapi import FastAPI
from psycopg_pool import AsyncConnectionPool

from gateway.api import health
from gateway.config import Settings, get_settings


def build_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # open=False + open(wait=False): the gateway starts even while Postgres is still coming up;
        # /readyz tells the load balancer when it is really usable.
        pool = AsyncConnectionPool(
            settings.database_url or "", min_size=settings.db_pool_min, max_size=settings.db_pool_max,
            open=False, kwargs={"autocommit": True},
        )
        await pool.open(wait=False)
        serving = httpx.AsyncClient(
            base_url=settings.serving_base_url,
            timeout=httpx.Timeout(30.0, connect=2.0),
            limits=httpx.Limits(max_connections=512, max_keepalive_connections=128),
            trust_env=False,  # never route through an environment proxy
        )
        app.state.settings, app.state.db, app.state.serving = settings, pool, serving
        try:
            yield
        finally:
            await serving.aclose()
            await pool.close()

    app = FastAPI(title="Enclave gateway", version="0.1.0", lifespan=lifespan)
    app.include_router(health.router)
    return app
