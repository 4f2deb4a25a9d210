"""A server-sent-events response for a chat turn, written against ASGI directly.

Starlette's ``StreamingResponse`` would need a generator fed by a queue and a producer task to add
keep-alive comments, which costs a task switch per token on a box where the model shares the CPU. Here
one loop reads the upstream and writes each chunk; a ticker task writes a comment only when the stream
has been silent for ``keepalive_s``; a watcher task cancels the loop when the client disconnects.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from starlette.responses import Response
from starlette.types import Receive, Scope, Send

KEEPALIVE = b": keep-alive\n\n"
DONE = b"data: [DONE]\n\n"

Writer = Callable[[bytes], Awaitable[None]]


async def disconnected(receive: Receive) -> None:
    """Returns once the client has closed the connection (call after the request body was read: the next
    ASGI message is then the disconnect)."""
    while (await receive())["type"] != "http.disconnect":
        pass


class SSEResponse(Response):
    """``body(write)`` produces the events; it is cancelled if the client goes away, and ``on_disconnect``
    (which must not raise) then runs with the stream already stopped."""

    def __init__(self, body: Callable[[Writer], Awaitable[None]], on_disconnect: Callable[[], Awaitable[None]],
                 headers: dict[str, str], keepalive_s: float) -> None:
        # A Response subclass so FastAPI returns it as is; only ASGI __call__ below is used.
        self.status_code, self.background = 200, None
        self.produce, self.on_disconnect, self.keepalive_s = body, on_disconnect, keepalive_s
        self.raw_headers = [(b"content-type", b"text/event-stream; charset=utf-8"), (b"cache-control", b"no-cache"),
                            (b"x-accel-buffering", b"no")]
        self.raw_headers += [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
        lock = asyncio.Lock()
        last_write = time.monotonic()
        gone = False

        async def write(data: bytes) -> None:
            nonlocal last_write
            async with lock:  # the ticker may write too; ASGI sends must not interleave
                await send({"type": "http.response.body", "body": data, "more_body": True})
            last_write = time.monotonic()

        main = asyncio.current_task()
        assert main is not None

        async def watch_disconnect() -> None:
            nonlocal gone
            await disconnected(receive)
            gone = True
            main.cancel()

        async def tick() -> None:
            while True:
                await asyncio.sleep(max(0.0, self.keepalive_s - (time.monotonic() - last_write)))
                if time.monotonic() - last_write >= self.keepalive_s:
                    await write(KEEPALIVE)

        watcher, ticker = asyncio.create_task(watch_disconnect()), asyncio.create_task(tick())
        try:
            await self.produce(write)
            async with lock:
                await send({"type": "http.response.body", "body": b"", "more_body": False})
        except asyncio.CancelledError:
            if not gone:
                raise  # cancelled from outside (server shutdown): not ours to swallow
            main.uncancel()
        except OSError:  # the transport died under a write
            gone = True
        finally:
            watcher.cancel()
            ticker.cancel()
        if gone:
            await self.on_disconnect()
