"""SDP offer/answer for one G.711 audio stream (RFC 4566, RFC 3264), as a trunk UAS needs it.

We only speak RTP/AVP with PCMU or PCMA at 8 kHz plus RFC 4733 telephone-event, so the answer picks one codec,
mirrors the offer's direction (hold/resume re-INVITEs) and rejects every other m-line with port 0, keeping the
m-line count and order as RFC 3264 §6 requires.
"""

from __future__ import annotations

import ipaddress
import secrets
from dataclasses import dataclass, field

__all__ = ["STATIC_PAYLOADS", "AudioOffer", "SdpError", "answer", "parse_sdp"]

# RFC 3551 static payload types a peer may use without an a=rtpmap line.
STATIC_PAYLOADS: dict[int, tuple[str, int]] = {
    0: ("PCMU", 8000),
    3: ("GSM", 8000),
    4: ("G723", 8000),
    8: ("PCMA", 8000),
    9: ("G722", 8000),
    18: ("G729", 8000),
}
DIRECTIONS = ("sendrecv", "sendonly", "recvonly", "inactive")
_MIRROR = {"sendrecv": "sendrecv", "sendonly": "recvonly", "recvonly": "sendonly", "inactive": "inactive"}
_RTP_PROTOS = ("RTP/AVP", "RTP/AVPF")
SUPPORTED_CODECS = ("PCMU", "PCMA")


class SdpError(ValueError):
    """Unusable SDP; ``status`` is the SIP response: 400 for malformed, 488 for nothing we can accept."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class AudioOffer:
    """The offered audio stream (first m=audio with a non-zero port, else the first m=audio)."""

    connection_ip: str
    port: int
    payloads: list[int]
    rtpmap: dict[int, tuple[str, int]]
    fmtp: dict[int, str]
    ptime: int | None
    direction: str
    proto: str = "RTP/AVP"
    # Every m= line of the offer as (media, proto, first format) and which one is the audio stream: the answer
    # must carry the same m-lines in the same order.
    media: list[tuple[str, str, str]] = field(default_factory=list)
    audio_index: int = 0

    @property
    def on_hold(self) -> bool:
        """Offerer does not want to receive: a=sendonly/inactive, or the RFC 2543 c=0.0.0.0 style."""
        return self.direction in ("sendonly", "inactive") or _unspecified(self.connection_ip)

    def codec(self, pt: int) -> tuple[str, int] | None:
        return self.rtpmap.get(pt)

    @property
    def telephone_event(self) -> int | None:
        """Payload type of telephone-event/8000 (DTMF), if offered."""
        for pt in self.payloads:
            name, clock = self.rtpmap.get(pt, ("", 0))
            if name.lower() == "telephone-event" and clock == 8000:
                return pt
        return None


def _unspecified(ip: str) -> bool:
    try:
        return ipaddress.ip_address(ip).is_unspecified
    except ValueError:
        return False


def _connection(value: str) -> str:
    parts = value.split()
    if len(parts) != 3 or parts[0] != "IN" or parts[1] not in ("IP4", "IP6"):
        raise SdpError(f"bad c= line: {value!r}")
    address = parts[2].split("/")[0]  # multicast TTL/count suffix
    # An IP literal of the family named: a host name would be resolved on every packet sent (blocking the
    # event loop that paces every call's audio), and could point the media anywhere DNS says.
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        raise SdpError(f"c= must give an IP address, not {address[:64]!r}", 488) from None
    if (ip.version == 4) != (parts[1] == "IP4"):
        raise SdpError(f"bad c= line: {value!r} (the address is not {parts[1]})", 488)
    return address


def parse_sdp(body: bytes) -> AudioOffer:
    """Parse an offer (or answer) down to its audio stream; SdpError on malformed SDP or no audio."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise SdpError("SDP is not UTF-8") from None
    lines = [line for line in text.replace("\r\n", "\n").split("\n") if line.strip()]
    if not lines or lines[0].strip() != "v=0":
        raise SdpError("SDP must start with v=0")

    session_c: str | None = None
    session_dir = "sendrecv"
    # Per-media: [media, port, proto, fmts, c, attrs]
    sections: list[dict] = []
    for line in lines:
        kind, eq, value = line.partition("=")
        if not eq or len(kind) != 1 or not kind.isalpha():
            raise SdpError(f"bad SDP line: {line[:60]!r}")
        value = value.strip()
        if kind == "m":
            parts = value.split()
            if len(parts) < 4:
                raise SdpError(f"bad m= line: {value!r}")
            port_text = parts[1].split("/")[0]
            if not port_text.isdigit() or int(port_text) > 65535:
                raise SdpError(f"bad m= port: {value!r}")
            sections.append(
                {"media": parts[0], "port": int(port_text), "proto": parts[2], "fmts": parts[3:], "c": None, "attrs": []}
            )
        elif kind == "c":
            if sections:
                sections[-1]["c"] = _connection(value)
            else:
                session_c = _connection(value)
        elif kind == "a":
            if sections:
                sections[-1]["attrs"].append(value)
            elif value in DIRECTIONS:
                session_dir = value

    audio = [i for i, s in enumerate(sections) if s["media"] == "audio"]
    if not audio:
        raise SdpError("no m=audio in SDP", 488)
    index = next((i for i in audio if sections[i]["port"] > 0), audio[0])
    sec = sections[index]
    connection = sec["c"] or session_c
    if connection is None:
        raise SdpError("no c= line for the audio stream")

    payloads: list[int] = []
    if sec["proto"] in _RTP_PROTOS:
        for fmt in sec["fmts"]:
            if not fmt.isdigit() or int(fmt) > 127:
                raise SdpError(f"bad RTP payload type {fmt!r}")
            payloads.append(int(fmt))

    rtpmap: dict[int, tuple[str, int]] = {}
    fmtp: dict[int, str] = {}
    ptime: int | None = None
    direction = session_dir
    for attr in sec["attrs"]:
        name, _, val = attr.partition(":")
        if name == "rtpmap":
            pt_text, _, enc = val.partition(" ")
            pieces = enc.strip().split("/")
            if not pt_text.isdigit() or len(pieces) < 2 or not pieces[1].isdigit() or not pieces[0]:
                raise SdpError(f"bad rtpmap: {attr!r}")
            rtpmap[int(pt_text)] = (pieces[0], int(pieces[1]))
        elif name == "fmtp":
            pt_text, _, params = val.partition(" ")
            if pt_text.isdigit():
                fmtp[int(pt_text)] = params.strip()
        elif name == "ptime":
            try:
                ptime = int(float(val))
            except ValueError:
                ptime = None  # cosmetic; a bad ptime is not worth failing the call
            if ptime is not None and not 0 < ptime <= 1000:
                ptime = None
        elif name in DIRECTIONS:
            direction = name
    for pt in payloads:
        if pt not in rtpmap and pt in STATIC_PAYLOADS:
            rtpmap[pt] = STATIC_PAYLOADS[pt]

    return AudioOffer(
        connection_ip=connection,
        port=sec["port"],
        payloads=payloads,
        rtpmap=rtpmap,
        fmtp=fmtp,
        ptime=ptime,
        direction=direction,
        proto=sec["proto"],
        media=[(s["media"], s["proto"], s["fmts"][0]) for s in sections],
        audio_index=index,
    )


