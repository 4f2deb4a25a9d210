"""One real appliance per test session: ``enclave up`` in a subprocess, exactly as `make run` starts it
(embedded Postgres, local Ray Serve with vLLM on the tiny profile, the gateway), on free ports, in a
private var dir. Every role is then tested over HTTP. Starting it costs ~1-2 minutes, so it is shared."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

REPO = Path(__file__).resolve().parents[2]
START_TIMEOUT_S = 900


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Appliance:
    gateway_url: str
    serving_url: str
    var_dir: Path
    models_dir: Path
    log_path: Path
    env: dict[str, str]
    proc: subprocess.Popen | None = None
    database_url: str = ""

    @property
    def api_key(self) -> str:
        return (self.var_dir / "dev-api-key").read_text().strip()

    def start(self, timeout_s: float = START_TIMEOUT_S) -> None:
        ready = self.var_dir / "ready"
        ready.unlink(missing_ok=True)
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "deploy.cli", "up", "--ready-file", str(ready)],
            cwd=REPO, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        deadline = time.monotonic() + timeout_s
        while not ready.exists():
            if self.proc.poll() is not None:
                pytest.fail(f"enclave up exited with {self.proc.returncode}:\n{self.log()[-6000:]}")
            if time.monotonic() > deadline:
                self.stop()
                pytest.fail(f"enclave up not ready in {timeout_s} s:\n{self.log()[-6000:]}")
            time.sleep(1)
        self.database_url = json.loads(ready.read_text())["database_url"]

    def stop(self, timeout_s: float = 120) -> int:
        """Ctrl-C, as an operator would; returns the exit code."""
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        code, self.proc = self.proc.returncode, None
        return code

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


@pytest.fixture(scope="session")
def appliance(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Appliance]:
    var_dir = tmp_path_factory.mktemp("var")
    # Reuse the models `make test` built (ENCLAVE_MODELS_DIR), else build into the private var dir.
    models_dir = Path(os.environ.get("ENCLAVE_MODELS_DIR", var_dir / "models")).resolve()
    gw, sv = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("ENCLAVE_")}
    env.update({
        "ENCLAVE_VAR_DIR": str(var_dir),
        "ENCLAVE_MODELS_DIR": str(models_dir),
        "ENCLAVE_GATEWAY_PORT": str(gw),
        "ENCLAVE_SERVE_PORT": str(sv),
        # The default profile (cpu-small) is deliberately not in the store: up must fall back to tiny.
        "ENCLAVE_MODEL_PROFILE": "cpu-small",
        "PYTHONUNBUFFERED": "1",
        "COLUMNS": "200",
    })
    attach = os.environ.get("ENCLAVE_TEST_ATTACH")
    if attach:
        # Development only: reuse a running appliance (its ready file) and put a fresh gateway, with the
        # code as it is now, in front of it. Tests that stop the appliance skip themselves.
        info = json.loads(Path(attach).read_text())
        app = Appliance(info["gateway_url"], info["serving_url"], Path(attach).parent, models_dir,
                        var_dir / "enclave-up.log", env, database_url=info["database_url"])
        app.env.update({"ENCLAVE_VAR_DIR": str(app.var_dir)})
        fresh = start_gateway(app, "attached")
        app.gateway_url = fresh.url
        yield app
        fresh.stop()
        return
    app = Appliance(f"http://127.0.0.1:{gw}", f"http://127.0.0.1:{sv}", var_dir, models_dir,
                    var_dir / "enclave-up.log", env)
    app.start()
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


@dataclass
class GatewayProcess:
    """A second gateway on the appliance's database and models, with its own settings (a different LLM
    chain, low thresholds): started the way `enclave up` starts one, with uvicorn."""

    url: str
    proc: subprocess.Popen
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def start_gateway(appliance: Appliance, name: str, **settings: object) -> GatewayProcess:
    port = free_port()
    env = dict(appliance.env)
    env.update({"ENCLAVE_DATABASE_URL": appliance.database_url, "ENCLAVE_MODEL_PROFILE": "tiny",
                "ENCLAVE_SERVING_URL": appliance.serving_url, "ENCLAVE_GATEWAY_PORT": str(port)})
    env.update({f"ENCLAVE_{k.upper()}": v if isinstance(v, str) else json.dumps(v) for k, v in settings.items()})
    log_path = appliance.var_dir / "log" / f"gateway-{name}.log"
    log_path.parent.mkdir(exist_ok=True)
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "--factory", "gateway.app:build_app", "--host", "127.0.0.1",
         "--port", str(port), "--no-access-log"],
        cwd=REPO, env=env, stdout=log_path.open("ab"), stderr=subprocess.STDOUT, start_new_session=True,
    )
    gw = GatewayProcess(f"http://127.0.0.1:{port}", proc, log_path)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"gateway {name} exited:\n{gw.log()[-4000:]}")
        try:
            if httpx.get(f"{gw.url}/healthz", timeout=2, trust_env=False).status_code == 200:
                return gw
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    gw.stop()
    pytest.fail(f"gateway {name} did not start:\n{gw.log()[-4000:]}")
