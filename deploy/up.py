"""``enclave up``: the whole appliance on one box, in the foreground, until Ctrl-C.

Order matters: models first (fail fast, before minutes of engine start-up), then Postgres and
migrations, then Ray Serve, then the gateway, which is only reported ready when its own /readyz is.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
from rich.console import Console
from rich.panel import Panel

from deploy import ray_runtime
from deploy.postgres import Database, start_database
from gateway.config import Settings
from gateway.store import api_keys
from gateway.store.migrate import MigrationError, migrate
from models.catalog import Catalog, load_catalog
from models.provision import build_tiny_profile
from models.store import ModelStore

console = Console(stderr=True, highlight=False)
SERVE_DEPLOY_TIMEOUT_S = float(os.environ.get("ENCLAVE_SERVE_TIMEOUT_S", "900"))


class UpError(RuntimeError):
    """A start-up problem the operator can fix; printed without a traceback."""


@dataclass
class Running:
    db: Database | None = None
    owns_ray: bool = False
    ray_started_at: float = 0.0
    app_names: tuple[str, ...] = ()
    gateway: subprocess.Popen | None = None
    bank: subprocess.Popen | None = None


def _port_free(host: str, port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def choose_profile(catalog: Catalog, store: ModelStore, wanted: str) -> str:
    """The wanted profile if its models are in the store, else the tiny one (with a loud banner)."""
    catalog.profile(wanted)  # unknown profile: clear error before anything starts
    missing = store.missing_for_profile(wanted)
    if not missing:
        return wanted
    lines = [f"  {role}: {e.id} — {e.describe_source()}" for role, e in missing.items()]
    console.print(
        f"[yellow]Profile '{wanted}' is not in the model store ({store.root}); missing:[/]\n" + "\n".join(lines) +
        f"\n  Fetch on a connected machine: [bold]enclave models fetch {wanted}[/] then "
        f"[bold]enclave models bundle {wanted}[/], carry the archive here and run [bold]enclave models unbundle FILE[/]."
    )
    built = build_tiny_profile(store, on_step=lambda m: console.print(f"  building tiny model {m}"))
    if built:
        console.print(f"  built: {', '.join(built)}")
    console.print(Panel.fit(
        "[bold]RUNNING THE TINY PROFILE[/]\nModels are generated placeholders: answers are random text,\n"
        "speech-to-text returns one canned sentence, and the voice is noise.",
        border_style="red", title="placeholder models",
    ))
    return "tiny"


DEV_KEY_LABEL = "dev admin key (enclave up)"


def write_private(path: Path, text: str) -> None:
    """A secret file readable by its owner alone from the first byte (not written, then chmod-ed)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)


def ensure_dev_key(db_url: str, var_dir: Path) -> Path:
    """First start: a development tenant and an admin API key in var/dev-api-key (mode 0600)."""
    import psycopg

    key_file = var_dir / "dev-api-key"
    with psycopg.connect(db_url, autocommit=True) as conn:
        if key_file.is_file() and api_keys.key_is_active(conn, key_file.read_text().strip()):
            return key_file
        tenant = api_keys.ensure_tenant(conn, "dev", "Development tenant")
        key = api_keys.create_key(conn, tenant, "admin", label=DEV_KEY_LABEL)
    write_private(key_file, key + "\n")
    return key_file


def dev_key_active(db_url: str, var_dir: Path) -> bool:
    """Whether a development admin key still works: any unrevoked key ``enclave up`` made, whether or not its
    file is still there (deleting the file, or another var dir on the same database, does not revoke it)."""
    import psycopg

    key_file = var_dir / "dev-api-key"
    with psycopg.connect(db_url, autocommit=True) as conn:
        if key_file.is_file() and api_keys.key_is_active(conn, key_file.read_text().strip()):
            return True
        return conn.execute("SELECT 1 FROM api_keys WHERE label = %s AND revoked_at IS NULL",
                            (DEV_KEY_LABEL,)).fetchone() is not None


def ensure_vault_key(settings: Settings) -> Path | None:
    """First start: a random PII vault key in var/vault.key (0600), unless a key or a KMS hook is configured.
    Returns the file when it was created now (the operator must back it up: without it the vault is lost)."""
    from gateway.safety.vault import write_new_key

    if settings.vault_key or settings.vault_key_provider or settings.vault_key_path.is_file():
        return None
    return write_new_key(settings.vault_key_path)


EXAMPLE_PACK = Path(__file__).resolve().parent.parent / "packs" / "retail-bank"


def ensure_webhook_secret(settings: Settings) -> Path:
    """First start: the HMAC secret that signs long-running actions' callbacks (var/webhook.key, 0600)."""
    import secrets

    path = settings.webhook_secret_path
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        write_private(path, secrets.token_hex(32) + "\n")
    return path