def answer(
    offer: AudioOffer,
    *,
    local_ip: str,
    local_port: int,
    prefer: tuple[str, ...] = ("PCMU", "PCMA"),
    session_id: int | None = None,
    session_version: int | None = None,
    ptime: int = 20,
) -> tuple[bytes, str, int | None]:
    """Build the answer: (SDP body, chosen codec, telephone-event payload type or None).

    ``session_id`` should stay fixed for a dialog and ``session_version`` grow by one per re-INVITE answer
    (RFC 3264 §8); the version defaults to the id. Raises SdpError(status=488) when no codec is acceptable.
    """
    if offer.proto not in _RTP_PROTOS:
        raise SdpError(f"unsupported media transport {offer.proto}", 488)
    if offer.port == 0:
        raise SdpError("audio stream disabled in offer (port 0)", 488)
    chosen: tuple[int, str] | None = None
    for want in prefer:
        if want.upper() not in SUPPORTED_CODECS:
            raise ValueError(f"cannot encode {want}; supported: {SUPPORTED_CODECS}")
        for pt in offer.payloads:
            name, clock = offer.rtpmap.get(pt, ("", 0))
            if name.upper() == want.upper() and clock == 8000:
                chosen = (pt, want.upper())
                break
        if chosen:
            break
    if chosen is None:
        raise SdpError("no common codec", 488)
    pt, codec = chosen
    te = offer.telephone_event

    sid = session_id if session_id is not None else secrets.randbelow(2**62)
    version = session_version if session_version is not None else sid
    direction = _MIRROR.get(offer.direction, "sendrecv")
    if direction == "sendrecv" and _unspecified(offer.connection_ip):
        direction = "recvonly"  # c=0.0.0.0 hold: nowhere to send to, but we still listen

    fmts = [pt] + ([te] if te is not None else [])
    audio = [
        f"m=audio {local_port} {offer.proto} {' '.join(map(str, fmts))}",
        f"a=rtpmap:{pt} {codec}/8000",
    ]
    if te is not None:
        audio.append(f"a=rtpmap:{te} telephone-event/8000")
        audio.append(f"a=fmtp:{te} {offer.fmtp.get(te) or '0-15'}")
    audio.append(f"a=ptime:{offer.ptime or ptime}")
    audio.append(f"a={direction}")

    lines = _session_lines(local_ip, sid, version)
    media = offer.media or [("audio", offer.proto, str(pt))]
    for i, (kind, proto, first_fmt) in enumerate(media):
        if i == offer.audio_index:
            lines.extend(audio)
        else:
            lines.append(f"m={kind} 0 {proto} {first_fmt}")  # rejected stream (RFC 3264 §6)
    return ("\r\n".join(lines) + "\r\n").encode("utf-8"), codec, te


def offer(*, local_ip: str, local_port: int, session_id: int, session_version: int, event_pt: int = 101,
          ptime: int = 20) -> bytes:
    """Our offer, for an INVITE that came without one (a delayed offer, RFC 3261 13.2.1: the caller's answer
    comes in the ACK). PCMU only, plus telephone-event: the call's session is made for its codec before the
    answer is known, and every SIP peer takes PCMU."""
    lines = [
        *_session_lines(local_ip, session_id, session_version),
        f"m=audio {local_port} RTP/AVP 0 {event_pt}",
        "a=rtpmap:0 PCMU/8000",
        f"a=rtpmap:{event_pt} telephone-event/8000",
        f"a=fmtp:{event_pt} 0-15",
        f"a=ptime:{ptime}",
        "a=sendrecv",
    ]
    return ("\r\n".join(lines) + "\r\n").encode("utf-8")


def _session_lines(local_ip: str, session_id: int, version: int) -> list[str]:
    """The session part of our SDP, offer or answer: origin, name, connection, timing."""
    family = "IP6" if ":" in local_ip else "IP4"
    return ["v=0", f"o=enclave {session_id} {version} IN {family} {local_ip}", "s=enclave", f"c=IN {family} {local_ip}",
            "t=0 0"]
