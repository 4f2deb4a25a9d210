"""Small per-call primitives on one core, side by side with a reference where one exists: the G.711 codecs
against the standard library's audioop (Python ≤ 3.12), the stream resampler against real time, the
voice activity endpointer and barge-in detector against real time, the prompt-injection scorer per
utterance. These are the per-frame and per-message costs every voice call and chat turn pays.

    .venv/bin/python scripts/bench/primitives.py [--repeats 5]

Results go to scripts/bench/results/primitives-*.json and print as a table.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from gateway.safety.injection import InjectionScorer  # noqa: E402
from gateway.safety.injection_corpus import ATTACKS, BENIGN  # noqa: E402
from gateway.voice.codec import alaw_decode, alaw_encode, pcm16_to_float, rms_dbfs, ulaw_decode, ulaw_encode  # noqa: E402
from gateway.voice.resample import StreamResampler  # noqa: E402
from gateway.voice.vad import BargeInDetector, EndpointConfig, Endpointer  # noqa: E402
from scripts.bench.common import write_results  # noqa: E402

SR = 16000
RATE_PAIRS = [(8000, 16000), (16000, 8000), (22050, 16000), (24000, 8000)]


def best_seconds(fn: Callable[[], object], repeats: int) -> float:
    best = math.inf
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def reference_audioop():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            import audioop
        except ImportError:   # removed in Python 3.13
            return None
    return audioop


def codecs(repeats: int) -> list[dict]:
    rng = np.random.default_rng(0)
    pcm = rng.integers(-32768, 32768, size=2_000_000, dtype=np.int16).astype("<i2").tobytes()  # 4 MB, 125 s at 16 kHz
    codes = ulaw_encode(pcm)
    ref = reference_audioop()
    rows = []
    for name, fn, payload, ref_fn in [
        ("µ-law encode", ulaw_encode, pcm, (lambda b: ref.lin2ulaw(b, 2)) if ref else None),
        ("µ-law decode", ulaw_decode, codes, (lambda b: ref.ulaw2lin(b, 2)) if ref else None),
        ("A-law encode", alaw_encode, pcm, (lambda b: ref.lin2alaw(b, 2)) if ref else None),
        ("A-law decode", alaw_decode, codes, (lambda b: ref.alaw2lin(b, 2)) if ref else None),
        ("PCM16 → float", pcm16_to_float, pcm, None),
        ("RMS dBFS", rms_dbfs, pcm, (lambda b: ref.rms(b, 2)) if ref else None),
    ]:
        ours = len(payload) / best_seconds(lambda f=fn, p=payload: f(p), repeats) / 1e6
        theirs = len(payload) / best_seconds(lambda f=ref_fn, p=payload: f(p), repeats) / 1e6 if ref_fn else None
        rows.append({"what": name, "unit": "MB/s of input", "value": ours, "reference": theirs,
                     "reference_name": "audioop" if theirs else None})
    return rows


def resampling(repeats: int) -> list[dict]:
    rows = []
    for in_rate, out_rate in RATE_PAIRS:
        t = np.arange(in_rate // 50) / in_rate
        chunk = np.round(0.5 * 32767 * np.sin(2 * np.pi * 1000 * t)).astype("<i2").tobytes()   # 20 ms

        def ten_seconds(a: int = in_rate, b: int = out_rate, c: bytes = chunk) -> None:
            r = StreamResampler(a, b)
            for _ in range(500):
                r.process(c)

        rows.append({"what": f"resample {in_rate} → {out_rate}, 20 ms chunks", "unit": "× real time",
                     "value": 10.0 / best_seconds(ten_seconds, repeats), "reference": None, "reference_name": None})
    return rows


def voice_activity(repeats: int) -> list[dict]:
    t = np.arange(SR * 8) / SR
    harmonics = sum(np.sin(2 * np.pi * 150 * k * t) / k for k in range(1, 15))
    speech = (harmonics * (0.6 + 0.4 * np.sin(2 * np.pi * 4 * t)) / 6 * 8000).astype(np.int16)
    pcm = np.concatenate([np.zeros(SR, np.int16), speech, np.zeros(SR, np.int16)] * 3).tobytes()   # 30 s
    seconds = len(pcm) / 2 / SR

    def run(make: Callable[[], object]) -> Callable[[], None]:
        def go() -> None:
            det = make()
            n = det.frame_bytes
            for off in range(0, len(pcm) - n + 1, n):
                det.push_frame(pcm[off:off + n])
        return go

    return [{"what": name, "unit": "× real time (20 ms frames)", "value": seconds / best_seconds(run(make), repeats),
             "reference": None, "reference_name": None}
            for name, make in (("endpointer", lambda: Endpointer(EndpointConfig())), ("barge-in detector", BargeInDetector))]


def injection(repeats: int) -> list[dict]:
    scorer = InjectionScorer()
    texts = [*ATTACKS, *BENIGN]

    def all_texts() -> None:
        for text in texts:
            scorer.score(text)

    return [{"what": f"injection scorer ({len(texts)} corpus utterances)", "unit": "utterances/s",
             "value": len(texts) / best_seconds(all_texts, repeats), "reference": None, "reference_name": None}]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=5, help="best of this many runs per row (default: 5)")
    args = ap.parse_args()
    rows = codecs(args.repeats) + resampling(args.repeats) + voice_activity(args.repeats) + injection(args.repeats)
    table = Table(title="Primitives, one core (best of runs)")
    for col in ("what", "value", "unit", "reference", "× reference"):
        table.add_column(col, justify="left" if col in ("what", "unit") else "right")
    for r in rows:
        ref = r["reference"]
        table.add_row(r["what"], f"{r['value']:,.1f}", r["unit"],
                      f"{ref:,.1f} ({r['reference_name']})" if ref else "", f"{r['value'] / ref:.2f}" if ref else "")
    Console(width=140).print(table)
    print(f"results: {write_results('primitives', {'repeats': args.repeats, 'rows': rows})}")


if __name__ == "__main__":
    main()
