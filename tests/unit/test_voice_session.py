"""The call session's turn logic with fake components (the real stack is covered in test_voice.py):
a reply with nothing speakable in it must still be answered aloud, never with dead air."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import pytest

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


# -- turns that overlap, barge-in and the silence policy ---------------------------------------------------

class SlowDriver(Driver):
    """The pipeline takes a while; counts how many turns run in it at once."""

    def __init__(self, deltas: list[str], delay_s: float = 0.2) -> None:
        super().__init__(deltas)
        self.delay_s, self.running, self.most = delay_s, 0, 0

    async def begin(self, text, language):
        self.running += 1
        self.most = max(self.most, self.running)
        try:
            await asyncio.sleep(self.delay_s)
        finally:
            self.running -= 1
        return FakeTurn(id=text), Opened(self.deltas)


class SlowVoice(Voice):
    """Speaks one frame every 20 ms for ``frames`` frames: long enough to be talked over."""

    def __init__(self, frames: int = 50) -> None:
        super().__init__()
        self.frames = frames

    async def stream(self, text: str):
        self.said.append(text)
        for _ in range(self.frames):
            await asyncio.sleep(0.02)
            yield 16_000, b"\x01\x00" * 320


def new_session(driver, voice, events: list[dict], audio: list[bytes], **config) -> CallSession:
    async def send_json(e: dict) -> None:
        events.append(e)

    async def send_audio(b: bytes) -> None:
        audio.append(b)

    return CallSession(VoiceConfig(playback_lead_ms=40, **config), stt=None, tts=voice, fallback=None, driver=driver,
                       send_json=send_json, send_audio=send_audio,
                       restore=lambda turn, text: text.replace("<EMAIL_1>", "ada@example.org"))


def test_keypad_and_speech_at_once_make_one_turn_after_the_other() -> None:
    async def scenario() -> SlowDriver:
        driver = SlowDriver(["Okay."])
        session = new_session(driver, Voice(), [], [])
        await session.text_input("first")
        await asyncio.sleep(0.05)                    # the first turn is in the pipeline
        await asyncio.gather(session.text_input("12"), session.text_input("34#"))
        await asyncio.wait({session.turn_task})
        await session.close()
        return driver

    driver = asyncio.run(scenario())
    assert driver.most == 1                            # never two turns in the pipeline at once
    assert [t.id for t in driver.ended] == ["first", "12", "34#"]   # each stored, once


def test_a_cancelled_caller_does_not_cancel_the_turn_it_waits_for() -> None:
    """The audio pump of a call that hung up is cancelled while it waits for the running turn: the turn
    must still finish and be stored (it was cancelled with the pump, mid-pipeline)."""
    async def scenario() -> SlowDriver:
        driver = SlowDriver(["Okay."], delay_s=0.3)
        session = new_session(driver, Voice(), [], [])
        await session.text_input("first")
        await asyncio.sleep(0.05)
        pump = asyncio.create_task(session.text_input("second"))
        await asyncio.sleep(0.05)
        pump.cancel()
        await asyncio.sleep(0.5)
        await session.close()
        return driver

    driver = asyncio.run(scenario())
    assert [t.id for t in driver.ended] == ["first"]


def test_after_a_barge_in_the_assistant_can_still_speak() -> None:
    async def scenario() -> tuple[int, int]:
        audio: list[bytes] = []
        session = new_session(SlowDriver(["A long answer."], delay_s=0.0), SlowVoice(), [], audio)
        await session.text_input("hello")
        while not session.speaking:
            await asyncio.sleep(0.01)
        await session.barge_in()                     # talked over, and nothing follows (the caller was put on hold)
        await asyncio.wait({session.turn_task})
        before = len(audio)
        await session.say("We will call you back. Goodbye.")
        await session.close()
        return before, len(audio)

    before, after = asyncio.run(scenario())
    assert after - before >= 40                       # the goodbye was heard (it was silent: still muted)


def test_answering_over_the_goodbye_keeps_the_call() -> None:
    async def scenario() -> tuple[list[dict], list[str], SlowDriver]:
        events: list[dict] = []
        hung_up: list[str] = []
        driver = SlowDriver(["Yes, I am here."], delay_s=0.0)
        session = new_session(driver, SlowVoice(), events, [], silence_reprompt_s=0.1, max_reprompts=0)

        async def on_hangup() -> None:
            hung_up.append("hangup")

        session.on_hangup = on_hangup
        while not session.speaking:                  # the goodbye is being said
            await asyncio.sleep(0.01)
        await session.text_input("sorry, I'm here")
        await asyncio.wait({session.turn_task})
        await asyncio.sleep(0.3)
        await session.close()
        return events, hung_up, driver

    events, hung_up, driver = asyncio.run(scenario())
    assert [t.id for t in driver.ended] == ["sorry, I'm here"]
    assert not hung_up and not any(e["type"] == "hangup" for e in events)


@pytest.mark.parametrize("first_turn_fails", [False, True])
def test_answering_over_the_goodbye_keeps_the_call_after_a_failed_turn(first_turn_fails: bool) -> None:
    """A turn that failed before generation (a message over the cap, the database away) used to leave its
    phase set, and with it the goodbye could no longer be talked over: the caller was hung up on."""
    from gateway.errors import InvalidRequest

    class FailsFirst(SlowDriver):
        calls = 0

        async def begin(self, text: str, language: str):
            FailsFirst.calls += 1
            if first_turn_fails and FailsFirst.calls == 1:
                raise InvalidRequest("input_too_long", "too long")
            return await super().begin(text, language)

    async def scenario() -> tuple[list[dict], list[str], SlowDriver, str | None]:
        events: list[dict] = []
        hung_up: list[str] = []
        driver = FailsFirst(["Yes, I am here."], delay_s=0.0)
        session = new_session(driver, SlowVoice(frames=50), events, [], silence_reprompt_s=0.3, max_reprompts=0)

        async def on_hangup() -> None:
            hung_up.append("hangup")

        session.on_hangup = on_hangup
        await session.text_input("a first question")
        await asyncio.wait({session.turn_task})
        phase = session.phase
        while not (session.speaking and session.turn_task is not None and not session.turn_task.done()):
            await asyncio.sleep(0.01)                # the goodbye is being said
        await session.text_input("sorry, I'm here")
        await asyncio.wait({session.turn_task})
        await asyncio.sleep(0.3)
        await session.close()
        return events, hung_up, driver, phase

    events, hung_up, driver, phase = asyncio.run(scenario())
    assert phase is None
    assert not hung_up and not any(e["type"] == "hangup" for e in events)
    assert "sorry, I'm here" in [t.id for t in driver.ended]


def test_captions_show_values_not_placeholders() -> None:
    async def scenario() -> tuple[list[dict], Voice]:
        events: list[dict] = []
        voice = Voice()
        session = new_session(SlowDriver(["I'll write to <EMA", "IL_1> today."], delay_s=0.0), voice, events, [])
        await session.text_input("mail me")
        await asyncio.wait({session.turn_task})
        await session.close()
        return events, voice

    events, voice = asyncio.run(scenario())
    captions = [e["delta"] for e in events if e["type"] == "assistant_text" and not e.get("system")]
    assert "".join(captions) == "I'll write to ada@example.org today." and not any("<" in c for c in captions)
    assert voice.said == ["I'll write to ada@example.org today."]


def test_the_start_language_is_a_whisper_code() -> None:
    """A browser's navigator.language ("en-US") is what clients send: it becomes "en". A code speech-to-text
    does not know is refused at start (it used to fail every utterance as stt_unavailable)."""
    from faster_whisper.tokenizer import _LANGUAGE_CODES
    from pydantic import ValidationError

    from gateway.api.voice import WHISPER_LANGUAGES, StartMessage

    assert set(_LANGUAGE_CODES) == WHISPER_LANGUAGES
    assert StartMessage(type="start", language="en-US").language == "en"
    assert StartMessage(type="start", language="pt_BR").language == "pt"
    assert StartMessage(type="start", language="haw").language == "haw"
    assert StartMessage(type="start").language is None
    with pytest.raises(ValidationError, match="ISO 639-1"):
        StartMessage(type="start", language="xx-YY")


def test_a_voice_frame_webrtcvad_cannot_take_is_refused_at_start() -> None:
    from pydantic import ValidationError

    from gateway.config import Settings

    assert Settings(voice_frame_ms=30).voice_frame_ms == 30
    with pytest.raises(ValidationError, match="ENCLAVE_VOICE_FRAME_MS"):
        Settings(voice_frame_ms=40)
