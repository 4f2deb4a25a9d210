"""VAD endpointing and barge-in on synthetic audio (and real espeak-ng speech where installed): silence and
a quiet line give nothing, speech gives one utterance with the right timing, noise blips are dropped, long
speech is cut, and chunking does not change the result."""

from __future__ import annotations

import random
import wave
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest

from gateway.voice.vad import BargeInDetector, EndpointConfig, Endpointer, VadEvent
from tests.conftest import espeak_wav

SR = 16000


def silence(ms: float, sr: int = SR) -> np.ndarray:
    return np.zeros(int(sr * ms / 1000), dtype=np.int16)


def noise(ms: float, sigma: float, seed: int = 0, sr: int = SR) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.clip(rng.normal(0, sigma, int(sr * ms / 1000)), -32768, 32767).astype(np.int16)


def voice(ms: float, sr: int = SR, f0: float = 150.0, peak: float = 8000.0) -> np.ndarray:
    """Voiced-sounding signal: harmonics of f0 (falling 1/k) with a 4 Hz syllable-like amplitude modulation."""
    t = np.arange(int(sr * ms / 1000)) / sr
    harmonics = sum(np.sin(2 * np.pi * f0 * k * t) / k for k in range(1, 15) if f0 * k < sr / 2)
    sig = harmonics * (0.6 + 0.4 * np.sin(2 * np.pi * 4 * t))
    return (sig / np.abs(sig).max() * peak).astype(np.int16)


def cat(*parts: np.ndarray) -> bytes:
    return np.concatenate(parts).tobytes()


def frame_by_frame(ep: Endpointer, pcm: bytes) -> list[VadEvent]:
    n = ep.frame_bytes
    events: list[VadEvent] = []
    for off in range(0, len(pcm) - n + 1, n):
        events += ep.push_frame(pcm[off:off + n])
    return events


def kinds(events: list[VadEvent]) -> list[str]:
    return [e.kind for e in events]


def read_wav(path: Path) -> tuple[bytes, int]:
    with wave.open(str(path)) as w:
        assert w.getnchannels() == 1 and w.getsampwidth() == 2
        return w.readframes(w.getnframes()), w.getframerate()


def speech_bounds_ms(pcm: bytes, sr: int, level: int = 500) -> tuple[float, float]:
    """Where a recording's speech really is: first and last sample above ``level``."""
    loud = np.nonzero(np.abs(np.frombuffer(pcm, dtype=np.int16).astype(np.int32)) > level)[0]
    return loud[0] / sr * 1000, (loud[-1] + 1) / sr * 1000


@pytest.fixture(scope="module")
def espeak_pcm(tmp_path_factory: pytest.TempPathFactory) -> tuple[bytes, int]:
    """About three seconds of real speech with one second of silence before and after."""
    path = espeak_wav("Hello, I would like to check the status of my order, please.",
                      tmp_path_factory.mktemp("vad") / "speech.wav", rate=SR, pad_s=1.0)
    return read_wav(path)


# ---------------------------------------------------------------------------------------------------------------
# Endpointer
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("pcm", [
    cat(silence(5000)),
    cat(noise(5000, sigma=30)),
    cat(noise(5000, sigma=60, seed=1)),
    cat(silence(1000), noise(3000, sigma=60, seed=2), silence(1000), noise(2000, sigma=40, seed=3)),
], ids=["zeros", "noise-30", "noise-60", "noise-steps"])
@pytest.mark.parametrize("aggressiveness", [0, 2, 3])
def test_silence_and_a_quiet_line_give_nothing(pcm: bytes, aggressiveness: int) -> None:
    ep = Endpointer(EndpointConfig(aggressiveness=aggressiveness))
    assert ep.push(pcm) == []
    assert not ep.in_speech
    assert ep.stream_ms == len(pcm) // 2 / SR * 1000


def test_louder_noise_step_is_never_an_utterance() -> None:
    """webrtcvad calls the first ~100 ms of a new noise floor voiced: at worst that is a "too_short"."""
    ep = Endpointer(EndpointConfig())
    events = ep.push(cat(silence(1000), noise(3000, sigma=1000, seed=4), silence(1000)))
    assert set(kinds(events)) <= {"speech_start", "too_short"}


def test_speech_gives_one_utterance_with_pre_roll() -> None:
    cfg = EndpointConfig()
    pcm = cat(silence(1000), voice(1500), silence(1000))
    ep = Endpointer(cfg)
    events = frame_by_frame(ep, pcm)
    assert kinds(events) == ["speech_start", "utterance"]
    start, utt = events
    assert start.start_ms == 1000.0
    assert start.end_ms == 1000.0 + cfg.start_speech_ms  # decided once start_speech_ms were voiced
    assert utt.reason == "silence"
    assert utt.start_ms == 1000.0
    assert utt.speech_end_ms == 2500.0
    assert utt.end_ms == utt.speech_end_ms + cfg.silence_ms
    # pre-roll + speech, cut at the last voiced frame: exactly that slice of the stream
    bpms = SR * 2 // 1000
    assert utt.audio == pcm[(1000 - cfg.pre_roll_ms) * bpms:2500 * bpms]
    assert not ep.in_speech
    assert ep.stream_ms == 3500.0


