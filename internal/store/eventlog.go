package store

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/idpsync/idpsync/internal/events"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Event statuses, as stored in events.status.
const (
	// StatusPending: a job will apply the event to the mirror.
	StatusPending = "pending"
	// StatusApplied: the event changed the mirror.
	StatusApplied = "applied"
	// StatusStale: the mirror already held this state or a newer one.
	StatusStale = "stale"
	// StatusRecorded: kept in the log with no mirror effect (sessions).
	StatusRecorded = "recorded"
	// StatusIgnored: a type idpsync does not model; kept in the log.
	StatusIgnored = "ignored"
)

// NewEvent is an event to record in the log.
type NewEvent struct {
	Source     string
	EventID    string
	Kind       events.Kind
	Type       events.Type // "" when the IdP type has no canonical equivalent
	SourceType string
	EntityID   string    // "" when the event names no entity
	OccurredAt time.Time // zero when the payload does not say
	ReceivedAt time.Time
	StreamSeq  int64  // 0 when not read from the stream
	Payload    []byte // the verified body, valid JSON
	// Status is the event's status; an event that is not pending is recorded as processed now.
	Status string
}

// EntityID names the entity an event is about, for the log's entity_id column: the user,
// organization or session id, or "<organization id>/<user id>" for a membership.
func EntityID(ev events.Event) string {
	switch {
	case ev.User != nil:
		return ev.User.ID
	case ev.Organization != nil:
		return ev.Organization.ID
	case ev.Membership != nil:
		return ev.Membership.OrganizationID + "/" + ev.Membership.UserID
	case ev.Session != nil:
		return ev.Session.ID
	}
	return ""
}

// RecordEvents inserts evs into the event log in one statement, skipping every event already
// recorded under the same (source, event id), and returns the new rows' ids in input order:
// ids[i] is 0 when evs[i] was already recorded (or repeats an earlier entry of evs).
func RecordEvents(ctx context.Context, db DBTX, evs []NewEvent) ([]int64, error) {
	return recordEvents(ctx, db, evs, false)
}

// ErrAlreadyRecorded is RecordNewEvents finding an event of its batch already in the log.
var ErrAlreadyRecorded = errors.New("an event of the batch is already in the event log")

// RecordNewEvents is RecordEvents for events that are expected to be new, the intake's common
// case: a plain insert, which costs Postgres less than one that skips conflicts (each row of
// an INSERT … ON CONFLICT is inserted speculatively, then confirmed). When an event is already in
// the log or repeats an earlier entry of evs, it returns an error wrapping ErrAlreadyRecorded;
// Postgres then refused the statement, so the caller's transaction is aborted, and the caller does
// its work again with RecordEvents.
func RecordNewEvents(ctx context.Context, db DBTX, evs []NewEvent) ([]int64, error) {
	return recordEvents(ctx, db, evs, true)
}

func recordEvents(ctx context.Context, db DBTX, evs []NewEvent, allNew bool) ([]int64, error) {
	ids := make([]int64, len(evs))
	if len(evs) == 0 {
		return ids, nil
	}
	n := len(evs)
	var (
		source, eventID, kind, sourceType, payload, status = make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
		typ, entityID                                      = make([]*string, n), make([]*string, n)
		occurredAt                                         = make([]*time.Time, n)
		receivedAt                                         = make([]time.Time, n)
		streamSeq                                          = make([]*int64, n)
		payloadRaw                                         = make([][]byte, n)
	)
	for i, e := range evs {
		source[i], eventID[i], kind[i], sourceType[i] = e.Source, e.EventID, string(e.Kind), cleanText(e.SourceType)
		status[i], receivedAt[i] = e.Status, e.ReceivedAt
		clean, changed := cleanJSON(e.Payload)
		payload[i] = string(clean)
		if changed {
			payloadRaw[i] = e.Payload
		}
		if e.Type != "" {
			t := string(e.Type)
			typ[i] = &t
		}
		if e.EntityID != "" {
			entityID[i] = &evs[i].EntityID
		}
		if !e.OccurredAt.IsZero() {
			occurredAt[i] = &evs[i].OccurredAt
		}
		if e.StreamSeq != 0 {
			streamSeq[i] = &evs[i].StreamSeq
		}
	}
	onConflict := "ON CONFLICT (source, event_id) DO NOTHING"
	if allNew {
		onConflict = ""
	}
	rows, err := db.Query(ctx, `
		INSERT INTO events (source, event_id, kind, type, source_type, entity_id, occurred_at, received_at, stream_seq, payload,
		                    payload_raw, status, processed_at)
		SELECT source, event_id, kind, type, source_type, entity_id, occurred_at, received_at, stream_seq, payload::jsonb,
		       payload_raw, status, CASE WHEN status = 'pending' THEN NULL ELSE now() END
		FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::timestamptz[],
		            $8::timestamptz[], $9::bigint[], $10::text[], $11::bytea[], $12::text[])
		     AS t(source, event_id, kind, type, source_type, entity_id, occurred_at, received_at, stream_seq, payload, payload_raw, status)
		`+onConflict+`
		RETURNING id, source, event_id`,
		source, eventID, kind, typ, sourceType, entityID, occurredAt, receivedAt, streamSeq, payload, payloadRaw, status)
	if err != nil {
		return nil, recordingError(err)
	}
	type key struct{ source, eventID string }
	inserted := make(map[key]int64, n)
	for rows.Next() {
		var (
			id int64
			k  key
		)
		if err := rows.Scan(&id, &k.source, &k.eventID); err != nil {
			rows.Close()
			return nil, recordingError(err)
		}
		inserted[k] = id
	}
	if err := rows.Err(); err != nil {
		return nil, recordingError(err)
	}
	for i, e := range evs {
		k := key{e.Source, e.EventID}
		ids[i] = inserted[k]
		delete(inserted, k) // a repeat within evs is not new
	}
	return ids, nil
}

