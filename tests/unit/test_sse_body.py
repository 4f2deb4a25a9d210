"""The SSE response with a scripted upstream, driven through ASGI: keep-alive comments in silences, the
usage chunk only when asked for, the turn recorded before [DONE], and on disconnect an interrupted turn
that keeps exactly what was written."""

from __future__ import annotations

import asyncio
import json
from types import SimpleNamespace

from gateway.api.chat import sse_response
from gateway.api.sse import DONE, KEEPALIVE
from gateway.clients.llm import ChunkEvent, OpenedStream
from gateway.dialogue.turn import Turn
from gateway.observability import Metrics


def chunk(content: str = "", finish: str | None = None, usage: dict | None = None) -> ChunkEvent:
    body = {"id": "c", "choices": [] if usage else [{"index": 0, "delta": {"content": content}, "finish_reason": finish}],
            "usage": usage}
    return ChunkEvent.parse(json.dumps(body).encode())


def scripted(events: list[tuple[float, ChunkEvent]]) -> OpenedStream:
    async def rest():
        for delay, ev in events:
            await asyncio.sleep(delay)
            yield [ev]

    closed = []

    async def close() -> None:
        closed.append(True)

    opened = OpenedStream("primary", "m", False, False, [], rest(), close)
    opened.closed = closed  # type: ignore[attr-defined]
    return opened


class FakePipeline:
    def __init__(self) -> None:
        self.finished: list[tuple[str, str]] = []

    async def finish(self, turn: Turn) -> None:
        self.finished.append((turn.status, turn.reply_text))


def state(keepalive_s: float) -> SimpleNamespace:
    return SimpleNamespace(metrics=Metrics(), settings=SimpleNamespace(sse_keepalive_s=keepalive_s),
                           pipeline=FakePipeline(), background=set(), saving=set())


def turn() -> Turn:
    return Turn(request_id="r", tenant_id="t", session={"id": "s"})


async def run_response(st: SimpleNamespace, t: Turn, opened: OpenedStream, include_usage: bool,
                       disconnect_after: float | None = None) -> list[bytes]:
    """Drive the ASGI response as uvicorn would; returns the body pieces written."""
    written: list[bytes] = []
    started = []

    async def receive() -> dict:
        if disconnect_after is None:
            await asyncio.Event().wait()  # the client never leaves
        await asyncio.sleep(disconnect_after)
        return {"type": "http.disconnect"}

    async def send(message: dict) -> None:
        if message["type"] == "http.response.start":
            started.append(message)
        elif message.get("body"):
            written.append(message["body"])
            if message["body"] == DONE:
                assert st.pipeline.finished == [("complete", "Hello")]  # stored before [DONE]

    response = sse_response(st, t, opened, include_usage, {"X-Session-Id": "s"})
    await response({"type": "http"}, receive, send)
    await asyncio.gather(*st.saving)
    assert started[0]["status"] == 200 and (b"x-session-id", b"s") in started[0]["headers"]
    return written


def test_keepalive_usage_and_record_before_done() -> None:
    st, t = state(0.05), turn()
    events = [(0.0, chunk("Hel")), (0.2, chunk("lo", "stop")), (0.0, chunk(usage={"completion_tokens": 2}))]
    out = asyncio.run(run_response(st, t, scripted(events), include_usage=False))
    assert KEEPALIVE in out  # the 0.2 s silence got at least one comment
    data = [json.loads(p[6:]) for p in out if p.startswith(b"data: {")]
    assert [d["choices"][0]["delta"]["content"] for d in data] == ["Hel", "lo"]  # no usage chunk: not asked for
    assert out[-1] == DONE and t.completion_tokens == 2


def test_client_going_away_records_an_interrupted_turn() -> None:
    st, t = state(10), turn()
    opened = scripted([(0.0, chunk("one ")), (0.0, chunk("two ")), (5.0, chunk("never"))])
    out = asyncio.run(run_response(st, t, opened, include_usage=True, disconnect_after=0.2))
    assert len(out) == 2 and DONE not in out
    assert st.pipeline.finished == [("interrupted", "one two ")]  # exactly what was written
    assert opened.closed == [True]  # type: ignore[attr-defined]  # the upstream request was closed


