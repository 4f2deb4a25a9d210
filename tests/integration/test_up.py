"""`enclave up` as `make run` starts it: fallback to tiny, gateway ready, dev key, database."""

from __future__ import annotations

import os
import socket

import httpx
import psycopg
import pytest

from gateway.store.api_keys import hash_key

pytestmark = pytest.mark.integration


def test_readyz_reports_every_dependency(appliance) -> None:
    r = httpx.get(appliance.gateway_url + "/readyz", trust_env=False)
    assert r.status_code == 200
    assert r.json() == {"status": "ready", "checks": {
        "database": "ok", "serving.llm": "ok", "serving.stt": "ok", "serving.tts": "ok", "serving.embed": "ok"}}
    assert httpx.get(appliance.gateway_url + "/healthz", trust_env=False).json() == {"status": "ok"}


def test_missing_profile_falls_back_to_tiny_loudly(appliance) -> None:
    log = appliance.log()
    assert "Profile 'cpu-small' is not in the model store" in log
    assert "enclave models fetch cpu-small" in log
    assert "RUNNING THE TINY PROFILE" in log


def test_dev_key_is_stored_only_as_a_hash(appliance) -> None:
    key_file = appliance.var_dir / "dev-api-key"
    key = key_file.read_text().strip()
    assert key.startswith("enc_")
    assert oct(key_file.stat().st_mode & 0o777) == "0o600"
    url = _db_url(appliance)
    with psycopg.connect(url) as conn:
        rows = conn.execute("SELECT key_sha256, role FROM api_keys").fetchall()
        assert ("vector",) in conn.execute("SELECT extname FROM pg_extension").fetchall()
        assert conn.execute("SELECT count(*) FROM schema_migrations").fetchone()[0] >= 1
    assert (hash_key(key), "admin") in rows
    assert all(key not in str(r) for r in rows)


def _db_url(appliance) -> str:
    """The embedded server listens on a unix socket inside var/pg (pgserver's layout)."""
    pg = appliance.var_dir / "pg"
    sock_dirs = {p.parent for p in pg.rglob(".s.PGSQL.*")} or {pg}
    return f"postgresql://postgres:@/postgres?host={next(iter(sock_dirs))}"


@pytest.mark.skipif(os.environ.get("ENCLAVE_TEST_NETNS") != "1", reason="only inside `make test`'s network namespace")
def test_suite_runs_without_network() -> None:
    """Proof that the whole suite ran offline: nothing but loopback is reachable from here."""
    with pytest.raises(OSError):
        socket.create_connection(("1.1.1.1", 443), timeout=2)
