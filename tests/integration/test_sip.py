"""The SIP user agent (first version) against real peers: sipp places a call with G.711 RTP from a pcap,
presses a key (RFC 4733) and hangs up; a Python UDP socket sends OPTIONS, a request from a peer outside the allow-list, and malformed
messages. The gateway answers, runs the call through the voice session, and survives bad input."""

from __future__ import annotations

import os
import random
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from tests.integration.conftest import Appliance, GatewayProcess, free_port, start_gateway

pytestmark = pytest.mark.timeout(600)
CANNED = "Hello, I would like to check my account balance."


@pytest.fixture(scope="module")
def sip_gw(appliance: Appliance) -> Iterator[tuple[GatewayProcess, int]]:
    if not shutil.which("sipp"):
        pytest.skip("sipp (Debian sip-tester) is needed")
    port = free_port()
    gw = start_gateway(appliance, "sip", sip_port=port, sip_tenant="dev", voice_silence_reprompt_s=120)
    yield gw, port
    gw.stop()


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


def test_malformed_and_fuzzed_messages_do_not_take_it_down(sip_gw) -> None:
    _gw, port = sip_gw
    valid = options(port)
    assert udp_request(port, b"this is not sip at all\r\n\r\n", timeout_s=0.5, tries=1) is None   # dropped
    bad = udp_request(port, valid.replace(b"Content-Length: 0", b"Content-Length: 50"))   # a body that is not there
    assert bad is not None and bad.startswith(b"SIP/2.0 400")
    rng = random.Random(7)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        for _ in range(500):
            data = bytearray(valid)
            for _ in range(rng.randint(1, 8)):
                data[rng.randrange(len(data))] = rng.randrange(256)
            s.sendto(bytes(data[:rng.randint(1, len(data))]), ("127.0.0.1", port))
    ok = udp_request(port, options(port, call_id="after-fuzz"))
    assert ok is not None and ok.startswith(b"SIP/2.0 200")


def test_sipp_places_an_answered_call_with_audio_and_hangs_up(appliance: Appliance, sip_gw, tmp_path: Path) -> None:
    gw, port = sip_gw
    os.symlink("/usr/share/sip-tester", tmp_path / "pcap")
    started = time.time()
    run = subprocess.run(["sipp", "-sn", "uac_pcap", f"127.0.0.1:{port}", "-i", "127.0.0.1", "-p", str(free_port()),
                          "-m", "1", "-l", "1", "-timeout", "90s", "-timeout_error", "-nostdin", "-trace_err"],
                         cwd=tmp_path, capture_output=True, text=True, timeout=150)
    errors = "\n".join(p.read_text(errors="replace")[-3000:] for p in tmp_path.glob("*errors.log"))
    assert run.returncode == 0, f"sipp failed ({run.returncode}):\n{run.stdout[-3000:]}\n{errors}\n{gw.log()[-3000:]}"
    with psycopg.connect(appliance.database_url, autocommit=True) as conn:
        deadline = time.monotonic() + 30
        rows = []
        while time.monotonic() < deadline and not any(r[0] == "user" and r[1] == "1" for r in rows):
            rows = conn.execute(
                "SELECT t.role, t.content, t.status FROM turns t JOIN sessions s ON s.id = t.session_id "
                "WHERE s.channel = 'sip' AND s.created_at >= to_timestamp(%s) ORDER BY t.seq, t.position",
                (started - 1,)).fetchall()
            time.sleep(0.5)
    users = [r[1] for r in rows if r[0] == "user"]
    assert users and users[0] == CANNED, (rows, gw.log()[-3000:])
    assert any(r[0] == "assistant" for r in rows)
    # The scenario presses '1' (RFC 4733) before hanging up: keypad input is a turn of its own.
    assert "1" in users, (rows, gw.log()[-3000:])
