"""The ``enclave`` command line. Each subcommand is a thin shell over a library function; user
mistakes (unknown profile, missing files, offline fetch) print one clear line and exit non-zero."""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from rich.console import Console
from rich.table import Table

console = Console(highlight=False)
err = Console(stderr=True, highlight=False)


def _store(args: argparse.Namespace):
    from models.catalog import load_catalog
    from models.store import ModelStore, models_dir_from_env

    return ModelStore(Path(args.models_dir) if args.models_dir else models_dir_from_env(), load_catalog())


def cmd_models_list(args: argparse.Namespace) -> int:
    store = _store(args)
    table = Table(title=f"model catalog (store: {store.root})")
    for col in ("profile", "role", "model", "source", "licence", "in store"):
        table.add_column(col)
    for pname, prof in store.catalog.profiles.items():
        if args.profile and pname != args.profile:
            continue
        for role, dep in prof.roles.items():
            e = store.catalog.model(dep.model)
            missing = store.missing_files(e.id)
            table.add_row(pname, role, e.id, e.describe_source(), e.licence,
                          "[green]yes[/]" if not missing else f"[red]missing {len(missing)} file(s)[/]")
    if args.profile:
        store.catalog.profile(args.profile)
    console.print(table)
    return 0


def cmd_models_verify(args: argparse.Namespace) -> int:
    store = _store(args)
    if args.model:
        checks = store.verify(store.catalog.model(args.model).id)
    else:
        checks = store.verify_profile(args.profile)
    bad = [c for c in checks if c.problem]
    for c in checks:
        (err if c.problem else console).print(f"{'[red]BAD[/]' if c.problem else '[green]ok [/]'} {c}")
    console.print(f"{len(checks) - len(bad)} of {len(checks)} files verified")
    return 1 if bad else 0


def cmd_models_fetch(args: argparse.Namespace) -> int:
    from models.fetch import fetch_profile

    store = _store(args)
    store.catalog.profile(args.profile)
    done = fetch_profile(store, args.profile, on_step=lambda m: console.print(f"fetching {m}"))
    console.print(f"fetched {len(done)} model(s) into {store.root}")
    return 0


def cmd_models_bundle(args: argparse.Namespace) -> int:
    from models.bundle import bundle_profile

    store = _store(args)
    out = Path(args.output or f"enclave-models-{args.profile}.tar")
    with console.status(f"verifying and packing {args.profile}…"):
        bundle_profile(store, args.profile, out)
    console.print(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB)")
    return 0


def cmd_models_unbundle(args: argparse.Namespace) -> int:
    from models.bundle import unbundle

    store = _store(args)
    with console.status(f"extracting and verifying {args.archive}…"):
        profile = unbundle(store, Path(args.archive))
    console.print(f"profile '{profile}' is in {store.root} and verified")
    return 0


def cmd_models_build_tiny(args: argparse.Namespace) -> int:
    from models.provision import build_tiny_profile

    store = _store(args)
    built = build_tiny_profile(store, canned_text=args.canned, force=args.force,
                               on_step=lambda m: console.print(f"building {m}"))
    console.print(f"tiny profile ready in {store.root}" + (f" (built {', '.join(built)})" if built else " (nothing to do)"))
    return 0


def cmd_up(args: argparse.Namespace) -> int:
    from deploy.up import up
    from gateway.config import Settings

    return up(Settings(), profile=args.profile, ready_file=Path(args.ready_file) if args.ready_file else None,
              production=args.production)


def cmd_bundle(args: argparse.Namespace) -> int:
    from deploy.site_bundle import BundleBuildError, build_bundle
    from gateway.config import Settings

    models_dir = Path(args.models_dir) if args.models_dir else Settings().model_store_dir
    try:
        build_bundle(Path(args.output), args.profile, args.extra, models_dir,
                     Path(args.wheelhouse) if args.wheelhouse else None, say=console.print)
    except BundleBuildError as e:
        raise CliError(str(e)) from e
    return 0


