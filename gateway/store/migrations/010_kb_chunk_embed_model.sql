-- A chunk's vector means something only next to vectors of the model that made it. Two embedding models of
-- the same size (MiniLM and another 384-dimensional model) would otherwise share one HNSW index, and after a
-- model change the old documents would be ranked by distances between two unrelated spaces until someone
-- re-ingested them. Each chunk now names its model (copied from its document, like its tags, so the vector
-- search filters without a join); retrieval compares a question only with chunks of the model in use.
ALTER TABLE kb_chunks ADD COLUMN embed_model text;
UPDATE kb_chunks c SET embed_model = d.embed_model FROM kb_documents d WHERE d.id = c.document_id;
ALTER TABLE kb_chunks ALTER COLUMN embed_model SET NOT NULL;
