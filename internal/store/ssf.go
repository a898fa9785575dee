package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// The SSF transmitter's tables (migration 010): streams, the subjects receivers listed as
// exceptions to a stream's default, and the outbox of SETs. Values are plain (JSON as bytes):
// the protocol lives in internal/ssf.

// SET states.
const (
	SETPending   = "pending"
	SETDelivered = "delivered"
	SETAcked     = "acked"
	SETFailed    = "failed"
)

// ErrLimit is returned when a receiver already holds as many streams, or a stream as many
// subjects, as allowed.
var ErrLimit = errors.New("limit reached")

// SSFStream is a stream row.
type SSFStream struct {
	ID    string
	Owner string
	// Config is the stream configuration's JSON.
	Config          []byte
	Aud             []string
	EventsDelivered []string
	Method          string
	DefaultSubjects string
	Status          string
	Reason          string
	CreatedAt       time.Time
}

// CreateSSFStream inserts s unless its owner already has maxStreams streams (ErrLimit). In a
// transaction, concurrent creations by one owner wait for each other, so the limit holds.
func CreateSSFStream(ctx context.Context, db DBTX, s SSFStream, maxStreams int) error {
	if _, err := db.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtext('idpsync.ssf.' || $1))`, s.Owner); err != nil {
		return fmt.Errorf("creating stream: %w", err)
	}
	tag, err := db.Exec(ctx, `
		INSERT INTO ssf_streams (id, owner, config, aud, events_delivered, delivery_method, default_subjects, status, reason)
		SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9
		WHERE (SELECT count(*) FROM ssf_streams WHERE owner = $2) < $10`,
		s.ID, s.Owner, s.Config, s.Aud, s.EventsDelivered, s.Method, s.DefaultSubjects, s.Status, nullIfEmpty(s.Reason), maxStreams)
	if err != nil {
		return fmt.Errorf("creating stream: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return ErrLimit
	}
	return nil
}

const ssfStreamColumns = `id, owner, config, aud, events_delivered, delivery_method, default_subjects, status, coalesce(reason, ''), created_at`

func scanSSFStream(row pgx.Row) (SSFStream, error) {
	var s SSFStream
	err := row.Scan(&s.ID, &s.Owner, &s.Config, &s.Aud, &s.EventsDelivered, &s.Method, &s.DefaultSubjects, &s.Status, &s.Reason, &s.CreatedAt)
	return s, err
}

// SSFStreams returns owner's stream id, or all of owner's streams (oldest first) when id is "".
func SSFStreams(ctx context.Context, db DBTX, owner, id string) ([]SSFStream, error) {
	rows, err := db.Query(ctx, `SELECT `+ssfStreamColumns+` FROM ssf_streams
		WHERE owner = $1 AND ($2 = '' OR id = $2) ORDER BY created_at, id`, owner, id)
	if err != nil {
		return nil, fmt.Errorf("reading streams: %w", err)
	}
	streams, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (SSFStream, error) { return scanSSFStream(r) })
	if err != nil {
		return nil, fmt.Errorf("reading streams: %w", err)
	}
	return streams, nil
}

// SSFStreamByID returns the stream id whoever owns it (for delivery).
func SSFStreamByID(ctx context.Context, db DBTX, id string) (SSFStream, error) {
	s, err := scanSSFStream(db.QueryRow(ctx, `SELECT `+ssfStreamColumns+` FROM ssf_streams WHERE id = $1`, id))
	if err != nil {
		return s, fmt.Errorf("reading stream %s: %w", id, interpretError(err))
	}
	return s, nil
}

// ReplaceSSFStream replaces the configuration of owner's stream s.ID (config, events delivered
// and delivery method). It returns the previous delivery method; ErrNotFound when owner has no
// such stream.
func ReplaceSSFStream(ctx context.Context, db DBTX, owner string, s SSFStream) (string, error) {
	var prev string
	err := db.QueryRow(ctx, `
		UPDATE ssf_streams new SET config = $3, events_delivered = $4, delivery_method = $5, updated_at = now()
		FROM ssf_streams old WHERE new.id = old.id AND new.id = $1 AND new.owner = $2
		RETURNING old.delivery_method`, s.ID, owner, s.Config, s.EventsDelivered, s.Method).Scan(&prev)
	if err != nil {
		return "", fmt.Errorf("replacing stream %s: %w", s.ID, interpretError(err))
	}
	return prev, nil
}

// DeleteSSFStream deletes owner's stream with its subjects and SETs; ErrNotFound when owner has
// no such stream.
func DeleteSSFStream(ctx context.Context, db DBTX, owner, id string) error {
	tag, err := db.Exec(ctx, `DELETE FROM ssf_streams WHERE id = $1 AND owner = $2`, id, owner)
	if err != nil {
		return fmt.Errorf("deleting stream %s: %w", id, err)
	}
	if tag.RowsAffected() == 0 {
		return ErrNotFound
	}
	return nil
}

// SetSSFStreamStatus sets the status and reason of stream id; owner "" matches any owner (the
// transmitter's own changes). Disabling drops the SETs the stream holds (SSF 1.0: a disabled
// stream holds nothing), recorded failed. It returns the previous status; ErrNotFound when there
// is no such stream.
func SetSSFStreamStatus(ctx context.Context, db DBTX, owner, id, status, reason string) (string, error) {
	var prev string
	err := db.QueryRow(ctx, `
		UPDATE ssf_streams new SET status = $3, reason = $4, updated_at = now()
		FROM ssf_streams old WHERE new.id = old.id AND new.id = $1 AND ($2 = '' OR new.owner = $2)
		RETURNING old.status`, id, owner, status, nullIfEmpty(reason)).Scan(&prev)
	if err != nil {
		return "", fmt.Errorf("setting the status of stream %s: %w", id, interpretError(err))
	}
	if status == "disabled" {
		if _, err := db.Exec(ctx, `UPDATE ssf_sets SET state = 'failed', detail = 'dropped: the stream was disabled', settled_at = now()
			WHERE stream_id = $1 AND state = 'pending'`, id); err != nil {
			return "", fmt.Errorf("dropping the SETs of stream %s: %w", id, err)
		}
	}
	return prev, nil
}

// ListSSFSubject records a subject exception of owner's stream id (see migration 010), keyed
// by its canonical key, unless the stream holds maxSubjects (ErrLimit). Listing a subject again
// is a no-op. ErrNotFound when owner has no such stream.
func ListSSFSubject(ctx context.Context, db DBTX, owner, id, key string, subject []byte, matchKeys []string, verified bool, maxSubjects int) error {
	var inserted, exists bool
	err := db.QueryRow(ctx, `
		WITH s AS (SELECT id FROM ssf_streams WHERE id = $1 AND owner = $2 FOR UPDATE),
		ins AS (
			INSERT INTO ssf_stream_subjects (stream_id, subject_key, subject, match_keys, verified)
			SELECT id, $3, $4, $5, $6 FROM s
			WHERE (SELECT count(*) FROM ssf_stream_subjects WHERE stream_id = $1) < $7
			ON CONFLICT (stream_id, subject_key) DO UPDATE SET verified = excluded.verified
			RETURNING 1)
		SELECT EXISTS (SELECT 1 FROM ins), EXISTS (SELECT 1 FROM s)`,
		id, owner, key, subject, matchKeys, verified, maxSubjects).Scan(&inserted, &exists)
	switch {
	case err != nil:
		return fmt.Errorf("adding a subject to stream %s: %w", id, err)
	case !exists:
		return ErrNotFound
	case !inserted:
		// At the limit; a subject already listed is fine.
		var listed bool
		if err := db.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM ssf_stream_subjects WHERE stream_id = $1 AND subject_key = $2)`, id, key).Scan(&listed); err != nil {
			return fmt.Errorf("adding a subject to stream %s: %w", id, err)
		}
		if !listed {
			return ErrLimit
		}
	}
	return nil
}

