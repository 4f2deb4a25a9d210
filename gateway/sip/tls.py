"""SIP over TLS: the stream transport of RFC 3261 §18 (framing by Content-Length on a byte stream) with the
RFC 5626 CRLF keep-alive, as an optional second listener beside UDP (RFC 5630 for what a TLS call's Contact says).

Three pieces, each usable on its own:

* ``server_tls_context``: the server-side ``ssl.SSLContext`` from PEM files (TLS 1.2 at least), with an error
  that names the file when one is missing, unreadable or does not hold what it should.
* ``StreamFramer``: pure and synchronous, so every edge of stream framing is unit-testable without sockets:
  feed it bytes as they arrive, get back whole messages, keep-alive pings, or one fatal error.
* ``TlsListener``: ``asyncio.start_server`` with the context; each connection is read through a framer and
  every message goes to a callback (the server hands it to the same ``_handle`` path as a UDP datagram), and
  ``send`` writes to the open connection of a peer. The peer's address is a ``TlsAddr``: a plain ``(ip, port)``
  tuple (equal to and hashed like one) whose type says "reply over this peer's TLS connection, never UDP".

Only the signalling is encrypted: the media of a TLS call stays plain RTP (SRTP/SDES or DTLS-SRTP are out of
scope), so a TLS trunk protects the dialled numbers, headers and the hand-off id, not the audio.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

__all__ = [
    "MAX_MESSAGE",
    "Frame",
    "StreamFramer",
    "TlsAddr",
    "TlsConfigError",
    "TlsListener",
    "server_tls_context",
]

log = logging.getLogger("enclave.gateway.sip")

MAX_MESSAGE = 65535              # the same cap the parser puts on a datagram: no stream message may be larger
MAX_CONNECTIONS = 1024           # all peers together; more are closed at once
MAX_CONNECTIONS_PER_IP = 64
MAX_WRITE_BUFFER = 1 << 20       # a peer that stops reading is cut off rather than buffered for without end
HANDSHAKE_TIMEOUT_S = 10.0
SHUTDOWN_TIMEOUT_S = 5.0
READ_CHUNK = 16384
PONG = b"\r\n"                   # RFC 5626 §4.4.1: the answer to a double-CRLF ping
# A connection holds a slot. One that has sent no SIP message this long after its handshake is closed (a
# scanner, or a slot-filling attack: 64 silent connections per address would otherwise hold them forever);
# one that has, and carries no call, is closed after IDLE_TIMEOUT_S without a byte (the peer reconnects to
# send its next request, as RFC 3261 §18 expects). A connection with a call on it is never closed for
# silence: a BYE must be able to go back over it, however long the call.
FIRST_MESSAGE_TIMEOUT_S = 10.0
IDLE_TIMEOUT_S = 300.0


# -- the context ---------------------------------------------------------------------------------------------


class TlsConfigError(ValueError):
    """The certificate or key cannot be used; the message names the file and what is wrong with it."""


def _no_password() -> bytes:
    raise TlsConfigError("the SIP TLS private key is encrypted; pass its password")


def server_tls_context(cert_file: Path, key_file: Path, *, password: str | None = None,
                       client_ca_file: Path | None = None) -> ssl.SSLContext:
    """A server-side context for the SIP TLS listener: TLS 1.2 or newer, the certificate chain (PEM, leaf first)
    and its private key. With ``client_ca_file`` peers must present a certificate signed by one of those CAs
    (mutual TLS, as many SBCs are set up for); without it any client may connect and the allow-list, rate
    limiter and digest auth decide, as over UDP. An encrypted key needs ``password`` (never an interactive
    prompt)."""
    files = [("certificate", Path(cert_file)), ("private key", Path(key_file))]
    if client_ca_file is not None:
        files.append(("client CA", Path(client_ca_file)))
    for what, path in files:
        if not path.exists():
            raise TlsConfigError(f"SIP TLS {what} file not found: {path}")
        if not path.is_file():
            raise TlsConfigError(f"SIP TLS {what} path is not a file: {path}")
        try:
            with path.open("rb") as f:
                f.read(1)
        except OSError as e:
            raise TlsConfigError(f"SIP TLS {what} file {path} is not readable: {e.strerror or e}") from e
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        ctx.load_cert_chain(Path(cert_file), Path(key_file), password=password if password is not None else _no_password)
    except ssl.SSLError as e:
        raise TlsConfigError(f"SIP TLS certificate {cert_file} and key {key_file} are not a usable PEM certificate "
                             f"chain and matching private key: {e.reason or e}") from e
    if client_ca_file is not None:
        try:
            ctx.load_verify_locations(cafile=Path(client_ca_file))
        except ssl.SSLError as e:
            raise TlsConfigError(f"SIP TLS client CA file {client_ca_file} holds no usable PEM certificate: "
                                 f"{e.reason or e}") from e
        ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


# -- framing ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Frame:
    """One thing read off a stream.

    * ``message``: ``data`` is one whole SIP message (headers, blank line, exactly Content-Length body bytes).
    * ``ping``: a double CRLF between messages (RFC 5626 keep-alive); answer ``PONG``.
    * ``error``: the stream cannot be framed any further; close the connection. ``data`` is the header block
      when it arrived whole (enough to answer ``status``/``reason``, e.g. 400 for a missing Content-Length),
      else empty.
    """

    kind: Literal["message", "ping", "error"]
    data: bytes = b""
    status: int = 0
    reason: str = ""


class StreamFramer:
    """Splits a SIP byte stream into messages (RFC 3261 §18.3): the header block ends at the first blank line and
    the body is exactly Content-Length bytes (``Content-Length`` or compact ``l``), which is mandatory on a
    stream, so a message without one is an error, as is one whose headers or total size exceed ``max_size``.

    CRLFs between messages are keep-alives: a double CRLF is a ping (RFC 5626 §3.5.1), a lone CRLF (a pong, or
    padding, RFC 3261 §7.5) is skipped. After an error the framer is ``failed`` and ignores further input.
    """

    def __init__(self, max_size: int = MAX_MESSAGE) -> None:
        self.max_size = max_size
        self.failed = False
        self._buf = bytearray()
        self._scanned = 0                  # bytes of the buffer already searched for the end of the headers
        self._total: int | None = None     # the current message's size, once its headers are in

    @property
    def buffered(self) -> int:
        return len(self._buf)

    def feed(self, data: bytes) -> list[Frame]:
        """Add bytes as they were read; returns the frames completed by them, in stream order."""
        if self.failed:
            return []
        self._buf += data
        frames: list[Frame] = []
        while True:
            frame = self._next()
            if frame is None:
                return frames
            frames.append(frame)
            if frame.kind == "error":
                self.failed = True
                self._buf.clear()
                return frames

    def _next(self) -> Frame | None:
        buf = self._buf
        if self._total is None:
            while buf[:1] in (b"\r", b"\n"):    # between messages: keep-alives
                if buf.startswith(b"\r\n\r\n"):
                    del buf[:4]
                    return Frame("ping")
                if len(buf) < 4 and b"\r\n\r\n".startswith(bytes(buf)):
                    return None                  # maybe the first half of a ping: wait
                del buf[: 2 if buf.startswith(b"\r\n") else 1]
            if not buf:
                return None
            start = max(0, self._scanned - 3)
            crlf, lf = buf.find(b"\r\n\r\n", start), buf.find(b"\n\n", start)
            if crlf < 0 and lf < 0:
                self._scanned = len(buf)
                if len(buf) > self.max_size:
                    return Frame("error", status=513, reason="Message Too Large")
                return None
            head_end = crlf + 4 if crlf >= 0 and (lf < 0 or crlf < lf) else lf + 2
            head = bytes(buf[:head_end])
            if head_end > self.max_size:
                return Frame("error", head, 513, "Message Too Large")
            length, error = _content_length(head)
            if error is not None:
                return Frame("error", head, 400, error)
            assert length is not None
            if head_end + length > self.max_size:
                return Frame("error", head, 513, "Message Too Large")
            self._total = head_end + length
        if len(buf) < self._total:
            return None                          # the body is still on its way
        message = bytes(buf[: self._total])
        del buf[: self._total]
        self._total, self._scanned = None, 0
        return Frame("message", message)


def _content_length(head: bytes) -> tuple[int | None, str | None]:
    """(length, None) or (None, why not) from a header block: every Content-Length/l value must agree."""
    values: list[bytes] = []
    lines = head.replace(b"\r\n", b"\n").split(b"\n")[1:]    # the start line may hold a ':' of its own
    for line in lines:
        if not line or line[:1] in (b" ", b"\t"):
            continue                    # folded continuations never start a Content-Length
        name, sep, value = line.partition(b":")
        if sep and name.strip().lower() in (b"content-length", b"l"):
            values.append(value.strip())
    if not values:
        return None, "Missing Content-Length"
    if len(set(values)) != 1 or not values[0].isdigit() or len(values[0]) > 10:
        return None, "Bad Content-Length"
    return int(values[0]), None


# -- the listener ------------------------------------------------------------------------------------------------


class TlsAddr(tuple):
    """A TLS peer's ``(ip, port)``. Equal to, and hashed like, the plain tuple, so it works wherever an address
    does (the allow-list, the rate limiter, logs, ``call.remote_sip``); its type is what tells the server to
    answer over the peer's TLS connection, and never to fall back to UDP when that connection is gone."""

    __slots__ = ()

    def __new__(cls, host: str, port: int) -> TlsAddr:
        return super().__new__(cls, (host, port))

    def __repr__(self) -> str:
        return f"TlsAddr{tuple(self)!r}"


