"""UAS dialog state on a call from a PBX behind an SBC: dialog fields from the INVITE, in-dialog BYE/REFER as
the trunk must see them (routing, tags, CSeq), URI-header escaping in Refer-To, request matching and REFER NOTIFYs."""

from __future__ import annotations

from urllib.parse import unquote

import pytest

from gateway.sip.dialog import Dialog, refer_status
from gateway.sip.message import SipMessage, SipParseError, parse, parse_name_addr, parse_uri


def crlf(text: str) -> bytes:
    return text.replace("\n", "\r\n").encode()


LOCAL_TAG = "a1b2c3d4e5f60718"
LOCAL_CONTACT = "<sip:enclave@192.168.1.20:5060>"
SOURCE = ("203.0.113.10", 5060)

# An Asterisk call that crossed a Kamailio SBC (two Record-Routes, one comma-joined line and one on its own).
INVITE = crlf(
    """INVITE sip:enclave@192.168.1.20:5060 SIP/2.0
Via: SIP/2.0/UDP 203.0.113.10:5060;branch=z9hG4bKsbc0a1;rport=5060
Via: SIP/2.0/UDP 10.0.0.5:5060;received=10.0.0.5;rport=5060;branch=z9hG4bKPj7c1a9f0e
Record-Route: <sip:203.0.113.10;lr;ftag=0e5c9d43;did=8f1.2a2>, <sip:10.0.0.1:5060;transport=udp;lr>
Record-Route: "edge" <sip:edge.pbx.example;lr>
Max-Forwards: 68
From: "Reception, Front Desk" <sip:201@pbx.example;user=phone>;tag=0e5c9d43-8f21
To: "Enclave" <sip:enclave@192.168.1.20>
Contact: "Reception" <sip:201@10.0.0.5:5060;transport=udp;ob>;expires=3600;+sip.instance="<urn:uuid:1>"
Call-ID: 6f1d2a3b-4c5d-4e6f-8a9b-0c1d2e3f4a5b
CSeq: 28463 INVITE
Content-Length: 0

"""
)


def dialog(raw: bytes = INVITE, **kwargs) -> Dialog:
    return Dialog.from_invite(parse(raw), LOCAL_TAG, LOCAL_CONTACT, SOURCE, **kwargs)


def reparse(msg: SipMessage) -> SipMessage:
    again = parse(msg.to_bytes())
    assert again.headers == [*msg.headers, ("Content-Length", str(len(msg.body)))]
    assert again.method == msg.method and again.uri == msg.uri and again.body == msg.body
    return again


def test_dialog_from_invite_uas_fields():
    d = dialog(first_cseq=1)
    assert d.call_id == "6f1d2a3b-4c5d-4e6f-8a9b-0c1d2e3f4a5b"
    assert d.local_tag == LOCAL_TAG and d.remote_tag == "0e5c9d43-8f21"
    assert d.local_uri == "sip:enclave@192.168.1.20"
    assert d.remote_uri == "sip:201@pbx.example;user=phone"
    assert d.remote_target == "sip:201@10.0.0.5:5060;transport=udp;ob"  # Contact URI, header params dropped
    assert d.route_set == [
        "<sip:203.0.113.10;lr;ftag=0e5c9d43;did=8f1.2a2>",
        "<sip:10.0.0.1:5060;transport=udp;lr>",
        '"edge" <sip:edge.pbx.example;lr>',
    ]
    assert d.remote_cseq == 28463 and d.local_cseq == 0
    assert d.source == SOURCE and d.local_contact == LOCAL_CONTACT


def test_remote_target_falls_back_to_from_and_cseq_start_is_random():
    raw = INVITE.replace(b'Contact: "Reception" <sip:201@10.0.0.5:5060;transport=udp;ob>;expires=3600;'
                         b'+sip.instance="<urn:uuid:1>"\r\n', b"")
    d = dialog(raw)
    assert d.remote_target == "sip:201@pbx.example;user=phone"
    starts = {dialog().local_cseq for _ in range(20)}
    assert len(starts) > 1 and all(0 <= s < 2**16 for s in starts)


