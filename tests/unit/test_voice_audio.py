"""Voice audio plumbing: G.711 must match audioop bit for bit (it replaces it on Python 3.13), resampling
must not depend on how the stream was chunked, and framing must neither lose nor reorder a byte."""

from __future__ import annotations

import math
import warnings
from types import ModuleType

import numpy as np
import pytest

from gateway.voice.codec import (
    SILENCE_DBFS,
    alaw_decode,
    alaw_encode,
    float_to_pcm16,
    pcm16_to_float,
    rms_dbfs,
    ulaw_decode,
    ulaw_encode,
)
from gateway.voice.frames import FrameBuffer
from gateway.voice.resample import StreamResampler, resample

ALL_PCM = np.arange(-32768, 32768, dtype="<i2").tobytes()
ALL_CODES = bytes(range(256))


def _pcm(samples: np.ndarray) -> bytes:
    return np.asarray(samples).astype("<i2").tobytes()


def _samples(pcm16: bytes) -> np.ndarray:
    return np.frombuffer(pcm16, dtype="<i2").astype(np.int64)


def _sine(freq: float, rate: int, n: int, amplitude: float = 0.5) -> bytes:
    t = np.arange(n) / rate
    return _pcm(np.round(amplitude * 32767 * np.sin(2 * np.pi * freq * t)))