def cmd_install(args: argparse.Namespace) -> int:
    from deploy.site_install import InstallError, install

    try:
        install(Path(args.bundle), Path(args.prefix), Path(args.models_dir) if args.models_dir else None)
    except InstallError as e:
        raise CliError(str(e)) from e
    return 0


def cmd_config_env_file(args: argparse.Namespace) -> int:
    from deploy.envfile import render_env_file, write_env_file

    if args.output:
        console.print(f"wrote {write_env_file(Path(args.output))}")
    else:
        sys.stdout.write(render_env_file())
    return 0


def cmd_service(args: argparse.Namespace) -> int:
    from deploy.services import run
    from gateway.config import Settings

    return run(args.service, Settings(), profile=getattr(args, "profile", None),
               production=getattr(args, "production", False))


@contextmanager
def _database() -> Iterator[tuple[str, list[str]]]:
    """The appliance's database (embedded or ENCLAVE_DATABASE_URL), migrated: (url, migrations applied now)."""
    from deploy.postgres import start_database
    from gateway.config import Settings
    from gateway.store.migrate import migrate

    settings = Settings()
    db = start_database(settings.var_dir, settings.database_url)
    try:
        yield db.url, migrate(db.url)
    finally:
        db.stop()


def cmd_db_migrate(args: argparse.Namespace) -> int:
    with _database() as (_url, applied):
        console.print("applied: " + ", ".join(applied) if applied else "schema is up to date")
    return 0


class CliError(Exception):
    """A mistake in the command line or its input: one red line, exit 2."""


def _with_database(work) -> int:
    """Run ``work(conn)`` against the migrated appliance database."""
    import psycopg

    with _database() as (url, _applied), psycopg.connect(url, autocommit=True) as conn:
        return work(conn)


def cmd_tenants_list(args: argparse.Namespace) -> int:
    def work(conn) -> int:
        rows = conn.execute("SELECT slug, name, max_input_tokens, max_output_tokens, "
                            "(SELECT count(*) FROM sessions s WHERE s.tenant_id = t.id) FROM tenants t ORDER BY slug").fetchall()
        table = Table("tenant", "name", "max input tokens", "max output tokens", "sessions")
        for slug, name, cap_in, cap_out, n in rows:
            table.add_row(slug, name, str(cap_in or "default"), str(cap_out or "default"), str(n))
        console.print(table)
        return 0

    return _with_database(work)


RETENTION = ("turns", "transcripts", "vault")


