"""SIP media: RTP headers must survive hostile bytes with one exception type, the sender must follow RFC 3550
and RFC 4733 to the bit (wraps included), and the jitter buffer must turn a messy network into an ordered
stream without inventing or hiding loss."""

from __future__ import annotations

import random
import struct

import numpy as np
import pytest

from gateway.sip.dtmf import DtmfEvent, DtmfReceiver, parse_event
from gateway.sip.rtp import JitterBuffer, RtpError, RtpPacket, RtpSender, parse_rtp
from gateway.voice.codec import ulaw_decode, ulaw_encode

FRAME = 160


def tone(freq: float, seconds: float, rate: int = 8000, amplitude: float = 0.5) -> bytes:
    t = np.arange(int(seconds * rate)) / rate
    return (np.sin(2 * np.pi * freq * t) * amplitude * 32767).astype("<i2").tobytes()


def frame(i: int) -> bytes:
    """A distinct, recognisable 160-byte payload per index."""
    return struct.pack("!H", i % 65536) * (FRAME // 2)


def pkt(seq: int, *, ssrc: int = 0x1234, ts: int | None = None, pt: int = 0, payload: bytes | None = None) -> RtpPacket:
    return RtpPacket(payload_type=pt, sequence=seq % 65536, timestamp=(seq * FRAME if ts is None else ts) % 2**32,
                     ssrc=ssrc, payload=frame(seq) if payload is None else payload)


def play(jb: JitterBuffer, arrivals: list[tuple[int, RtpPacket]], until_ms: int, tick_ms: int = 20) -> list[bytes]:
    """Drive the buffer on a 1 ms clock: deliver arrivals (ms, packet) and pop every ``tick_ms``."""
    queue = sorted(arrivals, key=lambda a: a[0])  # stable: same-ms arrivals keep their order
    out: list[bytes] = []
    i = 0
    for ms in range(until_ms + 1):
        while i < len(queue) and queue[i][0] <= ms:
            jb.push(queue[i][1], queue[i][0] / 1000)
            i += 1
        if ms % tick_ms == 0:
            out += jb.pop(ms / 1000)
    return out


# --- header -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "packet",
    [
        RtpPacket(),
        RtpPacket(marker=True, payload_type=101, sequence=65535, timestamp=2**32 - 1, ssrc=2**32 - 1, payload=b"x"),
        RtpPacket(csrcs=(1, 2**32 - 1, 7), payload=bytes(range(160))),
        RtpPacket(csrcs=tuple(range(15)), payload=b"abc"),
        RtpPacket(extension=b"\xbe\xde\x00\x01\x10\xff\x00\x00", payload=b"\x7f" * 160),
        RtpPacket(extension=b"\x10\x00\x00\x00", payload=b""),
        RtpPacket(padding=True, payload=b"12345"),
        RtpPacket(padding=True, payload=b"1234"),
        RtpPacket(padding=True, marker=True, payload_type=8, sequence=9, timestamp=10, ssrc=11, csrcs=(5,),
                  extension=b"\xbe\xde\x00\x00", payload=b"\xd5" * 160),
    ],
)
def test_header_round_trip(packet: RtpPacket) -> None:
    data = packet.to_bytes()
    assert parse_rtp(data) == packet
    assert parse_rtp(bytearray(data)) == packet
    assert parse_rtp(memoryview(data)) == packet