@pytest.mark.parametrize(("sample_rate", "frame_ms"), [(8000, 10), (8000, 30), (16000, 30), (32000, 20), (48000, 10)])
def test_rates_and_frame_sizes(sample_rate: int, frame_ms: int) -> None:
    cfg = EndpointConfig(sample_rate=sample_rate, frame_ms=frame_ms)
    pcm = cat(silence(990, sample_rate), voice(1500, sample_rate), silence(1200, sample_rate))
    events = Endpointer(cfg).push(pcm)
    assert kinds(events) == ["speech_start", "utterance"]
    utt = events[1]
    assert abs(utt.start_ms - 990) <= frame_ms
    assert abs(utt.speech_end_ms - 2490) <= frame_ms
    assert abs(len(utt.audio) / 2 / sample_rate * 1000 - (1500 + cfg.pre_roll_ms)) <= 2 * frame_ms + 1


def test_real_speech(espeak_pcm: tuple[bytes, int]) -> None:
    pcm, sr = espeak_pcm
    cfg = EndpointConfig(sample_rate=sr)
    true_start, true_end = speech_bounds_ms(pcm, sr)
    events = Endpointer(cfg).push(pcm + bytes(int(sr * 0.7) * 2))  # the padding is 1 s; make sure silence_ms fits
    assert kinds(events) == ["speech_start", "utterance"], events
    utt = events[1]
    assert abs(utt.start_ms - true_start) <= 100
    assert abs(utt.speech_end_ms - true_end) <= 200
    assert utt.end_ms == utt.speech_end_ms + cfg.silence_ms
    duration = len(utt.audio) / 2 / sr * 1000
    assert abs(duration - (true_end - true_start + cfg.pre_roll_ms)) <= 250


def test_real_speech_at_8k(tmp_path: Path) -> None:
    pcm, sr = read_wav(espeak_wav("Yes, that is right.", tmp_path / "s8.wav", rate=8000, pad_s=1.0))
    events = Endpointer(EndpointConfig(sample_rate=sr, frame_ms=30)).push(pcm)
    assert kinds(events) == ["speech_start", "utterance"]


def test_short_burst_is_too_short() -> None:
    cfg = EndpointConfig()
    events = Endpointer(cfg).push(cat(silence(1000), voice(100), silence(1000)))
    assert kinds(events) == ["speech_start", "too_short"]
    short = events[1]
    assert short.audio == b""
    assert short.speech_end_ms - short.start_ms < cfg.min_speech_ms
    assert short.end_ms == short.speech_end_ms + cfg.silence_ms


def test_click_gives_nothing() -> None:
    assert Endpointer(EndpointConfig()).push(cat(silence(1000), voice(20), silence(1000))) == []


def test_just_above_min_speech_is_an_utterance() -> None:
    events = Endpointer(EndpointConfig()).push(cat(silence(500), voice(300), silence(1000)))
    assert kinds(events) == ["speech_start", "utterance"]


def test_pause_shorter_than_silence_ms_keeps_one_utterance() -> None:
    events = Endpointer(EndpointConfig()).push(cat(silence(500), voice(800), silence(300), voice(800), silence(1000)))
    assert kinds(events) == ["speech_start", "utterance"]
    assert events[1].speech_end_ms == 2400.0


def test_two_utterances() -> None:
    events = Endpointer(EndpointConfig()).push(cat(silence(500), voice(800), silence(1000), voice(800), silence(1000)))
    assert kinds(events) == ["speech_start", "utterance", "speech_start", "utterance"]
    assert [e.start_ms for e in events] == [500.0, 500.0, 2300.0, 2300.0]


def test_long_speech_is_cut_at_max_length() -> None:
    cfg = EndpointConfig(max_utterance_ms=2000)
    events = Endpointer(cfg).push(cat(silence(1000), voice(5000), silence(1000)))
    assert kinds(events) == ["speech_start", "utterance", "speech_start", "utterance", "speech_start", "utterance"]
    first, second, last = events[1], events[3], events[5]
    assert first.reason == second.reason == "max_length" and last.reason == "silence"
    assert first.start_ms == 1000.0 and first.end_ms == 3000.0
    assert len(first.audio) / 2 / SR * 1000 == 2000 + cfg.pre_roll_ms
    # the speaker kept going: the next utterance starts right after the cut, without repeating audio
    assert 3000.0 <= second.start_ms <= 3000.0 + cfg.start_speech_ms
    assert last.speech_end_ms == 6000.0
    assert all(e.end_ms - e.start_ms <= cfg.max_utterance_ms for e in events)


