"""``/v1/knowledge``: upload, list, inspect and delete documents (supervisors and admins); search (staff).

Uploads are multipart (``file`` plus ``collection``, ``tags``, ``effective_date``, ``title``). A document
that cannot be ingested gets a 4xx with a stable code and leaves nothing behind.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Literal

from fastapi import APIRouter, File, Form, Query, Request, UploadFile
from fastapi.responses import JSONResponse

from gateway.api.deps import DbConn
from gateway.api.routing import StrictJsonRoute
from gateway.api.sessions import require_id
from gateway.auth import ChatCaller, CuratorCaller
from gateway.errors import EnclaveError, InvalidRequest, NotFound, PayloadTooLarge
from gateway.knowledge.ground import KnowledgeSpec
from gateway.knowledge.ingest import COLLECTION_NAME
from gateway.knowledge.parse import DocumentError
from gateway.safety.redact import SessionVault
from gateway.store import knowledge as repo
from gateway.store.audit import AuditEvent, append

router = APIRouter(route_class=StrictJsonRoute, prefix="/v1/knowledge", tags=["knowledge"])


class UnsupportedDocument(EnclaveError):
    status = 415


class UnprocessableDocument(EnclaveError):
    status = 422


def document_error(e: DocumentError) -> EnclaveError:
    kind = {"document_too_large": PayloadTooLarge, "unsupported_format": UnsupportedDocument}.get(e.code, UnprocessableDocument)
    return kind(e.code, str(e), "file")


@router.post("/documents", status_code=201)
async def upload(request: Request, identity: CuratorCaller, file: Annotated[UploadFile, File()],
                 collection: Annotated[str, Form(pattern=COLLECTION_NAME)] = "default",
                 tags: Annotated[str, Form(max_length=1000)] = "",
                 effective_date: Annotated[date | None, Form()] = None,
                 title: Annotated[str | None, Form(max_length=300)] = None):
    state = request.app.state
    limit = state.settings.knowledge_max_upload_bytes
    data = await file.read(limit + 1)
    if len(data) > limit:
        raise PayloadTooLarge("document_too_large", f"the file is over the {limit}-byte limit for one document", "file")
    name = (file.filename or "").strip().replace("\\", "/").rsplit("/", 1)[-1][:255]
    if not name:
        raise InvalidRequest("missing_parameter", "the upload needs a file name", "file")
    try:
        result = await state.knowledge.ingestor.ingest(
            identity.tenant_id, collection, name, data, actor=identity.subject, content_type=file.content_type,
            tags=[t.strip() for t in tags.split(",") if t.strip()], effective_date=effective_date, title=title)
    except DocumentError as e:
        raise document_error(e) from None
    body = {"object": "knowledge.ingest", "status": result.status, "chunks": result.chunks, "warnings": result.warnings,
            "document": repo.document_out(result.document)}
    return JSONResponse(body, status_code=201 if result.status in ("created", "replaced") else 200)


@router.get("/documents")
async def list_documents(identity: ChatCaller, conn: DbConn, collection: str | None = None,
                         limit: Annotated[int, Query(ge=1, le=500)] = 100,
                         offset: Annotated[int, Query(ge=0)] = 0) -> dict:
    rows = await repo.list_documents(conn, identity.tenant_id, collection, limit, offset)
    return {"object": "list", "data": [repo.document_out(r) for r in rows], "limit": limit, "offset": offset}


@router.get("/documents/{document_id}")
async def get_document(document_id: str, identity: ChatCaller, conn: DbConn) -> dict:
    """The document and its chunks (what a citation opens)."""
    did = require_id(document_id, "document_id", "document id")
    doc = await repo.get_document(conn, identity.tenant_id, did)
    if doc is None:
        raise NotFound("document_not_found", f"no document {did}", "document_id")
    return {**repo.document_out(doc), "chunks": await repo.chunks_of(conn, identity.tenant_id, did)}


@router.delete("/documents/{document_id}")
async def delete_document(document_id: str, identity: CuratorCaller, conn: DbConn) -> dict:
    did = require_id(document_id, "document_id", "document id")
    async with conn.transaction():
        doc = await repo.delete_document(conn, identity.tenant_id, did)
        if doc is None:
            raise NotFound("document_not_found", f"no document {did}", "document_id")
        await append(conn, AuditEvent("knowledge.delete", identity.subject, identity.tenant_id, content={
            "document_id": str(did), "title": doc["title"], "collection": doc["collection"], "sha256": doc["content_sha256"]}))
    return {"id": str(did), "object": "knowledge.document.deleted", "deleted": True}


@router.get("/collections")
async def list_collections(identity: ChatCaller, conn: DbConn) -> dict:
    rows = await repo.list_collections(conn, identity.tenant_id)
    return {"object": "list", "data": [{**r, "created_at": r["created_at"].isoformat()} for r in rows]}


@router.get("/search")
async def search(request: Request, identity: ChatCaller,
                 q: Annotated[str, Query(min_length=1, max_length=2000)],
                 collection: Annotated[list[str] | None, Query()] = None,
                 tag: Annotated[list[str] | None, Query()] = None,
                 effective_from: date | None = None, effective_to: date | None = None,
                 top_k: Annotated[int, Query(ge=1, le=50)] = 5,
                 mode: Literal["hybrid", "vector", "text"] = "hybrid") -> dict:
    """Chunks with their scores, for the UI and for debugging retrieval. The query is redacted first, like any text."""
    state = request.app.state
    query = state.redactor.redact(" ".join(q.split()), SessionVault(identity.tenant_id, "search"))
    spec = KnowledgeSpec.parse({k: v for k, v in {"collections": collection, "tags": tag,
                                                  "effective_from": effective_from and effective_from.isoformat(),
                                                  "effective_to": effective_to and effective_to.isoformat()}.items()
                                if v}, "query")
    result = await state.knowledge.retriever.search(identity.tenant_id, query, top_k, spec.filters, mode)
    threshold = state.knowledge.relevance_threshold
    async with state.db.connection() as conn:
        other_model = await repo.other_model_documents(conn, state.knowledge.embedder.model, identity.tenant_id)
    return {"object": "list", "query": query, "mode": mode, "embed_ms": round(result.embed_ms, 2),
            "query_ms": round(result.query_ms, 2), "min_similarity": threshold,
            # Documents another embedding model made vectors for: found by their words only until re-ingested.
            "other_model_documents": sum(other_model.values()),
            "data": [{**h.as_dict(), "relevant": h.similarity is not None and h.similarity >= threshold}
                     for h in result.hits]}
