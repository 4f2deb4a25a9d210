"""One spoken conversation: audio in → VAD endpointing → STT → the turn pipeline → LLM tokens → sentences →
TTS per sentence (the next one synthesised while the current one plays) → paced audio out.

Four small concurrent pieces per assistant turn, joined by queues, so each stage starts as soon as the
previous one has something: the LLM reader (tokens → sentences), the TTS worker (sentences → audio
frames), the player (frames out at real-time pace) and, always, the listener (``feed``). Pacing matters:
audio is sent no faster than it plays (plus a small lead), so a barge-in can stop it within one frame.

Barge-in is a first-class event that overtakes queued work: caller speech longer than the threshold
while the assistant speaks cancels generation and synthesis at once, drops queued audio, and the turn is
stored with only the text that was actually played (status ``interrupted``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, Protocol

from gateway.clients.speech import SpeechUnavailable, Transcript
from gateway.dialogue.spoken import spoken
from gateway.errors import EnclaveError
from gateway.safety.redact import split_partial_placeholder
from gateway.voice import codec
from gateway.voice.frames import FrameBuffer
from gateway.voice.resample import StreamResampler
from gateway.voice.sentences import SentenceSplitter
from gateway.voice.vad import BargeInDetector, EndpointConfig, Endpointer, VadEvent

log = logging.getLogger("enclave.gateway.voice")

VAD_RATE = 16_000          # what VAD and STT get, whatever the caller sends
END = b""                  # end of one sentence's audio in the player's queue


class TurnDriver(Protocol):
    """The API layer's side: run the turn pipeline for a transcript, and record the turn at the end."""

    async def begin(self, text: str, language: str | None) -> tuple[Any, Any]: ...   # (Turn, OpenedStream)

    async def end(self, turn: Any) -> None: ...

    def absorb(self, turn: Any, event: Any) -> None: ...   # what the turn learns from one stream event


class Speaker(Protocol):
    name: str

    def stream(self, text: str) -> AsyncIterator[tuple[int, bytes]]: ...


@dataclass(frozen=True)
class VoiceTexts:
    """What the assistant says on its own (not stored as turns)."""

    say_again: str = "Sorry, I didn't catch that. Could you say it again?"
    still_there: str = "Are you still there?"
    goodbye: str = "I'll end the call now. Goodbye."
    broke_off: str = "Sorry, I lost my train of thought. Could you ask again?"
    callback: str = "A colleague will call you back as soon as possible. Goodbye."
    no_answer: str = "Sorry, I don't have an answer to that. Could you put it another way?"


@dataclass
class VoiceConfig:
    in_rate: int = 16_000
    out_rate: int = 16_000
    encoding: str = "pcm16"                     # pcm16 | mulaw | alaw, both directions
    frame_ms: int = 20
    endpoint: EndpointConfig = field(default_factory=EndpointConfig)
    barge_in_ms: int = 200
    playback_lead_ms: int = 60                  # audio sent ahead of real time (jitter margin)
    silence_reprompt_s: float = 8.0             # after the assistant spoke, silence this long → "are you still there?"
    max_reprompts: int = 2                      # … this many times, then hang up
    language: str | None = None
    texts: VoiceTexts = field(default_factory=VoiceTexts)


