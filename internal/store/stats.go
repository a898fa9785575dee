package store

import (
	"context"
	"fmt"
	"time"
)

// DeadLettersPending counts, per source, the dead letters no replay has recorded yet.
func DeadLettersPending(ctx context.Context, db DBTX) (map[string]int64, error) {
	rows, err := db.Query(ctx, `SELECT source, count(*) FROM dead_letters WHERE replayed_at IS NULL GROUP BY source`)
	if err != nil {
		return nil, fmt.Errorf("counting dead letters: %w", err)
	}
	defer rows.Close()
	out := map[string]int64{}
	for rows.Next() {
		var source string
		var n int64
		if err := rows.Scan(&source, &n); err != nil {
			return nil, err
		}
		out[source] = n
	}
	return out, rows.Err()
}

// JobStat is the jobs of one queue in one state that is not final.
type JobStat struct {
	Queue, State string
	Count        int64
	// OldestAge is how long the oldest has been in the state: waiting for a worker (available:
	// since scheduled_at), worked (running: since attempted_at); zero for the other states.
	OldestAge time.Duration
}

// JobStats reads River's table: the jobs that are not finished, by queue and state.
func JobStats(ctx context.Context, db DBTX) ([]JobStat, error) {
	rows, err := db.Query(ctx, `
		SELECT queue, state::text, count(*),
		       coalesce(extract(epoch FROM now() - min(CASE state
		           WHEN 'available' THEN scheduled_at
		           WHEN 'running' THEN attempted_at END)), 0)
		FROM river_job
		WHERE state IN ('available', 'running', 'retryable', 'scheduled', 'pending')
		GROUP BY queue, state`)
	if err != nil {
		return nil, fmt.Errorf("counting jobs: %w", err)
	}
	defer rows.Close()
	var out []JobStat
	for rows.Next() {
		var s JobStat
		var age float64
		if err := rows.Scan(&s.Queue, &s.State, &s.Count, &age); err != nil {
			return nil, err
		}
		s.OldestAge = time.Duration(max(age, 0) * float64(time.Second))
		out = append(out, s)
	}
	return out, rows.Err()
}
