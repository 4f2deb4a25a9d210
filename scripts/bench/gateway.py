"""Gateway benchmark: the same streamed chat request sent to the Serve app directly, through the Enclave
gateway, and through LiteLLM's proxy (a well-known OpenAI-compatible proxy, as a yardstick), in one run,
interleaved, reported as ratios against direct (these boxes are noisy; absolute numbers mean little).

    .venv/bin/python scripts/bench/gateway.py [--profile tiny] [--concurrency 1,16,64] [--rounds 2] [--upstream paced]

--upstream paced puts scripts/bench/paced_upstream.py (a clock-driven stand-in for a GPU engine) in place of
the Serve app, so what the relay itself costs is measured apart from the CPU engine's contention.
--upstream URL does the same with an OpenAI-compatible engine you run yourself: a vLLM on a GPU box (the
reference the targets are set against), or scripts/bench/torch_engine.py where vLLM cannot be installed.
With either, the benchmark starts only Postgres and the gateway (no Ray), its chain pointed at that upstream.

Unless --serving-url (with --gateway-url and --api-key-file) is given it runs `enclave up` itself in a
private var dir on free ports. LiteLLM runs from its own venv (scripts/bench/litellm_venv.sh builds
it; --skip-litellm leaves it out). Writes JSON to scripts/bench/results/ and prints a table plus
PASS/MISS verdict lines (informational: a MISS never fails the run).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import math
import os
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import httpx
import psutil
from rich.console import Console
from rich.table import Table

# This file is named like the `gateway` package: drop its own folder from the path, put the repo first.
_HERE, _REPO = Path(__file__).resolve().parent, Path(__file__).resolve().parents[2]
sys.path[:] = [str(_REPO)] + [p for p in sys.path if Path(p or ".").resolve() != _HERE]

from deploy.background import (  # noqa: E402
    ApplianceStartError,
    BackgroundAppliance,
    BackgroundGateway,
    free_port,
    stop_process,
    wait_up,
)
from gateway.config import auto_gateway_workers  # noqa: E402
from scripts.bench.common import (  # noqa: E402
    cpu_ms_per_request,
    cpu_seconds,
    idle_rates,
    listening_process,
    pct,
    run_concurrent,
    write_results,
)
from scripts.bench.llm_stream import make_session, run_async, stream_chat  # noqa: E402

console = Console(width=max(200, Console().width))  # the table has 16 columns
LOG_DIR = _REPO / "var" / "log"
LITELLM_VENV = _REPO / "var" / "bench" / "litellm-venv"
LITELLM_SCRIPT = _HERE / "litellm_venv.sh"
GATEWAY_ALIAS = "enclave"  # the gateway's name for its default chain
PROMPT = "Tell me a story."
WARMUP_REQUESTS = 4
BATCH_WARMUP_TOKENS = 8  # each batch's unmeasured wave: short, the same concurrency as the batch
C1_MAX_REQUESTS = 24  # c=1 is sequential: cap it so a run stays short
# Verdict thresholds (informational).
MAX_TTFT_P95_DELTA_MS, DELTA_LEVEL = 10.0, 16
MIN_THROUGHPUT_RATIO = 0.95


def log_tail(path: Path, n: int = 4000) -> str:
    return path.read_text(errors="replace")[-n:] if path.exists() else ""


def ensure_litellm(venv: Path) -> str:
    """Build the benchmark-only venv if missing (idempotent); returns LiteLLM's version."""
    subprocess.run(["bash", str(LITELLM_SCRIPT), str(venv)], cwd=_REPO, check=True)
    out = subprocess.run([str(venv / "bin" / "python"), "-c", "import importlib.metadata as m; print(m.version('litellm'))"],
                         capture_output=True, text=True, check=True)
    return out.stdout.strip()


def litellm_config(model_id: str, serving_url: str, master_key: str) -> str:
    """One model, pointed at the Serve app's OpenAI routes; no database. LiteLLM 1.106 refuses to start
    without a master key, and the gateway checks an API key too, so both targets authenticate.
    Values are JSON strings, which YAML reads as double-quoted scalars."""
    q = json.dumps
    return "\n".join([
        "model_list:",
        f"  - model_name: {q(model_id)}",
        "    litellm_params:",
        f"      model: {q('openai/' + model_id)}",
        f"      api_base: {q(serving_url + '/v1')}",
        '      api_key: "none"',
        "litellm_settings:",
        "  telemetry: false",
        "general_settings:",
        f"  master_key: {q(master_key)}",
        "",
    ])


