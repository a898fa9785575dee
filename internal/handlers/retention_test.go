package handlers

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/riverqueue/river"

	"github.com/idpsync/idpsync/internal/store/storetest"
)

// The retention job deletes the events older than the retention, in batches and slices, and
// never a pending one.
func TestPruneEventsKeepsPendingAndRecent(t *testing.T) {
	t.Parallel()
	pool, _ := storetest.NewSchema(t)
	ctx := context.Background()
	now := time.Now()
	insert := func(n int, age time.Duration, status string) {
		t.Helper()
		_, err := pool.Exec(ctx, `
			INSERT INTO events (source, event_id, kind, source_type, received_at, payload, status)
			SELECT 'c', $1 || g, 'clerk', 'user.updated', $2, '{}', $3 FROM generate_series(1, $4) g`,
			status+age.String()+"-", now.Add(-age), status, n)
		if err != nil {
			t.Fatal(err)
		}
	}
	insert(120, 48*time.Hour, "applied")
	insert(30, 48*time.Hour, "stale")
	insert(5, 48*time.Hour, "pending")
	insert(40, time.Hour, "applied")

	m, err := NewMetrics(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	w := NewPruneEventsWorker(pool, 24*time.Hour, m)
	w.BatchSize = 50
	w.Slice = 0 // one batch per run: the rest is snoozed to the next run
	var runs int
	for {
		runs++
		err := w.Work(ctx, &river.Job[PruneEventsArgs]{})
		var snooze *river.JobSnoozeError
		if err == nil {
			break
		}
		if !errors.As(err, &snooze) || runs > 10 {
			t.Fatalf("run %d: %v", runs, err)
		}
	}
	if runs != 4 { // 150 old rows in batches of 50: three full batches, then an empty one
		t.Errorf("%d runs, want 4", runs)
	}
	var left, pending int
	if err := pool.QueryRow(ctx, `SELECT count(*), count(*) FILTER (WHERE status = 'pending') FROM events`).Scan(&left, &pending); err != nil {
		t.Fatal(err)
	}
	if left != 45 || pending != 5 {
		t.Errorf("%d events left (%d pending), want the 40 recent and the 5 pending", left, pending)
	}
	if got := testutil.ToFloat64(m.eventsPruned); got != 150 {
		t.Errorf("idpsync_events_pruned_total = %v, want 150", got)
	}
}
