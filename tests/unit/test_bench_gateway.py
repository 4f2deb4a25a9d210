"""The gateway benchmark's own parts: the paced upstream (a real aiohttp server on loopback) and how a stream
is counted (tokens from the usage chunk, not content chunks; streams cut short are flagged)."""

from __future__ import annotations

import asyncio
import sys
import time

import httpx
import pytest
from aiohttp import web

from scripts.bench.gateway import (
    BATCH_WARMUP_TOKENS,
    WARMUP_REQUESTS,
    Target,
    batch_figures,
    bench,
    parse_args,
    request_body,
    settle,
)
from scripts.bench.llm_stream import make_session, stream_chat
from scripts.bench.paced_upstream import Pace, build_app
from tests.loopback import serving


async def _with_paced(pace: Pace, body) -> object:
    """Run the paced upstream on a free loopback port for the length of ``body(client)`` (an httpx client)."""
    async with serving(build_app(pace)) as port, \
            httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", trust_env=False, timeout=30) as client:
        return await body(client)


def _stream(body: dict):
    """``stream_chat`` with the benchmark's own client (aiohttp) against the same upstream."""
    async def go(client: httpx.AsyncClient) -> dict:
        async with make_session(str(client.base_url).rstrip("/")) as session:
            return await stream_chat(session, body)
    return go


def test_paced_stream_counts_tokens_from_usage_and_keeps_its_pace() -> None:
    pace = Pace(ttft_s=0.02, token_s=0.005, model="paced")
    result = asyncio.run(_with_paced(pace, _stream(request_body("paced", 12))))
    assert result["ok"] and result["usage"]
    assert result["tokens"] == 12 and result["chunks"] == 12
    assert result["finish"] == "length"
    assert result["ttft_ms"] >= 20
    assert result["total_ms"] >= 20 + 11 * 5          # first token, then 11 more on the 5 ms schedule


def test_without_usage_the_tokens_fall_back_to_content_chunks() -> None:
    body = {**request_body("paced", 5)}
    body.pop("stream_options")
    result = asyncio.run(_with_paced(Pace(0.0, 0.0, "paced"), _stream(body)))
    assert result["ok"] and not result["usage"]
    assert result["tokens"] == result["chunks"] == 5


def test_non_streamed_and_malformed_requests() -> None:
    async def calls(client: httpx.AsyncClient) -> list[httpx.Response]:
        return [await client.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": "hi"}],
                                                                "max_tokens": 3}),
                await client.post("/v1/chat/completions", content=b"{not json"),
                await client.post("/v1/chat/completions", json={"messages": [], "max_tokens": 0}),
                await client.get("/v1/models")]

    done, bad_json, bad_tokens, models = asyncio.run(_with_paced(Pace(0.0, 0.0, "paced"), calls))
    assert done.status_code == 200
    assert done.json()["usage"]["completion_tokens"] == 3
    assert done.json()["choices"][0]["finish_reason"] == "length"
    assert bad_json.status_code == 400 and bad_json.json()["error"]["message"]
    assert bad_tokens.status_code == 400 and "max_tokens" in bad_tokens.json()["error"]["message"]
    assert models.json()["data"][0]["id"] == "paced"


def test_throughput_is_tokens_not_chunks_and_short_streams_are_flagged() -> None:
    """vLLM folds decode steps into fewer chunks when its API side falls behind: the same 64 tokens can
    arrive as 30 chunks. Counting chunks made the busier path look slower."""
    full = {"ok": True, "ttft_ms": 10.0, "total_ms": 100.0, "chunks": 30, "tokens": 64, "usage": True, "finish": "length"}
    short = {**full, "tokens": 20, "finish": "stop"}
    figures = batch_figures([full, full, short], wall=2.0, extra_errors=0)
    assert figures["tokens"] == 128 and figures["content_chunks"] == 60
    assert figures["tok_per_s"] == 64.0
    assert figures["cut_short"] == 1 and figures["without_usage"] == 0
    # a stream that did not run to max_tokens (a canned fallback answers at once) is an error, in no pool
    assert figures["ok"] == 2 and figures["errors"] == 1 and len(figures["ttft_ms"]) == 2


def test_the_first_wave_is_reported_apart() -> None:
    """A batch at concurrency c starts c requests in the same instant; later ones start as earlier ones end."""
    def req(started: float, ttft: float) -> dict:
        return {"ok": True, "started": started, "ttft_ms": ttft, "total_ms": 500.0, "chunks": 64, "tokens": 64,
                "usage": True, "finish": "length"}

    burst = [req(0.0 + i * 1e-4, 90.0 + i) for i in range(4)]
    steady = [req(1.0 + i, 30.0) for i in range(8)]
    figures = batch_figures([*steady, *burst], wall=10.0, extra_errors=0, wave=4)
    assert figures["ttft_first_wave_p50_ms"] >= 90
    assert figures["ttft_later_ms"] == [30.0] * 8


def test_upstream_takes_serve_paced_or_a_url(monkeypatch: pytest.MonkeyPatch) -> None:
    def parse(*argv: str):
        monkeypatch.setattr(sys, "argv", ["gateway.py", *argv])
        return parse_args()

    assert parse("--upstream", "http://127.0.0.1:8000").upstream == "http://127.0.0.1:8000"
    assert parse("--upstream", "paced").upstream == "paced"
    with pytest.raises(SystemExit):
        parse("--upstream", "vllm")                       # neither a mode nor a URL
    with pytest.raises(SystemExit):                      # a URL upstream gets its own gateway, not a running one
        parse("--upstream", "http://127.0.0.1:8000", "--gateway-url", "http://x", "--serving-url", "http://y",
              "--api-key-file", "k")


