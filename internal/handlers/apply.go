// Package handlers holds idpsync's River jobs: their args (what is stored in river_job) and their
// workers, and the Mirror every writer of the mirror goes through. Every worker is idempotent:
// River runs a job at least once, and operators replay.
//
// Jobs and queues:
//
//	idpsync.apply_event  queue "reconcile"  apply one event whose entity must be read from the IdP
//	idpsync.resync       queue "resync"     a resync of one entity of one source (revoke.go, resync.go)
//	idpsync.revoke.*     queue "revoke"     the calls back to the IdPs that revocations make
package handlers

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivertype"

	"github.com/idpsync/idpsync/internal/events"
	"github.com/idpsync/idpsync/internal/idpclient"
	"github.com/idpsync/idpsync/internal/provider"
	"github.com/idpsync/idpsync/internal/store"
)

// QueueReconcile runs the jobs that write the mirror from events.
const QueueReconcile = "reconcile"

// ApplyEventArgs applies one event of the log to the mirror. Source and Type are for operators
// reading jobs (River UI); the event itself is read from the log. Events that carry their entity
// are applied by the intake in the transaction that records them; this job applies those that
// name an entity without its state (Zitadel's changes), after reading it from the IdP.
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

// ApplyEventWorker works ApplyEventArgs. The mirror write, the event's status and the job's
// completion commit in one transaction, so a crash anywhere leaves either all of them or none.
type ApplyEventWorker struct {
	river.WorkerDefaults[ApplyEventArgs]
	pool   *pgxpool.Pool
	idps   IdPs
	logger *slog.Logger
	mirror *Mirror
}

// NewApplyEventWorker returns a worker writing through pool and mirror; it reads the entities
// that events name without carrying (Zitadel's) from idps.
func NewApplyEventWorker(pool *pgxpool.Pool, idps IdPs, logger *slog.Logger, mirror *Mirror) *ApplyEventWorker {
	return &ApplyEventWorker{pool: pool, idps: idps, logger: logger, mirror: mirror}
}

// Work implements river.Worker.
func (w *ApplyEventWorker) Work(ctx context.Context, job *river.Job[ApplyEventArgs]) error {
	rec, err := store.GetEvent(ctx, w.pool, job.Args.EventID)
	if errors.Is(err, store.ErrNotFound) {
		return river.JobCancel(fmt.Errorf("event %d is not in the log (pruned?): %w", job.Args.EventID, err))
	}
	if err != nil {
		return err
	}
	ev, err := provider.Parse(rec.Kind, rec.EventID, rec.Payload)
	if err != nil {
		// It parsed when it was recorded, so the parser changed since: nothing a retry fixes.
		// Replay the event once the parser is fixed.
		return river.JobCancel(fmt.Errorf("event %d no longer parses: %w", rec.ID, err))
	}
	if IsPartial(ev) {
		// Read the entity before the transaction: no transaction waits on the IdP.
		if ev, err = w.read(ctx, rec.Source, ev); err != nil {
			return deferOrRetry(ctx, job.JobRow, w.logger, err)
		}
	}
	jobs := river.ClientFromContext[pgx.Tx](ctx)
	return pgx.BeginFunc(ctx, w.pool, func(tx pgx.Tx) error {
		var change *store.Change
		if HasEntity(ev) {
			changes, err := w.mirror.Write(ctx, tx, []store.Write{{Source: rec.Source, Event: ev,
				Opts: store.ApplyOptions{DeletedAt: rec.OccurredAt, Reapply: job.Args.Reapply}}})
			if err != nil {
				return err
			}
			change = &changes[0]
			c := Change{Source: rec.Source, Event: ev, Result: *change, EventID: rec.ID, ReceivedAt: rec.ReceivedAt}
			if err := w.mirror.React(ctx, tx, jobs, []Change{c}); err != nil {
				return err
			}
		}
		status := StatusOf(ev, change)
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

// read replaces a partial entity with its current state at the IdP; an entity the IdP no longer
// has becomes its deletion, at the event's version.
func (w *ApplyEventWorker) read(ctx context.Context, source string, ev events.Event) (events.Event, error) {
	dir, ok := w.idps.Directories[source]
	if !ok {
		return ev, river.JobCancel(fmt.Errorf("source %s's events name entities without their state; give the source api credentials to read them", source))
	}
	entity, id := events.EntityUser, ""
	if ev.User != nil {
		id = ev.User.ID
	} else {
		entity, id = events.EntityOrganization, ev.Organization.ID
	}
	fresh, err := dir.Get(idpclient.WithOperation(ctx, "get_"+string(entity)), entity, id)
	w.idps.Health.Observe(source, err)
	switch {
	case errors.Is(err, idpclient.ErrNotFound):
		if ev.User != nil {
			ev.User = &events.User{ID: id, Deleted: true, Version: ev.User.Version, Raw: ev.User.Raw}
		} else {
			ev.Organization = &events.Organization{ID: id, Deleted: true, Version: ev.Organization.Version, Raw: ev.Organization.Raw}
		}
		return ev, nil
	case err != nil:
		return ev, fmt.Errorf("reading %s %s from %s: %w", entity, id, source, err)
	}
	fresh.Envelope = ev.Envelope
	return fresh, nil
}

// deferOrRetry turns a failed read of an entity into the job's outcome.
func deferOrRetry(ctx context.Context, job *rivertype.JobRow, logger *slog.Logger, err error) error {
	if _, cancelled := errors.AsType[*river.JobCancelError](err); cancelled {
		return err
	}
	snooze, final := judge(ctx, job, err)
	switch {
	case snooze > 0:
		logger.Warn("job deferred by the IdP's rate limit", "job_kind", job.Kind, "job_id", job.ID, "retry_in", snooze.String())
		return river.JobSnooze(snooze)
	case final:
		return river.JobCancel(err)
	}
	return err
}
