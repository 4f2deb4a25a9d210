"""SIP message layer on trunk traffic as Asterisk (pjsip) and FreeSWITCH send it: parsing, round trips,
responses, SDP offer/answer (codecs, DTMF, hold/resume), UDP server-transaction timers and a mutation fuzz."""

from __future__ import annotations

import random
import time

import pytest

from gateway.sip import message as sipmsg
from gateway.sip.message import (
    REASONS,
    SipMessage,
    SipParseError,
    new_branch,
    new_tag,
    parse,
    parse_name_addr,
    parse_uri,
    response_to,
    split_header_values,
)
from gateway.sip.sdp import SdpError, answer, parse_sdp
from gateway.sip.transaction import (
    PROCEEDING_LIMIT_S,
    InviteServerTransaction,
    NonInviteServerTransaction,
    TransactionError,
    TransactionTable,
)


def crlf(text: str) -> bytes:
    """Test messages are written with \\n for readability; the wire uses CRLF."""
    return text.replace("\n", "\r\n").encode()


ASTERISK_SDP = """v=0
o=- 1724410431 1724410431 IN IP4 10.0.0.5
s=Asterisk
c=IN IP4 10.0.0.5
t=0 0
m=audio 14058 RTP/AVP 0 8 101
a=rtpmap:0 PCMU/8000
a=rtpmap:8 PCMA/8000
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-16
a=ptime:20
a=maxptime:140
a=sendrecv
"""


def with_body(head: str, body: str) -> bytes:
    raw = crlf(body)
    return crlf(head.replace("@LEN@", str(len(raw)))) + raw


ASTERISK_INVITE = with_body(
    """INVITE sip:enclave@192.168.1.20:5060 SIP/2.0
Via: SIP/2.0/UDP 10.0.0.5:5060;rport;branch=z9hG4bKPj7c1a9f0e-5b4d-4a3e-9a1c-2f6c3d8e1b70
From: "Reception" <sip:201@10.0.0.5>;tag=0e5c9d43-8f21-4b4e-a6a2-1b9f0c7d3e55
To: <sip:enclave@192.168.1.20>
Contact: <sip:asterisk@10.0.0.5:5060>
Call-ID: 6f1d2a3b-4c5d-4e6f-8a9b-0c1d2e3f4a5b
CSeq: 28463 INVITE
Allow: OPTIONS, REGISTER, SUBSCRIBE, NOTIFY, PUBLISH, INVITE, ACK, BYE, CANCEL, UPDATE, PRACK, MESSAGE, REFER
Supported: 100rel, timer, replaces, norefersub, histinfo
Session-Expires: 1800
Min-SE: 90
P-Asserted-Identity: "Reception" <sip:201@10.0.0.5>
Max-Forwards: 70
User-Agent: Asterisk PBX 20.5.0
Content-Type: application/sdp
Content-Length: @LEN@

""",
    ASTERISK_SDP,
)

FREESWITCH_SDP = """v=0
o=FreeSWITCH 1724393157 1724393158 IN IP4 203.0.113.10
s=FreeSWITCH
c=IN IP4 203.0.113.10
t=0 0
m=audio 24612 RTP/AVP 8 101 13
a=rtpmap:8 PCMA/8000
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-16
a=rtpmap:13 CN/8000
a=ptime:20
m=video 0 RTP/AVP 96
"""

FREESWITCH_INVITE = with_body(
    """INVITE sip:+4930123456@198.51.100.7;transport=udp SIP/2.0
Via: SIP/2.0/UDP 203.0.113.10;rport;branch=z9hG4bKQ2mX0pgSjD7vN
Via: SIP/2.0/UDP 10.10.0.3:5080;received=10.10.0.3;branch=z9hG4bK-524287-1---d8754z-
Max-Forwards: 69
From: "+4989555" <sip:+4989555@203.0.113.10>;tag=N3g6BtH0vp0aD
To: <sip:+4930123456@198.51.100.7>
Call-ID: 2b2c0a62-8d8a-123d-2a10-001e67b1c2d4
CSeq: 102738164 INVITE
Contact: <sip:mod_sofia@203.0.113.10:5060>
Record-Route: <sip:203.0.113.10;lr;ftag=N3g6BtH0vp0aD>
User-Agent: FreeSWITCH-mod_sofia/1.10.11-release~64bit
Allow: INVITE, ACK, BYE, CANCEL, OPTIONS, MESSAGE, INFO, UPDATE, REGISTER, REFER, NOTIFY
Supported: timer, path, replaces
Allow-Events: talk, hold, conference, refer
Content-Type: application/sdp
Content-Disposition: session
Content-Length: @LEN@
X-FS-Support: update_display,send_info
Remote-Party-ID: "+4989555" <sip:+4989555@203.0.113.10>;party=calling;screen=yes;privacy=off

""",
    FREESWITCH_SDP,
)

OPTIONS = crlf(
    """OPTIONS sip:192.168.1.20:5060 SIP/2.0
Via: SIP/2.0/UDP 10.0.0.5:5060;rport;branch=z9hG4bKPjc4a0c1c3-3b1f-4f55-9d5f-a0c9e8b7d6f1
From: <sip:asterisk@10.0.0.5>;tag=5a1c0d0e-7f3b-4e2f-8a61-3c9d2e1f0a4b
To: <sip:192.168.1.20>
Contact: <sip:asterisk@10.0.0.5:5060>
Call-ID: a8d6f1e2-3c4b-4a59-86e7-f0a1b2c3d4e5
CSeq: 5931 OPTIONS
Max-Forwards: 70
User-Agent: Asterisk PBX 20.5.0
Content-Length:  0

"""
)

