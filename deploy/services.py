"""The appliance as three long-running services, one per systemd unit (deploy/systemd/):

    enclave db run        the embedded PostgreSQL (skip it when ENCLAVE_DATABASE_URL names an external one)
    enclave serving run   a Ray head with Serve and the profile's model roles
    enclave gateway run   migrations, the production checks, then the gateway (HTTPS when certificates are set)

``enclave up`` runs the same pieces in one foreground process for a laptop; here each piece has its own
lifetime, so systemd restarts one without the others. They meet only through settings: the embedded
database writes its URL to ``VAR_DIR/database-url`` (mode 0600) for the gateway to read.
"""

from __future__ import annotations

import os
import signal
import threading
import time

from rich.console import Console

from gateway.config import Settings

console = Console(stderr=True, highlight=False)
DATABASE_URL_FILE = "database-url"


class ServiceError(RuntimeError):
    """A start-up problem the operator can fix; printed as one red line, exit 1 (systemd restarts later)."""


def notify_ready(status: str) -> None:
    """Tell systemd (Type=notify units) that this service is ready, so units ordered After= it wait for that
    rather than for the process to merely exist. Without NOTIFY_SOCKET (not under systemd) it does nothing."""
    import socket

    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return
    if address.startswith("@"):   # an abstract socket
        address = "\0" + address[1:]
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.sendto(f"READY=1\nSTATUS={status}".encode(), address)


def _stop_event() -> threading.Event:
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    return stop


def database_url(settings: Settings) -> str:
    """ENCLAVE_DATABASE_URL, else the URL the embedded database service published."""
    if settings.database_url:
        return settings.database_url
    published = settings.var_dir / DATABASE_URL_FILE
    if published.is_file():
        return published.read_text().strip()
    raise ServiceError(f"no database: set ENCLAVE_DATABASE_URL, or start the embedded one (enclave db run, "
                       f"unit enclave-postgres.service), which publishes its URL in {published}")


def run_database(settings: Settings) -> int:
    """The embedded PostgreSQL in the foreground: migrated, its URL published, stopped cleanly on SIGTERM."""
    from deploy.postgres import start_database
    from gateway.store.migrate import migrate

    if settings.database_url:
        raise ServiceError("ENCLAVE_DATABASE_URL is set: this box uses that server; disable enclave-postgres.service")
    stop = _stop_event()
    settings.var_dir.mkdir(parents=True, exist_ok=True)
    db = start_database(settings.var_dir, None)
    published = settings.var_dir / DATABASE_URL_FILE
    try:
        applied = migrate(db.url)
        published.write_text(db.url + "\n")
        published.chmod(0o600)
        console.print(f"PostgreSQL (embedded) ready, data in {settings.var_dir / 'pg'}"
                      + (f"; migrations applied: {', '.join(applied)}" if applied else ""))
        notify_ready("PostgreSQL ready")
        stop.wait()
        return 0
    finally:
        published.unlink(missing_ok=True)
        db.stop()
        console.print("PostgreSQL stopped")


def run_serving(settings: Settings, profile: str | None) -> int:
    """A local Ray head with Serve on ``serve_host:serve_port`` and every role of the profile, until SIGTERM.
    Unlike ``enclave up`` it never falls back to the tiny profile: missing models are an error to fix."""
    from deploy import ray_runtime
    from deploy.up import SERVE_DEPLOY_TIMEOUT_S, UpError, wait_serve
    from models.catalog import load_catalog
    from models.store import ModelStore
    from serving.app import deploy

    catalog = load_catalog()
    chosen = profile or settings.model_profile
    store = ModelStore(settings.model_store_dir, catalog)
    catalog.profile(chosen)
    if missing := store.missing_for_profile(chosen):
        raise ServiceError(f"profile {chosen!r} is not in the model store {store.root}: missing "
                           + ", ".join(f"{role} ({e.id})" for role, e in missing.items())
                           + "; install it from a bundle: enclave install --from BUNDLE")
    stop = _stop_event()
    started_at = time.time()
    owns = ray_runtime.start_ray(catalog.profile(chosen), os.environ.get("RAY_ADDRESS"))
    apps = []
    try:
        ray_runtime.start_serve(settings.serve_host, settings.serve_port)
        apps = deploy(catalog, chosen, store)
        try:
            wait_serve(apps, time.monotonic() + SERVE_DEPLOY_TIMEOUT_S)
        except UpError as e:
            raise ServiceError(str(e)) from e
        console.print(f"serving {chosen} on {settings.serving_base_url}: "
                      + ", ".join(f"{a.role}={a.model_id}" for a in apps))
        notify_ready(f"serving {chosen}")
        stop.wait()
        return 0
    finally:
        ray_runtime.stop_serving([a.role for a in apps], owns, started_at)
        console.print("serving stopped")


def run_gateway(settings: Settings, production: bool) -> int:
    """Migrate, check, and serve the gateway from this process (uvicorn, or its worker processes), HTTPS when
    certificates are set."""
    from deploy import gateway_workers
    from deploy.production import configuration_problems, dev_key_problem
    from deploy.up import RetentionJob, dev_key_active, gateway_database_url, uvicorn_options
    from gateway.store.migrate import migrate

    if production and (problems := configuration_problems(settings)):
        raise ServiceError("refusing to start in production mode:\n" + "\n".join(f"  - {p}" for p in problems))
    url = database_url(settings)
    applied = migrate(url)
    if applied:
        console.print(f"migrations applied: {', '.join(applied)}")
    if production and (problems := dev_key_problem(dev_key_active(url, settings.var_dir))):
        raise ServiceError("refusing to start in production mode:\n" + "\n".join(f"  - {p}" for p in problems))
    # Retention runs where the owner's credentials are: here, as under `enclave up` (systemd and Helm installs
    # had no purge at all: a tenant's retention policy was stored and never applied).
    RetentionJob(url, settings.retention_interval_s, threading.Event()).start()
    os.environ["ENCLAVE_DATABASE_URL"] = url   # the app factory reads its settings from the environment
    if not settings.gateway_database_url and settings.db_role:
        if role_url := gateway_database_url(url, settings.db_role):
            os.environ["ENCLAVE_GATEWAY_DATABASE_URL"] = role_url
    console.print(f"gateway on {settings.gateway_url}"
                  + (f" ({settings.gateway_workers} processes)" if settings.gateway_workers > 1 else ""))
    options = {"log_level": settings.log_level.lower(), **uvicorn_options(settings)}
    host, port = options.pop("host"), options.pop("port")
    return gateway_workers.serve(host, port, settings.gateway_workers, settings.var_dir, options)


def run(service: str, settings: Settings, *, profile: str | None = None, production: bool = False) -> int:
    from gateway.store.migrate import MigrationError

    try:
        if service == "db":
            return run_database(settings)
        if service == "serving":
            return run_serving(settings, profile)
        return run_gateway(settings, production)
    except (ServiceError, MigrationError) as e:
        console.print(f"[red]enclave {service} run: {e}[/]")
        return 1

