"""SIP over TLS (gateway/sip/tls.py): the stream framer on its own (splits, partial reads, keep-alives, a missing
Content-Length, oversize), the server context helper, the reliable-transport timers, and a real ``SipServer`` on
loopback with a self-signed certificate: OPTIONS, a CRLF ping, an INVITE with SDP answered with a TLS Contact,
ACK and BYE over one TLS connection, our own BYE with a TLS Via, a dropped connection ending only its call, a
stream without Content-Length answered 400 and closed, and a UDP peer served alongside all the while."""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import os
import random
import socket
import ssl
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from gateway.sip.client_transaction import ClientTransactionTable
from gateway.sip.dialog import Dialog
from gateway.sip.message import SipMessage, parse, parse_via, response_to
from gateway.sip.server import SipConfig, SipServer, start_sip
from gateway.sip.tls import PONG, Frame, StreamFramer, TlsAddr, TlsConfigError, TlsListener, server_tls_context
from gateway.sip.transaction import InviteServerTransaction, NonInviteServerTransaction, TransactionTable

pytestmark = pytest.mark.timeout(30)


def crlf(text: str) -> bytes:
    return text.replace("\n", "\r\n").encode()


OPTIONS = crlf("""OPTIONS sip:enclave@127.0.0.1 SIP/2.0
Via: SIP/2.0/TLS 127.0.0.1:5061;branch=z9hG4bKopt1
From: <sip:pbx@127.0.0.1>;tag=a1
To: <sip:enclave@127.0.0.1>
Call-ID: opt-1
CSeq: 1 OPTIONS
Max-Forwards: 70
Content-Length: 0

""")

INFO = crlf("""INFO sip:enclave@127.0.0.1 SIP/2.0
Via: SIP/2.0/TLS 127.0.0.1:5061;branch=z9hG4bKinfo1
From: <sip:pbx@127.0.0.1>;tag=a1
To: <sip:enclave@127.0.0.1>;tag=b2
Call-ID: info-1
CSeq: 2 INFO
Content-Type: application/dtmf-relay
l: 24

Signal=5
Duration=160
""")


# -- the framer ----------------------------------------------------------------------------------------------------


def messages(frames: list[Frame]) -> list[bytes]:
    return [f.data for f in frames if f.kind == "message"]


def test_one_message_and_its_body_are_split_exactly() -> None:
    framer = StreamFramer()
    frames = framer.feed(INFO)
    assert frames == [Frame("message", INFO)]
    msg = parse(frames[0].data)
    assert msg.method == "INFO" and msg.body == b"Signal=5\r\nDuration=160\r\n"     # compact l: honoured
    assert framer.buffered == 0 and not framer.failed


def test_partial_reads_byte_by_byte() -> None:
    framer = StreamFramer()
    stream = OPTIONS + INFO
    out: list[Frame] = []
    for i in range(len(stream)):
        got = framer.feed(stream[i:i + 1])
        if i < len(OPTIONS) - 1:
            assert got == []                 # nothing until the last byte of the first message
        out += got
    assert messages(out) == [OPTIONS, INFO]


def test_two_messages_in_one_chunk_and_a_third_in_part() -> None:
    framer = StreamFramer()
    third = OPTIONS.replace(b"opt-1", b"opt-3")
    frames = framer.feed(OPTIONS + INFO + third[:40])
    assert messages(frames) == [OPTIONS, INFO]
    assert framer.buffered == 40
    assert messages(framer.feed(third[40:])) == [third]


def test_body_split_across_reads_is_not_searched_for_headers() -> None:
    body = b"v=0\r\n\r\n\r\nX"          # blank lines inside a body are body, not the end of anything
    msg = OPTIONS.replace(b"Content-Length: 0", f"Content-Length: {len(body)}".encode()) + body
    framer = StreamFramer()
    head_len = msg.index(b"\r\n\r\n") + 4
    assert framer.feed(msg[:head_len + 3]) == []
    assert framer.feed(msg[head_len + 3:]) == [Frame("message", msg)]


def test_keep_alive_ping_and_lone_crlf() -> None:
    framer = StreamFramer()
    assert framer.feed(b"\r\n\r\n") == [Frame("ping")]
    assert framer.feed(b"\r\n") == []                       # half a ping, or a pong: wait
    assert framer.feed(b"\r\n") == [Frame("ping")]          # it was a ping split over two reads
    assert framer.feed(b"\r\n") == []
    frames = framer.feed(OPTIONS + b"\r\n\r\n" + INFO)      # a lone CRLF before a message is skipped
    assert [f.kind for f in frames] == ["message", "ping", "message"]
    assert messages(frames) == [OPTIONS, INFO]
    assert PONG == b"\r\n"


