"""Voice activity: endpointing (when did the caller start and stop talking) and barge-in detection.

webrtcvad classifies single frames, and single frames are noisy: a click, a breath or the first ~100 ms of a new
noise floor (webrtcvad's noise model adapts after a level step) come out "voiced", and short pauses inside
speech come out "unvoiced". So decisions are smoothed over time:

* an utterance starts when ``start_speech_ms`` of voiced frames fall within a window twice that long;
  ``pre_roll_ms`` of audio from before the first voiced frame is kept, so the first syllable reaches ASR;
* it ends after ``silence_ms`` of unvoiced frames in a row; the audio is trimmed at the last voiced frame;
* one whose voiced span is shorter than ``min_speech_ms`` is reported as "too_short" (noise, a cough);
* one that runs past ``max_utterance_ms`` is cut ("max_length"), and a continuing speaker starts a new one;
* frames quieter than ``energy_floor_dbfs`` (RMS) count as unvoiced whatever webrtcvad says, which keeps
  digital silence and a quiet line's noise from producing events at all.

All times are stream times in milliseconds: frame ``k`` covers ``[k * frame_ms, (k + 1) * frame_ms)``.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from typing import Literal

import numpy as np
import webrtcvad

__all__ = ["BargeInDetector", "EndpointConfig", "Endpointer", "VadEvent", "frame_bytes"]

_RATES = (8000, 16000, 32000, 48000)
_FRAME_MS = (10, 20, 30)


def frame_bytes(sample_rate: int, frame_ms: int) -> int:
    """Size of one PCM16 mono frame; refuses what webrtcvad refuses (it would raise per frame, later)."""
    if sample_rate not in _RATES:
        raise ValueError(f"webrtcvad needs a sample rate in {_RATES}, got {sample_rate}")
    if frame_ms not in _FRAME_MS:
        raise ValueError(f"webrtcvad needs {_FRAME_MS} ms frames, got {frame_ms}")
    return sample_rate * frame_ms // 1000 * 2


def _mean_square_floor(dbfs: float) -> float:
    return (32768.0 * 10.0 ** (dbfs / 20.0)) ** 2


def _loud_enough(frame: bytes, floor: float) -> bool:
    x = np.frombuffer(frame, dtype="<i2").astype(np.float64)
    return float(np.dot(x, x)) >= floor * len(x)


@dataclass(frozen=True)
class EndpointConfig:
    sample_rate: int = 16000
    frame_ms: int = 20
    aggressiveness: int = 2  # webrtcvad mode 0-3
    start_speech_ms: int = 60  # voiced audio needed to start an utterance (in a window twice as long)
    silence_ms: int = 600  # trailing silence that ends it
    min_speech_ms: int = 200  # shorter utterances are dropped as noise
    max_utterance_ms: int = 15000  # cut even if the speaker keeps going
    pre_roll_ms: int = 200  # audio kept from before the start (so the first syllable is not lost)
    energy_floor_dbfs: float = -50.0  # quieter frames are unvoiced (digital silence, a quiet line's hiss)


@dataclass
class VadEvent:
    kind: Literal["speech_start", "utterance", "too_short"]
    audio: bytes = b""  # the utterance PCM16 (for "utterance"), pre-roll included, trailing silence trimmed
    start_ms: float = 0.0  # stream time of speech start (the first voiced frame)
    end_ms: float = 0.0  # stream time when the event was decided (for an endpoint: end of trailing silence)
    speech_end_ms: float = 0.0  # stream time of the end of the last voiced frame
    reason: str = ""  # "silence" | "max_length" (endpoints only)


class Endpointer:
    """Turns a PCM16 stream into speech_start / utterance / too_short events."""

    def __init__(self, config: EndpointConfig) -> None:
        if not 0 <= config.aggressiveness <= 3:
            raise ValueError(f"aggressiveness is a webrtcvad mode 0-3, got {config.aggressiveness}")
        self.config = config
        self.frame_bytes = frame_bytes(config.sample_rate, config.frame_ms)
        f = config.frame_ms
        self._need = max(1, math.ceil(config.start_speech_ms / f))
        self._window = max(self._need, math.ceil(2 * config.start_speech_ms / f))
        self._silence = max(1, math.ceil(config.silence_ms / f))
        self._pre_roll = max(0, math.ceil(config.pre_roll_ms / f))
        self._floor = _mean_square_floor(config.energy_floor_dbfs)
        self._vad = webrtcvad.Vad(config.aggressiveness)
        self._pending = bytearray()
        self._frames = 0
        # Idle: recent (frame, voiced) pairs, enough for the start window plus the pre-roll before it.
        self._history: deque[tuple[bytes, bool]] = deque(maxlen=self._window + self._pre_roll)
        # In speech: the utterance so far.
        self._speaking = False
        self._audio: list[bytes] = []
        self._voiced_len = 0  # frames in _audio up to and including the last voiced one
        self._start_frame = 0
        self._last_voiced = 0
        self._silent_run = 0

    @property
    def in_speech(self) -> bool:
        return self._speaking

    @property
    def stream_ms(self) -> float:
        return float(self._frames * self.config.frame_ms)

    def reset(self) -> None:
        """Forget everything, the stream clock included (a new stream); the VAD's noise model starts afresh."""
        self._vad = webrtcvad.Vad(self.config.aggressiveness)
        self._pending.clear()
        self._frames = 0
        self._history.clear()
        self._end_utterance()

    def push(self, pcm16: bytes) -> list[VadEvent]:
        """Any amount of audio; whole frames are processed and the remainder is kept for the next call."""
        self._pending += pcm16
        events: list[VadEvent] = []
        n = self.frame_bytes
        usable = len(self._pending) // n * n
        for off in range(0, usable, n):
            events += self.push_frame(bytes(self._pending[off:off + n]))
        del self._pending[:usable]
        return events

    def push_frame(self, frame: bytes) -> list[VadEvent]:
        """Exactly one frame of ``config.frame_ms``."""
        if len(frame) != self.frame_bytes:
            raise ValueError(f"expected a {self.config.frame_ms} ms frame of {self.frame_bytes} bytes, got {len(frame)}")
        voiced = _loud_enough(frame, self._floor) and self._vad.is_speech(frame, self.config.sample_rate)
        k = self._frames
        self._frames += 1
        f = self.config.frame_ms
        if not self._speaking:
            self._history.append((frame, voiced))
            window = list(self._history)[-self._window:]
            if sum(v for _, v in window) < self._need:
                return []
            first = len(self._history) - len(window) + next(i for i, (_, v) in enumerate(window) if v)
            keep = list(self._history)[max(0, first - self._pre_roll):]
            self._speaking = True
            self._start_frame = k - (len(self._history) - 1 - first)
            self._audio = [fr for fr, _ in keep]
            self._voiced_len = len(self._audio)  # the current frame is voiced: it made the count
            self._last_voiced = k
            self._silent_run = 0
            self._history.clear()
            return [VadEvent("speech_start", start_ms=float(self._start_frame * f), end_ms=self.stream_ms,
                             speech_end_ms=float((k + 1) * f))]

        self._audio.append(frame)
        if voiced:
            self._voiced_len = len(self._audio)
            self._last_voiced = k
            self._silent_run = 0
        else:
            self._silent_run += 1
        start_ms = float(self._start_frame * f)
        speech_end_ms = float((self._last_voiced + 1) * f)
        if self.stream_ms - start_ms >= self.config.max_utterance_ms:
            event = VadEvent("utterance", audio=b"".join(self._audio), start_ms=start_ms, end_ms=self.stream_ms,
                             speech_end_ms=speech_end_ms, reason="max_length")
            self._end_utterance()
            return [event]
        if self._silent_run < self._silence:
            return []
        if speech_end_ms - start_ms < self.config.min_speech_ms:
            event = VadEvent("too_short", start_ms=start_ms, end_ms=self.stream_ms, speech_end_ms=speech_end_ms,
                             reason="silence")
        else:
            event = VadEvent("utterance", audio=b"".join(self._audio[:self._voiced_len]), start_ms=start_ms,
                             end_ms=self.stream_ms, speech_end_ms=speech_end_ms, reason="silence")
        self._end_utterance()
        return [event]

    def _end_utterance(self) -> None:
        # The history starts empty: no pre-roll from audio that already went out with this utterance.
        self._speaking = False
        self._audio = []
        self._voiced_len = 0
        self._silent_run = 0


