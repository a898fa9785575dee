package handlers

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"

	"github.com/idpsync/idpsync/internal/events"
	"github.com/idpsync/idpsync/internal/idpclient"
	"github.com/idpsync/idpsync/internal/provider"
	"github.com/idpsync/idpsync/internal/store"
)

// Resync: a job per source and entity pages through the IdP's management API and writes what it
// reads into the mirror, in batches of one transaction each (rows, the keys seen and the listing's
// checkpoint together). Writes are version-guarded, so a row a newer webhook wrote while the pass
// ran keeps the newer state. After a complete pass, and only then, the rows the pass did not see
// (and nothing wrote since it started) are checked one by one at the IdP: those it no longer has
// are tombstoned. A pass that fails deletes nothing; an attempt after a crash or an error resumes
// from the checkpoint; a 429 snoozes the job, which does not spend an attempt.
//
// Every row a pass created, updated or deleted is drift: a webhook that was missed. The counts
// are in resync_runs and the idpsync_resync_drift_total metric, and the changes go through the
// same hooks as webhooks' (a user found deleted is revoked like one whose deletion was delivered).

// QueueResync runs the resyncs.
const QueueResync = "resync"

// ResyncArgs resyncs one entity of one source.
type ResyncArgs struct {
	Source string `json:"source" river:"unique"`
	// Entity is one of events.MirroredEntities.
	Entity events.Entity `json:"entity" river:"unique"`
}

// Kind implements river.JobArgs.
func (ResyncArgs) Kind() string { return "idpsync.resync" }

// InsertOpts implements river.JobArgsWithInsertOpts: one pass per source and entity at a time.
func (ResyncArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: QueueResync, MaxAttempts: 10, UniqueOpts: river.UniqueOpts{ByArgs: true, ByState: pendingStates}}
}

// ResyncWorker works ResyncArgs.
type ResyncWorker struct {
	river.WorkerDefaults[ResyncArgs]
	pool    *pgxpool.Pool
	idps    IdPs
	hooks   []ChangeHook
	logger  *slog.Logger
	metrics *Metrics
	// BatchSize is how many entities are written per transaction. Defaults to 500.
	BatchSize int
}

// NewResyncWorker returns the resync worker; hooks see the changes it makes.
func NewResyncWorker(pool *pgxpool.Pool, idps IdPs, logger *slog.Logger, metrics *Metrics, hooks ...ChangeHook) *ResyncWorker {
	return &ResyncWorker{pool: pool, idps: idps, hooks: hooks, logger: logger, metrics: metrics, BatchSize: 500}
}

// ResyncTimeout bounds one attempt of a resync; a longer pass continues, from its checkpoint, in
// the next attempt.
const ResyncTimeout = time.Hour

// Timeout implements river.Worker.
func (w *ResyncWorker) Timeout(*river.Job[ResyncArgs]) time.Duration { return ResyncTimeout }

// Work implements river.Worker.
func (w *ResyncWorker) Work(ctx context.Context, job *river.Job[ResyncArgs]) error {
	a := job.Args
	dir, ok := w.idps.Directories[a.Source]
	if !ok {
		return river.JobCancel(fmt.Errorf("source %s has no management API to resync from", a.Source))
	}
	run, err := store.StartResyncRun(ctx, w.pool, job.ID, a.Source, a.Entity)
	if err != nil {
		return err
	}
	log := w.logger.With("source", a.Source, "entity", a.Entity.Plural(), "run_id", run.ID)
	if run.Resumed > 0 {
		log.Info("resync resumed", "checkpoint", string(run.Checkpoint), "seen", run.Seen)
	} else {
		log.Info("resync started")
	}

	err = w.pass(ctx, dir, &run)
	if err == nil {
		err = w.sweep(ctx, dir, &run)
	}
	if err != nil {
		return w.fail(ctx, job, run, log, err)
	}
	w.idps.Health.Observe(a.Source, nil)
	if err := store.FinishResyncRun(ctx, w.pool, run.ID, store.RunSucceeded, ""); err != nil {
		return err
	}
	w.metrics.resyncRuns.WithLabelValues(a.Source, a.Entity.Plural(), store.RunSucceeded).Inc()
	log.Info("resync finished", "seen", run.Seen, "created", run.Created, "updated", run.Updated, "deleted", run.Deleted,
		"skipped", run.Skipped, "drift", run.Created+run.Updated+run.Deleted, "took", time.Since(run.StartedAt).Round(time.Millisecond).String())
	return nil
}