def test_bye_fields_exact_with_loose_routing():
    d = dialog(first_cseq=1)
    bye = d.request("BYE", via_host="192.168.1.20", via_port=5060)
    assert bye.to_bytes().startswith(b"BYE sip:201@10.0.0.5:5060;transport=udp;ob SIP/2.0\r\n")
    names = [n for n, _ in bye.headers]
    assert names == ["Via", "Route", "Route", "Route", "Max-Forwards", "From", "To", "Call-ID", "CSeq", "Contact"]
    via = bye.header("Via")
    assert via is not None and via.startswith("SIP/2.0/UDP 192.168.1.20:5060;branch=z9hG4bK") and via.endswith(";rport")
    assert bye.headers_all("Route") == d.route_set
    assert bye.header("Max-Forwards") == "70"
    assert bye.header("From") == f"<sip:enclave@192.168.1.20>;tag={LOCAL_TAG}"
    assert bye.header("To") == "<sip:201@pbx.example;user=phone>;tag=0e5c9d43-8f21"
    assert bye.header("Call-ID") == d.call_id
    assert bye.header("CSeq") == "1 BYE"
    assert bye.header("Contact") == LOCAL_CONTACT
    again = reparse(bye)
    assert again.method == "BYE" and again.cseq == (1, "BYE")
    assert again.from_tag == LOCAL_TAG and again.to_tag == "0e5c9d43-8f21"
    assert again.header("Content-Length") == "0" and again.body == b""


def test_cseq_increments_and_branches_are_fresh():
    d = dialog(first_cseq=41)
    msgs = [d.request(m, via_host="192.168.1.20", via_port=5060) for m in ("INFO", "REFER", "BYE")]
    assert [reparse(m).cseq for m in msgs] == [(41, "INFO"), (42, "REFER"), (43, "BYE")]
    assert len({m.via_branch for m in msgs}) == 3
    assert d.local_cseq == 43
    d2 = dialog()
    first = d2.request("BYE", via_host="h", via_port=1).cseq[0]
    assert 1 <= first <= 2**16 and d2.request("BYE", via_host="h", via_port=1).cseq[0] == first + 1


def test_extra_headers_body_and_ipv6_via():
    d = dialog(first_cseq=1)
    info = d.request(
        "INFO",
        via_host="2001:db8::20",
        via_port=5070,
        extra_headers=[("X-Enclave-Handoff", "h-123")],
        body=b"Signal=5\r\nDuration=160\r\n",
        content_type="application/dtmf-relay",
    )
    assert [n for n, _ in info.headers][-2:] == ["X-Enclave-Handoff", "Content-Type"]
    again = reparse(info)
    assert again.top_via is not None and again.top_via.sent_by == ("[2001:db8::20]", 5070)
    assert again.header("Content-Length") == str(len(info.body))
    with pytest.raises(ValueError):
        d.request("INFO", via_host="h", via_port=1, body=b"x")
    with pytest.raises(ValueError):
        d.request("ACK", via_host="h", via_port=1)
    with pytest.raises(ValueError):  # header injection through an extra header
        d.request("INFO", via_host="h", via_port=1, extra_headers=[("X-A", "1\r\nBYE: x")])


def test_no_route_set_uses_remote_target():
    raw = b"".join(line for line in INVITE.splitlines(keepends=True) if not line.startswith(b"Record-Route"))
    d = dialog(raw, first_cseq=1)
    assert d.route_set == []
    bye = reparse(d.request("BYE", via_host="192.168.1.20", via_port=5060))
    assert bye.uri == "sip:201@10.0.0.5:5060;transport=udp;ob" and bye.headers_all("Route") == []


def test_strict_routing_puts_first_route_in_request_uri():
    raw = INVITE.replace(
        b"Record-Route: <sip:203.0.113.10;lr;ftag=0e5c9d43;did=8f1.2a2>, <sip:10.0.0.1:5060;transport=udp;lr>\r\n"
        b'Record-Route: "edge" <sip:edge.pbx.example;lr>\r\n',
        b"Record-Route: <sip:strict.example:5070;transport=udp;method=INVITE?X-A=1>\r\n"
        b"Record-Route: <sip:10.0.0.1;lr>\r\n",
    )
    d = dialog(raw, first_cseq=1)
    bye = reparse(d.request("BYE", via_host="192.168.1.20", via_port=5060))
    assert bye.uri == "sip:strict.example:5070;transport=udp"  # method param and URI headers stripped
    assert bye.headers_all("Route") == ["<sip:10.0.0.1;lr>", "<sip:201@10.0.0.5:5060;transport=udp;ob>"]
    assert d.route_set[0].startswith("<sip:strict.example")  # the stored route set is untouched


