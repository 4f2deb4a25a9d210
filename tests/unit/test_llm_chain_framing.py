"""The LLM chain against a real aiohttp server on loopback that frames its stream the way other
OpenAI-compatible servers do: CRLF line ends (sse-starlette's default) written a few bytes at a time, so a
CRLF is cut between its CR and LF. Before the gateway read only LF-framed events, such a stream carried no
token and the turn fell through to the apology."""

from __future__ import annotations

import asyncio

from aiohttp import web

from gateway.clients.breaker import CircuitBreaker
from gateway.clients.llm import Timeouts, UpstreamConfig, build_chain
from gateway.observability import Metrics
from tests.loopback import serving

WORDS = ["Good", " morning", ",", " Ada", "."]


def _events() -> bytes:
    chunks = [b'{"id":"c","choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]}']
    chunks += [b'{"id":"c","choices":[{"index":0,"delta":{"content":"%s"},"finish_reason":null}]}' % w.encode()
               for w in WORDS]
    chunks += [b'{"id":"c","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}', b"[DONE]"]
    return b"".join(b"data: " + c + b"\r\n\r\n" for c in chunks)


def test_a_crlf_framed_stream_cut_anywhere_reaches_the_turn_whole() -> None:
    async def chat(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        body = _events()
        for i in range(0, len(body), 5):          # 5-byte writes: some fall between a CR and its LF
            await resp.write(body[i:i + 5])
            await asyncio.sleep(0)
        return resp

    async def scenario() -> tuple[str, str | None, str]:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", chat)
        async with serving(app) as port:
            chain, sessions = build_chain([UpstreamConfig(name="primary"), UpstreamConfig(name="apology", kind="canned")],
                                          f"http://127.0.0.1:{port}", "m", Timeouts(), CircuitBreaker, Metrics())
            try:
                opened = await chain.open({"model": "m", "messages": [{"role": "user", "content": "hi"}], "stream": True})
                events = [ev async for ev in opened]
                await opened.aclose()
            finally:
                for s in sessions:
                    await s.close()
        return "".join(ev.content for ev in events), events[-1].finish_reason, opened.upstream

    text, finish, upstream = asyncio.run(scenario())
    assert (text, finish, upstream) == ("".join(WORDS), "stop", "primary")
