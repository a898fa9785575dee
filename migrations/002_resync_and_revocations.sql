-- Resyncs from the IdPs' management APIs, and the audit of every call made back to an IdP.

CREATE TABLE resync_runs (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    job_id      bigint      NOT NULL,
    source      text        NOT NULL,
    entity      text        NOT NULL,
    status      text        NOT NULL DEFAULT 'running',
    started_at  timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz,
    -- where to resume after a crash: the listing's position (offset or cursor) after the last
    -- page written, as the source's directory understands it
    checkpoint  jsonb       NOT NULL DEFAULT '{}',
    resumed     integer     NOT NULL DEFAULT 0,
    seen        bigint      NOT NULL DEFAULT 0,
    created     bigint      NOT NULL DEFAULT 0,
    updated     bigint      NOT NULL DEFAULT 0,
    deleted     bigint      NOT NULL DEFAULT 0,
    skipped     bigint      NOT NULL DEFAULT 0,
    error       text,
    CONSTRAINT resync_runs_job_id_key UNIQUE (job_id),
    CONSTRAINT resync_runs_status_check CHECK (status IN ('running', 'succeeded', 'failed'))
);
COMMENT ON TABLE resync_runs IS 'One pass over a source''s users, organizations or memberships; created, updated and deleted count the drift it healed (each one a missed webhook).';
CREATE INDEX resync_runs_source_idx ON resync_runs (source, entity, started_at DESC);

-- The keys a running pass has seen, so that what it did not see can be tombstoned once the pass
-- completes (and only then). Rows go with their run.
CREATE TABLE resync_seen (
    run_id bigint NOT NULL REFERENCES resync_runs (id) ON DELETE CASCADE,
    key    text   NOT NULL,
    PRIMARY KEY (run_id, key)
);

CREATE TABLE revocations (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    job_id       bigint,
    source       text        NOT NULL,
    target       text        NOT NULL,
    action       text        NOT NULL,
    subject      text        NOT NULL,
    user_id      text,
    trigger      text        NOT NULL,
    event_id     bigint,
    outcome      text        NOT NULL,
    detail       text,
    triggered_at timestamptz NOT NULL,
    completed_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT revocations_outcome_check CHECK (outcome IN ('done', 'already_done', 'failed'))
);
COMMENT ON TABLE revocations IS 'Every call idpsync made back to an IdP: what (action, subject at target), why (trigger, source, event), the outcome, and when (from the triggering webhook''s receipt to completion).';
COMMENT ON COLUMN revocations.source IS 'the source whose change triggered the call';
COMMENT ON COLUMN revocations.target IS 'the source the call went to (the same IdP, or a zeroid source)';
CREATE INDEX revocations_user_idx ON revocations (source, user_id);
CREATE INDEX revocations_completed_at_idx ON revocations (completed_at);
