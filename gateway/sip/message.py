"""SIP message model, parser and serialiser (RFC 3261 §7, §20, §25) for a UDP trunk user agent.

The parser faces whatever a PBX, an SBC or a scanner on the internet sends, so it is strict about structure,
tolerant about cosmetics (LF line ends, leading CRLF keep-alives, header folding, compact names) and only ever
raises :class:`SipParseError`, whose ``status`` is the response to answer with when the datagram was a request.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TypedDict

__all__ = [
    "MAGIC_COOKIE",
    "REASONS",
    "SipMessage",
    "SipParseError",
    "SipUri",
    "Via",
    "new_branch",
    "new_tag",
    "parse",
    "parse_name_addr",
    "parse_uri",
    "parse_via",
    "response_to",
    "split_header_values",
]

MAGIC_COOKIE = "z9hG4bK"
MAX_HEADERS = 256

REASONS: dict[int, str] = {
    100: "Trying",
    180: "Ringing",
    181: "Call Is Being Forwarded",
    182: "Queued",
    183: "Session Progress",
    199: "Early Dialog Terminated",
    200: "OK",
    202: "Accepted",
    204: "No Notification",
    300: "Multiple Choices",
    301: "Moved Permanently",
    302: "Moved Temporarily",
    305: "Use Proxy",
    380: "Alternative Service",
    400: "Bad Request",
    401: "Unauthorized",
    402: "Payment Required",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    406: "Not Acceptable",
    407: "Proxy Authentication Required",
    408: "Request Timeout",
    410: "Gone",
    412: "Conditional Request Failed",
    413: "Request Entity Too Large",
    414: "Request-URI Too Long",
    415: "Unsupported Media Type",
    416: "Unsupported URI Scheme",
    417: "Unknown Resource-Priority",
    420: "Bad Extension",
    421: "Extension Required",
    422: "Session Interval Too Small",
    423: "Interval Too Brief",
    428: "Use Identity Header",
    429: "Provide Referrer Identity",
    433: "Anonymity Disallowed",
    436: "Bad Identity-Info",
    437: "Unsupported Certificate",
    438: "Invalid Identity Header",
    439: "First Hop Lacks Outbound Support",
    440: "Max-Breadth Exceeded",
    469: "Bad Info Package",
    470: "Consent Needed",
    480: "Temporarily Unavailable",
    481: "Call/Transaction Does Not Exist",
    482: "Loop Detected",
    483: "Too Many Hops",
    484: "Address Incomplete",
    485: "Ambiguous",
    486: "Busy Here",
    487: "Request Terminated",
    488: "Not Acceptable Here",
    489: "Bad Event",
    491: "Request Pending",
    493: "Undecipherable",
    494: "Security Agreement Required",
    500: "Server Internal Error",
    501: "Not Implemented",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Server Time-out",
    505: "Version Not Supported",
    513: "Message Too Large",
    580: "Precondition Failure",
    600: "Busy Everywhere",
    603: "Decline",
    604: "Does Not Exist Anywhere",
    606: "Not Acceptable",
    607: "Unwanted",
    608: "Rejected",
}

# RFC 3261 §7.3.3 plus later RFCs' compact forms; values are the canonical names we write.
COMPACT: dict[str, str] = {
    "a": "Accept-Contact",
    "b": "Referred-By",
    "c": "Content-Type",
    "d": "Request-Disposition",
    "e": "Content-Encoding",
    "f": "From",
    "i": "Call-ID",
    "j": "Reject-Contact",
    "k": "Supported",
    "l": "Content-Length",
    "m": "Contact",
    "o": "Event",
    "r": "Refer-To",
    "s": "Subject",
    "t": "To",
    "u": "Allow-Events",
    "v": "Via",
    "x": "Session-Expires",
    "y": "Identity",
}

_REQUIRED = ("Via", "From", "To", "Call-ID", "CSeq")
_TOKEN = re.compile(r"[A-Za-z0-9\-.!%*_+`'~]+")
_CTL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
_DIGITS = re.compile(r"[0-9]{1,10}")
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+\-.]*")
_HOST = re.compile(r"\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9\-.]+")


class SipParseError(ValueError):
    """Malformed SIP (or a SIP element built from bad input); ``status``/``reason`` form the response to send."""

    def __init__(self, status: int = 400, reason: str = "Bad Request") -> None:
        super().__init__(f"{status} {reason}")
        self.status = status
        self.reason = reason


def _key(name: str) -> str:
    """Lookup key of a header name: case-insensitive, compact forms folded onto the long name."""
    lower = name.strip().lower()
    long = COMPACT.get(lower)
    return long.lower() if long else lower


def _check_field(text: str, what: str) -> None:
    # CR/LF inside a value would let a caller (or an echoed remote value) inject headers into what we send.
    if "\r" in text or "\n" in text:
        raise ValueError(f"CR/LF not allowed in SIP {what}: {text!r}")


@dataclass
class SipMessage:
    """One SIP request (``method``/``uri``) or response (``status``/``reason``); headers keep order and spelling."""

    method: str | None = None
    uri: str | None = None
    status: int | None = None
    reason: str | None = None
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""

    # -- headers -------------------------------------------------------------------------------------------

    def header(self, name: str) -> str | None:
        """First value of a header (case-insensitive, compact names accepted), raw as received."""
        key = _key(name)
        for hname, value in self.headers:
            if _key(hname) == key:
                return value
        return None

    def headers_all(self, name: str) -> list[str]:
        """Every header line of that name in order; comma-joined values are *not* split (see split_header_values)."""
        key = _key(name)
        return [value for hname, value in self.headers if _key(hname) == key]

    def set_header(self, name: str, value: str) -> None:
        """Replace the first occurrence in place (keeping its position) and drop the others; append if absent."""
        _check_field(name, "header name")
        _check_field(value, "header value")
        key = _key(name)
        out: list[tuple[str, str]] = []
        done = False
        for hname, hvalue in self.headers:
            if _key(hname) == key:
                if not done:
                    out.append((name, value))
                    done = True
                continue
            out.append((hname, hvalue))
        if not done:
            out.append((name, value))
        self.headers = out

    def add_header(self, name: str, value: str, *, prepend: bool = False) -> None:
        """Add a header line; ``prepend`` puts it first (where a new Via goes)."""
        _check_field(name, "header name")
        _check_field(value, "header value")
        if prepend:
            self.headers.insert(0, (name, value))
        else:
            self.headers.append((name, value))

    def remove_header(self, name: str) -> None:
        key = _key(name)
        self.headers = [(n, v) for n, v in self.headers if _key(n) != key]

    # -- well-known fields ---------------------------------------------------------------------------------

    @property
    def is_request(self) -> bool:
        return self.method is not None

    @property
    def call_id(self) -> str | None:
        return self.header("Call-ID")

    @property
    def cseq(self) -> tuple[int, str]:
        """(sequence number, method); raises SipParseError if missing or malformed."""
        value = self.header("CSeq")
        if value is None:
            raise SipParseError(400, "Missing CSeq")
        return _parse_cseq(value)

    @property
    def top_via(self) -> Via | None:
        vias = self.headers_all("Via")
        if not vias:
            return None
        return parse_via(split_header_values(vias[0])[0])

    @property
    def via_branch(self) -> str | None:
        via = self.top_via
        return via.params.get("branch") if via else None

    @property
    def from_tag(self) -> str | None:
        value = self.header("From")
        return parse_name_addr(value)[2].get("tag") if value is not None else None

    @property
    def to_tag(self) -> str | None:
        value = self.header("To")
        return parse_name_addr(value)[2].get("tag") if value is not None else None

    # -- serialisation -------------------------------------------------------------------------------------

    def start_line(self) -> str:
        if self.method is not None:
            if self.uri is None:
                raise ValueError("request without a Request-URI")
            return f"{self.method} {self.uri} SIP/2.0"
        if self.status is None:
            raise ValueError("message is neither a request nor a response")
        return f"SIP/2.0 {self.status} {self.reason or REASONS.get(self.status, 'Unknown')}"

    def to_bytes(self) -> bytes:
        """Wire form with CRLF line ends; Content-Length always written and always equal to len(body)."""
        start = self.start_line()
        _check_field(start, "start line")
        lines = [start]
        length = str(len(self.body))
        wrote_length = False
        for name, value in self.headers:
            _check_field(name, "header name")
            _check_field(value, "header value")
            if _key(name) == "content-length":
                if wrote_length:
                    continue
                value, wrote_length = length, True
            lines.append(f"{name}: {value}")
        if not wrote_length:
            lines.append(f"Content-Length: {length}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8") + self.body


# -- parsing -------------------------------------------------------------------------------------------------


def parse(data: bytes, max_size: int = 65535) -> SipMessage:
    """Parse one datagram; any defect raises SipParseError (never another exception type)."""
    try:
        return _parse(data, max_size)
    except SipParseError:
        raise
    except Exception as exc:  # noqa: BLE001 - a network-facing parser must not crash the server loop on a bug
        raise SipParseError(400, "Malformed message") from exc


def _parse(data: bytes, max_size: int) -> SipMessage:
    """The parser proper; the fuzz test calls this directly so that the safety net in parse() hides no bug."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise SipParseError(400, "Not bytes")
    data = bytes(data)
    if len(data) > max_size:
        raise SipParseError(513, "Message Too Large")
    data = data.lstrip(b"\r\n")  # §7.5: CRLFs before the start line (keep-alives) are ignored
    if not data:
        raise SipParseError(400, "Empty message")

    crlf, lf = data.find(b"\r\n\r\n"), data.find(b"\n\n")
    if crlf < 0 and lf < 0:
        raise SipParseError(400, "No end of headers")
    if crlf >= 0 and (lf < 0 or crlf < lf):
        head_raw, rest = data[:crlf], data[crlf + 4 :]
    else:
        head_raw, rest = data[:lf], data[lf + 2 :]
    try:
        head = head_raw.decode("utf-8")
    except UnicodeDecodeError:
        raise SipParseError(400, "Headers are not UTF-8") from None

    lines = head.replace("\r\n", "\n").split("\n")
    msg = _parse_start_line(lines[0])
    msg.headers = _parse_headers(lines[1:])
    _validate(msg)

    lengths = msg.headers_all("Content-Length")
    if lengths:
        if len(set(v.strip() for v in lengths)) != 1 or not _DIGITS.fullmatch(lengths[0].strip()):
            raise SipParseError(400, "Bad Content-Length")
        length = int(lengths[0])
        if length > len(rest):
            raise SipParseError(400, "Body shorter than Content-Length")
        msg.body = rest[:length]  # §18.3: bytes past Content-Length in a datagram are discarded
    else:
        msg.body = rest  # UDP: without Content-Length the body runs to the end of the datagram
    return msg


