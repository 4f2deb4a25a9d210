"""Serving benchmark: every role through the Ray Serve app, and the LLM side by side with vLLM's own
OpenAI server on the same model, in one run, interleaved, reported as ratios (these boxes are noisy).

    .venv/bin/python scripts/bench/serving.py [--profile tiny] [--rounds 2] [--requests 32]

Starts its own Ray + Serve (tiny profile unless told) and a direct vLLM server on free ports; writes
JSON to scripts/bench/results/ and prints a table.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import httpx
import numpy as np
from rich.console import Console
from rich.table import Table

# This file is named like the `serving` package: drop its own folder from the path, put the repo first.
_HERE, _REPO = Path(__file__).resolve().parent, Path(__file__).resolve().parents[2]
sys.path[:] = [str(_REPO)] + [p for p in sys.path if Path(p or ".").resolve() != _HERE]

from deploy import ray_runtime  # noqa: E402
from deploy.background import free_port, url_ok  # noqa: E402
from models.catalog import load_catalog  # noqa: E402
from models.provision import build_tiny_profile  # noqa: E402
from models.store import ModelStore, models_dir_from_env  # noqa: E402
from scripts.bench.common import pct, run_concurrent, summarise, write_results  # noqa: E402
from scripts.bench.llm_stream import make_session, run_async, stream_chat  # noqa: E402
from serving.llm import engine_kwargs  # noqa: E402

console = Console()
CONCURRENCY = (1, 8)


def start_direct_vllm(entry, model_dir: str, port: int, log: Path) -> subprocess.Popen:
    """vLLM's own OpenAI server with the same engine arguments the Serve app uses."""
    kw = engine_kwargs(entry, model_dir, gpu=False)
    args = [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", model_dir,
            "--served-model-name", entry.id, "--host", "127.0.0.1", "--port", str(port),
            "--max-model-len", str(kw["max_model_len"]), "--dtype", kw["dtype"], "--max-num-seqs", str(kw["max_num_seqs"]),
            "--structured-outputs-config", json.dumps(kw["structured_outputs_config"])]
    if kw["enforce_eager"]:
        args.append("--enforce-eager")
    env = {**os.environ, "VLLM_TARGET_DEVICE": "cpu", "VLLM_CPU_KVCACHE_SPACE": str(entry.engine.get("cpu_kvcache_gib", 1))}
    return subprocess.Popen(args, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT, start_new_session=True)


async def llm_request(session: aiohttp.ClientSession, model: str, max_tokens: int) -> dict:
    body = {"model": model, "messages": [{"role": "user", "content": "Tell me about my account."}],
            "max_tokens": max_tokens, "ignore_eos": True, "stream": True, "stream_options": {"include_usage": True}}
    r = await stream_chat(session, body)
    if not r["ok"]:
        raise RuntimeError(r["error"])  # run_concurrent counts it as an error
    return {"ttft_ms": r["ttft_ms"], "latency_ms": r["total_ms"], "tokens": r["tokens"]}


async def bench_llm(targets: dict[str, str], model: str, rounds: int, n: int, max_tokens: int) -> dict:
    out: dict = {}
    clients = {name: make_session(url, max_conc=max(CONCURRENCY)) for name, url in targets.items()}
    for c in clients.values():  # warm-up: first requests compile / allocate
        for _ in range(3):
            await llm_request(c, model, 8)
    acc: dict = {(name, c): {"res": [], "wall": 0.0, "err": 0} for name in targets for c in CONCURRENCY}
    for _ in range(rounds):
        for conc in CONCURRENCY:
            for name, client in clients.items():  # interleaved: same moment, same noise
                res, wall, err = await run_concurrent(n, conc, lambda _i, cl=client: llm_request(cl, model, max_tokens))
                a = acc[(name, conc)]
                a["res"] += res
                a["wall"] += wall
                a["err"] += err
    for (name, conc), a in acc.items():
        ttft = [r["ttft_ms"] for r in a["res"]]
        tokens = sum(r["tokens"] for r in a["res"])
        out.setdefault(name, {})[conc] = {
            "n": len(a["res"]), "errors": a["err"], "ttft_p50_ms": pct(ttft, 50), "ttft_p95_ms": pct(ttft, 95),
            "tok_per_s": tokens / a["wall"] if a["wall"] else 0.0, **{k: v for k, v in summarise(a["res"], a["wall"], a["err"]).items() if k in ("p50_ms", "p95_ms")},
        }
    for c in clients.values():
        await c.close()
    return out


def speech_wav() -> bytes:
    import io
    import wave

    t = np.arange(int(16_000 * 3.0)) / 16_000
    pcm = (0.3 * np.sin(2 * np.pi * 220 * t) * 32767).astype("<i2").tobytes()
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16_000)
        w.writeframes(pcm)
    return buf.getvalue()