def test_header_wire_layout() -> None:
    data = RtpPacket(marker=True, payload_type=0, sequence=0x0102, timestamp=0x03040506, ssrc=0x0708090A,
                     csrcs=(0x0B0C0D0E,), payload=b"\xff").to_bytes()
    assert data == bytes.fromhex("81 80 0102 03040506 0708090a 0b0c0d0e ff")
    padded = RtpPacket(padding=True, payload=b"\x01").to_bytes()
    assert padded[0] & 0x20 and padded[-4:] == b"\x01\x00\x00\x03"
    # Foreign padding lengths (here 8) are accepted too.
    foreign = bytearray(RtpPacket(payload=b"ab").to_bytes() + bytes(7) + b"\x08")
    foreign[0] |= 0x20
    assert parse_rtp(bytes(foreign)).payload == b"ab"


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\x80\x00" + bytes(9),  # 11 bytes
        b"\x40" + bytes(11),  # version 1
        b"\xc0" + bytes(11),  # version 3
        b"\x00" + bytes(11),  # version 0
        b"\x82" + bytes(11) + bytes(4),  # 2 CSRCs declared, room for one
        b"\x90" + bytes(11),  # extension bit, no extension header
        b"\x90" + bytes(11) + b"\xbe\xde\x00\x02" + bytes(4),  # extension length 2 words, 1 present
        b"\xa0" + bytes(11),  # padding bit, nothing to pad
        b"\xa0" + bytes(11) + b"\x00",  # padding count 0
        b"\xa0" + bytes(11) + b"ab\x04",  # padding count beyond the payload
        b"\xb1" + bytes(11) + bytes(4) + b"\xbe\xde\x00\x00" + b"\x09",  # padding eats into the extension
    ],
)
def test_malformed_packets_raise_rtp_error(data: bytes) -> None:
    with pytest.raises(RtpError):
        parse_rtp(data)


def test_rtp_error_is_value_error_and_non_bytes_rejected() -> None:
    assert issubclass(RtpError, ValueError)
    with pytest.raises(RtpError):
        parse_rtp(12345)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "packet",
    [
        RtpPacket(payload_type=128),
        RtpPacket(sequence=65536),
        RtpPacket(timestamp=-1),
        RtpPacket(ssrc=2**32),
        RtpPacket(csrcs=tuple(range(16))),
        RtpPacket(csrcs=(2**32,)),
        RtpPacket(extension=b"\xbe\xde"),
        RtpPacket(extension=b"\xbe\xde\x00\x02\x00\x00\x00\x00"),
        RtpPacket(version=4),
    ],
)
def test_unrepresentable_fields_raise_rtp_error(packet: RtpPacket) -> None:
    with pytest.raises(RtpError):
        packet.to_bytes()


def test_fuzz_mutations_only_raise_rtp_error() -> None:
    rng = random.Random(4733)
    seeds = [
        RtpPacket(payload=b"\xff" * 160).to_bytes(),
        RtpPacket(padding=True, marker=True, csrcs=(1, 2, 3), extension=b"\xbe\xde\x00\x01abcd", payload=b"xyz").to_bytes(),
        RtpPacket(payload_type=101, payload=b"\x05\x8a\x05\x00").to_bytes(),
    ]
    parsed = rejected = 0
    for _ in range(2000):
        data = bytearray(rng.choice(seeds))
        for _ in range(rng.randint(1, 4)):
            op = rng.randrange(5)
            if op == 0 and data:
                data[rng.randrange(len(data))] = rng.randrange(256)
            elif op == 1 and data:
                del data[rng.randrange(len(data)):]
            elif op == 2:
                data += bytes(rng.randrange(256) for _ in range(rng.randint(1, 8)))
            elif op == 3 and data:
                data[0] = (data[0] & 0xC0) | rng.randrange(64)  # padding/extension/CSRC count
            elif op == 4 and len(data) > 1:
                data[-1] = rng.randrange(256)  # padding count
        try:
            packet = parse_rtp(bytes(data))
        except RtpError:
            rejected += 1
            continue
        parsed += 1
        assert parse_rtp(packet.to_bytes()) == packet
    assert parsed > 100 and rejected > 100  # the mutations exercise both paths


# --- sender ---------------------------------------------------------------------------------------------------


def test_sender_sequence_timestamp_and_marker() -> None:
    sender = RtpSender(payload_type=0, ssrc=0xCAFE)
    seq0, ts0 = sender.sequence, sender.timestamp
    packets = [parse_rtp(sender.packet(bytes([i]) * FRAME)) for i in range(100)]
    for i, p in enumerate(packets):
        assert p.sequence == (seq0 + i) % 65536
        assert p.timestamp == (ts0 + 160 * i) % 2**32
        assert p.ssrc == 0xCAFE and p.payload_type == 0 and p.payload == bytes([i]) * FRAME
        assert p.marker == (i == 0)


def test_sender_random_initial_state() -> None:
    senders = [RtpSender(payload_type=8) for _ in range(8)]
    assert len({s.ssrc for s in senders}) > 1
    assert len({s.sequence for s in senders}) > 1
    assert len({s.timestamp for s in senders}) > 1