BYE = crlf(
    """BYE sip:enclave@192.168.1.20:5060 SIP/2.0
Via: SIP/2.0/UDP 10.0.0.5:5060;rport;branch=z9hG4bKPj0f9e8d7c-6b5a-4c3d-2e1f-0a9b8c7d6e5f
From: "Reception" <sip:201@10.0.0.5>;tag=0e5c9d43-8f21-4b4e-a6a2-1b9f0c7d3e55
To: <sip:enclave@192.168.1.20>;tag=a1b2c3d4e5f60718
Call-ID: 6f1d2a3b-4c5d-4e6f-8a9b-0c1d2e3f4a5b
CSeq: 28464 BYE
Reason: Q.850;cause=16;text="Normal Clearing"
Max-Forwards: 70
Content-Length: 0

"""
)

CANCEL = crlf(
    """CANCEL sip:enclave@192.168.1.20:5060 SIP/2.0
Via: SIP/2.0/UDP 10.0.0.5:5060;rport;branch=z9hG4bKPj7c1a9f0e-5b4d-4a3e-9a1c-2f6c3d8e1b70
From: "Reception" <sip:201@10.0.0.5>;tag=0e5c9d43-8f21-4b4e-a6a2-1b9f0c7d3e55
To: <sip:enclave@192.168.1.20>
Call-ID: 6f1d2a3b-4c5d-4e6f-8a9b-0c1d2e3f4a5b
CSeq: 28463 CANCEL
Max-Forwards: 70
Content-Length: 0

"""
)

ACK_2XX = crlf(
    """ACK sip:enclave@192.168.1.20:5060 SIP/2.0
Via: SIP/2.0/UDP 10.0.0.5:5060;rport;branch=z9hG4bKPj3e2d1c0b-a987-4654-3210-fedcba987654
From: "Reception" <sip:201@10.0.0.5>;tag=0e5c9d43-8f21-4b4e-a6a2-1b9f0c7d3e55
To: <sip:enclave@192.168.1.20>;tag=a1b2c3d4e5f60718
Call-ID: 6f1d2a3b-4c5d-4e6f-8a9b-0c1d2e3f4a5b
CSeq: 28463 ACK
Max-Forwards: 70
Content-Length: 0

"""
)

HOLD_SDP = ASTERISK_SDP.replace("1724410431 1724410431", "1724410431 1724410432").replace("a=sendrecv", "a=sendonly")
REINVITE_HOLD = with_body(
    """INVITE sip:enclave@192.168.1.20:5060 SIP/2.0
Via: SIP/2.0/UDP 10.0.0.5:5060;rport;branch=z9hG4bKPj99887766-5544-3322-1100-aabbccddeeff
From: "Reception" <sip:201@10.0.0.5>;tag=0e5c9d43-8f21-4b4e-a6a2-1b9f0c7d3e55
To: <sip:enclave@192.168.1.20>;tag=a1b2c3d4e5f60718
Contact: <sip:asterisk@10.0.0.5:5060>
Call-ID: 6f1d2a3b-4c5d-4e6f-8a9b-0c1d2e3f4a5b
CSeq: 28465 INVITE
Max-Forwards: 70
Content-Type: application/sdp
Content-Length: @LEN@

""",
    HOLD_SDP,
)

COMPACT = crlf(
    """INVITE sip:bob@biloxi.example.com SIP/2.0
v: SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bKnashds8
f: Alice <sip:alice@atlanta.example.com>;tag=1928301774
t: Bob <sip:bob@biloxi.example.com>
i: a84b4c76e66710@pc33.atlanta.example.com
CSeq: 314159 INVITE
m: <sip:alice@pc33.atlanta.example.com>
k: timer
s: hello
c: application/sdp
l: 4

abcdEXTRA"""
)

FOLDED = crlf(
    """OPTIONS sip:192.168.1.20 SIP/2.0
Via: SIP/2.0/UDP 10.0.0.5:5060;rport;
 branch=z9hG4bKfold1
From: <sip:asterisk@10.0.0.5>;tag=f1
To:
\t<sip:192.168.1.20>
Call-ID: fold-1
CSeq: 1 OPTIONS
Subject: I know you're there,
   pick up the phone
Content-Length: 0

"""
)

ALL_MESSAGES = [ASTERISK_INVITE, FREESWITCH_INVITE, OPTIONS, BYE, CANCEL, ACK_2XX, REINVITE_HOLD, COMPACT, FOLDED]


# -- parsing -------------------------------------------------------------------------------------------------


