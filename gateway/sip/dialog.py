"""UAS-side dialog state (RFC 3261 §12) so the appliance can send its own in-dialog requests (BYE, REFER) on a
call the PBX placed, and tell which incoming requests (NOTIFY, BYE, re-INVITE) belong to that call.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field
from urllib.parse import quote

from .message import SipMessage, new_branch, parse_name_addr, parse_uri, split_header_values

__all__ = ["Dialog", "refer_status"]

# Characters RFC 3261 §25.1 lets stand unescaped in a URI hname/hvalue beyond quote()'s own "_.-~" and
# alphanumerics; '?' is left out on purpose so naive parsers that split on every '?' cannot misread a value.
_URI_HEADER_SAFE = "!*'()[]/:+$"

# Requests that do not take a fresh local CSeq (§12.2.1.1): ACK/CANCEL reuse the number of what they refer to.
_NOT_SEQUENCED = ("ACK", "CANCEL")

_VIA_TRANSPORTS = ("UDP", "TCP", "TLS")


def _name_addr(value: str) -> str:
    """Route-set entries are kept as name-addr; a bare URI (illegal in Record-Route but seen) gets brackets so its
    ';lr' stays a URI parameter instead of turning into a header parameter."""
    value = value.strip()
    return value if "<" in value else f"<{value}>"


def _is_loose(route: str) -> bool:
    return "lr" in parse_uri(parse_name_addr(route)[1])["params"]


def _request_uri_form(uri: str) -> str:
    """Strip what a Request-URI may not carry (§19.1.1 table: URI headers and the method parameter)."""
    uri = uri.partition("?")[0]
    main, *params = uri.split(";")
    kept = [p for p in params if p.partition("=")[0].strip().lower() != "method"]
    return ";".join([main, *kept])


def _check_target(uri: str) -> None:
    if any(ch in uri for ch in "<>\"\r\n \t"):
        raise ValueError(f"target must be a bare URI: {uri!r}")
    parse_uri(uri)


@dataclass
class Dialog:
    """One confirmed dialog in which we are the UAS; ``source`` is the address the INVITE came from, i.e. where
    a trunk behind NAT can be reached no matter what its Contact claims."""

    call_id: str
    local_tag: str
    remote_tag: str
    local_uri: str
    remote_uri: str
    remote_target: str
    local_contact: str
    source: tuple[str, int]
    route_set: list[str] = field(default_factory=list)
    local_cseq: int = 0  # CSeq of the last request we sent; the next one uses local_cseq + 1
    remote_cseq: int = 0

    @classmethod
    def from_invite(
        cls,
        invite: SipMessage,
        local_tag: str,
        local_contact: str,
        source: tuple[str, int],
        *,
        first_cseq: int | None = None,
    ) -> Dialog:
        """State per §12.1.1 from the INVITE we answered with a 2xx carrying ``local_tag`` in its To.

        The first local CSeq is random (small enough to never near 2**31) unless ``first_cseq`` pins it.
        """
        if invite.method != "INVITE":
            raise ValueError("a dialog is created from an INVITE")
        call_id = invite.call_id
        from_value, to_value = invite.header("From"), invite.header("To")
        if not call_id or from_value is None or to_value is None:
            raise ValueError("INVITE lacks Call-ID, From or To")
        _, remote_uri, from_params = parse_name_addr(from_value)
        _, local_uri, _ = parse_name_addr(to_value)
        remote_target = remote_uri
        contacts = [c for value in invite.headers_all("Contact") for c in split_header_values(value)]
        if contacts:
            remote_target = parse_name_addr(contacts[0])[1]
        routes = [_name_addr(r) for value in invite.headers_all("Record-Route") for r in split_header_values(value)]
        for route in routes:
            _is_loose(route)  # a malformed route fails here, at setup, not when we need to hang up
        start = first_cseq if first_cseq is not None else secrets.randbelow(1 << 16) + 1
        if not 0 < start < 2**31:
            raise ValueError(f"bad first CSeq {start}")
        return cls(
            call_id=call_id,
            local_tag=local_tag,
            remote_tag=from_params.get("tag", ""),
            local_uri=local_uri,
            remote_uri=remote_uri,
            remote_target=remote_target,
            local_contact=local_contact if "<" in local_contact else f"<{local_contact}>",
            source=source,
            route_set=routes,
            local_cseq=start - 1,
            remote_cseq=invite.cseq[0],
        )

    # -- outgoing ------------------------------------------------------------------------------------------

    def request(
        self,
        method: str,
        *,
        via_host: str,
        via_port: int,
        via_transport: str = "UDP",
        extra_headers: Iterable[tuple[str, str]] = (),
        body: bytes = b"",
        content_type: str | None = None,
    ) -> SipMessage:
        """In-dialog request per §12.2.1.1 with the next local CSeq and a fresh branch (a new transaction).

        ``via_transport`` is the transport the request leaves by (``UDP`` or ``TLS``), as the Via says (§18.1.1).
        """
        via_transport = via_transport.upper()
        if via_transport not in _VIA_TRANSPORTS:
            raise ValueError(f"unknown Via transport {via_transport!r}")
        if method in _NOT_SEQUENCED:
            raise ValueError(f"{method} reuses another request's CSeq; build it from that request")
        if body and content_type is None:
            raise ValueError("a body needs a content_type")
        uri, routes = self._target_and_routes()
        self.local_cseq += 1
        if self.local_cseq >= 2**31:
            raise ValueError("local CSeq exhausted")
        host = f"[{via_host}]" if ":" in via_host and not via_host.startswith("[") else via_host
        msg = SipMessage(method=method, uri=uri)
        msg.add_header("Via", f"SIP/2.0/{via_transport} {host}:{via_port};branch={new_branch()};rport")
        for route in routes:
            msg.add_header("Route", route)
        msg.add_header("Max-Forwards", "70")
        msg.add_header("From", f"<{self.local_uri}>;tag={self.local_tag}")
        to = f"<{self.remote_uri}>;tag={self.remote_tag}" if self.remote_tag else f"<{self.remote_uri}>"
        msg.add_header("To", to)
        msg.add_header("Call-ID", self.call_id)
        msg.add_header("CSeq", f"{self.local_cseq} {method}")
        msg.add_header("Contact", self.local_contact)
        for name, value in extra_headers:
            msg.add_header(name, value)
        if content_type is not None:
            msg.set_header("Content-Type", content_type)
        msg.body = body
        return msg

    def _target_and_routes(self) -> tuple[str, list[str]]:
        """Request-URI and Route values: loose routing keeps the remote target in the Request-URI; a strict
        router (no ';lr') must be the Request-URI, with the remote target moved to the last Route (§12.2.1.1)."""
        if not self.route_set or _is_loose(self.route_set[0]):
            return self.remote_target, list(self.route_set)
        first = parse_name_addr(self.route_set[0])[1]
        return _request_uri_form(first), [*self.route_set[1:], f"<{self.remote_target}>"]

    def refer(
        self,
        target_uri: str,
        *,
        via_host: str,
        via_port: int,
        via_transport: str = "UDP",
        extra_headers: Iterable[tuple[str, str]] = (),
        uri_headers: dict[str, str] | None = None,
    ) -> SipMessage:
        """Blind transfer (RFC 3515): REFER with Refer-To and Referred-By (RFC 3892).

        ``uri_headers`` are escaped into the Refer-To URI (§19.1.1, RFC 3515 §2.1) so the PBX copies them into
        the INVITE it sends to the target, which is how a handoff id reaches the human queue.
        """
        _check_target(target_uri)
        refer_to = target_uri
        if uri_headers:
            pairs = []
            for name, value in uri_headers.items():
                if not name:
                    raise ValueError("empty URI header name")
                pairs.append(f"{quote(name, safe=_URI_HEADER_SAFE)}={quote(value, safe=_URI_HEADER_SAFE)}")
            refer_to += ("&" if "?" in target_uri else "?") + "&".join(pairs)
        headers = [("Refer-To", f"<{refer_to}>"), ("Referred-By", f"<{self.local_uri}>"), *extra_headers]
        return self.request("REFER", via_host=via_host, via_port=via_port, via_transport=via_transport,
                            extra_headers=headers)

    # -- incoming ------------------------------------------------------------------------------------------

    def is_in_dialog(self, msg: SipMessage) -> bool:
        """Whether a request from the peer (or a response to one of ours) belongs to this dialog (§12.2.2):
        Call-ID and both tags, seen from the sender's side."""
        if msg.call_id != self.call_id:
            return False
        if msg.is_request:
            return (msg.from_tag or "") == self.remote_tag and msg.to_tag == self.local_tag
        return msg.from_tag == self.local_tag and (msg.to_tag or "") == self.remote_tag

    def remote_cseq_ok(self, msg: SipMessage) -> bool:
        """Out-of-order guard (§12.2.2): a new peer request needs a CSeq above the last one, which it then becomes.

        ACK and CANCEL carry the number of the request they refer to and are left to the transaction layer. A
        False answer means reply 500 (§12.2.2).
        """
        if msg.method in _NOT_SEQUENCED:
            return True
        seq = msg.cseq[0]
        if seq <= self.remote_cseq:
            return False
        self.remote_cseq = seq
        return True

    def refresh_target(self, msg: SipMessage) -> None:
        """Target refresh (§12.2.2): a re-INVITE or UPDATE from the peer may move its Contact."""
        if msg.method not in ("INVITE", "UPDATE"):
            return
        contacts = [c for value in msg.headers_all("Contact") for c in split_header_values(value)]
        if contacts:
            self.remote_target = parse_name_addr(contacts[0])[1]


def refer_status(notify: SipMessage) -> int | None:
    """Status code in a REFER progress NOTIFY (RFC 3515 §2.4.5): ``message/sipfrag`` whose first line is a status
    line such as ``SIP/2.0 200 OK``. None for anything else, so the caller keeps waiting rather than guessing."""
    if notify.method != "NOTIFY":
        return None
    event = notify.header("Event") or ""
    if event.split(";")[0].strip().lower() != "refer":
        return None
    ctype = notify.header("Content-Type") or ""
    if ctype.split(";")[0].strip().lower() != "message/sipfrag":
        return None
    try:
        first = notify.body.decode("utf-8").lstrip("\r\n").splitlines()[0]
    except (UnicodeDecodeError, IndexError):
        return None
    parts = first.split(maxsplit=2)
    if len(parts) < 2 or parts[0].upper() != "SIP/2.0" or len(parts[1]) != 3 or not (parts[1].isascii() and parts[1].isdigit()):
        return None
    code = int(parts[1])
    return code if 100 <= code <= 699 else None