def test_sender_wraps_sequence_and_timestamp() -> None:
    sender = RtpSender(payload_type=0, ssrc=1)
    sender.sequence, sender.timestamp = 65534, 2**32 - 320
    got = [parse_rtp(sender.packet(bytes(FRAME))) for _ in range(4)]
    assert [p.sequence for p in got] == [65534, 65535, 0, 1]
    assert [p.timestamp for p in got] == [2**32 - 320, 2**32 - 160, 0, 160]


def test_sender_skip_sets_marker_and_advances_timestamp_only() -> None:
    sender = RtpSender(payload_type=0, ssrc=1)
    first = parse_rtp(sender.packet(bytes(FRAME)))
    second = parse_rtp(sender.packet(bytes(FRAME)))
    sender.skip(800)
    third = parse_rtp(sender.packet(bytes(FRAME)))
    fourth = parse_rtp(sender.packet(bytes(FRAME), new_talkspurt=True))
    fifth = parse_rtp(sender.packet(bytes(FRAME)))
    assert [p.marker for p in (first, second, third, fourth, fifth)] == [True, False, True, True, False]
    assert third.sequence == (second.sequence + 1) % 65536
    assert third.timestamp == (second.timestamp + 160 + 800) % 2**32


def test_sender_dtmf_packets_follow_rfc4733() -> None:
    sender = RtpSender(payload_type=0, ssrc=7)
    audio = parse_rtp(sender.packet(bytes(FRAME)))
    start = sender.timestamp
    packets = [parse_rtp(d) for d in sender.dtmf_packets("5", duration_ms=160, volume=10)]
    assert len(packets) == 10
    assert all(p.payload_type == 101 and p.timestamp == start and p.ssrc == 7 for p in packets)
    assert [p.sequence for p in packets] == [(audio.sequence + 1 + i) % 65536 for i in range(10)]
    assert [p.marker for p in packets] == [True] + [False] * 9
    events = [parse_event(p.payload) for p in packets]
    assert [e[3] for e in events] == [160, 320, 480, 640, 800, 960, 1120, 1280, 1280, 1280]
    assert [e[1] for e in events] == [False] * 7 + [True] * 3
    assert all(e[0] == "5" and e[2] == 10 for e in events)
    assert packets[-1].payload == b"\x05\x8a\x05\x00"
    resumed = parse_rtp(sender.packet(bytes(FRAME)))
    assert resumed.marker and resumed.timestamp == (start + 1280) % 2**32
    assert resumed.sequence == (packets[-1].sequence + 1) % 65536


def test_sender_dtmf_short_and_invalid() -> None:
    sender = RtpSender(payload_type=0, ssrc=7)
    short = [parse_rtp(d) for d in sender.dtmf_packets("#", duration_ms=20)]
    assert len(short) == 3 and short[0].marker and all(parse_event(p.payload)[:2] == ("#", True) for p in short)
    assert parse_event(parse_rtp(sender.dtmf_packets("d")[0]).payload)[0] == "D"
    for bad in ("", "E", "55", "x"):
        with pytest.raises(ValueError):
            sender.dtmf_packets(bad)
    with pytest.raises(ValueError):
        sender.dtmf_packets("1", volume=64)
    with pytest.raises(ValueError):
        sender.dtmf_packets("1", duration_ms=9000)


# --- jitter buffer --------------------------------------------------------------------------------------------


def test_jitter_in_order() -> None:
    jb = JitterBuffer(depth_ms=60)
    out = play(jb, [(20 * i, pkt(i)) for i in range(50)], until_ms=1100)
    assert out == [frame(i) for i in range(50)]
    assert jb.stats["received"] == 50 and jb.stats["lost"] == 0 and jb.stats["late"] == 0


def test_jitter_waits_depth_before_playing() -> None:
    jb = JitterBuffer(depth_ms=60)
    jb.push(pkt(0), 1.0)
    assert jb.pop(1.0) == [] and jb.pop(1.059) == []
    assert jb.pop(1.06) == [frame(0)]


def test_jitter_reordered_pairs() -> None:
    jb = JitterBuffer(depth_ms=60)
    order = [i ^ 1 for i in range(50)]  # 1, 0, 3, 2, ...
    out = play(jb, [(20 * k, pkt(seq)) for k, seq in enumerate(order)], until_ms=1200)
    assert out == [frame(i) for i in range(50)]
    assert jb.stats["reordered"] == 25 and jb.stats["lost"] == 0 and jb.stats["late"] == 0