def test_asterisk_invite() -> None:
    msg = parse(ASTERISK_INVITE)
    assert msg.is_request and msg.method == "INVITE" and msg.uri == "sip:enclave@192.168.1.20:5060"
    assert msg.call_id == "6f1d2a3b-4c5d-4e6f-8a9b-0c1d2e3f4a5b"
    assert msg.cseq == (28463, "INVITE")
    assert msg.via_branch == "z9hG4bKPj7c1a9f0e-5b4d-4a3e-9a1c-2f6c3d8e1b70"
    assert msg.from_tag == "0e5c9d43-8f21-4b4e-a6a2-1b9f0c7d3e55" and msg.to_tag is None
    assert msg.header("content-type") == "application/sdp" and msg.header("MAX-FORWARDS") == "70"
    assert msg.body == crlf(ASTERISK_SDP)
    assert parse_name_addr(msg.header("From") or "") == (
        "Reception",
        "sip:201@10.0.0.5",
        {"tag": "0e5c9d43-8f21-4b4e-a6a2-1b9f0c7d3e55"},
    )
    via = msg.top_via
    assert via is not None and via.sent_by == ("10.0.0.5", 5060) and via.params["rport"] == ""


def test_freeswitch_invite_two_vias_and_record_route() -> None:
    msg = parse(FREESWITCH_INVITE)
    assert len(msg.headers_all("via")) == 2
    assert msg.via_branch == "z9hG4bKQ2mX0pgSjD7vN"
    assert msg.top_via is not None and msg.top_via.sent_by == ("203.0.113.10", 5060)
    assert parse_uri(msg.uri or "") == {
        "scheme": "sip",
        "user": "+4930123456",
        "password": None,
        "host": "198.51.100.7",
        "port": None,
        "params": {"transport": "udp"},
        "headers": {},
    }
    # A header after Content-Length is still a header; the body is exactly Content-Length bytes.
    assert msg.header("X-FS-Support") == "update_display,send_info"
    assert msg.body.endswith(b"m=video 0 RTP/AVP 96\r\n")


def test_options_bye_cancel_ack() -> None:
    opt = parse(OPTIONS)
    assert opt.method == "OPTIONS" and opt.body == b"" and opt.cseq == (5931, "OPTIONS")
    bye = parse(BYE)
    assert bye.to_tag == "a1b2c3d4e5f60718" and bye.header("Reason") == 'Q.850;cause=16;text="Normal Clearing"'
    cancel = parse(CANCEL)
    assert cancel.via_branch == parse(ASTERISK_INVITE).via_branch and cancel.cseq == (28463, "CANCEL")
    ack = parse(ACK_2XX)
    assert ack.cseq == (28463, "ACK") and ack.via_branch != parse(ASTERISK_INVITE).via_branch


def test_compact_headers_and_content_length_truncates_extra_bytes() -> None:
    msg = parse(COMPACT)
    assert msg.header("Via") == "SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bKnashds8"
    assert msg.header("v") == msg.header("VIA")
    assert msg.from_tag == "1928301774" and msg.call_id == "a84b4c76e66710@pc33.atlanta.example.com"
    assert msg.header("Contact") == "<sip:alice@pc33.atlanta.example.com>"
    assert msg.header("Supported") == "timer" and msg.header("Subject") == "hello"
    assert msg.header("Content-Type") == "application/sdp"
    assert msg.body == b"abcd"  # §18.3: datagram bytes past Content-Length are discarded
    assert msg.top_via is not None and msg.top_via.sent_by == ("pc33.atlanta.example.com", 5060)
    assert msg.headers[0][0] == "v"  # names kept as received


def test_header_folding() -> None:
    msg = parse(FOLDED)
    assert msg.via_branch == "z9hG4bKfold1"
    assert msg.header("To") == "<sip:192.168.1.20>"
    assert msg.header("Subject") == "I know you're there, pick up the phone"


def test_comma_joined_via_and_contact_kept_as_is() -> None:
    raw = OPTIONS.replace(
        b"Via: SIP/2.0/UDP 10.0.0.5:5060;rport;branch=z9hG4bKPjc4a0c1c3-3b1f-4f55-9d5f-a0c9e8b7d6f1",
        b"Via: SIP/2.0/UDP 10.0.0.5:5060;branch=z9hG4bKtop, SIP/2.0/UDP 10.0.0.9:5070;branch=z9hG4bKsecond",
    ).replace(b"Contact: <sip:asterisk@10.0.0.5:5060>", b'Contact: "A, B" <sip:a@h>;q=0.7, <sip:b@h;lr>')
    msg = parse(raw)
    assert msg.headers_all("Via") == [
        "SIP/2.0/UDP 10.0.0.5:5060;branch=z9hG4bKtop, SIP/2.0/UDP 10.0.0.9:5070;branch=z9hG4bKsecond"
    ]
    assert msg.via_branch == "z9hG4bKtop"
    assert split_header_values(msg.header("Contact") or "") == ['"A, B" <sip:a@h>;q=0.7', "<sip:b@h;lr>"]


def test_lf_only_and_leading_keepalive_crlf_and_response() -> None:
    raw = b"\r\n\r\n" + OPTIONS.replace(b"\r\n", b"\n")
    assert parse(raw).method == "OPTIONS"
    resp = parse(
        crlf(
            """SIP/2.0 180 Ringing
Via: SIP/2.0/UDP 192.168.1.20:5060;branch=z9hG4bKabc;received=192.168.1.20
From: <sip:enclave@192.168.1.20>;tag=x1
To: <sip:201@10.0.0.5>;tag=y2
Call-ID: out-1
CSeq: 7 INVITE
Content-Length: 0

"""
        )
    )
    assert not resp.is_request and resp.status == 180 and resp.reason == "Ringing" and resp.cseq == (7, "INVITE")


