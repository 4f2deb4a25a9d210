"""The flow's words around an LLM answer (a digression's "now, back to where we were"): the prefix first, the
suffix after the model's last words even when the finishing chunk carries words itself."""

from __future__ import annotations

import asyncio

from gateway.clients.llm import OpenedStream, chunk_event
from gateway.dialogue.pipeline import framed


def stream(events) -> OpenedStream:
    async def rest():
        yield events[1:]

    return OpenedStream("up", "m", False, False, events[:1], rest())


def collect(opened: OpenedStream) -> tuple[str, list]:
    async def run():
        evs = [ev async for ev in opened]
        return "".join(ev.content for ev in evs), [ev.finish_reason for ev in evs]

    return asyncio.run(run())


def test_prefix_and_suffix_wrap_the_answer() -> None:
    events = [chunk_event("c", "m", {"role": "assistant", "content": "Fees "}, None),
              chunk_event("c", "m", {"content": "are low."}, None), chunk_event("c", "m", {}, "stop")]
    text, finishes = collect(framed(stream(events), "Sure. ", " Back to it?", "c"))
    assert text == "Sure. Fees are low. Back to it?" and finishes[-1] == "stop" and finishes.count("stop") == 1


def test_the_suffix_follows_words_in_the_finishing_chunk() -> None:
    events = [chunk_event("c", "m", {"role": "assistant", "content": "Fees "}, None),
              chunk_event("c", "m", {"content": "are low."}, "stop")]
    text, finishes = collect(framed(stream(events), None, " Back to it?", "c"))
    assert text == "Fees are low. Back to it?" and finishes[-1] == "stop" and finishes.count("stop") == 1


def test_a_stream_that_breaks_off_gets_no_suffix() -> None:
    events = [chunk_event("c", "m", {"role": "assistant", "content": "Fees "}, None)]
    text, _ = collect(framed(stream(events), None, " Back to it?", "c"))
    assert text == "Fees "
