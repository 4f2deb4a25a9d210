"""The gateway as two processes on one port (ENCLAVE_GATEWAY_WORKERS=2), on the appliance's database, models and
Serve app. Each worker listens on its own socket and the kernel picks one per connection; the tests connect
until each worker holds one of theirs. What one process kept in memory must hold for the pair: /metrics adds both up, a key's rate limit is one limit, and the SIP user agent runs in exactly
one of them, in the other once that one dies."""

from __future__ import annotations

import contextlib
import json
import socket
import time
from collections.abc import Iterator
from urllib.parse import urlsplit

import psutil
import pytest

from tests.integration.conftest import Appliance, GatewayProcess, free_port, listening_pids, start_gateway
from tests.integration.test_sip import options, udp_request

pytestmark = pytest.mark.timeout(600)


@pytest.fixture(scope="module")
def pair(appliance: Appliance) -> Iterator[tuple[GatewayProcess, int]]:
    sip_port = free_port()
    gw = start_gateway(appliance, "workers", gateway_workers=2, sip_port=sip_port, sip_tenant="dev")
    deadline = time.monotonic() + 120
    while len(listening(gw)) < 2 and time.monotonic() < deadline:   # each worker listens once it has started
        time.sleep(0.3)
    assert len(listening(gw)) == 2, gw.log()[-3000:]
    yield gw, sip_port
    gw.stop()


def test_each_worker_sends_its_upstream_requests_at_once(pair) -> None:
    """On Python 3.11 each worker's loop gets the task factory that starts aiohttp's request writes eagerly
    (gateway/clients/eager_writes.py); each says so as it starts."""
    gw, _ = pair
    started = [json.loads(line) for line in gw.log().splitlines()
               if line.startswith("{") and '"gateway started"' in line]
    assert len(started) == 2 and all(s["upstream_writes"] == "eager" for s in started), started


def listening(gw: GatewayProcess) -> set[int]:
    """The processes with a listening socket on the gateway's port."""
    return listening_pids(urlsplit(gw.url).port)


def workers(gw: GatewayProcess) -> list[psutil.Process]:
    """The gateway's worker processes (not multiprocessing's resource tracker)."""
    found = []
    for child in psutil.Process(gw.proc.pid).children():
        with contextlib.suppress(psutil.NoSuchProcess):
            if any("spawn_main" in part for part in child.cmdline()):
                found.append(child)
    return found


def connection_to(gw: GatewayProcess, worker: psutil.Process, tries: int = 200) -> socket.socket:
    """A connection that this worker accepted. Each worker listens on its own socket (SO_REUSEPORT) and the
    kernel picks one by the connection's addresses, so connect until this one has it."""
    port = urlsplit(gw.url).port
    for _ in range(tries):
        sock = socket.create_connection(("127.0.0.1", port), timeout=60)
        mine = sock.getsockname()[1]
        owner = None
        for _ in range(50):
            owner = next((c.pid for c in psutil.net_connections("tcp") if c.raddr and c.raddr.port == mine
                          and c.laddr and c.laddr.port == port and c.pid), None)
            if owner is not None:
                break
            time.sleep(0.02)
        if owner == worker.pid:
            return sock
        sock.close()
    raise AssertionError(f"no connection reached worker {worker.pid} in {tries} tries")


def call(gw: GatewayProcess, worker: psutil.Process, method: str, path: str, key: str,
         body: dict | None = None) -> tuple[int, dict, bytes]:
    """One HTTP/1.1 request served by this worker, on a connection of its own (uvicorn closes a kept-alive
    connection after 5 idle seconds): (status, headers, body)."""
    data = json.dumps(body).encode() if body is not None else b""
    head = (f"{method} {path} HTTP/1.1\r\nHost: gateway\r\nAuthorization: Bearer {key}\r\nConnection: close\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n\r\n").encode()
    with connection_to(gw, worker) as sock:
        sock.sendall(head + data)
        reader = sock.makefile("rb")
        status = int(reader.readline().split()[1])
        headers = {}
        while (line := reader.readline().strip()):
            name, _, value = line.decode().partition(":")
            headers[name.strip().lower()] = value.strip()
        return status, headers, reader.read(int(headers["content-length"]))


