"""The SIP server's own logic with a fake transport (the real peers, sipp and baresip, are in
tests/integration/test_sip.py): what a review found carriers, PBXs and RFC 4733 senders would hit."""

from __future__ import annotations

import asyncio
import struct
import types

import pytest

from gateway.sip import server as srv
from gateway.sip.dialog import Dialog
from gateway.sip.message import SipMessage, parse, parse_uri
from gateway.sip.rtp import RtpPacket, RtpSender, parse_rtp


class FakeTransport:
    def __init__(self) -> None:
        self.sent: list[tuple[bytes, tuple]] = []

    def sendto(self, data: bytes, addr) -> None:
        self.sent.append((data, addr))

    def close(self) -> None:
        pass

    def get_extra_info(self, _key: str):
        return ("127.0.0.1", 40000)


def invite(ruri: str = "sip:8000@10.0.0.20:5070", to: str = "<sip:8000@10.0.0.20>", body: bytes = b"") -> bytes:
    head = (f"INVITE {ruri} SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.5:5060;branch=z9hG4bK-1;rport\r\nMax-Forwards: 70\r\n"
            f"From: <sip:caller@10.0.0.5>;tag=ft1\r\nTo: {to}\r\nCall-ID: abc@pbx\r\nCSeq: 1 INVITE\r\n"
            "Contact: <sip:caller@10.0.0.5:5060>\r\n")
    if body:
        head += "Content-Type: application/sdp\r\n"
    return (head + f"Content-Length: {len(body)}\r\n\r\n").encode() + body


@pytest.mark.parametrize(("uri", "user", "host", "params"), [
    ("sip:alice;day=tuesday@atlanta.com", "alice;day=tuesday", "atlanta.com", {}),             # RFC 3261 19.1.3
    ("sip:+12125551212;npdi;rn=+12125550000@10.0.0.20;user=phone", "+12125551212;npdi;rn=+12125550000", "10.0.0.20",
     {"user": "phone"}),                                                                         # RFC 4694 portability
    ("sip:8000;phone-context=+4930@10.0.0.20;user=phone", "8000;phone-context=+4930", "10.0.0.20", {"user": "phone"}),
    ("sip:10.0.0.20;maddr=10.0.0.1", None, "10.0.0.20", {"maddr": "10.0.0.1"}),
])
def test_a_user_part_may_hold_semicolons(uri: str, user: str | None, host: str, params: dict) -> None:
    parsed = parse_uri(uri)
    assert (parsed["user"], parsed["host"], parsed["params"]) == (user, host, params)


def test_a_did_with_user_parameters_reaches_its_tenant() -> None:
    server = srv.SipServer(srv.SipConfig(routes={"8000": "demo-bank"}, default_tenant="dev"), new_session=None)
    uri = "sip:8000;phone-context=+4930@10.0.0.20;user=phone"
    assert server.route(parse(invite(uri, f"<{uri}>"))) == ("demo-bank", "8000")   # was ("dev", "")


def test_a_request_uri_that_cannot_be_read_is_answered_400_not_dropped() -> None:
    server = srv.SipServer(srv.SipConfig(allowed=("10.0.0.0/8",)), new_session=None)
    server.transport = FakeTransport()
    data = invite("sip:8000@bad host!")
    server._bad_request(data, ("10.0.0.5", 5060), srv.SipParseError(400, "Bad host"))
    (sent, _addr), = server.transport.sent
    response = parse(sent)
    assert response.status == 400 and response.header("Call-ID") == "abc@pbx"


def test_a_transfer_the_pbx_could_not_complete_ends_with_the_callback_message() -> None:
    """A final NOTIFY of 503 means the queue was not reached: the caller is still on our leg and hears
    the call-back message (it was treated as transferred: silence, then a hang-up)."""
    said: list[str] = []

    class Session:
        config = types.SimpleNamespace(texts=types.SimpleNamespace(callback="A colleague will call you back."))
        playout: dict = {}

        def hold(self, on: bool) -> None:
            pass

        async def say(self, text: str) -> None:
            said.append(text)

        async def close(self) -> None:
            pass

    async def scenario() -> list[str]:
        server = srv.SipServer(srv.SipConfig(allowed=("10.0.0.0/8",), transfer_uri="sip:queue@10.0.0.5"), new_session=None)
        server.transport = FakeTransport()
        request = parse(invite(body=b"v=0\r\nc=IN IP4 10.0.0.5\r\nm=audio 4000 RTP/AVP 0\r\n"))
        call = srv.Call(request.call_id, "lt", ("10.0.0.5", 5060), ("10.0.0.5", 4000), "PCMU", invite=request)
        call.dialog = Dialog.from_invite(request, "lt", server.contact, ("10.0.0.5", 5060))
        call.session = Session()
        server.calls[call.call_id] = call
        ended: list[str] = []

        async def request_(c, method: str, **_kw) -> SipMessage:
            return SipMessage(status=202, reason="Accepted") if method == "REFER" else SipMessage(status=200)

        async def hang_up(c, reason: str = "") -> None:
            ended.append(reason)

        server.request, server.hang_up = request_, hang_up
        task = asyncio.create_task(server.hand_off(call, "h-1"))
        await asyncio.sleep(0.01)
        notify = SipMessage(method="NOTIFY", uri="sip:enclave@10.0.0.20", headers=[
            ("Event", "refer"), ("Content-Type", "message/sipfrag")], body=b"SIP/2.0 503 Service Unavailable\r\n")
        server._respond = lambda *a, **k: None
        server._notify(call, notify, ("10.0.0.5", 5060))
        await task
        return ended

    assert asyncio.run(scenario()) == ["handed_off"]
    assert said == ["A colleague will call you back."]