// UnlistSSFSubject removes a subject exception of owner's stream id, if it has it. ErrNotFound
// when owner has no such stream.
func UnlistSSFSubject(ctx context.Context, db DBTX, owner, id, key string) error {
	var exists bool
	err := db.QueryRow(ctx, `
		WITH s AS (SELECT id FROM ssf_streams WHERE id = $1 AND owner = $2),
		del AS (DELETE FROM ssf_stream_subjects WHERE stream_id IN (SELECT id FROM s) AND subject_key = $3)
		SELECT EXISTS (SELECT 1 FROM s)`, id, owner, key).Scan(&exists)
	if err != nil {
		return fmt.Errorf("removing a subject from stream %s: %w", id, err)
	}
	if !exists {
		return ErrNotFound
	}
	return nil
}

// TouchSSFVerification records a verification request on owner's stream id, unless the last one
// was less than minInterval ago. It reports whether the request may proceed; ErrNotFound when
// owner has no such stream.
func TouchSSFVerification(ctx context.Context, db DBTX, owner, id string, minInterval time.Duration) (bool, error) {
	var exists, touched bool
	err := db.QueryRow(ctx, `
		WITH s AS (SELECT id FROM ssf_streams WHERE id = $1 AND owner = $2),
		up AS (UPDATE ssf_streams SET verification_requested_at = now()
			WHERE id IN (SELECT id FROM s)
			  AND (verification_requested_at IS NULL OR verification_requested_at <= now() - $3::interval)
			RETURNING 1)
		SELECT EXISTS (SELECT 1 FROM s), EXISTS (SELECT 1 FROM up)`, id, owner, minInterval).Scan(&exists, &touched)
	if err != nil {
		return false, fmt.Errorf("recording a verification request on stream %s: %w", id, err)
	}
	if !exists {
		return false, ErrNotFound
	}
	return touched, nil
}