def chat(gw: GatewayProcess, worker: psutil.Process, key: str) -> None:
    status, _, body = call(gw, worker, "POST", "/v1/chat/completions", key, {
        "model": "enclave", "max_tokens": 4, "messages": [{"role": "user", "content": "Say hi."}]})
    assert status == 200, body


def turns_counted(gw: GatewayProcess, worker: psutil.Process, key: str) -> float:
    status, _, body = call(gw, worker, "GET", "/metrics", key)
    assert status == 200
    return sum(float(line.rsplit(" ", 1)[1]) for line in body.decode().splitlines()
               if line.startswith("enclave_turns_total{"))


def test_connections_are_spread_and_metrics_add_up_over_both_processes(pair, appliance: Appliance) -> None:
    gw, _ = pair
    first, second = workers(gw)
    key = appliance.api_key
    before = turns_counted(gw, first, key)
    assert turns_counted(gw, second, key) == before
    chat(gw, first, key)
    chat(gw, first, key)
    chat(gw, second, key)
    assert turns_counted(gw, first, key) == before + 3    # each reports the other's turns too
    assert turns_counted(gw, second, key) == before + 3


def test_a_key_gets_its_rate_limit_once_not_once_per_process(pair, appliance: Appliance) -> None:
    gw, _ = pair
    first, second = workers(gw)
    status, _, body = call(gw, first, "POST", "/v1/admin/keys", appliance.api_key,
                           {"role": "user", "label": "workers-limit", "rate_limit_per_min": 4})
    assert status == 201, body
    key = json.loads(body)["key"]
    codes = [call(gw, first, "GET", "/v1/models", key)[0] for _ in range(2)]
    codes += [call(gw, second, "GET", "/v1/models", key)[0] for _ in range(2)]
    status, headers, body = call(gw, second, "GET", "/v1/models", key)
    # 4 a minute: two taken through one process leave two for the other, then 429
    assert codes == [200, 200, 200, 200] and status == 429, (codes, status)
    assert json.loads(body)["error"]["code"] == "rate_limited" and int(headers["retry-after"]) >= 1


def sip_owners(port: int) -> set[int]:
    return {c.pid for c in psutil.net_connections(kind="udp") if c.laddr and c.laddr.port == port and c.pid}


def test_the_sip_user_agent_runs_in_one_process_and_moves_when_it_dies(pair) -> None:
    gw, sip_port = pair
    deadline = time.monotonic() + 30
    while not sip_owners(sip_port) and time.monotonic() < deadline:
        time.sleep(0.2)
    owners = sip_owners(sip_port)
    assert len(owners) == 1 and owners <= {w.pid for w in workers(gw)}, (owners, gw.log()[-3000:])
    answer = udp_request(sip_port, options(sip_port, call_id="workers-1"))
    assert answer is not None and answer.startswith(b"SIP/2.0 200")

    (leader,) = owners
    psutil.Process(leader).kill()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and (not sip_owners(sip_port) or sip_owners(sip_port) == {leader}):
        time.sleep(0.3)
    moved = sip_owners(sip_port)
    assert len(moved) == 1 and leader not in moved, (moved, gw.log()[-3000:])
    answer = udp_request(sip_port, options(sip_port, call_id="workers-2"))
    assert answer is not None and answer.startswith(b"SIP/2.0 200")
    deadline = time.monotonic() + 120
    while len(listening(gw)) < 2 and time.monotonic() < deadline:  # the parent starts a new worker in its place
        time.sleep(0.3)
    assert len(listening(gw)) == 2 and leader not in listening(gw)
