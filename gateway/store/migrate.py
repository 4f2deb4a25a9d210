"""Apply ``migrations/NNN_name.sql`` in order, each once, each in its own transaction.

Forward only: a file already applied is never re-run, an edited one is reported (its checksum is
recorded) rather than silently ignored, and a database migrated by a newer Enclave is refused (the way back
from an upgrade is restoring the backup taken before it). An advisory lock lets several gateways start at once.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

import psycopg

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
_NAME = re.compile(r"^(\d{3})_[a-z0-9_]+\.sql$")
_LOCK_ID = 0x656E636C  # "encl"


class MigrationError(RuntimeError):
    pass


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def discover(directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    found: list[Migration] = []
    for path in sorted(directory.glob("*.sql")):
        m = _NAME.match(path.name)
        if not m:
            raise MigrationError(f"{path.name}: migration files are named NNN_lower_snake.sql")
        found.append(Migration(int(m.group(1)), path.name, path.read_text()))
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise MigrationError(f"duplicate migration numbers in {directory}")
    return found


def check_not_newer(conn: psycopg.Connection, known: list[Migration]) -> None:
    """An older Enclave must not run on a database a newer one has migrated: its code would misread the schema.
    Migrations only go forward; the way back is the backup taken before the upgrade."""
    newest_known = max((m.version for m in known), default=0)
    ahead = conn.execute("SELECT version, name FROM schema_migrations WHERE version > %s ORDER BY version",
                         (newest_known,)).fetchall()
    if ahead:
        raise MigrationError(
            f"the database has migrations this Enclave does not know ({', '.join(n for _v, n in ahead)}): a newer "
            "Enclave ran here. Install that version again, or roll back by restoring the backup taken before the "
            "upgrade (enclave restore) into a fresh database")


def migrate(conninfo: str, directory: Path = MIGRATIONS_DIR) -> list[str]:
    """Apply pending migrations; returns the names applied now."""
    applied_now: list[str] = []
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (_LOCK_ID,))
        try:
            conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                " version int PRIMARY KEY, name text NOT NULL, checksum text NOT NULL,"
                " applied_at timestamptz NOT NULL DEFAULT now())"
            )
            done = {v: c for v, c in conn.execute("SELECT version, checksum FROM schema_migrations")}
            known = discover(directory)
            check_not_newer(conn, known)
            for mig in known:
                if mig.version in done:
                    if done[mig.version] != mig.checksum:
                        raise MigrationError(
                            f"{mig.name} was changed after it was applied; add a new migration instead"
                        )
                    continue
                with conn.transaction():
                    conn.execute(mig.sql)
                    conn.execute(
                        "INSERT INTO schema_migrations (version, name, checksum) VALUES (%s, %s, %s)",
                        (mig.version, mig.name, mig.checksum),
                    )
                applied_now.append(mig.name)
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (_LOCK_ID,))
    return applied_now