def test_energy_floor_hides_webrtcvad_onset_artifact() -> None:
    """Without the floor, the start of even a very quiet hiss (-60 dBFS) after digital silence is "speech"."""
    pcm = cat(silence(1000), noise(2000, sigma=30, seed=5))
    assert Endpointer(EndpointConfig()).push(pcm) == []
    assert kinds(Endpointer(EndpointConfig(energy_floor_dbfs=-120)).push(pcm)) == ["speech_start", "too_short"]


@pytest.mark.parametrize("seed", range(5))
def test_chunking_does_not_matter(seed: int, espeak_pcm: tuple[bytes, int]) -> None:
    pcm = cat(silence(700), voice(900), silence(900), voice(100), silence(800), voice(2500), silence(700))
    if seed % 2:
        pcm, _ = espeak_pcm
    cfg = EndpointConfig(max_utterance_ms=2000)
    expected = frame_by_frame(Endpointer(cfg), pcm)
    assert expected
    rng = random.Random(seed)
    ep = Endpointer(cfg)
    got: list[VadEvent] = []
    off = 0
    while off < len(pcm):
        n = rng.choice([1, 3, 160, 321, 640, 999, 4096])
        got += ep.push(pcm[off:off + n])
        off += n
    assert [asdict(e) for e in got] == [asdict(e) for e in expected]


def test_reset_starts_a_new_stream() -> None:
    ep = Endpointer(EndpointConfig())
    assert kinds(ep.push(cat(silence(500), voice(500)) + b"\x01")) == ["speech_start"]
    assert ep.in_speech and ep.stream_ms == 1000.0
    ep.reset()
    assert not ep.in_speech and ep.stream_ms == 0.0
    assert ep.push(cat(silence(2000))) == []  # the half utterance (and the odd byte) are gone


def test_bad_input() -> None:
    with pytest.raises(ValueError):
        Endpointer(EndpointConfig(sample_rate=44100))
    with pytest.raises(ValueError):
        Endpointer(EndpointConfig(frame_ms=25))
    with pytest.raises(ValueError):
        Endpointer(EndpointConfig(aggressiveness=4))
    with pytest.raises(ValueError):
        Endpointer(EndpointConfig()).push_frame(b"\x00" * 100)
    with pytest.raises(ValueError):
        BargeInDetector(sample_rate=22050)


# ---------------------------------------------------------------------------------------------------------------
# Barge-in
# ---------------------------------------------------------------------------------------------------------------


def fired_at(detector: BargeInDetector, pcm: bytes) -> list[float]:
    """Stream times (end of the frame) at which the detector fired."""
    n = detector.frame_bytes
    return [(off // n + 1) * detector.frame_ms for off in range(0, len(pcm) - n + 1, n)
            if detector.push_frame(pcm[off:off + n])]


def test_barge_in_fires_once_after_threshold() -> None:
    d = BargeInDetector()
    assert fired_at(d, cat(silence(1000), voice(1500), silence(500))) == [1200]  # 200 ms into the speech
    d.reset()
    assert fired_at(d, cat(voice(1000))) == [200]  # re-armed


@pytest.mark.parametrize("pcm", [
    cat(silence(3000)),
    cat(noise(3000, sigma=60)),
    cat(silence(1000), voice(60), silence(1000)),
    cat(silence(500), voice(60), silence(300), voice(60), silence(300), voice(60), silence(500)),
], ids=["zeros", "quiet-line", "blip", "blips"])
def test_barge_in_ignores_silence_and_blips(pcm: bytes) -> None:
    assert fired_at(BargeInDetector(), pcm) == []


def test_barge_in_on_real_speech(espeak_pcm: tuple[bytes, int]) -> None:
    pcm, sr = espeak_pcm
    true_start, _ = speech_bounds_ms(pcm, sr)
    fired = fired_at(BargeInDetector(sample_rate=sr), pcm)
    assert len(fired) == 1
    assert 150 <= fired[0] - true_start <= 400


def test_a_long_stream_gives_one_utterance_and_one_barge_in_per_spoken_stretch() -> None:
    """Three stretches of speech in one 30 s stream, frame by frame, as a call delivers them. (Speed is the
    voice benchmark's business, scripts/bench/voice.py: a test that only printed it asserted nothing.)"""
    pcm = cat(silence(1000), voice(8000), silence(1000)) * 3
    events = frame_by_frame(Endpointer(EndpointConfig()), pcm)
    assert kinds(events) == ["speech_start", "utterance"] * 3, kinds(events)
    detector, fired = BargeInDetector(), []
    for i in range(3):                     # re-armed for each prompt, as the voice session does
        detector.reset()
        fired += [10_000 * i + t for t in fired_at(detector, pcm[i * len(pcm) // 3:(i + 1) * len(pcm) // 3])]
    assert len(fired) == 3 and all(1000 + 10_000 * i < t < 2000 + 10_000 * i for i, t in enumerate(fired)), fired