def start_litellm(venv: Path, config: Path, port: int, log: Path) -> subprocess.Popen:
    # Strip anything that would switch on LiteLLM's database or override the config, and keep its upstream calls off any proxy.
    drop = {"DATABASE_URL", "LITELLM_MASTER_KEY", "LITELLM_CONFIG_PATH"}
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env.update({
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",  # otherwise it downloads a price list at import
        "LITELLM_TELEMETRY": "False",
        "LITELLM_LOG": "ERROR",  # our gateway runs with --no-access-log: same footing
        "NO_PROXY": "127.0.0.1,localhost",
        "no_proxy": "127.0.0.1,localhost",
        "PYTHONUNBUFFERED": "1",
    })
    args = [str(venv / "bin" / "litellm"), "--config", str(config), "--host", "127.0.0.1", "--port", str(port),
            "--num_workers", "1"]
    return subprocess.Popen(args, cwd=config.parent, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT,
                            start_new_session=True)


def served_model_id(serving_url: str) -> str:
    r = httpx.get(f"{serving_url}/v1/models", timeout=30, trust_env=False)
    r.raise_for_status()
    return r.json()["data"][0]["id"]


@dataclass
class Target:
    name: str
    url: str
    model: str
    headers: dict[str, str] = field(default_factory=dict)
    # Cumulative CPU seconds of the processes that do this path's work besides the shared upstream (the
    # gateway and its Postgres, LiteLLM, or the paced upstream itself for the direct path), by name.
    cpu_meters: dict[str, Callable[[], float]] = field(default_factory=dict)


def process_tree_cpu(proc: Any) -> Callable[[], float]:
    """CPU of a process and its current children (LiteLLM's and Postgres's workers), for a batch's delta.
    A child that exits mid-batch moves into the parent's children_* times, so it is still counted."""
    def total() -> float:
        t = proc.cpu_times()
        cpu = t.user + t.system + t.children_user + t.children_system
        for child in proc.children(recursive=True):
            try:
                cpu += cpu_seconds(child)
            except psutil.NoSuchProcess:
                pass
        return cpu
    return total


def loopback_cpu(url: str | None) -> Callable[[], float] | None:
    """The CPU meter of the one process listening on this URL's port, when the URL is on this machine."""
    parts = urlsplit(url or "")
    if parts.hostname in ("127.0.0.1", "localhost") and parts.port:
        proc = listening_process(parts.port)
        return lambda: cpu_seconds(proc)
    return None


def gateway_meters(gateway_url: str, appliance: BackgroundAppliance | BackgroundGateway | None
                   ) -> dict[str, Callable[[], float]]:
    """The gateway process (when it listens on this machine) and, for an appliance this benchmark started,
    its embedded Postgres: the turn is stored there, so that CPU is part of what the gateway costs."""
    meters: dict[str, Callable[[], float]] = {}
    if isinstance(appliance, BackgroundGateway) and appliance.proc is not None:
        meters["gateway"] = process_tree_cpu(psutil.Process(appliance.proc.pid))  # all its worker processes
    elif (gateway := loopback_cpu(gateway_url)) is not None:
        meters["gateway"] = gateway
    if appliance is not None:
        postmaster = psutil.Process(int((appliance.var_dir / "pg" / "postmaster.pid").read_text().split()[0]))
        meters["postgres"] = process_tree_cpu(postmaster)
    return meters


def upstream_meters(upstream_url: str | None) -> dict[str, Callable[[], float]]:
    """The upstream's own CPU when it is one process on this machine: the paced stand-in, or an engine given
    by --upstream URL on loopback (not Ray Serve, whose work spreads over its actors: no meter then)."""
    meter = loopback_cpu(upstream_url)
    return {"upstream": meter} if meter is not None else {}


def request_body(model: str, max_tokens: int) -> dict[str, Any]:
    """The one body every target gets (only the model name differs: each target's name for the same model)."""
    return {"model": model, "messages": [{"role": "user", "content": PROMPT}], "stream": True,
            "stream_options": {"include_usage": True}, "max_tokens": max_tokens, "ignore_eos": True, "temperature": 0}


async def pick_gateway_model(client: aiohttp.ClientSession, served_id: str, max_tokens: int) -> str:
    """The gateway's alias for its default chain; the served id if the gateway does not know the alias."""
    r = await stream_chat(client, request_body(GATEWAY_ALIAS, max_tokens))
    if not r["ok"] and r.get("status") in (400, 404, 422):
        console.print(f"[yellow]gateway refused model {GATEWAY_ALIAS!r} ({r['error'][:80]}); using {served_id!r}[/]")
        return served_id
    return GATEWAY_ALIAS