def test_lf_only_message_is_framed() -> None:
    lf = OPTIONS.replace(b"\r\n", b"\n")
    assert StreamFramer().feed(lf + lf) == [Frame("message", lf), Frame("message", lf)]


def test_missing_content_length_is_an_error_with_the_headers() -> None:
    framer = StreamFramer()
    no_length = OPTIONS.replace(b"Content-Length: 0\r\n", b"")
    frames = framer.feed(OPTIONS + no_length + INFO)
    assert frames[0] == Frame("message", OPTIONS)
    error = frames[1]
    assert error.kind == "error" and error.status == 400 and error.reason == "Missing Content-Length"
    assert parse(error.data).call_id == "opt-1"              # enough to answer it
    assert len(frames) == 2 and framer.failed
    assert framer.feed(INFO) == []                           # the stream is lost: nothing more comes out


@pytest.mark.parametrize("lengths", [("5", "6"), ("x",), ("-1",)])
def test_bad_or_conflicting_content_length(lengths: tuple[str, ...]) -> None:
    head = OPTIONS.replace(b"Content-Length: 0\r\n", b"".join(f"Content-Length: {v}\r\n".encode() for v in lengths))
    [frame] = StreamFramer().feed(head + b"hello!")
    assert (frame.kind, frame.status, frame.reason) == ("error", 400, "Bad Content-Length")


def test_oversize_messages_close_the_stream() -> None:
    framer = StreamFramer(max_size=1024)
    [frame] = framer.feed(b"OPTIONS sip:x SIP/2.0\r\nX-Pad: " + b"a" * 2000)      # headers without end
    assert (frame.kind, frame.status, frame.data) == ("error", 513, b"")
    big = OPTIONS.replace(b"Content-Length: 0", b"Content-Length: 5000")
    [frame] = StreamFramer(max_size=1024).feed(big)                                  # refused before the body
    assert (frame.kind, frame.status) == ("error", 513) and frame.data == big
    fits = OPTIONS.replace(b"Content-Length: 0", b"Content-Length: 10") + b"0123456789"
    assert StreamFramer(max_size=len(fits)).feed(fits) == [Frame("message", fits)]
    assert StreamFramer().max_size == 65535


# -- the context helper ------------------------------------------------------------------------------------------


def make_cert(directory: Path, *, password: bytes | None = None) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 / localhost (its own CA) and its key, as PEM files."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "enclave-sip-test")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                                                        x509.DNSName("localhost")]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256()))
    cert_file, key_file = directory / "sip.crt", directory / "sip.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    encryption = (serialization.BestAvailableEncryption(password) if password
                  else serialization.NoEncryption())
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption))
    return cert_file, key_file


def test_server_tls_context(tmp_path: Path) -> None:
    cert, key = make_cert(tmp_path)
    ctx = server_tls_context(cert, key)
    assert ctx.minimum_version == ssl.TLSVersion.TLSv1_2 and ctx.verify_mode == ssl.CERT_NONE
    assert server_tls_context(cert, key, client_ca_file=cert).verify_mode == ssl.CERT_REQUIRED
    with pytest.raises(TlsConfigError, match="certificate file not found: .*nope.crt"):
        server_tls_context(tmp_path / "nope.crt", key)
    with pytest.raises(TlsConfigError, match="private key file not found"):
        server_tls_context(cert, tmp_path / "nope.key")
    with pytest.raises(TlsConfigError, match="not a file"):
        server_tls_context(tmp_path, key)
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate")
    with pytest.raises(TlsConfigError, match="not a usable PEM"):
        server_tls_context(junk, key)
    (tmp_path / "other").mkdir()
    other_cert, _ = make_cert(tmp_path / "other")
    with pytest.raises(TlsConfigError, match="not a usable PEM"):
        server_tls_context(other_cert, key)              # a key that does not match the certificate
    enc_dir = tmp_path / "enc"
    enc_dir.mkdir()
    enc_cert, enc_key = make_cert(enc_dir, password=b"secret")
    with pytest.raises(TlsConfigError, match="encrypted"):
        server_tls_context(enc_cert, enc_key)           # never an interactive prompt
    assert server_tls_context(enc_cert, enc_key, password="secret").minimum_version == ssl.TLSVersion.TLSv1_2
    if os.geteuid() != 0:                                # root reads anything
        key.chmod(0)
        try:
            with pytest.raises(TlsConfigError, match="not readable"):
                server_tls_context(cert, key)
        finally:
            key.chmod(0o600)


