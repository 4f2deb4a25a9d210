"""RTP media for the SIP channel (RFC 3550 packets, RFC 4733 DTMF sending, a G.711 jitter buffer).

Everything here is pure computation on bytes and caller-supplied clocks (``arrival``/``now`` in seconds, any
monotonic origin), so the socket loop stays trivial and every timing path is testable without sleeping.
"""

from __future__ import annotations

import secrets
import struct
from collections import deque
from dataclasses import dataclass

import numpy as np

from gateway.voice.codec import alaw_decode, alaw_encode, ulaw_decode, ulaw_encode

__all__ = [
    "DTMF_EVENT_CODES",
    "JitterBuffer",
    "PT_PCMA",
    "PT_PCMU",
    "RtpError",
    "RtpPacket",
    "RtpSender",
    "parse_rtp",
]

PT_PCMU = 0
PT_PCMA = 8

# RFC 4733 section 3.2: events 0-15 are the DTMF keys, in this order.
DTMF_EVENT_CODES = "0123456789*#ABCD"

_HEADER = struct.Struct("!BBHII")
_SEQ_MOD = 1 << 16
_TS_MOD = 1 << 32
_MAX_DTMF_DURATION = 0xFFFF  # the duration field is 16 bits; longer events would need RFC 4733 segmenting


class RtpError(ValueError):
    """Malformed or unrepresentable RTP: the one exception a socket loop has to catch for hostile input."""


@dataclass
class RtpPacket:
    """One RTP packet (RFC 3550 section 5.1).

    ``extension`` is the whole header-extension block as on the wire (16-bit profile id, 16-bit length in
    words, data), so unknown extensions survive a round trip untouched. ``padding`` only records that padding
    was present: ``to_bytes`` pads to a 4-byte boundary (1-4 bytes) whatever the original padding length.
    """

    version: int = 2
    padding: bool = False
    marker: bool = False
    payload_type: int = 0
    sequence: int = 0
    timestamp: int = 0
    ssrc: int = 0
    csrcs: tuple[int, ...] = ()
    extension: bytes | None = None
    payload: bytes = b""

    def to_bytes(self) -> bytes:
        """Serialise; out-of-range fields raise ``RtpError`` rather than being silently masked."""
        if not 0 <= self.version <= 3:
            raise RtpError(f"version {self.version} does not fit in 2 bits")
        if not 0 <= self.payload_type <= 127:
            raise RtpError(f"payload type {self.payload_type} does not fit in 7 bits")
        if not 0 <= self.sequence < _SEQ_MOD:
            raise RtpError(f"sequence {self.sequence} does not fit in 16 bits")
        for name, value in (("timestamp", self.timestamp), ("ssrc", self.ssrc), *(("csrc", c) for c in self.csrcs)):
            if not 0 <= value < _TS_MOD:
                raise RtpError(f"{name} {value} does not fit in 32 bits")
        if len(self.csrcs) > 15:
            raise RtpError(f"at most 15 CSRCs fit in a header, got {len(self.csrcs)}")
        b0 = (self.version << 6) | (0x20 if self.padding else 0) | (0x10 if self.extension is not None else 0)
        parts = [
            _HEADER.pack(b0 | len(self.csrcs), (0x80 if self.marker else 0) | self.payload_type, self.sequence,
                         self.timestamp, self.ssrc),
            struct.pack(f"!{len(self.csrcs)}I", *self.csrcs),
        ]
        if self.extension is not None:
            ext = bytes(self.extension)
            if len(ext) < 4 or len(ext) % 4 or struct.unpack_from("!H", ext, 2)[0] * 4 != len(ext) - 4:
                raise RtpError("extension must be profile id, length in 32-bit words, then exactly that much data")
            parts.append(ext)
        parts.append(bytes(self.payload))
        if self.padding:
            pad = 4 - len(self.payload) % 4
            parts.append(bytes(pad - 1) + bytes([pad]))
        return b"".join(parts)


