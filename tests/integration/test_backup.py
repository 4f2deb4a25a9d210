"""Backup and restore round trip on the live test appliance's database: `enclave backup` → a brand-new
database on the same server → `enclave restore`, which must bring back every row (counts per table equal)
with the audit hash chain intact; a damaged archive and a non-empty target are refused."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import httpx
import psycopg
import pytest

from deploy.backup import row_counts
from tests.integration.conftest import REPO, Appliance

pytestmark = pytest.mark.timeout(600)


def enclave(appliance: Appliance, database_url: str, *args: str) -> subprocess.CompletedProcess:
    env = {**appliance.env, "ENCLAVE_DATABASE_URL": database_url, "ENCLAVE_VAR_DIR": str(appliance.var_dir)}
    return subprocess.run([sys.executable, "-m", "deploy.cli", *args], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=300)


def other_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


def test_backup_then_restore_into_a_new_database_loses_nothing(appliance: Appliance, tmp_path: Path) -> None:
    archive, key_copy = tmp_path / "enclave.tar", tmp_path / "keys" / "vault.key"
    # Something in every kind of table, whatever ran before (this test may run on a fresh database): a
    # conversation with personal data (turns, a session, the vault, audit entries), its feedback, and a
    # knowledge document (collection, document, chunks, lexicon).
    with httpx.Client(base_url=appliance.gateway_url, headers={"Authorization": f"Bearer {appliance.api_key}"},
                      timeout=120, trust_env=False) as c:
        r = c.post("/v1/chat/completions", json={"model": "enclave", "max_tokens": 4, "messages": [
            {"role": "user", "content": "Hello, I am at ada.backup@example.org"}]})
        assert r.status_code == 200, r.text
        sid = r.headers["x-session-id"]
        answer = next(t for t in c.get(f"/v1/sessions/{sid}").json()["turns"] if t["role"] == "assistant")
        assert c.post(f"/v1/sessions/{sid}/turns/{answer['turn_id']}/feedback",
                      json={"rating": "up", "comment": "fine"}).status_code == 200
        up = c.post("/v1/knowledge/documents", data={"collection": "backup-test"},
                    files={"file": ("opening-hours.md", b"# Opening hours\n\nThe branch opens at nine.\n", "text/markdown")})
        assert up.status_code in (200, 201), up.text
    made = enclave(appliance, appliance.database_url, "backup", "-o", str(archive), "--vault-key-out", str(key_copy))
    assert made.returncode == 0, made.stdout + made.stderr
    with tarfile.open(archive) as tar:
        assert sorted(tar.getnames()) == ["database.dump", "manifest.json"]     # the vault key is never inside
        manifest = json.loads(tar.extractfile("manifest.json").read())
    seeded = ("tenants", "api_keys", "sessions", "turns", "pii_vault", "audit_log", "audit_head", "feedback",
              "kb_collections", "kb_documents", "kb_chunks", "kb_lexicon", "schema_migrations")
    assert all(manifest["counts"].get(t, 0) > 0 for t in seeded), manifest["counts"]
    assert key_copy.exists() and oct(key_copy.stat().st_mode & 0o777) == "0o600"
    assert oct(archive.stat().st_mode & 0o777) == "0o600"      # the whole database: its owner's alone

    name = f"restore_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(appliance.database_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
        conn.execute(f'CREATE DATABASE "{name}_busy"')
    target = other_database(appliance.database_url, name)
    try:
        restored = enclave(appliance, target, "restore", str(archive))
        assert restored.returncode == 0, restored.stdout + restored.stderr
        assert "every row counted and the audit chain verified" in restored.stdout
        with psycopg.connect(target, autocommit=True) as conn:
            assert row_counts(conn) == manifest["counts"]
            assert conn.execute("SELECT count(*) FROM kb_chunks WHERE text LIKE %s", ("%opens at nine%",)).fetchone()[0]
            # the chain head came back with the log it heads (restore verified the chain up to it)
            assert conn.execute("SELECT seq FROM audit_head").fetchone()[0] == \
                conn.execute("SELECT max(seq) FROM audit_log").fetchone()[0]
        # The restored database serves the gateway's role like the original (its grants came back).
        with psycopg.connect(target, autocommit=True) as conn:
            conn.execute("SET ROLE enclave_gateway")
            assert conn.execute("SELECT count(*) FROM turns").fetchone()[0] == manifest["counts"]["turns"]
        # A target that is not empty is refused, and so is a damaged archive.
        again = enclave(appliance, target, "restore", str(archive))
        assert again.returncode == 2 and "not empty" in again.stderr
        damaged = tmp_path / "damaged.tar"
        with tarfile.open(archive) as src, tarfile.open(damaged, "w") as dst:
            for member in src.getmembers():
                data = src.extractfile(member).read()
                if member.name == "database.dump":
                    data = data[:-100] + bytes(100)
                member.size = len(data)
                dst.addfile(member, io.BytesIO(data))
        broken = enclave(appliance, other_database(appliance.database_url, f"{name}_busy"), "restore", str(damaged))
        assert broken.returncode == 2 and "damaged" in broken.stderr
    finally:
        with psycopg.connect(appliance.database_url, autocommit=True) as conn:
            for db in (name, f"{name}_busy"):
                conn.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
    assert os.path.exists(archive)


def test_upgrade_is_forward_only_and_the_backup_before_it_is_the_rollback(appliance: Appliance, tmp_path: Path) -> None:
    """The documented upgrade path (docs/deploy.md): back up, let the newer Enclave migrate, and if it must be
    undone, the older Enclave refuses the migrated database and the pre-upgrade backup restores cleanly."""
    from gateway.store.migrate import MIGRATIONS_DIR, migrate

    name = f"upgrade_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(appliance.database_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
        conn.execute(f'CREATE DATABASE "{name}_rollback"')
    current, rollback = other_database(appliance.database_url, name), other_database(appliance.database_url, f"{name}_rollback")
    try:
        assert enclave(appliance, current, "db", "migrate").returncode == 0
        archive = tmp_path / "before-upgrade.tar"
        made = enclave(appliance, current, "backup", "-o", str(archive), "--vault-key-out", str(tmp_path / "vault.key"))
        assert made.returncode == 0, made.stdout + made.stderr

        # The newer release: the same migrations plus one more, applied forward.
        newer = tmp_path / "newer-migrations"
        shutil.copytree(MIGRATIONS_DIR, newer)
        (newer / "999_next_release.sql").write_text("CREATE TABLE next_release_table (id int PRIMARY KEY);")
        assert migrate(current, newer) == ["999_next_release.sql"]

        # This (older) release on that database: refused, with the way back named.
        older = enclave(appliance, current, "db", "migrate")
        assert older.returncode == 2
        assert "999_next_release.sql" in older.stderr and "enclave restore" in older.stderr

        # The rollback: the pre-upgrade backup into a fresh database, which this release accepts as it is.
        restored = enclave(appliance, rollback, "restore", str(archive))
        assert restored.returncode == 0, restored.stdout + restored.stderr
        again = enclave(appliance, rollback, "db", "migrate")
        assert again.returncode == 0 and "schema is up to date" in again.stdout + again.stderr
        verify = enclave(appliance, rollback, "audit", "verify")
        assert verify.returncode == 0, verify.stdout + verify.stderr
    finally:
        with psycopg.connect(appliance.database_url, autocommit=True) as conn:
            for db in (name, f"{name}_rollback"):
                conn.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