# -- timers on a reliable transport ---------------------------------------------------------------------------------

INVITE_TXN = parse(crlf("""INVITE sip:2000@127.0.0.1 SIP/2.0
Via: SIP/2.0/TLS 127.0.0.1:5061;branch=z9hG4bKinv1
From: <sip:pbx@127.0.0.1>;tag=a1
To: <sip:2000@127.0.0.1>
Contact: <sip:pbx@127.0.0.1:5061;transport=tls>
Call-ID: inv-1
CSeq: 1 INVITE
Content-Length: 0

"""))


def test_reliable_server_transactions_never_retransmit() -> None:
    busy = InviteServerTransaction(INVITE_TXN, now=0.0, reliable=True)
    busy.send_response(response_to(INVITE_TXN, 486, to_tag="t"), now=0.0)
    assert busy.next_timer() == 32.0                                   # Timer H only, no Timer G
    assert busy.on_timer(now=10.0) == [] and busy.on_timer(now=32.0) == [] and busy.timed_out
    assert busy.on_request(INVITE_TXN, now=1.0) == []                  # (terminated)

    ok = InviteServerTransaction(INVITE_TXN, now=0.0, reliable=True)
    resp = response_to(INVITE_TXN, 200, to_tag="t")
    ok.send_response(resp, now=0.0)
    assert ok.next_timer() == 32.0 and ok.on_timer(now=31.9) == []    # no 2xx retransmission either
    assert ok.on_request(INVITE_TXN, now=1.0) == [resp.to_bytes()]    # a retransmitted INVITE still gets it
    assert ok.on_ack(now=2.0) and not ok.timed_out

    completed = InviteServerTransaction(INVITE_TXN, now=0.0, reliable=True)
    completed.send_response(response_to(INVITE_TXN, 486, to_tag="t"), now=0.0)
    completed.on_ack(now=1.0)
    assert completed.next_timer() == 1.0                                # Timer I = 0
    completed.on_timer(now=1.0)
    assert completed.terminated

    options = parse(OPTIONS)
    txn = NonInviteServerTransaction(options, now=0.0, reliable=True)
    txn.send_response(response_to(options, 200), now=3.0)
    assert txn.next_timer() == 3.0                                      # Timer J = 0

    unreliable = InviteServerTransaction(INVITE_TXN, now=0.0)
    unreliable.send_response(response_to(INVITE_TXN, 486, to_tag="t"), now=0.0)
    assert unreliable.next_timer() == 0.5                               # UDP unchanged: Timer G

    table = TransactionTable(clock=lambda: 0.0)
    dispatch = table.on_request(INVITE_TXN, TlsAddr("127.0.0.1", 5061), reliable=True)
    assert isinstance(dispatch.transaction, InviteServerTransaction) and dispatch.transaction.reliable


def test_reliable_client_transaction_sends_once_and_keeps_timer_f() -> None:
    dialog = Dialog.from_invite(INVITE_TXN, "t", "<sip:enclave@127.0.0.1:5061;transport=tls>", ("127.0.0.1", 5061),
                                first_cseq=1)
    bye = dialog.request("BYE", via_host="127.0.0.1", via_port=5061, via_transport="TLS")
    assert parse_via(bye.header("Via") or "").transport == "TLS"
    assert dialog.request("BYE", via_host="127.0.0.1", via_port=5060).header("Via").startswith("SIP/2.0/UDP ")
    with pytest.raises(ValueError):
        dialog.request("BYE", via_host="127.0.0.1", via_port=5060, via_transport="SCTP-ish")

    outcome: list[SipMessage | None] = []
    table = ClientTransactionTable()
    table.send(bye, ("127.0.0.1", 5061), 0.0, on_final=outcome.append, reliable=True)
    assert table.next_timer() == 32.0                                   # Timer F only, no Timer E
    assert table.on_timer(16.0) == [] and table.on_timer(32.0) == [] and outcome == [None]

    bye2 = dialog.request("BYE", via_host="127.0.0.1", via_port=5061, via_transport="TLS")
    table.send(bye2, ("127.0.0.1", 5061), 0.0, on_final=outcome.append, reliable=True)
    assert table.on_response(response_to(bye2, 200), 1.0) is not None
    assert table.next_timer() == 1.0 and table.on_timer(1.0) == [] and len(table) == 0    # Timer K = 0