def _parse_start_line(line: str) -> SipMessage:
    if _CTL.search(line):
        raise SipParseError(400, "Control character in start line")
    if line[:8].upper() == "SIP/2.0 ":
        parts = line.split(" ", 2)
        if len(parts) < 2 or not re.fullmatch(r"[1-6][0-9]{2}", parts[1]):
            raise SipParseError(400, "Bad status line")
        return SipMessage(status=int(parts[1]), reason=parts[2].strip() if len(parts) > 2 else "")
    parts = line.split(" ")
    if len(parts) != 3 or not parts[1]:
        raise SipParseError(400, "Bad request line")
    method, uri, version = parts
    if not _TOKEN.fullmatch(method):
        raise SipParseError(400, "Bad method")
    if version.upper() != "SIP/2.0":
        if version.upper().startswith("SIP/"):
            raise SipParseError(505, "Version Not Supported")
        raise SipParseError(400, "Bad request line")
    scheme, sep, _ = uri.partition(":")
    if not sep or not _SCHEME.fullmatch(scheme):
        raise SipParseError(400, "Bad Request-URI")
    if scheme.lower() not in ("sip", "sips", "tel"):
        raise SipParseError(416, "Unsupported URI Scheme")
    parse_uri(uri)
    return SipMessage(method=method, uri=uri)


