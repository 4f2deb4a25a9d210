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