def start_example_bank(settings: Settings, db_url: str, gw_url: str, log_path: Path) -> tuple[subprocess.Popen, str]:
    """The example bank service the example pack's tools call, on loopback, with its tenant."""
    import psycopg

    with psycopg.connect(db_url, autocommit=True) as conn:
        api_keys.ensure_tenant(conn, "demo-bank", "Northbank (example pack)")
    port = settings.bank_port
    if not _port_free("127.0.0.1", port):
        raise UpError(f"example bank port 127.0.0.1:{port} is in use; set ENCLAVE_BANK_PORT or ENCLAVE_EXAMPLE_BANK=false")
    log = log_path.open("ab")
    proc = subprocess.Popen(
        [sys.executable, "-m", "deploy.example_bank", "--host", "127.0.0.1", "--port", str(port),
         "--webhook-url", f"{gw_url}/v1/actions/webhook", "--webhook-secret-file", str(settings.webhook_secret_path)],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise UpError(f"the example bank service exited with code {proc.returncode}; see {log_path}")
        try:
            if httpx.get(f"{url}/health", timeout=2, trust_env=False).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    proc.kill()
    raise UpError(f"the example bank service did not start; see {log_path}")


def gateway_database_url(owner_url: str, role: str) -> str | None:
    """The owner's URL with the gateway's restricted role as the user, when that role can log in this way
    (the embedded server trusts its local socket). None: the gateway falls back to SET ROLE."""
    import psycopg
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    params = conninfo_to_dict(owner_url)
    params.pop("password", None)
    url = make_conninfo(**{**params, "user": role})
    try:
        with psycopg.connect(url, autocommit=True, connect_timeout=5) as conn:
            if conn.execute("SELECT current_user").fetchone()[0] == role:
                return url
    except psycopg.Error:
        pass
    return None


RETENTION_LOCK = 0x456E636C      # a Postgres advisory lock: one purge at a time, however many gateways run one


class RetentionJob(threading.Thread):
    """Applies every tenant's retention policy now and then (as the database owner: the gateway's role may
    not clear audit content). A failed run is reported and retried at the next interval. `enclave up` and
    `enclave gateway run` (systemd, the Helm chart's replicas) each run one; an advisory lock lets one purge
    at a time and the others skip that interval."""

    def __init__(self, db_url: str, interval_s: float, stop: threading.Event) -> None:
        super().__init__(name="retention", daemon=True)
        self.db_url, self.interval_s, self.stop = db_url, interval_s, stop

    def run(self) -> None:
        import psycopg

        from gateway.store.retention import purge

        while not self.stop.wait(self.interval_s):
            try:
                with psycopg.connect(self.db_url, autocommit=True) as conn:
                    if not conn.execute("SELECT pg_try_advisory_lock(%s)", (RETENTION_LOCK,)).fetchone()[0]:
                        continue          # another gateway is purging now
                    report = purge(conn)
                done = [t for t in report.tenants if t.total]
                if done:
                    console.print("retention purge: " + ", ".join(f"{t.tenant} {t.total} items" for t in done))
            except Exception as e:  # the appliance keeps running; the next interval retries
                console.print(f"[yellow]retention purge failed: {e}[/]")


def start_gateway(settings: Settings, db_url: str, profile: str, log_path: Path,
                  base_env: dict[str, str] | None = None, gateway_db_url: str | None = None) -> subprocess.Popen:
    """The gateway as its own process (deploy/gateway_workers.py); its settings travel as ENCLAVE_* vars.
    Tests start extra gateways with this too, with ``base_env`` carrying their own settings."""
    env = dict(os.environ if base_env is None else base_env)
    if gateway_db_url:
        env["ENCLAVE_GATEWAY_DATABASE_URL"] = gateway_db_url
    env.update({
        "ENCLAVE_DATABASE_URL": db_url,
        "ENCLAVE_MODEL_PROFILE": profile,
        "ENCLAVE_SERVING_URL": settings.serving_base_url,
        "ENCLAVE_VAR_DIR": str(settings.var_dir.resolve()),
    })
    log = log_path.open("ab")
    # One uvicorn server, or ENCLAVE_GATEWAY_WORKERS of them (from ``env``, as every setting the gateway reads)
    return subprocess.Popen([sys.executable, "-m", "deploy.gateway_workers", *uvicorn_args(settings)],
                            env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def uvicorn_options(settings: Settings) -> dict:
    """How uvicorn serves the gateway: address, no access log, idle connections kept, and HTTPS when
    certificate files are set."""
    options: dict = {"host": settings.gateway_host, "port": settings.gateway_port, "access_log": False,
                     "timeout_keep_alive": settings.gateway_keepalive_s}
    if settings.gateway_tls:
        options |= {"ssl_certfile": str(settings.tls_cert_file), "ssl_keyfile": str(settings.tls_key_file)}
    return options


def uvicorn_args(settings: Settings) -> list[str]:
    """The same options on uvicorn's command line (the gateway as a subprocess of `enclave up`)."""
    args = []
    for name, value in uvicorn_options(settings).items():
        args += ["--no-access-log"] if name == "access_log" else [f"--{name.replace('_', '-')}", str(value)]
    return args


def wait_serve(apps: list, deadline: float) -> None:
    from serving.app import app_status

    last = ""
    with console.status("Ray Serve: deploying roles…") as status:
        while time.monotonic() < deadline:
            states = app_status()
            mine = {a.role: states.get(a.role, ("NOT_STARTED", "")) for a in apps}
            failed = {r: m for r, (s, m) in mine.items() if "DEPLOY_FAILED" in s or "UNHEALTHY" in s}
            if failed:
                raise UpError("serving failed to deploy:\n" + "\n".join(f"  {r}: {m[-2000:]}" for r, m in failed.items()))
            line = "  ".join(f"{r}={s.split('.')[-1].lower()}" for r, (s, _m) in mine.items())
            if line != last:
                status.update(f"Ray Serve: {line}")
                last = line
            if all("RUNNING" in s for s, _m in mine.values()):
                return
            time.sleep(1.0)
    raise UpError(f"serving did not become ready within {SERVE_DEPLOY_TIMEOUT_S:.0f} s (ENCLAVE_SERVE_TIMEOUT_S)")


def _wait_ready(url: str, gateway: subprocess.Popen, timeout_s: float, log_path: Path) -> None:
    deadline = time.monotonic() + timeout_s
    last: dict = {}
    with console.status("gateway: waiting for /readyz…"):
        while time.monotonic() < deadline:
            if gateway.poll() is not None:
                raise UpError(f"the gateway exited with code {gateway.returncode}; see {log_path}")
            try:  # our own process on this box: its certificate is not what is being checked here
                r = httpx.get(f"{url}/readyz", timeout=3, trust_env=False, verify=False)
                if r.status_code == 200:
                    return
                last = r.json().get("checks", {})
            except (httpx.HTTPError, ValueError):
                pass
            time.sleep(0.5)
    raise UpError(f"the gateway was not ready within {timeout_s:.0f} s: {last}")


def shutdown(running: Running) -> None:
    """Stop everything we started, newest first; every step runs even if an earlier one fails."""
    for proc in (running.gateway, running.bank):
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)   # its own group (start_new_session): a gateway's workers too
                proc.wait()
    if running.ray_started_at:
        try:
            ray_runtime.stop_serving(list(running.app_names), running.owns_ray, running.ray_started_at)
        except Exception as e:  # keep stopping the rest
            console.print(f"[yellow]while stopping Ray: {e}[/]")
    if running.db is not None:
        running.db.stop()


def up(settings: Settings, profile: str | None = None, ready_file: Path | None = None, production: bool = False) -> int:
    """Bring the appliance up and block until SIGINT/SIGTERM. Returns the process exit code. ``production``
    refuses unsafe defaults (deploy/production.py) and creates no development key or vault key."""
    if production:
        from deploy.production import configuration_problems

        if problems := configuration_problems(settings):
            console.print("[red]enclave up: refusing to start in production mode:[/]\n"
                          + "\n".join(f"  - {p}" for p in problems))
            return 1
    var_dir = settings.var_dir
    var_dir.mkdir(parents=True, exist_ok=True)
    (var_dir / "log").mkdir(exist_ok=True)
    stop = threading.Event()
    up_and_running = False

    def on_signal(*_: object) -> None:
        first = not stop.is_set()
        stop.set()
        if first and not up_and_running:     # once: a second Ctrl-C must not cut the cleanup short
            # Still starting (a model load takes minutes): interrupt it, so the cleanup below stops what has
            # started. Only setting the event was ignored until start-up ended, and an operator who then
            # used kill -9 left PostgreSQL, Ray and the example bank running.
            raise KeyboardInterrupt

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, on_signal)
    running = Running()
    try:
        for name, host, port, var in (("gateway", settings.gateway_host, settings.gateway_port, "ENCLAVE_GATEWAY_PORT"),
                                      ("serving", settings.serve_host, settings.serve_port, "ENCLAVE_SERVE_PORT")):
            if not _port_free(host, port):
                raise UpError(f"{name} port {host}:{port} is in use; set {var}")
        catalog = load_catalog()
        store = ModelStore(settings.model_store_dir, catalog)
        chosen = choose_profile(catalog, store, profile or settings.model_profile)
        console.print(f"[bold]profile[/] {chosen}; models from {store.root}")

        with console.status("PostgreSQL: starting…"):
            running.db = start_database(var_dir, settings.database_url)
            try:
                applied = migrate(running.db.url)
            except MigrationError as e:
                raise UpError(str(e)) from e
        console.print(f"[green]✓[/] PostgreSQL ({'embedded, data in ' + str(var_dir / 'pg') if running.db.embedded else 'external'})"
                      + (f"; migrations applied: {', '.join(applied)}" if applied else "; schema up to date"))
        if production:
            from deploy.production import dev_key_problem

            if problems := dev_key_problem(dev_key_active(running.db.url, var_dir)):
                raise UpError("refusing to start in production mode:\n" + "\n".join(f"  - {p}" for p in problems))
            key_file = None
        else:
            key_file = ensure_dev_key(running.db.url, var_dir)
        new_vault_key = None if production else ensure_vault_key(settings)
        if new_vault_key:
            console.print(f"[yellow]created the PII vault key {new_vault_key}: back it up apart from the database "
                          "(without it the vault's originals cannot be read)[/]")
        gw_db_url = settings.gateway_database_url or (
            gateway_database_url(running.db.url, settings.db_role) if settings.db_role else None)
        if gw_db_url is None and settings.db_role:
            console.print(f"[yellow]the gateway cannot log in as '{settings.db_role}'; it connects as the owner and "
                          "switches to that role (SET ROLE). Give it its own ENCLAVE_GATEWAY_DATABASE_URL in production.[/]")
        RetentionJob(running.db.url, settings.retention_interval_s, stop).start()

        with console.status("Ray: starting…"):
            running.ray_started_at = time.time()
            running.owns_ray = ray_runtime.start_ray(catalog.profile(chosen), os.environ.get("RAY_ADDRESS"))
            ray_runtime.start_serve(settings.serve_host, settings.serve_port)
            from serving.app import deploy

            apps = deploy(catalog, chosen, store)
            running.app_names = tuple(a.role for a in apps)
        console.print(f"[green]✓[/] Ray ({'local head' if running.owns_ray else 'joined ' + os.environ['RAY_ADDRESS']}); Serve on http://{settings.serve_host}:{settings.serve_port}")
        wait_serve(apps, time.monotonic() + SERVE_DEPLOY_TIMEOUT_S)
        console.print("[green]✓[/] serving: " + ", ".join(f"{a.role}={a.model_id}" for a in apps))

        gw_log = var_dir / "log" / "gateway.log"
        gw_url = settings.gateway_url
        ensure_webhook_secret(settings)
        gw_env = dict(os.environ)
        bank_url = ""
        if settings.example_bank:
            running.bank, bank_url = start_example_bank(settings, running.db.url, gw_url, var_dir / "log" / "bank.log")
            packs = [str(p) for p in settings.packs]
            if str(EXAMPLE_PACK) not in packs:
                packs.append(str(EXAMPLE_PACK))
            gw_env.update({"ENCLAVE_BANK_URL": bank_url, "ENCLAVE_PACKS": json.dumps(packs)})
            console.print(f"[green]✓[/] example bank service on {bank_url} (pack retail-bank, tenant demo-bank)")
        running.gateway = start_gateway(settings, running.db.url, chosen, gw_log, base_env=gw_env, gateway_db_url=gw_db_url)
        _wait_ready(gw_url, running.gateway, 60, gw_log)
        console.print(Panel.fit(
            f"Enclave is up ({chosen} profile)\n"
            f"  gateway  {gw_url}   (/healthz, /readyz; log {gw_log})\n"
            f"  serving  {settings.serving_base_url}   (OpenAI paths: /v1/chat/completions, /v1/embeddings, …)\n"
            f"  API key  {key_file or 'named keys only (enclave keys create)'}\n"
            "Ctrl-C stops everything.", border_style="green",
        ))
        if ready_file:  # for scripts and tests: where everything is (the file is private to the operator)
            ready_file.write_text(json.dumps({"gateway_url": gw_url, "serving_url": settings.serving_base_url,
                                              "database_url": running.db.url, "profile": chosen,
                                              "bank_url": bank_url}))
            ready_file.chmod(0o600)
        up_and_running = True
        while not stop.wait(1.0):
            if running.gateway.poll() is not None:
                raise UpError(f"the gateway exited with code {running.gateway.returncode}; see {gw_log}")
        console.print("stopping…")
        return 0
    except UpError as e:
        console.print(f"[red]enclave up: {e}[/]")
        return 1
    except KeyboardInterrupt:
        console.print("interrupted while starting; stopping what started…")
        return 130
    finally:
        # From here on a signal must not raise: a Ctrl-C during the cleanup of a failed start cut it short and
        # left the gateway and the example bank running (each in its own session), holding their ports.
        stop.set()
        shutdown(running)
        console.print("stopped.")