// fail decides what a failed attempt becomes: a snooze for a rate limit, a retry that resumes from
// the checkpoint, or, for the IdP's permanent answers and exhausted attempts, the end of the run.
func (w *ResyncWorker) fail(ctx context.Context, job *river.Job[ResyncArgs], run store.ResyncRun, log *slog.Logger, err error) error {
	w.idps.Health.Observe(run.Source, err)
	snooze, final := judge(ctx, job.JobRow, err)
	switch {
	case snooze > 0:
		log.Warn("resync slowed down by the IdP's rate limit", "retry_in", snooze.String(), "seen", run.Seen)
		return river.JobSnooze(snooze)
	case !final:
		log.Warn("resync attempt failed; the next resumes from the checkpoint", "error", err, "attempt", job.Attempt)
		return err
	}
	log.Error("resync failed; nothing was deleted", "error", err, "seen", run.Seen)
	if ferr := store.FinishResyncRun(context.WithoutCancel(ctx), w.pool, run.ID, store.RunFailed, err.Error()); ferr != nil {
		return ferr
	}
	w.metrics.resyncRuns.WithLabelValues(run.Source, run.Entity.Plural(), store.RunFailed).Inc()
	return river.JobCancel(err)
}

// pass reads the listing from the run's checkpoint to its end. The next page is read while the
// current one is written (one batch ahead at most), so the IdP's latency and the writes overlap.
func (w *ResyncWorker) pass(ctx context.Context, dir provider.Directory, run *store.ResyncRun) error {
	type next struct {
		it  provider.Item
		err error
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	items := make(chan next, w.BatchSize)
	go func() {
		defer close(items)
		for it, err := range dir.List(ctx, run.Entity, run.Checkpoint) {
			select {
			case items <- next{it, err}:
			case <-ctx.Done():
				return
			}
			if err != nil {
				return
			}
		}
	}()
	batch := make([]provider.Item, 0, w.BatchSize)
	for n := range items {
		if n.err != nil {
			if err := w.write(ctx, run, batch); err != nil {
				return err
			}
			return n.err
		}
		batch = append(batch, n.it)
		if len(batch) == cap(batch) {
			if err := w.write(ctx, run, batch); err != nil {
				return err
			}
			batch = batch[:0]
		}
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	return w.write(ctx, run, batch)
}

// write applies a batch in one round trip (a pipeline of version-guarded upserts), records its keys
// as seen and moves the checkpoint past it, in one transaction.
func (w *ResyncWorker) write(ctx context.Context, run *store.ResyncRun, batch []provider.Item) error {
	if len(batch) == 0 {
		return nil
	}
	var delta store.ResyncCounts
	err := pgx.BeginFunc(ctx, w.pool, func(tx pgx.Tx) error {
		delta = store.ResyncCounts{Seen: int64(len(batch))}
		keys := make([]string, len(batch))
		evs := make([]events.Event, 0, len(batch))
		for i, it := range batch {
			keys[i] = it.Key
			if it.Err != nil {
				delta.Skipped++
				w.logger.Warn("resync skipped an entity it cannot map; its row is kept as is", "source", run.Source,
					"entity", run.Entity.Plural(), "key", it.Key, "error", it.Err)
				continue
			}
			evs = append(evs, it.Event)
		}
		changes, err := store.ApplyBatch(ctx, tx, run.Source, evs, store.ApplyOptions{})
		if err != nil {
			return err
		}
		for i, change := range changes {
			if err := w.changed(ctx, tx, run, evs[i], change, &delta); err != nil {
				return err
			}
		}
		if err := store.MarkResyncSeen(ctx, tx, run.ID, keys); err != nil {
			return err
		}
		return store.SaveResyncProgress(ctx, tx, run.ID, batch[len(batch)-1].Next, delta)
	})
	if err != nil {
		return fmt.Errorf("writing a resync batch: %w", err)
	}
	run.Checkpoint = batch[len(batch)-1].Next
	w.count(run, delta)
	return nil
}

// changed counts the drift a write healed and lets the hooks react to it.
func (w *ResyncWorker) changed(ctx context.Context, tx pgx.Tx, run *store.ResyncRun, ev events.Event, change store.Change, delta *store.ResyncCounts) error {
	if !change.Applied {
		return nil
	}
	switch {
	case isDeletion(ev):
		delta.Deleted++
	case !change.Existed || change.WasDeleted:
		delta.Created++
	default:
		delta.Updated++
	}
	return runHooks(ctx, tx, w.hooks, Change{Source: run.Source, Event: ev, Result: change, ReceivedAt: time.Now()})
}

func isDeletion(ev events.Event) bool {
	return ev.User != nil && ev.User.Deleted || ev.Organization != nil && ev.Organization.Deleted ||
		ev.Membership != nil && ev.Membership.Deleted
}

// sweep checks, after a complete pass, each row the pass did not see: the IdP is asked for it, and
// it is tombstoned only if the IdP no longer has it (an offset listing can skip an entity when the
// IdP deletes another during the pass; that one is written instead).
func (w *ResyncWorker) sweep(ctx context.Context, dir provider.Directory, run *store.ResyncRun) error {
	after := ""
	for {
		rows, err := store.ResyncUnseen(ctx, w.pool, *run, after, 200)
		if err != nil {
			return err
		}
		if len(rows) == 0 {
			return nil
		}
		for _, row := range rows {
			after = row.Key
			ev, err := dir.Get(ctx, run.Entity, row.Key)
			switch {
			case errors.Is(err, idpclient.ErrNotFound):
				ev, err = tombstone(run.Entity, row)
			case err != nil:
				return fmt.Errorf("checking %s %s: %w", run.Entity, row.Key, err)
			}
			if err != nil {
				return err
			}
			var delta store.ResyncCounts
			err = pgx.BeginFunc(ctx, w.pool, func(tx pgx.Tx) error {
				_, change, err := apply(ctx, tx, run.Source, ev, store.ApplyOptions{})
				if err != nil {
					return err
				}
				if err := w.changed(ctx, tx, run, ev, change, &delta); err != nil {
					return err
				}
				return store.SaveResyncProgress(ctx, tx, run.ID, run.Checkpoint, delta)
			})
			if err != nil {
				return fmt.Errorf("writing %s %s: %w", run.Entity, row.Key, err)
			}
			w.count(run, delta)
		}
	}
}

// tombstone is the deletion of an unseen row the IdP confirmed gone, at the row's own version.
func tombstone(entity events.Entity, row store.UnseenRow) (events.Event, error) {
	switch entity {
	case events.EntityUser:
		return events.Event{Envelope: events.Envelope{Type: events.UserDeleted},
			User: &events.User{ID: row.Key, Deleted: true, Version: row.Version, Raw: []byte(`{}`)}}, nil
	case events.EntityOrganization:
		return events.Event{Envelope: events.Envelope{Type: events.OrganizationDeleted},
			Organization: &events.Organization{ID: row.Key, Deleted: true, Version: row.Version, Raw: []byte(`{}`)}}, nil
	case events.EntityMembership:
		org, user, ok := strings.Cut(row.Key, "/")
		if !ok {
			return events.Event{}, fmt.Errorf("membership key %q is not <organization>/<user>", row.Key)
		}
		return events.Event{Envelope: events.Envelope{Type: events.MembershipDeleted},
			Membership: &events.Membership{OrganizationID: org, UserID: user, Deleted: true, Version: row.Version, Raw: []byte(`{}`)}}, nil
	}
	return events.Event{}, fmt.Errorf("unknown resync entity %q", entity)
}

func (w *ResyncWorker) count(run *store.ResyncRun, d store.ResyncCounts) {
	run.Seen += d.Seen
	run.Created += d.Created
	run.Updated += d.Updated
	run.Deleted += d.Deleted
	run.Skipped += d.Skipped
	w.metrics.resyncSeen.WithLabelValues(run.Source, run.Entity.Plural()).Add(float64(d.Seen))
	for change, n := range map[string]int64{"created": d.Created, "updated": d.Updated, "deleted": d.Deleted} {
		if n > 0 {
			w.metrics.resyncDrift.WithLabelValues(run.Source, run.Entity.Plural(), change).Add(float64(n))
		}
	}
}

var _ river.Worker[ResyncArgs] = (*ResyncWorker)(nil)
