"""Knowledge-base rows: collections, documents and their chunks. Every query takes the tenant."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import date, datetime
from typing import Any

import numpy as np
from psycopg import AsyncConnection
from psycopg.rows import dict_row

DOCUMENT_COLUMNS = ("d.id, d.source_name, d.title, d.format, d.content_sha256, d.bytes, d.tags, d.effective_date, d.version, "
                    "d.chunk_count, d.embed_model, d.created_by, d.created_at, d.updated_at, c.name AS collection")


def vector_text(vec: np.ndarray) -> str:
    """pgvector's text form; cast with ``::halfvec`` in SQL (no type registration per connection needed)."""
    return "[" + ",".join(f"{x:.6g}" for x in vec.tolist()) + "]"


async def ensure_collection(conn: AsyncConnection, tenant_id: str, name: str) -> uuid.UUID:
    cur = await conn.execute(
        "INSERT INTO kb_collections (tenant_id, name) VALUES (%s, %s) ON CONFLICT (tenant_id, name) "
        "DO UPDATE SET name = EXCLUDED.name RETURNING id", (tenant_id, name))
    return (await cur.fetchone())[0]


async def find_by_source(conn: AsyncConnection, tenant_id: str, collection: str, source_name: str) -> dict | None:
    return await _one(conn, f"SELECT {DOCUMENT_COLUMNS} FROM kb_documents d JOIN kb_collections c ON c.id = d.collection_id "
                            "WHERE d.tenant_id = %s AND c.name = %s AND d.source_name = %s", (tenant_id, collection, source_name))


async def find_by_hash(conn: AsyncConnection, tenant_id: str, collection: str, sha256: str) -> dict | None:
    return await _one(conn, f"SELECT {DOCUMENT_COLUMNS} FROM kb_documents d JOIN kb_collections c ON c.id = d.collection_id "
                            "WHERE d.tenant_id = %s AND c.name = %s AND d.content_sha256 = %s LIMIT 1",
                      (tenant_id, collection, sha256))


async def get_document(conn: AsyncConnection, tenant_id: str, document_id: uuid.UUID) -> dict | None:
    return await _one(conn, f"SELECT {DOCUMENT_COLUMNS} FROM kb_documents d JOIN kb_collections c ON c.id = d.collection_id "
                            "WHERE d.tenant_id = %s AND d.id = %s", (tenant_id, document_id))


async def list_documents(conn: AsyncConnection, tenant_id: str, collection: str | None, limit: int, offset: int) -> list[dict]:
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            f"SELECT {DOCUMENT_COLUMNS} FROM kb_documents d JOIN kb_collections c ON c.id = d.collection_id "
            "WHERE d.tenant_id = %(t)s AND (%(c)s::text IS NULL OR c.name = %(c)s) ORDER BY c.name, d.title, d.id "
            "LIMIT %(limit)s OFFSET %(offset)s", {"t": tenant_id, "c": collection, "limit": limit, "offset": offset})
        return await cur.fetchall()


async def list_collections(conn: AsyncConnection, tenant_id: str) -> list[dict]:
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute("SELECT c.name, c.created_at, count(d.id) AS documents, coalesce(sum(d.chunk_count), 0) AS chunks "
                          "FROM kb_collections c LEFT JOIN kb_documents d ON d.collection_id = c.id "
                          "WHERE c.tenant_id = %s GROUP BY c.id ORDER BY c.name", (tenant_id,))
        return await cur.fetchall()


async def chunks_of(conn: AsyncConnection, tenant_id: str, document_id: uuid.UUID) -> list[dict]:
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute("SELECT id, ord, section, text, tokens, page FROM kb_chunks WHERE tenant_id = %s AND document_id = %s "
                          "ORDER BY ord", (tenant_id, document_id))
        return await cur.fetchall()


async def update_metadata(conn: AsyncConnection, tenant_id: str, document_id: uuid.UUID, *, title: str,
                          tags: Sequence[str], effective_date: date | None) -> dict:
    """New title, tags or effective date for a document whose content is unchanged: the chunks carry the
    filters too, so both move together (call inside a transaction)."""
    await conn.execute("UPDATE kb_documents SET title = %s, tags = %s, effective_date = %s, updated_at = now() "
                       "WHERE tenant_id = %s AND id = %s", (title, list(tags), effective_date, tenant_id, document_id))
    await conn.execute("UPDATE kb_chunks SET tags = %s, effective_date = %s WHERE tenant_id = %s AND document_id = %s",
                       (list(tags), effective_date, tenant_id, document_id))
    return await get_document(conn, tenant_id, document_id)


