"""The SIP user agent for trunk peers (a PBX or SBC): UDP, INVITE → 200 with an SDP answer, ACK, BYE from
either side, CANCEL, OPTIONS; each answered call bridges G.711 RTP into a voice ``CallSession``.

First version (issue 8 in progress): no digest auth, no re-INVITE, no REFER, and incoming audio is fed in arrival order (the jitter buffer in ``rtp.py`` is not wired
yet). What it does do is never crash on bad input: a message that does not parse gets a 400 when it can
be answered and is dropped otherwise, and one call's failure ends only that call.
"""

from __future__ import annotations

import asyncio
import inspect
import ipaddress
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from gateway.sip.dtmf import DtmfReceiver
from gateway.sip.message import SipMessage, SipParseError, new_tag, parse, response_to
from gateway.sip.rtp import RtpError, RtpSender, parse_rtp
from gateway.sip.sdp import SdpError, answer, parse_sdp
from gateway.sip.transaction import TransactionTable
from gateway.voice.codec import alaw_encode, ulaw_encode
from gateway.voice.session import CallSession

log = logging.getLogger("enclave.gateway.sip")
PT = {"PCMU": 0, "PCMA": 8}


@dataclass
class Call:
    call_id: str
    tag: str
    remote_sip: tuple[str, int]
    remote_rtp: tuple[str, int]
    codec: str
    rtp_transport: asyncio.DatagramTransport | None = None
    sender: RtpSender | None = None
    session: CallSession | None = None
    invite: SipMessage | None = None
    started: float = field(default_factory=time.monotonic)
    closed: bool = False
    last_rtp: float = field(default_factory=time.monotonic)
    filler: asyncio.Task | None = None
    event_pt: int | None = None                     # telephone-event payload type agreed in SDP
    dtmf: DtmfReceiver = field(default_factory=DtmfReceiver)
    digits: str = ""
    digits_flush: asyncio.TimerHandle | None = None


class _RtpProtocol(asyncio.DatagramProtocol):
    def __init__(self, server: SipServer, call: Call) -> None:
        self.server, self.call = server, call

    def datagram_received(self, data: bytes, addr) -> None:
        try:
            packet = parse_rtp(data)
        except RtpError:
            return
        if self.call.session is None:
            return
        if packet.payload_type == self.call.event_pt:
            for event in self.call.dtmf.push(packet, time.monotonic()):
                self.server.on_digit(self.call, event.digit)
            return
        if packet.payload_type != PT[self.call.codec]:
            return   # comfort noise and anything else: not audio
        self.call.last_rtp = time.monotonic()
        task = asyncio.ensure_future(self.call.session.feed(packet.payload))
        self.server._tasks.add(task)
        task.add_done_callback(self.server._tasks.discard)


