"""Decode uploaded audio to 16 kHz mono float32 — the one shape Whisper takes."""

from __future__ import annotations

import io

import numpy as np

from serving.http import ServingError

WHISPER_RATE = 16_000


def to_mono_16k(samples: np.ndarray, rate: int) -> np.ndarray:
    import soxr

    if samples.ndim == 2:
        samples = samples.mean(axis=1)
    samples = samples.astype(np.float32, copy=False)
    if rate != WHISPER_RATE:
        samples = soxr.resample(samples, rate, WHISPER_RATE).astype(np.float32, copy=False)
    return samples


def decode_audio(data: bytes, *, raw_pcm16_rate: int | None = None,
                 max_seconds: float | None = None) -> tuple[np.ndarray, float]:
    """WAV/FLAC/OGG by content, or raw little-endian PCM16 when ``raw_pcm16_rate`` is given.

    Returns (16 kHz mono float32, duration in seconds of the input). The header is read first: a sample
    rate outside 8..192 kHz, or a duration over ``max_seconds``, is refused before anything is decoded (a
    2 KB WAV claiming 1 Hz decoded and resampled to 64 MB; 500 KB of it, to 16 GB).
    """
    import soundfile as sf

    if not data:
        raise ServingError(400, "empty_audio", "the audio is empty")
    if raw_pcm16_rate is not None:
        if not 8_000 <= raw_pcm16_rate <= 48_000:
            raise ServingError(400, "invalid_sample_rate", f"sample_rate must be 8000..48000 Hz, got {raw_pcm16_rate}")
        if len(data) % 2:
            raise ServingError(400, "invalid_audio", "raw PCM16 audio must have an even number of bytes")
        samples = np.frombuffer(data, dtype="<i2").astype(np.float32) / 32768.0
        rate = raw_pcm16_rate
    else:
        try:
            info = sf.info(io.BytesIO(data))
        except (sf.LibsndfileError, RuntimeError, TypeError) as e:
            raise ServingError(
                415, "unsupported_audio_format",
                f"cannot decode the audio ({e}); send WAV (PCM), FLAC or OGG, or raw PCM16 with sample_rate",
            ) from None
        if not 8_000 <= info.samplerate <= 192_000:
            raise ServingError(400, "invalid_sample_rate", f"the audio's sample rate is {info.samplerate} Hz; "
                               "8000..192000 Hz is accepted")
        if max_seconds is not None and info.frames / info.samplerate > max_seconds:
            raise ServingError(413, "audio_too_long", f"audio lasts {info.frames / info.samplerate:.1f} s; the limit "
                               f"is {max_seconds:.0f} s")
        try:
            samples, rate = sf.read(io.BytesIO(data), dtype="float32", always_2d=False)
        except (sf.LibsndfileError, RuntimeError, TypeError) as e:
            raise ServingError(
                415, "unsupported_audio_format",
                f"cannot decode the audio ({e}); send WAV (PCM), FLAC or OGG, or raw PCM16 with sample_rate",
            ) from None
    if samples.size == 0:
        raise ServingError(400, "empty_audio", "the audio has no samples")
    if not np.isfinite(samples).all():   # a float WAV of NaN: Whisper decoded it into a full-length hallucination
        raise ServingError(400, "invalid_audio", "the audio holds samples that are not numbers (NaN or infinity)")
    duration = (samples.shape[0]) / float(rate)
    return to_mono_16k(samples, rate), duration
