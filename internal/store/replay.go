package store

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/idpsync/idpsync/internal/events"
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

// mirroredTypes is the SQL list of the canonical types of mirrored entities, the events a log
// replay reads. Written out as constants, so that the planner estimates them from the column's
// statistics.
var mirroredTypes = func() string {
	var b strings.Builder
	for i, t := range []events.Type{events.UserCreated, events.UserUpdated, events.UserDeleted,
		events.OrganizationCreated, events.OrganizationUpdated, events.OrganizationDeleted,
		events.MembershipCreated, events.MembershipUpdated, events.MembershipDeleted} {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString("'" + string(t) + "'")
	}
	return b.String()
}()

// ListEvents returns the mirror events (users, organizations, memberships) matching f, in log
// order, with their verbatim payloads.
//
// A replay pages through the whole log, so each page must cost the same however long the log is.
// Filters that name events (EntityID, EventIDs) find them through an index. Otherwise the log is
// read in windows of Limit ids, each a range of the primary key filtered afterwards: whatever
// the planner estimates of the other filters (a fresh table has no statistics), it cannot read
// every event after AfterID and sort them for each page, which made a replay of the whole log
// take time quadratic in its length.
func ListEvents(ctx context.Context, db DBTX, f EventFilter) ([]RecordedEvent, error) {
	if f.Limit <= 0 {
		f.Limit = 1000
	}
	if f.EntityID != "" || len(f.EventIDs) > 0 {
		return listEvents(ctx, db, f, 0)
	}
	var last int64
	if err := db.QueryRow(ctx, `SELECT coalesce(max(id), 0) FROM events`).Scan(&last); err != nil {
		return nil, fmt.Errorf("listing events: %w", err)
	}
	var out []RecordedEvent
	for f.AfterID < last && len(out) < f.Limit {
		upTo := min(f.AfterID+int64(f.Limit), last)
		page, err := listEvents(ctx, db, EventFilter{Source: f.Source, Since: f.Since, Until: f.Until, Types: f.Types,
			Statuses: f.Statuses, AfterID: f.AfterID, Limit: f.Limit - len(out)}, upTo)
		if err != nil {
			return nil, err
		}
		out = append(out, page...)
		f.AfterID = upTo
	}
	return out, nil
}

// listEvents runs one statement of ListEvents: the events matching f after f.AfterID, and up to id
// upTo when it is not 0 (then read as a range of the primary key first). The statement holds only
// the conditions f sets.
func listEvents(ctx context.Context, db DBTX, f EventFilter, upTo int64) ([]RecordedEvent, error) {
	var (
		from  = "events"
		where = []string{"type IN (" + mirroredTypes + ")"}
		args  = []any{f.AfterID}
	)
	and := func(cond string, arg any) {
		args = append(args, arg)
		where = append(where, strings.ReplaceAll(cond, "$n", "$"+strconv.Itoa(len(args))))
	}
	if upTo > 0 {
		args = append(args, upTo)
		from = "(SELECT * FROM events WHERE id > $1 AND id <= $2 OFFSET 0) AS events"
	} else {
		where = append(where, "id > $1")
	}
	if f.Source != "" {
		and("source = $n", f.Source)
	}
	if !f.Since.IsZero() {
		and("received_at >= $n", f.Since)
	}
	if !f.Until.IsZero() {
		and("received_at < $n", f.Until)
	}
	if len(f.Types) > 0 {
		and("type = ANY($n)", f.Types)
	}
	if f.EntityID != "" {
		and("entity_id = $n", f.EntityID)
	}
	if len(f.Statuses) > 0 {
		and("status = ANY($n)", f.Statuses)
	}
	if len(f.EventIDs) > 0 {
		and("event_id = ANY($n)", f.EventIDs)
	}
	args = append(args, f.Limit)
	rows, err := db.Query(ctx, `
		SELECT id, source, event_id, kind, type, source_type, occurred_at, received_at, coalesce(payload_raw, payload::text::bytea), status
		FROM `+from+` WHERE `+strings.Join(where, " AND ")+`
		ORDER BY id LIMIT $`+strconv.Itoa(len(args)), args...)
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
// event is not processed yet. Only the events whose status changes are written (processed_at
// is when an event reached its status): a replay that finds what was recorded, the common case,
// does not rewrite every row of the log it reads.
func SetEventStatuses(ctx context.Context, db DBTX, ids []int64, statuses []string) error {
	_, err := db.Exec(ctx, `
		UPDATE events e SET status = s.status, processed_at = CASE WHEN s.status = 'pending' THEN NULL ELSE now() END
		FROM unnest($1::bigint[], $2::text[]) AS s(id, status) WHERE e.id = s.id AND e.status <> s.status`, ids, statuses)
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