def _parse_headers(lines: list[str]) -> list[tuple[str, str]]:
    headers: list[tuple[str, str]] = []
    for line in lines:
        if _CTL.search(line):
            raise SipParseError(400, "Control character in header")
        if line[:1] in (" ", "\t"):
            # §7.3.1 folding: a line starting with whitespace continues the previous header value.
            if not headers:
                raise SipParseError(400, "Continuation line before first header")
            name, value = headers[-1]
            headers[-1] = (name, f"{value} {line.strip()}".strip())
            continue
        name, sep, value = line.partition(":")
        name = name.rstrip(" \t")
        if not sep or not _TOKEN.fullmatch(name):
            raise SipParseError(400, "Malformed header line")
        headers.append((name, value.strip(" \t")))
        if len(headers) > MAX_HEADERS:
            raise SipParseError(400, "Too many headers")
    return headers


def _validate(msg: SipMessage) -> None:
    """Mandatory headers (§8.1.1) for requests and responses alike: neither can be matched to a transaction
    without them."""
    for name in _REQUIRED:
        values = msg.headers_all(name)
        if not values or not values[0]:
            raise SipParseError(400, f"Missing {name}")
        if name in ("From", "To", "Call-ID", "CSeq") and len(values) > 1:
            raise SipParseError(400, f"Duplicate {name}")
    seq, method = msg.cseq
    if msg.method is not None and method != msg.method:
        raise SipParseError(400, "CSeq method does not match request method")
    for name in ("From", "To"):
        parse_name_addr(msg.header(name) or "")
    if msg.top_via is None:
        raise SipParseError(400, "Missing Via")
    max_forwards = msg.header("Max-Forwards")
    if max_forwards is not None and (not _DIGITS.fullmatch(max_forwards) or int(max_forwards) > 255):
        raise SipParseError(400, "Bad Max-Forwards")