// recordingError is err, from recording events; a conflict on (source, event id) wraps
// ErrAlreadyRecorded.
func recordingError(err error) error {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "23505" && pgErr.ConstraintName == "events_source_event_id_key" {
		return fmt.Errorf("recording events: %w: %w", ErrAlreadyRecorded, err)
	}
	return fmt.Errorf("recording events: %w", err)
}

// RecordedEvent is a row of the event log; Payload is the delivery's verbatim body.
type RecordedEvent struct {
	ID         int64
	Source     string
	EventID    string
	Kind       events.Kind
	Type       events.Type
	SourceType string
	OccurredAt time.Time
	ReceivedAt time.Time
	Payload    []byte
	Status     string
}

// GetEvent reads one event by its row id.
func GetEvent(ctx context.Context, db DBTX, id int64) (RecordedEvent, error) {
	e, err := scanEvent(db.QueryRow(ctx, `
		SELECT id, source, event_id, kind, type, source_type, occurred_at, received_at, coalesce(payload_raw, payload::text::bytea), status
		FROM events WHERE id = $1`, id))
	if err != nil {
		return RecordedEvent{}, fmt.Errorf("reading event %d: %w", id, interpretError(err))
	}
	return e, nil
}

func scanEvent(row pgx.Row) (RecordedEvent, error) {
	var (
		e          RecordedEvent
		typ        *string
		occurredAt *time.Time
	)
	if err := row.Scan(&e.ID, &e.Source, &e.EventID, &e.Kind, &typ, &e.SourceType, &occurredAt, &e.ReceivedAt, &e.Payload, &e.Status); err != nil {
		return e, err
	}
	if typ != nil {
		e.Type = events.Type(*typ)
	}
	if occurredAt != nil {
		e.OccurredAt = *occurredAt
	}
	return e, nil
}

// SetEventStatus records the outcome of applying an event.
func SetEventStatus(ctx context.Context, db DBTX, id int64, status string) error {
	tag, err := db.Exec(ctx, `UPDATE events SET status = $2, processed_at = now() WHERE id = $1`, id, status)
	if err != nil {
		return fmt.Errorf("setting status of event %d: %w", id, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("setting status of event %d: %w", id, ErrNotFound)
	}
	return nil
}

// DeadLetter is a delivery that verified but could not be recorded.
type DeadLetter struct {
	Source     string
	EventID    string
	Subject    string
	StreamSeq  int64
	Reason     string
	Payload    []byte
	Headers    map[string]string
	ReceivedAt time.Time
}

// RecordDeadLetter keeps dl, once per (source, event id); it reports whether the row is new.
// Whatever the delivery holds, Postgres accepts the row: text is cleaned (an event id that had to
// be cleaned gets a digest suffix, so that distinct ids stay distinct, and its exact bytes go to
// event_id_raw), and the payload is kept as bytes.
func RecordDeadLetter(ctx context.Context, db DBTX, dl DeadLetter) (bool, error) {
	headers, err := json.Marshal(dl.Headers)
	if err != nil {
		return false, err
	}
	headers, _ = cleanJSON(headers)
	eventID, source := cleanText(dl.EventID), cleanText(dl.Source)
	var eventIDRaw []byte
	if eventID != dl.EventID {
		sum := sha256.Sum256([]byte(dl.EventID))
		eventID, eventIDRaw = eventID+"#"+hex.EncodeToString(sum[:6]), []byte(dl.EventID)
	}
	var receivedAt *time.Time
	if !dl.ReceivedAt.IsZero() {
		receivedAt = &dl.ReceivedAt
	}
	var seq *int64
	if dl.StreamSeq != 0 {
		seq = &dl.StreamSeq
	}
	tag, err := db.Exec(ctx, `
		INSERT INTO dead_letters (source, event_id, event_id_raw, subject, stream_seq, reason, payload, headers, received_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
		ON CONFLICT (source, event_id) DO NOTHING`,
		source, eventID, eventIDRaw, cleanText(dl.Subject), seq, cleanText(dl.Reason), dl.Payload, headers, receivedAt)
	if err != nil {
		return false, fmt.Errorf("recording dead letter: %w", err)
	}
	return tag.RowsAffected() == 1, nil
}

// PruneEvents deletes at most limit events received before before, oldest first, and returns how
// many it deleted. A pending event (a job will still apply it) is kept whatever its age.
func PruneEvents(ctx context.Context, db DBTX, before time.Time, limit int) (int64, error) {
	tag, err := db.Exec(ctx, `
		DELETE FROM events WHERE id IN (
			SELECT id FROM events WHERE received_at < $1 AND status <> 'pending'
			ORDER BY received_at LIMIT $2)`, before, limit)
	if err != nil {
		return 0, fmt.Errorf("pruning events: %w", err)
	}
	return tag.RowsAffected(), nil
}
