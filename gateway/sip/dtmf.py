"""RFC 4733 telephone-event receive side: one ``DtmfEvent`` per key press, whatever the network did.

A key press arrives as a burst of packets sharing one RTP timestamp (the event start), with a growing
duration and (usually three) retransmitted end packets. Callers want "the caller pressed 5", exactly once.
"""

from __future__ import annotations

import struct
from collections import deque
from dataclasses import dataclass

from gateway.sip.rtp import DTMF_EVENT_CODES, RtpError, RtpPacket

__all__ = ["DtmfEvent", "DtmfReceiver", "parse_event"]

_TS_MOD = 1 << 32


@dataclass(frozen=True)
class DtmfEvent:
    """One key press: ``timestamp`` is the RTP timestamp of its start (identifies the press on the wire)."""

    digit: str
    duration_ms: int
    timestamp: int


def parse_event(payload: bytes) -> tuple[str, bool, int, int]:
    """Return (digit "0-9*#A-D", end bit, volume, duration in samples); other events or bad sizes raise ``RtpError``.

    Only the first 4-byte event block is read: RFC 4733 allows several blocks per packet (redundancy) but the
    first one always describes the current event.
    """
    if len(payload) < 4:
        raise RtpError(f"telephone-event payload is {len(payload)} bytes, need 4")
    code, flags, duration = struct.unpack_from("!BBH", payload)
    if code >= len(DTMF_EVENT_CODES):
        raise RtpError(f"telephone event {code} is not a DTMF key (0-15)")
    return DTMF_EVENT_CODES[code], bool(flags & 0x80), flags & 0x3F, duration


def _is_newer(ts: int, than: int) -> bool:
    """Serial-number comparison of 32-bit timestamps, so the wrap at 2^32 is not mistaken for the past."""
    return 0 < (ts - than) % _TS_MOD < _TS_MOD // 2


@dataclass
class _Pending:
    digit: str
    timestamp: int
    duration: int
    last_seen: float


class DtmfReceiver:
    """Turns the stream of telephone-event packets into one event per key press: retransmitted end packets
    (usually three) and repeated packets with the same timestamp yield one event; an event whose end packet
    was lost is emitted when a new timestamp arrives or after a timeout.

    Events are reported at key release (end packet), which is when the duration is known. Packets for a press
    already reported, or older than the newest press seen (reordered stragglers), are ignored; a new SSRC
    starts afresh (after flushing a press still open), and so does an older timestamp that comes more than
    ``straggler_s`` after the last packet: no network holds a straggler that long, so the sender's clock
    jumped back under the same SSRC (a B2BUA or a PBX re-anchoring media after hold or transfer), and its
    presses would otherwise all be dropped until the clock passed the old one again. Malformed and non-DTMF
    events (flash, tones) are ignored.
    """

    def __init__(self, clock_rate: int = 8000, timeout_s: float = 0.5, straggler_s: float = 2.0) -> None:
        self.clock_rate = clock_rate
        self.timeout_s = timeout_s
        self.straggler_s = straggler_s
        self._last_at: float | None = None  # when the last telephone-event packet of this SSRC came
        self._ssrc: int | None = None
        self._pending: _Pending | None = None
        self._newest: int | None = None  # start timestamp of the newest press seen on this SSRC
        self._done: deque[int] = deque(maxlen=16)  # start timestamps already reported

    def _emit(self) -> list[DtmfEvent]:
        pending, self._pending = self._pending, None
        if pending is None:
            return []
        self._done.append(pending.timestamp)
        return [DtmfEvent(pending.digit, pending.duration * 1000 // self.clock_rate, pending.timestamp)]

    def push(self, packet: RtpPacket, now: float) -> list[DtmfEvent]:
        """Feed one telephone-event packet; returns the presses it completed (0, 1, or 2 when it also closed one)."""
        try:
            digit, end, _volume, duration = parse_event(packet.payload)
        except RtpError:
            return []
        out: list[DtmfEvent] = []
        if packet.ssrc != self._ssrc:
            out += self._emit()
            self._ssrc, self._newest, self._last_at = packet.ssrc, None, None
            self._done.clear()
        ts = packet.timestamp
        older = self._newest is not None and ts != self._newest and not _is_newer(ts, self._newest)
        if older and ts not in self._done and self._last_at is not None and now - self._last_at > self.straggler_s:
            out += self._emit()       # the clock jumped back: a new timeline on the same SSRC
            self._newest, older = None, False
            self._done.clear()
        self._last_at = now
        if ts in self._done or older:
            return out
        if self._pending is not None and self._pending.timestamp != ts:
            out += self._emit()  # its end packets were all lost: the new press closes it
        self._newest = ts
        if self._pending is None:
            self._pending = _Pending(digit, ts, duration, now)
        else:
            self._pending.duration = max(self._pending.duration, duration)
            self._pending.last_seen = now
        if end:
            out += self._emit()
        return out

    def poll(self, now: float) -> list[DtmfEvent]:
        """Report a press whose packets stopped without an end packet for ``timeout_s``; call on a timer."""
        if self._pending is not None and now - self._pending.last_seen >= self.timeout_s:
            return self._emit()
        return []
