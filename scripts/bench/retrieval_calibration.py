"""Are the retrieval benchmark's synthetic vectors as hard for HNSW as real chunk embeddings?

    .venv/bin/python scripts/bench/retrieval_calibration.py [--size 100000] [--queries 200] [--ef-search 10,20,40,100]

The 1M-chunk benchmark cannot embed a million real chunks on a small box (MiniLM does about 130 three-sentence
chunks/s on 2 CPU cores: two hours), so it synthesises vectors from real sentence embeddings. This script checks
that choice at a size where the real thing is affordable: it embeds ``size`` real chunks — three distinct corpus
sentences joined, with the MiniLM the appliance serves, cached under var/bench/retrieval/ — and, side by side,
builds the same pgvector HNSW index (the migration's m and ef_construction) over

* ``real``: MiniLM's embeddings of those chunks;
* ``sentences``: the benchmark's default set for the *same* chunks — the mean of their three sentence embeddings;
* ``blend``: the benchmark's stress set of the same size — two sentence embeddings blended plus isotropic noise.

For each it reports recall@10 of the index against exact search at several ef_search, how many queries lost
their whole neighbourhood (recall ≤ 0.2: the greedy search ended in the wrong region), the median similarity
of the 1st and 10th neighbour and the local intrinsic dimensionality (Levina–Bickel, k = 20). Queries are held-out
chunks of each set. Results go to scripts/bench/results/retrieval-calibration-*.json and print as a table.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from scripts.bench.common import local_minilm, write_results  # noqa: E402
from scripts.bench.retrieval import (  # noqa: E402
    CACHE,
    base_embeddings,
    corpus_sentences,
    sentence_triples,
    triple_vectors,
    variations,
)

REAL_SEED = 11


def real_chunk_embeddings(sentences: list[str], triples: np.ndarray) -> np.ndarray:
    """MiniLM's own embeddings of the joined chunks (cached: 100k take about 12 minutes on 2 cores)."""
    path = CACHE / f"real-chunks-{REAL_SEED}-{len(triples)}.npy"
    if path.is_file():
        return np.load(path)
    model = local_minilm()
    texts = [" ".join(sentences[j] for j in t) for t in triples]
    print(f"embedding {len(texts):,} real chunks with MiniLM (cached afterwards)…", flush=True)
    vecs = model.encode(texts, batch_size=64, normalize_embeddings=True, convert_to_numpy=True,
                        show_progress_bar=True).astype(np.float32)
    CACHE.mkdir(parents=True, exist_ok=True)
    np.save(path, vecs)
    return vecs


def neighbourhood(data: np.ndarray, queries: np.ndarray) -> dict:
    """Exact top-10 ids, and the shape of the neighbourhood: nn1 / nn10 similarity, local intrinsic dimension."""
    sims = queries @ data.T
    top_ids = np.argsort(-sims, axis=1)[:, :10]
    top = -np.sort(-sims, axis=1)[:, :20]
    dist = np.sqrt(np.maximum(2 - 2 * top, 1e-12))
    lid = 1 / np.mean(np.log(dist[:, -1:] / dist[:, :-1]), axis=1)
    return {"truth": top_ids, "nn1_sim": float(np.median(top[:, 0])), "nn10_sim": float(np.median(top[:, 9])),
            "lid": float(np.median(lid))}


