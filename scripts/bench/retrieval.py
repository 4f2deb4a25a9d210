"""Retrieval benchmark: hybrid (HNSW halfvec + full text, RRF) and vector-only search at 10k, 100k and 1M
chunks, with recall@10 against exact search, and ingest throughput.

    .venv/bin/python scripts/bench/retrieval.py [--sizes 10000,100000,1000000] [--queries 200] [--ef-search 40,100]

Vectors are embedding-like, not random: real MiniLM embeddings of the knowledge-test corpus' sentences
(computed once, in this process, with the model the appliance serves), and variations of them. By default
(`--vectors sentences`) a chunk is three distinct corpus sentences — its text — and its vector the mean of
their three embeddings, renormalised; scripts/bench/retrieval_calibration.py checks that HNSW finds such a
set as hard as MiniLM's own embeddings of such chunks. `--vectors blend` is a stress set: two embeddings
blended plus isotropic noise, which is harder than real. Vectors and triples are cached under
var/bench/retrieval/. Queries are fresh (never stored rows). Each size is loaded into a
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

from scripts.bench.common import local_minilm, pct, write_results  # noqa: E402

CACHE = REPO / "var" / "bench" / "retrieval"
DIMS = 384
BENCH_MODEL = "bench-vectors"   # the model named on the loaded documents and chunks, and by the query side
rng = np.random.default_rng(7)


# -- data -----------------------------------------------------------------------------------------------

def corpus_sentences() -> list[str]:
    from tests.integration.knowledge_corpus import DOCS, QUESTIONS

    text = " ".join(d.body for d in DOCS) + " " + " ".join(q.text for q in QUESTIONS)
    sentences = [s.strip() for s in re.split(r"(?<=[.!?])\s+|\n+", text) if len(s.strip()) > 20]
    return list(dict.fromkeys(sentences))


def base_embeddings(sentences: list[str]) -> tuple[np.ndarray, float]:
    """(embeddings, sentences per second): the embedding rate bounds real ingest, so it is measured too."""
    model = local_minilm()
    model.encode(sentences[:32])
    t0 = time.perf_counter()
    vecs = model.encode(sentences, batch_size=64, normalize_embeddings=True, convert_to_numpy=True).astype(np.float32)
    rate = len(sentences) / (time.perf_counter() - t0)
    return vecs, rate


def variations(base: np.ndarray, n: int, seed: int, noise: float = 0.35) -> np.ndarray:
    """The stress set: a random blend of two real embeddings plus isotropic Gaussian noise, unit length.

    Harder than real chunk embeddings: the noise makes ~800 high-dimensional noise balls in which HNSW's greedy
    search can miss a query's whole neighbourhood (see scripts/bench/retrieval_calibration.py)."""
    r = np.random.default_rng(seed)
    a, b = r.integers(0, len(base), n), r.integers(0, len(base), n)
    w = r.uniform(0.55, 1.0, (n, 1)).astype(np.float32)
    v = w * base[a] + (1 - w) * base[b] + r.normal(0, noise / np.sqrt(DIMS), (n, DIMS)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def sentence_triples(n_sentences: int, n: int, seed: int, exclude: np.ndarray | None = None) -> np.ndarray:
    """n distinct chunks, each three distinct corpus sentences (sorted ids), none of them in ``exclude``."""
    r = np.random.default_rng(seed)

    def key(t: np.ndarray) -> np.ndarray:           # one int64 per triple
        return (t[:, 0].astype(np.int64) * n_sentences + t[:, 1]) * n_sentences + t[:, 2]

    taken = set() if exclude is None else set(key(exclude).tolist())
    if n > n_sentences * (n_sentences - 1) * (n_sentences - 2) // 6 - len(taken):
        raise ValueError(f"{n:,} distinct chunks of three out of {n_sentences} sentences do not exist")
    out: list[np.ndarray] = []
    have = 0
    while have < n:
        t = np.sort(r.integers(0, n_sentences, (int((n - have) * 1.1) + 16, 3)), axis=1)
        t = t[(t[:, 0] != t[:, 1]) & (t[:, 1] != t[:, 2])]
        _, first = np.unique(key(t), return_index=True)
        t = t[np.sort(first)]
        fresh = np.array([k not in taken for k in key(t).tolist()], dtype=bool)
        t = t[fresh][: n - have]
        taken.update(key(t).tolist())
        out.append(t)
        have += len(t)
    return np.concatenate(out).astype(np.int16)


def triple_vectors(base: np.ndarray, triples: np.ndarray) -> np.ndarray:
    """A chunk of three real sentences ~ the mean of their real embeddings, unit length (cosine 0.87 median with
    MiniLM's embedding of the joined text; at 100k its recall is the real embeddings', a little lower at small
    ef_search — see the calibration script)."""
    v = base[triples].mean(axis=1)
    return (v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32)


QUERY_SEED, QUERY_POOL = 1, 1000


def query_triples(n_sentences: int) -> np.ndarray:
    """The pool queries are drawn from; stored chunks never repeat one of them."""
    return sentence_triples(n_sentences, QUERY_POOL, seed=QUERY_SEED)


def queries_for(kind: str, base: np.ndarray, sentences: list[str], n: int) -> tuple[np.ndarray, list[str]]:
    """Fresh queries (never stored rows): vectors and the question-length text the full-text side searches."""
    if kind == "sentences":
        triples = query_triples(len(sentences))[:n]
        return triple_vectors(base, triples), [sentences[t[0]] for t in triples]
    texts = [sentences[i % len(sentences)] for i in rng.integers(0, len(sentences), n)]
    return variations(base, n, seed=QUERY_SEED), texts


def dataset(kind: str, base: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray | None]:
    """(vectors as float16, sentence triples or None), cached: the 1M set takes a while to draw and 768 MB."""
    path = CACHE / f"chunks-{kind}-{size}.npy"
    triples_path = CACHE / f"chunks-{kind}-{size}-triples.npy"
    if path.is_file() and (kind != "sentences" or triples_path.is_file()):
        return np.load(path, mmap_mode="r"), (np.load(triples_path) if kind == "sentences" else None)
    CACHE.mkdir(parents=True, exist_ok=True)
    triples = None
    if kind == "sentences":
        triples = sentence_triples(len(base), size, seed=size, exclude=query_triples(len(base)))
        vecs = triple_vectors(base, triples).astype(np.float16)
        np.save(triples_path, triples)
    else:
        vecs = variations(base, size, seed=size).astype(np.float16)
    np.save(path, vecs)
    return vecs, triples


# -- database -------------------------------------------------------------------------------------------

def load(url: str, vectors: np.ndarray, triples: np.ndarray | None, sentences: list[str], m: int = 24,
         ef_construction: int = 128, build_workers: int = 2) -> dict:
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
                copy.write_row((d, tenant, collection, f"doc-{i}.md", f"Document {i}", "md", f"{i:064x}", 1000, 1000, BENCH_MODEL))
        from pgvector import HalfVector

        t0 = time.perf_counter()
        with conn.cursor().copy("COPY kb_chunks (tenant_id, document_id, collection_id, ord, section, text, tokens, dims, "
                                "embed_model, embedding) FROM STDIN WITH (FORMAT BINARY)") as copy:
            copy.set_types(["uuid", "uuid", "uuid", "int4", "text", "text", "int4", "int2", "text", "halfvec"])
            for i in range(len(vectors)):
                ids = triples[i] if triples is not None else [(i * 7 + k * 13) % len(sentences) for k in range(3)]
                text = " ".join(sentences[j] for j in ids)
                copy.write_row((tenant, docs[i // 1000], collection, i % 1000, f"Section {i % 17}", text, 60, DIMS,
                                BENCH_MODEL, HalfVector(vectors[i])))
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
        dimensions, model = DIMS, BENCH_MODEL

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
    ap.add_argument("--vectors", choices=("sentences", "blend"), default="sentences",
                    help="sentences: chunks of three real sentences, their embeddings' mean (like real chunk embeddings); "
                         "blend: two embeddings blended plus isotropic noise (a stress set, harder than real)")
    ap.add_argument("--build-workers", type=int, default=2, help="parallel workers of the HNSW build (0: serial)")
    args = ap.parse_args()
    if args.queries > QUERY_POOL:
        ap.error(f"--queries: at most {QUERY_POOL} (the pool stored chunks are kept apart from)")
    sizes = [int(x) for x in args.sizes.split(",")]
    efs = [int(x) for x in args.ef_search.split(",")]

    from deploy.postgres import start_database
    from gateway.store.migrate import migrate

    sentences = corpus_sentences()
    base, embed_rate = base_embeddings(sentences)
    print(f"{len(base)} real sentence embeddings; MiniLM embeds {embed_rate:.0f} sentences/s here (the bound on ingest)")
    queries, query_texts = queries_for(args.vectors, base, sentences, args.queries)
    rows = []
    for size in sizes:
        scratch = Path(tempfile.mkdtemp(prefix="retrieval-bench-", dir=REPO / "var"))
        db = start_database(scratch, None)
        try:
            migrate(db.url)
            vectors, triples = dataset(args.vectors, base, size)
            print(f"{size:,} chunks: loading…", flush=True)
            loaded = load(db.url, vectors, triples, sentences, args.m, args.ef_construction, args.build_workers)
            print(f"  COPY {loaded['ingest_chunks_per_s']:,.0f} chunks/s, HNSW build {loaded['index_build_s']:.1f} s", flush=True)
            for ef in efs:
                n = min(args.exact_queries, len(queries))
                m = asyncio.run(measure(db.url, loaded["tenant"], queries[:n], query_texts[:n], ef))
                rows.append({"chunks": size, "vectors": args.vectors, "m": args.m, "ef_construction": args.ef_construction,
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