def test_key_presses_keep_their_sequence_slots_in_the_jitter_buffer(monkeypatch: pytest.MonkeyPatch) -> None:
    """RFC 4733 events replace audio but count sequence numbers: left out of the buffer, each was a gap
    concealed as loss, and playout stayed behind by the key press for the rest of the talkspurt."""
    clock = [0.0]
    monkeypatch.setattr(srv.time, "monotonic", lambda: clock[0])
    digits: list[str] = []
    call = srv.Call("c1", "t", ("10.0.0.5", 5060), ("10.0.0.5", 4000), "PCMU")
    call.event_pt, call.session = 101, object()
    fake = types.SimpleNamespace(config=srv.SipConfig(jitter_ms=60), on_digit=lambda c, d: digits.append(d))
    rtp = srv._RtpProtocol(fake, call)
    seq, ts = 1000, 0

    def send(payload_type: int, payload: bytes) -> None:
        nonlocal seq, ts
        rtp.datagram_received(RtpPacket(payload_type=payload_type, sequence=seq, timestamp=ts, ssrc=7,
                                        payload=payload).to_bytes(), ("10.0.0.5", 4000))
        seq += 1
        ts += 160 if payload_type == 0 else 0
        for _ in range(20):
            clock[0] += 0.001
            call.jitter.pop(clock[0])

    for _ in range(50):
        send(0, b"\x55" * 160)
    for duration in range(160, 1280, 160):
        send(101, struct.pack("!BBH", 5, 10, duration))
    for _ in range(3):
        send(101, struct.pack("!BBH", 5, 0x80 | 10, 1280))
    for _ in range(50):
        send(0, b"\x55" * 160)
    assert digits == ["5"]
    assert call.jitter.stats["lost"] == 0
    assert call.jitter.buffered <= 3            # the 60 ms depth, not 60 ms plus the key press


def test_rtp_timestamps_keep_the_clock_across_a_pause(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = [100.0]
    monkeypatch.setattr(srv.time, "monotonic", lambda: clock[0])
    server = srv.SipServer(srv.SipConfig(), new_session=None)
    call = srv.Call("c", "t", ("10.0.0.5", 5060), ("10.0.0.5", 4000), "PCMU")
    call.rtp_transport, call.sender = FakeTransport(), RtpSender(0)
    send = server._audio_out(call)

    async def scenario() -> None:
        for pause in (0.0, 0.0, 0.0, 5.0, 0.0):
            clock[0] += pause
            await send(b"\xff" * 160)
            clock[0] += 0.02

    asyncio.run(scenario())
    packets = [parse_rtp(data) for data, _ in call.rtp_transport.sent]
    steps = [(b.timestamp - a.timestamp) % 2**32 for a, b in zip(packets, packets[1:], strict=False)]
    assert steps[:2] == [160, 160] and steps[3] == 160
    assert steps[2] == round(5.02 * 8000) and packets[3].marker      # 5 s of silence in RTP time, and the marker


def test_an_ack_without_a_usable_answer_to_our_offer_ends_the_call() -> None:
    async def scenario() -> list[str]:
        server = srv.SipServer(srv.SipConfig(allowed=("10.0.0.0/8",)), new_session=None)
        request = parse(invite())
        call = srv.Call(request.call_id, "lt", ("10.0.0.5", 5060), ("10.0.0.5", 0), "PCMU", invite=request,
                        awaiting_answer=True)
        ended: list[str] = []

        async def hang_up(c, reason: str = "") -> None:
            ended.append(reason)

        server.hang_up = hang_up
        ack = parse(invite().replace(b"INVITE sip", b"ACK sip").replace(b"1 INVITE", b"1 ACK"))
        server._ack(call, ack, ("10.9.9.9", 5060))    # from another host: not the call's, ignored
        await asyncio.sleep(0.01)
        assert ended == []
        server._ack(call, ack, ("10.0.0.5", 5060))    # no SDP in it
        await asyncio.sleep(0.01)
        assert call.awaiting_answer
        answered = parse(invite(body=b"v=0\r\nc=IN IP4 10.0.0.9\r\nt=0 0\r\nm=audio 4002 RTP/AVP 0 101\r\n"
                                     b"a=rtpmap:101 telephone-event/8000\r\n")
                         .replace(b"INVITE sip", b"ACK sip").replace(b"1 INVITE", b"1 ACK"))
        call2 = srv.Call(request.call_id, "lt", ("10.0.0.5", 5060), ("10.0.0.5", 0), "PCMU", invite=request,
                         awaiting_answer=True)
        server._ack(call2, answered, ("10.0.0.5", 5060))
        assert (call2.awaiting_answer, call2.remote_rtp, call2.event_pt) == (False, ("10.0.0.9", 4002), 101)
        return ended

    assert asyncio.run(scenario()) == ["no_answer"]