@pytest.mark.parametrize(
    ("raw", "status", "reason"),
    [
        (BYE.replace(b"Call-ID: 6f1d2a3b-4c5d-4e6f-8a9b-0c1d2e3f4a5b\r\n", b""), 400, "Missing Call-ID"),
        (BYE.replace(b"CSeq: 28464 BYE\r\n", b""), 400, "Missing CSeq"),
        (BYE.replace(b"Via:", b"X-Via:"), 400, "Missing Via"),
        (BYE.replace(b"To: <sip", b"X-To: <sip"), 400, "Missing To"),
        (BYE.replace(b"From:", b"X-From:"), 400, "Missing From"),
        (BYE.replace(b"28464 BYE", b"28464 INVITE"), 400, "CSeq method does not match request method"),
        (BYE.replace(b"Content-Length: 0", b"Content-Length: 50"), 400, "Body shorter than Content-Length"),
        (BYE.replace(b"SIP/2.0\r\n", b"SIP/3.0\r\n", 1), 505, "Version Not Supported"),
        (BYE.replace(b"sip:enclave@192.168.1.20:5060", b"http://x", 1), 416, "Unsupported URI Scheme"),
        (BYE.replace(b"Max-Forwards: 70", b"Max-Forwards: lots"), 400, "Bad Max-Forwards"),
        (BYE.replace(b"Reception", b"Re\xffception"), 400, "Headers are not UTF-8"),
        (BYE[:-4], 400, "No end of headers"),
        (b"\r\n\r\n", 400, "Empty message"),
        (BYE + b"x" * 70000, 513, "Message Too Large"),
    ],
)
def test_parse_errors(raw: bytes, status: int, reason: str) -> None:
    with pytest.raises(SipParseError) as err:
        parse(raw)
    assert (err.value.status, err.value.reason) == (status, reason)
    assert isinstance(err.value, ValueError)


def test_round_trip() -> None:
    for raw in ALL_MESSAGES:
        first = parse(raw)
        wire = first.to_bytes()
        second = parse(wire)
        assert second == first
        assert second.to_bytes() == wire
        assert wire.count(b"\r\n\r\n") >= 1 and b"\n" not in wire.replace(b"\r\n", b"")[: wire.index(b"\r\n\r\n")]


def test_to_bytes_recomputes_content_length() -> None:
    msg = parse(ASTERISK_INVITE)
    msg.body = b"v=0\r\n"
    wire = msg.to_bytes()
    assert b"\r\nContent-Length: 5\r\n" in wire and parse(wire).body == b"v=0\r\n"
    msg.remove_header("l")
    assert msg.header("Content-Length") is None and b"Content-Length: 5" in msg.to_bytes()


def test_header_editing() -> None:
    msg = parse(OPTIONS)
    msg.set_header("user-agent", "Enclave")
    assert msg.header("User-Agent") == "Enclave" and len(msg.headers_all("User-Agent")) == 1
    msg.add_header("Via", "SIP/2.0/UDP 1.2.3.4;branch=z9hG4bKnew", prepend=True)
    assert msg.via_branch == "z9hG4bKnew"
    msg.remove_header("v")
    assert msg.headers_all("Via") == []
    with pytest.raises(ValueError):
        msg.set_header("X-Evil", "a\r\nVia: injected")


def test_name_addr_and_uri_forms() -> None:
    assert parse_name_addr('"Doe, \\"J\\"" <sip:j@h;transport=udp>;tag=1;+sip.instance="<urn:uuid:1;2>"') == (
        'Doe, "J"',
        "sip:j@h;transport=udp",
        {"tag": "1", "+sip.instance": '"<urn:uuid:1;2>"'},
    )
    assert parse_name_addr("Bob <sip:bob@b.example>") == ("Bob", "sip:bob@b.example", {})
    assert parse_name_addr("sip:carol@c.example;tag=9") == (None, "sip:carol@c.example", {"tag": "9"})
    assert parse_name_addr("*") == (None, "*", {})
    for bad in ('"unterminated <sip:a@b>', "<sip:a@b", "Bob <sip:a@b> junk", "", "no-scheme"):
        with pytest.raises(SipParseError):
            parse_name_addr(bad)
    uri = parse_uri("sips:alice:secret@[2001:db8::1]:5061;transport=tls;lr?subject=hi&priority=urgent")
    assert uri == {
        "scheme": "sips",
        "user": "alice",
        "password": "secret",
        "host": "[2001:db8::1]",
        "port": 5061,
        "params": {"transport": "tls", "lr": ""},
        "headers": {"subject": "hi", "priority": "urgent"},
    }
    assert parse_uri("tel:+4930123456;phone-context=+49")["user"] == "+4930123456"
    for bad in ("sip:", "sip:h:99999", "sip:@h", "mailto:x@y", "sip:[::1"):
        with pytest.raises(SipParseError):
            parse_uri(bad)


def test_tags_and_branches() -> None:
    assert new_branch().startswith("z9hG4bK") and new_branch() != new_branch()
    assert len(new_tag()) == 16 and new_tag() != new_tag()
    assert REASONS[200] == "OK" and REASONS[488] == "Not Acceptable Here" and REASONS[481].startswith("Call/")


