"""Shared FastAPI dependencies: a pooled DB connection per request, and the app's long-lived parts."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from psycopg import AsyncConnection

from gateway.errors import PayloadTooLarge


async def db_connection(request: Request) -> AsyncIterator[AsyncConnection]:
    async with request.app.state.db.connection() as conn:
        yield conn


DbConn = Annotated[AsyncConnection, Depends(db_connection)]


async def body_size_limit(request: Request) -> None:
    """Refuse an oversized body from its Content-Length, before reading or parsing it."""
    limit = request.app.state.settings.max_request_bytes
    length = request.headers.get("content-length")
    if length and length.isdigit() and int(length) > limit:
        raise PayloadTooLarge("request_too_large", f"the request body is {int(length)} bytes; the limit is {limit}")
