"""The one-box systemd services, really started: `enclave db run` (embedded Postgres, ready via sd_notify, its
URL published for the gateway), then `enclave gateway run --production` over HTTPS with certificates from
files, in front of the session appliance's serving plane. Both stop cleanly on SIGTERM, as systemd stops them."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil
import psycopg
import pytest

from deploy.background import stop_process
from gateway.safety.vault import write_new_key
from tests.integration.conftest import REPO, Appliance, free_port, listening_pids
from tests.tls_certs import make_pki

pytestmark = pytest.mark.timeout(300)


def service_env(appliance: Appliance, var_dir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ENCLAVE_")}
    env.update({"ENCLAVE_VAR_DIR": str(var_dir), "ENCLAVE_MODELS_DIR": appliance.env["ENCLAVE_MODELS_DIR"],
                "ENCLAVE_MODEL_PROFILE": "tiny", "ENCLAVE_EXAMPLE_BANK": "false", "RAY_USAGE_STATS_ENABLED": "0",
                "HF_HUB_OFFLINE": "1", **extra})
    return env


def enclave(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "deploy.cli", *args], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=120)


def wait_for_ready(sock: socket.socket, proc: subprocess.Popen, timeout_s: float) -> str:
    """What the service sent to NOTIFY_SOCKET (it must say READY=1), as systemd's Type=notify waits for it."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
        try:
            return sock.recv(4096).decode()
        except TimeoutError:
            continue
    raise AssertionError("no READY=1 from the service")


@pytest.mark.parametrize("workers", [1, 2])
def test_db_and_gateway_services_with_https(appliance: Appliance, tmp_path: Path, workers: int) -> None:
    """With 2 workers, `enclave gateway run` is deploy/gateway_workers.py's parent: TLS reaches every worker
    and SIGTERM stops them all."""
    var_dir = tmp_path / "var"
    var_dir.mkdir()
    pki = make_pki(tmp_path / "pki")
    vault_key = write_new_key(tmp_path / "vault.key")
    notify_path = tmp_path / "notify.sock"
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(str(notify_path))
    notify.settimeout(1.0)
    db = gateway = None
    try:
        db_env = service_env(appliance, var_dir, NOTIFY_SOCKET=str(notify_path))
        db = subprocess.Popen([sys.executable, "-m", "deploy.cli", "db", "run"], cwd=REPO, env=db_env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        assert "READY=1" in wait_for_ready(notify, db, 90)
        published = var_dir / "database-url"
        assert published.is_file() and oct(published.stat().st_mode & 0o777) == "0o600"

        port = free_port()
        gw_env = service_env(appliance, var_dir, ENCLAVE_GATEWAY_PORT=str(port), ENCLAVE_SERVING_URL=appliance.serving_url,
                             ENCLAVE_TLS_CERT_FILE=str(pki.cert_file), ENCLAVE_TLS_KEY_FILE=str(pki.key_file),
                             ENCLAVE_VAULT_KEY_FILE=str(vault_key), ENCLAVE_GATEWAY_HOST="127.0.0.1",
                             ENCLAVE_GATEWAY_WORKERS=str(workers))
        # A named key through the CLI (production starts with no development key).
        assert enclave(gw_env, "tenants", "set", "acme", "--name", "Acme").returncode == 0
        made = enclave(gw_env, "keys", "create", "--tenant", "acme", "--role", "admin", "--label", "services test")
        assert made.returncode == 0, made.stderr
        api_key = made.stdout.strip().splitlines()[-1]

        log = (tmp_path / "gateway.log").open("w")
        gateway = subprocess.Popen([sys.executable, "-m", "deploy.cli", "gateway", "run", "--production"], cwd=REPO,
                                   env=gw_env, stdout=log, stderr=subprocess.STDOUT)
        url = f"https://127.0.0.1:{port}"
        with httpx.Client(base_url=url, verify=str(pki.ca_file), timeout=30, trust_env=False) as client:
            deadline = time.monotonic() + 90
            while True:
                assert gateway.poll() is None, (tmp_path / "gateway.log").read_text()
                try:
                    if client.get("/readyz").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert time.monotonic() < deadline, (tmp_path / "gateway.log").read_text()
                time.sleep(0.5)
            r = client.post("/v1/chat/completions", headers={"Authorization": f"Bearer {api_key}"},
                            json={"model": "enclave", "max_tokens": 4, "messages": [{"role": "user", "content": "Hi"}]})
            assert r.status_code == 200, r.text
            assert r.json()["choices"][0]["message"]["role"] == "assistant"
        # Plain HTTP on the HTTPS port gets nowhere; a client that does not trust the CA refuses the server.
        with pytest.raises(httpx.TransportError):
            httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5, trust_env=False).raise_for_status()
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"{url}/healthz", timeout=5, trust_env=False)

        # /readyz answers once one worker listens; each worker listens only when its app has started.
        deadline = time.monotonic() + 90
        while len(serving := listening_pids(port)) < workers and time.monotonic() < deadline:
            time.sleep(0.5)
        assert len(serving) == workers, (serving, (tmp_path / "gateway.log").read_text()[-3000:])
        # uvicorn shuts down gracefully, then re-raises SIGTERM: systemd counts that as a clean stop.
        assert stop_process(gateway, signal.SIGTERM, 30) in (0, -signal.SIGTERM)
        assert not any(psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
                       for pid in serving)
        assert stop_process(db, signal.SIGTERM, 60) == 0
        assert not published.exists()    # a stopped database publishes no URL
    finally:
        stop_process(gateway)
        stop_process(db)
        notify.close()