def batch_figures(res: list[dict], wall: float, extra_errors: int, wave: int = 1) -> dict[str, Any]:
    """A batch's figures. ``wave`` is its concurrency: the first ``wave`` requests to start left together, a
    burst no later wave sees (the rest start as earlier ones finish), so their TTFT is also given apart."""
    # Only streams that ran to max_tokens count: a canned apology (the gateway's fallback) answers in no time
    # and a cut-off stream ends early, so either would flatter TTFT or tokens/s. They are errors here.
    ok = [r for r in res if r["ok"] and r["finish"] == "length"]
    ttft, total = [r["ttft_ms"] for r in ok], [r["total_ms"] for r in ok]
    by_start = sorted(ok, key=lambda r: r.get("started", 0.0))
    first, later = [r["ttft_ms"] for r in by_start[:wave]], [r["ttft_ms"] for r in by_start[wave:]]
    chunks, tokens = sum(r["chunks"] for r in ok), sum(r["tokens"] for r in ok)
    samples = sorted({r["error"] for r in res if not r["ok"]})[:3]
    return {"n": len(res) + extra_errors, "ok": len(ok), "errors": len(res) - len(ok) + extra_errors,
            "wall_s": wall, "content_chunks": chunks, "tokens": tokens,
            "tok_per_s": tokens / wall if wall else 0.0, "without_usage": sum(not r["usage"] for r in ok),
            "cut_short": sum(r["ok"] and r["finish"] != "length" for r in res),
            "ttft_p50_ms": pct(ttft, 50), "ttft_p95_ms": pct(ttft, 95), "total_p50_ms": pct(total, 50),
            "ttft_first_wave_p50_ms": pct(first, 50), "ttft_later_ms": [round(x, 2) for x in later],
            "ttft_ms": [round(x, 2) for x in ttft], "total_ms": [round(x, 2) for x in total], "error_samples": samples}


async def settle(targets: list[Target], quiet_cores: float = 0.05, window_s: float = 0.25,
                 max_s: float = 5.0) -> tuple[bool, dict[tuple[str, str], float]]:
    """Wait until the measured processes are quiet: what one path leaves running after its batch (LiteLLM's
    logging and spend workers, the gateway's background summaries) must not be billed to the next batch.
    Returns whether they got quiet within ``max_s`` (the batch's row says so) and each meter's rate in the
    last window, in cores (coarse: see :func:`idle_rates` for the baseline a batch's CPU leaves out)."""
    meters = {(t.name, name): m for t in targets for name, m in t.cpu_meters.items()}
    rates: dict[tuple[str, str], float] = {}
    if not meters:
        return True, rates
    for _ in range(int(max_s / window_s)):
        before = {k: m() for k, m in meters.items()}
        await asyncio.sleep(window_s)
        rates = {k: max(0.0, (m() - before[k]) / window_s) for k, m in meters.items()}
        if sum(rates.values()) < quiet_cores:
            return True, rates
    return False, rates


async def target_idle_rates(targets: list[Target], seconds: float = 2.0) -> dict[tuple[str, str], float]:
    """Each target's meters' idle rates (common.idle_rates), keyed by (target, meter); measured once per run."""
    return await idle_rates({(t.name, name): m for t in targets for name, m in t.cpu_meters.items()}, seconds)


def batch_orders(targets: list[Target], rounds: int, levels: list[int]) -> list[list[Target]]:
    """The target order of each (round, level), in that sequence: every ordering in turn (a Latin square over
    the permutations), so that no target keeps the same predecessor. Rotating one list kept it: with three
    targets, direct came right after LiteLLM, the heaviest and longest batch, in nearly every pair."""
    perms = [list(p) for p in itertools.permutations(targets)]
    return [perms[(rnd * len(levels) + i) % len(perms)] for rnd in range(rounds) for i in range(len(levels))]


async def warm_wave(client: aiohttp.ClientSession, model: str, conc: int) -> None:
    """One unmeasured wave of ``conc`` short requests right before a batch. A target sits idle while the
    others run theirs (for a minute, with LiteLLM at c=64), and on virtualised hosts memory untouched for
    seconds is slow to touch again (docs/gateway.md, "Idle targets start cold"): the upstream, which every
    batch uses, stays warm, and without this wave the relays alone would pay for the interleaving."""
    await asyncio.gather(*[stream_chat(client, request_body(model, BATCH_WARMUP_TOKENS)) for _ in range(conc)])


