"""One real appliance per test session: ``enclave up`` in a subprocess, exactly as `make run` starts it
(embedded Postgres, local Ray Serve with vLLM on the tiny profile, the gateway), on free ports, in a
private var dir. Every role is then tested over HTTP. Starting it costs ~1-2 minutes, so it is shared."""

from __future__ import annotations

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
    app = Appliance(f"http://127.0.0.1:{gw}", f"http://127.0.0.1:{sv}", var_dir, models_dir,
                    var_dir / "enclave-up.log", env)
    app.start()
    yield app
    app.stop()


@pytest.fixture(scope="session")
def serving(appliance: Appliance) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=appliance.serving_url, timeout=120, trust_env=False) as client:
        yield client
