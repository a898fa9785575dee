package store

import (
	"context"
	"fmt"
	"time"
)

// EventFilter selects events of the log for a replay. Zero fields do not filter.
type EventFilter struct {
	Source   string
	Since    time.Time // received at or after
	Until    time.Time // received before
	Types    []string  // canonical types
	EntityID string
	Statuses []string
	EventIDs []string
	// AfterID and Limit page through the matches in log order.
	AfterID int64
	Limit   int
}

// ListEvents returns the mirror events (users, organizations, memberships) matching f, in log
// order, with their verbatim payloads.
func ListEvents(ctx context.Context, db DBTX, f EventFilter) ([]RecordedEvent, error) {
	limit := f.Limit
	if limit <= 0 {
		limit = 1000
	}
	rows, err := db.Query(ctx, `
		SELECT id, source, event_id, kind, type, source_type, occurred_at, received_at, coalesce(payload_raw, payload::text::bytea), status
		FROM events
		WHERE id > $1
		  AND split_part(type, '.', 1) IN ('user', 'organization', 'membership')
		  AND ($2 = '' OR source = $2)
		  AND ($3::timestamptz IS NULL OR received_at >= $3)
		  AND ($4::timestamptz IS NULL OR received_at < $4)
		  AND (cardinality($5::text[]) = 0 OR type = ANY($5))
		  AND ($6 = '' OR entity_id = $6)
		  AND (cardinality($7::text[]) = 0 OR status = ANY($7))
		  AND (cardinality($8::text[]) = 0 OR event_id = ANY($8))
		ORDER BY id
		LIMIT $9`,
		f.AfterID, f.Source, nullTime(f.Since), nullTime(f.Until), orEmpty(f.Types), f.EntityID, orEmpty(f.Statuses), orEmpty(f.EventIDs), limit)
	if err != nil {
		return nil, fmt.Errorf("listing events: %w", err)
	}
	defer rows.Close()
	var out []RecordedEvent
	for rows.Next() {
		e, err := scanEvent(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	return out, rows.Err()
}

// SetEventStatuses records the outcome of applying events again: status[i] of ids[i]; a pending
// event is not processed yet.
func SetEventStatuses(ctx context.Context, db DBTX, ids []int64, statuses []string) error {
	_, err := db.Exec(ctx, `
		UPDATE events e SET status = s.status, processed_at = CASE WHEN s.status = 'pending' THEN NULL ELSE now() END
		FROM unnest($1::bigint[], $2::text[]) AS s(id, status) WHERE e.id = s.id`, ids, statuses)
	if err != nil {
		return fmt.Errorf("setting event statuses: %w", err)
	}
	return nil
}

// StoredDeadLetter is a row of dead_letters.
type StoredDeadLetter struct {
	ID int64
	DeadLetter
}

// DeadLetterFilter selects dead letters. By default only those not yet replayed successfully.
type DeadLetterFilter struct {
	Source          string
	IDs             []int64
	IncludeReplayed bool
	AfterID         int64
	Limit           int
}

// ListDeadLetters returns the dead letters matching f, oldest first.
func ListDeadLetters(ctx context.Context, db DBTX, f DeadLetterFilter) ([]StoredDeadLetter, error) {
	limit := f.Limit
	if limit <= 0 {
		limit = 500
	}
	ids := f.IDs
	if ids == nil {
		ids = []int64{}
	}
	rows, err := db.Query(ctx, `
		SELECT id, source, event_id, subject, coalesce(stream_seq, 0), reason, payload, headers, coalesce(received_at, created_at)
		FROM dead_letters
		WHERE id > $1 AND ($2 = '' OR source = $2) AND (cardinality($3::bigint[]) = 0 OR id = ANY($3))
		  AND ($4 OR replayed_at IS NULL)
		ORDER BY id LIMIT $5`, f.AfterID, f.Source, ids, f.IncludeReplayed, limit)
	if err != nil {
		return nil, fmt.Errorf("listing dead letters: %w", err)
	}
	defer rows.Close()
	var out []StoredDeadLetter
	for rows.Next() {
		var d StoredDeadLetter
		if err := rows.Scan(&d.ID, &d.Source, &d.EventID, &d.Subject, &d.StreamSeq, &d.Reason, &d.Payload, &d.Headers, &d.ReceivedAt); err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	return out, rows.Err()
}

// MarkDeadLettersReplayed records that the dead letters of these events are now in the log.
func MarkDeadLettersReplayed(ctx context.Context, db DBTX, sources, eventIDs []string) error {
	_, err := db.Exec(ctx, `
		UPDATE dead_letters d SET replayed_at = now()
		FROM unnest($1::text[], $2::text[]) AS r(source, event_id)
		WHERE d.source = r.source AND d.event_id = r.event_id AND d.replayed_at IS NULL`, sources, eventIDs)
	if err != nil {
		return fmt.Errorf("marking dead letters replayed: %w", err)
	}
	return nil
}
