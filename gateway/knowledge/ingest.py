"""Ingest one document: parse → chunk → embed → one transaction (document, chunks, audit entry).

* The same bytes are stored once per collection: a file already there under its name is ``unchanged``;
  the same bytes under another name are a ``duplicate`` (the existing document is returned).
* A changed file under a name already there *replaces* it: same document id, version + 1, old chunks
  deleted and new ones inserted in the same transaction, so readers see one version or the other.
* Embedding happens before the transaction opens (it is the slow part); a failure anywhere leaves nothing
  behind. A batch ingest is resumable for the same reason: re-running skips what is already in.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Literal

from psycopg_pool import AsyncConnectionPool

from gateway.clients.embed import Embedder
from gateway.knowledge.chunk import Chunk, chunk_document
from gateway.knowledge.parse import DocumentError, parse_document
from gateway.safety.pii import PiiDetector
from gateway.store import knowledge as repo
from gateway.store.audit import AuditEvent, append

COLLECTION_NAME = r"^[a-z0-9][a-z0-9_-]{0,62}$"
SECTION_PREFIX_CHARS = 160   # title + section path put before a chunk's text for embedding, at most this long


@dataclass
class IngestResult:
    status: Literal["created", "replaced", "updated", "unchanged", "duplicate"]
    document: dict
    chunks: int = 0
    pii_values: int = 0          # personal data seen in the text: reported so an operator can check the source
    warnings: list[str] = field(default_factory=list)


def embedding_input(title: str, chunk: Chunk) -> str:
    """What is embedded for a chunk: where it sits (title, section) and what it says."""
    where = f"{title} — {chunk.section}" if chunk.section else title
    return f"{where[:SECTION_PREFIX_CHARS]}\n{chunk.text}"


class Ingestor:
    def __init__(self, pool: AsyncConnectionPool, embedder: Embedder, count_tokens: Callable[[str], int], *,
                 max_tokens: int, overlap_tokens: int, max_bytes: int, detector: PiiDetector | None = None) -> None:
        self.pool, self.embedder, self.count_tokens = pool, embedder, count_tokens
        self.max_tokens, self.overlap_tokens, self.max_bytes = max_tokens, overlap_tokens, max_bytes
        self.detector = detector

    def _unchanged(self, document: dict, sha256: str) -> bool:
        """The same bytes, embedded by the model in use (vectors of two models are not comparable)."""
        return document["content_sha256"] == sha256 and document.get("embed_model") == self.embedder.model

    async def _same_content(self, conn, tenant_id: str, existing: dict, actor: str, tags: Sequence[str],
                            effective_date: date | None, title: str | None) -> IngestResult:
        """The same bytes again: unchanged, unless the upload sets other metadata (re-uploading is how an
        operator corrects an effective date or tags; they were silently ignored). What is not given stays."""
        wanted = {"title": (title or "").strip()[:300] or existing["title"],
                  "tags": sorted(set(tags)) if tags else list(existing["tags"] or []),
                  "effective_date": effective_date if effective_date is not None else existing["effective_date"]}
        if (wanted["title"], wanted["tags"], wanted["effective_date"]) == \
                (existing["title"], sorted(existing["tags"] or []), existing["effective_date"]):
            return IngestResult("unchanged", existing, existing["chunk_count"])
        async with conn.transaction():
            doc = await repo.update_metadata(conn, tenant_id, existing["id"], **wanted)
            await append(conn, AuditEvent("knowledge.update", actor, tenant_id, content={
                "document_id": str(existing["id"]), "source_name": existing["source_name"], "title": wanted["title"],
                "tags": wanted["tags"], "effective_date": str(wanted["effective_date"] or "") or None}))
        return IngestResult("updated", doc, existing["chunk_count"])

    async def ingest(self, tenant_id: str, collection: str, filename: str, data: bytes, *, actor: str,
                     tags: Sequence[str] = (), effective_date: date | None = None, title: str | None = None,
                     content_type: str | None = None, on_progress: Callable[[str, int, int], None] | None = None) -> IngestResult:
        """``on_progress(stage, done, total)`` is called while embedding (the CLI's progress bar)."""
        sha256 = hashlib.sha256(data).hexdigest()
        async with self.pool.connection() as conn:
            existing = await repo.find_by_source(conn, tenant_id, collection, filename)
            # After a model change every document is embedded again.
            if existing is not None and self._unchanged(existing, sha256):
                return await self._same_content(conn, tenant_id, existing, actor, tags, effective_date, title)
            # A new name whose bytes are already stored under another: kept once. A changed file under a name
            # that exists is a replacement, whatever else holds the same bytes (else its old text stays live).
            same = await repo.find_by_hash(conn, tenant_id, collection, sha256) if existing is None else None
            if same is not None:
                return IngestResult("duplicate", same, same["chunk_count"])
        # Parsing and chunking are CPU work (seconds for a large PDF): off the event loop.
        parsed = await asyncio.to_thread(parse_document, data, filename, content_type, self.max_bytes)
        doc_title = (title or parsed.title).strip()[:300] or filename
        chunks = await asyncio.to_thread(chunk_document, parsed, self.count_tokens, self.max_tokens, self.overlap_tokens)
        if not chunks:
            raise DocumentError("empty_document", f"{filename}: no text to index")
        inputs = [embedding_input(doc_title, c) for c in chunks]
        done = 0

        def progress(n: int) -> None:
            nonlocal done
            done += n
            if on_progress is not None:
                on_progress("embed", done, len(inputs))

        # A chunk fits the embedding model; its title-and-section prefix may not, with it: cut to the end, the
        # cut takes the start of the prefix, never the chunk's text.
        vectors = await self.embedder.embed(inputs, on_batch=progress, truncate=True)
        pii = sum(len(self.detector.detect(c.text)) for c in chunks) if self.detector is not None else 0
        async with self.pool.connection() as conn, conn.transaction():
            # Two ingests of one name at once (a double submit, the CLI beside the UI) take turns here: the
            # second sees the first's document and replaces it, instead of both inserting (a 500 on the
            # unique name, or on the chunks' order).
            await conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"kb|{tenant_id}|{collection}|{filename}",))
            collection_id = await repo.ensure_collection(conn, tenant_id, collection)
            replacing = await repo.find_by_source(conn, tenant_id, collection, filename)
            if replacing is not None and self._unchanged(replacing, sha256):   # the other ingest stored these bytes
                return IngestResult("unchanged", replacing, replacing["chunk_count"])
            doc = await repo.write_document(
                conn, tenant_id, collection_id, replacing, source_name=filename, title=doc_title, fmt=parsed.format,
                sha256=sha256, size=len(data), tags=sorted(set(tags)), effective_date=effective_date,
                embed_model=self.embedder.model, created_by=actor, chunks=chunks, vectors=vectors)
            status = "replaced" if replacing is not None else "created"
            await append(conn, AuditEvent("knowledge.ingest", actor, tenant_id, content={
                "document_id": str(doc["id"]), "collection": collection, "source_name": filename, "title": doc_title,
                "sha256": sha256, "version": doc["version"], "chunks": len(chunks), "status": status}))
        warnings = [f"{pii} personal-data values found in the text (stored as written; check the source)"] if pii else []
        return IngestResult(status, doc, len(chunks), pii, warnings)
