"""The body cap acts before the application reads the body: a declared length over it is refused unread,
and a body without one is cut off as soon as it passes the cap."""

from __future__ import annotations

import asyncio
import json

from fastapi import FastAPI, Request

from gateway.api.body_limit import BodyLimitMiddleware
from gateway.errors import install_error_handlers


def app_with_cap(limit: int, seen: list[int]) -> BodyLimitMiddleware:
    app = FastAPI()
    install_error_handlers(app)

    @app.post("/echo")
    async def echo(request: Request) -> dict:
        body = await request.body()
        seen.append(len(body))
        return {"bytes": len(body)}

    return BodyLimitMiddleware(app, default=limit, per_path={"/upload": 4 * limit})


def call(app, path: str, chunks: list[bytes], content_length: int | None) -> tuple[int, dict, int]:
    """Drive one request through the ASGI app; returns status, JSON body and how many chunks were pulled."""
    headers = [(b"content-type", b"application/json")]
    if content_length is not None:
        headers.append((b"content-length", str(content_length).encode()))
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
             "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "", "headers": headers,
             "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 80)}
    pending = list(chunks)
    pulled = 0
    sent: list[dict] = []

    async def receive() -> dict:
        nonlocal pulled
        if not pending:
            return {"type": "http.disconnect"}
        pulled += 1
        chunk = pending.pop(0)
        return {"type": "http.request", "body": chunk, "more_body": bool(pending)}

    async def send(message: dict) -> None:
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    status = next(m["status"] for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return status, json.loads(body), pulled


def test_a_declared_length_over_the_cap_is_refused_unread() -> None:
    seen: list[int] = []
    status, body, pulled = call(app_with_cap(100, seen), "/echo", [b"x" * 500], content_length=500)
    assert (status, body["error"]["code"], pulled, seen) == (413, "request_too_large", 0, [])
    assert body["error"]["message"] == "the request body is 500 bytes; the limit is 100"


def test_a_body_without_a_length_is_cut_off_at_the_cap() -> None:
    seen: list[int] = []
    chunks = [b"x" * 60] * 10   # 600 bytes in all, chunked
    status, body, pulled = call(app_with_cap(100, seen), "/echo", chunks, content_length=None)
    assert (status, body["error"]["code"], seen) == (413, "request_too_large", [])
    assert pulled == 2   # the second chunk passed the cap: nothing after it was read


def test_under_the_cap_and_per_path_caps_pass() -> None:
    seen: list[int] = []
    app = app_with_cap(100, seen)
    assert call(app, "/echo", [b"x" * 50, b"x" * 50], content_length=None)[:2] == (200, {"bytes": 100})
    status, body, _ = call(app, "/upload", [b"x" * 300], content_length=300)   # its own cap: 400
    assert (status, body["error"]["code"]) == (404, "not_found")   # past the cap, to the router (no such route)