def test_tls_addr_is_a_plain_address_that_knows_its_transport() -> None:
    addr = TlsAddr("127.0.0.1", 5061)
    assert addr == ("127.0.0.1", 5061) and hash(addr) == hash(("127.0.0.1", 5061)) and addr[0] == "127.0.0.1"
    assert {addr: 1}[("127.0.0.1", 5061)] == 1 and "TlsAddr" in repr(addr)


# -- a real server on loopback -------------------------------------------------------------------------------------


@dataclass
class FakeSession:
    """What the SIP server needs of a CallSession: audio in, hold, close, and the hang-up hook."""

    on_hangup: object = None
    playout: dict = field(default_factory=dict)
    fed: int = 0
    closed: bool = False

    async def feed(self, frame: bytes) -> None:
        self.fed += 1

    def hold(self, held: bool) -> None:
        pass

    async def close(self) -> None:
        self.closed = True


def branch() -> str:
    return f"z9hG4bK{random.getrandbits(48):x}"


def sip_request(method: str, *, uri: str, transport: str, sent_by: str, call_id: str, cseq: int,
                to_tag: str | None = None, body: bytes = b"", contact: str = "", content_length: bool = True) -> bytes:
    to = "<sip:2000@127.0.0.1>" + (f";tag={to_tag}" if to_tag else "")
    lines = [f"{method} {uri} SIP/2.0", f"Via: SIP/2.0/{transport} {sent_by};branch={branch()}",
             "From: <sip:pbx@127.0.0.1>;tag=pbx1", f"To: {to}", f"Call-ID: {call_id}", f"CSeq: {cseq} {method}",
             "Max-Forwards: 70"]
    if contact:
        lines.append(f"Contact: {contact}")
    if body:
        lines.append("Content-Type: application/sdp")
    if content_length:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def sdp_offer(rtp_port: int) -> bytes:
    return crlf(f"""v=0
o=pbx 1 1 IN IP4 127.0.0.1
s=-
c=IN IP4 127.0.0.1
t=0 0
m=audio {rtp_port} RTP/AVP 0 8 101
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-16
a=sendrecv
""")


class TlsPeer:
    """A trunk peer on a blocking ``ssl`` client socket (run it off the event loop, in a thread)."""

    def __init__(self, port: int, ctx: ssl.SSLContext) -> None:
        raw = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.sock = ctx.wrap_socket(raw, server_hostname="127.0.0.1")
        self.local = self.sock.getsockname()[:2]
        self.framer = StreamFramer()
        self.pending: list[bytes] = []

    @property
    def sent_by(self) -> str:
        return f"{self.local[0]}:{self.local[1]}"

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def recv(self, timeout_s: float = 3.0) -> SipMessage:
        deadline = time.monotonic() + timeout_s
        while not self.pending:
            self.sock.settimeout(max(0.01, deadline - time.monotonic()))
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError("the server closed the connection")
            self.pending += messages(self.framer.feed(chunk))
        return parse(self.pending.pop(0))

    def final(self, timeout_s: float = 3.0) -> SipMessage:
        """The next final response, skipping provisionals."""
        while True:
            msg = self.recv(timeout_s)
            if msg.is_request or (msg.status or 0) >= 200:
                return msg

    def silent_for(self, seconds: float) -> bool:
        try:
            self.recv(seconds)
        except TimeoutError:
            return True
        return False

    def closed_by_server(self, timeout_s: float = 3.0) -> bool:
        try:
            while True:
                self.recv(timeout_s)
        except (EOFError, ConnectionError, ssl.SSLError):
            return True
        except TimeoutError:
            return False

    def close(self) -> None:
        self.sock.close()


def udp_peer() -> socket.socket:
    """A SIP peer's UDP socket on loopback (blocking, 3 s per receive)."""
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("127.0.0.1", 0))
    udp.settimeout(3)
    return udp


def udp_ask(port: int, data: bytes, sock: socket.socket) -> SipMessage:
    sock.sendto(data, ("127.0.0.1", port))
    while True:
        msg = parse(sock.recv(65535))
        if msg.is_request or (msg.status or 0) >= 200:
            return msg


def test_sip_over_tls_on_a_real_server(tmp_path: Path) -> None:
    asyncio.run(asyncio.wait_for(_tls_scenario(tmp_path), 20))