class SipServer(asyncio.DatagramProtocol):
    def __init__(self, *, host: str, port: int, rtp_host: str, allowed: list[str], new_session: Callable[..., Any],
                 rtp_ports: tuple[int, int] = (0, 0)) -> None:
        self.host, self.port, self.rtp_host = host, port, rtp_host
        self.allowed = [ipaddress.ip_network(a, strict=False) for a in allowed]
        self.new_session = new_session     # (call, send_audio) -> CallSession
        self.rtp_ports = rtp_ports
        self.transport: asyncio.DatagramTransport | None = None
        self.transactions = TransactionTable()
        self.calls: dict[str, Call] = {}
        self._tasks: set[asyncio.Task] = set()
        self._timer: asyncio.Task | None = None

    # -- transport ------------------------------------------------------------------------------------------

    def connection_made(self, transport) -> None:
        self.transport = transport
        self._timer = asyncio.ensure_future(self._timers())

    def datagram_received(self, data: bytes, addr) -> None:
        task = asyncio.ensure_future(self._handle(data, addr))
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("SIP handler failed", exc_info=task.exception())

    def send(self, data: bytes, addr) -> None:
        if self.transport is not None:
            self.transport.sendto(data, addr)

    async def _timers(self) -> None:
        while True:
            await asyncio.sleep(0.1)
            for addr, data in self.transactions.on_timer():
                if addr is not None:
                    self.send(data, addr)

    # -- requests -------------------------------------------------------------------------------------------

    def _allowed(self, addr) -> bool:
        if not self.allowed:
            return True
        ip = ipaddress.ip_address(addr[0])
        return any(ip in net for net in self.allowed)

    async def _handle(self, data: bytes, addr) -> None:
        if not data.strip():
            return   # keep-alive CRLF
        try:
            msg = parse(data)
        except SipParseError as e:
            self._bad_request(data, addr, e)
            return
        if not msg.is_request:
            return   # responses to our BYEs: nothing to do in this version
        if not self._allowed(addr):
            self.send(response_to(msg, 403, "Forbidden").to_bytes(), addr)
            return
        dispatch = self.transactions.on_request(msg, addr)
        for out in dispatch.to_send:
            self.send(out, addr)
        if not dispatch.deliver:
            return
        method = msg.method
        if method == "INVITE":
            await self._invite(msg, addr)
        elif method == "ACK":
            pass
        elif method == "BYE":
            await self._bye(msg, addr)
        elif method == "CANCEL":
            self._respond(msg, addr, 200)
            call = self.calls.get(msg.call_id)
            if call is None:
                invite = self.transactions.find_invite(msg)
                if invite is not None:
                    self._respond_txn(invite.request, addr, 487)
        elif method == "OPTIONS":
            self._respond(msg, addr, 200, extra=(("Allow", "INVITE, ACK, BYE, CANCEL, OPTIONS"),))
        else:
            self._respond(msg, addr, 501)

    def _bad_request(self, data: bytes, addr, error: SipParseError) -> None:
        """Answer 400 only when the message has what a response needs; otherwise drop it."""
        head = data.split(b"\r\n\r\n", 1)[0]
        head = b"\r\n".join(line for line in head.split(b"\r\n")
                             if not line.lower().startswith((b"content-length:", b"l:")))
        try:
            lenient = parse(head + b"\r\n\r\n")   # the headers alone, enough to address a response
        except SipParseError:
            log.info("dropped an unparseable SIP message", extra={"from": addr[0], "reason": error.reason})
            return
        if lenient.is_request and lenient.method != "ACK":
            self.send(response_to(lenient, error.status, error.reason).to_bytes(), addr)

    def _respond(self, msg: SipMessage, addr, status: int, *, extra=(), body: bytes = b"", content_type=None,
                 to_tag: str | None = None) -> None:
        resp = response_to(msg, status, to_tag=to_tag, extra_headers=extra, body=body, content_type=content_type)
        txn = self.transactions.get(msg)
        out = txn.send_response(resp) if txn is not None else [resp.to_bytes()]
        for data in out:
            self.send(data, addr)

    def _respond_txn(self, request: SipMessage, addr, status: int) -> None:
        self._respond(request, addr, status, to_tag=new_tag())

    async def _invite(self, msg: SipMessage, addr) -> None:
        if msg.call_id in self.calls:      # a re-INVITE (hold/resume) is not supported yet
            self._respond(msg, addr, 488, to_tag=self.calls[msg.call_id].tag)
            return
        try:
            offer = parse_sdp(msg.body)
            loop = asyncio.get_running_loop()
            tag = new_tag()
            call = Call(msg.call_id, tag, addr, (offer.connection_ip, offer.port), "PCMU", invite=msg)
            transport, _ = await loop.create_datagram_endpoint(lambda: _RtpProtocol(self, call),
                                                               local_addr=(self.rtp_host, 0))
            call.rtp_transport = transport
            local_port = transport.get_extra_info("sockname")[1]
            body, codec, _event_pt = answer(offer, local_ip=self.rtp_host, local_port=local_port)
        except SdpError as e:
            self._respond(msg, addr, e.status, to_tag=new_tag())
            return
        call.codec, call.event_pt = codec, _event_pt
        call.sender = RtpSender(PT[codec])
        self.calls[msg.call_id] = call
        self._respond(msg, addr, 180, to_tag=tag)
        try:
            session = self.new_session(call, self._audio_out(call))
            call.session = await session if inspect.isawaitable(session) else session
        except Exception:
            log.exception("could not start the call's session")
            self._respond(msg, addr, 500, to_tag=tag)
            await self._end(call)
            return
        contact = (("Contact", f"<sip:enclave@{self.host}:{self.port}>"),)
        self._respond(msg, addr, 200, extra=contact, body=body, content_type="application/sdp", to_tag=tag)
        call.filler = asyncio.ensure_future(self._fill_silence(call))
        log.info("call answered", extra={"call_id": msg.call_id, "codec": codec, "from": addr[0]})

    async def _fill_silence(self, call: Call) -> None:
        """A line that stops sending RTP (silence suppression, a pause, a hold) is silence, not nothing: the
        endpointer needs it to notice the caller finished speaking."""
        frame = (ulaw_encode if call.codec == "PCMU" else alaw_encode)(b"\x00\x00" * 160)
        while not call.closed:
            await asyncio.sleep(0.02)
            if time.monotonic() - call.last_rtp > 0.06 and call.session is not None:
                await call.session.feed(frame)

    DIGIT_PAUSE_S = 0.8   # keypad digits are one input until '#' or this long without a key

    def on_digit(self, call: Call, digit: str) -> None:
        """RFC 4733 key presses, collected into one input ('1234#', or a pause) for the dialogue."""
        if call.digits_flush is not None:
            call.digits_flush.cancel()
        loop = asyncio.get_running_loop()
        if digit == "#":
            self._flush_digits(call)
            return
        call.digits += digit
        call.digits_flush = loop.call_later(self.DIGIT_PAUSE_S, self._flush_digits, call)

    def _flush_digits(self, call: Call) -> None:
        digits, call.digits, call.digits_flush = call.digits, "", None
        if digits and call.session is not None and not call.closed:
            log.info("dtmf input", extra={"call_id": call.call_id, "digits": len(digits)})   # how many, never which
            task = asyncio.ensure_future(call.session.text_input(digits))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def _audio_out(self, call: Call):
        async def send_audio(frame: bytes) -> None:
            if call.closed or call.rtp_transport is None or call.sender is None:
                return
            call.rtp_transport.sendto(call.sender.packet(frame), call.remote_rtp)

        return send_audio

    async def _bye(self, msg: SipMessage, addr) -> None:
        call = self.calls.get(msg.call_id)
        self._respond(msg, addr, 200 if call is not None else 481)
        if call is not None:
            await self._end(call)

    async def _end(self, call: Call) -> None:
        if call.closed:
            return
        call.closed = True
        self.calls.pop(call.call_id, None)
        if call.filler is not None:
            call.filler.cancel()
        if call.digits_flush is not None:
            call.digits_flush.cancel()
        if call.session is not None:
            try:
                await call.session.close()
            except Exception:
                log.exception("closing a call's session failed")
        if call.rtp_transport is not None:
            call.rtp_transport.close()
        log.info("call ended", extra={"call_id": call.call_id, "seconds": round(time.monotonic() - call.started, 1)})

    async def close(self) -> None:
        for call in list(self.calls.values()):
            await self._end(call)
        if self._timer is not None:
            self._timer.cancel()
        if self.transport is not None:
            self.transport.close()


async def start_sip(*, host: str, port: int, rtp_host: str, allowed: list[str], new_session) -> SipServer:
    loop = asyncio.get_running_loop()
    server = SipServer(host=host, port=port, rtp_host=rtp_host, allowed=allowed, new_session=new_session)
    await loop.create_datagram_endpoint(lambda: server, local_addr=(host, port))
    return server


def call_subject(call: Call) -> str:
    return f"sip:{uuid.uuid5(uuid.NAMESPACE_URL, call.call_id).hex[:12]}"
