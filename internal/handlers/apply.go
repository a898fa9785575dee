// Package handlers holds idpsync's River jobs: their args (what is stored in river_job) and their
// workers. Every worker is idempotent: River runs a job at least once, and operators replay.
//
// Jobs and queues:
//
//	idpsync.apply_event  queue "reconcile"  apply one recorded event to the mirror
package handlers

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"

	"github.com/idpsync/idpsync/internal/events"
	"github.com/idpsync/idpsync/internal/store"
)

// QueueReconcile runs the jobs that write the mirror from events.
const QueueReconcile = "reconcile"

// ApplyEventArgs applies one event of the log to the mirror. Source and Type are for operators
// reading jobs (River UI); the event itself is read from the log.
type ApplyEventArgs struct {
	EventID int64  `json:"event_id"`
	Source  string `json:"source"`
	Type    string `json:"type"`
	// Reapply is set by operator replays: rows whose version equals the event's are rewritten
	// too, so that a fix to how events map to rows reaches rows already written.
	Reapply bool `json:"reapply,omitempty"`
}

// Kind implements river.JobArgs.
func (ApplyEventArgs) Kind() string { return "idpsync.apply_event" }

// InsertOpts implements river.JobArgsWithInsertOpts.
func (ApplyEventArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: QueueReconcile, MaxAttempts: 10}
}

// Change is a change of the mirror, made by an event or found by a resync.
type Change struct {
	Source string
	// Event carries the entity as written (a resync's finding is an event too: a deletion it
	// confirmed is a UserDeleted, and so on).
	Event  events.Event
	Result store.Change
	// EventID is the event log row that made the change; 0 for a resync.
	EventID int64
	// ReceivedAt is when the webhook was received, or when the resync found the change.
	ReceivedAt time.Time
}

// ChangeHook reacts to a change inside the transaction that wrote it: jobs it inserts with tx
// commit atomically with the change. It runs within a River job, so river.ClientFromContext
// works. (The revocation policy hooks in here.)
type ChangeHook func(ctx context.Context, tx pgx.Tx, c Change) error

// ApplyEventWorker works ApplyEventArgs. The mirror write, the event's status and the job's
// completion commit in one transaction, so a crash anywhere leaves either all of them or none.
type ApplyEventWorker struct {
	river.WorkerDefaults[ApplyEventArgs]
	pool   *pgxpool.Pool
	logger *slog.Logger
	hooks  []ChangeHook
}

// NewApplyEventWorker returns a worker writing through pool; hooks run after each applied change.
func NewApplyEventWorker(pool *pgxpool.Pool, logger *slog.Logger, hooks ...ChangeHook) *ApplyEventWorker {
	return &ApplyEventWorker{pool: pool, logger: logger, hooks: hooks}
}

// Work implements river.Worker.
func (w *ApplyEventWorker) Work(ctx context.Context, job *river.Job[ApplyEventArgs]) error {
	return pgx.BeginFunc(ctx, w.pool, func(tx pgx.Tx) error {
		rec, err := store.GetEvent(ctx, tx, job.Args.EventID)
		if errors.Is(err, store.ErrNotFound) {
			return river.JobCancel(fmt.Errorf("event %d is not in the log (pruned?): %w", job.Args.EventID, err))
		}
		if err != nil {
			return err
		}
		ev, err := events.Parse(rec.Kind, rec.EventID, rec.Payload)
		if err != nil {
			// It parsed when it was recorded, so the parser changed since: nothing a retry fixes.
			// Replay the event once the parser is fixed.
			return river.JobCancel(fmt.Errorf("event %d no longer parses: %w", rec.ID, err))
		}
		status, change, err := apply(ctx, tx, rec.Source, ev, store.ApplyOptions{DeletedAt: rec.OccurredAt, Reapply: job.Args.Reapply})
		if err != nil {
			return err
		}
		if change.Applied {
			c := Change{Source: rec.Source, Event: ev, Result: change, EventID: rec.ID, ReceivedAt: rec.ReceivedAt}
			if err := runHooks(ctx, tx, w.hooks, c); err != nil {
				return err
			}
		}
		if err := store.SetEventStatus(ctx, tx, rec.ID, status); err != nil {
			return err
		}
		if _, err := river.JobCompleteTx[*riverpgxv5.Driver](ctx, tx, job); err != nil {
			return fmt.Errorf("completing job: %w", err)
		}
		w.logger.Debug("event applied", "source", rec.Source, "event_id", rec.EventID, "type", rec.Type, "status", status)
		return nil
	})
}

func runHooks(ctx context.Context, tx pgx.Tx, hooks []ChangeHook, c Change) error {
	for _, hook := range hooks {
		if err := hook(ctx, tx, c); err != nil {
			return err
		}
	}
	return nil
}

// apply writes the event's entity to the mirror and returns the event's new status.
func apply(ctx context.Context, tx pgx.Tx, source string, ev events.Event, opts store.ApplyOptions) (string, store.Change, error) {
	var (
		c   store.Change
		err error
	)
	switch {
	case ev.User != nil:
		c, err = store.ApplyUser(ctx, tx, source, ev.User, opts)
	case ev.Organization != nil:
		c, err = store.ApplyOrganization(ctx, tx, source, ev.Organization, opts)
	case ev.Membership != nil:
		c, err = store.ApplyMembership(ctx, tx, source, ev.Membership, opts)
	default:
		return store.StatusRecorded, c, nil
	}
	if err != nil {
		return "", c, err
	}
	if !c.Applied {
		return store.StatusStale, c, nil
	}
	return store.StatusApplied, c, nil
}
