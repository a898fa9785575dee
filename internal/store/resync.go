package store

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/idpsync/idpsync/internal/events"
)

// Resync run statuses.
const (
	RunRunning   = "running"
	RunSucceeded = "succeeded"
	RunFailed    = "failed"
)

// ResyncRun is a row of resync_runs: one pass over a source's users, organizations or
// memberships.
type ResyncRun struct {
	ID         int64
	JobID      int64
	Source     string
	Entity     events.Entity
	Status     string
	StartedAt  time.Time
	FinishedAt time.Time
	Checkpoint json.RawMessage
	// Resumed counts the attempts that continued from a checkpoint.
	Resumed int
	ResyncCounts
	Error string
}

// ResyncCounts is what a pass saw and what drift it healed.
type ResyncCounts struct {
	Seen, Created, Updated, Deleted, Skipped int64
}

const resyncRunColumns = `id, job_id, source, entity, status, started_at, coalesce(finished_at, 'epoch'), checkpoint, resumed,
	seen, created, updated, deleted, skipped, coalesce(error, '')`

func scanResyncRun(row interface{ Scan(...any) error }) (ResyncRun, error) {
	var (
		r      ResyncRun
		entity string
	)
	err := row.Scan(&r.ID, &r.JobID, &r.Source, &entity, &r.Status, &r.StartedAt, &r.FinishedAt, &r.Checkpoint, &r.Resumed,
		&r.Seen, &r.Created, &r.Updated, &r.Deleted, &r.Skipped, &r.Error)
	if err != nil {
		return r, err
	}
	if r.FinishedAt.Equal(time.Unix(0, 0)) {
		r.FinishedAt = time.Time{}
	}
	r.Entity, err = events.ParseEntity(entity)
	return r, err
}

// StartResyncRun returns the run of a resync job: a new one on the job's first attempt, the same
// one (with its checkpoint, counts and start time) on a later attempt, which resumes it.
func StartResyncRun(ctx context.Context, db DBTX, jobID int64, source string, entity events.Entity) (ResyncRun, error) {
	r, err := scanResyncRun(db.QueryRow(ctx, `
		INSERT INTO resync_runs (job_id, source, entity) VALUES ($1, $2, $3)
		ON CONFLICT (job_id) DO UPDATE SET resumed = resync_runs.resumed + 1, status = 'running', error = NULL, finished_at = NULL
		RETURNING `+resyncRunColumns, jobID, source, entity.Plural()))
	if err != nil {
		return ResyncRun{}, fmt.Errorf("starting resync run: %w", err)
	}
	return r, nil
}

// SaveResyncProgress adds a page's counts to the run and moves its checkpoint past the page.
func SaveResyncProgress(ctx context.Context, db DBTX, runID int64, checkpoint json.RawMessage, delta ResyncCounts) error {
	_, err := db.Exec(ctx, `
		UPDATE resync_runs SET checkpoint = $2, seen = seen + $3, created = created + $4, updated = updated + $5,
		       deleted = deleted + $6, skipped = skipped + $7
		WHERE id = $1`, runID, checkpoint, delta.Seen, delta.Created, delta.Updated, delta.Deleted, delta.Skipped)
	if err != nil {
		return fmt.Errorf("saving resync progress: %w", err)
	}
	return nil
}

// MarkResyncSeen records keys as seen by the run.
func MarkResyncSeen(ctx context.Context, db DBTX, runID int64, keys []string) error {
	_, err := db.Exec(ctx, `INSERT INTO resync_seen (run_id, key) SELECT $1, unnest($2::text[]) ON CONFLICT DO NOTHING`, runID, keys)
	if err != nil {
		return fmt.Errorf("recording seen keys: %w", err)
	}
	return nil
}

// UnseenRow is a live mirror row a completed pass did not see.
type UnseenRow struct {
	// Key is the row's id, or "<organization id>/<user id>" for a membership.
	Key     string
	Version int64
}

// unseenQueries select, per entity, the live rows of a source that the run did not see and that
// nothing wrote since the run started (a webhook may have created them after the listing passed).
var unseenQueries = map[events.Entity]string{
	events.EntityUser: `SELECT id, source_version FROM users t WHERE source = $1 AND deleted_at IS NULL AND synced_at < $3
		AND NOT EXISTS (SELECT 1 FROM resync_seen s WHERE s.run_id = $2 AND s.key = t.id) AND id > $4 ORDER BY id LIMIT $5`,
	events.EntityOrganization: `SELECT id, source_version FROM organizations t WHERE source = $1 AND deleted_at IS NULL AND synced_at < $3
		AND NOT EXISTS (SELECT 1 FROM resync_seen s WHERE s.run_id = $2 AND s.key = t.id) AND id > $4 ORDER BY id LIMIT $5`,
	events.EntityMembership: `SELECT k, source_version FROM (SELECT organization_id || '/' || user_id AS k, source_version, synced_at
		FROM memberships WHERE source = $1 AND deleted_at IS NULL) t WHERE synced_at < $3
		AND NOT EXISTS (SELECT 1 FROM resync_seen s WHERE s.run_id = $2 AND s.key = t.k) AND k > $4 ORDER BY k LIMIT $5`,
}

// ResyncUnseen pages through the rows the run did not see, after the key after, at most limit.
func ResyncUnseen(ctx context.Context, db DBTX, run ResyncRun, after string, limit int) ([]UnseenRow, error) {
	q, ok := unseenQueries[run.Entity]
	if !ok {
		return nil, fmt.Errorf("no mirror table for entity %q", run.Entity)
	}
	rows, err := db.Query(ctx, q, run.Source, run.ID, run.StartedAt, after, limit)
	if err != nil {
		return nil, fmt.Errorf("listing unseen rows: %w", err)
	}
	defer rows.Close()
	var out []UnseenRow
	for rows.Next() {
		var u UnseenRow
		if err := rows.Scan(&u.Key, &u.Version); err != nil {
			return nil, err
		}
		out = append(out, u)
	}
	return out, rows.Err()
}

// FinishResyncRun closes the run with status (and the error of a failed run) and forgets what it saw.
func FinishResyncRun(ctx context.Context, db DBTX, runID int64, status, errText string) error {
	var e *string
	if errText != "" {
		e = &errText
	}
	if _, err := db.Exec(ctx, `UPDATE resync_runs SET status = $2, error = $3, finished_at = now() WHERE id = $1`, runID, status, e); err != nil {
		return fmt.Errorf("finishing resync run: %w", err)
	}
	if _, err := db.Exec(ctx, `DELETE FROM resync_seen WHERE run_id = $1`, runID); err != nil {
		return fmt.Errorf("finishing resync run: %w", err)
	}
	return nil
}

// GetResyncRunByJob reads the run of a resync job; ErrNotFound until the job started.
func GetResyncRunByJob(ctx context.Context, db DBTX, jobID int64) (ResyncRun, error) {
	r, err := scanResyncRun(db.QueryRow(ctx, `SELECT `+resyncRunColumns+` FROM resync_runs WHERE job_id = $1`, jobID))
	if err != nil {
		return ResyncRun{}, fmt.Errorf("reading resync run of job %d: %w", jobID, interpretError(err))
	}
	return r, nil
}