def test_jitter_duplicates() -> None:
    jb = JitterBuffer(depth_ms=60)
    arrivals = [(20 * i, pkt(i)) for i in range(30)] + [(20 * i + 5, pkt(i)) for i in range(30)]
    arrivals.append((900, pkt(3)))  # a duplicate long after it was played is still a duplicate, not late
    out = play(jb, arrivals, until_ms=1000)
    assert out == [frame(i) for i in range(30)]
    assert jb.stats["duplicates"] == 31 and jb.stats["late"] == 0 and jb.stats["received"] == 61


def test_jitter_one_lost_is_concealed_and_counted() -> None:
    pcm = tone(440, 1.0)
    payloads = [ulaw_encode(pcm[2 * FRAME * i:2 * FRAME * (i + 1)]) for i in range(50)]
    jb = JitterBuffer(depth_ms=60)
    out = play(jb, [(20 * i, pkt(i, payload=payloads[i])) for i in range(50) if i != 10], until_ms=1100)
    assert len(out) == 50 and jb.stats["lost"] == 1
    assert out[:10] == payloads[:10] and out[11:] == payloads[11:]
    concealed = np.frombuffer(ulaw_decode(out[10]), dtype="<i2").astype(float)
    previous = np.frombuffer(ulaw_decode(payloads[9]), dtype="<i2").astype(float)
    ratio = np.sqrt(np.mean(concealed**2) / np.mean(previous**2))
    assert 0.4 < ratio < 0.6  # repeat of the last frame at -6 dB


def test_jitter_long_loss_fades_to_silence() -> None:
    jb = JitterBuffer(depth_ms=60)
    loud = ulaw_encode(tone(300, 0.02))
    arrivals = [(20 * i, pkt(i, payload=loud)) for i in range(10)] + [(20 * i, pkt(i, payload=loud)) for i in range(15, 20)]
    out = play(jb, arrivals, until_ms=600)
    assert len(out) == 20 and jb.stats["lost"] == 5
    assert out[12:15] == [ulaw_encode(bytes(2 * FRAME))] * 3


def test_jitter_late_beyond_depth_is_dropped() -> None:
    jb = JitterBuffer(depth_ms=60)
    arrivals = [(20 * i, pkt(i)) for i in range(50) if i != 10] + [(20 * 10 + 200, pkt(10))]
    out = play(jb, arrivals, until_ms=1100)
    assert len(out) == 50 and frame(10) not in out
    assert jb.stats["late"] == 1 and jb.stats["lost"] == 1


def test_jitter_late_within_depth_is_played() -> None:
    jb = JitterBuffer(depth_ms=60)
    arrivals = [(20 * i, pkt(i)) for i in range(50) if i != 10] + [(20 * 10 + 50, pkt(10))]
    out = play(jb, arrivals, until_ms=1100)
    assert out == [frame(i) for i in range(50)]
    assert jb.stats["late"] == 0 and jb.stats["lost"] == 0 and jb.stats["reordered"] == 1


def test_jitter_sequence_wrap() -> None:
    jb = JitterBuffer(depth_ms=60)
    seqs = [(65530 + i) % 65536 for i in range(20)]
    order = [s for k, s in enumerate(seqs) if k != 8]  # drop seq 2 (after the wrap)
    order[4], order[5] = order[5], order[4]  # swap 65534 / 65535
    out = play(jb, [(20 * k, pkt(s, ts=2**32 - 480 + 160 * ((s - 65530) % 65536))) for k, s in enumerate(order)],
               until_ms=700)
    assert len(out) == 20 and jb.stats["lost"] == 1 and jb.stats["late"] == 0 and jb.stats["reordered"] == 1
    expected = [frame(s) for s in seqs]
    assert out[:8] == expected[:8] and out[9:] == expected[9:]


