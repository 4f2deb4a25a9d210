"""SIP benchmark: how many concurrent phone calls one core of the gateway carries with clean audio.

    .venv/bin/python scripts/bench/sip.py [--calls 10,50,100,200] [--profile tiny]
                                          [--sip-port 5060 --gateway-url http://127.0.0.1:8080]

sipp places N concurrent calls (``scripts/bench/sip_call.xml``: G.711 with RTP, the caller speaking from
sipp's g711a.pcap for about 32 s, then BYE); each call runs the whole voice pipeline (VAD, STT, the turn
pipeline, LLM, TTS). Per step: calls completed and failed (sipp), the gateway's CPU time per call-second
(hence calls per core; target ≥ 100), spoken replies, and RTP health from the gateway's own counters —
``late_out``: frames that were ready but went out after the caller's player ran dry (the gateway fell behind:
what "no late packets" is about), ``underrun_out``: the same gap because synthesis was slower than playback
(the model plane is saturated, not the SIP path), ``lost_in``/``late_in``: caller packets the jitter buffer
had to conceal; ``stalls``: the gateway's event loop woke up more than 50 ms late (blocking code, or the
process starved of CPU by the model plane on the same cores).

Side by side, the same load against sipp's own UAS echoing the RTP (``-sn uas -rtp_echo``): what carrying the
media alone costs, as a yardstick for the gateway's per-call CPU. The run goes up the steps and reports where
it breaks (failed calls or late packets).

Unless --sip-port is given it runs `enclave up` itself in a private var dir with SIP on a free port.
Results go to scripts/bench/results/sip-*.json.
"""

from __future__ import annotations

import argparse
import csv
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import psutil