async def bench(targets: list[Target], levels: list[int], rounds: int, n: int, max_tokens: int, served_id: str,
                min_waves: int = 1, batch_warmup: bool = True) -> list[dict]:
    """Every (round, level) runs every target back to back, in an order that changes from one (round, level)
    to the next (:func:`batch_orders`). A batch holds at least ``min_waves`` × c requests and, with
    ``batch_warmup``, follows an unmeasured wave at its own concurrency (:func:`warm_wave`) at once: the
    processes are let settle before that wave, not between it and the batch (an idle gap there is what the
    wave exists to remove). A batch's CPU is read after its leftovers settle too, less each meter's idle
    rate (:func:`idle_rates`, measured once before the first batch) over that time."""
    clients = {t.name: make_session(t.url, t.headers, max(levels)) for t in targets}
    raw: list[dict] = []
    try:
        for t in targets:
            if t.name == "gateway":
                t.model = await pick_gateway_model(clients[t.name], served_id, max_tokens)
            for _ in range(WARMUP_REQUESTS):  # first requests open connections, warm caches
                await stream_chat(clients[t.name], request_body(t.model, max_tokens))
        await settle(targets)
        idle = await target_idle_rates(targets)
        orders = iter(batch_orders(targets, rounds, levels))
        previous = None
        for rnd in range(rounds):
            for conc in levels:
                count = min(n, C1_MAX_REQUESTS) if conc == 1 else max(n, min_waves * conc)
                for pos, t in enumerate(next(orders)):
                    body = request_body(t.model, max_tokens)
                    settled, _ = await settle(targets)
                    if not settled:
                        console.print(f"[yellow]round {rnd + 1} c={conc} {t.name}: the processes were still busy; "
                                      "this batch's CPU figures may include earlier work[/]")
                    if batch_warmup:
                        await warm_wave(clients[t.name], t.model, conc)
                    cpu0 = {name: meter() for name, meter in t.cpu_meters.items()}
                    started = time.monotonic()
                    with console.status(f"round {rnd + 1}/{rounds}  c={conc}  {t.name} ({count} requests)…"):
                        res, wall, err = await run_concurrent(count, conc, lambda _i, cl=clients[t.name], b=body: stream_chat(cl, b))
                    await settle([t])                 # what the batch leaves running is its own work
                    spent_s = time.monotonic() - started
                    own_idle = {name: idle.get((t.name, name), 0.0) for name in t.cpu_meters}
                    cpu = cpu_ms_per_request(t.cpu_meters, cpu0, own_idle, spent_s, count)
                    raw.append({"round": rnd, "level": conc, "target": t.name, "position": pos, "after": previous,
                                "settled": settled, **batch_figures(res, wall, err, conc), "cpu_ms_per_request": cpu,
                                "idle_cores": own_idle})
                    previous = t.name
    finally:
        for c in clients.values():
            await c.close()
    return raw


def aggregate(raw: list[dict], names: list[str], levels: list[int]) -> dict[str, dict[int, dict]]:
    """Per (target, level), pooled over rounds: percentiles over all requests, tok/s averaged over rounds."""
    out: dict[str, dict[int, dict]] = {}
    for name in names:
        for conc in levels:
            rows = [r for r in raw if r["target"] == name and r["level"] == conc]
            ttft = [x for r in rows for x in r["ttft_ms"]]
            total = [x for r in rows for x in r["total_ms"]]
            later = [x for r in rows for x in r["ttft_later_ms"]]
            out.setdefault(name, {})[conc] = {
                "n": sum(r["n"] for r in rows), "errors": sum(r["errors"] for r in rows),
                "ttft_p50_ms": pct(ttft, 50), "ttft_p95_ms": pct(ttft, 95), "total_p50_ms": pct(total, 50),
                "ttft_first_wave_p50_ms": _median([r["ttft_first_wave_p50_ms"] for r in rows]),
                "ttft_p95_after_first_wave_ms": pct(later, 95),
                "tok_per_s": statistics.fmean(r["tok_per_s"] for r in rows) if rows else float("nan"),
                "tok_per_req": _div(sum(r["tokens"] for r in rows), sum(r["ok"] for r in rows)),
                "chunks_per_req": _div(sum(r["content_chunks"] for r in rows), sum(r["ok"] for r in rows)),
                "without_usage": sum(r["without_usage"] for r in rows), "cut_short": sum(r["cut_short"] for r in rows),
                "cpu_ms_per_request": {m: statistics.fmean(r["cpu_ms_per_request"][m] for r in rows)
                                       for m in (rows[0]["cpu_ms_per_request"] if rows else {})},
                "error_samples": sorted({s for r in rows for s in r["error_samples"]})[:3],
            }
    return out


def _median(values: list[float]) -> float:
    values = [v for v in values if not math.isnan(v)]
    return statistics.median(values) if values else float("nan")


def _div(a: float, b: float) -> float:
    return a / b if b and not math.isnan(b) else float("nan")


def ratios(summary: dict[str, dict[int, dict]]) -> dict[str, dict[int, dict]]:
    if "direct" not in summary:
        return {}
    d = summary["direct"]
    return {name: {conc: {"ttft_p95_delta_ms": row["ttft_p95_ms"] - d[conc]["ttft_p95_ms"],
                          "ttft_p95_delta_after_first_wave_ms": row["ttft_p95_after_first_wave_ms"]
                                                                - d[conc]["ttft_p95_after_first_wave_ms"],
                          "ttft_p50_ratio": _div(row["ttft_p50_ms"], d[conc]["ttft_p50_ms"]),
                          "throughput_ratio": _div(row["tok_per_s"], d[conc]["tok_per_s"])}
                   for conc, row in by_c.items()}
            for name, by_c in summary.items() if name != "direct"}


