-- Knowledge base: collections per tenant, documents (one version visible at a time), chunks with a
-- half-precision embedding and a full-text vector. A document and its chunks are written in one
-- transaction, so a half-ingested document is never visible.

CREATE TABLE kb_collections (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id   uuid NOT NULL REFERENCES tenants(id),
    name        text NOT NULL CHECK (name ~ '^[a-z0-9][a-z0-9_-]{0,62}$'),
    created_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, name),
    UNIQUE (tenant_id, id)
);

CREATE TABLE kb_documents (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id       uuid NOT NULL,
    collection_id   uuid NOT NULL,
    source_name     text NOT NULL,              -- the file name (or the caller's key): re-ingesting it replaces
    title           text NOT NULL,
    format          text NOT NULL CHECK (format IN ('txt', 'md', 'html', 'pdf', 'docx')),
    content_sha256  text NOT NULL,              -- of the file's bytes: the same bytes are never stored twice
    bytes           int NOT NULL,
    tags            text[] NOT NULL DEFAULT '{}',
    effective_date  date,
    version         int NOT NULL DEFAULT 1,     -- bumped by each replacement
    chunk_count     int NOT NULL,
    embed_model     text NOT NULL,
    created_by      text NOT NULL DEFAULT '',
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    FOREIGN KEY (tenant_id, collection_id) REFERENCES kb_collections (tenant_id, id) ON DELETE CASCADE,
    UNIQUE (tenant_id, collection_id, source_name),
    UNIQUE (tenant_id, id)
);
CREATE INDEX kb_documents_hash ON kb_documents (tenant_id, collection_id, content_sha256);

CREATE TABLE kb_chunks (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id       uuid NOT NULL,
    document_id     uuid NOT NULL,
    collection_id   uuid NOT NULL,
    ord             int NOT NULL,
    section         text NOT NULL DEFAULT '',
    text            text NOT NULL,
    tokens          int NOT NULL,
    page            int,
    tags            text[] NOT NULL DEFAULT '{}',   -- the document's, copied so filters need no join
    effective_date  date,
    dims            smallint NOT NULL,              -- the embedding model's dimensions (one HNSW index each)
    embedding       halfvec NOT NULL,
    tsv             tsvector GENERATED ALWAYS AS (to_tsvector('english', section || ' ' || text)) STORED,
    FOREIGN KEY (tenant_id, document_id) REFERENCES kb_documents (tenant_id, id) ON DELETE CASCADE,
    UNIQUE (document_id, ord)
);
CREATE INDEX kb_chunks_tsv ON kb_chunks USING gin (tsv);
CREATE INDEX kb_chunks_tenant ON kb_chunks (tenant_id, collection_id);
-- One cosine HNSW index per embedding size in the catalog (MiniLM 384, bge-base 768, large models 1024).
CREATE INDEX kb_chunks_embedding_384 ON kb_chunks USING hnsw ((embedding::halfvec(384)) halfvec_cosine_ops) WHERE dims = 384;
CREATE INDEX kb_chunks_embedding_768 ON kb_chunks USING hnsw ((embedding::halfvec(768)) halfvec_cosine_ops) WHERE dims = 768;
CREATE INDEX kb_chunks_embedding_1024 ON kb_chunks USING hnsw ((embedding::halfvec(1024)) halfvec_cosine_ops) WHERE dims = 1024;

GRANT SELECT, INSERT, UPDATE, DELETE ON kb_collections, kb_documents, kb_chunks TO enclave_gateway;
