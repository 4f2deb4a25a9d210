"""Runs last (file name): Ctrl-C stops everything cleanly, and a second `enclave up` works on the
same data. Kept in one place so the shared appliance is not stopped under other tests."""

from __future__ import annotations

import glob
import os
import subprocess

import httpx
import pytest

from tests.integration.conftest import START_TIMEOUT_S

pytestmark = pytest.mark.integration


def _ray_processes() -> list[str]:
    """Live Ray processes. A ``<defunct>`` entry is an exited worker waiting to be reaped by its parent (or
    by init once orphaned): it holds no memory, ports or files, so it does not count."""
    out = subprocess.run(["ps", "-eo", "pid,args"], capture_output=True, text=True).stdout
    return [line for line in out.splitlines()
            if ("ray::" in line or "raylet" in line or "gcs_server" in line) and "<defunct>" not in line]


def test_ctrl_c_stops_cleanly_and_a_second_up_works(appliance) -> None:
    if appliance.proc is None:
        pytest.skip("attached to an appliance this run did not start")
    key_before = (appliance.var_dir / "dev-api-key").read_text()
    assert appliance.stop() == 0, appliance.log()[-4000:]
    assert "stopped." in appliance.log()
    assert not _ray_processes(), "Ray processes left behind"
    assert not [p for p in glob.glob("/dev/shm/psm_*") if os.stat(p).st_uid == os.getuid()], "vLLM shared memory left"
    with pytest.raises(httpx.HTTPError):
        httpx.get(appliance.gateway_url + "/healthz", timeout=2, trust_env=False)

    appliance.start(START_TIMEOUT_S)
    assert httpx.get(appliance.gateway_url + "/readyz", trust_env=False).status_code == 200
    # Same database, same tenant and key: the second start found its data.
    assert (appliance.var_dir / "dev-api-key").read_text() == key_before
    assert "schema up to date" in appliance.log()


def test_the_three_systemd_services_bring_the_same_appliance_up(appliance, tmp_path) -> None:
    """What the systemd units run, in their order, on the same data: `enclave db run` (ready via sd_notify),
    `enclave serving run` (ready once every role is RUNNING), `enclave gateway run`; then SIGTERM stops each
    cleanly and leaves no Ray behind. A profile missing from the store is refused before Ray starts."""
    import signal
    import socket
    import sys
    import time

    from deploy.background import REPO, stop_process

    if appliance.proc is None:
        pytest.skip("attached to an appliance this run did not start")
    assert appliance.stop() == 0
    env = {**appliance.env, "ENCLAVE_MODEL_PROFILE": "tiny", "ENCLAVE_EXAMPLE_BANK": "false"}

    missing = subprocess.run([sys.executable, "-m", "deploy.cli", "serving", "run", "--profile", "cpu-small"],
                             cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert missing.returncode == 1 and "enclave install --from" in missing.stderr, missing.stderr
    assert not _ray_processes()

    notify_path = tmp_path / "notify.sock"
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(str(notify_path))
    notify.settimeout(START_TIMEOUT_S)
    logs = {name: (tmp_path / f"{name}.log").open("w") for name in ("db", "serving", "gateway")}
    procs: dict[str, subprocess.Popen] = {}

    def start(name: str, *args: str) -> subprocess.Popen:
        procs[name] = subprocess.Popen([sys.executable, "-m", "deploy.cli", *args], cwd=REPO,
                                       env={**env, "NOTIFY_SOCKET": str(notify_path)}, stdout=logs[name],
                                       stderr=subprocess.STDOUT, start_new_session=True)
        return procs[name]

    try:
        start("db", "db", "run")
        assert "READY=1" in notify.recv(4096).decode(), (tmp_path / "db.log").read_text()
        start("serving", "serving", "run")
        message = notify.recv(4096).decode()
        assert "READY=1" in message and "serving tiny" in message, (tmp_path / "serving.log").read_text()
        start("gateway", "gateway", "run")
        deadline = time.monotonic() + 90
        while True:
            assert procs["gateway"].poll() is None, (tmp_path / "gateway.log").read_text()
            try:
                if httpx.get(appliance.gateway_url + "/readyz", timeout=5, trust_env=False).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, (tmp_path / "gateway.log").read_text()
            time.sleep(1)
        # The same data: the development key of the earlier starts still works.
        r = httpx.post(appliance.gateway_url + "/v1/chat/completions", timeout=120, trust_env=False,
                       headers={"Authorization": f"Bearer {appliance.api_key}"},
                       json={"model": "enclave", "max_tokens": 4, "messages": [{"role": "user", "content": "Hi"}]})
        assert r.status_code == 200, r.text
    finally:
        codes = {name: stop_process(procs.get(name), signal.SIGTERM, 120) for name in ("gateway", "serving", "db")}
        notify.close()
    assert codes["gateway"] in (0, -signal.SIGTERM) and codes["serving"] == 0 and codes["db"] == 0, codes
    assert not _ray_processes(), "Ray processes left behind"
    assert not (appliance.var_dir / "database-url").exists()
