"""A cap on every request body, enforced before the application reads a byte of it.

Why a middleware and not a route dependency: FastAPI reads (and parses) a route's body before it runs the
route's dependencies, so a check there comes after the whole body is in memory. A body whose
``Content-Length`` is over the cap is refused at once, unread; one without it (chunked) or one that sends
more than it declared is cut off as soon as it passes the cap.
"""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.errors import error_body


class BodyTooLarge(HTTPException):
    """Raised from ``receive`` once a streamed body passes the cap. An HTTPException so that FastAPI lets it
    through its body reader unchanged (it turns other errors there into a 400); mapped to 413
    ``request_too_large``."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"the request body is over the {limit}-byte limit")


class BodyLimitMiddleware:
    """``default`` bytes for every route, ``per_path`` for the few that take more (document uploads)."""

    def __init__(self, app: ASGIApp, default: int, per_path: dict[str, int] | None = None) -> None:
        self.app, self.default, self.per_path = app, default, per_path or {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.per_path.get(scope["path"], self.default)
        declared = next((v for k, v in scope["headers"] if k == b"content-length"), None)
        if declared is not None and declared.isdigit() and int(declared) > limit:
            body = error_body("request_too_large", f"the request body is {int(declared)} bytes; the limit is {limit}")
            await JSONResponse(body, status_code=413)(scope, receive, send)
            return
        received = 0

        async def capped_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
            return message

        await self.app(scope, capped_receive, send)