def test_stream_reading_survives_any_split_and_crlf_and_reports_http_errors() -> None:
    """The client reads raw network pieces: an event cut mid-line, several in one piece, CRLF line ends
    (allowed by SSE) and a refusal must all be counted as an OpenAI client would."""
    events = [b'data: {"choices":[{"delta":{"role":"assistant"}}]}', b'data: {"choices":[{"delta":{"content":"a"}}]}',
              b': keep-alive', b'data: {"choices":[{"delta":{"content":"b"},"finish_reason":"length"}]}',
              b'data: {"choices":[],"usage":{"completion_tokens":2}}', b"data: [DONE]"]
    wire = b"".join(e + b"\r\n\r\n" for e in events)

    async def sse(request: web.Request) -> web.StreamResponse:
        if request.headers.get("Authorization") != "Bearer k":
            return web.json_response({"error": {"message": "no key"}}, status=401)
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        for i in range(0, len(wire), 7):          # 7-byte pieces: every event is cut somewhere
            await resp.write(wire[i:i + 7])
            await asyncio.sleep(0.001)
        return resp

    async def run() -> tuple[dict, dict]:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", sse)
        async with serving(app) as port, make_session(f"http://127.0.0.1:{port}", {"Authorization": "Bearer k"}) as good, \
                make_session(f"http://127.0.0.1:{port}") as keyless:
            return await stream_chat(good, request_body("m", 2)), await stream_chat(keyless, request_body("m", 2))

    ok, refused = asyncio.run(run())
    assert ok["ok"] and ok["chunks"] == 2 and ok["tokens"] == 2 and ok["usage"] and ok["finish"] == "length"
    assert not refused["ok"] and refused["status"] == 401 and "no key" in refused["error"]


def test_paced_steps_put_every_stream_on_one_clock() -> None:
    own = Pace(ttft_s=0.025, token_s=0.015, model="paced")
    shared = Pace(ttft_s=0.025, token_s=0.015, model="paced", steps=True, epoch=100.0)
    assert own.first_token_at(100.0013) == pytest.approx(100.0263)
    # two requests a millisecond apart: the same step, the first one at or after ttft, less than a step later
    a, b = shared.first_token_at(100.0013), shared.first_token_at(100.0023)
    assert a == b == pytest.approx(100.030)
    assert shared.first_token_at(100.005) == pytest.approx(100.030)     # exactly on a step: that step
    assert shared.first_token_at(100.0051) == pytest.approx(100.045)


def test_a_stream_on_shared_steps_is_whole() -> None:
    pace = Pace(ttft_s=0.02, token_s=0.005, model="paced", steps=True, epoch=time.perf_counter())
    result = asyncio.run(_with_paced(pace, _stream(request_body("paced", 12))))
    assert result["ok"] and result["tokens"] == 12 and result["chunks"] == 12 and result["ttft_ms"] >= 20


@pytest.mark.parametrize("batch_warmup", [True, False])
def test_each_batch_follows_an_unmeasured_wave_at_its_own_concurrency(batch_warmup: bool) -> None:
    seen: list[int] = []

    @web.middleware
    async def record(request: web.Request, handler):
        if request.path == "/v1/chat/completions":
            seen.append((await request.json())["max_tokens"])
        return await handler(request)

    app = build_app(Pace(0.0, 0.0, "paced"))
    app.middlewares.append(record)

    async def run() -> list[dict]:
        async with serving(app) as port:
            target = Target("direct", f"http://127.0.0.1:{port}", "paced")
            return await bench([target], [1, 3], rounds=1, n=3, max_tokens=5, served_id="paced",
                               batch_warmup=batch_warmup)

    raw = asyncio.run(run())
    warm = BATCH_WARMUP_TOKENS
    start = [5] * WARMUP_REQUESTS
    if batch_warmup:
        assert seen == start + [warm] + [5] * 3 + [warm] * 3 + [5] * 3
    else:
        assert seen == start + [5] * 3 + [5] * 3
    assert [(r["level"], r["n"], r["tokens"]) for r in raw] == [(1, 3, 15), (3, 3, 15)]   # the wave is not counted


def test_settle_says_whether_the_processes_went_quiet() -> None:
    busy = iter(range(0, 10_000, 1))                    # a second of CPU per reading: never quiet
    quiet = Target("direct", "http://127.0.0.1:9", "m", cpu_meters={"p": lambda: 1.0})
    loud = Target("direct", "http://127.0.0.1:9", "m", cpu_meters={"p": lambda: float(next(busy))})
    settled, idle = asyncio.run(settle([quiet], window_s=0.01, max_s=0.05))
    assert settled is True and idle == {("direct", "p"): 0.0}
    settled, idle = asyncio.run(settle([loud], window_s=0.01, max_s=0.05))
    assert settled is False and idle[("direct", "p")] > 50       # its rate in cores, the baseline a batch leaves out


def test_every_target_gets_each_predecessor_in_turn() -> None:
    """Rotating one list kept each target's predecessor: direct came right after LiteLLM, the heaviest batch,
    in 5 of 6 pairs of a default run."""
    from scripts.bench.gateway import batch_orders

    targets = [Target(name, "http://127.0.0.1:9", "m") for name in ("direct", "gateway", "litellm")]
    orders = batch_orders(targets, rounds=2, levels=[1, 16, 64])
    assert len(orders) == 6 and len({tuple(t.name for t in o) for o in orders}) == 6   # each ordering once
    sequence = [t.name for o in orders for t in o]
    after = {(a, b) for a, b in zip(sequence, sequence[1:], strict=False) if a != b}
    assert {("litellm", "direct"), ("gateway", "direct")} <= after
    firsts = [o[0].name for o in orders]
    assert {firsts.count(n) for n in ("direct", "gateway", "litellm")} == {2}