def test_jitter_ssrc_change_resets() -> None:
    jb = JitterBuffer(depth_ms=60)
    arrivals = [(20 * i, pkt(i, ssrc=1)) for i in range(10)]
    arrivals += [(400 + 20 * i, pkt(40000 + i, ssrc=2)) for i in range(10)]
    out = play(jb, arrivals, until_ms=900)
    assert out == [frame(i) for i in range(10)] + [frame(40000 + i) for i in range(10)]
    assert jb.stats["resets"] == 1 and jb.stats["lost"] == 0 and jb.stats["late"] == 0


def test_jitter_pause_is_not_loss() -> None:
    jb = JitterBuffer(depth_ms=60)
    arrivals = [(20 * i, pkt(i)) for i in range(10)] + [(1000 + 20 * i, pkt(10 + i)) for i in range(10)]
    out = play(jb, arrivals, until_ms=1400)
    assert out == [frame(i) for i in range(20)] and jb.stats["lost"] == 0
    assert jb.pop(1.02) == []  # nothing invented while the far end is silent


def test_jitter_other_payload_types_fill_their_slot() -> None:
    jb = JitterBuffer(depth_ms=60)
    arrivals = [(20 * i, pkt(i) if not 5 <= i < 8 else pkt(i, pt=101, payload=b"\x01\x00\x00\xa0")) for i in range(12)]
    out = play(jb, arrivals, until_ms=400)
    silence = ulaw_encode(bytes(2 * FRAME))
    assert out == [frame(i) for i in range(5)] + [silence] * 3 + [frame(i) for i in range(8, 12)]
    assert jb.stats["lost"] == 0


def test_jitter_resyncs_after_sequence_jump() -> None:
    jb = JitterBuffer(depth_ms=60)
    arrivals = [(20 * i, pkt(i)) for i in range(10)] + [(200 + 20 * i, pkt(30000 + i)) for i in range(10)]
    out = play(jb, arrivals, until_ms=700)
    assert out == [frame(i) for i in range(10)] + [frame(30000 + i) for i in range(1, 10)]
    assert jb.stats["dropped"] == 1 and jb.stats["resets"] == 1 and jb.stats["lost"] == 0
    assert jb.buffered == 0


def test_jitter_rejects_non_g711() -> None:
    with pytest.raises(ValueError):
        JitterBuffer(payload_type=9)


# --- DTMF receive ---------------------------------------------------------------------------------------------


def feed(receiver: DtmfReceiver, datagrams: list[bytes], start: float = 0.0) -> list[DtmfEvent]:
    events: list[DtmfEvent] = []
    for i, data in enumerate(datagrams):
        events += receiver.push(parse_rtp(data), start + 0.02 * i)
    return events


def test_dtmf_press_with_end_retransmissions_is_one_event() -> None:
    sender = RtpSender(payload_type=0, ssrc=9)
    start = sender.timestamp
    events = feed(DtmfReceiver(), sender.dtmf_packets("7", duration_ms=100))
    assert events == [DtmfEvent("7", 100, start)]


def test_dtmf_repeated_packets_and_two_presses_of_same_digit() -> None:
    sender = RtpSender(payload_type=0, ssrc=9)
    first = sender.dtmf_packets("1", duration_ms=80)
    sender.skip(800)
    second = sender.dtmf_packets("1", duration_ms=120)
    datagrams = [d for d in first for _ in range(2)] + second + second[-2:]  # every packet twice, extra end copies
    receiver = DtmfReceiver()
    events = feed(receiver, datagrams)
    assert [(e.digit, e.duration_ms) for e in events] == [("1", 80), ("1", 120)]
    assert events[0].timestamp != events[1].timestamp
    assert receiver.poll(100.0) == []


def test_dtmf_lost_end_packet_emitted_on_timeout() -> None:
    sender = RtpSender(payload_type=0, ssrc=9)
    datagrams = sender.dtmf_packets("*", duration_ms=100)[:-3]  # all three end packets lost
    receiver = DtmfReceiver(timeout_s=0.5)
    assert feed(receiver, datagrams) == []
    last = 0.02 * (len(datagrams) - 1)
    assert receiver.poll(last + 0.4) == []
    assert [(e.digit, e.duration_ms) for e in receiver.poll(last + 0.5)] == [("*", 80)]
    assert receiver.poll(last + 5) == []


