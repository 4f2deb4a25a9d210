-- Voice: the latency of each stage of a spoken turn (end of speech → transcript → first token → first
-- sentence → first TTS byte → first audio byte sent), kept with the assistant's row of the turn.
ALTER TABLE turns ADD COLUMN latency jsonb;