async def _tls_scenario(tmp_path: Path) -> None:
    cert, key = make_cert(tmp_path)
    sessions: list[FakeSession] = []

    def new_session(call, send_audio) -> FakeSession:
        sessions.append(FakeSession())
        return sessions[-1]

    config = SipConfig(host="127.0.0.1", port=0, rtp_host="127.0.0.1", tls_port=0,
                       tls_context=server_tls_context(cert, key), default_tenant="dev")
    server = await start_sip(config, new_session)
    ends: list[tuple[str, str]] = []
    real_end = server._end

    async def spy_end(call, reason: str) -> None:
        ends.append((call.call_id, reason))
        await real_end(call, reason)

    server._end = spy_end   # type: ignore[method-assign]
    udp = udp_peer()
    client_ctx = ssl.create_default_context(cafile=str(cert))     # verifies the server's certificate and IP
    try:
        assert isinstance(server, SipServer) and server.tls is not None
        tls_port, udp_port = server.tls_port, server.transport.get_extra_info("sockname")[1]
        assert tls_port and tls_port != config.tls_port
        uri = f"sip:2000@127.0.0.1:{tls_port};transport=tls"
        peer = await asyncio.to_thread(TlsPeer, tls_port, client_ctx)
        contact = f"<sip:pbx@{peer.sent_by};transport=tls>"

        # OPTIONS over TLS: 200, the Via (transport TLS) kept as sent.
        opts = sip_request("OPTIONS", uri=uri, transport="TLS", sent_by=peer.sent_by, call_id="tls-opt", cseq=1)
        await asyncio.to_thread(peer.send, opts)
        ok = await asyncio.to_thread(peer.final)
        assert ok.status == 200 and ok.header("Via") == parse(opts).header("Via")
        assert parse_via(ok.header("Via") or "").transport == "TLS"

        # The allow-list applies to TLS peers as to UDP ones (it lives in the shared _handle).
        allowed, server.allowed = server.allowed, [ipaddress.ip_network("10.0.0.0/8")]
        await asyncio.to_thread(peer.send, opts.replace(b"tls-opt", b"tls-opt-2"))
        assert (await asyncio.to_thread(peer.final)).status == 403
        server.allowed = allowed

        # An RFC 5626 ping gets a pong.
        await asyncio.to_thread(peer.send, b"\r\n\r\n")
        assert await asyncio.to_thread(peer.sock.recv, 16) == PONG

        # A UDP peer is served alongside, over UDP.
        udp_opts = sip_request("OPTIONS", uri=f"sip:2000@127.0.0.1:{udp_port}", transport="UDP",
                               sent_by=f"127.0.0.1:{udp.getsockname()[1]}", call_id="udp-opt", cseq=1)
        udp_ok = await asyncio.to_thread(udp_ask, udp_port, udp_opts, udp)
        assert udp_ok.status == 200 and parse_via(udp_ok.header("Via") or "").transport == "UDP"

        # A call over TLS: INVITE with SDP → 200 with a TLS Contact; no 200 retransmission while the ACK is late.
        invite = sip_request("INVITE", uri=uri, transport="TLS", sent_by=peer.sent_by, call_id="tls-call-1",
                             cseq=1, contact=contact, body=sdp_offer(40000))
        await asyncio.to_thread(peer.send, invite)
        answer = await asyncio.to_thread(peer.final)
        assert answer.status == 200 and answer.header("Content-Type") == "application/sdp"
        assert answer.header("Contact") == f"<sip:enclave@127.0.0.1:{tls_port};transport=tls>"
        assert b"m=audio" in answer.body
        assert await asyncio.to_thread(peer.silent_for, 0.8)       # T1 = 0.5 s passed: nothing resent
        call = server.calls["tls-call-1"]
        assert call.transport == "tls" and isinstance(call.remote_sip, TlsAddr)
        to_tag = answer.to_tag
        await asyncio.to_thread(peer.send, sip_request("ACK", uri=uri, transport="TLS", sent_by=peer.sent_by,
                                                       call_id="tls-call-1", cseq=1, to_tag=to_tag))
        bye = sip_request("BYE", uri=uri, transport="TLS", sent_by=peer.sent_by, call_id="tls-call-1", cseq=2,
                          to_tag=to_tag)
        await asyncio.to_thread(peer.send, bye)
        bye_ok = await asyncio.to_thread(peer.final)
        assert bye_ok.status == 200 and bye_ok.call_id == "tls-call-1"
        assert ("tls-call-1", "caller_bye") in ends and "tls-call-1" not in server.calls and sessions[0].closed

        # A UDP call is up while the TLS peer calls again.
        udp_sent_by = f"127.0.0.1:{udp.getsockname()[1]}"
        udp_uri = f"sip:2000@127.0.0.1:{udp_port}"
        udp_invite = sip_request("INVITE", uri=udp_uri, transport="UDP", sent_by=udp_sent_by, call_id="udp-call",
                                 cseq=1, contact=f"<sip:pbx@{udp_sent_by}>", body=sdp_offer(40002))
        udp_answer = await asyncio.to_thread(udp_ask, udp_port, udp_invite, udp)
        assert udp_answer.status == 200 and udp_answer.header("Contact") == server.contact
        udp.sendto(sip_request("ACK", uri=udp_uri, transport="UDP", sent_by=udp_sent_by, call_id="udp-call",
                               cseq=1, to_tag=udp_answer.to_tag), ("127.0.0.1", udp_port))
        assert server.calls["udp-call"].transport == "udp"

        # Our side hangs up a TLS call: the BYE goes over the connection with a TLS Via, sent once.
        await asyncio.to_thread(peer.send, sip_request("INVITE", uri=uri, transport="TLS", sent_by=peer.sent_by,
                                                       call_id="tls-call-2", cseq=1, contact=contact,
                                                       body=sdp_offer(40004)))
        answer2 = await asyncio.to_thread(peer.final)
        assert answer2.status == 200
        await asyncio.to_thread(peer.send, sip_request("ACK", uri=uri, transport="TLS", sent_by=peer.sent_by,
                                                       call_id="tls-call-2", cseq=1, to_tag=answer2.to_tag))
        await server.hang_up(server.calls["tls-call-2"])
        our_bye = await asyncio.to_thread(peer.recv)
        assert our_bye.method == "BYE" and our_bye.call_id == "tls-call-2"
        via = parse_via(our_bye.header("Via") or "")
        assert (via.transport, via.host, via.port) == ("TLS", "127.0.0.1", tls_port)
        assert our_bye.header("Contact") == f"<sip:enclave@127.0.0.1:{tls_port};transport=tls>"
        assert await asyncio.to_thread(peer.silent_for, 0.8)       # no Timer E over TLS
        await asyncio.to_thread(peer.send, response_to(our_bye, 200).to_bytes())
        await asyncio.sleep(0.3)
        assert len(server.client_transactions) == 0                 # answered, and Timer K is zero

        # A third TLS call, then the connection drops: that call ends, the UDP call does not.
        await asyncio.to_thread(peer.send, sip_request("INVITE", uri=uri, transport="TLS", sent_by=peer.sent_by,
                                                       call_id="tls-call-3", cseq=1, contact=contact,
                                                       body=sdp_offer(40006)))
        assert (await asyncio.to_thread(peer.final)).status == 200
        await asyncio.to_thread(peer.close)
        for _ in range(50):
            if "tls-call-3" not in server.calls:
                break
            await asyncio.sleep(0.05)
        assert ("tls-call-3", "transport_closed") in ends
        assert "udp-call" in server.calls and not server.calls["udp-call"].closed
        assert not server.tls.connections

        # A stream message without Content-Length: 400, then the connection is closed.
        peer2 = await asyncio.to_thread(TlsPeer, tls_port, client_ctx)
        bad = sip_request("OPTIONS", uri=uri, transport="TLS", sent_by=peer2.sent_by, call_id="tls-bad", cseq=1,
                          content_length=False)
        await asyncio.to_thread(peer2.send, bad)
        refused = await asyncio.to_thread(peer2.final)
        assert refused.status == 400 and refused.call_id == "tls-bad"
        assert await asyncio.to_thread(peer2.closed_by_server)
        peer2.close()

        # The UDP call ends normally.
        udp_bye = sip_request("BYE", uri=udp_uri, transport="UDP", sent_by=udp_sent_by, call_id="udp-call", cseq=2,
                              to_tag=udp_answer.to_tag)
        assert (await asyncio.to_thread(udp_ask, udp_port, udp_bye, udp)).status == 200
        assert ("udp-call", "caller_bye") in ends

        # close() takes the TLS listener and its connections down.
        peer3 = await asyncio.to_thread(TlsPeer, tls_port, client_ctx)
        await asyncio.sleep(0.05)
        await server.close()
        assert await asyncio.to_thread(peer3.closed_by_server)
        peer3.close()
        with pytest.raises(OSError):
            await asyncio.to_thread(socket.create_connection, ("127.0.0.1", tls_port), 1)
    finally:
        udp.close()
        await server.close()


