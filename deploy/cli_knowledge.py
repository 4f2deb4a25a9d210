"""``enclave knowledge ingest | list | delete``: load documents into a tenant's knowledge base from the shell.

Ingest walks files and folders, shows a progress bar (files, and chunks being embedded), and ends with a
summary table. Each document lands whole or not at all, and a file already ingested unchanged is skipped,
so re-running the same command after an interruption resumes where it stopped. It needs the appliance's
serving plane (the embedding role) and its database, like `enclave up` leaves them.
"""

from __future__ import annotations

import argparse
import asyncio
from datetime import date
from pathlib import Path

SUFFIXES = {".txt", ".md", ".markdown", ".html", ".htm", ".pdf", ".docx"}


def _cli():
    from deploy import cli  # shared console, error type and database helper (imported late: cli imports us)

    return cli


def collect_files(paths: list[str]) -> list[tuple[Path, str]]:
    """Files named, and the documents inside folders named (recursively, sorted, hidden ones skipped), each
    with its source name: the path below the folder named (cards/fees.pdf and loans/fees.pdf are two
    documents; by file name alone the second replaced the first on every run)."""
    found: list[tuple[Path, str]] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found += sorted((p, p.relative_to(path).as_posix()) for p in path.rglob("*")
                            if p.is_file() and p.suffix.lower() in SUFFIXES
                            and not any(part.startswith(".") for part in p.relative_to(path).parts))
        elif path.is_file():
            found.append((path, path.name))
        else:
            raise _cli().CliError(f"{raw}: no such file or folder")
    return found


async def _ingest(db_url: str, args: argparse.Namespace, files: list[tuple[Path, str]]) -> int:
    import httpx
    from psycopg_pool import AsyncConnectionPool
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
    from rich.table import Table

    from gateway.app import build_knowledge
    from gateway.config import Settings
    from gateway.knowledge.parse import DocumentError
    from gateway.safety.pii import DEFAULT_PATTERNS, PiiDetector

    cli = _cli()
    settings = Settings(database_url=db_url)
    async with AsyncConnectionPool(db_url, min_size=1, max_size=2, kwargs={"autocommit": True}) as pool, \
            httpx.AsyncClient(base_url=settings.serving_base_url, trust_env=False, timeout=120) as serving:
        async with pool.connection() as conn:
            row = await (await conn.execute("SELECT id FROM tenants WHERE slug = %s", (args.tenant,))).fetchone()
        if row is None:
            raise cli.CliError(f"no tenant '{args.tenant}' (create it with `enclave tenants set {args.tenant}`)")
        tenant_id = str(row[0])
        ingestor = build_knowledge(settings, pool, serving, PiiDetector(DEFAULT_PATTERNS)).ingestor
        results, failed = [], 0
        tags = [t.strip() for t in (args.tags or "").split(",") if t.strip()]
        with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                      console=cli.err) as progress:
            overall = progress.add_task("documents", total=len(files))
            chunks = progress.add_task("embedding", total=None, visible=False)
            for path, source_name in files:
                progress.update(overall, description=f"documents ({source_name[-40:]})")

                def on_progress(_stage: str, done: int, total: int) -> None:
                    progress.update(chunks, completed=done, total=total, visible=True)

                try:
                    result = await ingestor.ingest(tenant_id, args.collection, source_name, path.read_bytes(), actor="cli",
                                                   tags=tags, effective_date=args.effective_date, on_progress=on_progress)
                    results.append((path, result.status, result.chunks, "; ".join(result.warnings)))
                except DocumentError as e:
                    failed += 1
                    results.append((path, f"failed: {e.code}", 0, str(e)))
                progress.update(chunks, visible=False, completed=0)
                progress.advance(overall)
    table = Table("file", "status", "chunks", "note", title=f"knowledge: tenant {args.tenant}, collection {args.collection}")
    for path, status, n, note in results:
        table.add_row(str(path), status, str(n), note)
    cli.console.print(table)
    counts = {s: sum(1 for _p, st, _n, _w in results if st == s) for s in ("created", "replaced", "updated", "unchanged", "duplicate")}
    cli.console.print(", ".join(f"{n} {s}" for s, n in counts.items()) + f", {failed} failed")
    return 1 if failed else 0


def cmd_ingest(args: argparse.Namespace) -> int:
    cli = _cli()
    files = collect_files(args.paths)
    if not files:
        raise cli.CliError("no documents found (.txt .md .html .pdf .docx)")
    from gateway.clients.embed import EmbeddingUnavailable

    with cli._database() as (url, _applied):
        try:
            return asyncio.run(_ingest(url, args, files))
        except EmbeddingUnavailable as e:
            raise cli.CliError(f"{e.message}; is the appliance up (`enclave up`), and ENCLAVE_SERVING_URL right?") from None


def cmd_list(args: argparse.Namespace) -> int:
    cli = _cli()

    def work(conn) -> int:
        from rich.table import Table

        rows = conn.execute(
            "SELECT t.slug, c.name, d.id, d.title, d.format, d.version, d.chunk_count, d.updated_at FROM kb_documents d "
            "JOIN kb_collections c ON c.id = d.collection_id JOIN tenants t ON t.id = d.tenant_id "
            "WHERE (%(t)s::text IS NULL OR t.slug = %(t)s) ORDER BY t.slug, c.name, d.title", {"t": args.tenant}).fetchall()
        table = Table("tenant", "collection", "id", "title", "format", "version", "chunks", "updated")
        for slug, coll, did, title, fmt, version, n, updated in rows:
            table.add_row(slug, coll, str(did), title, fmt, str(version), str(n), f"{updated:%Y-%m-%d %H:%M}")
        cli.console.print(table)
        return 0

    return cli._with_database(work)


def cmd_delete(args: argparse.Namespace) -> int:
    cli = _cli()

    def work(conn) -> int:
        from gateway.store.audit import AuditEvent, append_sync

        with conn.transaction():
            row = conn.execute("DELETE FROM kb_documents WHERE id::text = %s RETURNING tenant_id, title, content_sha256",
                               (args.document_id,)).fetchone()
            if row is None:
                raise cli.CliError(f"no document {args.document_id} (see `enclave knowledge list`)")
            append_sync(conn, AuditEvent("knowledge.delete", "cli", str(row[0]), content={
                "document_id": args.document_id, "title": row[1], "sha256": row[2]}))
        cli.console.print(f"deleted {row[1]!r}")
        return 0

    return cli._with_database(work)


def add_commands(sub) -> None:
    kb = sub.add_parser("knowledge", help="the knowledge base (RAG)").add_subparsers(dest="knowledge_cmd", required=True)
    ki = kb.add_parser("ingest", help="ingest files and folders (.txt .md .html .pdf .docx)")
    ki.add_argument("paths", nargs="+")
    ki.add_argument("--tenant", default="dev", help="tenant slug (default: dev)")
    ki.add_argument("--collection", default="default", help="collection name (default: default)")
    ki.add_argument("--tags", help="comma-separated tags for every file")
    ki.add_argument("--effective-date", type=date.fromisoformat, help="ISO date the documents take effect")
    ki.set_defaults(func=cmd_ingest)
    kl = kb.add_parser("list", help="documents by tenant and collection")
    kl.add_argument("--tenant", help="only this tenant")
    kl.set_defaults(func=cmd_list)
    kd = kb.add_parser("delete", help="delete a document (and its chunks) by id")
    kd.add_argument("document_id")
    kd.set_defaults(func=cmd_delete)