def verdicts(summary: dict[str, dict[int, dict]], rat: dict[str, dict[int, dict]], levels: list[int]) -> list[dict]:
    """The questions this benchmark exists to answer; SKIP where a run could not answer one."""
    out: list[dict] = []

    def add(check: str, ok: bool | None, detail: str) -> None:
        out.append({"check": check, "result": "SKIP" if ok is None else ("PASS" if ok else "MISS"), "detail": detail})

    gw = rat.get("gateway")
    check = f"gateway TTFT p95 delta vs direct at c={DELTA_LEVEL} <= {MAX_TTFT_P95_DELTA_MS:.0f} ms"
    if gw and DELTA_LEVEL in gw:
        delta, later = gw[DELTA_LEVEL]["ttft_p95_delta_ms"], gw[DELTA_LEVEL]["ttft_p95_delta_after_first_wave_ms"]
        add(check, delta <= MAX_TTFT_P95_DELTA_MS, f"{delta:+.1f} ms ({_num(later, '+.1f')} ms once each batch's "
                                                    "first wave, its start-up burst, is left out)")
    else:
        add(check, None, "needs the direct and gateway targets and c=16")
    check = f"gateway throughput ratio vs direct >= {MIN_THROUGHPUT_RATIO} at every level"
    if gw:
        add(check, all(gw[c]["throughput_ratio"] >= MIN_THROUGHPUT_RATIO for c in levels),
            ", ".join(f"c={c}: {gw[c]['throughput_ratio']:.3f}" for c in levels))
    else:
        add(check, None, "needs the direct and gateway targets")
    check = "gateway ahead of LiteLLM (lower TTFT p50, higher tok/s) at every level"
    if "gateway" in summary and "litellm" in summary:
        g, ll = summary["gateway"], summary["litellm"]
        add(check, all(g[c]["ttft_p50_ms"] < ll[c]["ttft_p50_ms"] and g[c]["tok_per_s"] > ll[c]["tok_per_s"] for c in levels),
            ", ".join(f"c={c}: TTFT p50 {g[c]['ttft_p50_ms']:.1f} vs {ll[c]['ttft_p50_ms']:.1f} ms, "
                      f"tok/s {g[c]['tok_per_s']:.0f} vs {ll[c]['tok_per_s']:.0f}" for c in levels))
    else:
        add(check, None, "needs the gateway and litellm targets")
    if "gateway" in summary:
        errs = {c: summary["gateway"][c]["errors"] + summary["gateway"][c]["cut_short"] for c in levels}
        add("gateway: no failed or cut-short requests", not any(errs.values()), ", ".join(f"c={c}: {e}" for c, e in errs.items()))
    return out


def _num(x: float, fmt: str = ".1f") -> str:
    return "-" if math.isnan(x) else format(x, fmt)


def cpu_cell(cpu: dict[str, float]) -> str:
    """CPU ms per request of a path's own processes: "2.9 + 1.1 pg" for the gateway and its Postgres."""
    main = [v for k, v in cpu.items() if k != "postgres"]
    cell = _num(sum(main)) if main else ""
    return f"{cell} + {_num(cpu['postgres'])} pg" if "postgres" in cpu else cell