class SlowPipeline(FakePipeline):
    async def finish(self, turn: Turn) -> None:
        await asyncio.sleep(0.3)          # the save is still running when the client leaves
        await super().finish(turn)


def test_a_client_leaving_while_the_turn_is_saved_does_not_lose_it() -> None:
    """Clients close the stream on finish_reason, before [DONE]. The save was cancelled with the response
    then, and on_disconnect skipped it as already finished: the turn was never stored."""
    st, t = state(10), turn()
    st.pipeline = SlowPipeline()
    opened = scripted([(0.0, chunk("Hello", "stop"))])

    async def scenario() -> list[bytes]:
        written: list[bytes] = []

        async def receive() -> dict:
            await asyncio.sleep(0.1)      # after the last chunk, during the save
            return {"type": "http.disconnect"}

        async def send(message: dict) -> None:
            if message.get("body"):
                written.append(message["body"])

        await sse_response(st, t, opened, False, {})({"type": "http"}, receive, send)
        await asyncio.gather(*st.saving)
        return written

    out = asyncio.run(scenario())
    assert DONE not in out
    assert st.pipeline.finished == [("complete", "Hello")]   # stored once, whole


def test_include_usage_gets_exactly_one_usage_chunk() -> None:
    """Asked for, the usage chunk comes once: the upstream's when it sent one, else (a canned reply, a
    stream that broke off) one from the turn's own counts, before [DONE]."""
    from gateway.clients.llm import canned_chunks

    def usage_chunks(out: list[bytes]) -> list[dict]:
        events = [e for piece in out for e in piece.split(b"\n\n") if e.startswith(b"data: {")]
        return [d for d in (json.loads(e[6:]) for e in events) if d.get("usage")]

    st, t = state(10), turn()
    upstream = [(0.0, chunk("Hello", "stop")), (0.0, chunk(usage={"prompt_tokens": 3, "completion_tokens": 1}))]
    out = asyncio.run(run_response(st, t, scripted(upstream), include_usage=True))
    assert [u["usage"]["completion_tokens"] for u in usage_chunks(out)] == [1]

    st, t = state(10), turn()
    t.prompt_tokens = 7
    canned = OpenedStream("apology", "enclave", True, True, canned_chunks("Hello", "enclave", "c"), None)
    out = asyncio.run(run_response(st, t, canned, include_usage=True))
    (usage,) = usage_chunks(out)
    assert usage["choices"] == [] and usage["usage"]["prompt_tokens"] == 7 and out[-1] == DONE
    assert json.loads(out[-2].removeprefix(b"data: ")) == usage      # the last event before [DONE]


def test_a_client_leaving_after_the_finish_chunk_keeps_a_complete_turn() -> None:
    """The gateway asks the upstream for usage, which vLLM sends after the finish chunk, as its own event. A
    client that hangs up on finish_reason then leaves while the gateway waits for that chunk and [DONE]: it
    had the whole answer, so the turn is complete, not interrupted."""
    st, t = state(10), turn()
    opened = scripted([(0.0, chunk("Hel")), (0.0, chunk("lo", "stop")), (5.0, chunk(usage={"completion_tokens": 2}))])
    out = asyncio.run(run_response(st, t, opened, include_usage=True, disconnect_after=0.2))
    assert DONE not in out and st.pipeline.finished == [("complete", "Hello")]
    assert opened.closed == [True]  # type: ignore[attr-defined]


def test_a_non_streamed_reply_whose_client_left_keeps_no_tool_call() -> None:
    """Nothing reached the client: a tool call it never saw must not be stored, or the session's next turn
    would show the model an assistant call that no tool result answers."""
    from gateway.api.chat import collect_unless_gone

    call = {"id": "c", "choices": [{"index": 0, "delta": {"tool_calls": [
        {"index": 0, "id": "call_1", "type": "function", "function": {"name": "get_balance", "arguments": "{}"}}]},
        "finish_reason": None}]}
    opened = scripted([(0.0, ChunkEvent.parse(json.dumps(call).encode())), (5.0, chunk(finish="tool_calls"))])

    async def receive() -> dict:
        await asyncio.sleep(0.2)
        return {"type": "http.disconnect"}

    t = turn()
    assert asyncio.run(collect_unless_gone(SimpleNamespace(receive=receive), opened, t)) is False
    assert t.status == "interrupted" and t.reply == [] and t.tool_calls == []
