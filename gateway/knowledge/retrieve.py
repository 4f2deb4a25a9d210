"""Hybrid retrieval: HNSW over half-precision embeddings (cosine) and Postgres full-text search, fused by
reciprocal rank fusion (RRF, k=60) in one SQL statement.

* Vector side: the partial HNSW index for the model's dimensions, with pgvector's iterative scan so tenant
  and collection filters still return enough candidates; ``ef_search`` trades recall for speed. Only chunks
  embedded by the model in use take part: a vector is comparable only with its own model's. After a model
  change, documents not yet re-ingested are found by their words alone (``other_model_documents`` counts
  them, and the gateway says so in its log at start).
* Text side: the question's rarest words in the tenant's corpus (at most ``text_terms`` of them, and only
  while their chunk counts add up to ``text_max_matches`` — ``kb_lexicon`` keeps the counts), OR-ed and
  ranked by ``ts_rank_cd``, so the rows ranked stay bounded however large the corpus. All of a
  question's words AND-ed rarely match anything; all of them OR-ed match most of a large corpus, which then
  has to be ranked row by row. The rare words are the ones that carry meaning anyway (the idea behind IDF).
* Each chunk scores ``1/(60 + vector rank) + 1/(60 + text rank)``; the cosine similarity of the vector side
  is returned too, because relevance ("does the corpus say anything about this?") is a threshold on it,
  not on a rank.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import asdict, dataclass, field
from datetime import date

import numpy as np
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from gateway.clients.embed import Embedder
from gateway.store.knowledge import other_model_documents, vector_text

log = logging.getLogger("enclave.gateway.knowledge")
RRF_K = 60


@dataclass(frozen=True)
class SearchFilter:
    collections: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()           # any of them
    effective_from: date | None = None
    effective_to: date | None = None


@dataclass
class Hit:
    chunk_id: int
    document_id: str
    title: str
    collection: str
    section: str
    ord: int
    page: int | None
    text: str
    effective_date: str | None
    score: float                          # RRF
    similarity: float | None              # cosine, when the vector side found it
    vector_rank: int | None
    text_rank: int | None

    def citation(self, index: int) -> dict:
        """What a reply carries to say where a statement comes from (no chunk text: the UI fetches it)."""
        return {"index": index, "document_id": self.document_id, "title": self.title, "section": self.section,
                "chunk": self.ord, "chunk_id": self.chunk_id, "page": self.page, "score": round(self.score, 5),
                "similarity": None if self.similarity is None else round(self.similarity, 4)}

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class SearchResult:
    hits: list[Hit]
    embed_ms: float
    query_ms: float
    timings: dict = field(default_factory=dict)


def _sql(dims: int, mode: str) -> str:
    vec = f"embedding::halfvec({dims})"
    where = ("tenant_id = %(t)s AND (%(colls)s::uuid[] IS NULL OR collection_id = ANY(%(colls)s)) "
             "AND (%(tags)s::text[] IS NULL OR tags && %(tags)s) "
             "AND (%(from)s::date IS NULL OR effective_date >= %(from)s) AND (%(to)s::date IS NULL OR effective_date <= %(to)s)")
    vector_side = (f"SELECT id, row_number() OVER (ORDER BY dist) AS r, 1 - dist AS sim FROM ("
                   f"SELECT id, {vec} <=> %(q)s::halfvec({dims}) AS dist FROM kb_chunks WHERE dims = {dims} "
                   f"AND embed_model = %(model)s AND {where} "
                   f"ORDER BY {vec} <=> %(q)s::halfvec({dims}) LIMIT %(n)s) v")
    # The question's rarest words in this tenant's corpus (document frequency from kb_lexicon), OR-ed, while
    # their frequencies add up to at most max_matches: that bounds how many chunks are ranked.
    rare_terms = ("SELECT (string_agg(quote_literal(lexeme), ' | '))::tsquery AS query FROM ("
                  "SELECT lexeme FROM (SELECT lexeme, sum(chunks) OVER (ORDER BY chunks, lexeme) AS running FROM kb_lexicon "
                  "WHERE tenant_id = %(t)s AND chunks > 0 AND lexeme = ANY(tsvector_to_array(to_tsvector('english', %(text)s)))) f "
                  "WHERE running <= %(max_matches)s ORDER BY running LIMIT %(max_terms)s) rare")
    text_side = ("SELECT id, row_number() OVER (ORDER BY rank DESC, id) AS r FROM ("
                 f"SELECT id, ts_rank_cd(tsv, query) AS rank FROM kb_chunks, ({rare_terms}) terms "
                 f"WHERE query IS NOT NULL AND tsv @@ query AND {where} ORDER BY rank DESC LIMIT %(n)s) f")
    no_vector = "SELECT NULL::bigint AS id, NULL::bigint AS r, NULL::float8 AS sim WHERE false"
    no_text = "SELECT NULL::bigint AS id, NULL::bigint AS r WHERE false"
    return (f"WITH vec AS ({vector_side if mode != 'text' else no_vector}), "
            f"fts AS ({text_side if mode != 'vector' else no_text}) "
            "SELECT c.id AS chunk_id, d.id AS document_id, d.title, col.name AS collection, c.section, c.ord, c.page, c.text, "
            "c.effective_date, coalesce(1.0 / (%(k)s + vec.r), 0) + coalesce(1.0 / (%(k)s + fts.r), 0) AS score, "
            "vec.sim AS similarity, vec.r AS vector_rank, fts.r AS text_rank "
            "FROM vec FULL JOIN fts USING (id) JOIN kb_chunks c ON c.id = coalesce(vec.id, fts.id) "
            "JOIN kb_documents d ON d.id = c.document_id JOIN kb_collections col ON col.id = c.collection_id "
            "ORDER BY score DESC, c.id LIMIT %(k_out)s")


class Retriever:
    def __init__(self, pool: AsyncConnectionPool, embedder: Embedder, *, candidates: int = 40, ef_search: int = 60,
                 text_terms: int = 6, text_max_matches: int = 1000) -> None:
        self.pool, self.embedder = pool, embedder
        self.candidates, self.ef_search = candidates, ef_search
        self.text_terms, self.text_max_matches = text_terms, text_max_matches

    async def search(self, tenant_id: str, query: str, top_k: int, filters: SearchFilter = SearchFilter(),
                     mode: str = "hybrid") -> SearchResult:
        t0 = time.perf_counter()
        vector = (await self.embedder.embed([query], truncate=True))[0] if mode != "text" else np.zeros(self.embedder.dimensions)
        t1 = time.perf_counter()
        hits = await self.search_vector(tenant_id, query, vector, top_k, filters, mode)
        return SearchResult(hits, (t1 - t0) * 1000, (time.perf_counter() - t1) * 1000)

    async def search_vector(self, tenant_id: str, query: str, vector: np.ndarray, top_k: int,
                            filters: SearchFilter = SearchFilter(), mode: str = "hybrid") -> list[Hit]:
        """The SQL half (the benchmark calls it with precomputed query vectors)."""
        async with self.pool.connection() as conn, conn.transaction():
            await conn.execute("SELECT set_config('hnsw.ef_search', %s, true), "
                               "set_config('hnsw.iterative_scan', 'relaxed_order', true)", (str(self.ef_search),))
            collection_ids = None
            if filters.collections:
                cur = await conn.execute("SELECT id FROM kb_collections WHERE tenant_id = %s AND name = ANY(%s)",
                                         (tenant_id, list(filters.collections)))
                collection_ids = [r[0] for r in await cur.fetchall()]
                if not collection_ids:
                    return []
            async with conn.cursor(row_factory=dict_row) as cur:
                await cur.execute(_sql(len(vector), mode), {
                    "t": tenant_id, "q": vector_text(vector), "model": self.embedder.model, "text": query, "n": max(self.candidates, top_k),
                    "colls": collection_ids, "tags": list(filters.tags) or None, "from": filters.effective_from,
                    "to": filters.effective_to, "k": RRF_K, "k_out": top_k, "max_terms": self.text_terms,
                    "max_matches": self.text_max_matches})
                rows = await cur.fetchall()
        return [Hit(chunk_id=r["chunk_id"], document_id=str(r["document_id"]), title=r["title"], collection=r["collection"],
                    section=r["section"], ord=r["ord"], page=r["page"], text=r["text"],
                    effective_date=r["effective_date"].isoformat() if r["effective_date"] else None,
                    score=float(r["score"]), similarity=None if r["similarity"] is None else float(r["similarity"]),
                    vector_rank=r["vector_rank"], text_rank=r["text_rank"]) for r in rows]


async def warn_of_other_model_documents(pool: AsyncConnectionPool, model: str) -> None:
    """At start, once: say in the log which documents vector search leaves out because another embedding model
    made their vectors (the profile changed since they were ingested), and how to bring them back."""
    for attempt in range(10):   # Postgres may still be starting; never pool.wait(): it closes the pool on timeout
        try:
            async with pool.connection(timeout=30) as conn:
                by_model = await other_model_documents(conn, model)
            break
        except Exception as e:  # noqa: BLE001  # a start-time notice: never worth failing anything for
            log.debug("could not count documents by embedding model yet", extra={"attempt": attempt + 1, "error": repr(e)})
            await asyncio.sleep(30)
    else:
        return
    if by_model:
        log.warning("knowledge documents embedded by another model are found by their words only, not by meaning, "
                    "until re-ingested (`enclave knowledge ingest` re-embeds them)",
                    extra={"embed_model": model, "documents_by_model": by_model})