# -- responses -----------------------------------------------------------------------------------------------


def test_response_to_copies_dialog_headers() -> None:
    invite = parse(FREESWITCH_INVITE)
    sdp = b"v=0\r\n"
    resp = response_to(
        invite,
        200,
        to_tag="ourtag",
        extra_headers=[("Contact", "<sip:enclave@198.51.100.7>")],
        body=sdp,
        content_type="application/sdp",
    )
    assert resp.status == 200 and resp.reason == "OK" and not resp.is_request
    assert resp.headers_all("Via") == invite.headers_all("Via")
    assert resp.header("From") == invite.header("From") and resp.call_id == invite.call_id
    assert resp.header("To") == "<sip:+4930123456@198.51.100.7>;tag=ourtag" and resp.to_tag == "ourtag"
    assert resp.cseq == (102738164, "INVITE")
    assert resp.headers_all("Record-Route") == invite.headers_all("Record-Route")  # §12.1.1
    assert [n for n, _ in resp.headers] == [
        "Via",
        "Via",
        "Record-Route",
        "From",
        "To",
        "Call-ID",
        "CSeq",
        "Contact",
        "Content-Type",
    ]
    wire = parse(resp.to_bytes())
    assert wire.body == sdp and wire.header("Content-Length") == "5"
    assert wire.header("User-Agent") is None and wire.header("Max-Forwards") is None


def test_response_to_in_dialog_keeps_existing_tag_and_defaults() -> None:
    bye = parse(BYE)
    ok = response_to(bye, 200, to_tag="other")
    assert ok.header("To") == bye.header("To") and ok.header("Record-Route") is None
    trying = response_to(parse(ASTERISK_INVITE), 100)
    assert trying.reason == "Trying" and trying.to_tag is None
    assert response_to(bye, 499).reason == "Bad Request"  # unknown code: class reason
    with pytest.raises(ValueError):
        response_to(bye, 200, body=b"x")
    with pytest.raises(ValueError):
        response_to(trying, 200)


# -- SDP -----------------------------------------------------------------------------------------------------


def sdp_offer(payloads: str, rtpmaps: str = "", direction: str = "", conn: str = "10.0.0.5") -> bytes:
    return crlf(f"v=0\no=- 1 1 IN IP4 {conn}\ns=-\nc=IN IP4 {conn}\nt=0 0\nm=audio 4000 RTP/AVP {payloads}\n{rtpmaps}{direction}")


def test_parse_asterisk_offer() -> None:
    offer = parse_sdp(crlf(ASTERISK_SDP))
    assert (offer.connection_ip, offer.port, offer.payloads) == ("10.0.0.5", 14058, [0, 8, 101])
    assert offer.rtpmap == {0: ("PCMU", 8000), 8: ("PCMA", 8000), 101: ("telephone-event", 8000)}
    assert offer.fmtp == {101: "0-16"} and offer.ptime == 20 and offer.direction == "sendrecv"
    assert offer.telephone_event == 101 and not offer.on_hold


def test_static_payloads_without_rtpmap_and_media_level_connection() -> None:
    body = crlf("v=0\no=- 1 1 IN IP4 1.1.1.1\ns=-\nc=IN IP4 1.1.1.1\nt=0 0\nm=audio 5004 RTP/AVP 8 0\nc=IN IP4 2.2.2.2\n")
    offer = parse_sdp(body)
    assert offer.connection_ip == "2.2.2.2" and offer.rtpmap == {8: ("PCMA", 8000), 0: ("PCMU", 8000)}
    assert offer.ptime is None


@pytest.mark.parametrize(
    ("payloads", "rtpmaps", "codec", "pt", "te"),
    [
        ("0", "", "PCMU", 0, None),
        ("8", "a=rtpmap:8 PCMA/8000\n", "PCMA", 8, None),
        ("8 0 101", "a=rtpmap:101 telephone-event/8000\na=fmtp:101 0-16\n", "PCMU", 0, 101),
        ("18 8 96", "a=rtpmap:18 G729/8000\na=rtpmap:96 telephone-event/8000\n", "PCMA", 8, 96),
    ],
)
def test_answer_codec_choice(payloads: str, rtpmaps: str, codec: str, pt: int, te: int | None) -> None:
    body, chosen, te_pt = answer(
        parse_sdp(sdp_offer(payloads, rtpmaps)), local_ip="192.168.1.20", local_port=30000, session_id=42
    )
    assert (chosen, te_pt) == (codec, te)
    ans = parse_sdp(body)
    assert ans.connection_ip == "192.168.1.20" and ans.port == 30000 and ans.direction == "sendrecv"
    assert ans.payloads == [pt] + ([te] if te is not None else [])
    assert ans.rtpmap[pt] == (codec, 8000) and ans.ptime == 20
    assert b"o=enclave 42 42 IN IP4 192.168.1.20\r\n" in body
    if te is not None:
        assert ans.rtpmap[te] == ("telephone-event", 8000) and ans.fmtp[te] in ("0-16", "0-15")