def test_dtmf_lost_end_packet_emitted_on_new_timestamp() -> None:
    sender = RtpSender(payload_type=0, ssrc=9)
    first = sender.dtmf_packets("4", duration_ms=100)[:-3]
    second = sender.dtmf_packets("2", duration_ms=60)
    events = feed(DtmfReceiver(), first + second)
    assert [(e.digit, e.duration_ms) for e in events] == [("4", 80), ("2", 60)]


def test_dtmf_timestamp_wrap_and_stragglers() -> None:
    sender = RtpSender(payload_type=0, ssrc=9)
    sender.timestamp = 2**32 - 400
    first = sender.dtmf_packets("9", duration_ms=60)
    second = sender.dtmf_packets("0", duration_ms=60)  # starts after the wrap
    assert parse_rtp(second[0]).timestamp < parse_rtp(first[0]).timestamp
    receiver = DtmfReceiver()
    events = feed(receiver, first + second + [first[-1], first[0]])  # late copies of the older press are ignored
    assert [e.digit for e in events] == ["9", "0"]


def test_dtmf_after_the_senders_clock_jumps_back_under_the_same_ssrc() -> None:
    """A PBX that re-anchors media after a hold keeps the SSRC but restarts its timestamps: the presses after
    it were all taken for stragglers of the old timeline and dropped."""
    sender = RtpSender(payload_type=0, ssrc=9)
    sender.timestamp = 5_000_000
    before = sender.dtmf_packets("1", duration_ms=60)
    sender.timestamp = 1_000                         # back, far behind the press above
    after = sender.dtmf_packets("2", duration_ms=60) + sender.dtmf_packets("3", duration_ms=60)
    receiver = DtmfReceiver()
    events = feed(receiver, before)
    events += feed(receiver, after, start=30.0)      # long after: no straggler comes that late
    assert [e.digit for e in events] == ["1", "2", "3"]
    # ...while copies of a press already reported stay ignored, however late they come
    assert feed(receiver, after[:3], start=40.0) == [] and receiver.poll(100.0) == []


def test_dtmf_ignores_malformed_and_non_dtmf_events() -> None:
    receiver = DtmfReceiver()
    assert receiver.push(RtpPacket(payload_type=101, payload=b"\x05"), 0.0) == []
    assert receiver.push(RtpPacket(payload_type=101, payload=b"\x10\x80\x01\x00"), 0.0) == []  # flash
    with pytest.raises(RtpError):
        parse_event(b"\x10\x80\x01\x00")
    assert parse_event(b"\x0b\x3f\xff\xff") == ("#", False, 63, 65535)


# --- end to end -----------------------------------------------------------------------------------------------


def test_g711_tone_survives_sender_network_and_jitter_buffer() -> None:
    rng = random.Random(1)
    pcm = tone(1000, 1.0)
    sender = RtpSender(payload_type=0)
    sender.sequence = 65500  # cross the sequence wrap mid-stream
    datagrams = [sender.packet(ulaw_encode(pcm[2 * FRAME * i:2 * FRAME * (i + 1)])) for i in range(50)]
    arrivals = [(20 * i + rng.randint(0, 35), parse_rtp(d)) for i, d in enumerate(datagrams)]  # jitter reorders
    jb = JitterBuffer(depth_ms=60)
    out = play(jb, arrivals, until_ms=1200)
    assert jb.stats["lost"] == 0 and jb.stats["late"] == 0 and jb.stats["reordered"] > 0
    decoded = np.frombuffer(ulaw_decode(b"".join(out)), dtype="<i2").astype(float)
    assert decoded.size == 8000
    spectrum = np.abs(np.fft.rfft(decoded * np.hanning(decoded.size)))
    peak_hz = np.argmax(spectrum) * 8000 / decoded.size
    assert abs(peak_hz - 1000) <= 2
    assert ulaw_decode(b"".join(out)) == ulaw_decode(ulaw_encode(pcm))


def test_jitter_ssrc_change_mid_playout_keeps_buffered_audio() -> None:
    jb = JitterBuffer(depth_ms=60)
    arrivals = [(20 * i, pkt(i, ssrc=1)) for i in range(10)] + [(200 + 20 * i, pkt(500 + i, ssrc=2)) for i in range(10)]
    out = play(jb, arrivals, until_ms=700)
    assert out == [frame(i) for i in range(10)] + [frame(500 + i) for i in range(10)]
    assert jb.stats["resets"] == 1 and jb.stats["lost"] == 0