def test_tls_port_without_context_is_refused() -> None:
    async def start() -> None:
        await start_sip(SipConfig(port=0, tls_port=0), lambda call, send_audio: FakeSession())

    with pytest.raises(ValueError, match="tls_port and tls_context"):
        asyncio.run(start())


def test_contact_follows_the_call_transport_and_sips(tmp_path: Path) -> None:
    from gateway.sip.server import Call, _asks_sips

    cert, key = make_cert(tmp_path)
    server = SipServer(SipConfig(host="127.0.0.1", port=5060, tls_port=5061,
                                 tls_context=server_tls_context(cert, key)), lambda call, send_audio: None)
    udp = Call("c1", "t", ("127.0.0.1", 5060), ("127.0.0.1", 4000), "PCMU")
    tls = Call("c2", "t", TlsAddr("127.0.0.1", 40123), ("127.0.0.1", 4000), "PCMU", transport="tls")
    sips = Call("c3", "t", TlsAddr("127.0.0.1", 40123), ("127.0.0.1", 4000), "PCMU", transport="tls", sips=True)
    assert server.contact_for(udp) == server.contact == "<sip:enclave@127.0.0.1:5060>"
    assert server.contact_for(tls) == "<sip:enclave@127.0.0.1:5061;transport=tls>"
    assert server.contact_for(sips) == "<sips:enclave@127.0.0.1:5061>"
    assert not _asks_sips(INVITE_TXN)
    assert _asks_sips(parse(INVITE_TXN.to_bytes().replace(b"INVITE sip:2000", b"INVITE sips:2000")))
    with_rr = INVITE_TXN.to_bytes().replace(b"Call-ID:", b"Record-Route: <sips:sbc.example;lr>\r\nCall-ID:")
    assert _asks_sips(parse(with_rr))