def test_gateway_service_refuses_unsafe_production_settings(appliance: Appliance, tmp_path: Path) -> None:
    env = service_env(appliance, tmp_path, ENCLAVE_GATEWAY_HOST="0.0.0.0", ENCLAVE_DATABASE_URL=appliance.database_url)
    r = enclave(env, "gateway", "run", "--production")
    assert r.returncode == 1
    assert "refusing to start in production mode" in r.stderr and "ENCLAVE_TLS_CERT_FILE" in r.stderr
    assert "vault key" in r.stderr


def test_an_active_development_key_is_found_without_its_file(appliance: Appliance, tmp_path: Path) -> None:
    """`--production` refuses while `enclave up`'s admin key works. Deleting var/dev-api-key (or pointing at
    another var dir on the same database) does not revoke the key, so it must not pass the check."""
    from deploy.up import dev_key_active
    assert not (tmp_path / "dev-api-key").exists()
    assert dev_key_active(appliance.database_url, tmp_path)


def test_keys_generated_elsewhere_are_imported_once_and_never_revived(appliance: Appliance) -> None:
    """`enclave keys generate` → a Secret → `enclave keys import` (what the chart's init container runs):
    the key works, a second import changes nothing, a revoked key is not brought back, junk is refused."""
    env = {**appliance.env, "ENCLAVE_DATABASE_URL": appliance.database_url, "ENCLAVE_VAR_DIR": str(appliance.var_dir)}
    generated = enclave(env, "keys", "generate")
    assert generated.returncode == 0
    key = generated.stdout.strip()
    assert key.startswith("enc_")
    first = enclave({**env, "ENCLAVE_IMPORT_KEY": key}, "keys", "import", "--tenant", "imported-tenant", "--role", "admin",
                    "--label", "from a secret", "--create-tenant")
    assert first.returncode == 0 and "imported admin key" in first.stderr, first.stderr
    again = enclave({**env, "ENCLAVE_IMPORT_KEY": key}, "keys", "import", "--tenant", "imported-tenant", "--role", "admin")
    assert again.returncode == 0 and "already present" in again.stderr
    other_role = enclave({**env, "ENCLAVE_IMPORT_KEY": key}, "keys", "import", "--tenant", "imported-tenant", "--role", "user")
    assert other_role.returncode == 2 and "another tenant or role" in other_role.stderr
    r = httpx.get(f"{appliance.gateway_url}/v1/me", headers={"Authorization": f"Bearer {key}"}, timeout=30, trust_env=False)
    assert r.status_code == 200 and "admin" in r.json()["roles"], r.text
    with psycopg.connect(appliance.database_url, autocommit=True) as conn:
        tenant_id = conn.execute("SELECT id FROM tenants WHERE slug = 'imported-tenant'").fetchone()[0]
    assert r.json()["tenant_id"] == str(tenant_id)

    assert enclave(env, "keys", "revoke", key[:12]).returncode == 0
    revived = enclave({**env, "ENCLAVE_IMPORT_KEY": key}, "keys", "import", "--tenant", "imported-tenant", "--role", "admin")
    assert revived.returncode == 2 and "revoked" in revived.stderr
    junk = enclave({**env, "ENCLAVE_IMPORT_KEY": "hunter2"}, "keys", "import", "--tenant", "imported-tenant", "--role", "admin")
    assert junk.returncode == 2 and "not an Enclave key" in junk.stderr
    missing = enclave(env, "keys", "import", "--tenant", "imported-tenant", "--role", "admin")
    assert missing.returncode == 2 and "ENCLAVE_IMPORT_KEY" in missing.stderr
