-- The Shared Signals Framework transmitter: the receivers' streams, the subjects they added or
-- removed, and an outbox of the Security Event Tokens (SETs) each stream is to receive.

CREATE TABLE ssf_streams (
    id                        text        PRIMARY KEY,
    -- hex SHA-256 of the bearer token that created the stream: only that token manages it
    owner                     text        NOT NULL,
    -- the stream configuration as the management API returns it (SSF 1.0 §8.1.1)
    config                    jsonb       NOT NULL,
    aud                       text[]      NOT NULL,
    events_delivered          text[]      NOT NULL,
    delivery_method           text        NOT NULL,
    default_subjects          text        NOT NULL,
    status                    text        NOT NULL DEFAULT 'enabled',
    reason                    text,
    verification_requested_at timestamptz,
    created_at                timestamptz NOT NULL DEFAULT now(),
    updated_at                timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT ssf_streams_status_check CHECK (status IN ('enabled', 'paused', 'disabled')),
    CONSTRAINT ssf_streams_default_subjects_check CHECK (default_subjects IN ('ALL', 'NONE')),
    CONSTRAINT ssf_streams_delivery_method_check CHECK (delivery_method IN ('urn:ietf:rfc:8935', 'urn:ietf:rfc:8936'))
);
COMMENT ON TABLE ssf_streams IS 'SSF event streams created by receivers through the management API.';
COMMENT ON COLUMN ssf_streams.owner IS 'hex SHA-256 of the bearer token that created the stream (never the token)';
CREATE INDEX ssf_streams_owner_idx ON ssf_streams (owner, created_at);

-- The exceptions to a stream's default_subjects: under NONE the subjects the receiver added,
-- under ALL those it removed. match_keys index the subject for matching events (see
-- internal/ssf Subject.MatchKeys).
CREATE TABLE ssf_stream_subjects (
    stream_id   text        NOT NULL REFERENCES ssf_streams (id) ON DELETE CASCADE,
    subject_key text        NOT NULL,
    subject     jsonb       NOT NULL,
    match_keys  text[]      NOT NULL,
    verified    boolean     NOT NULL DEFAULT true,
    added_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (stream_id, subject_key)
);
CREATE INDEX ssf_stream_subjects_match_idx ON ssf_stream_subjects USING gin (match_keys);

-- The outbox: one row per SET per stream. claims are fixed when the SET is recorded (jti, iat
-- included); the SET is signed when it is delivered, and jwt keeps what was sent.
--   pending    held for delivery (push job scheduled, or waiting for a poll)
--   delivered  push: the receiver accepted it; poll: returned by a poll, not yet acknowledged
--   acked      poll: the receiver acknowledged it
--   failed     refused by the receiver, given up, or dropped (stream disabled); detail says which
CREATE TABLE ssf_sets (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    stream_id    text        NOT NULL REFERENCES ssf_streams (id) ON DELETE CASCADE,
    jti          text        NOT NULL,
    event_type   text        NOT NULL,
    claims       jsonb       NOT NULL,
    jwt          text,
    state        text        NOT NULL DEFAULT 'pending',
    detail       text,
    created_at   timestamptz NOT NULL DEFAULT now(),
    delivered_at timestamptz,
    settled_at   timestamptz,
    CONSTRAINT ssf_sets_jti_key UNIQUE (jti),
    CONSTRAINT ssf_sets_state_check CHECK (state IN ('pending', 'delivered', 'acked', 'failed'))
);
COMMENT ON TABLE ssf_sets IS 'Security Event Tokens per stream, from recording to delivery and acknowledgement.';
CREATE INDEX ssf_sets_pending_idx ON ssf_sets (stream_id, id) WHERE state = 'pending';
CREATE INDEX ssf_sets_unacked_idx ON ssf_sets (stream_id, delivered_at) WHERE state = 'delivered';
CREATE INDEX ssf_sets_created_at_idx ON ssf_sets (created_at);