REPO = Path(__file__).resolve().parents[2]
sys.path[:] = [str(REPO)] + [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

from deploy.background import BackgroundAppliance, free_port  # noqa: E402
from scripts.bench.common import cpu_seconds, listening_process, write_results  # noqa: E402

SCENARIO = Path(__file__).with_name("sip_call.xml")
PCAPS = Path("/usr/share/sip-tester")
TARGET_PER_CORE = 100


def rtp_counters(gateway_url: str) -> dict[str, float]:
    """enclave_sip_rtp_packets_total by kind, and calls ended by reason, from /metrics."""
    text = httpx.get(f"{gateway_url}/metrics", timeout=10, trust_env=False).text
    out: dict[str, float] = {}
    for m in re.finditer(r'^enclave_sip_(rtp_packets|calls_ended)_total\{(?:kind|reason)="([a-z_]+)"\} ([0-9.e+]+)$',
                         text, re.M):
        out[f"{m[1]}:{m[2]}"] = float(m[3])
    replies = re.search(r'^enclave_voice_stage_seconds_count\{stage="voice_to_voice"\} ([0-9.e+]+)$', text, re.M)
    out["replies"] = float(replies[1]) if replies else 0.0
    # Event-loop wake-ups later than 50 ms: the count minus those within the 0.05 bucket.
    count = re.search(r'^enclave_event_loop_lag_seconds_count ([0-9.e+]+)$', text, re.M)
    within = re.search(r'^enclave_event_loop_lag_seconds_bucket\{le="0.05"\} ([0-9.e+]+)$', text, re.M)
    out["stalls"] = float(count[1]) - float(within[1]) if count and within else 0.0
    return out


def run_calls(target_port: int, n: int, work: Path, rate: int) -> dict[str, int]:
    """N concurrent calls through sipp; (successful, failed) from its statistics file."""
    stats = work / f"stats-{target_port}-{n}.csv"
    cmd = ["sipp", "-sf", str(SCENARIO), f"127.0.0.1:{target_port}", "-s", "enclave", "-i", "127.0.0.1",
           "-p", str(free_port()), "-mp", str(free_port() // 2 * 2), "-m", str(n), "-l", str(n), "-r", str(rate),
           "-timeout", "180s", "-nostdin", "-trace_stat", "-stf", str(stats), "-fd", "1", "-max_socket", "4096"]
    subprocess.run(cmd, cwd=work, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=400)
    if not stats.exists():
        return {"ok": 0, "failed": n}
    with stats.open() as f:
        rows = list(csv.reader(f, delimiter=";"))
    head, last = rows[0], rows[-1]
    col = {name: i for i, name in enumerate(head)}
    return {"ok": int(last[col["SuccessfulCall(C)"]]), "failed": int(last[col["FailedCall(C)"]])}


def step(target_port: int, proc: psutil.Process, n: int, work: Path, rate: int, gateway_url: str | None) -> dict:
    before = rtp_counters(gateway_url) if gateway_url else {}
    cpu0, t0 = cpu_seconds(proc), time.monotonic()
    calls = run_calls(target_port, n, work, rate)
    wall, cpu = time.monotonic() - t0, cpu_seconds(proc) - cpu0
    time.sleep(1)
    after = rtp_counters(gateway_url) if gateway_url else {}
    delta = {k: after.get(k, 0) - before.get(k, 0) for k in after}
    call_seconds = max(1e-9, n * 32.0)          # each call holds ~32 s of media
    per_call = cpu / call_seconds
    return {"calls": n, **calls, "wall_s": round(wall, 1), "cpu_s": round(cpu, 2),
            "cpu_per_call_second": per_call, "calls_per_core": 1 / per_call if per_call else float("inf"),
            "sent": int(delta.get("rtp_packets:sent", 0)), "received": int(delta.get("rtp_packets:received", 0)),
            "replies": int(delta.get("replies", 0)), "loop_stalls_50ms": int(delta.get("stalls", 0)), "late_out": int(delta.get("rtp_packets:late_out", 0)),
            "underrun_out": int(delta.get("rtp_packets:underrun_out", 0)), "lost_in": int(delta.get("rtp_packets:lost_in", 0)),
            "late_in": int(delta.get("rtp_packets:late_in", 0))}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--calls", default="10,50,100,200")
    ap.add_argument("--rate", type=int, default=20, help="new calls a second while ramping up")
    ap.add_argument("--profile", default="tiny")
    ap.add_argument("--sip-port", type=int, help="an appliance already running with SIP here")
    ap.add_argument("--gateway-url", default="http://127.0.0.1:8080")
    ap.add_argument("--skip-reference", action="store_true")
    ap.add_argument("--up-timeout", type=float, default=900)
    args = ap.parse_args()
    if not shutil.which("sipp"):
        raise SystemExit("sipp is needed (Debian sip-tester; scripts/install.sh installs it)")
    steps = [int(x) for x in args.calls.split(",")]
    appliance = None
    work = Path(tempfile.mkdtemp(prefix="enclave-sip-bench-"))
    (work / "pcap").symlink_to(PCAPS)
    try:
        if args.sip_port:
            sip_port, gateway_url = args.sip_port, args.gateway_url
        else:
            sip_port = free_port()
            models = Path(os.environ.get("ENCLAVE_MODELS_DIR", REPO / "var" / "test-models"))
            (work / "var").mkdir()
            appliance = BackgroundAppliance.on_free_ports(
                work / "var", models, args.profile, ENCLAVE_SIP_PORT=str(sip_port),
                ENCLAVE_VOICE_SILENCE_REPROMPT_S="300", ENCLAVE_VOICE_MAX_OUTPUT_TOKENS="24",
                ENCLAVE_SIP_RATE_PER_S="0")
            print(f"starting the appliance ({args.profile}) with SIP on {sip_port} …", flush=True)
            appliance.start(args.up_timeout)
            gateway_url = appliance.gateway_url
        gateway = listening_process(sip_port, "udp")
        results, reference = [], []
        for n in steps:
            print(f"  {n} calls through the gateway …", flush=True)
            results.append(step(sip_port, gateway, n, work, args.rate, gateway_url))
            if not args.skip_reference:
                ref_port = free_port()
                uas = subprocess.Popen(["sipp", "-sn", "uas", "-i", "127.0.0.1", "-p", str(ref_port), "-rtp_echo",
                                        "-nostdin", "-max_socket", "4096"], cwd=work, stdin=subprocess.DEVNULL,
                                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                time.sleep(1)
                try:
                    print(f"  {n} calls to sipp's echoing UAS (reference) …", flush=True)
                    reference.append(step(ref_port, psutil.Process(uas.pid), n, work, args.rate, None))
                finally:
                    uas.terminate()
                    uas.wait(timeout=10)
    finally:
        if appliance is not None:
            appliance.stop()
    print(f"\n{'calls':>6} {'ok':>5} {'failed':>6} {'CPU s':>7} {'CPU/call-s':>11} {'calls/core':>10} "
          f"{'ref calls/core':>14} {'ratio':>6} {'replies':>7} {'sent':>7} {'late out':>8} {'underrun':>8} "
          f"{'lost in':>7} {'late in':>7} {'stalls':>6}")
    breaks = None
    for i, r in enumerate(results):
        ref = reference[i] if i < len(reference) else None
        ratio = r["calls_per_core"] / ref["calls_per_core"] if ref and ref["calls_per_core"] else float("nan")
        r["reference_calls_per_core"] = ref["calls_per_core"] if ref else None
        print(f"{r['calls']:>6} {r['ok']:>5} {r['failed']:>6} {r['cpu_s']:>7.1f} {r['cpu_per_call_second']:>11.5f} "
              f"{r['calls_per_core']:>10.0f} {(ref or {}).get('calls_per_core', float('nan')):>14.0f} {ratio:>6.2f} "
              f"{r['replies']:>7} {r['sent']:>7} {r['late_out']:>8} {r['underrun_out']:>8} {r['lost_in']:>7} "
              f"{r['late_in']:>7} {r['loop_stalls_50ms']:>6}")
        if breaks is None and (r["failed"] or r["late_out"]):
            breaks = r["calls"]
    best = max((r["calls_per_core"] for r in results if not r["failed"] and not r["late_out"]), default=0.0)
    verdict = "PASS" if best >= TARGET_PER_CORE else "MISS"
    print(f"\n{verdict}: {best:.0f} clean calls per core (target ≥ {TARGET_PER_CORE}); "
          + (f"breaks at {breaks} concurrent calls" if breaks else "no break within the steps run"))
    path = write_results("sip", {"steps": results, "reference_uas": reference, "breaks_at": breaks,
                                 "best_calls_per_core": best, "settings": vars(args)})
    print(f"written {path}")
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