def test_answer_prefers_ours_and_rejects_other_streams() -> None:
    offer = parse_sdp(crlf(FREESWITCH_SDP))
    body, codec, te = answer(offer, local_ip="198.51.100.7", local_port=40000, prefer=("PCMA", "PCMU"))
    assert (codec, te) == ("PCMA", 101)
    assert body.count(b"m=") == 2 and b"\r\nm=video 0 RTP/AVP 96\r\n" in body
    body2, codec2, _ = answer(parse_sdp(sdp_offer("8 0")), local_ip="::1", local_port=40000)
    assert codec2 == "PCMU" and b"c=IN IP6 ::1" in body2


def test_no_common_codec_is_488() -> None:
    offer = parse_sdp(sdp_offer("18 9 96", "a=rtpmap:96 opus/48000/2\n"))
    with pytest.raises(SdpError) as err:
        answer(offer, local_ip="1.2.3.4", local_port=4000)
    assert err.value.status == 488
    srtp = parse_sdp(sdp_offer("0").replace(b"RTP/AVP", b"RTP/SAVP"))
    with pytest.raises(SdpError) as err:
        answer(srtp, local_ip="1.2.3.4", local_port=4000)
    assert err.value.status == 488


@pytest.mark.parametrize(
    ("offered", "expected"),
    [("sendrecv", "sendrecv"), ("sendonly", "recvonly"), ("recvonly", "sendonly"), ("inactive", "inactive")],
)
def test_hold_resume_directions(offered: str, expected: str) -> None:
    offer = parse_sdp(sdp_offer("0", direction=f"a={offered}\n"))
    assert offer.direction == offered and offer.on_hold == (offered in ("sendonly", "inactive"))
    body, _, _ = answer(offer, local_ip="1.2.3.4", local_port=4000, session_id=7, session_version=8)
    assert parse_sdp(body).direction == expected and b"o=enclave 7 8 " in body


def test_reinvite_hold_and_old_style_hold() -> None:
    hold = parse_sdp(parse(REINVITE_HOLD).body)
    assert hold.direction == "sendonly" and hold.on_hold
    old = parse_sdp(sdp_offer("0", conn="0.0.0.0"))
    assert old.on_hold and parse_sdp(answer(old, local_ip="1.2.3.4", local_port=4000)[0]).direction == "recvonly"
    session_level = crlf("v=0\no=- 1 1 IN IP4 1.1.1.1\ns=-\nc=IN IP4 1.1.1.1\nt=0 0\na=inactive\nm=audio 5004 RTP/AVP 0\n")
    assert parse_sdp(session_level).direction == "inactive"


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"\xff\xfe",
        crlf("v=0\no=- 1 1 IN IP4 1.1.1.1\ns=-\nt=0 0\nm=audio 4000 RTP/AVP 0\n"),  # no c=
        crlf("v=0\nc=IN IP4 1.1.1.1\nm=video 4000 RTP/AVP 96\n"),  # no audio
        crlf("v=0\nc=IN IP4 1.1.1.1\nm=audio x RTP/AVP 0\n"),
        crlf("v=0\nc=IN IP4 1.1.1.1\nm=audio 4000 RTP/AVP abc\n"),
        crlf("v=0\nc=IN IP4 1.1.1.1\nm=audio 4000 RTP/AVP 0\na=rtpmap:0 PCMU\n"),
        crlf("v=0\nc=IN\nm=audio 4000 RTP/AVP 0\n"),
        crlf("hello world"),
    ],
)
def test_malformed_sdp(body: bytes) -> None:
    with pytest.raises(SdpError):
        parse_sdp(body)


# -- transactions --------------------------------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def drive(
    txn: InviteServerTransaction | NonInviteServerTransaction | TransactionTable, clock: Clock, until: float
) -> list[float]:
    """Step the fake clock timer by timer; returns the relative times at which something was resent."""
    start = clock.now
    sent: list[float] = []
    while (t := txn.next_timer()) is not None and t <= start + until:
        clock.now = t
        if txn.on_timer(t):
            sent.append(round(t - start, 6))
    return sent


def test_an_invite_never_answered_finally_is_dropped() -> None:
    clock = Clock()
    txn = InviteServerTransaction(parse(ASTERISK_INVITE), clock=clock)
    txn.send_response(response_to(txn.request, 180, to_tag="t"))
    assert txn.on_timer(clock.now + PROCEEDING_LIMIT_S - 1) == [] and txn.state == "proceeding"
    assert txn.on_timer(clock.now + PROCEEDING_LIMIT_S) == [] and txn.state == "terminated"


def test_invite_non_2xx_retransmit_schedule_and_ack() -> None:
    clock = Clock()
    invite = parse(ASTERISK_INVITE)
    txn = InviteServerTransaction(invite, clock=clock)
    # No RFC timer while proceeding, only the leak guard: an INVITE never answered finally is dropped.
    assert txn.state == "proceeding" and txn.next_timer() == pytest.approx(clock.now + PROCEEDING_LIMIT_S)
    assert txn.send_response(response_to(invite, 100)) and txn.state == "proceeding"
    assert txn.on_request(invite) == [response_to(invite, 100).to_bytes()]  # retransmitted INVITE: last 1xx
    busy = response_to(invite, 486, to_tag="t")
    assert txn.send_response(busy) == [busy.to_bytes()] and txn.state == "completed"
    sent = drive(txn, clock, 8)
    assert sent == [0.5, 1.5, 3.5, 7.5]
    assert [b - a for a, b in zip([0.0] + sent, sent, strict=False)] == [0.5, 1.0, 2.0, 4.0]
    assert drive(txn, clock, 4.5) == [11.5 - 7.5]  # capped at T2
    assert txn.on_request(invite) == [busy.to_bytes()]
    with pytest.raises(TransactionError):
        txn.send_response(response_to(invite, 200))
    assert txn.on_request(parse(ACK_2XX)) == [] and txn.state == "confirmed"
    assert txn.next_timer() == pytest.approx(clock.now + 5.0)  # Timer I = T4, no more retransmits
    assert txn.on_timer(clock.now + 1) == [] and txn.on_timer(clock.now + 5) == [] and txn.state == "terminated"
    assert not txn.timed_out