async def bench_roles(serve_url: str, n: int) -> dict:
    wav = speech_wav()
    out: dict = {}
    async with httpx.AsyncClient(base_url=serve_url, timeout=300, trust_env=False) as c:
        async def stt(_i: int) -> dict:
            s = time.perf_counter()
            r = await c.post("/v1/audio/transcriptions", files={"file": ("a.wav", wav, "audio/wav")})
            r.raise_for_status()
            return {"latency_ms": (time.perf_counter() - s) * 1000}

        async def tts(_i: int) -> dict:
            s = time.perf_counter()
            first = None
            async with c.stream("POST", "/v1/audio/speech", json={"input": "Your balance is two hundred pounds. Anything else?"}) as r:
                r.raise_for_status()
                async for _chunk in r.aiter_raw():
                    first = first or (time.perf_counter() - s) * 1000
            return {"latency_ms": (time.perf_counter() - s) * 1000, "ttfb_ms": first}

        async def embed(i: int) -> dict:
            s = time.perf_counter()
            r = await c.post("/v1/embeddings", json={"input": f"How do I block my lost card number {i}?"})
            r.raise_for_status()
            return {"latency_ms": (time.perf_counter() - s) * 1000}

        for role, fn in (("stt", stt), ("tts", tts), ("embed", embed)):
            await fn(0)
            for conc in CONCURRENCY:
                res, wall, err = await run_concurrent(n, conc, fn)
                row = summarise(res, wall, err)
                if role == "tts":
                    row["ttfb_p50_ms"] = pct([r["ttfb_ms"] for r in res], 50)
                out.setdefault(role, {})[conc] = row
    return out


def print_tables(llm: dict, roles: dict) -> None:
    t = Table(title="LLM: Ray Serve app vs vLLM's own OpenAI server (same model, interleaved)")
    for col in ("conc", "path", "TTFT p50", "TTFT p95", "tok/s", "errors", "TTFT p50 ratio", "tok/s ratio"):
        t.add_column(col, justify="right")
    for conc in CONCURRENCY:
        d, s = llm["direct"][conc], llm["serve"][conc]
        for name, row in (("vLLM direct", d), ("Serve", s)):
            ratio_ttft = f"{row['ttft_p50_ms'] / d['ttft_p50_ms']:.2f}" if name == "Serve" else "1"
            ratio_tps = f"{row['tok_per_s'] / d['tok_per_s']:.2f}" if name == "Serve" else "1"
            t.add_row(str(conc), name, f"{row['ttft_p50_ms']:.1f} ms", f"{row['ttft_p95_ms']:.1f} ms",
                      f"{row['tok_per_s']:.0f}", str(row["errors"]), ratio_ttft, ratio_tps)
    console.print(t)
    t = Table(title="Speech and embedding roles through Serve")
    for col in ("role", "conc", "p50", "p95", "req/s", "errors", "note"):
        t.add_column(col, justify="right")
    for role, by_c in roles.items():
        for conc, row in by_c.items():
            note = f"TTFB p50 {row['ttfb_p50_ms']:.0f} ms" if "ttfb_p50_ms" in row else ""
            t.add_row(role, str(conc), f"{row['p50_ms']:.1f} ms", f"{row['p95_ms']:.1f} ms", f"{row['req_per_s']:.1f}",
                      str(row["errors"]), note)
    console.print(t)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--profile", default="tiny")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--requests", type=int, default=32, help="requests per (target, concurrency, round)")
    ap.add_argument("--max-tokens", type=int, default=64)
    args = ap.parse_args()

    ray_runtime.quiet_offline_env()
    catalog = load_catalog()
    store = ModelStore(models_dir_from_env(), catalog)
    if args.profile == "tiny":
        build_tiny_profile(store)
    entry = catalog.models_for(args.profile)["llm"]
    model_dir = str(store.resolve(entry.id))
    serve_port, direct_port = free_port(), free_port()
    log = Path("var/log/bench-direct-vllm.log")
    log.parent.mkdir(parents=True, exist_ok=True)
    direct = start_direct_vllm(entry, model_dir, direct_port, log)
    started = time.time()
    owns = ray_runtime.start_ray(catalog.profile(args.profile))
    try:
        from serving.app import app_status, deploy

        ray_runtime.start_serve("127.0.0.1", serve_port)
        apps = deploy(catalog, args.profile, store)
        with console.status("waiting for Serve and the direct vLLM server…"):
            ok = ray_runtime.wait_until(lambda: all("RUNNING" in s for s, _ in app_status().values())
                                        and len(app_status()) == len(apps), 900)
            ok = ok and ray_runtime.wait_until(
                lambda: direct.poll() is not None or url_ok(f"http://127.0.0.1:{direct_port}/v1/models"), 300)
            ok = ok and direct.poll() is None
        if not ok:
            console.print(f"[red]not ready; see {log} and Ray logs[/]")
            return 1
        targets = {"direct": f"http://127.0.0.1:{direct_port}", "serve": f"http://127.0.0.1:{serve_port}"}
        llm = run_async(bench_llm(targets, entry.id, args.rounds, args.requests, args.max_tokens))
        roles = run_async(bench_roles(targets["serve"], args.requests))
        print_tables(llm, roles)
        path = write_results("serving", {"profile": args.profile, "rounds": args.rounds, "requests": args.requests,
                                         "max_tokens": args.max_tokens, "llm": llm, "roles": roles})
        console.print(f"results: {path}")
        return 0
    finally:
        os.killpg(direct.pid, signal.SIGTERM)
        direct.wait(timeout=60)
        ray_runtime.stop_serving(["llm", "stt", "tts", "embed"], owns, started)


if __name__ == "__main__":
    sys.exit(main())