def print_table(summary: dict[str, dict[int, dict]], rat: dict[str, dict[int, dict]], targets: list[Target], levels: list[int],
                reference: str = "Serve") -> None:
    t = Table(title=f"Streamed chat: direct to {reference} vs Enclave gateway vs LiteLLM proxy (interleaved)",
              caption="models: " + ", ".join(f"{tg.name}={tg.model}" for tg in targets) + "; ratios vs direct; "
                      "CPU ms/req: the path's own processes (the gateway + its Postgres, LiteLLM, or the paced upstream)")
    for col in ("c", "target", "n", "err", "TTFT p50 ms", "TTFT p95 ms", "wave 1 TTFT p50", "later TTFT p95",
                "total p50 ms", "tok/req", "chunks/req", "tok/s",
                "CPU ms/req", "ΔTTFT p95 ms", "TTFT p50 ×", "tok/s ×"):
        t.add_column(col, justify="left" if col == "target" else "right")
    for i, conc in enumerate(levels):
        if i:
            t.add_section()
        for tg in targets:
            row = summary[tg.name][conc]
            r = rat.get(tg.name, {}).get(conc)
            rel = (_num(r["ttft_p95_delta_ms"], "+.1f"), _num(r["ttft_p50_ratio"], ".2f"), _num(r["throughput_ratio"], ".2f")) if r else ("", "", "")
            t.add_row(str(conc), tg.name, str(row["n"]), str(row["errors"]), _num(row["ttft_p50_ms"]), _num(row["ttft_p95_ms"]),
                      _num(row["ttft_first_wave_p50_ms"]), _num(row["ttft_p95_after_first_wave_ms"]),
                      _num(row["total_p50_ms"]), _num(row["tok_per_req"]), _num(row["chunks_per_req"]),
                      _num(row["tok_per_s"], ".0f"), cpu_cell(row["cpu_ms_per_request"]), *rel)
    console.print(t)
    if "direct" in summary:  # tok/s compares fairly only if every path honoured max_tokens + ignore_eos alike
        for tg in targets:
            for conc in levels:
                want, got = summary["direct"][conc]["tok_per_req"], summary[tg.name][conc]["tok_per_req"]
                if abs(got - want) > 0.05 * want:
                    console.print(f"[yellow]{tg.name} c={conc}: {got:.1f} tokens/request vs {want:.1f} direct; "
                                  "its tok/s is not like for like (ignore_eos or max_tokens not passed on?)[/]")
    for tg in targets:
        for conc in levels:
            row = summary[tg.name][conc]
            if row["without_usage"]:
                console.print(f"[yellow]{tg.name} c={conc}: {row['without_usage']} streams had no usage chunk; "
                              "their tokens are counted as content chunks (an undercount under load)[/]")
            if row["cut_short"]:
                console.print(f"[yellow]{tg.name} c={conc}: {row['cut_short']} streams ended other than at max_tokens "
                              "(finish_reason not 'length'): a fallback reply or a stream cut midway[/]")
    for tg in targets:
        for conc in levels:
            for s in summary[tg.name][conc]["error_samples"]:
                console.print(f"[yellow]{tg.name} c={conc}: {s}[/]")


