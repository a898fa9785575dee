package handlers

import (
	"cmp"
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
	mirror  *Mirror
	logger  *slog.Logger
	metrics *Metrics
	// BatchSize is how many entities are written per transaction. Defaults to 500.
	BatchSize int
	// Slice is how long one run of the job works before it hands the rest of the pass to its next
	// run, which resumes from the checkpoint. Defaults to ResyncSlice.
	Slice time.Duration
}

// NewResyncWorker returns the resync worker, writing through mirror.
func NewResyncWorker(pool *pgxpool.Pool, idps IdPs, logger *slog.Logger, metrics *Metrics, mirror *Mirror) *ResyncWorker {
	return &ResyncWorker{pool: pool, idps: idps, mirror: mirror, logger: logger, metrics: metrics, BatchSize: 500, Slice: ResyncSlice}
}

// A pass of any length is worked in slices: each run of the job works for ResyncSlice, then
// snoozes itself without delay (which spends no attempt) and the next run resumes from the
// checkpoint. So no run of any job lasts longer than JobTimeout, and River can rescue the work of
// a worker that died within a couple of minutes without ever taking a live resync for a stuck one.
const ResyncSlice = 40 * time.Second

// errSliceOver ends a run whose slice is used up.
var errSliceOver = errors.New("the slice is used up")

// Work implements river.Worker.

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

	deadline := time.Now().Add(cmp.Or(w.Slice, ResyncSlice))
	err = w.pass(ctx, dir, &run, deadline)
	if err == nil {
		err = w.sweep(ctx, dir, &run, deadline)
	}
	if errors.Is(err, errSliceOver) {
		log.Debug("resync continues in its next slice", "seen", run.Seen, "checkpoint", string(run.Checkpoint))
		return river.JobSnooze(0)
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

// pass reads the listing from the run's checkpoint to its end, or until deadline (errSliceOver).
// The next page is read while the current one is written (one batch ahead at most), so the IdP's
// latency and the writes overlap.
func (w *ResyncWorker) pass(ctx context.Context, dir provider.Directory, run *store.ResyncRun, deadline time.Time) error {
	type next struct {
		it  provider.Item
		err error
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	items := make(chan next, w.BatchSize)
	go func() {
		defer close(items)
		for it, err := range dir.List(idpclient.WithOperation(ctx, "list_"+run.Entity.Plural()), run.Entity, run.Checkpoint) {
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
			if time.Now().After(deadline) {
				return errSliceOver
			}
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
		writes := make([]store.Write, 0, len(batch))
		for i, it := range batch {
			keys[i] = it.Key
			if it.Err != nil {
				delta.Skipped++
				w.logger.Warn("resync skipped an entity it cannot map; its row is kept as is", "source", run.Source,
					"entity", run.Entity.Plural(), "key", it.Key, "error", it.Err)
				continue
			}
			writes = append(writes, store.Write{Source: run.Source, Event: it.Event})
		}
		if err := w.apply(ctx, tx, run, writes, &delta); err != nil {
			return err
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

// apply writes the entities, counts the drift they healed and lets the hooks react to it.
func (w *ResyncWorker) apply(ctx context.Context, tx pgx.Tx, run *store.ResyncRun, writes []store.Write, delta *store.ResyncCounts) error {
	results, err := w.mirror.Write(ctx, tx, writes)
	if err != nil {
		return err
	}
	changes := make([]Change, 0, len(results))
	now := time.Now()
	for i, change := range results {
		if !change.Applied {
			continue
		}
		switch ev := writes[i].Event; {
		case isDeletion(ev):
			delta.Deleted++
		case !change.Existed || change.WasDeleted:
			delta.Created++
		default:
			delta.Updated++
		}
		changes = append(changes, Change{Source: run.Source, Event: writes[i].Event, Result: change, ReceivedAt: now})
	}
	return w.mirror.React(ctx, tx, river.ClientFromContext[pgx.Tx](ctx), changes)
}

func isDeletion(ev events.Event) bool {
	return ev.User != nil && ev.User.Deleted || ev.Organization != nil && ev.Organization.Deleted ||
		ev.Membership != nil && ev.Membership.Deleted
}

// sweep checks, after a complete pass, each row the pass did not see: the IdP is asked for it, and
// it is tombstoned only if the IdP no longer has it (an offset listing can skip an entity when the
// IdP deletes another during the pass; that one is written instead, and marked seen, so that the
// next slice does not ask for it again). It stops at deadline with errSliceOver.
func (w *ResyncWorker) sweep(ctx context.Context, dir provider.Directory, run *store.ResyncRun, deadline time.Time) error {
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
			if time.Now().After(deadline) {
				return errSliceOver
			}
			after = row.Key
			ev, err := dir.Get(idpclient.WithOperation(ctx, "get_"+string(run.Entity)), run.Entity, row.Key)
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
				if err := w.apply(ctx, tx, run, []store.Write{{Source: run.Source, Event: ev}}, &delta); err != nil {
					return err
				}
				if err := store.MarkResyncSeen(ctx, tx, run.ID, []string{row.Key}); err != nil {
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