def _parse_cseq(value: str) -> tuple[int, str]:
    parts = value.split()
    if len(parts) != 2 or not _DIGITS.fullmatch(parts[0]) or not _TOKEN.fullmatch(parts[1]):
        raise SipParseError(400, "Bad CSeq")
    seq = int(parts[0])
    if seq >= 2**31:  # §8.1.1.5
        raise SipParseError(400, "Bad CSeq")
    return seq, parts[1]


# -- field grammar -------------------------------------------------------------------------------------------


def _split_outside_quotes(text: str, sep: str, *, angles: bool) -> tuple[list[str], bool]:
    """Split on ``sep`` outside quoted strings (and, with ``angles``, outside <...>). Returns the pieces and
    whether a quoted string was left open."""
    out: list[str] = []
    start = 0
    quoted = False
    angle = 0
    i = 0
    while i < len(text):
        ch = text[i]
        if quoted:
            if ch == "\\":
                i += 1
            elif ch == '"':
                quoted = False
        elif ch == '"':
            quoted = True
        elif angles and ch == "<":
            angle += 1
        elif angles and ch == ">":
            angle = max(0, angle - 1)
        elif ch == sep and angle == 0:
            out.append(text[start:i])
            start = i + 1
        i += 1
    out.append(text[start:])
    return out, quoted


def split_header_values(value: str) -> list[str]:
    """Split a comma-joined list header (Via, Contact, Route, ...) outside quotes and angle brackets."""
    parts, _ = _split_outside_quotes(value, ",", angles=True)
    return [v for v in (p.strip() for p in parts) if v]


def _split_params(text: str) -> list[str]:
    """Split on ';' outside quoted strings (parameter values such as +sip.instance may be quoted)."""
    parts, unterminated = _split_outside_quotes(text, ";", angles=False)
    if unterminated:
        raise SipParseError(400, "Unterminated quoted string")
    return parts


def _parse_params(items: Iterable[str]) -> dict[str, str]:
    """';name=value' pairs, names lower-cased, flag parameters (';lr') mapped to ''."""
    params: dict[str, str] = {}
    for item in items:
        item = item.strip()
        if not item:
            continue
        name, _, value = item.partition("=")
        name = name.strip().lower()
        if not _TOKEN.fullmatch(name):
            raise SipParseError(400, "Bad parameter")
        params[name] = value.strip()
    return params