@pytest.fixture(scope="module")
def audioop() -> ModuleType:
    """The reference implementation, deprecated in 3.11 and removed in 3.13: used here only, never in code."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return pytest.importorskip("audioop")


# --- G.711 against audioop ------------------------------------------------------------------------------


def test_ulaw_encode_all_pcm_values(audioop: ModuleType) -> None:
    assert ulaw_encode(ALL_PCM) == audioop.lin2ulaw(ALL_PCM, 2)


def test_alaw_encode_all_pcm_values(audioop: ModuleType) -> None:
    assert alaw_encode(ALL_PCM) == audioop.lin2alaw(ALL_PCM, 2)


def test_ulaw_decode_all_codes(audioop: ModuleType) -> None:
    assert ulaw_decode(ALL_CODES) == audioop.ulaw2lin(ALL_CODES, 2)


def test_alaw_decode_all_codes(audioop: ModuleType) -> None:
    assert alaw_decode(ALL_CODES) == audioop.alaw2lin(ALL_CODES, 2)


@pytest.mark.parametrize("n", [0, 1, 2, 159, 160, 4096, 48_001])
def test_random_buffers_match_audioop(audioop: ModuleType, n: int) -> None:
    rng = np.random.default_rng(n)
    pcm = rng.integers(-32768, 32768, size=n, dtype=np.int16).astype("<i2").tobytes()
    codes = rng.integers(0, 256, size=n, dtype=np.uint8).tobytes()
    assert ulaw_encode(pcm) == audioop.lin2ulaw(pcm, 2)
    assert alaw_encode(pcm) == audioop.lin2alaw(pcm, 2)
    assert ulaw_decode(codes) == audioop.ulaw2lin(codes, 2)
    assert alaw_decode(codes) == audioop.alaw2lin(codes, 2)


# --- G.711 without a reference (still meaningful where audioop is gone) --------------------------------


def test_g711_anchor_values() -> None:
    # Silence and the extremes, from the G.711 tables.
    assert ulaw_encode(_pcm([0, 32767, -32768])) == bytes([0xFF, 0x80, 0x00])
    assert alaw_encode(_pcm([0, 32767, -32768])) == bytes([0xD5, 0xAA, 0x2A])
    assert _samples(ulaw_decode(bytes([0xFF, 0x7F, 0x80, 0x00]))).tolist() == [0, 0, 32124, -32124]
    assert _samples(alaw_decode(bytes([0xD5, 0x55, 0xAA, 0x2A]))).tolist() == [8, -8, 32256, -32256]


@pytest.mark.parametrize(("encode", "decode"), [(ulaw_encode, ulaw_decode), (alaw_encode, alaw_decode)])
def test_g711_round_trip_is_monotonic_and_close(encode, decode) -> None:
    x = _samples(ALL_PCM)
    y = _samples(decode(encode(ALL_PCM)))
    assert np.all(np.diff(y) >= 0), "companding must preserve order"
    # Logarithmic quantiser: the error grows with the level but stays within ~1/16 of it (plus a small floor).
    assert np.all(np.abs(y - x) <= np.abs(x) / 16 + 132)
    # Decoding what we encoded is a fixed point: re-encoding a decoded value gives the same code.
    codes = encode(ALL_PCM)
    assert encode(decode(codes)) == codes


def test_g711_accepts_any_bytes_like() -> None:
    pcm = _sine(440, 8000, 160)
    expected = ulaw_encode(pcm)
    assert ulaw_encode(bytearray(pcm)) == expected
    assert ulaw_encode(memoryview(pcm)) == expected
    assert alaw_decode(bytearray(b"\xd5\xd5")) == alaw_decode(b"\xd5\xd5")


@pytest.mark.parametrize("fn", [ulaw_encode, alaw_encode, pcm16_to_float, rms_dbfs])
def test_odd_length_pcm_is_rejected(fn) -> None:
    with pytest.raises(ValueError, match="even number of bytes"):
        fn(b"\x00\x01\x02")


def test_decoders_take_any_length_and_double_it() -> None:
    assert ulaw_decode(b"") == b"" and alaw_decode(b"") == b""
    assert len(ulaw_decode(b"\x00\x01\x02")) == 6
    assert ulaw_encode(b"") == b"" and alaw_encode(b"") == b""


# --- float conversion and level ------------------------------------------------------------------------


def test_pcm16_to_float_range_and_exact_round_trip() -> None:
    x = pcm16_to_float(ALL_PCM)
    assert x.dtype == np.float32
    assert x.min() == -1.0 and x.max() < 1.0
    assert float_to_pcm16(x) == ALL_PCM


def test_float_to_pcm16_clips_rounds_and_zeroes_nan() -> None:
    x = np.array([2.0, -2.0, 1.0, -1.0, np.inf, -np.inf, np.nan, 0.4 / 32768, 0.6 / 32768, -0.6 / 32768])
    assert _samples(float_to_pcm16(x)).tolist() == [32767, -32768, 32767, -32768, 32767, -32768, 0, 0, 1, -1]
    assert float_to_pcm16(np.zeros(0, dtype=np.float32)) == b""


def test_rms_dbfs_levels() -> None:
    assert rms_dbfs(b"") == SILENCE_DBFS
    assert rms_dbfs(bytes(640)) == SILENCE_DBFS
    assert rms_dbfs(_pcm([32767, -32767] * 160)) == pytest.approx(0.0, abs=0.01)
    # A sine sits 3.01 dB below its peak: half scale → -6.02 - 3.01.
    assert rms_dbfs(_sine(1000, 16000, 16000, amplitude=0.5)) == pytest.approx(-9.03, abs=0.05)
    assert SILENCE_DBFS < rms_dbfs(_pcm([1] + [0] * 319)) < -100
    assert math.isfinite(rms_dbfs(_pcm([1] + [0] * 100_000)))


# --- resampling ----------------------------------------------------------------------------------------

RATE_PAIRS = [(8000, 16000), (16000, 8000), (22050, 16000), (24000, 8000)]


def _chunked(pcm16: bytes, in_rate: int, out_rate: int, seed: int) -> bytes:
    """Feed random chunk sizes, odd sample counts and empty chunks included, as a network would."""
    rng = np.random.default_rng(seed)
    r = StreamResampler(in_rate, out_rate)
    out, i = [], 0
    while i < len(pcm16):
        k = 2 * int(rng.choice([0, 1, 3, int(rng.integers(1, 1200))]))
        out.append(r.process(pcm16[i : i + k]))
        i += k
    out.append(r.flush())
    return b"".join(out)


@pytest.mark.parametrize(("in_rate", "out_rate"), RATE_PAIRS)
def test_resample_total_length(in_rate: int, out_rate: int) -> None:
    n = 12_345
    out = resample(_sine(1000, in_rate, n), in_rate, out_rate)
    assert abs(len(out) // 2 - n * out_rate / in_rate) <= 2


@pytest.mark.parametrize(("in_rate", "out_rate"), RATE_PAIRS)
def test_resample_chunked_equals_one_shot(in_rate: int, out_rate: int) -> None:
    rng = np.random.default_rng(7)
    pcm = _pcm(rng.normal(0, 6000, size=in_rate).clip(-32768, 32767)) + _sine(1000, in_rate, in_rate // 2)
    one_shot = resample(pcm, in_rate, out_rate)
    for seed in range(3):
        # Bit-identical, not merely close: the filter state carries across chunks and nothing is dithered.
        assert _chunked(pcm, in_rate, out_rate, seed) == one_shot


@pytest.mark.parametrize(("in_rate", "out_rate"), RATE_PAIRS)
def test_resample_keeps_sine_frequency_and_amplitude(in_rate: int, out_rate: int) -> None:
    y = _samples(_chunked(_sine(1000, in_rate, in_rate, amplitude=0.5), in_rate, out_rate, seed=1)).astype(float)
    middle = y[len(y) // 10 : -len(y) // 10]  # skip filter run-in and run-out
    spectrum = np.abs(np.fft.rfft(middle * np.hanning(len(middle))))
    peak_hz = np.argmax(spectrum) * out_rate / len(middle)
    assert peak_hz == pytest.approx(1000, abs=2)
    assert np.abs(middle).max() / 32767 == pytest.approx(0.5, rel=0.02)
    assert np.sqrt(np.mean(middle**2)) / 32767 == pytest.approx(0.5 / math.sqrt(2), rel=0.02)


def test_resample_empty_input() -> None:
    assert resample(b"", 8000, 16000) == b""
    r = StreamResampler(16000, 8000)
    assert r.process(b"") == b""
    assert r.flush() == b""


@pytest.mark.parametrize(("in_rate", "out_rate"), RATE_PAIRS)
def test_resample_silence_stays_silent_and_is_deterministic(in_rate: int, out_rate: int) -> None:
    # soxr's own int16 output would dither: ±1 LSB noise on silence, different bytes on every run.
    assert resample(bytes(2 * in_rate), in_rate, out_rate) == bytes(2 * out_rate)
    noise = _pcm(np.random.default_rng(5).integers(-32768, 32768, size=4000))
    assert resample(noise, in_rate, out_rate) == resample(noise, in_rate, out_rate)


def test_resample_clips_overshoot_instead_of_wrapping() -> None:
    # A full-scale square wave rings past full scale after filtering; int16 must saturate, not wrap around.
    square = _pcm(np.where((np.arange(8000) // 40) % 2, -32768, 32767))  # 100 Hz, 80 samples a period
    y = _samples(resample(square, 8000, 16000))
    assert y.max() == 32767 and y.min() == -32768
    phase = np.arange(len(y)) % 160  # one period at 16 kHz; the centre of each half must keep its sign
    assert np.all(y[(phase >= 20) & (phase < 60)] > 30000)
    assert np.all(y[(phase >= 100) & (phase < 140)] < -30000)


def test_same_rate_is_pass_through() -> None:
    pcm = _sine(1000, 16000, 321)
    r = StreamResampler(16000, 16000)
    assert r.process(pcm) == pcm
    assert r.flush() == b""
    assert resample(pcm, 16000, 16000) == pcm


def test_flush_resets_for_the_next_stream() -> None:
    pcm = _sine(1000, 8000, 800)
    r = StreamResampler(8000, 16000)
    first = r.process(pcm) + r.flush()
    second = r.process(pcm) + r.flush()
    assert first == second == resample(pcm, 8000, 16000)


def test_resampler_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="even number of bytes"):
        StreamResampler(8000, 16000).process(b"\x00\x01\x02")
    with pytest.raises(ValueError, match="even number of bytes"):
        StreamResampler(8000, 8000).process(b"\x00")
    with pytest.raises(ValueError, match="positive"):
        StreamResampler(0, 16000)
    with pytest.raises(ValueError):
        StreamResampler(8000, 16000, quality="best")


# --- framing -------------------------------------------------------------------------------------------


def test_frame_bytes() -> None:
    assert FrameBuffer(16000, 20).frame_bytes == 640
    assert FrameBuffer(8000, 20).frame_bytes == 320
    assert FrameBuffer(44100, 10).frame_bytes == 882
    with pytest.raises(ValueError, match="whole number of samples"):
        FrameBuffer(11025, 10)
    with pytest.raises(ValueError, match="positive"):
        FrameBuffer(16000, 0)


def test_frames_split_and_merge_odd_chunks() -> None:
    data = np.random.default_rng(3).integers(0, 256, size=640 * 25 + 123, dtype=np.uint8).tobytes()
    fb = FrameBuffer(16000, 20)
    frames: list[bytes] = []
    i = 0
    for k in [1, 639, 1, 1279, 7, 640, 641, 3, 2000, 1, 999, 5000]:
        got = fb.push(data[i : i + k])
        i += k
        frames += got
        assert all(len(f) == 640 for f in got)
        assert fb.pending() == i - 640 * len(frames) < 640
    frames += fb.push(data[i:])
    assert b"".join(frames) == data[: 640 * len(frames)]
    assert len(frames) == 25 and fb.pending() == 123


def test_frames_one_push_many_frames_and_empty_push() -> None:
    fb = FrameBuffer(8000, 20)
    assert fb.push(b"") == [] and fb.pending() == 0
    data = bytes(range(256)) * 5  # 1280 bytes = 4 frames
    frames = fb.push(data)
    assert frames == [data[j : j + 320] for j in range(0, 1280, 320)]
    assert fb.pending() == 0


def test_the_fallback_voice_cancelled_mid_synthesis_leaves_no_process(tmp_path) -> None:
    """A barge-in while espeak-ng still writes: nobody reads its pipe any more, so it must be killed (it
    blocked on a full pipe until the gateway stopped, one process per interruption)."""
    import asyncio
    import os
    import sys

    from gateway.clients.speech import EspeakSpeech

    fake = tmp_path / "espeak-ng"
    fake.write_text(f"#!{sys.executable}\nimport sys, time\nfor _ in range(64):\n"
                    "    sys.stdout.buffer.write(b'x' * 65536); sys.stdout.flush()\ntime.sleep(30)\n")
    fake.chmod(0o755)
    started: list[asyncio.subprocess.Process] = []
    real_exec = asyncio.create_subprocess_exec

    async def spy(*args, **kwargs):
        proc = await real_exec(*args, **kwargs)
        started.append(proc)
        return proc

    async def scenario() -> int:
        asyncio.create_subprocess_exec = spy
        try:
            speaking = asyncio.create_task(anext(EspeakSpeech(str(fake)).stream("hello")))
            while not started:
                await asyncio.sleep(0.01)
            await asyncio.sleep(0.3)          # it has filled the pipe by now
            speaking.cancel()
            with pytest.raises(asyncio.CancelledError):
                await speaking
            return started[0].pid
        finally:
            asyncio.create_subprocess_exec = real_exec

    pid = asyncio.run(scenario())
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)                       # killed and reaped
