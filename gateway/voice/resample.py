"""Streaming PCM16 resampling on soxr.

Telephony (8 kHz), ASR (16 kHz) and TTS (22.05/24 kHz) rates meet in the gateway, and audio arrives in
small chunks: resampling each chunk on its own would restart the filter every time and click at the borders,
so one soxr stream carries the filter state across calls.

soxr runs in float32 here, not int16: its int16 output path adds TPDF dither with a per-stream random seed,
so digital silence came out as ±1 LSB noise and the same input gave different bytes on every run (and per
chunking). Float32 holds 16-bit samples exactly; the one rounding and clipping step back to int16 is ours.
"""

from __future__ import annotations

import numpy as np
import soxr

__all__ = ["StreamResampler", "resample"]

_PCM16 = np.dtype("<i2")
_SCALE = np.float32(32768.0)  # a power of two: scaling in and out is exact
_EMPTY = np.zeros(0, dtype=np.float32)


def _to_float(pcm16: bytes) -> np.ndarray:
    """PCM16 bytes → float32 in [-1, 1); an odd length means a sample was split, which would shift the stream."""
    if len(pcm16) % 2:
        raise ValueError(f"PCM16 input must have an even number of bytes (2 per sample), got {len(pcm16)}")
    return np.frombuffer(pcm16, dtype=_PCM16).astype(np.float32) / _SCALE


def _to_pcm16(samples: np.ndarray) -> bytes:
    """Round to nearest and clip: the filter's ringing may overshoot full scale slightly near a clipped input."""
    return np.clip(np.rint(samples * _SCALE), -32768, 32767).astype(_PCM16).tobytes()


class StreamResampler:
    """PCM16 mono in at ``in_rate``, out at ``out_rate``, chunk by chunk, no clicks at chunk borders.

    The filter holds back a few milliseconds of output; ``flush()`` releases that tail at the end of a stream
    and resets the resampler, so the same object can serve the next utterance. Output does not depend on how
    the input was chunked, and silence stays exactly silent.
    """

    def __init__(self, in_rate: int, out_rate: int, quality: str = "HQ") -> None:
        if in_rate <= 0 or out_rate <= 0:
            raise ValueError(f"sample rates must be positive, got {in_rate} -> {out_rate}")
        self.in_rate = in_rate
        self.out_rate = out_rate
        self.quality = quality
        # Same rate: skip soxr entirely so the audio passes through bit-exact and without delay.
        self._stream: soxr.ResampleStream | None = (
            None if in_rate == out_rate else soxr.ResampleStream(in_rate, out_rate, 1, dtype="float32", quality=quality)
        )

    def process(self, pcm16: bytes) -> bytes:
        """Resample one chunk; may return less than the rate ratio implies while the filter fills."""
        samples = _to_float(pcm16)
        if self._stream is None:
            return bytes(pcm16)
        if samples.size == 0:
            return b""
        return _to_pcm16(self._stream.resample_chunk(samples))

    def flush(self) -> bytes:
        """The tail held by the filter; afterwards the resampler starts a fresh stream."""
        if self._stream is None:
            return b""
        tail = self._stream.resample_chunk(_EMPTY, last=True)
        self._stream.clear()  # soxr refuses input after ``last=True`` until cleared
        return _to_pcm16(tail)


def resample(pcm16: bytes, in_rate: int, out_rate: int) -> bytes:
    """One-shot convenience: the whole buffer through a fresh stream, tail included, so it equals streaming."""
    resampler = StreamResampler(in_rate, out_rate)
    return resampler.process(pcm16) + resampler.flush()