class BargeInDetector:
    """While the assistant is speaking: caller speech lasting ``threshold_ms`` (voiced frames within a short window) means an interruption.

    The window is 1.5 times the threshold, so a word with a short gap still counts while a cough, a click or
    a "mm" (well under the threshold) does not. Fires once; ``reset()`` re-arms it for the next prompt.
    """

    def __init__(self, sample_rate: int = 16000, frame_ms: int = 20, threshold_ms: int = 200,
                 aggressiveness: int = 3) -> None:
        if not 0 <= aggressiveness <= 3:
            raise ValueError(f"aggressiveness is a webrtcvad mode 0-3, got {aggressiveness}")
        self.sample_rate = sample_rate
        self.frame_ms = frame_ms
        self.frame_bytes = frame_bytes(sample_rate, frame_ms)
        self.aggressiveness = aggressiveness
        self._need = max(1, math.ceil(threshold_ms / frame_ms))
        self._recent: deque[bool] = deque(maxlen=self._need + max(2, self._need // 2))
        self._floor = _mean_square_floor(EndpointConfig.energy_floor_dbfs)
        self._vad = webrtcvad.Vad(aggressiveness)
        self._fired = False

    def push_frame(self, frame: bytes) -> bool:
        """True once, on the frame where the threshold is crossed; False before and after (until reset)."""
        if len(frame) != self.frame_bytes:
            raise ValueError(f"expected a {self.frame_ms} ms frame of {self.frame_bytes} bytes, got {len(frame)}")
        voiced = _loud_enough(frame, self._floor) and self._vad.is_speech(frame, self.sample_rate)
        if self._fired:
            return False
        self._recent.append(voiced)
        if sum(self._recent) >= self._need:
            self._fired = True
            return True
        return False

    def reset(self) -> None:
        """Re-arm for the next assistant turn (the VAD's noise model is kept: same line)."""
        self._recent.clear()
        self._fired = False
