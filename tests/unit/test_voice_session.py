"""The call session's turn logic with fake components (the real stack is covered in test_voice.py):
a reply with nothing speakable in it must still be answered aloud, never with dead air."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from gateway.voice.session import CallSession, VoiceConfig


@dataclass
class FakeTurn:
    id: str = "t1"
    status: str = "complete"
    reply: list[str] = field(default_factory=list)
    total_s: float = 0.0
    voice_latency: dict = field(default_factory=dict)

    @property
    def reply_text(self) -> str:
        return "".join(self.reply)


@dataclass
class Delta:
    content: str


class Opened:
    def __init__(self, deltas: list[str]) -> None:
        self.deltas = deltas

    def __aiter__(self):
        return self._gen()

    async def _gen(self):
        for d in self.deltas:
            yield Delta(d)

    async def aclose(self) -> None:
        pass


class Driver:
    def __init__(self, deltas: list[str]) -> None:
        self.deltas, self.ended = deltas, []

    async def begin(self, text, language):
        return FakeTurn(), Opened(self.deltas)

    async def end(self, turn) -> None:
        self.ended.append(turn)

    def absorb(self, turn, event) -> None:
        pass


class Voice:
    name = "fake"

    def __init__(self) -> None:
        self.said: list[str] = []

    async def stream(self, text: str):
        self.said.append(text)
        yield 16_000, b"\x01\x00" * 320


async def run_turn(deltas: list[str]) -> tuple[Voice, list[dict], Driver]:
    events: list[dict] = []
    audio: list[bytes] = []
    voice, driver = Voice(), Driver(deltas)

    async def send_json(e: dict) -> None:
        events.append(e)

    async def send_audio(b: bytes) -> None:
        audio.append(b)

    session = CallSession(VoiceConfig(playback_lead_ms=1000), stt=None, tts=voice, fallback=None, driver=driver,
                          send_json=send_json, send_audio=send_audio)
    await session.text_input("hello")
    await session.turn_task
    session.closed = True
    session._watch.cancel()
    assert audio, "the caller heard nothing"
    return voice, events, driver


def test_a_reply_with_nothing_speakable_is_answered_with_an_apology() -> None:
    voice, events, driver = asyncio.run(run_turn(["  ", "…"]))
    assert voice.said == [VoiceConfig().texts.no_answer]
    assert events[-1]["type"] == "turn_end" and driver.ended[0].status == "complete"


def test_a_normal_reply_is_spoken_without_the_apology() -> None:
    voice, _, driver = asyncio.run(run_turn(["Your balance ", "is ten euros."]))
    assert voice.said == ["Your balance is ten euros."]
    assert driver.ended[0].reply == ["Your balance is ten euros."]
