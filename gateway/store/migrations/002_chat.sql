-- Chat: sessions own their history on the server; a turn is one user message and its reply, stored whole.
ALTER TABLE tenants
    ADD COLUMN max_input_tokens  int CHECK (max_input_tokens > 0),   -- NULL: the gateway default applies
    ADD COLUMN max_output_tokens int CHECK (max_output_tokens > 0);

CREATE TABLE sessions (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id       uuid NOT NULL REFERENCES tenants(id),
    channel         text NOT NULL DEFAULT 'chat' CHECK (channel IN ('chat', 'api', 'voice', 'sip')),
    title           text NOT NULL DEFAULT '',
    system_prompt   text,
    -- Rolling summary of the turns with seq <= summary_upto_seq, written by the LLM when history grows.
    summary         text,
    summary_upto_seq int NOT NULL DEFAULT 0,
    summary_tokens  int NOT NULL DEFAULT 0,
    turn_count      int NOT NULL DEFAULT 0,
    metadata        jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_by      text NOT NULL DEFAULT '',          -- key prefix or user id, never a secret
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX sessions_tenant_updated ON sessions (tenant_id, updated_at DESC);

-- One row per message. A turn shares turn_id and is inserted by one statement, so it is stored whole or
-- not at all: the user's message (or, in a tool loop, the tool results the client sends back, after the
-- assistant message that asked for them) and then the assistant's reply.
CREATE TABLE turns (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    session_id   uuid NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
    tenant_id    uuid NOT NULL REFERENCES tenants(id),
    turn_id      uuid NOT NULL,
    seq          int NOT NULL,                      -- turn number within the session, from 1
    position     smallint NOT NULL,                 -- message order within the turn
    role         text NOT NULL CHECK (role IN ('user', 'assistant', 'tool')),
    content      text NOT NULL,                     -- redacted text (the trust layer redacts before this)
    tool_calls   jsonb,                             -- assistant rows: the calls the model asked for
    tool_call_id text,                              -- tool rows: which call this result answers
    channel      text NOT NULL,
    model        text,                              -- the upstream that answered (assistant rows)
    tokens       int NOT NULL DEFAULT 0,
    status       text NOT NULL CHECK (status IN ('complete', 'interrupted', 'failed')),
    ttft_ms      real,
    total_ms     real,
    language     text,
    finish_reason text,
    request_id   text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    UNIQUE (session_id, seq, position)
);
CREATE INDEX turns_tenant_created ON turns (tenant_id, created_at);