OnMessage = Callable[[bytes, TlsAddr], None]
OnReject = Callable[[bytes, TlsAddr, int, str], None]
OnClosed = Callable[[TlsAddr], None]
InUse = Callable[[TlsAddr], bool]


class TlsListener:
    """Accepts SIP-over-TLS connections and keeps one ``StreamWriter`` per peer address while it is open.

    ``on_message(data, addr)`` gets each framed message; ``on_reject(head, addr, status, reason)`` a message
    that cannot be framed (the connection is closed right after, so an answer sent from it still goes out
    first); ``on_closed(addr)`` fires once per connection when it is gone, for whatever reason;
    ``in_use(addr)`` says whether a call still needs the connection (then silence does not close it).
    """

    def __init__(self, context: ssl.SSLContext, *, on_message: OnMessage, on_reject: OnReject, on_closed: OnClosed,
                 in_use: InUse = lambda _addr: False, max_size: int = MAX_MESSAGE,
                 max_connections: int = MAX_CONNECTIONS, max_per_ip: int = MAX_CONNECTIONS_PER_IP,
                 first_message_timeout_s: float = FIRST_MESSAGE_TIMEOUT_S,
                 idle_timeout_s: float = IDLE_TIMEOUT_S) -> None:
        self.context = context
        self.on_message, self.on_reject, self.on_closed, self.in_use = on_message, on_reject, on_closed, in_use
        self.max_size, self.max_connections, self.max_per_ip = max_size, max_connections, max_per_ip
        self.first_message_timeout_s, self.idle_timeout_s = first_message_timeout_s, idle_timeout_s
        self.connections: dict[TlsAddr, asyncio.StreamWriter] = {}
        self._server: asyncio.Server | None = None
        self._handlers: set[asyncio.Task] = set()

    async def start(self, host: str, port: int) -> None:
        self._server = await asyncio.start_server(
            self._serve, host, port, ssl=self.context, ssl_handshake_timeout=HANDSHAKE_TIMEOUT_S,
            ssl_shutdown_timeout=SHUTDOWN_TIMEOUT_S)

    @property
    def port(self) -> int | None:
        """The port actually bound (what port 0 became)."""
        if self._server is None or not self._server.sockets:
            return None
        return self._server.sockets[0].getsockname()[1]

    def is_open(self, addr) -> bool:
        writer = self.connections.get(addr)
        return writer is not None and not writer.is_closing()

    def send(self, data: bytes, addr) -> bool:
        """Write to ``addr``'s connection; False when there is none open (nothing was sent)."""
        writer = self.connections.get(addr)
        if writer is None or writer.is_closing():
            return False
        if writer.transport.get_write_buffer_size() + len(data) > MAX_WRITE_BUFFER:
            log.warning("SIP TLS peer is not reading; closing its connection", extra={"peer": addr[0]})
            writer.transport.abort()
            return True
        writer.write(data)
        return True

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._handlers.add(task)
        peer = writer.get_extra_info("peername")
        addr = TlsAddr(peer[0], peer[1])
        same_ip = sum(1 for a in self.connections if a[0] == addr[0])
        if len(self.connections) >= self.max_connections or same_ip >= self.max_per_ip or addr in self.connections:
            log.warning("SIP TLS connection refused: too many", extra={"peer": addr[0]})
            writer.transport.abort()
            self._handlers.discard(task)  # type: ignore[arg-type]
            return
        self.connections[addr] = writer
        framer = StreamFramer(self.max_size)
        spoke = False      # has it sent a SIP message yet
        try:
            while not framer.failed:
                try:
                    chunk = await asyncio.wait_for(reader.read(READ_CHUNK), self.idle_timeout_s if spoke
                                                   else self.first_message_timeout_s)
                except TimeoutError:
                    if spoke and self.in_use(addr):
                        continue
                    log.info("SIP TLS connection closed: idle" if spoke else
                             "SIP TLS connection closed: no SIP message after the handshake", extra={"peer": addr[0]})
                    break
                if not chunk:
                    break
                for frame in framer.feed(chunk):
                    if frame.kind == "ping":
                        writer.write(PONG)
                    elif frame.kind == "message":
                        spoke = True
                        self.on_message(frame.data, addr)
                    else:
                        log.info("SIP TLS stream cannot be framed; closing it",
                                 extra={"peer": addr[0], "reason": frame.reason})
                        self.on_reject(frame.data, addr, frame.status, frame.reason)
        except (ConnectionError, ssl.SSLError, OSError) as e:
            log.info("SIP TLS connection failed", extra={"peer": addr[0], "error": repr(e)})
        except Exception:
            log.exception("SIP TLS connection handler failed")
        finally:
            if self.connections.get(addr) is writer:
                del self.connections[addr]
            writer.close()      # flushes what was written (a 400 answer) before the TLS close
            try:
                self.on_closed(addr)
            except Exception:
                log.exception("SIP TLS on_closed failed")
            with contextlib.suppress(Exception):
                await asyncio.wait_for(writer.wait_closed(), SHUTDOWN_TIMEOUT_S)
            self._handlers.discard(task)  # type: ignore[arg-type]

    async def close(self, grace_s: float = 1.0) -> None:
        """Stop listening and close every connection (politely, then by force after ``grace_s``)."""
        if self._server is not None:
            self._server.close()
        for writer in list(self.connections.values()):
            writer.close()
        handlers = [t for t in self._handlers if not t.done()]
        if handlers:
            _, pending = await asyncio.wait(handlers, timeout=grace_s)
            if pending:       # peers that did not answer our close_notify: cut them off, the handlers then end
                for writer in list(self.connections.values()):
                    writer.transport.abort()
                _, pending = await asyncio.wait(pending, timeout=grace_s)
            for task in pending:
                task.cancel()
        if self._server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), grace_s)