// SSFTarget is a stream that may receive an event: enabled or paused, and delivering its type.
type SSFTarget struct {
	StreamID        string
	Aud             []string
	Method          string
	DefaultSubjects string
	// Subjects are the stream's listed subjects (JSON) whose match keys overlap the event's.
	Subjects [][]byte
}

// SSFTargets returns the streams, enabled or paused, that deliver eventType, each with its
// listed subjects whose match keys overlap matchKeys. One statement, whatever the number of
// streams.
func SSFTargets(ctx context.Context, db DBTX, eventType string, matchKeys []string) ([]SSFTarget, error) {
	rows, err := db.Query(ctx, `
		SELECT s.id, s.aud, s.delivery_method, s.default_subjects,
		       coalesce(array_agg(sub.subject::text) FILTER (WHERE sub.subject IS NOT NULL), '{}')
		FROM ssf_streams s
		LEFT JOIN ssf_stream_subjects sub ON sub.stream_id = s.id AND sub.match_keys && $2::text[]
		WHERE s.status IN ('enabled', 'paused') AND $1 = ANY (s.events_delivered)
		GROUP BY s.id ORDER BY s.id`, eventType, matchKeys)
	if err != nil {
		return nil, fmt.Errorf("finding the streams of %s: %w", eventType, err)
	}
	targets, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (SSFTarget, error) {
		var t SSFTarget
		var subjects []string
		err := r.Scan(&t.StreamID, &t.Aud, &t.Method, &t.DefaultSubjects, &subjects)
		for _, s := range subjects {
			t.Subjects = append(t.Subjects, []byte(s))
		}
		return t, err
	})
	if err != nil {
		return nil, fmt.Errorf("finding the streams of %s: %w", eventType, err)
	}
	return targets, nil
}

// SSFSET is a SET of the outbox.
type SSFSET struct {
	ID        int64
	StreamID  string
	JTI       string
	EventType string
	Claims    []byte
	JWT       string
	State     string
	Detail    string
}

