"""The HTTP clients the gateway shares between callers, against a real aiohttp server on loopback that
sets a cookie on every answer: a cookie set for one caller must never ride on the next caller's request.
The server is reached by name (localhost), because aiohttp's default jar ignores cookies from IP hosts and
real upstreams are usually named."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from aiohttp import web

from gateway.clients.breaker import CircuitBreaker
from gateway.clients.http import shared_client
from gateway.clients.llm import Timeouts, UpstreamConfig, build_chain
from gateway.observability import Metrics
from tests.loopback import serving

EVENTS = [b'{"id":"c","choices":[{"index":0,"delta":{"content":"hi"},"finish_reason":null}]}',
          b'{"id":"c","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}']


async def _with_cookie_setter(calls: Callable[[str], Awaitable[list[str]]]) -> tuple[list[str], list[str | None]]:
    """Run ``calls(base_url)`` against a server that sets a new cookie on every answer; return what the
    calls returned and the Cookie header of each request the server saw."""
    seen: list[str | None] = []

    async def chat(request: web.Request) -> web.StreamResponse:
        seen.append(request.headers.get("Cookie"))
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        resp.set_cookie("upstream_session", f"caller-{len(seen)}")
        await resp.prepare(request)
        for ev in EVENTS:
            await resp.write(b"data: " + ev + b"\n\n")
        await resp.write(b"data: [DONE]\n\n")
        return resp

    app = web.Application()
    app.router.add_post("/v1/chat/completions", chat)
    async with serving(app) as port:
        return await calls(f"http://localhost:{port}"), seen


def test_the_llm_chain_keeps_no_cookie_between_callers() -> None:
    async def calls(url: str) -> list[str]:
        chain, sessions = build_chain([UpstreamConfig(name="primary")], url, "m", Timeouts(), CircuitBreaker, Metrics())
        texts = []
        try:
            for caller in range(2):
                opened = await chain.open({"model": "m", "messages": [{"role": "user", "content": f"caller {caller}"}],
                                           "stream": True})
                texts.append("".join([ev.content async for ev in opened]))
                await opened.aclose()
        finally:
            for s in sessions:
                await s.close()
        return texts

    texts, cookies = asyncio.run(_with_cookie_setter(calls))
    assert texts == ["hi", "hi"] and cookies == [None, None]


def test_the_shared_httpx_clients_keep_no_cookie_between_callers() -> None:
    """The tool calls, the speech roles and the serving probes go through ``shared_client``."""
    async def calls(url: str) -> list[str]:
        async with shared_client(base_url=url) as client:
            answers = [await client.post("/v1/chat/completions", json={}) for _ in range(2)]
            assert not client.cookies
        return [str(r.status_code) for r in answers]

    statuses, cookies = asyncio.run(_with_cookie_setter(calls))
    assert statuses == ["200", "200"] and cookies == [None, None]