def test_invite_timer_h_without_ack() -> None:
    clock = Clock()
    invite = parse(ASTERISK_INVITE)
    txn = InviteServerTransaction(invite, clock=clock, t1=0.5, t2=4.0)
    txn.send_response(response_to(invite, 503, to_tag="t"))
    sent = drive(txn, clock, 100)
    assert sent == [0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5]
    assert txn.state == "terminated" and txn.timed_out and clock.now - 1000.0 == pytest.approx(32.0)  # 64*T1


def test_invite_2xx_retransmitted_until_ack_and_late_timer_coalesces() -> None:
    clock = Clock()
    invite = parse(ASTERISK_INVITE)
    txn = InviteServerTransaction(invite, clock=clock)
    ok = response_to(invite, 200, to_tag="a1b2c3d4e5f60718")
    txn.send_response(ok)
    assert txn.state == "accepted"
    assert drive(txn, clock, 4) == [0.5, 1.5, 3.5]
    assert len(txn.on_timer(clock.now + 20)) == 1  # a late loop resends once, not once per missed timer
    assert txn.on_ack() is True and txn.on_ack() is False
    assert txn.next_timer() == pytest.approx(1032.0)  # only Timer L remains
    assert txn.on_timer(1031.0) == [] and txn.on_timer(1032.0) == [] and txn.state == "terminated" and not txn.timed_out


def test_custom_t1_t2() -> None:
    clock = Clock()
    invite = parse(ASTERISK_INVITE)
    txn = InviteServerTransaction(invite, clock=clock, t1=0.1, t2=0.3)
    txn.send_response(response_to(invite, 404))
    assert drive(txn, clock, 1.2) == [0.1, 0.3, 0.6, 0.9, 1.2]


def test_non_invite_timer_j() -> None:
    clock = Clock()
    options = parse(OPTIONS)
    txn = NonInviteServerTransaction(options, clock=clock)
    assert txn.state == "trying" and txn.on_request(options) == []  # nothing to repeat yet
    ok = response_to(options, 200, to_tag="z")
    assert txn.send_response(ok) == [ok.to_bytes()] and txn.state == "completed"
    assert txn.on_request(options) == [ok.to_bytes()]
    assert txn.next_timer() == pytest.approx(1032.0)
    assert drive(txn, clock, 100) == [] and txn.state == "terminated"
    with pytest.raises(TransactionError):
        txn.send_response(ok)
    assert not txn.timed_out


def test_non_invite_unanswered_is_abandoned_after_64_t1() -> None:
    clock = Clock()
    txn = NonInviteServerTransaction(parse(BYE), clock=clock)
    assert txn.next_timer() == pytest.approx(1032.0)
    txn.send_response(response_to(parse(BYE), 100), now=1010.0)
    assert txn.state == "proceeding" and txn.on_timer(1031.9) == [] and txn.state == "proceeding"
    assert txn.on_timer(1032.0) == [] and txn.state == "terminated" and txn.timed_out


def test_table_absorbs_retransmissions_and_routes_acks() -> None:
    clock = Clock()
    ended: list[object] = []
    table = TransactionTable(clock=clock, on_terminated=ended.append)
    invite = parse(ASTERISK_INVITE)
    addr = ("10.0.0.5", 5060)

    first = table.on_request(invite, addr)
    assert first.deliver and isinstance(first.transaction, InviteServerTransaction) and len(table) == 1
    dup = table.on_request(parse(ASTERISK_INVITE), addr)
    assert dup.transaction is first.transaction and not dup.deliver and dup.to_send == []
    trying = response_to(invite, 100)
    first.transaction.send_response(trying)
    assert table.on_request(invite, addr).to_send == [trying.to_bytes()]

    cancel = parse(CANCEL)
    c = table.on_request(cancel, addr)
    assert c.deliver and isinstance(c.transaction, NonInviteServerTransaction) and len(table) == 2
    assert table.find_invite(cancel) is first.transaction

    ok = response_to(invite, 200, to_tag="a1b2c3d4e5f60718")
    first.transaction.send_response(ok)
    assert table.on_request(invite, addr).to_send == [ok.to_bytes()]
    resent = table.on_timer(clock.now + 0.5)
    assert resent == [(addr, ok.to_bytes())]

    ack = table.on_request(parse(ACK_2XX), addr)  # new branch: matched by dialog
    assert ack.transaction is first.transaction and ack.deliver
    assert not table.on_request(parse(ACK_2XX), addr).deliver  # duplicate ACK absorbed
    assert table.on_request(parse(ACK_2XX.replace(b"28463 ACK", b"1 ACK")), addr).deliver  # stray: core decides

    # A same-branch request from another sent-by is another transaction.
    other = parse(OPTIONS.replace(b"10.0.0.5:5060;rport", b"10.0.0.6:5060;rport"))
    assert table.on_request(parse(OPTIONS), addr).deliver and table.on_request(other, addr).deliver
    assert len(table) == 4
    for req in (cancel, parse(OPTIONS), other):
        txn = table.get(req)
        assert txn is not None and txn.send_response(response_to(req, 200, to_tag="x"))

    drive(table, clock, 100)
    assert len(table) == 0 and first.transaction in ended and len(ended) == 4


