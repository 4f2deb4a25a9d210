-- A chunk's vector means something only next to vectors of the model that made it. Two embedding models of
-- the same size (MiniLM and another 384-dimensional model) would otherwise share one HNSW index, and after a
-- model change the old documents would be ranked by distances between two unrelated spaces until someone
-- re-ingested them. Each chunk now names its model (copied from its document, like its tags, so the vector
-- search filters without a join); retrieval compares a question only with chunks of the model in use.
--
-- Filling the column rewrites every chunk. The HNSW indexes are dropped first and built again after, the
-- same as 004's: one build is faster than inserting every new row version into them, and leaves them no
-- larger than before. On an empty or small knowledge base this is instant; at 1M chunks expect about as
-- long as the first build (some 20 minutes on 2 cores, docs/knowledge.md), with knowledge search waiting.
SET LOCAL maintenance_work_mem = '1GB';
DROP INDEX kb_chunks_embedding_384, kb_chunks_embedding_768, kb_chunks_embedding_1024;
ALTER TABLE kb_chunks ADD COLUMN embed_model text;
UPDATE kb_chunks c SET embed_model = d.embed_model FROM kb_documents d WHERE d.id = c.document_id;
ALTER TABLE kb_chunks ALTER COLUMN embed_model SET NOT NULL;
CREATE INDEX kb_chunks_embedding_384 ON kb_chunks USING hnsw ((embedding::halfvec(384)) halfvec_cosine_ops)
    WITH (m = 24, ef_construction = 128) WHERE dims = 384;
CREATE INDEX kb_chunks_embedding_768 ON kb_chunks USING hnsw ((embedding::halfvec(768)) halfvec_cosine_ops)
    WITH (m = 24, ef_construction = 128) WHERE dims = 768;
CREATE INDEX kb_chunks_embedding_1024 ON kb_chunks USING hnsw ((embedding::halfvec(1024)) halfvec_cosine_ops)
    WITH (m = 24, ef_construction = 128) WHERE dims = 1024;