def cmd_tenants_set(args: argparse.Namespace) -> int:
    """Create or update a tenant; caps of 0 go back to the gateway defaults, retention of 0 to for ever."""
    columns = ["max_input_tokens", "max_output_tokens"] + [f"retention_{w}_days" for w in RETENTION]
    for flag in columns:
        value = getattr(args, flag)
        if value is not None and value < 0:
            raise CliError(f"--{flag.replace('_', '-')} must be 0 (the default) or more")

    def work(conn) -> int:
        from gateway.store import api_keys

        if not re.fullmatch(r"[a-z0-9][a-z0-9-]{0,62}", args.slug):
            raise CliError(f"tenant slug '{args.slug}': use lower-case letters, digits and dashes (at most 63)")
        tenant = api_keys.ensure_tenant(conn, args.slug, args.name or args.slug)
        if args.name:
            conn.execute("UPDATE tenants SET name = %s WHERE id = %s", (args.name, tenant))
        for column in columns:
            value = getattr(args, column)
            if value is not None:
                conn.execute(f"UPDATE tenants SET {column} = %s WHERE id = %s", (value or None, tenant))
        cap_in, cap_out, *keep = conn.execute(f"SELECT {', '.join(columns)} FROM tenants WHERE id = %s",
                                              (tenant,)).fetchone()
        console.print(f"tenant {args.slug}: max input tokens {cap_in or 'default'}, max output tokens "
                      f"{cap_out or 'default'}; retention (days) "
                      + ", ".join(f"{w} {d or 'for ever'}" for w, d in zip(RETENTION, keep, strict=True))
                      + " (gateways apply caps within 10 s)")
        return 0

    return _with_database(work)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="enclave", description="Enclave: self-hosted conversational AI appliance")
    sub = p.add_subparsers(dest="command", required=True)

    up_p = sub.add_parser("up", help="bring the appliance up on this box (Postgres, Ray Serve, gateway)")
    up_p.add_argument("--profile", help="model profile (default: $ENCLAVE_MODEL_PROFILE or cpu-small)")
    up_p.add_argument("--ready-file", help=argparse.SUPPRESS)  # tests: written once /readyz is 200
    up_p.add_argument("--production", action="store_true",
                      help="refuse unsafe defaults (dev key, generated vault key, example bank, no TLS off loopback)")
    up_p.set_defaults(func=cmd_up)

    models = sub.add_parser("models", help="the model catalog and local store").add_subparsers(dest="models_cmd", required=True)

    def models_cmd(name: str, func, help_: str) -> argparse.ArgumentParser:
        sp = models.add_parser(name, help=help_)
        sp.add_argument("--models-dir", help="model store (default: $ENCLAVE_MODELS_DIR or ./var/models)")
        sp.set_defaults(func=func)
        return sp

    models_cmd("list", cmd_models_list, "list the catalog and what is in the store").add_argument("profile", nargs="?")
    v = models_cmd("verify", cmd_models_verify, "check the sha256 of every file of a profile (or one model)")
    v.add_argument("profile", nargs="?", default="tiny")
    v.add_argument("--model", help="verify one model id instead of a profile")
    models_cmd("fetch", cmd_models_fetch, "download a profile's models (connected machine only)").add_argument("profile")
    b = models_cmd("bundle", cmd_models_bundle, "pack a profile's models into one archive for an air-gapped site")
    b.add_argument("profile")
    b.add_argument("-o", "--output", help="archive path (default: enclave-models-PROFILE.tar)")
    models_cmd("unbundle", cmd_models_unbundle, "extract and verify a bundle into the store").add_argument("archive")
    t = models_cmd("build-tiny", cmd_models_build_tiny, "generate the tiny profile (seeded, offline, seconds)")
    t.add_argument("--canned", help="the one sentence the tiny Whisper transcribes any audio as")
    t.add_argument("--force", action="store_true", help="rebuild even if present")

    db = sub.add_parser("db", help="database").add_subparsers(dest="db_cmd", required=True)
    db.add_parser("migrate", help="apply pending migrations").set_defaults(func=cmd_db_migrate)
    db.add_parser("run", help="the embedded PostgreSQL in the foreground (systemd: enclave-postgres.service)"
                  ).set_defaults(func=cmd_service, service="db")
    serving = sub.add_parser("serving", help="the serving plane").add_subparsers(dest="serving_cmd", required=True)
    sr = serving.add_parser("run", help="Ray head + Serve with the profile's models, foreground (enclave-serving.service)")
    sr.add_argument("--profile", help="model profile (default: $ENCLAVE_MODEL_PROFILE)")
    sr.set_defaults(func=cmd_service, service="serving")
    bundle = sub.add_parser("bundle", help="one archive for an air-gapped site: wheels, models, chart, units")
    bundle.add_argument("-o", "--output", required=True, help="the archive to write (.tar)")
    bundle.add_argument("--profile", default="gpu", help="model profile to carry (default gpu)")
    bundle.add_argument("--extra", default="gpu", choices=["cpu", "gpu", "none"],
                        help="which serving stack's wheels (none: the gateway only)")
    bundle.add_argument("--wheelhouse", help="take the wheels from this folder (a mirror) instead of fetching them")
    bundle.add_argument("--models-dir", help="model store (default: $ENCLAVE_MODELS_DIR or ./var/models)")
    bundle.set_defaults(func=cmd_bundle)
    inst = sub.add_parser("install", help="install from a bundle, offline, and verify everything installed")
    inst.add_argument("--from", dest="bundle", required=True, help="the bundle archive")
    inst.add_argument("--prefix", default="/opt/enclave", help="where to install (default /opt/enclave)")
    inst.add_argument("--models-dir", help="the model store (default PREFIX/models)")
    inst.set_defaults(func=cmd_install)
    config = sub.add_parser("config", help="settings").add_subparsers(dest="config_cmd", required=True)
    ce = config.add_parser("env-file", help="print the documented environment file (every ENCLAVE_* setting)")
    ce.add_argument("-o", "--output", help="write it here instead")
    ce.set_defaults(func=cmd_config_env_file)
    gateway = sub.add_parser("gateway", help="the gateway").add_subparsers(dest="gateway_cmd", required=True)
    gr = gateway.add_parser("run", help="migrate and serve the gateway, foreground (enclave-gateway.service)")
    gr.add_argument("--production", action="store_true", help="refuse unsafe defaults first (as enclave up --production)")
    gr.set_defaults(func=cmd_service, service="gateway")

    tenants = sub.add_parser("tenants", help="tenants and their token caps").add_subparsers(dest="tenants_cmd", required=True)
    tenants.add_parser("list", help="tenants, their caps and session counts").set_defaults(func=cmd_tenants_list)
    ts = tenants.add_parser("set", help="create or update a tenant (caps: 0 = the gateway default)")
    ts.add_argument("slug", help="short id: lower-case letters, digits and dashes")
    ts.add_argument("--name", help="display name")
    ts.add_argument("--max-input-tokens", type=int, help="per user message")
    ts.add_argument("--max-output-tokens", type=int, help="largest max_tokens a request may ask for")
    for what in RETENTION:
        ts.add_argument(f"--retention-{what}-days", type=int, help=f"days to keep {what} content (0 = for ever)")
    ts.set_defaults(func=cmd_tenants_set)

    from deploy import cli_backup, cli_knowledge, cli_trust

    cli_trust.add_commands(sub)
    cli_knowledge.add_commands(sub)
    cli_backup.add_commands(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    import psycopg
    from pydantic import ValidationError

    from deploy.backup import BackupError
    from gateway.store.migrate import MigrationError
    from models.bundle import BundleError
    from models.catalog import CatalogError, UnknownModelError, UnknownProfileError
    from models.fetch import OfflineError, PinMismatchError
    from models.provision import ProvisionError
    from models.store import ModelNotInStoreError

    args = build_parser().parse_args(argv)
    if getattr(args, "models_cmd", "") != "fetch":  # only `fetch` may ever reach the hub
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
        return int(args.func(args))
    except (UnknownProfileError, UnknownModelError, CatalogError, ModelNotInStoreError, OfflineError, PinMismatchError,
            BundleError, ProvisionError, FileNotFoundError, CliError, BackupError, MigrationError) as e:
        err.print(f"[red]enclave: {e.args[0] if e.args else e}[/]")
        return 2
    except ValidationError as e:      # Settings(): an ENCLAVE_* variable the operator set is not valid
        problems = "; ".join(f"{'.'.join(str(p) for p in x['loc']) or 'settings'}: {x['msg']}" for x in e.errors())
        err.print(f"[red]enclave: invalid setting: {problems}[/]")
        return 2
    except psycopg.OperationalError as e:
        err.print(f"[red]enclave: cannot reach the database: {str(e).strip().splitlines()[0] if str(e) else e!r}[/]")
        return 2
    except psycopg.Error as e:        # reached, but refused: no pgvector on an external server, missing privileges
        err.print(f"[red]enclave: the database refused: {str(e).strip().splitlines()[0] if str(e) else e!r}[/]")
        return 2
    except OSError as e:              # a path that is a directory, not writable, under a file: the operator's to fix
        where = f" ({e.filename})" if getattr(e, "filename", None) else ""
        err.print(f"[red]enclave: {e.strerror or e}{where}[/]")
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    # `python -m deploy.cli`: run the package's copy of this module, not this __main__ one, so the command
    # modules (deploy.cli_trust) raise the very CliError class that main() catches.
    from deploy.cli import main as package_main

    sys.exit(package_main())
