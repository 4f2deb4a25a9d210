"""Shared FastAPI dependencies: a pooled DB connection per request. (The body size cap is a middleware,
``gateway/api/body_limit.py``: FastAPI reads a body before a route's dependencies run.)"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from psycopg import AsyncConnection


async def db_connection(request: Request) -> AsyncIterator[AsyncConnection]:
    async with request.app.state.db.connection() as conn:
        yield conn


DbConn = Annotated[AsyncConnection, Depends(db_connection)]
