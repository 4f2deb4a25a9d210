-- Feedback on answers (thumbs and a comment) for the CSAT figure; one rating per person and answer.
CREATE TABLE feedback (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id   uuid NOT NULL REFERENCES tenants(id),
    session_id  uuid NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
    turn_id     uuid NOT NULL,
    rating      smallint NOT NULL CHECK (rating IN (-1, 1)),
    comment     text NOT NULL DEFAULT '',              -- redacted
    created_by  text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (turn_id, created_by)
);
CREATE INDEX feedback_tenant_created ON feedback (tenant_id, created_at);
GRANT SELECT, INSERT, UPDATE, DELETE ON feedback TO enclave_gateway;