def parse_name_addr(value: str) -> tuple[str | None, str, dict[str, str]]:
    """(display name, URI, header parameters) of a From/To/Contact/Route value.

    Without angle brackets every ';' parameter belongs to the header, not to the URI (§20.10).
    """
    text = value.strip()
    display: str | None = None
    if text.startswith('"'):
        i, chars = 1, []
        while i < len(text) and text[i] != '"':
            if text[i] == "\\" and i + 1 < len(text):
                i += 1
            chars.append(text[i])
            i += 1
        if i >= len(text):
            raise SipParseError(400, "Unterminated display name")
        display = "".join(chars)
        text = text[i + 1 :].lstrip()
        if not text.startswith("<"):
            raise SipParseError(400, "Display name without <URI>")
    lt = text.find("<")
    if lt >= 0:
        if display is None:
            display = text[:lt].strip() or None
            if display is not None and ('"' in display or ">" in display):
                raise SipParseError(400, "Bad display name")
        gt = text.find(">", lt)
        if gt < 0:
            raise SipParseError(400, "Missing '>'")
        uri = text[lt + 1 : gt].strip()
        rest = text[gt + 1 :].strip()
        if rest and not rest.startswith(";"):
            raise SipParseError(400, "Junk after '>'")
        params = _parse_params(_split_params(rest)[1:]) if rest else {}
    else:
        parts = _split_params(text)
        uri = parts[0].strip()
        params = _parse_params(parts[1:])
    if not uri or " " in uri:
        raise SipParseError(400, "Bad URI in name-addr")
    if uri != "*":
        scheme, sep, _ = uri.partition(":")
        if not sep or not _SCHEME.fullmatch(scheme):
            raise SipParseError(400, "Bad URI in name-addr")
    return display, uri, params


class SipUri(TypedDict):
    scheme: str
    user: str | None
    password: str | None
    host: str | None
    port: int | None
    params: dict[str, str]
    headers: dict[str, str]


def parse_uri(uri: str) -> SipUri:
    """Pieces of a sip:/sips:/tel: URI; ``host`` keeps IPv6 brackets, user/password stay percent-encoded."""
    scheme, sep, rest = uri.strip().partition(":")
    if not sep or not _SCHEME.fullmatch(scheme):
        raise SipParseError(400, "Bad URI scheme")
    scheme = scheme.lower()
    rest, _, header_part = rest.partition("?")
    headers: dict[str, str] = {}
    for item in header_part.split("&") if header_part else ():
        hname, _, hvalue = item.partition("=")
        headers[hname] = hvalue
    if scheme == "tel":
        parts = _split_params(rest)
        if not parts[0]:
            raise SipParseError(400, "Empty tel URI")
        return SipUri(scheme=scheme, user=parts[0], password=None, host=None, port=None,
                      params=_parse_params(parts[1:]), headers=headers)
    if scheme not in ("sip", "sips"):
        raise SipParseError(416, "Unsupported URI Scheme")
    # The user part may hold ';' (RFC 3261 19.1.1: "sip:alice;day=tuesday@atlanta.com", a carrier's
    # "sip:+12125551212;npdi;rn=…@host", "sip:8000;phone-context=+4930@host"): the userinfo is split off at
    # the last '@' before the URI parameters are.
    userinfo, at, hostpart = rest.rpartition("@")
    parts = _split_params(hostpart)
    params = _parse_params(parts[1:])
    user: str | None = None
    password: str | None = None
    if at:
        user, _, pw = userinfo.partition(":")
        password = pw or None
        if not user:
            raise SipParseError(400, "Empty user in URI")
    host, port = _split_hostport(parts[0])
    return SipUri(scheme=scheme, user=user, password=password, host=host, port=port, params=params, headers=headers)


