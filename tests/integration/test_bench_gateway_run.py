"""The gateway benchmark run end to end in its paced mode, at a toy size: the paced upstream, Postgres and the
gateway alone (deploy.background.BackgroundGateway, no Ray; two gateway processes, the less trodden start-up
path), both paths measured, the JSON written, and everything it started stopped again."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import psutil

from tests.integration.conftest import listening_pids

REPO = Path(__file__).resolve().parents[2]


def _still_serving(program: str, url: str) -> list[psutil.Process]:
    """Processes running ``program`` on ``url``'s port: this run's own, not another run's on this machine."""
    port = str(urlsplit(url).port)
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        cmdline = proc.info["cmdline"] or []
        on_port = any(cmdline[i:i + 2] == ["--port", port] for i in range(len(cmdline)))
        if on_port and any(program in part for part in cmdline):
            found.append(proc)
    return found


def run_bench(script: str, *args: str, timeout_s: float) -> tuple[subprocess.CompletedProcess, dict]:
    """Run scripts/bench/<script> on the test models; its output and the JSON it wrote (then removed)."""
    models = os.environ.get("ENCLAVE_MODELS_DIR", str(REPO / "var" / "test-models"))
    run = subprocess.run([sys.executable, f"scripts/bench/{script}", "--models-dir", models, *args], cwd=REPO,
                         capture_output=True, text=True, timeout=timeout_s, env={**os.environ, "COLUMNS": "200"})
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-4000:]
    line = next(x for x in run.stdout.splitlines() if x.startswith("results: "))
    path = Path(line.removeprefix("results: ").strip())
    try:
        return run, json.loads(path.read_text())
    finally:
        path.unlink()


def test_paced_run_measures_both_paths_and_cleans_up(tmp_path: Path) -> None:
    _, result = run_bench("gateway.py", "--upstream", "paced", "--skip-litellm", "--concurrency", "1,2",
                          "--requests", "2", "--rounds", "1", "--min-waves", "1", "--max-tokens", "8",
                          "--gateway-workers", "2", timeout_s=600)
    assert result["config"]["upstream"] == "paced" and result["config"]["profile"] == "tiny"
    for level in ("1", "2"):
        for target in ("direct", "gateway"):
            figures = result["summary"][target][level]
            assert figures["errors"] == 0 and figures["n"] >= 2
            assert figures["tok_per_req"] == 8 and figures["cut_short"] == 0
    gateway_cpu = result["summary"]["gateway"]["1"]["cpu_ms_per_request"]
    assert gateway_cpu["gateway"] > 0 and gateway_cpu["postgres"] >= 0  # both processes found (pg: ticks of 10 ms)
    assert {v["result"] for v in result["verdicts"]} <= {"PASS", "MISS", "SKIP"}  # informational, whatever they say
    assert len(result["verdicts"]) == 4
    # nothing it started is left running: neither its paced upstream nor its gateway
    targets = result["config"]["targets"]
    assert not _still_serving("paced_upstream.py", targets["direct"]["url"])
    assert not _still_serving("deploy.gateway_workers", targets["gateway"]["url"])   # the two-worker gateway's parent
    gateway_port = urlsplit(targets["gateway"]["url"]).port
    assert not listening_pids(gateway_port)                                               # nor any of its workers


def test_turn_cost_meters_each_kind_and_cleans_up() -> None:
    """scripts/bench/turn_cost.py at a toy size: every kind answered as it should (the refused one with its
    404), CPU metered on the gateway and its Postgres, the JSON written, nothing it started left running."""
    run, result = run_bench("turn_cost.py", "--requests", "10", "--warmup", "2", "--max-tokens", "4",
                            "--token-ms", "1", "--idle-s", "0.5", timeout_s=300)
    kinds = result["kinds"]
    assert [(k, v["status"], v["errors"], v["n"]) for k, v in kinds.items()] == [
        ("GET /healthz", 200, 0, 10), ("refused (unknown model)", 404, 0, 10), ("turn, 1 token", 200, 0, 10),
        ("turn, 4 tokens", 200, 0, 10)]
    assert all(set(v["cpu_ms_per_request"]) == {"gateway", "postgres"} for v in kinds.values())
    assert set(result["per_token_us"]) == {"gateway"}
    assert "What one request costs the gateway" in run.stdout
    started = [p for p in psutil.process_iter(["cmdline"])
               if any("enclave-turn-cost-" in part for part in (p.info["cmdline"] or []))]
    assert not started, started    # its Postgres (named by its var dir) is gone
    kept = run.stdout.split("kept the gateway's var dir:")
    assert len(kept) == 1, kept[-1][:200]   # and its var dir removed (kept only when a run fails)