def _clean(x: Any) -> Any:
    """NaN is not JSON: None instead; int keys become strings anyway, make it explicit."""
    if isinstance(x, float) and math.isnan(x):
        return None
    if isinstance(x, dict):
        return {str(k): _clean(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_clean(v) for v in x]
    return x


def _setting(text: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    return name, value


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--profile", default="tiny", help="model profile for `enclave up` (default: tiny)")
    ap.add_argument("--models-dir", type=Path, default=_REPO / "var" / "models",
                    help="model store for `enclave up` (default: var/models; tiny models are built there if missing)")
    ap.add_argument("--gateway-url", help="use a running gateway instead of starting `enclave up`")
    ap.add_argument("--serving-url", help="use a running Serve app (its OpenAI routes) instead of starting `enclave up`")
    ap.add_argument("--api-key-file", type=Path, help="API key for --gateway-url (one line, e.g. var/dev-api-key)")
    ap.add_argument("--serving-label",
                    help="what the direct path is, for the table and the JSON (e.g. 'torch engine, Qwen2-7B shape, "
                         "H200'; default: Serve, or the --upstream URL)")
    ap.add_argument("--concurrency", default="1,16,64", help="comma-separated concurrency levels (default: 1,16,64)")
    ap.add_argument("--requests", type=int, default=64,
                    help=f"requests per (target, level, round); c=1 runs at most {C1_MAX_REQUESTS} (default: 64)")
    ap.add_argument("--rounds", type=int, default=2, help="interleaved rounds; round r rotates the target order by r")
    ap.add_argument("--max-tokens", type=int, default=64, help="max_tokens per request, with ignore_eos (default: 64)")
    ap.add_argument("--upstream", default="serve", metavar="serve|paced|URL",
                    help="serve: the profile's LLM on Ray Serve (default). paced: scripts/bench/paced_upstream.py, a "
                         "clock-driven stand-in for a GPU engine. URL: an OpenAI-compatible engine you run (a vLLM on "
                         "a GPU box, scripts/bench/torch_engine.py). With paced or a URL the benchmark starts Postgres "
                         "and the gateway alone (no Ray), the gateway's chain pointed at that upstream")
    ap.add_argument("--ttft-ms", type=float, default=25.0, help="paced upstream: time to first token (default: 25)")
    ap.add_argument("--token-ms", type=float, default=15.0, help="paced upstream: time between tokens (default: 15)")
    ap.add_argument("--paced-steps", action="store_true",
                    help="paced upstream: every stream's tokens on one shared clock, as an engine's decode steps "
                         "(default: a clock per request)")
    ap.add_argument("--min-waves", type=int, default=4, help="a batch at concurrency c holds at least this many × c requests "
                                                   "(default: 4: one wave alone is mostly its start-up burst)")
    ap.add_argument("--batch-warmup", action=argparse.BooleanOptionalAction, default=True,
                    help=f"an unmeasured wave of {BATCH_WARMUP_TOKENS}-token requests at the batch's concurrency right "
                         "before each batch, every target alike (default: on; see docs/gateway.md, 'Idle targets start cold')")
    ap.add_argument("--gateway-workers", type=int, default=0,
                    help="gateway processes (ENCLAVE_GATEWAY_WORKERS) when the benchmark starts the gateway (default: 0, "
                         "the appliance's own choice: one per 4 cores, 1 to 4)")
    ap.add_argument("--gateway-setting", action="append", default=[], type=_setting, metavar="NAME=VALUE",
                    help="a gateway setting for a gateway the benchmark starts, e.g. rate_limit_store=postgres (repeatable)")
    ap.add_argument("--skip-litellm", action="store_true", help="leave LiteLLM out (no venv, no proxy)")
    ap.add_argument("--litellm-venv", type=Path, default=LITELLM_VENV, help="LiteLLM's own venv (default: var/bench/litellm-venv)")
    ap.add_argument("--up-timeout", type=float, default=900, help="seconds to wait for `enclave up` (default: 900)")
    args = ap.parse_args()
    args.levels = sorted({int(x) for x in args.concurrency.split(",") if x.strip()})
    if not args.levels or min(args.levels) < 1:
        ap.error("--concurrency needs positive integers")
    external = (args.gateway_url, args.serving_url, args.api_key_file)
    if any(external) and not all(external):
        ap.error("--gateway-url, --serving-url and --api-key-file go together")
    if args.upstream not in ("serve", "paced") and not args.upstream.startswith(("http://", "https://")):
        ap.error(f"--upstream takes serve, paced or an http(s) URL, not {args.upstream!r}")
    if args.upstream != "serve" and any(external):
        ap.error("--upstream paced or URL starts its own gateway (its chain must point at that upstream)")
    return args


def chain_on(upstream_url: str) -> str:
    """ENCLAVE_LLM_CHAIN for a gateway whose primary link is ``upstream_url``, then the canned apology."""
    return json.dumps([{"name": "primary", "url": upstream_url}, {"name": "apology", "kind": "canned"}])


def start_paced(port: int, ttft_ms: float, token_ms: float, log: Path, steps: bool = False) -> subprocess.Popen:
    args = [sys.executable, str(_HERE / "paced_upstream.py"), "--port", str(port), "--ttft-ms", str(ttft_ms),
            "--token-ms", str(token_ms), *(["--steps"] if steps else [])]
    return subprocess.Popen(args, cwd=_REPO, stdout=log.open("wb"), stderr=subprocess.STDOUT, start_new_session=True)


def main() -> int:
    args = parse_args()
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    appliance: BackgroundAppliance | BackgroundGateway | None = None
    litellm: subprocess.Popen | None = None
    paced: subprocess.Popen | None = None
    cfg_dir: Path | None = None
    ok = False
    try:
        litellm_version = None
        if not args.skip_litellm:  # before `up`: a failed install should not cost an appliance start
            with console.status(f"LiteLLM venv ({args.litellm_venv})…"):
                litellm_version = ensure_litellm(args.litellm_venv)
        # The benchmark measures the path, not the per-key rate limit (600 a minute by default): a run
        # sends more than that through the development key. The limiter still runs on every request.
        extra_env: dict[str, str] = {"ENCLAVE_RATE_LIMIT_PER_MIN": "1000000",
                                     "ENCLAVE_GATEWAY_WORKERS": str(args.gateway_workers),
                                     **{f"ENCLAVE_{k.upper()}": v for k, v in args.gateway_setting}}
        upstream_url = None if args.upstream in ("serve", "paced") else args.upstream.rstrip("/")
        if args.upstream == "paced":
            port = free_port()
            upstream_url = f"http://127.0.0.1:{port}"
            log = LOG_DIR / "bench-paced-upstream.log"
            paced = start_paced(port, args.ttft_ms, args.token_ms, log, args.paced_steps)
            if not wait_up([f"{upstream_url}/health"], paced, 60):
                console.print(f"[red]paced upstream not ready; see {log}[/]\n{log_tail(log, 2000)}")
                return 1
        if upstream_url:
            # The gateway's default chain, with its primary link on that upstream (the model name is still
            # the profile's, so the context budget uses the store's tokenizer as it always does).
            extra_env["ENCLAVE_LLM_CHAIN"] = chain_on(upstream_url)
        if args.serving_url:
            gateway_url, serving_url = args.gateway_url.rstrip("/"), args.serving_url.rstrip("/")
            api_key = args.api_key_file.read_text().strip()
        elif upstream_url:  # the model runs elsewhere: Postgres and the gateway alone
            appliance = BackgroundGateway.on_free_port(
                Path(tempfile.mkdtemp(prefix="enclave-bench-")), args.models_dir.resolve(), args.profile,
                LOG_DIR / "bench-gateway-only.log", **extra_env)
            with console.status(f"Postgres and the gateway (log {appliance.log_path})…"):
                appliance.start(args.up_timeout)
            api_key, gateway_url, serving_url = appliance.api_key, appliance.gateway_url, upstream_url
        else:
            appliance = BackgroundAppliance.on_free_ports(
                Path(tempfile.mkdtemp(prefix="enclave-bench-")), args.models_dir.resolve(), args.profile,
                LOG_DIR / "bench-gateway-up.log", **extra_env)
            with console.status(f"enclave up (log {appliance.log_path})…"):
                appliance.start(args.up_timeout)
            api_key = appliance.api_key
            gateway_url, serving_url = appliance.gateway_url, appliance.serving_url
        served_id = served_model_id(serving_url)
        targets = [Target("direct", serving_url, served_id, cpu_meters=upstream_meters(upstream_url)),
                   Target("gateway", gateway_url, GATEWAY_ALIAS, {"Authorization": f"Bearer {api_key}"},
                          cpu_meters=gateway_meters(gateway_url, appliance))]
        if not args.skip_litellm:
            port = free_port()
            cfg_dir = Path(tempfile.mkdtemp(prefix="litellm-bench-"))
            cfg = cfg_dir / "config.yaml"
            master_key = f"sk-bench-{secrets.token_hex(16)}"
            cfg.write_text(litellm_config(served_id, serving_url, master_key))
            log = LOG_DIR / "bench-litellm.log"
            litellm = start_litellm(args.litellm_venv, cfg, port, log)
            with console.status(f"LiteLLM {litellm_version} proxy on :{port}…"):
                if not wait_up([f"http://127.0.0.1:{port}/health/liveliness", f"http://127.0.0.1:{port}/health/readiness"],
                               litellm, 300):
                    console.print(f"[red]LiteLLM proxy not ready; see {log}[/]\n{log_tail(log, 2000)}")
                    return 1
            targets.append(Target("litellm", f"http://127.0.0.1:{port}", served_id, {"Authorization": f"Bearer {master_key}"},
                                  cpu_meters={"litellm": process_tree_cpu(psutil.Process(litellm.pid))}))

        raw = run_async(bench(targets, args.levels, args.rounds, args.requests, args.max_tokens, served_id, args.min_waves,
                                  args.batch_warmup))
        names = [t.name for t in targets]
        summary = aggregate(raw, names, args.levels)
        rat = ratios(summary)
        verdict = verdicts(summary, rat, args.levels)
        reference = (f"paced upstream (first token {args.ttft_ms:g} ms, then one every {args.token_ms:g} ms"
                     f"{', on shared engine steps' if args.paced_steps else ''})"
                     if paced else args.serving_label or upstream_url or "Serve")
        print_table(summary, rat, targets, args.levels, reference)
        for v in verdict:
            colour = {"PASS": "green", "MISS": "red", "SKIP": "yellow"}[v["result"]]
            console.print(f"[{colour}]{v['result']}[/] {v['check']}: {v['detail']}")
        config = {"profile": appliance.profile if appliance else None, "external": appliance is None, "levels": args.levels,
                  "upstream": args.upstream, "reference": reference,
                  "paced": {"ttft_ms": args.ttft_ms, "token_ms": args.token_ms, "steps": args.paced_steps} if paced else None,
                  "requests": args.requests, "requests_at_c1": min(args.requests, C1_MAX_REQUESTS), "rounds": args.rounds,
                  "gateway_workers": (args.gateway_workers or auto_gateway_workers()) if appliance is not None else None,
                  "gateway_settings": dict(args.gateway_setting) if appliance is not None else None,
                  "min_waves": args.min_waves, "max_tokens": args.max_tokens, "warmup_requests": WARMUP_REQUESTS,
                  "batch_warmup": {"requests": "one wave at the batch's concurrency", "max_tokens": BATCH_WARMUP_TOKENS}
                  if args.batch_warmup else None,
                  "served_model": served_id, "request_body": request_body("<model>", args.max_tokens),
                  "litellm_version": litellm_version, "targets": {t.name: {"url": t.url, "model": t.model} for t in targets}}
        path = write_results("gateway", _clean({"config": config, "summary": summary, "vs_direct": rat,
                                                "verdicts": verdict, "raw": raw}))
        console.print(f"results: {path}")
        ok = True
        return 0
    except (ApplianceStartError, RuntimeError, subprocess.CalledProcessError, httpx.HTTPError) as e:
        console.print(f"[red]gateway benchmark: {e}[/]")
        return 1
    finally:
        stop_process(litellm, signal.SIGTERM, 30)
        stop_process(paced, signal.SIGTERM, 10)
        if cfg_dir is not None:
            shutil.rmtree(cfg_dir, ignore_errors=True)
        if appliance is not None:
            with console.status("stopping enclave up…"):
                appliance.stop()
            if ok:
                shutil.rmtree(appliance.var_dir, ignore_errors=True)
            else:
                console.print(f"kept the appliance's var dir: {appliance.var_dir}")


if __name__ == "__main__":
    sys.exit(main())