def test_a_refused_invite_gives_its_rtp_port_back() -> None:
    """An INVITE refused after its RTP port was opened (no codec in common: 488; a malformed Contact: 400)
    must close that port: one leaked per bad INVITE would in the end leave none for real calls."""
    asyncio.run(asyncio.wait_for(_refused_invites(), 20))


async def _refused_invites() -> None:
    server = await start_sip(SipConfig(host="127.0.0.1", port=0, rtp_host="127.0.0.1", default_tenant="dev"),
                             lambda call, send_audio: FakeSession())
    opened: list[asyncio.DatagramTransport] = []
    real_open = server._open_rtp

    async def spy_open(call):
        opened.append(await real_open(call))
        return opened[-1]

    server._open_rtp = spy_open   # type: ignore[method-assign]
    udp = udp_peer()
    try:
        port = server.transport.get_extra_info("sockname")[1]
        sent_by = f"127.0.0.1:{udp.getsockname()[1]}"
        g729_only = sdp_offer(40000).replace(b"RTP/AVP 0 8 101", b"RTP/AVP 18")
        cases = ((g729_only, "<sip:pbx@127.0.0.1>", 488), (sdp_offer(40002), "<sip:pbx@127.0.0.1", 400))
        for i, (body, contact, status) in enumerate(cases):
            invite = sip_request("INVITE", uri="sip:2000@127.0.0.1", transport="UDP", sent_by=sent_by,
                                 call_id=f"bad-{i}", cseq=1, body=body, contact=contact)
            answer = await asyncio.to_thread(udp_ask, port, invite, udp)
            assert answer.status == status
        assert len(opened) == 2 and all(t.is_closing() for t in opened)
        assert not server.calls
    finally:
        udp.close()
        await server.close()


def test_silent_connections_give_their_slot_back_but_a_call_keeps_its_own(tmp_path: Path) -> None:
    asyncio.run(asyncio.wait_for(_idle_scenario(tmp_path), 20))