// InsertSSFSETs records sets, pending, in one statement, and returns their ids by jti.
func InsertSSFSETs(ctx context.Context, db DBTX, sets []SSFSET) (map[string]int64, error) {
	streams, jtis, types, claims := make([]string, len(sets)), make([]string, len(sets)), make([]string, len(sets)), make([]string, len(sets))
	for i, s := range sets {
		streams[i], jtis[i], types[i], claims[i] = s.StreamID, s.JTI, s.EventType, string(s.Claims)
	}
	rows, err := db.Query(ctx, `
		INSERT INTO ssf_sets (stream_id, jti, event_type, claims)
		SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::jsonb[])
		RETURNING jti, id`, streams, jtis, types, claims)
	if err != nil {
		return nil, fmt.Errorf("recording SETs: %w", err)
	}
	defer rows.Close()
	ids := make(map[string]int64, len(sets))
	for rows.Next() {
		var jti string
		var id int64
		if err := rows.Scan(&jti, &id); err != nil {
			return nil, fmt.Errorf("recording SETs: %w", err)
		}
		ids[jti] = id
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("recording SETs: %w", err)
	}
	return ids, nil
}

const ssfSETColumns = `id, stream_id, jti, event_type, claims, coalesce(jwt, ''), state, coalesce(detail, '')`

func scanSSFSET(row pgx.Row) (SSFSET, error) {
	var s SSFSET
	err := row.Scan(&s.ID, &s.StreamID, &s.JTI, &s.EventType, &s.Claims, &s.JWT, &s.State, &s.Detail)
	return s, err
}

// GetSSFSET returns the SET id with its stream, in one round trip; ErrNotFound when it is gone
// (its stream was deleted).
func GetSSFSET(ctx context.Context, db DBTX, id int64) (SSFSET, SSFStream, error) {
	var set SSFSET
	var st SSFStream
	err := db.QueryRow(ctx, `SELECT s.id, s.stream_id, s.jti, s.event_type, s.claims, coalesce(s.jwt, ''), s.state, coalesce(s.detail, ''),
		       st.id, st.owner, st.config, st.aud, st.events_delivered, st.delivery_method, st.default_subjects, st.status,
		       coalesce(st.reason, ''), st.created_at
		FROM ssf_sets s JOIN ssf_streams st ON st.id = s.stream_id WHERE s.id = $1`, id).Scan(
		&set.ID, &set.StreamID, &set.JTI, &set.EventType, &set.Claims, &set.JWT, &set.State, &set.Detail,
		&st.ID, &st.Owner, &st.Config, &st.Aud, &st.EventsDelivered, &st.Method, &st.DefaultSubjects, &st.Status, &st.Reason, &st.CreatedAt)
	if err != nil {
		return set, st, fmt.Errorf("reading SET %d: %w", id, interpretError(err))
	}
	return set, st, nil
}

// SettleSSFSET records the outcome of a push: state delivered or failed, the signed SET that was
// sent (jwt, may be "") and a detail. Only a pending SET changes; it reports whether one did.
func SettleSSFSET(ctx context.Context, db DBTX, id int64, state, jwt, detail string) (bool, error) {
	tag, err := db.Exec(ctx, `
		UPDATE ssf_sets SET state = $2, jwt = coalesce($3, jwt), detail = $4,
		       delivered_at = CASE WHEN $2 = 'delivered' THEN now() ELSE delivered_at END, settled_at = now()
		WHERE id = $1 AND state = 'pending'`, id, state, nullIfEmpty(jwt), nullIfEmpty(detail))
	if err != nil {
		return false, fmt.Errorf("recording the delivery of SET %d: %w", id, err)
	}
	return tag.RowsAffected() == 1, nil
}