def index_recall(url: str, data: np.ndarray, queries: np.ndarray, truth: np.ndarray, m: int, ef_construction: int,
                 ef_searches: list[int]) -> dict:
    """Build the HNSW index as the migration does (halfvec, cosine) and measure recall@10 per ef_search."""
    import psycopg
    from pgvector import HalfVector
    from pgvector.psycopg import register_vector

    out: dict = {}
    with psycopg.connect(url, autocommit=True) as conn:
        register_vector(conn)
        conn.execute("DROP TABLE IF EXISTS calibration")
        conn.execute("CREATE TABLE calibration (id int4, v halfvec(384))")
        with conn.cursor().copy("COPY calibration (id, v) FROM STDIN WITH (FORMAT BINARY)") as copy:
            copy.set_types(["int4", "halfvec"])
            for i, v in enumerate(data):
                copy.write_row((i, HalfVector(v)))
        conn.execute("SET maintenance_work_mem = '2GB'")
        t0 = time.perf_counter()
        conn.execute(f"CREATE INDEX ON calibration USING hnsw (v halfvec_cosine_ops) "
                     f"WITH (m = {int(m)}, ef_construction = {int(ef_construction)})")
        out["index_build_s"] = time.perf_counter() - t0
        for ef in ef_searches:
            conn.execute(f"SET hnsw.ef_search = {int(ef)}")
            recalls = []
            for q, want in zip(queries, truth, strict=True):
                rows = conn.execute("SELECT id FROM calibration ORDER BY v <=> %s LIMIT 10", (HalfVector(q),)).fetchall()
                recalls.append(len({r[0] for r in rows} & set(want.tolist())) / 10)
            out[f"ef{ef}"] = {"recall_at_10": float(np.mean(recalls)),
                              "lost_neighbourhoods": int(sum(r <= 0.2 for r in recalls))}
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", type=int, default=100_000, help="chunks per set (real ones are embedded once, cached)")
    ap.add_argument("--queries", type=int, default=200, help="held-out chunks used as queries")
    ap.add_argument("--ef-search", default="10,20,40,100")
    ap.add_argument("--m", type=int, default=24)
    ap.add_argument("--ef-construction", type=int, default=128)
    args = ap.parse_args()
    efs = [int(x) for x in args.ef_search.split(",")]

    from deploy.postgres import start_database

    sentences = corpus_sentences()
    base, _ = base_embeddings(sentences)
    triples = sentence_triples(len(sentences), args.size + args.queries, seed=REAL_SEED)
    sets = {
        "real": real_chunk_embeddings(sentences, triples),
        "sentences": triple_vectors(base, triples),
        "blend": variations(base, args.size + args.queries, seed=REAL_SEED),
    }
    real, mean = sets["real"], sets["sentences"]
    agreement = float(np.median((real * mean).sum(axis=1)))
    print(f"cosine between MiniLM's chunk embedding and the mean of its sentences' (median): {agreement:.3f}")
    rows = []
    scratch = Path(tempfile.mkdtemp(prefix="retrieval-calibration-", dir=REPO / "var"))
    db = start_database(scratch, None)
    try:
        for name, vecs in sets.items():
            halves = vecs.astype(np.float16)          # what the index stores; exact search sees the same values
            data, queries = halves[:-args.queries], halves[-args.queries:]
            shape = neighbourhood(data.astype(np.float32), queries.astype(np.float32))
            print(f"{name}: building the index over {len(data):,} vectors…", flush=True)
            measured = index_recall(db.url, data, queries, shape.pop("truth"), args.m, args.ef_construction, efs)
            rows.append({"set": name, "chunks": len(data), **shape, **measured})
    finally:
        db.stop()
        shutil.rmtree(scratch, ignore_errors=True)
    print_table(rows, efs)
    path = write_results("retrieval-calibration", {"rows": rows, "chunk_vs_mean_cosine": agreement, "settings": vars(args)})
    print(f"results: {path}")
    return 0


def print_table(rows: list[dict], efs: list[int]) -> None:
    from rich.console import Console
    from rich.table import Table

    t = Table("set", "chunks", "nn1 / nn10 sim", "LID", *(f"recall@10 ef {ef} (lost)" for ef in efs), "HNSW build s",
              title="HNSW hardness: real chunk embeddings vs the benchmark's synthetic sets")
    for r in rows:
        t.add_row(r["set"], f"{r['chunks']:,}", f"{r['nn1_sim']:.3f} / {r['nn10_sim']:.3f}", f"{r['lid']:.1f}",
                  *(f"{r[f'ef{ef}']['recall_at_10']:.3f} ({r[f'ef{ef}']['lost_neighbourhoods']})" for ef in efs),
                  f"{r['index_build_s']:.1f}")
    Console(width=200).print(t)


if __name__ == "__main__":
    sys.exit(main())
