// Package replay re-drives events for operators, at three depths:
//
//   - Log: re-apply events already in the event log, e.g. after fixing how events map to mirror
//     rows. Each matching event gets a new apply job that may rewrite rows at the same version;
//     version guards and tombstones still hold, so replaying any window is safe.
//   - Stream: re-record the stream's messages, e.g. after a dead-letter-causing parser bug was
//     fixed or the event log was restored from an older backup. Events already in the log are
//     skipped; the others are recorded and applied as if just received.
//   - DeadLetters: the same for the payloads kept in dead_letters, which outlive the stream's
//     retention.
//
// Every replay is idempotent: running it twice does no more than running it once.
package replay

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"

	"github.com/idpsync/idpsync/internal/handlers"
	"github.com/idpsync/idpsync/internal/intake"
	"github.com/idpsync/idpsync/internal/natsbus"
	"github.com/idpsync/idpsync/internal/store"
)

// Recorder records deliveries as the intake does (an *intake.Intake).
type Recorder interface {
	Record(ctx context.Context, batch []*natsbus.Delivery) ([]intake.Outcome, error)
}

// Counts summarises a replay.
type Counts struct {
	// Read is how many events or dead letters matched.
	Read int
	// Enqueued counts apply jobs enqueued by a log replay.
	Enqueued int
	// Recorded, Duplicate and DeadLettered count the outcomes of stream and dead-letter replays.
	Recorded, Duplicate, DeadLettered int
}

func (c *Counts) add(outcomes []intake.Outcome) {
	for _, o := range outcomes {
		switch o {
		case intake.Recorded:
			c.Recorded++
		case intake.Duplicate:
			c.Duplicate++
		case intake.DeadLettered:
			c.DeadLettered++
		}
	}
}

// Log enqueues an apply job, in reapply mode, for every event of the log matching f. With dryRun
// it only counts them. progress, when not nil, is called after each page.
func Log(ctx context.Context, pool *pgxpool.Pool, jobs intake.JobInserter, f store.EventFilter, dryRun bool, progress func(Counts)) (Counts, error) {
	var c Counts
	f.Limit = 1000
	for {
		refs, err := store.ListEvents(ctx, pool, f)
		if err != nil {
			return c, err
		}
		if len(refs) == 0 {
			return c, nil
		}
		c.Read += len(refs)
		f.AfterID = refs[len(refs)-1].ID
		if !dryRun {
			err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
				ids := make([]int64, len(refs))
				params := make([]river.InsertManyParams, len(refs))
				for i, r := range refs {
					ids[i] = r.ID
					params[i] = river.InsertManyParams{Args: handlers.ApplyEventArgs{EventID: r.ID, Source: r.Source, Type: string(r.Type), Reapply: true}}
				}
				if err := store.MarkEventsPending(ctx, tx, ids); err != nil {
					return err
				}
				if _, err := jobs.InsertManyTx(ctx, tx, params); err != nil {
					return fmt.Errorf("enqueueing jobs: %w", err)
				}
				return nil
			})
			if err != nil {
				return c, err
			}
			c.Enqueued += len(refs)
		}
		if progress != nil {
			progress(c)
		}
	}
}

// Stream re-records the stream's events of source (all sources when empty) from `from` on.
func Stream(ctx context.Context, bus *natsbus.Bus, pool *pgxpool.Pool, rec Recorder, source string, from natsbus.ReadFrom, progress func(Counts)) (Counts, error) {
	var c Counts
	err := bus.ReadStream(ctx, source, from, 200, func(batch []*natsbus.Delivery) error {
		outcomes, err := rec.Record(ctx, batch)
		if err != nil {
			return err
		}
		c.Read += len(batch)
		c.add(outcomes)
		if err := markReplayed(ctx, pool, batch, outcomes); err != nil {
			return err
		}
		if progress != nil {
			progress(c)
		}
		return nil
	})
	return c, err
}

// DeadLetters re-records the dead letters matching f. Those that now parse are recorded and marked
// replayed; the others stay as they are.
func DeadLetters(ctx context.Context, pool *pgxpool.Pool, rec Recorder, f store.DeadLetterFilter, progress func(Counts)) (Counts, error) {
	var c Counts
	f.Limit = 200
	for {
		dls, err := store.ListDeadLetters(ctx, pool, f)
		if err != nil {
			return c, err
		}
		if len(dls) == 0 {
			return c, nil
		}
		f.AfterID = dls[len(dls)-1].ID
		batch := make([]*natsbus.Delivery, len(dls))
		for i, dl := range dls {
			batch[i] = natsbus.NewDelivery(dl.Subject, dl.Headers, dl.Payload, uint64(dl.StreamSeq), dl.ReceivedAt)
		}
		outcomes, err := rec.Record(ctx, batch)
		if err != nil {
			return c, err
		}
		c.Read += len(dls)
		c.add(outcomes)
		if err := markReplayed(ctx, pool, batch, outcomes); err != nil {
			return c, err
		}
		if progress != nil {
			progress(c)
		}
	}
}

// markReplayed closes the dead letters of events that are now in the log.
func markReplayed(ctx context.Context, pool *pgxpool.Pool, batch []*natsbus.Delivery, outcomes []intake.Outcome) error {
	var sources, ids []string
	for i, d := range batch {
		if outcomes[i] != intake.DeadLettered && d.Event != nil {
			sources, ids = append(sources, d.Event.Source), append(ids, d.Event.EventID)
		}
	}
	if len(ids) == 0 {
		return nil
	}
	return store.MarkDeadLettersReplayed(ctx, pool, sources, ids)
}