def test_bare_record_route_keeps_lr_as_uri_param():
    raw = INVITE.replace(b'Record-Route: "edge" <sip:edge.pbx.example;lr>\r\n', b"").replace(
        b"Record-Route: <sip:203.0.113.10;lr;ftag=0e5c9d43;did=8f1.2a2>, <sip:10.0.0.1:5060;transport=udp;lr>",
        b"Record-Route: sip:10.0.0.1;lr",
    )
    d = dialog(raw, first_cseq=1)
    bye = reparse(d.request("BYE", via_host="h", via_port=5060))
    assert d.route_set == ["<sip:10.0.0.1;lr>"] and bye.uri == d.remote_target  # loose, not strict


def test_malformed_route_fails_at_setup():
    raw = INVITE.replace(b"<sip:10.0.0.1:5060;transport=udp;lr>", b"<sip:10.0.0.1:99999;lr>")
    with pytest.raises(SipParseError):
        dialog(raw)


def test_refer_headers_and_escaped_uri_headers_round_trip():
    d = dialog(first_cseq=7)
    handoff = "h-42 a&b=c;d?e<f>,\"g\"%ü"
    refer = d.refer(
        "sip:queue@pbx.example",
        via_host="192.168.1.20",
        via_port=5060,
        extra_headers=[("X-Enclave-Handoff", "h-42")],
        uri_headers={"X-Enclave-Handoff": handoff},
    )
    again = reparse(refer)
    assert again.method == "REFER" and again.cseq == (7, "REFER")
    assert again.header("Referred-By") == "<sip:enclave@192.168.1.20>"
    assert again.header("X-Enclave-Handoff") == "h-42"
    refer_to = again.header("Refer-To")
    assert refer_to is not None
    _, uri, params = parse_name_addr(refer_to)
    assert params == {}
    assert uri.startswith("sip:queue@pbx.example?X-Enclave-Handoff=")
    escaped = uri.partition("=")[2]
    assert all(ch not in escaped for ch in " &=;?<>,\"") and escaped.isascii()
    parts = parse_uri(uri)
    assert parts["host"] == "pbx.example" and parts["user"] == "queue"
    assert {k: unquote(v) for k, v in parts["headers"].items()} == {"X-Enclave-Handoff": handoff}


def test_refer_simple_and_appends_to_existing_uri_headers():
    d = dialog(first_cseq=1)
    plain = d.refer("sip:queue@pbx.example", via_host="h", via_port=5060)
    assert plain.header("Refer-To") == "<sip:queue@pbx.example>"
    both = d.refer("sip:queue@pbx.example?Priority=urgent", via_host="h", via_port=5060, uri_headers={"X-Id": "abc"})
    assert both.header("Refer-To") == "<sip:queue@pbx.example?Priority=urgent&X-Id=abc>"
    assert parse_uri(parse_name_addr(both.header("Refer-To") or "")[1])["headers"] == {"Priority": "urgent", "X-Id": "abc"}
    assert [reparse(m).cseq[0] for m in (plain, both)] == [1, 2]
    for bad in ("<sip:queue@pbx.example>", "sip:queue@pbx example", "http://x"):
        with pytest.raises(ValueError):
            d.refer(bad, via_host="h", via_port=5060)


def peer_request(method: str, cseq: int, *, from_tag: str = "0e5c9d43-8f21", to_tag: str | None = LOCAL_TAG,
                 call_id: str = "6f1d2a3b-4c5d-4e6f-8a9b-0c1d2e3f4a5b", extra: str = "", body: str = "") -> SipMessage:
    to = f"<sip:enclave@192.168.1.20>;tag={to_tag}" if to_tag else "<sip:enclave@192.168.1.20>"
    raw = crlf(
        f"""{method} sip:enclave@192.168.1.20:5060 SIP/2.0
Via: SIP/2.0/UDP 203.0.113.10:5060;branch=z9hG4bKpeer{cseq}
From: <sip:201@pbx.example>;tag={from_tag}
To: {to}
Call-ID: {call_id}
CSeq: {cseq} {method}
{extra}Content-Length: {len(crlf(body))}

"""
    ) + crlf(body)
    return parse(raw)