@dataclass
class Stamps:
    """Monotonic times of one turn's milestones; ``latency()`` turns them into the per-stage breakdown."""

    speech_end: float = 0.0
    endpoint: float = 0.0
    transcript: float = 0.0
    prepared: float | None = None      # the pipeline's stages done, the LLM asked
    first_token: float | None = None
    first_sentence: float | None = None
    first_tts_byte: float | None = None
    first_audio: float | None = None

    def latency(self) -> dict[str, float]:
        def ms(a: float | None, b: float | None) -> float | None:
            return None if a is None or b is None else round((b - a) * 1000, 1)

        prepared = self.prepared if self.prepared is not None else self.transcript
        out = {"endpoint_ms": ms(self.speech_end, self.endpoint), "stt_ms": ms(self.endpoint, self.transcript),
               "pipeline_ms": ms(self.transcript, prepared),
               "first_token_ms": ms(prepared, self.first_token),
               "first_sentence_ms": ms(self.first_token, self.first_sentence),
               "tts_first_byte_ms": ms(self.first_sentence, self.first_tts_byte),
               "first_audio_ms": ms(self.first_tts_byte, self.first_audio),
               "voice_to_voice_ms": ms(self.speech_end, self.first_audio)}
        # The components' own time: the endpointing window, STT, the LLM's first token, the first sentence's
        # tokens, the first TTS chunk. What is left of voice-to-voice is ours: the pipeline's stages
        # (database, guard, dialogue, context) and the hand-offs between the pieces of the call.
        parts = [out[k] for k in ("endpoint_ms", "stt_ms", "first_token_ms", "first_sentence_ms", "tts_first_byte_ms")]
        if out["voice_to_voice_ms"] is not None and all(p is not None for p in parts):
            out["overhead_ms"] = round(out["voice_to_voice_ms"] - sum(parts), 1)
        return {k: v for k, v in out.items() if v is not None}


@dataclass
class Playback:
    """What the player has sent of one turn: per sentence, frames sent and whether it finished."""

    sentences: list[str] = field(default_factory=list)
    frames_sent: dict[int, int] = field(default_factory=dict)
    frames_total: dict[int, int] = field(default_factory=dict)
    finished: set[int] = field(default_factory=set)
    frame_s: float = 0.02

    def played_text(self) -> str:
        """Whole sentences played, then the played share of the one that was cut (at a word boundary)."""
        out = []
        for i, sentence in enumerate(self.sentences):
            if i in self.finished:
                out.append(sentence)
                continue
            sent = self.frames_sent.get(i, 0)
            if sent:
                # Still being synthesised: estimate its length from the text (~14 characters a second).
                estimate = int(len(sentence) / 14.0 / self.frame_s) + 1
                total = max(self.frames_total.get(i, estimate), sent)
                words = sentence.split()
                keep = int(len(words) * sent / total)
                if keep:
                    out.append(" ".join(words[:keep]) + " …")
            break
        return " ".join(out)