def parse_rtp(data: bytes | bytearray | memoryview) -> RtpPacket:
    """Parse one datagram; anything malformed raises ``RtpError`` (never IndexError/struct.error)."""
    try:
        buf = bytes(data)
    except TypeError as exc:
        raise RtpError(f"not a byte string: {type(data).__name__}") from exc
    size = len(buf)
    if size < _HEADER.size:
        raise RtpError(f"{size} bytes is shorter than the 12-byte RTP header")
    b0, b1, sequence, timestamp, ssrc = _HEADER.unpack_from(buf)
    if b0 >> 6 != 2:
        raise RtpError(f"RTP version {b0 >> 6}, expected 2")
    count = b0 & 0x0F
    offset = _HEADER.size + 4 * count
    if size < offset:
        raise RtpError(f"header declares {count} CSRCs but the packet is only {size} bytes")
    csrcs = struct.unpack_from(f"!{count}I", buf, _HEADER.size)
    extension = None
    if b0 & 0x10:
        if size < offset + 4:
            raise RtpError("extension bit set but no room for the extension header")
        end = offset + 4 + 4 * struct.unpack_from("!H", buf, offset + 2)[0]
        if size < end:
            raise RtpError(f"extension runs to byte {end} of a {size}-byte packet")
        extension, offset = buf[offset:end], end
    end = size
    if b0 & 0x20:
        pad = buf[-1] if size > offset else 0
        if pad == 0 or pad > size - offset:
            raise RtpError(f"padding count {pad} does not fit the {size - offset} bytes after the header")
        end = size - pad
    return RtpPacket(
        version=2,
        padding=bool(b0 & 0x20),
        marker=bool(b1 & 0x80),
        payload_type=b1 & 0x7F,
        sequence=sequence,
        timestamp=timestamp,
        ssrc=ssrc,
        csrcs=csrcs,
        extension=extension,
        payload=buf[offset:end],
    )


class RtpSender:
    """Outgoing G.711 at 20 ms: 160 samples per packet, sequence +1 (wraps at 2^16), timestamp +160 (wraps
    at 2^32), marker bit on the first packet of a talkspurt (after silence/pause), random initial
    seq/timestamp/SSRC (RFC 3550 section 5.1: makes known-plaintext attacks and stream confusion harder).

    ``sequence`` and ``timestamp`` are the values the *next* packet will carry; they are public so a call can
    be resumed (or tests can start next to a wrap). The timestamp advances by ``samples_per_packet`` per
    packet regardless of payload length: pad a short last frame with silence before sending it.
    """

    def __init__(self, payload_type: int, ssrc: int | None = None, clock_rate: int = 8000, ptime_ms: int = 20) -> None:
        if not 0 <= payload_type <= 127:
            raise ValueError(f"payload type {payload_type} does not fit in 7 bits")
        if clock_rate <= 0 or ptime_ms <= 0 or clock_rate * ptime_ms % 1000:
            raise ValueError(f"{ptime_ms} ms at {clock_rate} Hz is not a whole number of samples")
        self.payload_type = payload_type
        self.ssrc = secrets.randbits(32) if ssrc is None else ssrc
        if not 0 <= self.ssrc < _TS_MOD:
            raise ValueError(f"SSRC {ssrc} does not fit in 32 bits")
        self.clock_rate = clock_rate
        self.ptime_ms = ptime_ms
        self.samples_per_packet = clock_rate * ptime_ms // 1000
        self.sequence = secrets.randbits(16)
        self.timestamp = secrets.randbits(32)
        self._talkspurt_pending = True  # the very first packet starts a talkspurt

    def _next(self, payload_type: int, timestamp: int, payload: bytes, marker: bool) -> bytes:
        """Serialise with the current sequence number and consume it."""
        data = RtpPacket(marker=marker, payload_type=payload_type, sequence=self.sequence, timestamp=timestamp,
                         ssrc=self.ssrc, payload=payload).to_bytes()
        self.sequence = (self.sequence + 1) % _SEQ_MOD
        return data

    def packet(self, payload: bytes, *, new_talkspurt: bool = False) -> bytes:
        """One media packet; the marker lets the far end re-anchor its jitter buffer after a pause."""
        marker = new_talkspurt or self._talkspurt_pending
        self._talkspurt_pending = False
        data = self._next(self.payload_type, self.timestamp, payload, marker)
        self.timestamp = (self.timestamp + self.samples_per_packet) % _TS_MOD
        return data

    def skip(self, samples: int) -> None:
        """Silence not sent: the timestamp keeps real time (sequence does not), next packet gets the marker."""
        if samples < 0:
            raise ValueError("cannot skip a negative number of samples")
        self.timestamp = (self.timestamp + samples) % _TS_MOD
        self._talkspurt_pending = True

    def dtmf_packets(self, digit: str, duration_ms: int = 160, volume: int = 10, event_pt: int = 101) -> list[bytes]:
        """RFC 4733 packets for one key press, to be sent one per ``ptime`` (the end packet three times).

        All packets carry the event's start timestamp, the first has the marker, durations grow by one packet
        time, and the final duration is sent three times with the end bit so one lost packet cannot make the
        far end miss or stretch the key. Audio then resumes after the event (timestamp advanced by its length)
        as a new talkspurt. The event replaces audio for its duration: don't send media packets in between.
        """
        code = DTMF_EVENT_CODES.find(digit.upper()) if len(digit) == 1 else -1
        if code < 0:
            raise ValueError(f"not a DTMF key: {digit!r} (expected one of {DTMF_EVENT_CODES})")
        if not 0 <= volume <= 63:
            raise ValueError(f"volume {volume} (-dBm0) does not fit in 6 bits")
        if not 0 <= event_pt <= 127:
            raise ValueError(f"payload type {event_pt} does not fit in 7 bits")
        total = duration_ms * self.clock_rate // 1000
        if not 0 < total <= _MAX_DTMF_DURATION:
            raise ValueError(f"duration {duration_ms} ms must be positive and at most {_MAX_DTMF_DURATION} samples")
        start = self.timestamp
        durations = list(range(self.samples_per_packet, total, self.samples_per_packet))
        packets = []
        for index, duration in enumerate(durations):
            payload = struct.pack("!BBH", code, volume, duration)
            packets.append(self._next(event_pt, start, payload, marker=index == 0))
        end_payload = struct.pack("!BBH", code, 0x80 | volume, total)
        for index in range(3):
            packets.append(self._next(event_pt, start, end_payload, marker=not durations and index == 0))
        self.timestamp = (start + total) % _TS_MOD
        self._talkspurt_pending = True
        return packets


