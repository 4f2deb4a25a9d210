"""The SIP user agent against real peers: sipp places a call with G.711 RTP from a pcap, presses a key
(RFC 4733) and hangs up; sipp scenarios (tests/integration/sipp/) cancel a ringing call, hold and resume, press 0
and receive the REFER to the human queue (or refuse it and get a goodbye and BYE); a Python UDP socket sends
OPTIONS, a request from a peer outside the allow-list, malformed messages, digest challenges and a flood."""

from __future__ import annotations

import concurrent.futures
import contextlib
import json
import os
import random
import shutil
import socket
import subprocess
import threading
import time
import wave
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import psycopg
import pytest

from gateway.sip.auth import client_authorization
from gateway.store import api_keys
from tests.conftest import espeak_wav
from tests.integration.baresip_peer import Baresip
from tests.integration.conftest import REPO, Appliance, GatewayProcess, free_port, start_gateway

pytestmark = pytest.mark.timeout(600)
CANNED = "Hello, I would like to check my account balance."
SCENARIOS = Path(__file__).parent / "sipp"
BANK_DID = "2000"                     # routed to the example bank's tenant (its pack hands off to people)
QUEUE = "sip:agents@127.0.0.1:5999"


@pytest.fixture(scope="module")
def sip_gw(appliance: Appliance) -> Iterator[tuple[GatewayProcess, int]]:
    if not shutil.which("sipp"):
        pytest.skip("sipp (Debian sip-tester) is needed")
    with psycopg.connect(appliance.database_url, autocommit=True) as conn:
        api_keys.ensure_tenant(conn, "demo-bank", "Northbank (example pack)")
    port = free_port()
    gw = start_gateway(appliance, "sip", sip_port=port, sip_tenant="dev", voice_silence_reprompt_s=120,
                       sip_routes={BANK_DID: "demo-bank"}, packs=[str(REPO / "packs" / "retail-bank")],
                       bank_url=appliance.bank_url, sip_transfer_uri=QUEUE, sip_ring_ms=300, sip_rate_per_s=0,   # (the fuzz is a flood)
                       voice_max_output_tokens=12)
    yield gw, port
    gw.stop()


def sipp(scenario: Path | str, port: int, cwd: Path, *, service: str = "enclave", timeout_s: int = 150,
         gw: GatewayProcess | None = None) -> str:
    """Run one sipp call (a built-in scenario name or an XML file); fail with sipp's and the gateway's logs."""
    pick = ["-sf", str(scenario)] if isinstance(scenario, Path) else ["-sn", scenario]
    run = subprocess.run(["sipp", *pick, f"127.0.0.1:{port}", "-s", service, "-i", "127.0.0.1",
                          "-p", str(free_port()), "-m", "1", "-l", "1", "-timeout", f"{timeout_s}s", "-timeout_error",
                          "-nostdin", "-trace_err", "-trace_logs"], cwd=cwd, capture_output=True, text=True,
                         timeout=timeout_s + 30)
    logs = "\n".join(p.read_text(errors="replace")[-3000:] for p in cwd.glob("*_logs.log"))
    errors = "\n".join(p.read_text(errors="replace")[-3000:] for p in cwd.glob("*errors.log"))
    assert run.returncode == 0, (f"sipp failed ({run.returncode}):\n{run.stdout[-2000:]}\n{errors}\n"
                                 f"{gw.log()[-4000:] if gw else ''}")
    return logs


def sip_turns(appliance: Appliance, since: float, until_role: str = "assistant", timeout_s: float = 30) -> list[tuple]:
    with psycopg.connect(appliance.database_url, autocommit=True) as conn:
        deadline = time.monotonic() + timeout_s
        rows: list[tuple] = []
        while time.monotonic() < deadline and not any(r[0] == until_role for r in rows):
            rows = conn.execute(
                "SELECT t.role, t.content, t.status, t.session_id FROM turns t JOIN sessions s ON s.id = t.session_id "
                "WHERE s.channel = 'sip' AND s.created_at >= to_timestamp(%s) ORDER BY t.seq, t.position",
                (since - 1,)).fetchall()
            time.sleep(0.5)
    return rows