class CallSession:
    def __init__(self, config: VoiceConfig, *, stt, tts: Speaker, fallback: Speaker | None, driver: TurnDriver,
                 send_json: Callable[[dict], Awaitable[None]], send_audio: Callable[[bytes], Awaitable[None]],
                 restore: Callable[[Any, str], str] | None = None, metrics=None) -> None:
        self.config, self.stt, self.tts, self.fallback, self.driver = config, stt, tts, fallback, driver
        self.send_json, self.send_audio, self.restore, self.metrics = send_json, send_audio, restore, metrics
        self.resampler = StreamResampler(config.in_rate, VAD_RATE) if config.in_rate != VAD_RATE else None
        self.frames = FrameBuffer(VAD_RATE, config.endpoint.frame_ms)
        self.endpointer = Endpointer(config.endpoint)
        self.barge = BargeInDetector(VAD_RATE, config.endpoint.frame_ms, config.barge_in_ms)
        self.turn_task: asyncio.Task | None = None
        self._turn_lock = asyncio.Lock()
        self.speaking = False          # audio of the assistant is going out
        self.muted = False             # barge-in: the player sends nothing more
        self.closed = False
        self.last_activity = time.monotonic()
        self.reprompts = 0
        self._clock = (0.0, time.monotonic())   # (stream ms, monotonic) of the newest frame
        self._watch = asyncio.create_task(self._silence_watch())
        self.turns_done = 0
        self._carry = b""
        self.phase: str | None = None      # stt | pipeline | speaking | ending (of the current turn)
        self.on_hangup: Callable[[], Awaitable[None]] | None = None
        self.paused = False            # on hold or being transferred: input is ignored and nobody is reprompted
        # Frames sent after the caller's player ran dry: ``late`` while the frame was ready (our scheduling fell
        # behind), ``underrun`` while it was not (synthesis slower than playback). Both are gaps a caller hears.
        self.playout = {"frames": 0, "late": 0, "underrun": 0}

    # -- audio in -----------------------------------------------------------------------------------------

    async def feed(self, data: bytes) -> None:
        """Caller audio, any chunk size, in the session's encoding and rate."""
        if self.closed or self.paused or not data:
            return
        if self.config.encoding == "mulaw":
            pcm = codec.ulaw_decode(data)
        elif self.config.encoding == "alaw":
            pcm = codec.alaw_decode(data)
        else:   # a chunk may end mid-sample: keep the odd byte for the next one
            data = self._carry + data
            cut = len(data) - len(data) % 2
            pcm, self._carry = data[:cut], data[cut:]
        if self.resampler is not None:
            pcm = self.resampler.process(pcm)
        for frame in self.frames.push(pcm):
            now = time.monotonic()
            if self.speaking and not self.muted and self.barge.push_frame(frame):
                await self.barge_in()
            for event in self.endpointer.push_frame(frame):
                await self._on_vad(event, now)
            self._clock = (self.endpointer.stream_ms, now)

    async def _on_vad(self, event: VadEvent, now: float) -> None:
        if event.kind == "speech_start":
            self.last_activity, self.reprompts = now, 0
            await self.send_json({"type": "speech_start"})
        elif event.kind == "utterance":
            self.last_activity = now
            speech_end = now - max(0.0, self.endpointer.stream_ms - event.speech_end_ms) / 1000.0
            await self._replace_turn(lambda: self._turn(event.audio, Stamps(speech_end=speech_end, endpoint=now)))

    async def text_input(self, text: str) -> None:
        """Input that is already text (keypad digits on a phone line): a turn like a spoken one, without STT."""
        now = time.monotonic()
        self.last_activity, self.reprompts = now, 0
        await self._replace_turn(lambda: self._turn(b"", Stamps(speech_end=now, endpoint=now), text=text))

    async def _replace_turn(self, start: Callable[[], Coroutine[Any, Any, None]]) -> None:
        """New input wins: the running turn (or line) is interrupted and waited for, then the new turn starts.
        Under a lock, so keypad input and speech arriving together make one turn after the other, never two
        at once; waited for with ``asyncio.wait``, so a caller of this that is cancelled (the audio pump of a
        call that hung up) does not cancel the turn with it: a turn is stored whole, once."""
        async with self._turn_lock:
            running = self.turn_task
            if running is not None and not running.done():
                await self.barge_in()      # spoke over the assistant (or while it was thinking): the new words win
                await asyncio.wait({running})
            self.turn_task = asyncio.create_task(start())

    async def barge_in(self) -> None:
        """Stop talking now: the player goes silent at once, generation and synthesis are cancelled."""
        if self.turn_task is None or self.turn_task.done():
            return
        self.muted = True
        if self.speaking:
            await self.send_json({"type": "barge_in"})
            if self.metrics is not None:
                self.metrics.voice_barge_ins.inc()
        if self.phase in ("stt", "speaking"):   # the pipeline and the recording run to their end
            self.turn_task.cancel()

    # -- one assistant turn -------------------------------------------------------------------------------

    async def _turn(self, audio: bytes, stamps: Stamps, text: str | None = None) -> None:
        """STT, then the pipeline, then speech. Only the listening and speaking phases can be cancelled: a
        barge-in while the pipeline runs (a tool call, a hand-off) lets it finish and skips the speaking,
        and the recording at the end always completes — a turn is stored whole, once."""
        try:
            await self._run_turn(audio, stamps, text)
        finally:
            # Every way out, a failed one too: a phase left set would keep the next reprompt muted and the
            # goodbye from being talked over (barge_in and _say read it).
            self.phase = None

    async def _run_turn(self, audio: bytes, stamps: Stamps, text: str | None) -> None:
        self.muted = self.closed      # input that arrived just before a hang-up is still a turn, but nothing is said
        self.barge.reset()
        self.phase = "stt"
        try:
            transcript = Transcript(text, self.config.language, 0.0) if text is not None else \
                await self.stt.transcribe(audio, VAD_RATE, self.config.language)
        except SpeechUnavailable as e:
            log.warning("STT failed; asking again", extra={"error": e.message})
            if self.metrics is not None:
                self.metrics.voice_fallbacks.labels("stt").inc()
            await self.send_json({"type": "error", "code": e.code, "message": "speech recognition failed"})
            await self._say(self.config.texts.say_again)
            return
        except asyncio.CancelledError:
            return
        stamps.transcript = time.monotonic()
        if not transcript.text:
            self.phase = None
            return
        await self.send_json({"type": "transcript", "text": transcript.text, "final": True,
                              **({"source": "dtmf"} if text is not None else {})})
        self.phase = "pipeline"
        try:
            turn, opened = await self.driver.begin(transcript.text, transcript.language or self.config.language)
        except EnclaveError as e:   # e.g. a message over the tenant's cap: said, not crashed
            await self.send_json({"type": "error", "code": e.code, "message": e.message})
            await self._say(self.config.texts.say_again)
            return
        except Exception:
            log.exception("voice turn failed before generation")
            await self.send_json({"type": "error", "code": "turn_failed", "message": "this turn could not be answered"})
            await self._say(self.config.texts.say_again)
            return
        stamps.prepared = getattr(turn, "prepared_at", None)
        playback = Playback(frame_s=self.config.frame_ms / 1000.0)
        interrupted = self.muted          # the caller spoke again while the pipeline ran: nothing is said
        if not interrupted:
            self.phase = "speaking"
            try:
                await self._speak_stream(opened, turn, stamps, playback)
            except asyncio.CancelledError:
                interrupted = True
                current = asyncio.current_task()
                if current is not None:
                    current.uncancel()    # the cancel was ours and is handled: recording must not see it
            except Exception:
                log.exception("voice turn failed while speaking")
                turn.status = "failed"
        self.phase = "ending"
        with contextlib.suppress(Exception):
            await opened.aclose()
        if getattr(opened, "failed_midway", False) and turn.status == "complete":
            turn.status = "failed"        # the model broke off: say so rather than stop mid-sentence
            await self._say(self.config.texts.broke_off)
        elif not interrupted and turn.status == "complete" and not any(playback.frames_sent.values()):
            await self._say(self.config.texts.no_answer)   # nothing speakable came back: a caller never hears dead air
        turn.reply = [playback.played_text()] if interrupted else [" ".join(playback.sentences)]
        if interrupted and turn.status == "complete":
            turn.status = "interrupted"
        turn.total_s = time.monotonic() - stamps.speech_end
        turn.voice_latency = stamps.latency()
        self._observe(turn.voice_latency)
        try:
            await self.driver.end(turn)
        except Exception:
            log.exception("could not record a voice turn")
            await self.send_json({"type": "error", "code": "storage_unavailable", "message": "the turn was not stored"})
        self.phase = None
        self.turns_done += 1
        handoff = getattr(turn, "handoff", None)
        await self.send_json({"type": "turn_end", "turn_id": turn.id, "status": turn.status,
                              "latency": turn.voice_latency,
                              **({"played": self._restored(turn, turn.reply_text)} if interrupted else {}),
                              **({"handoff": {"id": str(handoff["id"]), "reason": handoff["reason"]}}
                                 if handoff and handoff.get("id") else {})})

    async def _speak_stream(self, opened, turn, stamps: Stamps, playback: Playback) -> None:
        sentences: asyncio.Queue[str | None] = asyncio.Queue()
        frames: asyncio.Queue[tuple[int, bytes] | None] = asyncio.Queue()

        async def read_llm() -> None:
            splitter = SentenceSplitter()
            held = ""      # a caption tail that may still become a placeholder
            async for ev in opened:
                self.driver.absorb(turn, ev)
                if not ev.content:
                    continue
                if stamps.first_token is None:
                    stamps.first_token = time.monotonic()
                # The caption shows what the caller hears: placeholders restored as the speech restores them.
                ready, held = split_partial_placeholder(held + ev.content)
                if ready:
                    await self.send_json({"type": "assistant_text", "delta": self._restored(turn, ready)})
                for s in splitter.feed(ev.content):
                    await sentences.put(s)
            if held:
                await self.send_json({"type": "assistant_text", "delta": self._restored(turn, held)})
            for s in splitter.flush():
                await sentences.put(s)
            await sentences.put(None)

        async def synthesise() -> None:
            i = 0
            while (sentence := await sentences.get()) is not None:
                if stamps.first_sentence is None:
                    stamps.first_sentence = time.monotonic()
                text = self._restored(turn, sentence)
                playback.sentences.append(sentence)
                n = 0
                async for frame in self._synth(spoken(text)):
                    if stamps.first_tts_byte is None:
                        stamps.first_tts_byte = time.monotonic()
                    await frames.put((i, frame))
                    n += 1
                playback.frames_total[i] = n
                await frames.put((i, END))
                i += 1
            await frames.put(None)

        async def play() -> None:
            await self._play(frames, playback, stamps)

        tasks = [asyncio.create_task(c) for c in (read_llm(), synthesise(), play())]
        try:
            await asyncio.gather(*tasks)
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    def _restored(self, turn, text: str) -> str:
        return self.restore(turn, text) if self.restore else text

    async def _synth(self, text: str) -> AsyncIterator[bytes]:
        """Frames of ``text`` at the output rate: the TTS role, or the fallback voice if it fails first."""
        if not any(c.isalnum() for c in text):   # punctuation alone: TTS would only click or mumble
            return
        speakers = [self.tts] + ([self.fallback] if self.fallback is not None else [])
        for n, speaker in enumerate(speakers):
            resampler: StreamResampler | None = None
            framer = FrameBuffer(self.config.out_rate, self.config.frame_ms)
            produced = False
            try:
                async for rate, pcm in speaker.stream(text):
                    if resampler is None and rate != self.config.out_rate:
                        resampler = StreamResampler(rate, self.config.out_rate)
                    out = resampler.process(pcm) if resampler is not None else pcm
                    for frame in framer.push(out):
                        produced = True
                        yield frame
                tail = resampler.flush() if resampler is not None else b""
                pad = -(framer.pending() + len(tail)) % framer.frame_bytes   # the last frame, completed with silence
                for frame in framer.push(tail + b"\x00" * pad):
                    yield frame
                return
            except SpeechUnavailable as e:
                if produced:
                    return
                log.warning("TTS failed", extra={"speaker": speaker.name, "error": e.message})
                if self.metrics is not None:
                    self.metrics.voice_fallbacks.labels("tts").inc()
                if n + 1 < len(speakers):
                    await self.send_json({"type": "tts_fallback", "voice": speakers[n + 1].name})
        await self.send_json({"type": "error", "code": "tts_unavailable", "message": "no voice could speak"})

    async def _play(self, frames: asyncio.Queue, playback: Playback, stamps: Stamps | None) -> None:
        frame_s = self.config.frame_ms / 1000.0
        lead = self.config.playback_lead_ms / 1000.0
        started = None
        play_end = 0.0   # when the caller will have heard everything sent so far (a model of their player)
        try:
            while True:
                ready = not frames.empty()
                if (item := await frames.get()) is None:
                    break
                i, frame = item
                if frame is END:
                    playback.finished.add(i)
                    continue
                if self.muted:
                    return
                if started is None:
                    started = time.monotonic()
                    self.speaking = True
                    self.barge.reset()
                    if stamps is not None:
                        stamps.first_audio = started
                    await self.send_json({"type": "audio_start"})
                # Never more than ``lead`` ahead of what has been heard; after a gap (the next sentence was
                # late) the caller's player ran dry, so the clock restarts from now rather than bursting.
                delay = max(play_end, time.monotonic()) - lead - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                if self.muted:
                    return
                if play_end and time.monotonic() > play_end + frame_s:   # the caller's player ran dry
                    self.playout["late" if ready else "underrun"] += 1
                await self.send_audio(self._encode(frame))
                self.playout["frames"] += 1
                play_end = max(play_end, time.monotonic()) + frame_s
                playback.frames_sent[i] = playback.frames_sent.get(i, 0) + 1
            remaining = play_end - time.monotonic()   # let the last frames play out before saying we are done
            if started is not None and remaining > 0:
                await asyncio.sleep(remaining)
        finally:
            if started is not None:
                self.speaking = False
                self.last_activity = time.monotonic()
                await self.send_json({"type": "audio_stop", "reason": "barge_in" if self.muted else "done"})

    def _encode(self, pcm: bytes) -> bytes:
        if self.config.encoding == "mulaw":
            return codec.ulaw_encode(pcm)
        if self.config.encoding == "alaw":
            return codec.alaw_encode(pcm)
        return pcm

    def hold(self, on: bool) -> None:
        """Put the conversation on hold (or take it off): while held, nothing heard is a turn and silence is expected."""
        self.paused = on
        if on:
            self.endpointer = Endpointer(self.config.endpoint)   # half an utterance from before the hold is dropped
        self.last_activity = time.monotonic()

    async def say(self, text: str) -> None:
        """Say a line of the assistant's own outside any turn (a goodbye before hanging up), and wait till it is heard."""
        running = self.turn_task
        if running is not None and not running.done() and running is not asyncio.current_task():
            await asyncio.wait({running})   # not ``await``: our caller's cancellation is not the turn's
        await self._say(text)

    async def _say(self, text: str) -> None:
        """A sentence of the assistant's own (reprompts, apologies): spoken, not stored."""
        frames: asyncio.Queue = asyncio.Queue()

        async def fill() -> None:
            async for frame in self._synth(text):
                await frames.put((0, frame))
            await frames.put((0, END))
            await frames.put(None)

        await self.send_json({"type": "assistant_text", "delta": text, "system": True})
        previous = self.phase
        if previous is None:          # on its own (a reprompt) it can be talked over; inside a turn it keeps the turn's phase
            self.phase = "speaking"
            self.muted = self.closed  # a barge-in that ended the last turn does not silence the next line of ours
        filler = asyncio.create_task(fill())
        try:
            await self._play(frames, Playback([text]), None)
        except Exception:
            # An apology or a reprompt that cannot be spoken (a voice that fails oddly) must not take the turn
            # around it down: the turn is still stored, the call goes on.
            log.exception("could not say a line of the assistant's own")
        finally:
            filler.cancel()
            self.phase = previous

    def _observe(self, latency: dict[str, float]) -> None:
        if self.metrics is None:
            return
        for stage, value in latency.items():
            self.metrics.voice_stage.labels(stage.removesuffix("_ms")).observe(value / 1000.0)

    # -- silence and the end of the call --------------------------------------------------------------------

    async def _silence_watch(self) -> None:
        while not self.closed:
            await asyncio.sleep(0.25)
            busy = self.paused or self.speaking or self.endpointer.in_speech or \
                (self.turn_task is not None and not self.turn_task.done())
            if busy or time.monotonic() - self.last_activity < self.config.silence_reprompt_s:
                continue
            self.reprompts += 1
            if self.reprompts > self.config.max_reprompts:
                goodbye = self.turn_task = asyncio.create_task(self._say(self.config.texts.goodbye))
                await asyncio.wait({goodbye})
                if goodbye.cancelled() or self.turn_task is not goodbye:
                    # The caller spoke over the goodbye ("sorry, I'm here"): their turn runs, the call goes on.
                    self.reprompts, self.last_activity = 0, time.monotonic()
                    continue
                await self.send_json({"type": "hangup", "reason": "silence"})
                self.closed = True
                if self.on_hangup is not None:
                    await self.on_hangup()
                return
            await self.send_json({"type": "reprompt", "count": self.reprompts})
            self.turn_task = asyncio.create_task(self._say(self.config.texts.still_there))
            await asyncio.wait({self.turn_task})   # a caller who answers cancels it: that is not our end
            self.last_activity = time.monotonic()

    async def close(self) -> None:
        """The caller hung up: an unfinished turn is interrupted and stored with what was played."""
        self.closed = True
        self._watch.cancel()
        async with self._turn_lock:    # no new turn starts while this one is being ended
            running = self.turn_task
            if running is not None and not running.done() and running is not asyncio.current_task():
                self.muted = True
                if self.phase in ("stt", "speaking"):
                    running.cancel()
                await asyncio.wait({running})
        with contextlib.suppress(asyncio.CancelledError):
            await self._watch
