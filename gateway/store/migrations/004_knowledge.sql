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
-- m = 24, ef_construction = 128 rather than 16 / 64: on embedding-like data recall@10 at ef_search 100 went
-- from 0.93 to 0.998 at 100k chunks for a 2.2x longer build (scripts/bench/retrieval.py).
CREATE INDEX kb_chunks_embedding_384 ON kb_chunks USING hnsw ((embedding::halfvec(384)) halfvec_cosine_ops)
    WITH (m = 24, ef_construction = 128) WHERE dims = 384;
CREATE INDEX kb_chunks_embedding_768 ON kb_chunks USING hnsw ((embedding::halfvec(768)) halfvec_cosine_ops)
    WITH (m = 24, ef_construction = 128) WHERE dims = 768;
CREATE INDEX kb_chunks_embedding_1024 ON kb_chunks USING hnsw ((embedding::halfvec(1024)) halfvec_cosine_ops)
    WITH (m = 24, ef_construction = 128) WHERE dims = 1024;

GRANT SELECT, INSERT, UPDATE, DELETE ON kb_collections, kb_documents, kb_chunks TO enclave_gateway;

-- How many chunks of a tenant hold each lexeme (document frequency). The text side of retrieval ORs only a
-- question's rarest words: common ones match most of the corpus, cost the most to rank and say the least.
CREATE TABLE kb_lexicon (
    tenant_id   uuid NOT NULL REFERENCES tenants(id),
    lexeme      text NOT NULL,
    chunks      int NOT NULL,
    PRIMARY KEY (tenant_id, lexeme)
);
GRANT SELECT, INSERT, UPDATE, DELETE ON kb_lexicon TO enclave_gateway;

-- Kept by the database itself, once per statement (a COPY of a million chunks is one aggregate), so every
-- writer — the gateway, the CLI, a cascade from a deleted document — keeps it right. Sorted, so
-- concurrent ingests lock lexemes in the same order.
CREATE FUNCTION kb_lexicon_count() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO kb_lexicon (tenant_id, lexeme, chunks)
        SELECT tenant_id, lexeme, count(*) FROM new_rows, unnest(tsvector_to_array(tsv)) AS lexeme
        GROUP BY 1, 2 ORDER BY 1, 2
        ON CONFLICT (tenant_id, lexeme) DO UPDATE SET chunks = kb_lexicon.chunks + EXCLUDED.chunks;
    ELSE
        UPDATE kb_lexicon l SET chunks = l.chunks - gone.n
        FROM (SELECT tenant_id, lexeme, count(*) AS n FROM old_rows, unnest(tsvector_to_array(tsv)) AS lexeme
              GROUP BY 1, 2 ORDER BY 1, 2) gone
        WHERE l.tenant_id = gone.tenant_id AND l.lexeme = gone.lexeme;
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER kb_chunks_lexicon_insert AFTER INSERT ON kb_chunks REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION kb_lexicon_count();
CREATE TRIGGER kb_chunks_lexicon_delete AFTER DELETE ON kb_chunks REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION kb_lexicon_count();