def udp_request(port: int, data: bytes, source: str = "127.0.0.1", timeout_s: float = 2.0, tries: int = 3) -> bytes | None:
    """Send and wait for the answer, retransmitting like a SIP peer does over UDP (the same request: the
    transaction layer answers a retransmission with the same response)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((source, 0))
        s.settimeout(timeout_s)
        for _ in range(tries):
            s.sendto(data, ("127.0.0.1", port))
            try:
                return s.recv(65535)
            except TimeoutError:
                continue
        return None


def options(port: int, source: str = "127.0.0.1", call_id: str = "opt-1") -> bytes:
    return (f"OPTIONS sip:enclave@127.0.0.1:{port} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP {source}:5099;branch=z9hG4bK{random.getrandbits(40):x}\r\n"
            f"From: <sip:pbx@{source}>;tag=a1\r\nTo: <sip:enclave@127.0.0.1>\r\nCall-ID: {call_id}\r\n"
            "CSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n").encode()


def test_options_is_answered_and_a_stranger_gets_403(sip_gw) -> None:
    _gw, port = sip_gw
    ok = udp_request(port, options(port))
    assert ok is not None and ok.startswith(b"SIP/2.0 200")
    stranger = udp_request(port, options(port, source="127.0.0.2", call_id="opt-2"), source="127.0.0.2")
    assert stranger is not None and stranger.startswith(b"SIP/2.0 403")


def test_malformed_and_fuzzed_messages_do_not_take_it_down(sip_gw, tmp_path: Path) -> None:
    gw, port = sip_gw
    valid = options(port)
    assert udp_request(port, b"this is not sip at all\r\n\r\n", timeout_s=0.5, tries=1) is None   # dropped
    bad = udp_request(port, valid.replace(b"Content-Length: 0", b"Content-Length: 50"))   # a body that is not there
    assert bad is not None and bad.startswith(b"SIP/2.0 400")
    # A real call goes on while the listener is fuzzed: it must not notice.
    os.symlink("/usr/share/sip-tester", tmp_path / "pcap")
    answered_before = gw.log().count('"call answered"')
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        call = pool.submit(sipp, "uac_pcap", port, tmp_path, gw=gw, timeout_s=90)
        deadline = time.monotonic() + 60      # fuzz the answered call, not the time before it (a slow box)
        while gw.log().count('"call answered"') == answered_before and not call.done():
            assert time.monotonic() < deadline, "the call was not answered"
            time.sleep(0.1)
        rng = random.Random(7)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            n = 0
            while n < 600 or not call.done():   # at least 600 datagrams, and for as long as the call lasts
                data = bytearray(valid if n % 3 else invite(port, f"fuzz-{n}", 1))
                for _ in range(rng.randint(1, 8)):
                    data[rng.randrange(len(data))] = rng.randrange(256)
                s.sendto(bytes(data[:rng.randint(1, len(data))]), ("127.0.0.1", port))
                time.sleep(0.002)
                n += 1
        call.result()
    ok = udp_request(port, options(port, call_id="after-fuzz"))
    assert ok is not None and ok.startswith(b"SIP/2.0 200")
    assert "SIP handler failed" not in gw.log()


def test_sipp_places_an_answered_call_with_audio_and_hangs_up(appliance: Appliance, sip_gw, tmp_path: Path) -> None:
    gw, port = sip_gw
    os.symlink("/usr/share/sip-tester", tmp_path / "pcap")
    started = time.time()
    sipp("uac_pcap", port, tmp_path, gw=gw, timeout_s=90)
    rows = sip_turns(appliance, started)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not any(r[0] == "user" and r[1] == "1" for r in rows):
        rows = sip_turns(appliance, started)
    users = [r[1] for r in rows if r[0] == "user"]
    assert users and users[0] == CANNED, (rows, gw.log()[-3000:])
    assert any(r[0] == "assistant" for r in rows)
    # The scenario presses '1' (RFC 4733) before hanging up: keypad input is a turn of its own.
    assert "1" in users, (rows, gw.log()[-3000:])


def test_a_delayed_offer_gets_our_offer_and_the_ack_sets_up_the_media(appliance: Appliance, sip_gw,
                                                                       tmp_path: Path) -> None:
    """An INVITE without SDP (CUCM's default) got a 400: now the 200 carries our offer, the ACK the answer,
    and a key press sent to the answered address reaches the dialogue."""
    gw, port = sip_gw
    os.symlink("/usr/share/sip-tester", tmp_path / "pcap")
    started = time.time()
    sipp(SCENARIOS / "delayed_offer.xml", port, tmp_path, gw=gw, timeout_s=90)
    rows = sip_turns(appliance, started)
    assert "1" in [r[1] for r in rows if r[0] == "user"], (rows, gw.log()[-3000:])
    assert '"media answered in the ACK"' in gw.log()


def test_a_call_cancelled_while_ringing_gets_487_and_leaves_nothing(appliance: Appliance, sip_gw, tmp_path: Path) -> None:
    gw, port = sip_gw
    since, lines_before = time.time(), len(gw.log().splitlines())
    sipp(SCENARIOS / "cancel.xml", port, tmp_path, gw=gw)   # 200 to CANCEL, 487 to INVITE, then 481 to a BYE
    ended = [json.loads(line) for line in gw.log().splitlines()[lines_before:]
             if line.startswith("{") and '"call ended"' in line]
    assert [e["reason"] for e in ended] == ["cancelled"], ended             # this call, ended as cancelled
    with psycopg.connect(appliance.database_url, autocommit=True) as conn:   # and nothing was set up for it
        assert conn.execute("SELECT count(*) FROM sessions WHERE channel = 'sip' AND created_at >= to_timestamp(%s)",
                            (since,)).fetchone()[0] == 0


def transfer_scenario(tmp_path: Path, accept: bool) -> Path:
    xml = (SCENARIOS / "transfer.xml").read_text()
    xml = xml.replace("__REFER_STATUS__", "202 Accepted" if accept else "603 Declined")
    xml = xml.replace("__NOTIFY__", (SCENARIOS / "notify.xml").read_text() if accept else "")
    path = tmp_path / "transfer.xml"
    path.write_text(xml)
    return path


def handoff_of(appliance: Appliance, since: float) -> tuple[str, str, str]:
    with psycopg.connect(appliance.database_url, autocommit=True) as conn:
        row = conn.execute("SELECT h.id, h.reason, s.channel FROM handoffs h JOIN sessions s ON s.id = h.session_id "
                           "WHERE h.created_at >= to_timestamp(%s) ORDER BY h.created_at DESC LIMIT 1",
                           (since - 1,)).fetchone()
    assert row is not None, "no hand-off was recorded"
    return str(row[0]), row[1], row[2]


def test_zero_hands_the_caller_to_the_queue_by_refer_with_the_handoff_id(appliance: Appliance, sip_gw,
                                                                         tmp_path: Path) -> None:
    gw, port = sip_gw
    started = time.time()
    logs = sipp(transfer_scenario(tmp_path, accept=True), port, tmp_path, service=BANK_DID, gw=gw)
    handoff_id, reason, channel = handoff_of(appliance, started)
    assert (reason, channel) == ("requested", "sip")
    assert "hold answered a=recvonly" in logs and "resume answered a=sendrecv" in logs, logs
    # The REFER names the queue and carries the id twice: as a header, and inside Refer-To for the new INVITE.
    assert f"refer handoff= {handoff_id}" in logs or f"refer handoff={handoff_id}" in logs, logs
    assert QUEUE.removeprefix("sip:") in logs and f"X-Enclave-Handoff={handoff_id}" in logs, logs
    assert "transferred" in gw.log()


def test_a_refused_transfer_ends_with_a_goodbye_and_our_bye(appliance: Appliance, sip_gw, tmp_path: Path) -> None:
    gw, port = sip_gw
    started = time.time()
    sipp(transfer_scenario(tmp_path, accept=False), port, tmp_path, service=BANK_DID, gw=gw)   # 603, then BYE
    assert handoff_of(appliance, started)[1] == "requested"
    assert "handed_off" in gw.log()


def invite(port: int, call_id: str, cseq: int, authorization: str | None = None) -> bytes:
    sdp = ("v=0\r\no=pbx 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
           "m=audio 40000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n")
    return (f"INVITE sip:enclave@127.0.0.1:{port} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP 127.0.0.1:5099;branch=z9hG4bK{random.getrandbits(40):x}\r\n"
            f"From: <sip:pbx@127.0.0.1>;tag=p1\r\nTo: <sip:enclave@127.0.0.1>\r\nCall-ID: {call_id}\r\n"
            f"CSeq: {cseq} INVITE\r\nContact: <sip:pbx@127.0.0.1:5099>\r\nMax-Forwards: 70\r\n"
            + (f"Authorization: {authorization}\r\n" if authorization else "")
            + f"Content-Type: application/sdp\r\nContent-Length: {len(sdp)}\r\n\r\n{sdp}").encode()


def test_digest_auth_and_rate_limiting(appliance: Appliance, tmp_path: Path) -> None:
    port = free_port()
    gw = start_gateway(appliance, "sip-auth", sip_port=port, sip_tenant="dev", sip_auth_users={"pbx": "s3cret"},
                       sip_rate_per_s=5, voice_silence_reprompt_s=120)
    uri = f"sip:enclave@127.0.0.1:{port}"
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind(("127.0.0.1", 0))
            s.settimeout(5)

            def ask(data: bytes, until: bytes) -> bytes:
                s.sendto(data, ("127.0.0.1", port))
                while True:
                    answer = s.recv(65535)
                    if answer.split(b"\r\n", 1)[0].split(b" ")[1] == until or not answer.startswith(b"SIP/2.0 1"):
                        return answer

            challenge = ask(invite(port, "auth-1", 1), b"401")
            assert challenge.startswith(b"SIP/2.0 401"), challenge
            header = next(line for line in challenge.decode().split("\r\n") if line.startswith("WWW-Authenticate:"))
            nonce = header.split('nonce="')[1].split('"')[0]
            wrong = client_authorization("pbx", "guess", "enclave", nonce, "INVITE", uri)
            assert ask(invite(port, "auth-1", 2, wrong), b"401").startswith(b"SIP/2.0 401")
            right = client_authorization("pbx", "s3cret", "enclave", nonce, "INVITE", uri)
            ok = ask(invite(port, "auth-1", 3, right), b"200")
            assert ok.startswith(b"SIP/2.0 200"), ok
            to = next(line for line in ok.decode().split("\r\n") if line.startswith("To:"))
            bye = (f"BYE {uri} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5099;branch=z9hG4bKbye{random.getrandbits(30):x}\r\n"
                   f"From: <sip:pbx@127.0.0.1>;tag=p1\r\n{to}\r\nCall-ID: auth-1\r\nCSeq: 4 BYE\r\n"
                   "Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n").encode()
            assert ask(bye, b"200").startswith(b"SIP/2.0 200")
            time.sleep(1.5)     # the bucket refills
            # A flood from one address: past the burst (4 × 5/s) it is dropped unanswered, then served again.
            for n in range(100):
                s.sendto(options(port, call_id=f"flood-{n}"), ("127.0.0.1", port))
            answered = 0
            s.settimeout(1.0)
            with contextlib.suppress(TimeoutError):
                while True:
                    s.recv(65535)
                    answered += 1
            assert 15 <= answered <= 30, answered
        time.sleep(1.5)
        assert (udp_request(port, options(port, call_id="after-flood")) or b"").startswith(b"SIP/2.0 200")
        assert "SIP digest auth failed" in gw.log()
    finally:
        gw.stop()


def test_baresip_calls_speaks_hears_an_answer_and_hangs_up(appliance: Appliance, sip_gw, tmp_path: Path) -> None:
    if not shutil.which("baresip"):
        pytest.skip("baresip is needed")
    gw, port = sip_gw
    voice = espeak_wav(CANNED, tmp_path / "caller.wav", rate=8000, pad_s=1.0)
    with wave.open(str(voice)) as w:
        params, pcm = w.getparams(), w.readframes(w.getnframes())
    with wave.open(str(voice), "wb") as w:    # baresip ends the call when its file ends: a long silence after
        w.setparams(params)
        w.writeframes(pcm + b"\0\0" * 8000 * 60)
    started = time.time()
    peer = Baresip(tmp_path / "baresip", voice, free_port(), free_port())
    try:
        peer.command("dial", f"sip:enclave@127.0.0.1:{port}")
        peer.wait_for("CALL_ESTABLISHED", 30)
        rows = sip_turns(appliance, started, timeout_s=90)    # transcribed, answered, stored
        time.sleep(1)                                         # (the turn is stored once it has been played)
        peer.command("hangup")
        peer.wait_for("CALL_CLOSED", 15)
    finally:
        peer.close()
    users = [r[1] for r in rows if r[0] == "user"]
    assert users and users[0] == CANNED, (rows, gw.log()[-3000:])
    assert any(r[0] == "assistant" for r in rows)
    heard = [p for p in (tmp_path / "baresip" / "recordings").glob("*.wav") if "dec" in p.name]
    assert heard, list((tmp_path / "baresip" / "recordings").iterdir())
    with wave.open(str(heard[0])) as w:
        pcm = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
    assert np.abs(pcm.astype(np.int32)).max() > 1000, "what baresip heard is silent"
    assert "caller_bye" in gw.log()


def read_sip(stream, buffer: bytearray) -> bytes:
    """One SIP message off a stream (headers, then Content-Length bytes of body)."""
    while b"\r\n\r\n" not in buffer:
        chunk = stream.recv(65535)
        assert chunk, "the TLS connection closed"
        buffer += chunk
    head, _, _rest = bytes(buffer).partition(b"\r\n\r\n")
    length = next((int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                   if line.lower().startswith((b"content-length:", b"l:"))), 0)
    while len(buffer) < len(head) + 4 + length:
        buffer += stream.recv(65535)
    message = bytes(buffer[:len(head) + 4 + length])
    del buffer[:len(message)]
    return message


def send_speech_rtp(sock: socket.socket, local: tuple, answer_200: bytes, tmp_path: Path) -> None:
    """Speak CANNED into the call: PCMU RTP, 20 ms a packet, to the port the 200 OK's SDP names."""
    import struct

    from gateway.voice.codec import ulaw_encode

    port = int(next(line for line in answer_200.decode().split("\r\n") if line.startswith("m=audio")).split()[1])
    voice = espeak_wav(CANNED, tmp_path / "tls-caller.wav", rate=8000, pad_s=0.5)
    with wave.open(str(voice)) as w:
        pcm = w.readframes(w.getnframes()) + b"\0\0" * 8000 * 3
    payload = ulaw_encode(pcm)
    started = time.monotonic()
    for n, at in enumerate(range(0, len(payload) - 159, 160)):
        header = struct.pack("!BBHII", 0x80, 0x80 if n == 0 else 0, n, n * 160, 0x5EED)
        sock.sendto(header + payload[at:at + 160], ("127.0.0.1", port))
        time.sleep(max(0.0, started + (n + 1) * 0.02 - time.monotonic()))


def test_a_call_over_sip_tls_is_answered_and_heard(appliance: Appliance, tmp_path: Path) -> None:
    """SIP over TLS (ENCLAVE_SIP_TLS_PORT, certificate from files) through the real gateway: INVITE, 200 with a
    TLS Contact, ACK, the greeting arrives as RTP, BYE — all signalling on one verified TLS connection."""
    import ssl

    from tests.tls_certs import make_pki

    pki = make_pki(tmp_path / "pki")
    udp_port, tls_port = free_port(), free_port()
    gw = start_gateway(appliance, "sip-tls", sip_port=udp_port, sip_tls_port=tls_port, sip_tenant="dev",
                       sip_tls_cert_file=str(pki.cert_file), sip_tls_key_file=str(pki.key_file),
                       voice_silence_reprompt_s=120)
    context = ssl.create_default_context(cafile=str(pki.ca_file))
    try:
        with socket.create_connection(("127.0.0.1", tls_port), timeout=10) as raw, \
                context.wrap_socket(raw, server_hostname="127.0.0.1") as tls, \
                socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as rtp:
            rtp.bind(("127.0.0.1", 0))
            rtp.settimeout(60)
            local = tls.getsockname()[1]
            buffer = bytearray()
            uri = f"sip:enclave@127.0.0.1:{tls_port};transport=tls"
            sdp = ("v=0\r\no=pbx 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
                   f"m=audio {rtp.getsockname()[1]} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n")
            common = (f"From: <sip:pbx@127.0.0.1>;tag=tls1\r\nCall-ID: tls-call-1\r\nMax-Forwards: 70\r\n"
                      f"Contact: <sip:pbx@127.0.0.1:{local};transport=tls>\r\n")
            tls.sendall((f"INVITE {uri} SIP/2.0\r\nVia: SIP/2.0/TLS 127.0.0.1:{local};branch=z9hG4bKtls1\r\n{common}"
                         f"To: <sip:enclave@127.0.0.1>\r\nCSeq: 1 INVITE\r\nContent-Type: application/sdp\r\n"
                         f"Content-Length: {len(sdp)}\r\n\r\n{sdp}").encode())
            answer = read_sip(tls, buffer)
            while answer.startswith(b"SIP/2.0 1"):
                answer = read_sip(tls, buffer)
            assert answer.startswith(b"SIP/2.0 200"), answer
            lines = answer.decode().split("\r\n")
            assert any(h.startswith("Contact:") and "transport=tls" in h for h in lines), answer
            assert any(h.startswith("Via: SIP/2.0/TLS") for h in lines), answer
            to = next(h for h in lines if h.startswith("To:"))
            tls.sendall((f"ACK {uri} SIP/2.0\r\nVia: SIP/2.0/TLS 127.0.0.1:{local};branch=z9hG4bKtls2\r\n{common}"
                         f"{to}\r\nCSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n").encode())
            # The caller speaks (G.711 RTP paced at 20 ms); the assistant's answer comes back as RTP.
            speaker = threading.Thread(target=send_speech_rtp, args=(rtp, rtp.getsockname(), answer, tmp_path),
                                       daemon=True)
            speaker.start()
            packets = [rtp.recv(2048) for _ in range(25)]
            assert all(p[0] >> 6 == 2 and p[1] & 0x7F == 0 for p in packets)
            speaker.join(30)
            tls.sendall((f"BYE {uri} SIP/2.0\r\nVia: SIP/2.0/TLS 127.0.0.1:{local};branch=z9hG4bKtls3\r\n{common}"
                         f"{to}\r\nCSeq: 2 BYE\r\nContent-Length: 0\r\n\r\n").encode())
            assert read_sip(tls, buffer).startswith(b"SIP/2.0 200")
        assert "SIP user agent listening" in gw.log() and str(tls_port) in gw.log()
    finally:
        gw.stop()