def _split_hostport(hostport: str) -> tuple[str, int | None]:
    hostport = hostport.strip()
    if hostport.startswith("["):
        end = hostport.find("]")
        if end < 0:
            raise SipParseError(400, "Bad IPv6 reference")
        host, tail = hostport[: end + 1], hostport[end + 1 :]
        port_text = tail[1:] if tail.startswith(":") else None
        if tail and port_text is None:
            raise SipParseError(400, "Bad host")
    else:
        host, sep, port_text_ = hostport.partition(":")
        port_text = port_text_ if sep else None
    if not _HOST.fullmatch(host):
        raise SipParseError(400, "Bad host")
    if port_text is None:
        return host, None
    if not _DIGITS.fullmatch(port_text) or not 0 < int(port_text) < 65536:
        raise SipParseError(400, "Bad port")
    return host, int(port_text)


@dataclass
class Via:
    """One Via value: ``SIP/2.0/UDP host:port;branch=...;rport;received=...``."""

    transport: str
    host: str
    port: int | None
    params: dict[str, str]

    @property
    def sent_by(self) -> tuple[str, int]:
        """Normalised sent-by for transaction matching (§17.2.3); 5060 when the port is left out."""
        return self.host.lower(), self.port or (5061 if self.transport == "TLS" else 5060)


def parse_via(value: str) -> Via:
    """Parse a single Via value (split comma-joined lines first with split_header_values)."""
    parts = _split_params(value)
    proto, _, sent_by = parts[0].strip().partition(" ")
    pieces = [p.strip() for p in proto.split("/")]
    if len(pieces) != 3 or pieces[0].upper() != "SIP" or pieces[1] != "2.0" or not _TOKEN.fullmatch(pieces[2]):
        raise SipParseError(400, "Bad Via")
    host, port = _split_hostport(sent_by)
    return Via(transport=pieces[2].upper(), host=host, port=port, params=_parse_params(parts[1:]))


# -- building ------------------------------------------------------------------------------------------------


def new_tag() -> str:
    """From/To tag: 64 random bits, enough to be globally unique (§19.3)."""
    return secrets.token_hex(8)


def new_branch() -> str:
    """Via branch with the RFC 3261 magic cookie so peers use §17 transaction matching."""
    return MAGIC_COOKIE + secrets.token_hex(10)


def response_to(
    request: SipMessage,
    status: int,
    reason: str | None = None,
    *,
    to_tag: str | None = None,
    extra_headers: Iterable[tuple[str, str]] = (),
    body: bytes = b"",
    content_type: str | None = None,
) -> SipMessage:
    """Response per §8.2.6: Via (all, in order), From, To, Call-ID, CSeq copied from the request.

    ``to_tag`` is added only when the To has none yet (an in-dialog request already carries ours). Record-Route
    is copied into 101-299 responses to INVITE/SUBSCRIBE (§12.1.1) so an SBC stays on the dialog's path, and
    Timestamp into 100 Trying (§8.2.6.1).
    """
    if not request.is_request:
        raise ValueError("response_to() needs a request")
    if not 100 <= status <= 699:
        raise ValueError(f"bad status {status}")
    if body and content_type is None:
        raise ValueError("a body needs a content_type")
    resp = SipMessage(status=status, reason=reason or REASONS.get(status) or REASONS[status // 100 * 100])
    for value in request.headers_all("Via"):
        resp.add_header("Via", value)
    if 100 < status < 300 and request.method in ("INVITE", "SUBSCRIBE"):
        for value in request.headers_all("Record-Route"):
            resp.add_header("Record-Route", value)
    for name in ("From", "To", "Call-ID", "CSeq"):
        value = request.header(name)
        if value is None:
            raise ValueError(f"request lacks {name}")
        if name == "To" and to_tag is not None and "tag" not in parse_name_addr(value)[2]:
            value = f"{value};tag={to_tag}"
        resp.add_header(name, value)
    if status == 100 and (stamp := request.header("Timestamp")) is not None:
        resp.add_header("Timestamp", stamp)
    for name, value in extra_headers:
        resp.add_header(name, value)
    if content_type is not None:
        resp.set_header("Content-Type", content_type)
    resp.body = body
    return resp
