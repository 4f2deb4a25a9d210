-- Trust layer: per-key rate limits, retention policy, the PII vault, the hash-chained audit log, and the
-- gateway's own database role (it may only INSERT and SELECT the audit log).

ALTER TABLE api_keys
    ADD COLUMN rate_limit_per_min int CHECK (rate_limit_per_min > 0),   -- NULL: the gateway default applies
    ADD COLUMN created_by text NOT NULL DEFAULT '';

-- Retention, in days; NULL keeps content for ever. Transcripts are the turns of voice and SIP sessions.
ALTER TABLE tenants
    ADD COLUMN retention_turns_days       int CHECK (retention_turns_days > 0),
    ADD COLUMN retention_transcripts_days int CHECK (retention_transcripts_days > 0),
    ADD COLUMN retention_vault_days       int CHECK (retention_vault_days > 0);

-- A purged turn keeps its row and the hash of what it said (a tombstone); the content is gone.
ALTER TABLE turns
    ADD COLUMN content_sha256 text,
    ADD COLUMN purged_at timestamptz;
CREATE INDEX sessions_created_by ON sessions (tenant_id, created_by);

-- Originals of redacted values, encrypted with AES-GCM (associated data binds each to its row).
-- No foreign key to sessions: a session created on first use is stored with its first turn, in the same
-- transaction as these rows; and the vault follows its own retention, not the session's deletion.
CREATE TABLE pii_vault (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id    uuid NOT NULL REFERENCES tenants(id),
    session_id   uuid NOT NULL,
    placeholder  text NOT NULL,                 -- e.g. <CARD_1>: what the model, the DB and the logs see
    pii_type     text NOT NULL,
    fingerprint  text NOT NULL,                 -- keyed HMAC of the value: the same value gets the same placeholder
    key_id       text NOT NULL,                 -- which vault key encrypted it
    nonce        bytea,
    ciphertext   bytea,                         -- NULL once purged
    created_at   timestamptz NOT NULL DEFAULT now(),
    purged_at    timestamptz,
    UNIQUE (session_id, placeholder),
    UNIQUE (session_id, fingerprint)
);
CREATE INDEX pii_vault_tenant_created ON pii_vault (tenant_id, created_at);

-- The audit log. `entry` is the canonical JSON (sorted keys, no spaces) of who/what/where plus the sha256
-- of `content`; hash = sha256(prev_hash || entry). A retention purge may clear `content` (a tombstone:
-- content_sha256 stays inside the hashed entry), nothing else may change, and no row may be deleted.
CREATE TABLE audit_log (
    seq         bigint PRIMARY KEY,             -- gap-free, assigned under the chain head's row lock
    ts          timestamptz NOT NULL,
    tenant_id   uuid,                           -- NULL: an appliance-wide event
    action      text NOT NULL,
    session_id  uuid,
    entry       text NOT NULL,
    content     text,
    prev_hash   text NOT NULL,
    hash        text NOT NULL,
    purged_at   timestamptz
);
CREATE INDEX audit_log_tenant_ts ON audit_log (tenant_id, ts);
CREATE INDEX audit_log_session ON audit_log (session_id);

-- The head of the chain: one row, locked by each append, so appends are serialised and gap-free, and
-- `verify` can tell a truncated tail.
CREATE TABLE audit_head (
    id    boolean PRIMARY KEY DEFAULT true CHECK (id),
    seq   bigint NOT NULL,
    hash  text NOT NULL
);
INSERT INTO audit_head (seq, hash) VALUES (0, repeat('0', 64));

CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' AND NEW.content IS NULL AND NEW.purged_at IS NOT NULL
       AND (NEW.seq, NEW.ts, NEW.tenant_id, NEW.action, NEW.session_id, NEW.entry, NEW.prev_hash, NEW.hash)
           IS NOT DISTINCT FROM
           (OLD.seq, OLD.ts, OLD.tenant_id, OLD.action, OLD.session_id, OLD.entry, OLD.prev_hash, OLD.hash) THEN
        RETURN NEW;   -- a retention purge: content cleared, the chain untouched
    END IF;
    RAISE EXCEPTION 'audit_log is append-only (% refused)', TG_OP USING ERRCODE = 'insufficient_privilege';
END $$;
CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only();

-- The gateway's role. `enclave up` connects the gateway as this role; with an external server, the DBA
-- creates it (or lets this migration, when it has CREATEROLE) and gives the gateway its URL.
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'enclave_gateway') THEN
        CREATE ROLE enclave_gateway LOGIN;
    END IF;
END $$;
GRANT USAGE ON SCHEMA public TO enclave_gateway;
GRANT SELECT ON schema_migrations TO enclave_gateway;
GRANT SELECT ON tenants TO enclave_gateway;
GRANT UPDATE (retention_turns_days, retention_transcripts_days, retention_vault_days) ON tenants TO enclave_gateway;
GRANT SELECT, INSERT ON api_keys TO enclave_gateway;
GRANT UPDATE (revoked_at) ON api_keys TO enclave_gateway;
GRANT SELECT, INSERT, UPDATE, DELETE ON sessions, turns TO enclave_gateway;
GRANT SELECT, INSERT ON pii_vault TO enclave_gateway;
GRANT SELECT, INSERT ON audit_log TO enclave_gateway;
GRANT SELECT, UPDATE ON audit_head TO enclave_gateway;