async def write_document(conn: AsyncConnection, tenant_id: str, collection_id: uuid.UUID, replacing: dict | None, *,
                         source_name: str, title: str, fmt: str, sha256: str, size: int, tags: Sequence[str],
                         effective_date: date | None, embed_model: str, created_by: str,
                         chunks: Sequence[Any], vectors: np.ndarray) -> dict:
    """Insert a document (or replace ``replacing``'s content, keeping its id) with its chunks. Call inside a
    transaction: readers see the old version or the new one, never a mix."""
    values = {"t": tenant_id, "coll": collection_id, "src": source_name, "title": title, "fmt": fmt, "sha": sha256,
              "bytes": size, "tags": list(tags), "eff": effective_date, "n": len(chunks), "model": embed_model,
              "by": created_by}
    if replacing is None:
        cur = await conn.execute(
            "INSERT INTO kb_documents (tenant_id, collection_id, source_name, title, format, content_sha256, bytes, tags, "
            "effective_date, chunk_count, embed_model, created_by) VALUES (%(t)s, %(coll)s, %(src)s, %(title)s, %(fmt)s, "
            "%(sha)s, %(bytes)s, %(tags)s, %(eff)s, %(n)s, %(model)s, %(by)s) RETURNING id", values)
        document_id = (await cur.fetchone())[0]
    else:
        document_id = replacing["id"]
        await conn.execute("DELETE FROM kb_chunks WHERE tenant_id = %s AND document_id = %s", (tenant_id, document_id))
        await conn.execute(
            "UPDATE kb_documents SET title = %(title)s, format = %(fmt)s, content_sha256 = %(sha)s, bytes = %(bytes)s, "
            "tags = %(tags)s, effective_date = %(eff)s, chunk_count = %(n)s, embed_model = %(model)s, created_by = %(by)s, "
            "version = version + 1, updated_at = now() WHERE tenant_id = %(t)s AND id = %(id)s", {**values, "id": document_id})
    dims = int(vectors.shape[1]) if len(chunks) else 0
    async with conn.cursor() as cur:
        await cur.executemany(
            "INSERT INTO kb_chunks (tenant_id, document_id, collection_id, ord, section, text, tokens, page, tags, "
            "effective_date, dims, embed_model, embedding) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s::halfvec)",
            [(tenant_id, document_id, collection_id, c.ord, c.section, c.text, c.tokens, c.page, list(tags), effective_date,
              dims, embed_model, vector_text(vectors[i])) for i, c in enumerate(chunks)])
    return await get_document(conn, tenant_id, document_id)


async def other_model_documents(conn: AsyncConnection, model: str, tenant_id: str | None = None) -> dict[str, int]:
    """Documents whose vectors another embedding model made, by that model (of one tenant, or of all)."""
    cur = await conn.execute("SELECT embed_model, count(*) FROM kb_documents WHERE embed_model <> %s "
                             "AND (%s::uuid IS NULL OR tenant_id = %s) GROUP BY embed_model ORDER BY embed_model",
                             (model, tenant_id, tenant_id))
    return {m: n for m, n in await cur.fetchall()}


async def delete_document(conn: AsyncConnection, tenant_id: str, document_id: uuid.UUID) -> dict | None:
    doc = await get_document(conn, tenant_id, document_id)
    if doc is not None:
        await conn.execute("DELETE FROM kb_documents WHERE tenant_id = %s AND id = %s", (tenant_id, document_id))
    return doc


def document_out(row: dict) -> dict:
    out = {k: (v.isoformat() if isinstance(v, datetime | date) else v) for k, v in row.items()}
    out["id"] = str(row["id"])
    out["object"] = "knowledge.document"
    return out


async def _one(conn: AsyncConnection, sql: str, params: tuple) -> dict | None:
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(sql, params)
        return await cur.fetchone()
