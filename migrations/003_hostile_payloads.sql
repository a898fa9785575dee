-- Signed deliveries may carry what Postgres refuses: a NUL character, invalid UTF-8 or a lone
-- surrogate escape inside a JSON string. The event is still recorded and applied: the jsonb
-- payload holds the JSON cleaned (each of those becomes U+FFFD) and payload_raw the verbatim
-- bytes, which replays read. payload_raw is NULL when the payload needed no cleaning.
ALTER TABLE events ADD COLUMN payload_raw bytea;
COMMENT ON COLUMN events.payload_raw IS 'The delivery''s verbatim bytes when payload had to be cleaned for jsonb (NUL, invalid UTF-8, lone surrogates replaced by U+FFFD); NULL otherwise.';

-- A delivery parked as a dead letter keeps its id as received even when it is not valid text:
-- event_id holds it cleaned (with a digest suffix, so that distinct ids stay distinct) and
-- event_id_raw the exact bytes.
ALTER TABLE dead_letters ADD COLUMN event_id_raw bytea;
COMMENT ON COLUMN dead_letters.event_id_raw IS 'The event id''s exact bytes when event_id had to be cleaned to be stored as text; NULL otherwise.';
