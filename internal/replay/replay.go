// Package replay re-drives events for operators, at three depths:
//
//   - Log: re-apply events already in the event log, e.g. after fixing how events map to mirror
//     rows. Events are applied a page at a time, each page in one transaction, in a mode that may
//     rewrite rows at the same version; version guards and tombstones still hold, so replaying any
//     window is safe. Events whose entity must be read from the IdP get an apply job.
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

	"github.com/idpsync/idpsync/internal/events"
	"github.com/idpsync/idpsync/internal/handlers"
	"github.com/idpsync/idpsync/internal/intake"
	"github.com/idpsync/idpsync/internal/natsbus"
	"github.com/idpsync/idpsync/internal/provider"
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
	// Applied and Stale count the events a log replay applied: those that changed the mirror, and
	// those it already held.
	Applied, Stale int
	// Enqueued counts apply jobs enqueued by a log replay (events to read from the IdP).
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

// Log re-applies every event of the log matching f, in reapply mode, in pages of 500: each page
// in one transaction (the mirror writes, the events' statuses, the hooks' reactions); an event
// whose entity must be read from the IdP gets an apply job instead. With dryRun it only counts
// them. progress, when not nil, is called after each page.
//
// The next page is read and parsed while the current one is written, on another connection.
func Log(ctx context.Context, pool *pgxpool.Pool, mirror *handlers.Mirror, jobs handlers.JobInserter, f store.EventFilter, dryRun bool,
	progress func(Counts)) (Counts, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	pages := make(chan logPage, 1)
	go func() {
		defer close(pages)
		f.Limit = 500
		for {
			p := readPage(ctx, pool, f, !dryRun)
			select {
			case pages <- p:
			case <-ctx.Done():
				return
			}
			if p.err != nil || len(p.recs) == 0 {
				return
			}
			f.AfterID = p.recs[len(p.recs)-1].ID
		}
	}()
	var c Counts
	for p := range pages {
		if p.err != nil {
			return c, p.err
		}
		if len(p.recs) == 0 {
			return c, nil
		}
		c.Read += len(p.recs)
		if !dryRun {
			page, err := applyPage(ctx, pool, mirror, jobs, p)
			if err != nil {
				return c, err
			}
			c.Applied, c.Stale, c.Enqueued = c.Applied+page.Applied, c.Stale+page.Stale, c.Enqueued+page.Enqueued
		}
		if progress != nil {
			progress(c)
		}
	}
	return c, ctx.Err()
}

// logPage is a page of the log read for a replay, with the events parsed; err ends the replay.
type logPage struct {
	recs   []store.RecordedEvent
	parsed []events.Event
	err    error
}

// readPage reads the page of f and, with parse, parses its events.
func readPage(ctx context.Context, pool *pgxpool.Pool, f store.EventFilter, parse bool) logPage {
	recs, err := store.ListEvents(ctx, pool, f)
	if err != nil || !parse {
		return logPage{recs: recs, err: err}
	}
	parsed := make([]events.Event, len(recs))
	for i, r := range recs {
		ev, err := provider.Parse(r.Kind, r.EventID, r.Payload)
		if err != nil {
			return logPage{err: fmt.Errorf("event %d (%s %s) no longer parses; fix the parser or the configuration first: %w", r.ID, r.Source, r.EventID, err)}
		}
		parsed[i] = ev
	}
	return logPage{recs: recs, parsed: parsed}
}

// applyPage re-applies one page of recorded events in one transaction.
func applyPage(ctx context.Context, pool *pgxpool.Pool, mirror *handlers.Mirror, jobs handlers.JobInserter, p logPage) (Counts, error) {
	var c Counts
	recs, parsed := p.recs, p.parsed
	err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		c = Counts{}
		var (
			writes []store.Write
			wrote  []int
			params []river.InsertManyParams
		)
		for i, r := range recs {
			switch ev := parsed[i]; {
			case handlers.HasEntity(ev):
				writes = append(writes, store.Write{Source: r.Source, Event: ev, Opts: store.ApplyOptions{DeletedAt: r.OccurredAt, Reapply: true}})
				wrote = append(wrote, i)
			case handlers.IsPartial(ev):
				params = append(params, river.InsertManyParams{Args: handlers.ApplyEventArgs{EventID: r.ID, Source: r.Source, Type: string(r.Type), Reapply: true}})
			}
		}
		results, err := mirror.Write(ctx, tx, writes)
		if err != nil {
			return err
		}
		changeOf := make([]*store.Change, len(recs))
		for k, i := range wrote {
			changeOf[i] = &results[k]
		}
		ids, statuses := make([]int64, len(recs)), make([]string, len(recs))
		var changes []handlers.Change
		for i, r := range recs {
			ids[i], statuses[i] = r.ID, handlers.StatusOf(parsed[i], changeOf[i])
			switch statuses[i] {
			case store.StatusApplied:
				c.Applied++
				changes = append(changes, handlers.Change{Source: r.Source, Event: parsed[i], Result: *changeOf[i], EventID: r.ID, ReceivedAt: r.ReceivedAt})
			case store.StatusStale:
				c.Stale++
			}
		}
		if err := store.SetEventStatuses(ctx, tx, ids, statuses); err != nil {
			return err
		}
		if err := mirror.React(ctx, tx, jobs, changes); err != nil {
			return err
		}
		if len(params) > 0 {
			if _, err := jobs.InsertManyTx(ctx, tx, params); err != nil {
				return fmt.Errorf("enqueueing jobs: %w", err)
			}
			c.Enqueued = len(params)
		}
		return nil
	})
	return c, err
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
