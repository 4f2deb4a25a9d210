"""The LLM chain against a real aiohttp server on loopback that frames its stream the way other
OpenAI-compatible servers do: CRLF line ends (sse-starlette's default) written a few bytes at a time, so a
CRLF is cut between its CR and LF. Before the gateway read only LF-framed events, such a stream carried no
token and the turn fell through to the apology. Also the chain's three clocks: an upstream that does not
accept the connection or sends no token in time is retried, then left for the next link; one that outruns
the total timeout ends the reply as failed (no retry after the first token)."""

from __future__ import annotations

import asyncio
import json
import socket

import pytest
from aiohttp import web

from gateway.clients.breaker import CircuitBreaker
from gateway.clients.llm import ChunkEvent, OpenedStream, Timeouts, UpstreamConfig, build_chain
from gateway.observability import Metrics
from tests.loopback import serving

WORDS = ["Good", " morning", ",", " Ada", "."]


async def _sse(request: web.Request) -> web.StreamResponse:
    """An event-stream response, headers sent: what every stub below writes its stream on."""
    resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await resp.prepare(request)
    return resp


def _events() -> bytes:
    chunks = [b'{"id":"c","choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]}']
    chunks += [b'{"id":"c","choices":[{"index":0,"delta":{"content":"%s"},"finish_reason":null}]}' % w.encode()
               for w in WORDS]
    chunks += [b'{"id":"c","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}', b"[DONE]"]
    return b"".join(b"data: " + c + b"\r\n\r\n" for c in chunks)


def test_a_crlf_framed_stream_cut_anywhere_reaches_the_turn_whole() -> None:
    async def chat(request: web.Request) -> web.StreamResponse:
        resp = await _sse(request)
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


