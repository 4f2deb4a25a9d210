"""Voice benchmark: per-stage latency of spoken turns, the gateway's own orchestration overhead, and the
gateway's CPU per concurrent real-time session.

    .venv/bin/python scripts/bench/voice.py [--gateway-url http://127.0.0.1:8080] [--key-file var/dev-api-key]
                                            [--turns 20] [--sessions 1,4,8]

Against a running appliance (`make run`): an espeak-ng sentence is streamed over ``WS /v1/voice`` in real
time, turn after turn, and each ``turn_end`` event's latency breakdown is collected (the same figures the
turn stores). Side by side in one table:

* the stages that are the components' own time — endpointing window, STT, first LLM token (the whole turn
  pipeline included), first sentence, first TTS chunk;
* ``overhead`` = voice-to-voice minus their sum: what the gateway's orchestration adds (target ≤ 20 ms p95);
* voice-to-voice itself.

Then N concurrent calls stream continuously (speech, then silence, like real callers) while the gateway
process' CPU time is sampled: CPU-seconds per session-second, hence real-time sessions per core.
Results go to scripts/bench/results/voice-*.json.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import shutil
import subprocess
import sys
import tempfile
import time
import wave
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from scripts.bench.common import cpu_seconds, listening_process, pct, write_results  # noqa: E402

SENTENCE = "Hello, I would like to check my account balance."
STAGES = ("endpoint_ms", "stt_ms", "pipeline_ms", "first_token_ms", "first_sentence_ms", "tts_first_byte_ms",
          "first_audio_ms", "overhead_ms",
          "voice_to_voice_ms")
FRAME_MS = 20


def speech_pcm() -> bytes:
    if not shutil.which("espeak-ng") or not shutil.which("sox"):
        raise SystemExit("espeak-ng and sox are needed (scripts/install.sh installs them)")
    with tempfile.TemporaryDirectory() as d:
        raw, wav = Path(d) / "raw.wav", Path(d) / "s.wav"
        subprocess.run(["espeak-ng", "-w", str(raw), SENTENCE], check=True)
        subprocess.run(["sox", str(raw), "-r", "16000", "-c", "1", "-b", "16", str(wav), "pad", "0.5", "0.2"], check=True)
        with wave.open(str(wav)) as w:
            return w.readframes(w.getnframes())


def one_call(url: str, key: str, pcm: bytes, turns: int) -> list[dict]:
    """One WebSocket call: ``turns`` utterances streamed in real time, silence in between until each turn ends."""
    import threading

    from websockets.sync.client import connect

    ws = connect(url.replace("http://", "ws://") + "/v1/voice", max_size=None, open_timeout=30)
    ws.send(json.dumps({"type": "start", "token": key}))
    ends: list[dict] = []
    done = threading.Event()
    silence = b"\x00\x00" * (16000 * FRAME_MS // 1000)
    step = 16000 * 2 * FRAME_MS // 1000

    def reader() -> None:
        while len(ends) < turns:
            message = ws.recv(timeout=180)
            if isinstance(message, str):
                event = json.loads(message)
                if event["type"] == "turn_end":
                    ends.append(event)
                    done.set()
                elif event["type"] == "error" and event.get("code") != "stt_unavailable":
                    raise RuntimeError(event)

    t = threading.Thread(target=reader, daemon=True)
    t.start()
    for _ in range(turns):
        done.clear()
        t0 = time.monotonic()
        frames = [pcm[i:i + step] for i in range(0, len(pcm), step)]
        n = 0
        for frame in frames:
            ws.send(frame)
            n += 1
            time.sleep(max(0.0, t0 + n * FRAME_MS / 1000 - time.monotonic()))
        while not done.is_set():   # a real caller's line carries silence, not nothing
            ws.send(silence)
            n += 1
            time.sleep(max(0.0, t0 + n * FRAME_MS / 1000 - time.monotonic()))
        for _ in range(10):        # a breath before the next utterance
            ws.send(silence)
            n += 1
            time.sleep(max(0.0, t0 + n * FRAME_MS / 1000 - time.monotonic()))
    t.join(timeout=5)
    ws.send(json.dumps({"type": "stop"}))
    ws.close()
    return ends


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--gateway-url", default="http://127.0.0.1:8080")
    ap.add_argument("--key-file", default=str(REPO / "var" / "dev-api-key"))
    ap.add_argument("--turns", type=int, default=20)
    ap.add_argument("--sessions", default="1,4,8")
    args = ap.parse_args()
    key = Path(args.key_file).read_text().strip()
    pcm = speech_pcm()
    ends = one_call(args.gateway_url, key, pcm, args.turns)
    rows = []
    for stage in STAGES:
        values = [e["latency"][stage] for e in ends if stage in e.get("latency", {})]
        rows.append({"stage": stage.removesuffix("_ms"), "n": len(values), "p50_ms": pct(values, 50),
                     "p95_ms": pct(values, 95), "max_ms": max(values) if values else float("nan")})
    print(f"\nvoice turns: {len(ends)} (sequential, one call)")
    print(f"{'stage':<18} {'n':>4} {'p50 ms':>9} {'p95 ms':>9} {'max ms':>9}")
    for r in rows:
        print(f"{r['stage']:<18} {r['n']:>4} {r['p50_ms']:>9.1f} {r['p95_ms']:>9.1f} {r['max_ms']:>9.1f}")
    overhead = next(r for r in rows if r["stage"] == "overhead")
    print(f"orchestration overhead p95 {overhead['p95_ms']:.1f} ms (target ≤ 20 ms: ×{overhead['p95_ms'] / 20:.2f})")

    proc = listening_process(int(args.gateway_url.rsplit(":", 1)[1].split("/")[0]))
    load = []
    for n in (int(x) for x in args.sessions.split(",")):
        cpu0, t0 = cpu_seconds(proc), time.monotonic()
        with concurrent.futures.ThreadPoolExecutor(n) as pool:
            results = list(pool.map(lambda _: one_call(args.gateway_url, key, pcm, 2), range(n)))
        cpu, wall = cpu_seconds(proc) - cpu0, time.monotonic() - t0
        v2v = [e["latency"]["voice_to_voice_ms"] for r in results for e in r if "voice_to_voice_ms" in e["latency"]]
        per_session = cpu / (n * wall)
        load.append({"sessions": n, "wall_s": wall, "gateway_cpu_s": cpu, "cpu_per_session_second": per_session,
                     "sessions_per_core": 1 / per_session if per_session else float("inf"),
                     "v2v_p50_ms": pct(v2v, 50), "v2v_p95_ms": pct(v2v, 95)})
    print(f"\n{'sessions':>8} {'gateway CPU s':>14} {'CPU/session-s':>14} {'sessions/core':>14} {'v2v p50':>9} {'v2v p95':>9}")
    for r in load:
        print(f"{r['sessions']:>8} {r['gateway_cpu_s']:>14.2f} {r['cpu_per_session_second']:>14.4f} "
              f"{r['sessions_per_core']:>14.1f} {r['v2v_p50_ms']:>9.0f} {r['v2v_p95_ms']:>9.0f}")
    path = write_results("voice", {"stages": rows, "load": load, "settings": vars(args) | {"key_file": "(not recorded)"}})
    print(f"\nwritten {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