// AckSSFSETs settles the SETs a poll acknowledged (acks) or reported errors for (errs, jti →
// "err: description"), among those of stream id that were delivered or are pending. Unknown
// jtis, and SETs of other streams, are ignored.
func AckSSFSETs(ctx context.Context, db DBTX, id string, acks []string, errs map[string]string) error {
	if len(acks) > 0 {
		if _, err := db.Exec(ctx, `UPDATE ssf_sets SET state = 'acked', settled_at = now()
			WHERE stream_id = $1 AND jti = ANY ($2) AND state IN ('pending', 'delivered')`, id, acks); err != nil {
			return fmt.Errorf("acknowledging SETs: %w", err)
		}
	}
	if len(errs) > 0 {
		jtis, details := make([]string, 0, len(errs)), make([]string, 0, len(errs))
		for j, d := range errs {
			jtis, details = append(jtis, j), append(details, d)
		}
		if _, err := db.Exec(ctx, `UPDATE ssf_sets s SET state = 'failed', detail = e.detail, settled_at = now()
			FROM unnest($2::text[], $3::text[]) AS e (jti, detail)
			WHERE s.stream_id = $1 AND s.jti = e.jti AND s.state IN ('pending', 'delivered')`, id, jtis, details); err != nil {
			return fmt.Errorf("recording SET errors: %w", err)
		}
	}
	return nil
}

// NextSSFSETs locks and returns up to limit SETs of stream id to deliver by poll, oldest first:
// pending ones, and delivered ones unacknowledged for longer than redeliver. Rows another poll
// holds are skipped.
func NextSSFSETs(ctx context.Context, db DBTX, id string, limit int, redeliver time.Duration) ([]SSFSET, error) {
	rows, err := db.Query(ctx, `SELECT `+ssfSETColumns+` FROM ssf_sets
		WHERE stream_id = $1 AND (state = 'pending' OR (state = 'delivered' AND delivered_at < now() - $3::interval))
		ORDER BY id LIMIT $2 FOR UPDATE SKIP LOCKED`, id, limit, redeliver)
	if err != nil {
		return nil, fmt.Errorf("reading SETs to poll: %w", err)
	}
	sets, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (SSFSET, error) { return scanSSFSET(r) })
	if err != nil {
		return nil, fmt.Errorf("reading SETs to poll: %w", err)
	}
	return sets, nil
}

// MarkSSFSETsPolled records that a poll returned the SETs ids with their signed forms jwts.
func MarkSSFSETsPolled(ctx context.Context, db DBTX, ids []int64, jwts []string) error {
	_, err := db.Exec(ctx, `UPDATE ssf_sets s SET state = 'delivered', jwt = p.jwt, delivered_at = now()
		FROM unnest($1::bigint[], $2::text[]) AS p (id, jwt) WHERE s.id = p.id`, ids, jwts)
	if err != nil {
		return fmt.Errorf("recording polled SETs: %w", err)
	}
	return nil
}

// PendingSSFSETs returns the ids of the pending SETs of stream id, oldest first, at most limit.
func PendingSSFSETs(ctx context.Context, db DBTX, id string, limit int) ([]int64, error) {
	rows, err := db.Query(ctx, `SELECT id FROM ssf_sets WHERE stream_id = $1 AND state = 'pending' ORDER BY id LIMIT $2`, id, limit)
	if err != nil {
		return nil, fmt.Errorf("reading pending SETs: %w", err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return nil, fmt.Errorf("reading pending SETs: %w", err)
	}
	return ids, nil
}

// PruneSSFSETs deletes settled SETs recorded before before: acknowledged, failed, and those
// delivered by push. It returns how many it deleted.
func PruneSSFSETs(ctx context.Context, db DBTX, before time.Time) (int64, error) {
	tag, err := db.Exec(ctx, `
		DELETE FROM ssf_sets s USING ssf_streams st
		WHERE s.stream_id = st.id AND s.created_at < $1
		  AND (s.state IN ('acked', 'failed') OR (s.state = 'delivered' AND st.delivery_method = 'urn:ietf:rfc:8935'))`, before)
	if err != nil {
		return 0, fmt.Errorf("pruning SETs: %w", err)
	}
	return tag.RowsAffected(), nil
}
