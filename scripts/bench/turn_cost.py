"""Turn cost: what one request costs the gateway in CPU, by kind, sent one at a time.

The gateway benchmark (gateway.py) measures latency and throughput side by side with the engine, and on a
2-core box those ratios swing with whatever else runs. CPU per request, metered on the gateway's own
processes with nothing else in flight, is steady, and it says where a burst's time goes:

* ``GET /healthz``: the HTTP stack's floor (uvicorn, the middlewares, one JSON answer);
* ``refused``: a chat request refused after authentication and validation (an unknown model), no turn;
* ``turn, 1 token``: a whole streamed turn (preprocess, guard, context, the upstream call, the stream, the
  record): the fixed cost that a burst of new turns queues on;
* ``turn, N tokens``: the same with N tokens; ``(N − 1)`` tokens more, so the relay's cost per token
  follows.

The upstream is scripts/bench/paced_upstream.py (a clock, a few ms per token), with Postgres and the
gateway started as gateway.py --upstream paced starts them. The embedded Postgres's CPU for the same
requests is given beside the gateway's: the turn is stored there. Each figure leaves out the processes' idle
rate, measured for 5 s before each kind (the kernel counts CPU in 10 ms ticks). Writes JSON to scripts/bench/results/ and prints a table.

    .venv/bin/python scripts/bench/turn_cost.py [--requests 300] [--max-tokens 64] [--gateway-workers 1]
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.table import Table

# This folder holds gateway.py, named like the `gateway` package: drop the folder from the path, put the repo first.
_HERE, _REPO = Path(__file__).resolve().parent, Path(__file__).resolve().parents[2]
sys.path[:] = [str(_REPO)] + [p for p in sys.path if Path(p or ".").resolve() != _HERE]

from deploy.background import ApplianceStartError, BackgroundGateway, free_port, stop_process, wait_up  # noqa: E402
from scripts.bench.common import cpu_ms_per_request, idle_rates, write_results  # noqa: E402
from scripts.bench.gateway import LOG_DIR, chain_on, gateway_meters, start_paced  # noqa: E402

console = Console()
PROMPT = "Write a long story about a small bank in a mountain town."
ONE_TOKEN = "turn, 1 token"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--requests", type=int, default=300, help="requests per kind (default: 300)")
    ap.add_argument("--warmup", type=int, default=20, help="unmeasured requests per kind first (default: 20)")
    ap.add_argument("--max-tokens", type=int, default=64, help="tokens of the longer turn (default: 64)")
    ap.add_argument("--token-ms", type=float, default=2.0, help="the paced upstream's time per token (default: 2)")
    ap.add_argument("--gateway-workers", type=int, default=1, help="gateway processes (CPU is summed over them)")
    ap.add_argument("--models-dir", type=Path, default=_REPO / "var" / "models",
                    help="model store with the profile's LLM tokenizer (default: var/models)")
    ap.add_argument("--idle-s", type=float, default=5.0, help="window for each kind's idle rate (default: 5)")
    ap.add_argument("--profile", default="tiny")
    ap.add_argument("--up-timeout", type=float, default=120.0)
    return ap.parse_args(argv)


@dataclass
class Kind:
    name: str
    send: Callable[[], int]       # one request, read to its end; its HTTP status
    expected: int                 # the status it must get (any other counts as an error)


def metered(meters: dict[str, Callable[[], float]], kind: Kind, n: int, idle_s: float) -> dict[str, Any]:
    """Send ``n`` requests one after another; CPU per request on each meter, less its idle rate (measured over
    ``idle_s`` first: the kernel counts CPU in 10 ms ticks, so a short window misjudges it)."""
    idle = asyncio.run(idle_rates(meters, idle_s))
    start_cpu, start = {k: m() for k, m in meters.items()}, time.perf_counter()
    statuses = [kind.send() for _ in range(n)]
    wall = time.perf_counter() - start
    cpu = cpu_ms_per_request(meters, start_cpu, idle, wall, n)
    return {"n": n, "errors": sum(s != kind.expected for s in statuses), "status": statuses[0],
            "wall_ms_per_request": wall * 1000.0 / n, "cpu_ms_per_request": {k: round(v, 3) for k, v in cpu.items()},
            "idle_cores": {k: round(v, 4) for k, v in idle.items()}}


def kinds(client: httpx.Client, max_tokens: int) -> list[Kind]:
    def turn(tokens: int, model: str = "enclave") -> Callable[[], int]:
        body = {"model": model, "messages": [{"role": "user", "content": PROMPT}], "stream": True,
                "max_tokens": tokens, "ignore_eos": True}

        def send() -> int:
            with client.stream("POST", "/v1/chat/completions", json=body) as r:
                for _ in r.iter_bytes():
                    pass
            return r.status_code
        return send

    return [Kind("GET /healthz", lambda: client.get("/healthz").status_code, 200),
            Kind("refused (unknown model)", turn(1, model="no-such-model"), 404),
            Kind(ONE_TOKEN, turn(1), 200),
            Kind(f"turn, {max_tokens} tokens", turn(max_tokens), 200)]


def table(rows: dict[str, dict[str, Any]], per_token_us: dict[str, float]) -> Table:
    t = Table(title="What one request costs the gateway (sent one at a time, paced upstream)")
    for col in ("request", "n", "status", "errors", "gateway CPU ms", "Postgres CPU ms", "wall ms"):
        t.add_column(col, justify="left" if col == "request" else "right")
    for name, r in rows.items():
        cpu = r["cpu_ms_per_request"]
        t.add_row(name, str(r["n"]), str(r["status"]), str(r["errors"]), f"{cpu.get('gateway', float('nan')):.2f}",
                  f"{cpu.get('postgres', float('nan')):.2f}", f"{r['wall_ms_per_request']:.1f}")
    t.caption = ("per token relayed: " + ", ".join(f"{k} {v:.0f} µs" for k, v in per_token_us.items())
                 + "; CPU less each process's idle rate")
    return t


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    port = free_port()
    upstream = f"http://127.0.0.1:{port}"
    log = LOG_DIR / "bench-turn-cost-upstream.log"
    paced = start_paced(port, 5.0, args.token_ms, log)
    gateway: BackgroundGateway | None = None
    ok = False
    try:
        if not wait_up([f"{upstream}/health"], paced, 60):
            console.print(f"[red]paced upstream not ready; see {log}[/]")
            return 1
        gateway = BackgroundGateway.on_free_port(
            Path(tempfile.mkdtemp(prefix="enclave-turn-cost-")), args.models_dir.resolve(), args.profile,
            LOG_DIR / "bench-turn-cost-gateway.log", ENCLAVE_RATE_LIMIT_PER_MIN="1000000",
            ENCLAVE_GATEWAY_WORKERS=str(args.gateway_workers),
            ENCLAVE_LLM_CHAIN=chain_on(upstream))
        with console.status(f"Postgres and the gateway (log {gateway.log_path})…"):
            gateway.start(args.up_timeout)
        meters = gateway_meters(gateway.gateway_url, gateway)
        rows: dict[str, dict[str, Any]] = {}
        with httpx.Client(base_url=gateway.gateway_url, headers={"Authorization": f"Bearer {gateway.api_key}"},
                          timeout=60, trust_env=False) as client:
            for kind in kinds(client, args.max_tokens):
                with console.status(f"{kind.name}: {args.requests} requests…"):
                    for _ in range(args.warmup):
                        kind.send()
                    rows[kind.name] = metered(meters, kind, args.requests, args.idle_s)
        one, many = rows[ONE_TOKEN], list(rows.values())[-1]
        # The gateway's only: Postgres does the same work for either turn (one statement), and what it shows
        # more for the longer one is its background (the WAL writer, autovacuum) over a longer wall time.
        per_token_us = {"gateway": max(0.0, many["cpu_ms_per_request"]["gateway"] - one["cpu_ms_per_request"]["gateway"])
                        * 1000.0 / max(1, args.max_tokens - 1)}
        console.print(table(rows, per_token_us))
        path = write_results("turn-cost", {
            "config": {"requests": args.requests, "warmup": args.warmup, "max_tokens": args.max_tokens,
                       "token_ms": args.token_ms, "idle_s": args.idle_s, "gateway_workers": args.gateway_workers, "profile": args.profile},
            "kinds": rows, "per_token_us": {k: round(v, 2) for k, v in per_token_us.items()}})
        console.print(f"results: {path}")
        ok = True
        return 0
    except (ApplianceStartError, httpx.HTTPError) as e:
        console.print(f"[red]turn cost: {e}[/]")
        return 1
    finally:
        if gateway is not None:
            gateway.stop()
            if ok:
                shutil.rmtree(gateway.var_dir, ignore_errors=True)
            else:
                console.print(f"kept the gateway's var dir: {gateway.var_dir}")
        stop_process(paced, signal.SIGTERM, 10)


if __name__ == "__main__":
    sys.exit(main())
