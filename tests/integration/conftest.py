"""One real appliance per test session: ``enclave up`` in a subprocess, exactly as `make run` starts it
(embedded Postgres, local Ray Serve with vLLM on the tiny profile, the gateway), on free ports, in a
private var dir. Every role is then tested over HTTP. Starting it costs ~1-2 minutes, so it is shared."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import psutil
import pytest

from deploy.background import REPO, ApplianceStartError, BackgroundAppliance, free_port, stop_process, wait_up
from deploy.up import start_gateway as start_gateway_process
from gateway.config import Settings
from tests.integration.upstream_proxy import RecordingProxy

__all__ = ["REPO", "Appliance", "GatewayProcess", "free_port", "start_gateway"]

START_TIMEOUT_S = 900
Appliance = BackgroundAppliance


@pytest.fixture(scope="session")
def appliance(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Appliance]:
    var_dir = tmp_path_factory.mktemp("var")
    # Reuse the models `make test` built (ENCLAVE_MODELS_DIR), else build into the private var dir.
    models_dir = Path(os.environ.get("ENCLAVE_MODELS_DIR", var_dir / "models")).resolve()
    # The default profile (cpu-small) is deliberately not in the store: up must fall back to tiny.
    # One gateway process whatever the host's cores (ENCLAVE_GATEWAY_WORKERS=0 would choose by them): the
    # tests see the same gateway on every machine; test_gateway_workers.py runs two on purpose.
    app = Appliance.on_free_ports(var_dir, models_dir, "cpu-small", ENCLAVE_GATEWAY_WORKERS="1")
    attach = os.environ.get("ENCLAVE_TEST_ATTACH")
    if attach:
        # Development only: reuse a running appliance (its ready file) and put a fresh gateway, with the
        # code as it is now, in front of it. Tests that stop the appliance skip themselves.
        info = json.loads(Path(attach).read_text())
        app.var_dir, app.serving_url, app.database_url = Path(attach).parent, info["serving_url"], info["database_url"]
        app.bank_url = info.get("bank_url", "")
        app.env["ENCLAVE_VAR_DIR"] = str(app.var_dir)
        fresh = start_gateway(app, "attached")
        app.gateway_url = fresh.url
        yield app
        fresh.stop()
        return
    try:
        app.start(START_TIMEOUT_S)
    except ApplianceStartError as e:
        pytest.fail(str(e))
    yield app
    app.stop()


@pytest.fixture(scope="session")
def serving(appliance: Appliance) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=appliance.serving_url, timeout=120, trust_env=False) as client:
        yield client


@pytest.fixture(scope="session")
def gateway(appliance: Appliance) -> Iterator[httpx.Client]:
    """The appliance's gateway, authenticated with the dev admin key `enclave up` created."""
    headers = {"Authorization": f"Bearer {appliance.api_key}"}
    with httpx.Client(base_url=appliance.gateway_url, headers=headers, timeout=120, trust_env=False) as client:
        yield client


@pytest.fixture(scope="module")
def proxy(appliance: Appliance) -> Iterator[RecordingProxy]:
    """A recording forwarder in front of the real Serve endpoint (see upstream_proxy.py), per test module."""
    p = RecordingProxy(int(urlsplit(appliance.serving_url).port))
    p.start()
    yield p
    p.close()


def listening_pids(port: int) -> set[int]:
    """The processes with a listening TCP socket on ``port`` (a gateway's workers each have their own)."""
    return {c.pid for c in psutil.net_connections("tcp") if c.laddr and c.laddr.port == port
            and c.status == psutil.CONN_LISTEN and c.pid}


@dataclass
class GatewayProcess:
    """A second gateway on the appliance's database and models, with its own settings (a different LLM
    chain, low thresholds), started by the function `enclave up` uses."""

    url: str
    proc: subprocess.Popen
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        stop_process(self.proc, timeout_s=20)


def start_gateway(appliance: Appliance, name: str, **settings: object) -> GatewayProcess:
    """``settings`` are gateway Settings fields (JSON-encoded into ENCLAVE_* variables)."""
    port = free_port()
    env = {**appliance.env, **{f"ENCLAVE_{k.upper()}": v if isinstance(v, str) else json.dumps(v)
                               for k, v in settings.items()}}
    log_path = appliance.var_dir / "log" / f"gateway-{name}.log"
    log_path.parent.mkdir(exist_ok=True)
    log_path.unlink(missing_ok=True)   # tests read this gateway's log: not an earlier run's on a reused var dir
    where = Settings(gateway_host="127.0.0.1", gateway_port=port, serving_url=appliance.serving_url,
                     var_dir=appliance.var_dir)
    gw = GatewayProcess(f"http://127.0.0.1:{port}",
                        start_gateway_process(where, appliance.database_url, "tiny", log_path, base_env=env), log_path)
    if wait_up([f"{gw.url}/healthz"], gw.proc, 60, every_s=0.3):
        return gw
    if gw.proc.poll() is not None:
        pytest.fail(f"gateway {name} exited:\n{gw.log()[-4000:]}")
    gw.stop()
    pytest.fail(f"gateway {name} did not start:\n{gw.log()[-4000:]}")
