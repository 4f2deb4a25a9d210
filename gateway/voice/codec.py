"""PCM16 and G.711 (µ-law / A-law) conversion, bit-exact with the stdlib ``audioop`` it replaces.

``audioop`` is gone in Python 3.13, and per-sample Python loops are far too slow for telephony, so every
conversion is a single numpy lookup (``np.take``, about twice as fast as fancy indexing): a 65536-entry encode
table indexed by the PCM value's uint16 view and a 256-entry decode table, both built once at import.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "SILENCE_DBFS",
    "alaw_decode",
    "alaw_encode",
    "float_to_pcm16",
    "pcm16_to_float",
    "rms_dbfs",
    "ulaw_decode",
    "ulaw_encode",
]

# Level reported for silence (and anything quieter): a finite floor keeps metrics, JSON and comparisons sane.
SILENCE_DBFS = -120.0

_PCM16 = np.dtype("<i2")
_UINT16 = np.dtype("<u2")
_FULL_SCALE = 32768.0


def _check_pcm16(pcm16: bytes) -> None:
    """A dangling byte means the caller split a sample in two: fail loudly rather than shift the stream."""
    if len(pcm16) % 2:
        raise ValueError(f"PCM16 input must have an even number of bytes (2 per sample), got {len(pcm16)}")


def _build_ulaw_encode() -> np.ndarray:
    """Mirror audioop's st_14linear2ulaw(sample >> 2): 14-bit magnitude, clip at 8159, bias 33, invert."""
    pcm = np.arange(-32768, 32768, dtype=np.int32) >> 2  # arithmetic shift, as in C
    mask = np.where(pcm < 0, 0x7F, 0xFF)
    mag = np.minimum(np.abs(pcm), 8159) + 33
    seg = np.searchsorted(np.array([0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF]), mag)
    # Clipped magnitudes land at 8192, one past the last segment: audioop answers 0x7F (pre-mask) there.
    code = np.where(seg >= 8, 0x7F, (seg << 4) | ((mag >> (seg + 1)) & 0xF)) ^ mask
    return _reindex_by_uint16(code.astype(np.uint8))


def _build_alaw_encode() -> np.ndarray:
    """Mirror audioop's st_linear2alaw(sample >> 3): 13-bit one's-complement magnitude, even-bit inversion."""
    pcm = np.arange(-32768, 32768, dtype=np.int32) >> 3
    mask = np.where(pcm >= 0, 0xD5, 0x55)
    mag = np.where(pcm >= 0, pcm, -pcm - 1)  # 0..4095, never out of range
    seg = np.searchsorted(np.array([0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF]), mag)  # 0..7
    quant = np.where(seg < 2, mag >> 1, mag >> np.maximum(seg, 1)) & 0xF
    code = ((seg << 4) | quant) ^ mask
    return _reindex_by_uint16(code.astype(np.uint8))


def _reindex_by_uint16(by_signed: np.ndarray) -> np.ndarray:
    """Tables are computed in signed order (-32768..32767) but looked up by the raw uint16 bit pattern."""
    return np.ascontiguousarray(np.roll(by_signed, -32768))


def _build_ulaw_decode() -> np.ndarray:
    """Standard G.711 µ-law expansion to 16 bits (audioop's _st_ulaw2linear16 table)."""
    u = ~np.arange(256, dtype=np.int32) & 0xFF
    t = (((u & 0x0F) << 3) + 0x84) << ((u & 0x70) >> 4)
    return np.where(u & 0x80, 0x84 - t, t - 0x84).astype(_PCM16)


def _build_alaw_decode() -> np.ndarray:
    """Standard G.711 A-law expansion to 16 bits (audioop's _st_alaw2linear16 table)."""
    a = np.arange(256, dtype=np.int32) ^ 0x55
    seg = (a & 0x70) >> 4
    t = ((a & 0x0F) << 4) + np.where(seg == 0, 8, 0x108)
    t = np.where(seg > 1, t << np.maximum(seg - 1, 0), t)
    return np.where(a & 0x80, t, -t).astype(_PCM16)


_ULAW_ENCODE = _build_ulaw_encode()
_ALAW_ENCODE = _build_alaw_encode()
_ULAW_DECODE = _build_ulaw_decode()
_ALAW_DECODE = _build_alaw_decode()
for _table in (_ULAW_ENCODE, _ALAW_ENCODE, _ULAW_DECODE, _ALAW_DECODE):
    _table.setflags(write=False)


def ulaw_encode(pcm16: bytes) -> bytes:
    """Little-endian signed 16-bit mono → µ-law, one byte per sample (== ``audioop.lin2ulaw(pcm16, 2)``)."""
    _check_pcm16(pcm16)
    return np.take(_ULAW_ENCODE, np.frombuffer(pcm16, dtype=_UINT16)).tobytes()


def ulaw_decode(ulaw: bytes) -> bytes:
    """µ-law → PCM16 LE (== ``audioop.ulaw2lin(ulaw, 2)``)."""
    return np.take(_ULAW_DECODE, np.frombuffer(ulaw, dtype=np.uint8)).tobytes()


def alaw_encode(pcm16: bytes) -> bytes:
    """Little-endian signed 16-bit mono → A-law, one byte per sample (== ``audioop.lin2alaw(pcm16, 2)``)."""
    _check_pcm16(pcm16)
    return np.take(_ALAW_ENCODE, np.frombuffer(pcm16, dtype=_UINT16)).tobytes()


def alaw_decode(alaw: bytes) -> bytes:
    """A-law → PCM16 LE (== ``audioop.alaw2lin(alaw, 2)``)."""
    return np.take(_ALAW_DECODE, np.frombuffer(alaw, dtype=np.uint8)).tobytes()


def pcm16_to_float(pcm16: bytes) -> np.ndarray:
    """PCM16 LE → float32 in [-1, 1); dividing by 32768 makes the round trip through float_to_pcm16 exact."""
    _check_pcm16(pcm16)
    return np.frombuffer(pcm16, dtype=_PCM16).astype(np.float32) * np.float32(1.0 / _FULL_SCALE)


def float_to_pcm16(x: np.ndarray) -> bytes:
    """Float samples (nominally [-1, 1]) → PCM16 LE; clipped rather than wrapped, NaN → 0, round half to even."""
    samples = np.nan_to_num(np.asarray(x, dtype=np.float32).ravel(), nan=0.0, posinf=1.0, neginf=-1.0)
    scaled = np.clip(samples, -1.0, 1.0) * np.float32(_FULL_SCALE)  # clip first: scaling huge values overflows
    return np.clip(np.rint(scaled), -32768, 32767).astype(_PCM16).tobytes()


def rms_dbfs(pcm16: bytes) -> float:
    """RMS level of a frame in dBFS (full-scale square wave = 0); silence or empty → ``SILENCE_DBFS``."""
    _check_pcm16(pcm16)
    samples = np.frombuffer(pcm16, dtype=_PCM16).astype(np.float64)
    if samples.size == 0:
        return SILENCE_DBFS
    mean_square = float(np.dot(samples, samples)) / samples.size
    if mean_square == 0.0:
        return SILENCE_DBFS
    return max(SILENCE_DBFS, 10.0 * float(np.log10(mean_square)) - 20.0 * float(np.log10(_FULL_SCALE)))
