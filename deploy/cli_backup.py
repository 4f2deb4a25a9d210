"""``enclave backup`` and ``enclave restore`` (see deploy/backup.py)."""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.table import Table


def _cli():
    from deploy import cli

    return cli


def cmd_backup(args: argparse.Namespace) -> int:
    from deploy.backup import backup
    from gateway.config import Settings

    cli = _cli()
    settings = Settings()
    out = Path(args.output or f"enclave-backup-{__import__('time').strftime('%Y%m%d-%H%M%S')}.tar")
    with cli._database() as (url, _applied):
        result = backup(url, out, settings.vault_key_path, Path(args.vault_key_out) if args.vault_key_out else None)
    cli.console.print(f"[green]✓[/] {result.path} ({result.size / 1e6:.1f} MB): "
                      + ", ".join(f"{n} {t}" for t, n in result.counts.items() if n))
    if not args.vault_key_out:
        cli.console.print("[yellow]The vault key is not in the backup:[/] keep a copy apart "
                          "(enclave backup --vault-key-out FILE), or the vault cannot be read after a restore.")
    return 0


def cmd_restore(args: argparse.Namespace) -> int:
    from deploy.backup import restore
    from deploy.postgres import start_database
    from gateway.config import Settings

    cli = _cli()
    settings = Settings()
    db = start_database(settings.var_dir, settings.database_url)   # the target: never migrated before the restore
    try:
        result = restore(Path(args.archive), db.url)
    finally:
        db.stop()
    table = Table("table", "in the backup", "restored")
    for name, expected in result.expected.items():
        got = result.counts.get(name)
        table.add_row(name, str(expected), str(got) if got == expected else f"[red]{got}[/]")
    cli.console.print(table)
    (cli.console if result.audit_ok else cli.err).print(("[green]✓[/] " if result.audit_ok else "[red]✗[/] ")
                                                         + result.audit_message)
    if not result.ok:
        cli.err.print("[red]✗[/] the restore does not match the backup")
        return 1
    cli.console.print("[green]✓[/] restored: every row counted and the audit chain verified")
    return 0


def add_commands(sub) -> None:
    b = sub.add_parser("backup", help="dump the whole database into one archive (the vault key stays apart)")
    b.add_argument("-o", "--output", help="archive path (default: enclave-backup-DATE.tar)")
    b.add_argument("--vault-key-out", help="also copy the vault key to this file (keep it apart from the archive)")
    b.set_defaults(func=cmd_backup)
    r = sub.add_parser("restore", help="restore a backup into an empty database, then check counts and the audit chain")
    r.add_argument("archive")
    r.set_defaults(func=cmd_restore)
