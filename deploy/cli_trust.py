"""``enclave keys | audit | retention | vault``: the trust layer's operator commands (run as the database owner).

Keys made here are audited like the admin API's (actor ``cli``); ``audit verify`` exits 1 and names the
first broken link; ``audit export`` writes JSONL; ``retention purge`` applies every tenant's policy;
``vault rescope-fingerprints`` scopes the vault's older tenant-wide fingerprints to their session.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from pathlib import Path

from gateway.store.api_keys import ROLES


def _cli():
    from deploy import cli  # the shared console, error type and database helper (imported late: cli imports us)

    return cli


def _when(text: str | None, flag: str) -> datetime | None:
    if text is None:
        return None
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise _cli().CliError(f"{flag} {text!r}: use an ISO date or time, e.g. 2026-01-31 or 2026-01-31T12:00") from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def cmd_keys_create(args: argparse.Namespace) -> int:
    cli = _cli()
    if args.rate_limit is not None and args.rate_limit < 1:
        raise cli.CliError("--rate-limit must be at least 1 request per minute")

    def work(conn) -> int:
        from gateway.store import api_keys
        from gateway.store.audit import AuditEvent, append_sync

        row = conn.execute("SELECT id FROM tenants WHERE slug = %s", (args.tenant,)).fetchone()
        if row is None:
            raise cli.CliError(f"no tenant '{args.tenant}' (create it with `enclave tenants set {args.tenant}`)")
        with conn.transaction():
            key, prefix = api_keys.create_key_row(conn, str(row[0]), args.role, args.label, args.rate_limit, "cli")
            append_sync(conn, AuditEvent("key.create", "cli", str(row[0]), content={
                "prefix": prefix, "role": args.role, "label": args.label, "rate_limit_per_min": args.rate_limit}))
        cli.err.print(f"created {args.role} key {prefix} for tenant {args.tenant}; it is shown once, keep it now:")
        print(key)
        return 0

    return cli._with_database(work)


def cmd_keys_generate(args: argparse.Namespace) -> int:
    """A new key, printed and NOT stored: for a Secret that `enclave keys import` later brings in."""
    from gateway.store.api_keys import new_key

    print(new_key()[0])
    return 0


def cmd_keys_import(args: argparse.Namespace) -> int:
    """Bring in a key held in ENCLAVE_IMPORT_KEY (never on the command line: argv is visible to every user)."""
    import os

    cli = _cli()
    key = os.environ.get("ENCLAVE_IMPORT_KEY", "").strip()
    if not key:
        raise cli.CliError("set ENCLAVE_IMPORT_KEY to the key (for example from a Kubernetes Secret)")

    def work(conn) -> int:
        from gateway.store import api_keys
        from gateway.store.audit import AuditEvent, append_sync

        row = conn.execute("SELECT id FROM tenants WHERE slug = %s", (args.tenant,)).fetchone()
        if row is None and not args.create_tenant:
            raise cli.CliError(f"no tenant '{args.tenant}' (add --create-tenant, or `enclave tenants set {args.tenant}`)")
        with conn.transaction():
            tenant_id = str(row[0]) if row else api_keys.ensure_tenant(conn, args.tenant, args.tenant)
            try:
                prefix, stored = api_keys.import_key_row(conn, tenant_id, args.role, key, args.label, "import")
            except api_keys.KeyImportError as e:
                raise cli.CliError(str(e)) from None
            if stored:
                append_sync(conn, AuditEvent("key.import", "cli", tenant_id, content={
                    "prefix": prefix, "role": args.role, "label": args.label}))
        cli.err.print(f"{'imported' if stored else 'already present:'} {args.role} key {prefix} for tenant {args.tenant}")
        return 0

    return cli._with_database(work)


def cmd_keys_list(args: argparse.Namespace) -> int:
    cli = _cli()

    def work(conn) -> int:
        from rich.table import Table

        rows = conn.execute(
            "SELECT t.slug, k.prefix, k.role, k.label, k.rate_limit_per_min, k.created_at, k.revoked_at "
            "FROM api_keys k JOIN tenants t ON t.id = k.tenant_id WHERE (%(t)s::text IS NULL OR t.slug = %(t)s) "
            "ORDER BY t.slug, k.created_at", {"t": args.tenant}).fetchall()
        table = Table("tenant", "key", "role", "label", "rate/min", "created", "revoked")
        for slug, prefix, role, label, rate, created, revoked in rows:
            table.add_row(slug, prefix, role, label, str(rate or "default"), f"{created:%Y-%m-%d %H:%M}",
                          f"{revoked:%Y-%m-%d %H:%M}" if revoked else "")
        cli.console.print(table)
        return 0

    return cli._with_database(work)


def cmd_keys_revoke(args: argparse.Namespace) -> int:
    cli = _cli()

    def work(conn) -> int:
        from gateway.store.audit import AuditEvent, append_sync

        with conn.transaction():
            row = conn.execute("UPDATE api_keys SET revoked_at = now() WHERE prefix = %s AND revoked_at IS NULL "
                               "RETURNING tenant_id", (args.prefix,)).fetchone()
            if row is None:
                raise cli.CliError(f"no active key {args.prefix} (see `enclave keys list`)")
            append_sync(conn, AuditEvent("key.revoke", "cli", str(row[0]), content={"prefix": args.prefix}))
        cli.console.print(f"revoked {args.prefix} (gateways refuse it within 10 s)")
        return 0

    return cli._with_database(work)


def cmd_audit_verify(args: argparse.Namespace) -> int:
    cli = _cli()

    def work(conn) -> int:
        from psycopg.rows import dict_row

        from gateway.store.audit import verify_sync

        conn.row_factory = dict_row
        result = verify_sync(conn)
        (cli.console if result.ok else cli.err).print(("[green]✓[/] " if result.ok else "[red]✗[/] ") + result.describe())
        return 0 if result.ok else 1

    return cli._with_database(work)


def cmd_audit_export(args: argparse.Namespace) -> int:
    cli = _cli()
    start, end = _when(args.from_, "--from"), _when(args.to, "--to")

    def work(conn) -> int:
        from psycopg.rows import dict_row

        from gateway.store.audit import ROW_COLUMNS, entry_out

        out = open(args.output, "w") if args.output else sys.stdout
        n = 0
        try:
            with conn.transaction(), conn.cursor(name="audit_export", row_factory=dict_row) as cur:
                cur.execute(
                    f"SELECT {ROW_COLUMNS} FROM audit_log a WHERE (%(f)s::timestamptz IS NULL OR ts >= %(f)s) "
                    "AND (%(t)s::timestamptz IS NULL OR ts < %(t)s) AND (%(slug)s::text IS NULL OR tenant_id = "
                    "(SELECT id FROM tenants WHERE slug = %(slug)s)) ORDER BY seq",
                    {"f": start, "t": end, "slug": args.tenant})
                for row in cur:
                    out.write(json.dumps(entry_out(row), ensure_ascii=False, sort_keys=True) + "\n")
                    n += 1
        finally:
            if args.output:
                out.close()
        cli.err.print(f"exported {n} audit entries" + (f" to {args.output}" if args.output else ""))
        return 0

    return cli._with_database(work)


def cmd_retention_purge(args: argparse.Namespace) -> int:
    cli = _cli()
    as_of = _when(args.as_of, "--as-of")

    def work(conn) -> int:
        from rich.table import Table

        from gateway.store.retention import purge

        report = purge(conn, as_of, dry_run=args.dry_run)
        table = Table("tenant", "turns", "transcripts", "audit entries", "sessions", "vault entries")
        for t in report.tenants:
            table.add_row(t.tenant, str(t.turns), str(t.transcripts), str(t.audit_entries), str(t.sessions),
                          str(t.vault_entries))
        cli.console.print(table if report.tenants else "no tenant has a retention policy")
        if args.dry_run:
            cli.console.print("dry run: nothing was purged")
        return 0

    return cli._with_database(work)


def cmd_vault_rescope(args: argparse.Namespace) -> int:
    cli = _cli()

    def work(conn) -> int:
        from gateway.config import Settings
        from gateway.safety.vault import VaultCipher, VaultKeyError, load_key_provider
        from gateway.store.vault import rescope_fingerprints

        settings = Settings()
        try:
            cipher = VaultCipher(load_key_provider(settings.vault_key, settings.vault_key_path, settings.vault_key_provider))
        except VaultKeyError as e:
            raise cli.CliError(f"the vault key is needed to rescope fingerprints: {e}") from e
        with cli.console.status("scoping vault fingerprints to their sessions…") as status:
            n = rescope_fingerprints(conn, cipher, on_batch=lambda done: status.update(
                f"scoping vault fingerprints to their sessions… {done:,} rows"))
        cli.console.print(f"{n:,} vault rows scoped to their session" if n else
                          "every vault fingerprint is already scoped to its session")
        return 0

    return cli._with_database(work)


def add_commands(sub) -> None:
    keys = sub.add_parser("keys", help="API keys (only a hash is stored)").add_subparsers(dest="keys_cmd", required=True)
    kc = keys.add_parser("create", help="create a key; the secret is printed once, on stdout")
    kc.add_argument("--tenant", required=True, help="tenant slug")
    kc.add_argument("--role", required=True, choices=ROLES)
    kc.add_argument("--label", default="", help="what the key is for")
    kc.add_argument("--rate-limit", type=int, help="requests per minute (default: the gateway's)")
    kc.set_defaults(func=cmd_keys_create)
    keys.add_parser("generate", help="print a new key without storing it (for a Secret; then `keys import`)"
                    ).set_defaults(func=cmd_keys_generate)
    ki = keys.add_parser("import", help="store the key in $ENCLAVE_IMPORT_KEY (idempotent; only its hash is kept)")
    ki.add_argument("--tenant", required=True, help="tenant slug")
    ki.add_argument("--role", required=True, choices=ROLES)
    ki.add_argument("--label", default="", help="what the key is for")
    ki.add_argument("--create-tenant", action="store_true", help="create the tenant if it does not exist")
    ki.set_defaults(func=cmd_keys_import)
    kl = keys.add_parser("list", help="keys by tenant (prefixes, never secrets)")
    kl.add_argument("--tenant", help="only this tenant")
    kl.set_defaults(func=cmd_keys_list)
    kr = keys.add_parser("revoke", help="revoke a key by its prefix")
    kr.add_argument("prefix")
    kr.set_defaults(func=cmd_keys_revoke)

    audit = sub.add_parser("audit", help="the hash-chained audit log").add_subparsers(dest="audit_cmd", required=True)
    audit.add_parser("verify", help="walk the chain; exit 1 and name the first broken link").set_defaults(
        func=cmd_audit_verify)
    ae = audit.add_parser("export", help="write entries as JSONL")
    ae.add_argument("--from", dest="from_", help="ISO date/time, inclusive")
    ae.add_argument("--to", help="ISO date/time, exclusive")
    ae.add_argument("--tenant", help="only this tenant's entries")
    ae.add_argument("-o", "--output", type=Path, help="file (default: stdout)")
    ae.set_defaults(func=cmd_audit_export)

    retention = sub.add_parser("retention", help="per-tenant retention").add_subparsers(dest="retention_cmd",
                                                                                         required=True)
    rp = retention.add_parser("purge", help="apply every tenant's policy now (content goes, tombstones stay)")
    rp.add_argument("--as-of", help="purge as if it were this ISO date/time (default: now)")
    rp.add_argument("--dry-run", action="store_true", help="count what would go; change nothing")
    rp.set_defaults(func=cmd_retention_purge)

    vault = sub.add_parser("vault", help="the PII vault").add_subparsers(dest="vault_cmd", required=True)
    vault.add_parser("rescope-fingerprints", help="scope fingerprints stored in the tenant-wide form to their session, so "
                     "equal values no longer link sessions (decrypts nothing; safe to re-run)").set_defaults(
        func=cmd_vault_rescope)
