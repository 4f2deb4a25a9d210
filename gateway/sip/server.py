"""The SIP user agent for trunk peers (a PBX or SBC) over UDP, and optionally over TLS as a second listener
(gateway/sip/tls.py): each answered call bridges G.711 RTP into a voice ``CallSession``.

What a trunk needs, and nothing more: an allow-list of peers (403 for anyone else) with per-address rate
limiting, optional digest auth, INVITE → 180 → 200 with an SDP answer, ACK, CANCEL, OPTIONS keep-alives,
re-INVITE and UPDATE (hold and resume), BYE from either side, keypad digits (RFC 4733 in RTP, or SIP INFO),
and the hand-off: a blind REFER to the human queue carrying the hand-off id, or a polite goodbye and BYE.
Incoming audio goes through a jitter buffer and is fed to the session on one clock per call.

Bad input never crashes it: a message that does not parse gets a 400 when it can be answered and is
dropped otherwise, and one call's failure ends only that call.

TLS (``SipConfig.tls_port`` and ``tls_context``): every message read off a TLS connection goes through the same
``_handle`` as a datagram, so the allow-list, rate limiter and digest auth apply unchanged; the peer's address is
a ``TlsAddr``, which keeps everything of a call that arrived over TLS on that connection (responses, our BYE and
REFER with a ``SIP/2.0/TLS`` Via, a Contact with ``;transport=tls`` or ``sips:``), with no retransmissions on
the reliable stream. A dropped connection ends its calls ("transport_closed"). Only signalling is protected: the
media stays plain RTP (SRTP is out of scope).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import ipaddress
import logging
import random
import re
import ssl
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from gateway.sip.auth import DigestAuth
from gateway.sip.client_transaction import ClientTransactionTable
from gateway.sip.dialog import Dialog, refer_status
from gateway.sip.dtmf import DtmfReceiver
from gateway.sip.message import (
    SipMessage,
    SipParseError,
    new_tag,
    parse,
    parse_name_addr,
    parse_uri,
    response_to,
    split_header_values,
)
from gateway.sip.ratelimit import RateLimiter
from gateway.sip.rtp import JitterBuffer, RtpError, RtpSender, parse_rtp
from gateway.sip.sdp import AudioOffer, SdpError, answer, parse_sdp
from gateway.sip.sdp import offer as sdp_offer
from gateway.sip.tls import TlsAddr, TlsListener
from gateway.sip.transaction import TransactionTable
from gateway.voice.codec import alaw_encode, ulaw_encode
from gateway.voice.session import CallSession

log = logging.getLogger("enclave.gateway.sip")
PT = {"PCMU": 0, "PCMA": 8}
ALLOW = "INVITE, ACK, BYE, CANCEL, OPTIONS, INFO, UPDATE, REFER, NOTIFY"
TICK_S = 0.02            # the per-call clock: jitter buffer playout, silence filling


@dataclass(frozen=True)
class SipConfig:
    """Where the user agent listens and whom it serves (built from Settings by the app)."""

    host: str = "127.0.0.1"
    port: int = 5060
    rtp_host: str = "127.0.0.1"
    rtp_ports: tuple[int, int] = (0, 0)                    # (0, 0): any free port
    allowed: tuple[str, ...] = ("127.0.0.1/32",)           # CIDRs of trunk peers; empty: anyone
    routes: dict[str, str] = field(default_factory=dict)   # called number (DID) → tenant slug
    default_tenant: str | None = "dev"                     # other numbers; None: 404
    transfer_uri: str | None = None                        # the human queue for a blind REFER
    handoff_header: str = "X-Enclave-Handoff"
    agent_digit: str | None = "0"                          # a lone key press that asks for a person
    jitter_ms: int = 60
    ring_ms: int = 0                                       # ring this long before answering
    auth: DigestAuth | None = None
    limiter: RateLimiter | None = None
    tls_port: int | None = None                            # SIP over TLS on (host, tls_port); 0: any free port
    tls_context: ssl.SSLContext | None = None              # server side, e.g. gateway.sip.tls.server_tls_context()


@dataclass
class Call:
    call_id: str
    tag: str
    remote_sip: tuple[str, int]
    remote_rtp: tuple[str, int]
    codec: str
    tenant: str = ""
    did: str = ""
    transport: str = "udp"                          # the signalling transport of the dialog: "udp" or "tls"
    sips: bool = False                              # the INVITE asked for SIPS (§12.1.1): our Contact is sips:
    rtp_transport: asyncio.DatagramTransport | None = None
    sender: RtpSender | None = None
    session: CallSession | None = None
    invite: SipMessage | None = None
    dialog: Dialog | None = None
    started: float = field(default_factory=time.monotonic)
    closed: bool = False
    held: bool = False
    transferring: bool = False
    last_rtp: float = 0.0
    pump: asyncio.Task | None = None
    jitter: JitterBuffer | None = None
    event_pt: int | None = None                     # telephone-event payload type agreed in SDP
    dtmf: DtmfReceiver = field(default_factory=DtmfReceiver)
    digits: str = ""
    digits_flush: asyncio.TimerHandle | None = None
    sdp_id: int = field(default_factory=lambda: random.randrange(1, 2**31))
    sdp_version: int = 0
    answer_body: bytes = b""
    awaiting_answer: bool = False                   # a delayed offer: our offer went in the 200, the answer comes in the ACK
    agent_phrase: str | None = None                 # what '0' means to this tenant's dialogue
    refer_result: asyncio.Future | None = None      # the transfer's outcome from NOTIFY (sipfrag status)
    stats: dict[str, int] = field(default_factory=lambda: {"rtp_in": 0, "rtp_out": 0})


class _RtpProtocol(asyncio.DatagramProtocol):
    def __init__(self, server: SipServer, call: Call) -> None:
        self.server, self.call = server, call

    def datagram_received(self, data: bytes, addr) -> None:
        call = self.call
        if addr[0] != call.remote_rtp[0]:
            # Only from the address the SDP named: RTP ports are guessable, and anyone reaching one could
            # otherwise speak into the call or press its keys (a lone '0' asks for an agent).
            call.stats["rtp_foreign"] = call.stats.get("rtp_foreign", 0) + 1
            return
        try:
            packet = parse_rtp(data)
        except RtpError:
            return
        if call.session is None or call.closed:
            return
        now = time.monotonic()
        audio = packet.payload_type == PT[call.codec]
        if packet.payload_type == call.event_pt:
            for event in call.dtmf.push(packet, now):
                self.server.on_digit(call, event.digit)
        elif audio and not packet.payload:
            return
        if call.jitter is None:
            if not audio:
                return            # nothing to time playout by yet
            # the packet size tells the far end's ptime (sipp's pcap: 30 ms)
            ptime = max(10, min(60, len(packet.payload) // 8 // 10 * 10))
            call.jitter = JitterBuffer(self.server.config.jitter_ms, ptime, payload_type=PT[call.codec])
        # Key presses (RFC 4733) and comfort noise go in too: they take sequence numbers in the same stream, and
        # the buffer plays their slots as silence. Left out, each was a gap it concealed as loss, and playout
        # stayed behind by the key press's length for the rest of the talkspurt.
        call.jitter.push(packet, now)
        call.last_rtp = now
        if audio:
            call.stats["rtp_in"] += 1


class SipServer(asyncio.DatagramProtocol):
    def __init__(self, config: SipConfig, new_session: Callable[..., Any], metrics=None) -> None:
        self.config, self.metrics = config, metrics
        self.contact = f"<sip:enclave@{config.host}:{config.port}>"     # where UDP peers send in-dialog requests
        self.allowed = [ipaddress.ip_network(a, strict=False) for a in config.allowed]
        self.new_session = new_session     # (call, send_audio) -> CallSession (or an awaitable of one)
        self.transport: asyncio.DatagramTransport | None = None
        self.tls: TlsListener | None = None
        self.transactions = TransactionTable(on_terminated=self._transaction_over)
        self.client_transactions = ClientTransactionTable()
        self.calls: dict[str, Call] = {}
        self.ended: dict[str, float] = {}  # call-id → when, so a late retransmission is answered 481, not a new call
        self._tasks: set[asyncio.Task] = set()
        self._timer: asyncio.Task | None = None

    # -- transport ------------------------------------------------------------------------------------------

    def connection_made(self, transport) -> None:
        self.transport = transport
        self._timer = asyncio.ensure_future(self._timers())

    def datagram_received(self, data: bytes, addr) -> None:
        self.spawn(self._handle(data, addr))

    def spawn(self, coro: Awaitable) -> asyncio.Task:
        """Run ``coro`` in the background; a failure is logged, never lost, and never takes the listener down."""
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Task) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("SIP handler failed", exc_info=task.exception())

    def send(self, data: bytes, addr) -> None:
        """To a ``TlsAddr``: over that peer's TLS connection, or nowhere if it is gone (never over UDP); to a plain
        address: a UDP datagram, as always."""
        if isinstance(addr, TlsAddr):
            if self.tls is None or not self.tls.send(data, addr):
                log.info("TLS connection gone; SIP message not sent", extra={"to": addr[0]})
            return
        if self.transport is not None:
            self.transport.sendto(data, addr)

    # -- TLS ------------------------------------------------------------------------------------------------

    async def start_tls(self) -> None:
        """Listen for SIP over TLS on (host, tls_port) with ``config.tls_context``."""
        config = self.config
        if config.tls_port is None or config.tls_context is None:
            raise ValueError("SIP over TLS needs both tls_port and tls_context")
        listener = TlsListener(config.tls_context, on_message=self._tls_message, on_reject=self._tls_reject,
                               on_closed=self._tls_closed, in_use=self._tls_in_use)
        await listener.start(config.host, config.tls_port)
        self.tls = listener
        log.info("SIP over TLS listening", extra={"host": config.host, "port": listener.port})

    @property
    def tls_port(self) -> int | None:
        """The TLS port peers reach us on (the bound one when configured as 0); None without TLS."""
        if self.tls is not None and self.tls.port is not None:
            return self.tls.port
        return self.config.tls_port

    def _tls_message(self, data: bytes, addr: TlsAddr) -> None:
        self.spawn(self._handle(data, addr))

    def _tls_reject(self, head: bytes, addr: TlsAddr, status: int, reason: str) -> None:
        """A message the stream cannot frame (no Content-Length, too large): answered when its headers allow,
        before the listener closes the connection."""
        if head:
            self._bad_request(head, addr, SipParseError(status, reason))

    def _tls_in_use(self, addr: TlsAddr) -> bool:
        """A call is signalled over this connection: silence on it is a quiet call, not an idle peer."""
        return any(call.transport == "tls" and call.remote_sip == addr and not call.closed for call in self.calls.values())

    def _tls_closed(self, addr: TlsAddr) -> None:
        """The connection is gone: its calls cannot be signalled any more, so they end (others are untouched)."""
        for call in list(self.calls.values()):
            if call.transport == "tls" and call.remote_sip == addr and not call.closed:
                log.warning("TLS connection closed during a call; ending it", extra={"call_id": call.call_id})
                self.spawn(self._end(call, "transport_closed"))

    def contact_for(self, call: Call) -> str:
        """Our Contact for ``call``'s dialog: reached the way the call came in (RFC 5630 §3: a SIPS dialog gets a
        sips: URI; a sip: dialog over TLS says ;transport=tls)."""
        if call.transport != "tls":
            return self.contact
        host = self.config.host
        if ":" in host and not host.startswith("["):
            host = f"[{host}]"
        if call.sips:
            return f"<sips:enclave@{host}:{self.tls_port}>"
        return f"<sip:enclave@{host}:{self.tls_port};transport=tls>"

    async def _timers(self) -> None:
        while True:
            await asyncio.sleep(0.1)
            now = time.monotonic()
            for addr, data in self.transactions.on_timer():
                if addr is not None:
                    self.send(data, addr)
            for addr, data in self.client_transactions.on_timer(now):
                self.send(data, addr)
            for call_id, when in list(self.ended.items()):
                if now - when > 64 * 0.5:
                    del self.ended[call_id]

    # -- requests -------------------------------------------------------------------------------------------

    def _allowed(self, addr) -> bool:
        if not self.allowed:
            return True
        ip = ipaddress.ip_address(addr[0])
        return any(ip in net for net in self.allowed)

    async def _handle(self, data: bytes, addr) -> None:
        if not data.strip():
            return   # keep-alive CRLF
        limiter = self.config.limiter
        if limiter is not None and not limiter.allow(addr[0]):
            self._refused("rate_limited")
            return   # a flood is dropped unanswered: answering would amplify it
        try:
            msg = parse(data)
        except SipParseError as e:
            self._bad_request(data, addr, e)
            return
        if not msg.is_request:
            self._response(msg)
            return
        if not self._allowed(addr):
            self._refused("forbidden")
            self.send(response_to(msg, 403, "Forbidden").to_bytes(), addr)
            return
        dispatch = self.transactions.on_request(msg, addr, reliable=isinstance(addr, TlsAddr))
        for out in dispatch.to_send:
            self.send(out, addr)
        if not dispatch.deliver:
            return
        method = msg.method
        call = self.calls.get(msg.call_id or "")
        if call is not None and method not in ("INVITE", "ACK", "CANCEL") and not self._of_call(call, msg, addr):
            # The Call-ID alone is guessable: a request for a call must come over its own signalling path, with
            # its tags (a BYE from anywhere allowed ended the call; a re-INVITE moved its media elsewhere).
            self._respond(msg, addr, 481)
            return
        in_dialog = call is not None and call.dialog is not None and bool(msg.to_tag) and method not in ("ACK", "CANCEL")
        if in_dialog and not call.dialog.remote_cseq_ok(msg):
            self._respond(msg, addr, 500, reason="CSeq Out of Order")
            return
        if method == "INVITE":
            if call is not None and msg.to_tag:
                if not self._of_call(call, msg, addr):
                    self._respond(msg, addr, 481)
                    return
                await self._guarded(self._reinvite(call, msg, addr), msg, addr)
            elif call is not None or msg.to_tag:
                self._respond(msg, addr, 481 if msg.to_tag else 482, to_tag=new_tag())
            else:
                await self._guarded(self._invite(msg, addr), msg, addr)
        elif method == "ACK":
            self._ack(call, msg, addr)
        elif method == "BYE":
            self._respond(msg, addr, 200 if call is not None else 481)
            if call is not None:
                await self._end(call, "caller_bye")
        elif method == "CANCEL":
            self._cancel(msg, addr, call)
        elif method == "OPTIONS":
            self._respond(msg, addr, 200, extra=(("Allow", ALLOW), ("Accept", "application/sdp")))
        elif method == "UPDATE" and call is not None:
            await self._reinvite(call, msg, addr)
        elif method == "INFO" and call is not None:
            self._info(call, msg, addr)
        elif method == "NOTIFY" and call is not None:
            self._notify(call, msg, addr)
        elif method in ("UPDATE", "INFO", "NOTIFY", "REFER"):
            self._respond(msg, addr, 481 if method != "REFER" or call is None else 403)
        else:
            self._respond(msg, addr, 501, extra=(("Allow", ALLOW),))

    def _of_call(self, call: Call, msg: SipMessage, addr) -> bool:
        """Whether an in-dialog request belongs to ``call``: from the address and transport its signalling
        uses, and with the dialog's tags (our tag in To once we gave one, theirs in From)."""
        # The host, not the port: a PBX may send in-dialog requests from another of its ports (RFC 3261 lets it).
        if addr[0] != call.remote_sip[0] or isinstance(addr, TlsAddr) != (call.transport == "tls"):
            return False
        if call.dialog is not None:
            return call.dialog.is_in_dialog(msg)
        return not msg.to_tag or msg.to_tag == call.tag

    async def _guarded(self, handling, msg: SipMessage, addr) -> None:
        """An INVITE (or re-INVITE) whose handling fails unexpectedly gets a 500 and leaves nothing behind:
        before, the exception ended the server's task for it and the transaction waited for an answer for ever."""
        try:
            await handling
        except Exception:
            log.exception("INVITE handling failed", extra={"call_id": msg.call_id})
            call = self.calls.get(msg.call_id or "")
            if call is not None and call.invite is msg:
                await self._end(call, "failed")
            txn = self.transactions.get(msg)
            if txn is not None and txn.state == "proceeding":
                with contextlib.suppress(Exception):
                    self._respond(msg, addr, 500, to_tag=call.tag if call is not None else new_tag())

    def _ringing(self, msg: SipMessage) -> bool:
        """The INVITE still waits for our final answer (not cancelled, not answered, not given up)."""
        txn = self.transactions.get(msg)
        return txn is not None and txn.state == "proceeding"

    def _transaction_over(self, txn) -> None:
        """A 200 to an INVITE never ACKed for 64*T1: the peer is gone or never meant it; end the call (§13.3.1.4)."""
        if txn.kind != "invite" or not txn.timed_out or txn.request.method != "INVITE":
            return
        call = self.calls.get(txn.request.call_id or "")
        if call is not None and call.invite is txn.request:
            log.warning("answer never acknowledged; ending the call", extra={"call_id": call.call_id})
            self.spawn(self.hang_up(call, "no_ack"))

    def _refused(self, reason: str) -> None:
        if self.metrics is not None:
            self.metrics.sip_refused.labels(reason).inc()

    def _response(self, msg: SipMessage) -> None:
        """A response to a request of ours (BYE, REFER): the client transaction stops retransmitting."""
        self.client_transactions.on_response(msg, time.monotonic())

    def _bad_request(self, data: bytes, addr, error: SipParseError) -> None:
        """Answer 400 only when the message has what a response needs; otherwise drop it."""
        head = data.split(b"\r\n\r\n", 1)[0]
        head = b"\r\n".join(line for line in head.split(b"\r\n")
                             if not line.lower().startswith((b"content-length:", b"l:")))
        lenient = None
        # The headers alone are enough to address a response; a Request-URI we cannot read is no reason to
        # leave the peer retransmitting for 32 s, so the second try puts a placeholder in its place.
        for attempt in (head, re.sub(rb"\A([A-Za-z]+) [^\r\n]* (SIP/2\.0)(?=\r\n)", rb"\1 sip:invalid \2", head)):
            with contextlib.suppress(SipParseError):
                lenient = parse(attempt + b"\r\n\r\n")
                break
        if lenient is None:
            log.info("dropped an unparseable SIP message", extra={"from": addr[0], "reason": error.reason})
            return
        if lenient.is_request and lenient.method != "ACK" and self._allowed(addr):
            self.send(response_to(lenient, error.status, error.reason).to_bytes(), addr)

    def _respond(self, msg: SipMessage, addr, status: int, *, extra=(), body: bytes = b"", content_type=None,
                 to_tag: str | None = None, reason: str | None = None) -> None:
        resp = response_to(msg, status, reason, to_tag=to_tag, extra_headers=extra, body=body, content_type=content_type)
        self._send_response(msg, resp, addr)

    def _send_response(self, request: SipMessage, resp: SipMessage, addr) -> None:
        txn = self.transactions.get(request)
        out = txn.send_response(resp) if txn is not None else [resp.to_bytes()]
        for data in out:
            self.send(data, addr)

    def _cancel(self, msg: SipMessage, addr, call: Call | None) -> None:
        invite = self.transactions.find_invite(msg)
        if invite is None:
            self._respond(msg, addr, 481)
            return
        self._respond(msg, addr, 200)
        if invite.state != "proceeding":
            return     # already answered: the CANCEL has no effect (§9.2); the caller will send BYE
        self._respond(invite.request, addr, 487, to_tag=call.tag if call else new_tag())
        if call is not None:
            self.spawn(self._end(call, "cancelled"))

    # -- a new call -----------------------------------------------------------------------------------------

    def route(self, msg: SipMessage) -> tuple[str | None, str]:
        """(tenant slug or None, the called number): the Request-URI's user part, else the To header's."""
        did = ""
        for candidate in (msg.uri or "", parse_name_addr(msg.header("To") or "")[1]):
            with contextlib.suppress(Exception):
                did = parse_uri(candidate).get("user") or ""
            if did:
                break
        did = did.split(";")[0]
        return self.config.routes.get(did, self.config.default_tenant), did

    async def _invite(self, msg: SipMessage, addr) -> None:
        if msg.call_id in self.ended:
            self._respond(msg, addr, 481, to_tag=new_tag())
            return
        auth = self.config.auth
        if auth is not None:
            result = auth.check(msg)
            if not result.ok:
                self._send_response(msg, auth.challenge(msg, stale=result.stale, to_tag=new_tag()), addr)
                if result.reason != "missing":
                    self._refused("auth")
                    log.warning("SIP digest auth failed", extra={"from": addr[0], "reason": result.reason})
                return
        tenant, did = self.route(msg)
        if tenant is None:
            self._respond(msg, addr, 404, to_tag=new_tag())
            return
        tag = new_tag()
        call: Call | None = None
        try:
            # No SDP: a delayed offer (RFC 3261 13.2.1; CUCM trunks send them). We offer in the 200 and take the
            # caller's answer from the ACK; until then no media address is known.
            offer = parse_sdp(msg.body) if msg.body.strip() else None
            remote_rtp = (offer.connection_ip, offer.port) if offer is not None else (addr[0], 0)
            call = Call(msg.call_id or "", tag, addr, remote_rtp, "PCMU", tenant=tenant, did=did, invite=msg,
                        transport="tls" if isinstance(addr, TlsAddr) else "udp", sips=_asks_sips(msg),
                        awaiting_answer=offer is None)
            # Known from now on, before the first await: a CANCEL (or a second INVITE of this Call-ID) that
            # arrives while the RTP port opens finds it, instead of orphaning it.
            self.calls[call.call_id] = call
            call.rtp_transport = await self._open_rtp(call)
            body = self._answer(call, offer) if offer is not None else self._offer(call)
            call.dialog = Dialog.from_invite(msg, tag, self.contact_for(call), addr)
        except (SdpError, SipParseError, OSError) as e:
            # Whatever failed, an RTP port opened for this call is given back: a refused INVITE must not hold one
            # (enough of them would leave no port for real calls).
            if call is not None:
                if self.calls.get(call.call_id) is call:
                    del self.calls[call.call_id]
                if call.rtp_transport is not None:
                    call.rtp_transport.close()
            if not self._ringing(msg):
                return
            if isinstance(e, OSError):
                log.exception("no RTP port free")
                self._respond(msg, addr, 503, to_tag=tag, extra=(("Retry-After", "5"),))
            else:
                self._respond(msg, addr, e.status, to_tag=tag)
            return
        gone = call.transport == "tls" and (self.tls is None or not self.tls.is_open(addr))
        if gone or call.closed or not self._ringing(msg):   # the caller hung up, cancelled or lost its connection
            if self.calls.get(call.call_id) is call:
                del self.calls[call.call_id]
            call.rtp_transport.close()
            return
        call.sender = RtpSender(PT[call.codec])
        self._respond(msg, addr, 180, to_tag=tag)
        if self.config.ring_ms:
            await asyncio.sleep(self.config.ring_ms / 1000)
            if call.closed:
                return
        try:
            session = self.new_session(call, self._audio_out(call))
            call.session = await session if inspect.isawaitable(session) else session
        except Exception:
            log.exception("could not start the call's session")
            self._respond(msg, addr, 500, to_tag=tag)
            await self._end(call, "failed")
            return
        if call.closed or not self._ringing(msg):      # cancelled (or ended) while the session was being set up
            if not call.closed:
                await self._end(call, "cancelled")
            with contextlib.suppress(Exception):
                await call.session.close()
            return
        call.session.on_hangup = lambda: self.hang_up(call)
        self._respond(msg, addr, 200, extra=(("Contact", self.contact_for(call)), ("Allow", ALLOW)), body=body,
                      content_type="application/sdp", to_tag=tag)
        call.last_rtp = time.monotonic()
        call.pump = asyncio.ensure_future(self._pump(call))
        if self.metrics is not None:
            self.metrics.sip_calls.inc()
        log.info("call answered", extra={"call_id": call.call_id, "codec": call.codec, "from": addr[0],
                                         "tenant": tenant})

    async def _open_rtp(self, call: Call) -> asyncio.DatagramTransport:
        loop = asyncio.get_running_loop()
        low, high = self.config.rtp_ports
        ports = [0] if not low else random.sample(range(low - low % 2, high + 1, 2), min(32, (high - low) // 2 + 1))
        error: OSError | None = None
        for port in ports:    # RTP on even ports (RFC 3550 §11), a few random tries in the configured range
            try:
                transport, _ = await loop.create_datagram_endpoint(lambda: _RtpProtocol(self, call),
                                                                   local_addr=(self.config.rtp_host, port))
                return transport
            except OSError as e:
                error = e
        raise error or OSError("no RTP port")

    def _answer(self, call: Call, offer: AudioOffer) -> bytes:
        """The SDP answer (same session id, a new version each time); also applies it to the call."""
        assert call.rtp_transport is not None
        local_port = call.rtp_transport.get_extra_info("sockname")[1]
        prefer = (call.codec,) if call.sender is not None else ("PCMU", "PCMA")   # a codec change mid-call is refused
        body, codec, event_pt = answer(offer, local_ip=self.config.rtp_host, local_port=local_port, prefer=prefer,
                                       session_id=call.sdp_id, session_version=call.sdp_id + call.sdp_version)
        call.sdp_version += 1
        call.codec, call.event_pt, call.answer_body = codec, event_pt, body
        if not offer.on_hold:
            call.remote_rtp = (offer.connection_ip, offer.port)
        return body

    def _offer(self, call: Call) -> bytes:
        """Our offer for a delayed-offer INVITE (kept as the call's last SDP, like an answer)."""
        assert call.rtp_transport is not None
        local_port = call.rtp_transport.get_extra_info("sockname")[1]
        body = sdp_offer(local_ip=self.config.rtp_host, local_port=local_port, session_id=call.sdp_id,
                         session_version=call.sdp_id + call.sdp_version)
        call.sdp_version += 1
        call.event_pt, call.answer_body = 101, body
        return body

    def _ack(self, call: Call | None, msg: SipMessage, addr) -> None:
        """An ACK; for a delayed offer it carries the caller's answer, which says where to send the media. Only
        from the call's own peer, with its tags: a forged one would move the call's audio, or end the call."""
        if call is None or not call.awaiting_answer or call.closed or call.invite is None \
                or not self._of_call(call, msg, addr):
            return
        with contextlib.suppress(SipParseError):
            if msg.cseq[0] != call.invite.cseq[0]:
                return          # not the ACK of our 200 to that INVITE
        try:
            peer = parse_sdp(msg.body)
            _, codec, event_pt = answer(peer, local_ip=self.config.rtp_host, local_port=0, prefer=("PCMU",))
        except SdpError as e:
            # No usable answer to our offer: there is no session to have (RFC 3261 13.3.1.4), so it ends now.
            log.warning("the ACK carried no usable answer to our offer; ending the call",
                        extra={"call_id": call.call_id, "reason": str(e)})
            self.spawn(self.hang_up(call, "no_answer"))
            return
        call.awaiting_answer = False
        call.codec, call.event_pt = codec, event_pt
        call.remote_rtp = (peer.connection_ip, peer.port)
        log.info("media answered in the ACK", extra={"call_id": call.call_id, "codec": codec})

    async def _reinvite(self, call: Call, msg: SipMessage, addr) -> None:
        """Hold, resume or a session refresh: answer the new offer; a re-INVITE without one gets the last answer."""
        if call.dialog is not None:
            call.dialog.refresh_target(msg)
        if not msg.body:
            extra = (("Contact", self.contact_for(call)),)
            if msg.method == "UPDATE":
                self._respond(msg, addr, 200, extra=extra)
            else:
                self._respond(msg, addr, 200, extra=extra, body=call.answer_body, content_type="application/sdp")
            return
        try:
            offer = parse_sdp(msg.body)
            body = self._answer(call, offer)
        except SdpError as e:
            self._respond(msg, addr, e.status)
            return
        held = offer.on_hold
        if held != call.held:
            call.held = held
            if call.session is not None and not call.transferring:
                call.session.hold(held)
            if call.jitter is not None and not held:
                call.jitter = None       # the far end may restart its stream
            log.info("call on hold" if held else "call resumed", extra={"call_id": call.call_id})
        self._respond(msg, addr, 200, extra=(("Contact", self.contact_for(call)),),
                      body=body, content_type="application/sdp")

    # -- audio ------------------------------------------------------------------------------------------------

    async def _pump(self, call: Call) -> None:
        """One clock per call: played-out jitter-buffer frames to the session, silence when the line is quiet
        (silence suppression, a pause): the endpointer needs it to notice the caller finished speaking."""
        encode = ulaw_encode if call.codec == "PCMU" else alaw_encode
        silence = encode(b"\x00\x00" * 160)
        quiet_until = time.monotonic()   # silence has been fed up to here
        while not call.closed:
            await asyncio.sleep(TICK_S)
            now = time.monotonic()
            session = call.session
            if session is None:
                continue
            try:
                for event in call.dtmf.poll(now):
                    self.on_digit(call, event.digit)
                frames = call.jitter.pop(now) if call.jitter is not None else []
                for frame in frames:
                    await session.feed(frame)
                if frames or now - call.last_rtp < (self.config.jitter_ms + 60) / 1000:
                    quiet_until = now
                    continue
                while quiet_until + TICK_S <= now:
                    await session.feed(silence)
                    quiet_until += TICK_S
            except Exception:
                log.exception("a call's audio failed; ending it")
                self.spawn(self.hang_up(call))
                return

    def _audio_out(self, call: Call):
        last = [0.0]

        async def send_audio(frame: bytes) -> None:
            if call.closed or call.held or call.awaiting_answer or call.rtp_transport is None or call.sender is None:
                return
            now = time.monotonic()
            talkspurt = not last[0] or now - last[0] > 0.1    # after a pause: the marker bit, for the far jitter buffer
            if talkspurt and last[0]:
                # The pause in RTP time too (RFC 3550 5.1): the timestamp keeps the sampling clock, so the far
                # end's jitter estimate, its recording and RTCP stay right.
                call.sender.skip(max(0, round((now - last[0]) * call.sender.clock_rate) - call.sender.samples_per_packet))
            last[0] = now
            call.rtp_transport.sendto(call.sender.packet(frame, new_talkspurt=talkspurt), call.remote_rtp)
            call.stats["rtp_out"] += 1

        return send_audio

    # -- keypad ---------------------------------------------------------------------------------------------

    DIGIT_PAUSE_S = 0.8   # keypad digits are one input until '#' or this long without a key

    MAX_DIGITS = 32

    def on_digit(self, call: Call, digit: str) -> None:
        """Key presses, collected into one input ('1234#', or a pause) for the dialogue."""
        if call.digits_flush is not None:
            call.digits_flush.cancel()
        if digit == "#":
            self._flush_digits(call)
            return
        if len(call.digits) >= self.MAX_DIGITS:   # key presses faster than the pause, without end: one input
            self._flush_digits(call)
        call.digits += digit
        call.digits_flush = asyncio.get_running_loop().call_later(self.DIGIT_PAUSE_S, self._flush_digits, call)

    def _flush_digits(self, call: Call) -> None:
        digits, call.digits, call.digits_flush = call.digits, "", None
        if not digits or call.session is None or call.closed or call.held or call.transferring:
            return
        log.info("dtmf input", extra={"call_id": call.call_id, "digits": len(digits)})   # how many, never which
        text = call.agent_phrase if digits == self.config.agent_digit and call.agent_phrase else digits
        self.spawn(call.session.text_input(text))

    def _info(self, call: Call, msg: SipMessage, addr) -> None:
        """SIP INFO keypad digits (application/dtmf-relay or application/dtmf), as many PBXs send them."""
        ctype = (msg.header("Content-Type") or "").split(";")[0].strip().lower()
        digit = None
        if ctype == "application/dtmf-relay":
            for line in msg.body.decode("utf-8", "replace").splitlines():
                key, _, value = line.partition("=")
                if key.strip().lower() == "signal":
                    digit = value.strip()
        elif ctype == "application/dtmf":
            digit = msg.body.decode("utf-8", "replace").strip()
        if ctype in ("application/dtmf-relay", "application/dtmf"):
            if not digit or len(digit) != 1 or digit.upper() not in "0123456789*#ABCD":
                self._respond(msg, addr, 400, reason="Bad DTMF")
                return
            self._respond(msg, addr, 200)
            self.on_digit(call, digit.upper())
            return
        self._respond(msg, addr, 200 if not msg.body else 415)

    # -- our side: hang-up and transfer ---------------------------------------------------------------------

    async def request(self, call: Call, method: str, *, extra=(), refer_to: str | None = None,
                      uri_headers: dict[str, str] | None = None, timeout_s: float = 32.0) -> SipMessage | None:
        """Send an in-dialog request and wait for its final response (None on timeout)."""
        assert call.dialog is not None
        tls = call.transport == "tls"
        if tls and (self.tls is None or not self.tls.is_open(call.remote_sip)):
            log.info("TLS connection gone; in-dialog request not sent", extra={"call_id": call.call_id, "method": method})
            return None
        via = (self.config.host, self.tls_port or 0, "TLS") if tls else (self.config.host, self.config.port, "UDP")
        if method == "REFER":
            assert refer_to is not None
            msg = call.dialog.refer(refer_to, via_host=via[0], via_port=via[1], via_transport=via[2], extra_headers=extra,
                                    uri_headers=uri_headers)
        else:
            msg = call.dialog.request(method, via_host=via[0], via_port=via[1], via_transport=via[2], extra_headers=extra)
        loop = asyncio.get_running_loop()
        final: asyncio.Future[SipMessage | None] = loop.create_future()

        def on_final(resp: SipMessage | None) -> None:
            if not final.done():
                final.set_result(resp)

        self.send(self.client_transactions.send(msg, call.remote_sip, time.monotonic(), on_final=on_final, reliable=tls),
                  call.remote_sip)
        try:
            return await asyncio.wait_for(final, timeout_s)
        except TimeoutError:
            return None

    async def hang_up(self, call: Call, reason: str = "hangup") -> None:
        """BYE from our side: the call ends here at once; the BYE is retransmitted until the peer answers."""
        if call.closed:
            return
        self.spawn(self.request(call, "BYE"))
        await self._end(call, reason)

    async def hand_off(self, call: Call, handoff_id: str) -> None:
        """After the dialogue handed the caller to a person: a blind REFER to the queue, carrying the hand-off id
        (a header on the REFER and on the INVITE the PBX sends to the queue); without a queue, or if the PBX
        refuses, a goodbye and BYE — the hand-off stays in the agents' queue for a call back."""
        if call.closed or call.transferring:
            return
        call.transferring = True
        session = call.session
        if session is not None:
            session.hold(True)
        uri = self.config.transfer_uri
        if uri:
            header = self.config.handoff_header
            call.refer_result = asyncio.get_running_loop().create_future()
            resp = await self.request(call, "REFER", extra=((header, handoff_id),), refer_to=uri,
                                      uri_headers={header: handoff_id})
            accepted = resp is not None and resp.status is not None and 200 <= resp.status < 300
            log.info("transfer requested", extra={"call_id": call.call_id, "accepted": accepted,
                                                  "status": resp.status if resp is not None else None})
            if accepted:
                status = None
                with contextlib.suppress(TimeoutError):   # the PBX reports the new leg's progress by NOTIFY
                    status = await asyncio.wait_for(call.refer_result, 30)
                    log.info("transfer result", extra={"call_id": call.call_id, "status": status})
                if status is None or status < 300:
                    if not call.closed:    # transferred (or no word): our leg is done (RFC 5589 §6.1)
                        await self.hang_up(call, "transferred")
                    return
                # The PBX could not reach the queue (a 486, a 503): the caller is still with us. They hear the
                # call-back message, not silence and then a hang-up.
                log.warning("transfer failed", extra={"call_id": call.call_id, "status": status})
        if session is not None and not call.closed:
            with contextlib.suppress(Exception):
                await session.say(session.config.texts.callback)
        await self.hang_up(call, "handed_off")

    def _notify(self, call: Call, msg: SipMessage, addr) -> None:
        """The transfer's progress (Event: refer, a sipfrag body): a final status settles it."""
        self._respond(msg, addr, 200)
        status = refer_status(msg)
        if status is not None and status >= 200 and call.refer_result is not None and not call.refer_result.done():
            call.refer_result.set_result(status)

    # -- the end --------------------------------------------------------------------------------------------

    async def _end(self, call: Call, reason: str) -> None:
        if call.closed:
            return
        call.closed = True
        if call.invite is not None and self._ringing(call.invite):
            # Ended before we answered (a BYE on the early dialog, a failure, the connection gone): the INVITE
            # still gets its final answer (§15.1.2), so its transaction ends instead of waiting for ever.
            with contextlib.suppress(Exception):
                self._respond(call.invite, call.remote_sip, 487, to_tag=call.tag)
        if self.calls.get(call.call_id) is call:
            del self.calls[call.call_id]
        self.ended[call.call_id] = time.monotonic()
        if call.pump is not None:
            call.pump.cancel()
        if call.digits_flush is not None:
            call.digits_flush.cancel()
        if call.refer_result is not None and not call.refer_result.done():
            call.refer_result.cancel()
        if call.session is not None:
            try:
                await call.session.close()
            except Exception:
                log.exception("closing a call's session failed")
        if call.rtp_transport is not None:
            call.rtp_transport.close()
        jitter = call.jitter.stats if call.jitter is not None else {}
        playout = call.session.playout if call.session is not None else {}
        if self.metrics is not None and call.pump is not None:     # an answered call
            m = self.metrics
            m.sip_calls.dec()
            m.sip_call_ends.labels(reason).inc()
            for kind, value in (("sent", call.stats["rtp_out"]), ("received", call.stats["rtp_in"]),
                                ("late_out", playout.get("late", 0)), ("underrun_out", playout.get("underrun", 0)),
                                ("lost_in", jitter.get("lost", 0)),
                                ("late_in", jitter.get("late", 0))):
                m.sip_rtp.labels(kind).inc(value)
        log.info("call ended", extra={"call_id": call.call_id, "reason": reason,
                                      "seconds": round(time.monotonic() - call.started, 1), **call.stats,
                                      **{f"out_{k}": v for k, v in playout.items() if k != "frames"},
                                      **{f"jitter_{k}": v for k, v in jitter.items() if k in ("late", "lost")}})

    async def close(self) -> None:
        for call in list(self.calls.values()):
            await self.hang_up(call, "shutdown")
        await asyncio.sleep(0.05)     # let the BYEs leave
        if self._timer is not None:
            self._timer.cancel()
        if self.transport is not None:
            self.transport.close()
        if self.tls is not None:
            await self.tls.close()


async def start_sip(config: SipConfig, new_session, metrics=None) -> SipServer:
    """The UDP listener, and the TLS one when ``config.tls_port`` and ``config.tls_context`` are both set (one
    without the other is a configuration error, raised before anything is bound)."""
    if (config.tls_port is None) != (config.tls_context is None):
        raise ValueError("SIP over TLS needs both tls_port and tls_context (or neither)")
    loop = asyncio.get_running_loop()
    server = SipServer(config, new_session, metrics)
    await loop.create_datagram_endpoint(lambda: server, local_addr=(config.host, config.port))
    if config.tls_port is not None:
        try:
            await server.start_tls()
        except BaseException:
            await server.close()
            raise
    return server


def _asks_sips(invite: SipMessage) -> bool:
    """§12.1.1: a SIPS Request-URI, or a SIPS top Record-Route (else Contact), makes our Contact a SIPS URI."""
    candidates = [invite.uri or ""]
    routes = invite.header("Record-Route")
    target = routes if routes is not None else invite.header("Contact")
    if target:
        with contextlib.suppress(Exception):
            candidates.append(parse_name_addr(split_header_values(target)[0])[1])
    return any(c.strip().lower().startswith("sips:") for c in candidates)


def call_subject(call: Call) -> str:
    return f"sip:{uuid.uuid5(uuid.NAMESPACE_URL, call.call_id).hex[:12]}"
