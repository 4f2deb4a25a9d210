-- Per-caller rate limits kept in Postgres, for a gateway of several processes (ENCLAVE_GATEWAY_WORKERS > 1):
-- the same token bucket as the in-memory one of a single process, shared, so a key gets its limit once.
-- UNLOGGED: after a crash the buckets start full again, which forgives a few requests; not worth the WAL.
CREATE UNLOGGED TABLE rate_buckets (
    subject     text PRIMARY KEY,
    tokens      double precision NOT NULL,
    refilled_at timestamptz NOT NULL
);

-- Take one token from the caller's bucket (refilled at per_min a minute, holding at most per_min).
-- Returns 0 when the request may pass, else the seconds until a token is there. Concurrent callers of one
-- subject queue on its row, so no two take the same token.
CREATE FUNCTION take_rate_token(p_subject text, p_per_min integer) RETURNS double precision
LANGUAGE plpgsql AS $$
DECLARE
    at    timestamptz := clock_timestamp();
    have  double precision;
BEGIN
    INSERT INTO rate_buckets AS b (subject, tokens, refilled_at) VALUES (p_subject, p_per_min, at)
    ON CONFLICT (subject) DO UPDATE
        SET tokens = LEAST(p_per_min::double precision,
                           b.tokens + GREATEST(0, EXTRACT(EPOCH FROM at - b.refilled_at)) * p_per_min / 60.0),
            refilled_at = GREATEST(b.refilled_at, at)
    RETURNING tokens INTO have;
    IF have < 1 THEN
        RETURN (1 - have) * 60.0 / p_per_min;
    END IF;
    UPDATE rate_buckets SET tokens = have - 1 WHERE subject = p_subject;
    RETURN 0;
END $$;

GRANT SELECT, INSERT, UPDATE, DELETE ON rate_buckets TO enclave_gateway;   -- DELETE: idle buckets are pruned
