"""Fixed-duration framing of a PCM16 stream.

Transports hand over audio in whatever sizes they like (RTP packets, WebSocket messages, TTS chunks), while
VAD, level meters and RTP packetisation want exact frames: this buffer turns the one into the other.
"""

from __future__ import annotations

__all__ = ["FrameBuffer"]


class FrameBuffer:
    """Collects arbitrary-size PCM16 chunks and yields fixed-duration frames (e.g. 20 ms at 16 kHz = 640 bytes).

    Chunks may split a sample across pushes; bytes are simply carried over until a frame is complete.
    """

    def __init__(self, sample_rate: int, frame_ms: int) -> None:
        if sample_rate <= 0 or frame_ms <= 0:
            raise ValueError(f"sample_rate and frame_ms must be positive, got {sample_rate} Hz, {frame_ms} ms")
        samples, remainder = divmod(sample_rate * frame_ms, 1000)
        if remainder:
            # A fractional frame would drift against the clock; better to refuse than to round silently.
            raise ValueError(f"{frame_ms} ms at {sample_rate} Hz is not a whole number of samples")
        self.sample_rate = sample_rate
        self.frame_ms = frame_ms
        self.frame_bytes: int = samples * 2
        self._buf = bytearray()

    def push(self, pcm16: bytes) -> list[bytes]:
        """Add a chunk and return every complete frame now available, oldest first."""
        self._buf += pcm16
        size = self.frame_bytes
        count = len(self._buf) // size
        if count == 0:
            return []
        view = memoryview(self._buf)
        try:
            frames = [bytes(view[i * size : (i + 1) * size]) for i in range(count)]
        finally:
            view.release()  # a live export would forbid resizing the bytearray below
        del self._buf[: count * size]
        return frames

    def pending(self) -> int:
        """Bytes held back, waiting for the rest of a frame."""
        return len(self._buf)