def _chunk(content: str | None = None, role: bool = False, finish: str | None = None) -> bytes:
    delta = {"role": "assistant", "content": ""} if role else ({"content": content} if content is not None else {})
    body = json.dumps({"id": "c", "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
    return b"data: " + body.encode() + b"\n\n"


async def _run_chain(chat, timeouts: Timeouts) -> tuple[str, OpenedStream, Metrics]:
    """Open a turn on a chain (primary on a loopback server running ``chat``, then the apology) and read it."""
    app = web.Application()
    app.router.add_post("/v1/chat/completions", chat)
    metrics = Metrics()
    async with serving(app) as port:
        chain, sessions = build_chain([UpstreamConfig(name="primary"), UpstreamConfig(name="apology", kind="canned")],
                                      f"http://127.0.0.1:{port}", "m", timeouts, CircuitBreaker, metrics)
        try:
            opened = await chain.open({"model": "m", "messages": [{"role": "user", "content": "hi"}], "stream": True})
            text = "".join([ev.content async for ev in opened])
            await opened.aclose()
        finally:
            for s in sessions:
                await s.close()
    return text, opened, metrics


def _errors(metrics: Metrics, kind: str) -> float:
    return metrics.registry.get_sample_value("enclave_upstream_errors_total",
                                             {"role": "llm", "upstream": "primary", "kind": kind}) or 0.0


async def _write_all(resp: web.StreamResponse, pieces, ends: list[str]) -> None:
    """Write ``pieces`` (pausing as each says), noting in ``ends`` whether the stub got to its end or the
    gateway hung up on it first: a gateway that waited for the upstream instead of its clock would let
    every stub finish."""
    try:
        for pause, piece in pieces:
            await asyncio.sleep(pause)
            await resp.write(piece)
    except ConnectionError:
        ends.append("cut")
        raise
    ends.append("finished")


def test_no_first_token_in_time_falls_back_after_the_retry() -> None:
    ends: list[str] = []

    async def stalls(request: web.Request) -> web.StreamResponse:
        resp = await _sse(request)
        await resp.write(_chunk(role=True))        # headers and a role-only chunk: not a token
        # then comments only: the connection is alive (so no read timeout fires), but no token ever comes
        await _write_all(resp, [(0.1, b": keep-alive\n\n")] * 25, ends)
        return resp

    text, opened, metrics = asyncio.run(_run_chain(stalls, Timeouts(first_token_s=0.3, retries=1, backoff_s=0.05)))
    assert opened.upstream == "apology" and opened.fallback and text
    assert ends == ["cut", "cut"] and _errors(metrics, "first_token_timeout") == 2


def test_a_reply_past_the_total_timeout_ends_as_failed_midway() -> None:
    ends: list[str] = []

    async def slow(request: web.Request) -> web.StreamResponse:
        resp = await _sse(request)
        await resp.write(_chunk(role=True) + _chunk("Once"))
        await _write_all(resp, [(0.05, _chunk(" more"))] * 50 + [(0, _chunk(finish="stop") + b"data: [DONE]\n\n")], ends)
        return resp

    text, opened, metrics = asyncio.run(_run_chain(slow, Timeouts(total_s=0.4)))
    assert opened.upstream == "primary" and opened.failed_midway
    assert text.startswith("Once") and 0 < text.count(" more") < 50
    assert ends == ["cut"] and _errors(metrics, "total_timeout") == 1


def test_an_upstream_that_never_accepts_times_out_on_connect_and_falls_back() -> None:
    async def scenario() -> tuple[OpenedStream, Metrics]:
        # A listener whose accept queue is full: the kernel drops further SYNs, so a connect hangs (as to a
        # host that went away) rather than being refused.
        with socket.socket() as listener, socket.socket() as filler:
            listener.bind(("127.0.0.1", 0))
            listener.listen(0)
            filler.connect(listener.getsockname())
            metrics = Metrics()
            chain, sessions = build_chain([UpstreamConfig(name="primary"), UpstreamConfig(name="apology", kind="canned")],
                                          f"http://127.0.0.1:{listener.getsockname()[1]}", "m",
                                          Timeouts(connect_s=0.3, retries=1, backoff_s=0.05), CircuitBreaker, metrics)
            try:
                opened = await chain.open({"model": "m", "messages": [{"role": "user", "content": "hi"}], "stream": True})
            finally:
                for s in sessions:
                    await s.close()
            return opened, metrics

    opened, metrics = asyncio.run(scenario())
    assert opened.upstream == "apology" and opened.fallback
    assert _errors(metrics, "connect_timeout") == 2


def test_an_error_status_whose_body_breaks_off_still_falls_back() -> None:
    """A proxy in front of the model answers 502 and resets the connection mid-body: reading the body
    failed outside the chain's error handling, so the client got a 500 with no fallback."""
    async def broken(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(status=502, headers={"Content-Length": "1000", "Content-Type": "text/plain"})
        await resp.prepare(request)
        await resp.write(b"Bad Gateway")
        assert request.transport is not None
        request.transport.close()
        return resp

    text, opened, metrics = asyncio.run(_run_chain(broken, Timeouts(retries=1, backoff_s=0.05)))
    assert opened.upstream == "apology" and opened.fallback and text
    assert _errors(metrics, "http_status") == 2


def test_a_pooled_connection_closed_under_the_request_is_sent_again_at_no_cost() -> None:
    """vLLM's server closes a connection after 5 s idle; the gateway's pool keeps them 60 s. A request sent
    on one just as the upstream closes it fails unsent. The chain sends it again on a fresh connection at
    once: no backoff, no upstream error, no breaker failure (a burst after a quiet spell used to count one
    per pooled connection, enough to open the breaker). A connection closed twice in a row is a failure."""
    async def scenario(closes_every_time: bool) -> tuple[OpenedStream | str, list[int], Metrics, int]:
        served: list[int] = []   # requests read on each connection

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            served.append(0)
            mine = len(served) - 1
            try:
                while True:
                    head = await reader.readuntil(b"\r\n\r\n")
                    length = int(next(line.split(b":")[1] for line in head.split(b"\r\n")
                                      if line.lower().startswith(b"content-length")))
                    await reader.readexactly(length)
                    served[mine] += 1
                    if served[mine] > 1 or closes_every_time:   # an idle timeout that fires as the request lands
                        return
                    body = _chunk(role=True) + _chunk("Hello") + _chunk(finish="stop") + b"data: [DONE]\n\n"
                    writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nContent-Length: %d\r\n\r\n%s"
                                 % (len(body), body))
                    await writer.drain()
            except (asyncio.IncompleteReadError, ConnectionError):
                pass
            finally:
                writer.close()

        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        metrics = Metrics()
        chain, sessions = build_chain([UpstreamConfig(name="primary"), UpstreamConfig(name="apology", kind="canned")],
                                      f"http://127.0.0.1:{port}", "m", Timeouts(retries=0), CircuitBreaker, metrics)
        request = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "stream": True}
        try:
            first = await chain.open(request)
            _ = [ev async for ev in first]
            await first.aclose()
            while chain._draining:                  # the reply's last bytes read: its connection is pooled
                await asyncio.sleep(0.01)
            second = await chain.open(request)
            text = "".join([ev.content async for ev in second])
            await second.aclose()
        finally:
            for s in sessions:
                await s.close()
            server.close()
        return (second if text == "Hello" else text), served, metrics, chain.upstreams[0].breaker._failures

    opened, served, metrics, failures = asyncio.run(scenario(closes_every_time=False))
    assert isinstance(opened, OpenedStream) and opened.upstream == "primary" and not opened.fallback
    assert served == [2, 1]            # the second request went out on the pooled connection, then on a new one
    assert _errors(metrics, "connect") == 0 and failures == 0

    opened, served, metrics, failures = asyncio.run(scenario(closes_every_time=True))
    assert _errors(metrics, "connect") >= 1 and failures >= 1


# -- upstreams that break their stream ------------------------------------------------------------------

NOT_CHUNKS = [b"42", b"null", b'"some error"', b"[1]", b'{"choices":[null]}', b'{"choices":{"x":1}}',
              b'{"choices":[{"delta":{"content":5}}]}', b'{"choices":[{"delta":"hi"}]}', b'{"usage":7}',
              b'{"choices":[{"delta":{"tool_calls":[{"index":null}]}}]}',
              b'{"choices":[{"delta":{"tool_calls":[{"index":-1,"function":{"name":"x"}}]}}]}',
              b'{"choices":[{"delta":{"tool_calls":[{"index":0,"function":{"arguments":{}}}]}}]}']


def test_a_payload_that_is_json_but_no_chunk_is_a_bad_chunk() -> None:
    """Valid JSON of another shape used to raise TypeError or AttributeError, which no handler expected:
    before the first token a 500 with no fallback, after it a stream cut without [DONE] and no turn kept."""
    for raw in NOT_CHUNKS:
        with pytest.raises(ValueError):
            ChunkEvent.parse(raw)
    ev = ChunkEvent.parse(b'{"id":"c","choices":[{"index":0,"delta":{"tool_calls":[{"index":1,"id":"t",'
                          b'"function":{"name":"f","arguments":"{}"}}]},"finish_reason":null}]}')
    assert ev.tool_calls and ev.tool_calls[0]["index"] == 1


def test_a_first_chunk_of_the_wrong_shape_falls_back() -> None:
    async def odd(request: web.Request) -> web.StreamResponse:
        resp = await _sse(request)
        await resp.write(b"data: null\n\n")
        return resp

    text, opened, metrics = asyncio.run(_run_chain(odd, Timeouts(retries=0)))
    assert opened.upstream == "apology" and opened.fallback and text
    assert _errors(metrics, "bad_chunk") == 1


def test_text_read_together_with_a_broken_chunk_still_reaches_the_client() -> None:
    async def breaks(request: web.Request) -> web.StreamResponse:
        resp = await _sse(request)
        await resp.write(_chunk(role=True) + _chunk("Hello"))
        await asyncio.sleep(0.05)
        await resp.write(_chunk(" there") + b"data: null\n\n" + _chunk(" never"))   # one network read
        return resp

    text, opened, metrics = asyncio.run(_run_chain(breaks, Timeouts()))
    assert text == "Hello there" and opened.failed_midway and _errors(metrics, "midstream") == 1


def test_an_upstream_that_pings_but_stalls_ends_at_the_total_timeout() -> None:
    """sse-starlette sends a comment every 15 s: each one resets the read timeout, and a deadline checked
    only when a chunk arrives never came. The total timeout is a timer: the reply ends as failed on time."""
    ends: list[str] = []

    async def stalls(request: web.Request) -> web.StreamResponse:
        resp = await _sse(request)
        await resp.write(_chunk(role=True) + _chunk("Once"))
        await _write_all(resp, [(0.05, b": ping\r\n\r\n")] * 100, ends)
        return resp

    text, opened, metrics = asyncio.run(_run_chain(stalls, Timeouts(total_s=0.5)))
    assert text == "Once" and opened.failed_midway and _errors(metrics, "total_timeout") == 1
    assert ends == ["cut"]     # hung up on the stub mid-pings: it would have pinged for 5 s and finished


def test_a_stream_that_ends_before_its_finish_is_failed_and_one_cut_after_it_is_whole() -> None:
    async def truncated(request: web.Request) -> web.StreamResponse:
        resp = await _sse(request)
        await resp.write(_chunk(role=True) + _chunk("Half an"))
        await asyncio.sleep(0.05)
        await resp.write(_chunk(" answer"))
        return resp                                  # a clean end of body: no finish_reason, no [DONE]

    text, opened, metrics = asyncio.run(_run_chain(truncated, Timeouts()))
    assert text == "Half an answer" and opened.failed_midway and _errors(metrics, "truncated") == 1

    async def cut_after_finish(request: web.Request) -> web.StreamResponse:
        resp = await _sse(request)
        await resp.write(_chunk(role=True) + _chunk("Whole"))
        await asyncio.sleep(0.05)
        await resp.write(_chunk(finish="stop"))
        await asyncio.sleep(0.05)
        assert request.transport is not None
        request.transport.close()                    # reset before the usage chunk and [DONE]
        return resp

    text, opened, metrics = asyncio.run(_run_chain(cut_after_finish, Timeouts()))
    assert text == "Whole" and not opened.failed_midway   # the answer had finished: nothing to apologise for
