"""Intent classification benchmark: the example pack's classifier on one core, alone and end to end.

    .venv/bin/python scripts/bench/intents.py [--seconds 3] [--serving-url http://127.0.0.1:8000]

* accuracy on the held-out set (tests/integration/intent_heldout.py: typos and spoken style, never
  trained on), with the classifier's speed;
* **classifier alone** (utterances/s, one core: BLAS pinned to one thread) — embeddings precomputed, one
  utterance per call and batches of 256; the target is ≥ 10,000 utterances/s;
* **end to end**: the same utterances including the embedding call — through the serving plane's
  ``/v1/embeddings`` (what the gateway does) when ``--serving-url`` is given, and in this process
  (sentence-transformers, the same MiniLM) always — side by side with the classifier alone, as ratios.

Results go to scripts/bench/results/intents-*.json and print as a table.
"""

from __future__ import annotations

import os

for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):   # one core, before numpy loads
    os.environ.setdefault(var, "1")

import argparse  # noqa: E402
import asyncio  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from collections import Counter  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from gateway.dialogue.intents import IntentModel, normalise_utterance, train  # noqa: E402
from gateway.dialogue.packs import load_pack  # noqa: E402
from scripts.bench.common import local_minilm, write_results  # noqa: E402
from tests.integration.intent_heldout import HELDOUT  # noqa: E402

TARGET_PER_S = 10_000


def local_encoder():
    model = local_minilm()

    async def embed(texts):
        return model.encode(list(texts), batch_size=64, normalize_embeddings=True, convert_to_numpy=True)

    return embed


def served_encoder(url: str, model_id: str):
    import httpx

    from gateway.clients.embed import Embedder

    client = httpx.AsyncClient(base_url=url, timeout=60, trust_env=False)
    return Embedder(client, model_id, 384).embed


def rate(fn, items, seconds: float) -> tuple[float, int]:
    """Items per second for ``fn`` over ``items`` repeated for about ``seconds``."""
    done, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        for item in items:
            fn(item)
        done += len(items)
    return done / (time.perf_counter() - t0), done


def unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


async def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--serving-url", default=None, help="a running serving plane, for the end-to-end row through HTTP")
    ap.add_argument("--embed-model", default="all-minilm-l6-v2")
    args = ap.parse_args()

    pack = load_pack(REPO / "packs" / "retail-bank")
    examples = {name: list(i.examples) for name, i in pack.intents.items()}
    encoders = {"in-process MiniLM": local_encoder()}
    if args.serving_url:
        encoders["serving /v1/embeddings"] = served_encoder(args.serving_url.rstrip("/"), args.embed_model)
    embed = encoders["in-process MiniLM"]
    t0 = time.perf_counter()
    model: IntentModel = await train(examples, embed, "bench", None)
    train_s = time.perf_counter() - t0
    texts = [t for t, _ in HELDOUT]
    gold = [g for _, g in HELDOUT]
    vectors = unit(np.asarray(await embed([normalise_utterance(t) for t in texts]), dtype=np.float32))
    scores = model.scores(vectors)
    right = [s.intent == g for s, g in zip(scores, gold, strict=True)]
    accuracy = sum(right) / len(right)
    misses = Counter(g for ok, g in zip(right, gold, strict=True) if not ok)
    confident = [s.confidence >= pack.understanding.threshold for s in scores]
    conf_acc = (sum(ok for ok, c in zip(right, confident, strict=True) if c) / max(1, sum(confident)))

    rows = []
    singles = [vectors[i:i + 1] for i in range(len(vectors))]
    per_s, n = rate(lambda v: model.scores(v), singles, args.seconds)
    rows.append({"path": "classifier alone", "batch": 1, "utterances_per_s": per_s, "n": n})
    batch = np.concatenate([vectors] * (256 // len(vectors) + 1))[:256]
    per_s_b, n_b = rate(lambda v: model.scores(v), [batch], args.seconds)
    rows.append({"path": "classifier alone", "batch": 256, "utterances_per_s": per_s_b * 256, "n": n_b * 256})
    for name, enc in encoders.items():
        for size in (1, 32):
            chunks = [texts[i:i + size] for i in range(0, min(len(texts), 128), size)]
            t0, done = time.perf_counter(), 0
            while time.perf_counter() - t0 < args.seconds:
                for chunk in chunks:
                    v = unit(np.asarray(await enc([normalise_utterance(t) for t in chunk]), dtype=np.float32))
                    model.scores(v)
                    done += len(chunk)
            rows.append({"path": f"end to end ({name})", "batch": size,
                         "utterances_per_s": done / (time.perf_counter() - t0), "n": done})
    alone = rows[0]["utterances_per_s"]
    for r in rows:
        r["vs_classifier_alone"] = r["utterances_per_s"] / alone
        r["vs_target"] = r["utterances_per_s"] / TARGET_PER_S

    print(f"\nintents {len(model.labels)}, training examples {len(model.examples)}, trained in {train_s * 1000:.0f} ms "
          f"(embedding included)")
    print(f"held-out accuracy {accuracy:.3f} on {len(HELDOUT)} utterances; {sum(confident)} above the pack threshold "
          f"({pack.understanding.threshold}) with accuracy {conf_acc:.3f}; most missed: {misses.most_common(4)}")
    print(f"\n{'path':<40} {'batch':>6} {'utt/s':>12} {'× alone':>9} {'× target':>9}")
    for r in rows:
        print(f"{r['path']:<40} {r['batch']:>6} {r['utterances_per_s']:>12,.0f} {r['vs_classifier_alone']:>9.3f} "
              f"{r['vs_target']:>9.2f}")
    path = write_results("intents", {"rows": rows, "accuracy": accuracy, "heldout": len(HELDOUT),
                                     "confident_share": sum(confident) / len(confident), "confident_accuracy": conf_acc,
                                     "misses": dict(misses), "train_ms": train_s * 1000, "target_per_s": TARGET_PER_S,
                                     "settings": vars(args)})
    print(f"\nwritten {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
