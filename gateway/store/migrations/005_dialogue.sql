-- Dialogue: where each session stands in its flow, the side-effecting actions it asked for (idempotent),
-- the review queue (approvals, flagged exchanges) and hand-offs to human agents.

-- bot: the assistant answers; human: an agent took the session over and messages are relayed to them.
ALTER TABLE sessions ADD COLUMN mode text NOT NULL DEFAULT 'bot' CHECK (mode IN ('bot', 'human'));

-- The assistant's working memory for one session: active flow, slots, pending confirmation, streaks. Written
-- in the same transaction as the turn that changed it, so a turn and its state land together.
CREATE TABLE dialogue_states (
    session_id  uuid PRIMARY KEY,
    tenant_id   uuid NOT NULL REFERENCES tenants(id),
    state       jsonb NOT NULL,                     -- redacted: PII slot values are placeholders
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- One row per side-effecting tool call. The idempotency key comes from the session, the flow instance and
-- its step, so a duplicate request, a retry or a restart finds the row instead of acting again:
--   pending → approved → executing → executed | failed      (running: accepted, outcome by signed webhook)
--   pending → awaiting_approval → approved … | rejected
CREATE TABLE actions (
    id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id        uuid NOT NULL REFERENCES tenants(id),
    session_id       uuid NOT NULL,
    idempotency_key  text NOT NULL,
    tool             text NOT NULL,
    side_effect      text NOT NULL CHECK (side_effect IN ('read', 'write', 'money')),
    args             jsonb NOT NULL,                -- redacted: placeholders, restored from the vault to execute
    state            text NOT NULL CHECK (state IN ('pending', 'awaiting_approval', 'approved', 'executing',
                                                     'running', 'executed', 'failed', 'rejected')),
    risk_reason      text,                          -- why it waits for a supervisor
    result           jsonb,                         -- redacted tool result
    error_code       text,
    attempts         int NOT NULL DEFAULT 0,
    flow             text,
    step             int,
    reported         boolean NOT NULL DEFAULT false, -- the outcome was told to the session
    decided_by       text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    lease_until      timestamptz,                   -- an executing row whose lease ran out is retried (same key)
    UNIQUE (tenant_id, idempotency_key)
);
CREATE INDEX actions_runnable ON actions (state, lease_until) WHERE state IN ('approved', 'executing');
CREATE INDEX actions_session ON actions (session_id);

-- What a supervisor must look at: actions waiting for approval, exchanges the guard flagged.
CREATE TABLE review_items (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id   uuid NOT NULL REFERENCES tenants(id),
    kind        text NOT NULL CHECK (kind IN ('approval', 'injection', 'tool_violation')),
    session_id  uuid,
    action_id   uuid REFERENCES actions(id),
    reason      text NOT NULL,
    detail      jsonb NOT NULL DEFAULT '{}'::jsonb,  -- redacted
    state       text NOT NULL DEFAULT 'open' CHECK (state IN ('open', 'approved', 'rejected', 'dismissed')),
    decided_by  text,
    decided_at  timestamptz,
    note        text,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX review_items_open ON review_items (tenant_id, state, created_at);

-- A session handed to a human: why, what the assistant understood, a summary for the agent.
CREATE TABLE handoffs (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id    uuid NOT NULL REFERENCES tenants(id),
    session_id   uuid NOT NULL,
    reason       text NOT NULL,                      -- requested | always_human | low_confidence | frustration | …
    intent       text,
    entities     jsonb NOT NULL DEFAULT '{}'::jsonb,  -- redacted
    summary      text NOT NULL,
    summary_by   text NOT NULL,                      -- llm | template
    state        text NOT NULL DEFAULT 'queued' CHECK (state IN ('queued', 'active', 'closed')),
    agent        text,
    created_at   timestamptz NOT NULL DEFAULT now(),
    accepted_at  timestamptz,
    closed_at    timestamptz
);
CREATE UNIQUE INDEX handoffs_one_open ON handoffs (session_id) WHERE state <> 'closed';
CREATE INDEX handoffs_queue ON handoffs (tenant_id, state, created_at);

GRANT SELECT, INSERT, UPDATE, DELETE ON dialogue_states, actions, review_items, handoffs TO enclave_gateway;