async def _idle_scenario(tmp_path: Path) -> None:
    """A connection that never says anything is closed soon after its handshake; one that spoke is closed
    after a longer silence, unless a call is signalled over it (a quiet call must still get its BYE)."""
    cert, key = make_cert(tmp_path)
    calls: set[TlsAddr] = set()
    received: list[TlsAddr] = []
    listener = TlsListener(server_tls_context(cert, key), on_message=lambda _data, addr: received.append(addr),
                           on_reject=lambda *_: None, on_closed=lambda _addr: None, in_use=lambda addr: addr in calls,
                           first_message_timeout_s=0.4, idle_timeout_s=0.8)
    await listener.start("127.0.0.1", 0)
    client_ctx = ssl.create_default_context(cafile=str(cert))
    try:
        silent, idle, busy = [await asyncio.to_thread(TlsPeer, listener.port, client_ctx) for _ in range(3)]
        for peer in (idle, busy):
            await asyncio.to_thread(peer.send, sip_request("OPTIONS", uri="sip:2000@127.0.0.1", transport="TLS",
                                                           sent_by=peer.sent_by, call_id=f"idle-{peer.local[1]}", cseq=1))
        while len(received) < 2:
            await asyncio.sleep(0.02)
        calls.add(TlsAddr(*busy.local))
        assert await asyncio.to_thread(silent.closed_by_server, 2.0)      # no SIP message: gone after 0.4 s
        assert len(listener.connections) == 2
        assert await asyncio.to_thread(idle.closed_by_server, 3.0)        # spoke once, then 0.8 s of silence
        await asyncio.sleep(1.0)
        assert list(listener.connections) == [TlsAddr(*busy.local)]       # the call's connection stays
        calls.clear()                                                      # the call ended: now it is just idle
        assert await asyncio.to_thread(busy.closed_by_server, 3.0)
        assert not listener.connections
    finally:
        await listener.close()


def test_a_call_only_answers_its_own_signalling_and_media() -> None:
    """The Call-ID alone is guessable: a BYE without the dialog's tags (or from another host) no longer ends
    the call; RTP from an address the SDP did not name is dropped (it could speak into the call or press
    its keys); an SDP naming a host instead of an address is refused."""
    asyncio.run(asyncio.wait_for(_own_signalling(), 20))


async def _own_signalling() -> None:
    sessions: list[FakeSession] = []

    def new_session(call, send_audio) -> FakeSession:
        sessions.append(FakeSession())
        return sessions[-1]

    server = await start_sip(SipConfig(host="127.0.0.1", port=0, rtp_host="127.0.0.1", default_tenant="dev",
                                       ring_ms=0), new_session)
    udp = udp_peer()
    try:
        port = server.transport.get_extra_info("sockname")[1]
        sent_by = f"127.0.0.1:{udp.getsockname()[1]}"
        media = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        media.bind(("127.0.0.1", 0))
        invite = sip_request("INVITE", uri="sip:2000@127.0.0.1", transport="UDP", sent_by=sent_by, call_id="own",
                             cseq=1, body=sdp_offer(media.getsockname()[1]), contact=f"<sip:pbx@{sent_by}>")
        ok = await asyncio.to_thread(udp_ask, port, invite, udp)
        assert ok.status == 200
        to_tag = ok.to_tag
        call = server.calls["own"]
        bye = sip_request("BYE", uri=f"sip:2000@127.0.0.1:{port}", transport="UDP", sent_by=sent_by, call_id="own",
                          cseq=2)                                    # no To tag: not this dialog
        assert (await asyncio.to_thread(udp_ask, port, bye, udp)).status == 481 and not call.closed
        rtp_port = call.rtp_transport.get_extra_info("sockname")[1]
        stranger = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        stranger.bind(("127.0.0.2", 0))      # another host than the SDP named
        keypress = bytes([0x80, 101, 0, 1, 0, 0, 0, 0, 0, 0, 0, 9]) + bytes([0, 0x80 | 10, 0, 160])   # '0', end
        for _ in range(3):
            stranger.sendto(keypress, ("127.0.0.1", rtp_port))
        await asyncio.sleep(0.2)
        stranger.close()
        assert call.stats.get("rtp_foreign") == 3 and call.digits == ""
        bye = sip_request("BYE", uri=f"sip:2000@127.0.0.1:{port}", transport="UDP", sent_by=sent_by, call_id="own",
                          cseq=3, to_tag=to_tag)
        assert (await asyncio.to_thread(udp_ask, port, bye, udp)).status == 200
        await asyncio.sleep(0.1)
        assert call.closed and "own" not in server.calls
        by_name = sdp_offer(40010).replace(b"c=IN IP4 127.0.0.1", b"c=IN IP4 media.pbx.example")
        invite = sip_request("INVITE", uri="sip:2000@127.0.0.1", transport="UDP", sent_by=sent_by, call_id="named",
                             cseq=1, body=by_name, contact=f"<sip:pbx@{sent_by}>")
        assert (await asyncio.to_thread(udp_ask, port, invite, udp)).status == 488
        media.close()
    finally:
        udp.close()
        await server.close()
