package handlers

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"

	"github.com/idpsync/idpsync/internal/store"
)

// PruneEventsArgs deletes the events older than the event log's retention.
type PruneEventsArgs struct{}

// Kind implements river.JobArgs.
func (PruneEventsArgs) Kind() string { return "idpsync.prune_events" }

// InsertOpts implements river.JobArgsWithInsertOpts: the resync queue (long, low priority), one
// at a time.
func (PruneEventsArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: QueueResync, MaxAttempts: 5, UniqueOpts: river.UniqueOpts{ByArgs: true, ByState: pendingStates}}
}

// PruneEventsWorker works PruneEventsArgs in batches of BatchSize rows, each its own statement,
// so that no statement holds many locks or runs long; after Slice it hands the rest to its next
// run, like a resync, so that no run outlives the job timeout.
type PruneEventsWorker struct {
	river.WorkerDefaults[PruneEventsArgs]
	pool      *pgxpool.Pool
	retention time.Duration
	metrics   *Metrics
	// BatchSize is the most rows one statement deletes. Defaults to 5000.
	BatchSize int
	// Slice is how long one run works. Defaults to ResyncSlice.
	Slice time.Duration
}

// NewPruneEventsWorker returns the worker that keeps the event log within retention.
func NewPruneEventsWorker(pool *pgxpool.Pool, retention time.Duration, metrics *Metrics) *PruneEventsWorker {
	return &PruneEventsWorker{pool: pool, retention: retention, metrics: metrics, BatchSize: 5000, Slice: ResyncSlice}
}

// PruneEventsPeriodicJob runs PruneEventsArgs hourly, and once at start.
func PruneEventsPeriodicJob() *river.PeriodicJob {
	return river.NewPeriodicJob(river.PeriodicInterval(time.Hour),
		func() (river.JobArgs, *river.InsertOpts) { return PruneEventsArgs{}, nil },
		&river.PeriodicJobOpts{ID: "prune_events", RunOnStart: true})
}

// Work implements river.Worker.
func (w *PruneEventsWorker) Work(ctx context.Context, _ *river.Job[PruneEventsArgs]) error {
	before := time.Now().Add(-w.retention)
	deadline := time.Now().Add(w.Slice)
	for {
		n, err := store.PruneEvents(ctx, w.pool, before, w.BatchSize)
		if err != nil {
			return err
		}
		w.metrics.eventsPruned.Add(float64(n))
		if n < int64(w.BatchSize) {
			return nil
		}
		if time.Now().After(deadline) {
			return river.JobSnooze(0)
		}
	}
}
