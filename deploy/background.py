"""`enclave up` as a background process, for the test suite and the benchmarks.

Free ports, a private var dir, the ready file `up` writes once the gateway's /readyz is 200, and a stop
by Ctrl-C (SIGINT) as an operator would give it. One implementation, so the tests and the benchmarks
start the appliance exactly as `make run` does. ``BackgroundGateway`` is the same minus the serving plane
(Postgres and the gateway, with `up`'s own functions), for benchmarks whose model runs elsewhere.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]


class ApplianceStartError(RuntimeError):
    """`enclave up` exited or did not become ready; the message carries the end of its log."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def url_ok(url: str) -> bool:
    """Answers 200 right now (for polling a server that is starting)."""
    import httpx

    try:
        return httpx.get(url, timeout=2, trust_env=False).status_code == 200
    except httpx.HTTPError:
        return False


def wait_up(urls: list[str], proc: subprocess.Popen, timeout_s: float, every_s: float = 0.5) -> bool:
    """True once any of ``urls`` answers 200; False if the process exits or the time runs out."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        if any(url_ok(u) for u in urls):
            return True
        time.sleep(every_s)
    return False


def stop_process(proc: subprocess.Popen | None, sig: int = signal.SIGTERM, timeout_s: float = 30) -> int | None:
    """Polite signal first; the whole process group is killed if it does not exit in time."""
    if proc is None:
        return None
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    return proc.returncode


def private_env(var_dir: Path, models_dir: Path, profile: str, **enclave_vars: str) -> dict[str, str]:
    """This process's environment without its ENCLAVE_* settings, plus the private ones of a background
    appliance or gateway."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ENCLAVE_")}
    env.update({"ENCLAVE_VAR_DIR": str(var_dir), "ENCLAVE_MODELS_DIR": str(models_dir), "ENCLAVE_MODEL_PROFILE": profile,
                "PYTHONUNBUFFERED": "1", **enclave_vars})
    return env


class _VarDir:
    """What both background kinds read from their private var dir and log."""
    var_dir: Path
    log_path: Path

    @property
    def api_key(self) -> str:
        """The development admin key written on first start."""
        return (self.var_dir / "dev-api-key").read_text().strip()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


@dataclass
class BackgroundAppliance(_VarDir):
    var_dir: Path
    env: dict[str, str]                 # the whole environment `enclave up` runs with
    log_path: Path
    gateway_url: str
    serving_url: str
    proc: subprocess.Popen | None = None
    database_url: str = ""              # from the ready file, once started
    bank_url: str = ""                  # the example bank service, from the ready file
    profile: str = ""                   # the profile `up` chose, from the ready file

    @classmethod
    def on_free_ports(cls, var_dir: Path, models_dir: Path, profile: str, log_path: Path | None = None,
                      **extra_env: str) -> BackgroundAppliance:
        gateway_port, serve_port, bank_port = free_port(), free_port(), free_port()
        env = private_env(var_dir, models_dir, profile, ENCLAVE_GATEWAY_PORT=str(gateway_port),
                          ENCLAVE_SERVE_PORT=str(serve_port), ENCLAVE_BANK_PORT=str(bank_port),
                          RAY_USAGE_STATS_ENABLED="0", COLUMNS="200", **extra_env)
        return cls(var_dir, env, log_path or var_dir / "enclave-up.log", f"http://127.0.0.1:{gateway_port}",
                   f"http://127.0.0.1:{serve_port}")

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self, timeout_s: float) -> None:
        ready = self.var_dir / "ready"
        ready.unlink(missing_ok=True)
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "deploy.cli", "up", "--ready-file", str(ready)],
                cwd=REPO, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )
        deadline = time.monotonic() + timeout_s
        while not ready.exists():
            if self.proc.poll() is not None:
                raise ApplianceStartError(f"enclave up exited with {self.proc.returncode}:\n{self.log()[-6000:]}")
            if time.monotonic() > deadline:
                self.stop()
                raise ApplianceStartError(f"enclave up not ready in {timeout_s:.0f} s:\n{self.log()[-6000:]}")
            time.sleep(1)
        info = json.loads(ready.read_text())
        self.database_url, self.bank_url, self.profile = info["database_url"], info.get("bank_url", ""), info["profile"]

    def stop(self, timeout_s: float = 120) -> int:
        """Ctrl-C, as an operator would; returns the exit code."""
        code = stop_process(self.proc, signal.SIGINT, timeout_s)
        self.proc = None
        return code or 0


@dataclass
class BackgroundGateway(_VarDir):
    """The gateway and its embedded Postgres without the serving plane, for benchmarks whose model runs
    elsewhere (a paced stand-in, a vLLM on a GPU box): `up`'s own steps (database, migrations, keys, the
    gateway process), minus Ray. The gateway's LLM chain comes from ``extra_env`` (ENCLAVE_LLM_CHAIN)."""
    var_dir: Path
    models_dir: Path
    port: int
    env: dict[str, str]                 # the gateway process's environment
    log_path: Path
    profile: str
    proc: subprocess.Popen | None = None
    database: Any = None                # deploy.postgres.Database once started

    @classmethod
    def on_free_port(cls, var_dir: Path, models_dir: Path, profile: str, log_path: Path | None = None,
                     **extra_env: str) -> BackgroundGateway:
        port = free_port()
        env = private_env(var_dir, models_dir, profile, ENCLAVE_GATEWAY_PORT=str(port), **extra_env)
        return cls(var_dir, models_dir, port, env, log_path or var_dir / "gateway.log", profile)

    @property
    def gateway_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout_s: float) -> None:
        from deploy.postgres import start_database
        from deploy.up import choose_profile, ensure_dev_key, ensure_vault_key, ensure_webhook_secret, start_gateway
        from gateway.config import Settings
        from gateway.dialogue.tokens import tokenizer_for
        from gateway.store.migrate import migrate
        from models.catalog import load_catalog
        from models.store import ModelStore

        settings = Settings(var_dir=self.var_dir, models_dir=self.models_dir, gateway_port=self.port,
                            model_profile=self.profile)
        self.var_dir.mkdir(parents=True, exist_ok=True)
        catalog = load_catalog()
        if tokenizer_for(self.models_dir, catalog.profile(self.profile).roles["llm"].model) is None:
            # The gateway alone needs only the LLM's tokenizer (its context budget); without it, `up`'s choice.
            self.profile = choose_profile(catalog, ModelStore(settings.model_store_dir, catalog), self.profile)
        self.database = start_database(self.var_dir, None)
        migrate(self.database.url)
        ensure_dev_key(self.database.url, self.var_dir)
        ensure_vault_key(settings)
        ensure_webhook_secret(settings)
        self.proc = start_gateway(settings, self.database.url, self.profile, self.log_path, base_env=self.env)
        # /healthz, not /readyz: the serving plane's roles are not here, by design
        if wait_up([f"{self.gateway_url}/healthz"], self.proc, timeout_s):
            return
        if self.proc.poll() is not None:
            raise ApplianceStartError(f"the gateway exited with {self.proc.returncode}:\n{self.log()[-6000:]}")
        self.stop()
        raise ApplianceStartError(f"the gateway was not up in {timeout_s:.0f} s:\n{self.log()[-6000:]}")

    def stop(self) -> None:
        stop_process(self.proc, signal.SIGTERM, 30)
        self.proc = None
        if self.database is not None:
            self.database.stop()
            self.database = None