def test_table_non_2xx_ack_absorbed_and_flood_guard() -> None:
    clock = Clock()
    table = TransactionTable(clock=clock, max_transactions=1)
    invite = parse(ASTERISK_INVITE)
    txn = table.on_request(invite).transaction
    assert isinstance(txn, InviteServerTransaction)
    txn.send_response(response_to(invite, 486, to_tag="t"))
    ack = parse(
        ACK_2XX.replace(b"z9hG4bKPj3e2d1c0b-a987-4654-3210-fedcba987654", b"z9hG4bKPj7c1a9f0e-5b4d-4a3e-9a1c-2f6c3d8e1b70")
    )
    result = table.on_request(ack)
    assert result.transaction is txn and not result.deliver and txn.state == "confirmed"
    busy = table.on_request(parse(OPTIONS))
    assert busy.transaction is None and not busy.deliver and parse(busy.to_send[0]).status == 503


# -- fuzz ----------------------------------------------------------------------------------------------------

GARBAGE = [
    b"\x00",
    b"\xff\xfe",
    b"\r\n",
    b"\n",
    b" ",
    b"\t",
    b":",
    b";",
    b",",
    b"<",
    b">",
    b'"',
    b"\\",
    b"=",
    b"@",
    b"[",
    b"]",
    b"SIP/2.0",
    b"Content-Length: 99999\r\n",
    b"Via: \r\n",
    b"\r\n\r\n",
    b"\xc3\x28",
    b"z9hG4bK",
]


def mutate(raw: bytes, rng: random.Random) -> bytes:
    data = bytearray(raw)
    for _ in range(rng.randint(1, 4)):
        op = rng.randrange(6)
        pos = rng.randrange(len(data) + 1)
        if op == 0 and data:
            data[min(pos, len(data) - 1)] = rng.randrange(256)
        elif op == 1:
            del data[pos:]
        elif op == 2:
            data[pos:pos] = rng.choice(GARBAGE) * rng.randint(1, 3)
        elif op == 3:
            data[pos:pos] = b"X-Huge: " + b"A" * rng.choice([100, 5000, 40000]) + b"\r\n"
        elif op == 4:
            end = min(len(data), pos + rng.randint(1, 40))
            del data[pos:end]
        else:
            data[pos:pos] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 16)))
        if not data:
            break
    return bytes(data)


def test_fuzz_only_sip_parse_error() -> None:
    rng = random.Random(3261)
    ok = errors = 0
    elapsed = 0.0
    for i in range(2000):
        raw = mutate(ALL_MESSAGES[i % len(ALL_MESSAGES)], rng)
        t0 = time.perf_counter()
        try:
            msg = sipmsg._parse(raw, 65535)  # no safety net: any other exception is a parser bug
        except SipParseError as exc:
            elapsed += time.perf_counter() - t0
            assert 400 <= exc.status < 600
            errors += 1
            continue
        elapsed += time.perf_counter() - t0
        ok += 1
        # Whatever parses must serialise and re-parse to the same message, and its accessors must not crash.
        again = parse(msg.to_bytes())
        assert (again.method, again.uri, again.status, again.body) == (msg.method, msg.uri, msg.status, msg.body)
        assert parse(again.to_bytes()) == again
        _ = (msg.call_id, msg.cseq, msg.via_branch, msg.from_tag, msg.to_tag, msg.is_request)
        if msg.body and msg.header("Content-Type") == "application/sdp":
            try:
                parse_sdp(msg.body)
            except SdpError:
                pass
    print(f"\nSIP fuzz: 2000 mutations, {ok} parsed, {errors} rejected, {elapsed / 2000 * 1e6:.1f} µs/parse on average")
    assert ok > 50 and errors > 500


def test_parse_safety_net_converts_unexpected_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(*_: object) -> None:
        raise IndexError("bug")

    monkeypatch.setattr(sipmsg, "_parse_headers", boom)
    with pytest.raises(SipParseError) as err:
        parse(OPTIONS)
    assert err.value.status == 400


def test_message_dataclass_builds_requests() -> None:
    req = SipMessage(method="OPTIONS", uri="sip:10.0.0.5")
    for name, value in [
        ("Via", f"SIP/2.0/UDP 192.168.1.20:5060;branch={new_branch()};rport"),
        ("Max-Forwards", "70"),
        ("From", f"<sip:enclave@192.168.1.20>;tag={new_tag()}"),
        ("To", "<sip:10.0.0.5>"),
        ("Call-ID", new_tag()),
        ("CSeq", "1 OPTIONS"),
    ]:
        req.add_header(name, value)
    again = parse(req.to_bytes())
    assert again.headers[-1] == ("Content-Length", "0") and again.method == "OPTIONS"