def test_is_in_dialog():
    d = dialog()
    assert d.is_in_dialog(peer_request("BYE", 28464))
    assert not d.is_in_dialog(peer_request("BYE", 28464, call_id="other"))
    assert not d.is_in_dialog(peer_request("BYE", 28464, from_tag="someone-else"))
    assert not d.is_in_dialog(peer_request("BYE", 28464, to_tag="not-ours"))
    assert not d.is_in_dialog(peer_request("BYE", 28464, to_tag=None))
    # A response to our own BYE is seen from the other side: From carries our tag.
    bye = d.request("BYE", via_host="h", via_port=5060)
    ok = parse(crlf(f"""SIP/2.0 200 OK
Via: {bye.header("Via")}
From: {bye.header("From")}
To: {bye.header("To")}
Call-ID: {bye.call_id}
CSeq: {bye.header("CSeq")}
Content-Length: 0

"""))
    assert d.is_in_dialog(ok) and not d.is_in_dialog(peer_request("BYE", 1, from_tag=LOCAL_TAG, to_tag="0e5c9d43-8f21"))


def test_remote_cseq_ok_orders_requests():
    d = dialog()
    assert not d.remote_cseq_ok(peer_request("NOTIFY", 28463))  # not above the INVITE's
    assert d.remote_cseq_ok(peer_request("NOTIFY", 28464)) and d.remote_cseq == 28464
    assert d.remote_cseq_ok(peer_request("NOTIFY", 28470)) and d.remote_cseq == 28470
    assert not d.remote_cseq_ok(peer_request("BYE", 28465)) and d.remote_cseq == 28470
    assert d.remote_cseq_ok(peer_request("ACK", 28463))  # ACK reuses the INVITE's number


def test_refresh_target_on_reinvite_only():
    d = dialog()
    d.refresh_target(peer_request("NOTIFY", 28464, extra="Contact: <sip:201@10.0.0.9:5062>\n"))
    assert d.remote_target == "sip:201@10.0.0.5:5060;transport=udp;ob"
    d.refresh_target(peer_request("INVITE", 28465, extra="Contact: <sip:201@10.0.0.9:5062>\n"))
    assert d.remote_target == "sip:201@10.0.0.9:5062"


SIPFRAG = "Event: refer;id=93809824\nSubscription-State: {state}\nContent-Type: {ctype}\n"


@pytest.mark.parametrize(
    ("extra", "body", "expected"),
    [
        (SIPFRAG.format(state="active;expires=60", ctype="message/sipfrag;version=2.0"), "SIP/2.0 100 Trying\n", 100),
        (SIPFRAG.format(state="active", ctype="message/sipfrag"), "SIP/2.0 180 Ringing\n", 180),
        (SIPFRAG.format(state="terminated;reason=noresource", ctype="Message/SipFrag"), "SIP/2.0 200 OK\n", 200),
        ("o: refer\nc: message/sipfrag\n", "SIP/2.0 503 Service Unavailable", 503),
        (SIPFRAG.format(state="terminated", ctype="message/sipfrag"), "SIP/2.0 486 Busy Here\nContent-Length: 0\n", 486),
        (SIPFRAG.format(state="active", ctype="message/sipfrag"), "", None),
        (SIPFRAG.format(state="active", ctype="message/sipfrag"), "INVITE sip:x@y SIP/2.0\n", None),
        (SIPFRAG.format(state="active", ctype="message/sipfrag"), "SIP/2.0 2000 OK\n", None),
        (SIPFRAG.format(state="active", ctype="message/sipfrag"), "SIP/2.0 099 Low\n", None),
        (SIPFRAG.format(state="active", ctype="text/plain"), "SIP/2.0 200 OK\n", None),
        ("Event: dialog\nContent-Type: message/sipfrag\n", "SIP/2.0 200 OK\n", None),
        ("Content-Type: message/sipfrag\n", "SIP/2.0 200 OK\n", None),
    ],
)
def test_refer_status(extra: str, body: str, expected: int | None):
    assert refer_status(peer_request("NOTIFY", 28464, extra=extra, body=body)) == expected


def test_refer_status_rejects_non_notify_and_binary():
    assert refer_status(peer_request("INFO", 28464, extra="Event: refer\nContent-Type: message/sipfrag\n",
                                     body="SIP/2.0 200 OK\n")) is None
    notify = peer_request("NOTIFY", 28464, extra="Event: refer\nContent-Type: message/sipfrag\n")
    notify.body = b"\xff\xfe"
    assert refer_status(notify) is None