class JitterBuffer:
    """Reorders and de-duplicates incoming packets, waits at most ``depth_ms`` for a late one, then conceals
    the gap (repeat last frame attenuated, or silence), and reports stats.

    Playout runs ``depth_ms`` behind the arrival of the first packet (re-anchored after every underrun), one
    slot per ``ptime_ms``; a slot is tied to a sequence number, unwrapped to 64 bits so 65535 → 0 is seamless.
    When a slot is due and its packet is missing but a later one is buffered, the missing one is concealed
    (counted ``lost``): the first frame repeats the last one at -6 dB, the second at -12 dB, then silence.
    When nothing at all is buffered (the far end paused, e.g. silence suppression, or the network stalled)
    playout stops and nothing is returned, so no loss is invented; the next arrival re-anchors playout, which
    also absorbs slow clock drift. Packets of another payload type (RFC 4733 events, comfort noise) keep their
    sequence slot and play out as silence, so DTMF never counts as loss.

    Only G.711 (``payload_type`` 0 = PCMU, 8 = PCMA) can be concealed: attenuation means decoding the frame.
    ``stats``: received, duplicates, late (arrived after its slot was played), lost (concealed), reordered,
    plus dropped (outside the sequence window, one probe per resync), resets (SSRC change or sequence resync).
    On a reset the old stream's buffered frames are not discarded: the next ``pop`` returns them first (gaps
    closed, no concealment), so a re-INVITE or transfer loses no audio at the cost of a short burst.
    """

    MAX_MISORDER = 100  # RFC 3550 appendix A.1: further behind than this is a restarted sender, not a late packet

    def __init__(self, depth_ms: int = 60, ptime_ms: int = 20, clock_rate: int = 8000, *, payload_type: int = PT_PCMU) -> None:
        if payload_type not in (PT_PCMU, PT_PCMA):
            raise ValueError(f"only G.711 can be concealed (payload type 0 or 8), got {payload_type}")
        if depth_ms < 0 or ptime_ms <= 0 or clock_rate * ptime_ms % 1000:
            raise ValueError(f"bad timing: depth {depth_ms} ms, ptime {ptime_ms} ms at {clock_rate} Hz")
        self.depth_s = depth_ms / 1000
        self.ptime_s = ptime_ms / 1000
        self.payload_type = payload_type
        self.frame_bytes = clock_rate * ptime_ms // 1000  # G.711: one byte per sample
        self._encode, self._decode = (ulaw_encode, ulaw_decode) if payload_type == PT_PCMU else (alaw_encode, alaw_decode)
        self._silence = self._encode(bytes(2 * self.frame_bytes))
        # Room for the jitter depth plus slack: enough for bursts, small enough that a bogus jump can't grow memory.
        self.max_backlog = max(4 * -(-depth_ms // ptime_ms), 16)
        self.stats: dict[str, int] = dict.fromkeys(
            ("received", "duplicates", "late", "lost", "reordered", "dropped", "resets"), 0)
        self._ssrc: int | None = None
        self._probe: int | None = None
        self._last: bytes | None = None
        self._flush: list[bytes] = []  # the previous stream's tail, played ahead of the new one
        self._reset()

    def _reset(self) -> None:
        """Forget the stream position (new SSRC or a resync); audio still buffered is handed to the next pop."""
        for ext in sorted(getattr(self, "_buf", {})):
            payload = self._buf[ext]
            self._flush.append(self._silence if payload is None else payload)
        self._buf: dict[int, bytes | None] = {}  # extended seq → payload, None for a non-audio slot
        self._played: deque[int] = deque(maxlen=self.MAX_MISORDER)  # recent real plays, to tell dups from late
        self._next: int | None = None  # extended sequence number of the next slot to play
        self._highest = 0
        self._playing = False
        self._started = False  # a slot has been played since the stream was anchored
        self._anchor_time = 0.0
        self._slots_since_anchor = 0
        self._conceal_run = 0

    def _extend(self, seq: int) -> int:
        """Unwrap a 16-bit sequence number to the one nearest the highest seen (RFC 3550 appendix A.1)."""
        return self._highest + (seq - self._highest + _SEQ_MOD // 2) % _SEQ_MOD - _SEQ_MOD // 2

    def _anchor(self, arrival: float) -> None:
        self._playing = True
        self._anchor_time = arrival + self.depth_s
        self._slots_since_anchor = 0

    def push(self, packet: RtpPacket, arrival: float) -> None:
        """Accept one packet from the socket; hostile or stale packets only move counters."""
        self.stats["received"] += 1
        if packet.ssrc != self._ssrc:
            if self._ssrc is not None:
                self.stats["resets"] += 1
            self._ssrc = packet.ssrc
            self._reset()
        if self._next is None:
            self._highest = packet.sequence
            self._next = packet.sequence
        ext = self._extend(packet.sequence)
        if not self._next - self.MAX_MISORDER <= ext < self._next + self.max_backlog:
            # Out of window: a restarted sender or garbage. Resync only when two consecutive packets agree.
            if packet.sequence == self._probe:
                self.stats["resets"] += 1
                self._reset()
                self._highest = self._next = ext = packet.sequence
                self._probe = None
            else:
                self.stats["dropped"] += 1
                self._probe = (packet.sequence + 1) % _SEQ_MOD
                return
        self._probe = None
        if ext in self._buf or ext in self._played:
            self.stats["duplicates"] += 1
            return
        if ext < self._next:
            if self._started or self._next - ext >= self.max_backlog:
                self.stats["late"] += 1
                return
            self._next = ext  # reordered before playout began: its slot has not been played yet
        if ext < self._highest:
            self.stats["reordered"] += 1
        self._highest = max(self._highest, ext)
        self._buf[ext] = bytes(packet.payload) if packet.payload_type == self.payload_type else None
        if not self._playing:
            self._anchor(arrival)

    def _conceal(self) -> bytes:
        """Fade the last frame out over two slots (-6, -12 dB), then silence: avoids clicks and robotic loops."""
        self._conceal_run += 1
        if self._last is None or self._conceal_run > 2:
            return self._silence
        pcm = np.frombuffer(self._decode(self._last), dtype="<i2").astype(np.int32)
        return self._encode((pcm >> self._conceal_run).astype("<i2").tobytes())

    def pop(self, now: float) -> list[bytes]:
        """Payloads (or concealment/silence frames) whose playout time has come, in sequence order."""
        out, self._flush = self._flush, []
        while self._playing and self._next is not None:
            if now < self._anchor_time + self._slots_since_anchor * self.ptime_s:
                break
            if self._next in self._buf:
                payload = self._buf.pop(self._next)
                if payload is None:
                    out.append(self._silence)
                else:
                    out.append(payload)
                    self._last = payload
                    self._conceal_run = 0
                self._played.append(self._next)
            elif self._buf:
                out.append(self._conceal())
                self.stats["lost"] += 1
            else:
                self._playing = False  # underrun: wait for the next arrival instead of inventing loss
                break
            self._next += 1
            self._slots_since_anchor += 1
            self._started = True
        return out

    @property
    def buffered(self) -> int:
        """Packets waiting for their slot (for metrics and tests)."""
        return len(self._buf)
