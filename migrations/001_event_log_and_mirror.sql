-- The event log, the mirror and the dead letters.
--
-- Tables are created unqualified: the migrator runs each file with search_path set to the
-- configured schema (default "idpsync"), which also holds River's tables.
--
-- Mirror rows are keyed by (source, IdP id). created_at and updated_at are the IdP's own times;
-- synced_at is when idpsync last wrote the row. source_version orders the IdP's states of the
-- row (larger is newer) and deleted_at marks a tombstone: a deleted user or organization never
-- comes back, because IdPs do not reuse their ids.

CREATE TABLE events (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    source       text        NOT NULL,
    event_id     text        NOT NULL,
    kind         text        NOT NULL,
    type         text,
    source_type  text        NOT NULL,
    entity_id    text,
    occurred_at  timestamptz,
    received_at  timestamptz NOT NULL,
    recorded_at  timestamptz NOT NULL DEFAULT now(),
    stream_seq   bigint,
    payload      jsonb       NOT NULL,
    status       text        NOT NULL,
    processed_at timestamptz,
    CONSTRAINT events_source_event_id_key UNIQUE (source, event_id),
    CONSTRAINT events_status_check CHECK (status IN ('pending', 'applied', 'stale', 'recorded', 'ignored'))
);
COMMENT ON TABLE events IS 'Every delivery idpsync acknowledged, once per (source, event_id); the source of replay.';
COMMENT ON COLUMN events.status IS 'pending: a job will apply it; applied: it changed the mirror; stale: the mirror already held a newer state; recorded: kept, no mirror effect (sessions); ignored: a type idpsync does not model.';
CREATE INDEX events_received_at_idx ON events (received_at);
CREATE INDEX events_entity_idx ON events (source, entity_id);

CREATE TABLE users (
    source         text        NOT NULL,
    id             text        NOT NULL,
    external_id    text,
    primary_email  text,
    emails         text[]      NOT NULL DEFAULT '{}',
    username       text,
    first_name     text,
    last_name      text,
    image_url      text,
    banned         boolean     NOT NULL DEFAULT false,
    locked         boolean     NOT NULL DEFAULT false,
    created_at     timestamptz,
    updated_at     timestamptz,
    raw            jsonb       NOT NULL DEFAULT '{}',
    source_version bigint      NOT NULL,
    deleted_at     timestamptz,
    synced_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (source, id)
);
CREATE INDEX users_primary_email_idx ON users (lower(primary_email)) WHERE deleted_at IS NULL;
CREATE INDEX users_external_id_idx ON users (source, external_id) WHERE external_id IS NOT NULL;

CREATE TABLE organizations (
    source         text        NOT NULL,
    id             text        NOT NULL,
    name           text,
    slug           text,
    image_url      text,
    suspended      boolean     NOT NULL DEFAULT false,
    created_at     timestamptz,
    updated_at     timestamptz,
    raw            jsonb       NOT NULL DEFAULT '{}',
    source_version bigint      NOT NULL,
    deleted_at     timestamptz,
    synced_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (source, id)
);
CREATE INDEX organizations_slug_idx ON organizations (source, slug) WHERE deleted_at IS NULL;

CREATE TABLE memberships (
    source          text        NOT NULL,
    organization_id text        NOT NULL,
    user_id         text        NOT NULL,
    id              text,
    role            text,
    permissions     text[]      NOT NULL DEFAULT '{}',
    created_at      timestamptz,
    updated_at      timestamptz,
    raw             jsonb       NOT NULL DEFAULT '{}',
    source_version  bigint      NOT NULL,
    deleted_at      timestamptz,
    synced_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (source, organization_id, user_id)
);
COMMENT ON TABLE memberships IS 'A user in an organization; removed and re-added is the same row, revived by a newer version.';
CREATE INDEX memberships_user_idx ON memberships (source, user_id);

CREATE TABLE dead_letters (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    source      text        NOT NULL,
    event_id    text        NOT NULL,
    subject     text        NOT NULL,
    stream_seq  bigint,
    reason      text        NOT NULL,
    payload     bytea       NOT NULL,
    headers     jsonb       NOT NULL DEFAULT '{}',
    received_at timestamptz,
    created_at  timestamptz NOT NULL DEFAULT now(),
    replayed_at timestamptz,
    CONSTRAINT dead_letters_source_event_id_key UNIQUE (source, event_id)
);
COMMENT ON TABLE dead_letters IS 'Deliveries that verified but could not be recorded (unparseable payloads), kept verbatim for inspection and replay.';
