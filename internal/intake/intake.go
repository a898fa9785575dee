// Package intake moves events from the JetStream stream into Postgres: for each batch fetched from
// the durable consumer, one transaction records the events in the log (once per source and event
// id) and enqueues a River job for each new one; the messages are acknowledged only after that
// transaction commits.
//
// Crash windows: before the commit nothing happened and JetStream redelivers; after the commit but
// before the ack, the redelivered messages find their events already recorded and enqueue nothing.
// A payload that verified at the receiver but cannot be parsed (or that Postgres refuses) is kept
// as a dead letter and terminated, so it never blocks the stream. Any other failure (Postgres
// unreachable) is retried with backoff for as long as it lasts, and said so in the logs and metrics.
package intake

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"

	"github.com/idpsync/idpsync/internal/events"
	"github.com/idpsync/idpsync/internal/handlers"
	"github.com/idpsync/idpsync/internal/natsbus"
	"github.com/idpsync/idpsync/internal/store"
)

// JobInserter enqueues jobs in the caller's transaction (a *river.Client[pgx.Tx]).
type JobInserter interface {
	InsertManyTx(ctx context.Context, tx pgx.Tx, params []river.InsertManyParams) ([]*rivertype.JobInsertResult, error)
}

// Config configures an Intake.
type Config struct {
	// Bus is the stream to consume. Required.
	Bus *natsbus.Bus
	// Consumer is the durable consumer's configuration. Required.
	Consumer natsbus.ConsumerConfig
	// Pool is the Postgres pool (search_path set to idpsync's schema). Required.
	Pool *pgxpool.Pool
	// Jobs enqueues the mirror jobs. Required.
	Jobs JobInserter
	// KindOf tells the kind of a configured source; events of other sources are dead-lettered
	// (and can be replayed once the source is configured). Required.
	KindOf func(source string) (events.Kind, bool)
	// BatchSize is the most messages recorded per transaction. Defaults to 100.
	BatchSize int
	// Linger is how long a batch waits for more messages once it has one. Defaults to 2ms.
	Linger time.Duration
	// Logger defaults to a logger that discards.
	Logger *slog.Logger
	// Registerer receives the intake's metrics. Nil keeps them unexported.
	Registerer prometheus.Registerer
}

// Intake is the consumer loop.
type Intake struct {
	cfg     Config
	metrics *metrics
}

// New returns an Intake for cfg.
func New(cfg Config) (*Intake, error) {
	if cfg.Bus == nil || cfg.Pool == nil || cfg.Jobs == nil || cfg.KindOf == nil || cfg.Consumer.Durable == "" {
		return nil, errors.New("intake: Bus, Pool, Jobs, KindOf and Consumer.Durable are required")
	}
	if cfg.BatchSize <= 0 {
		cfg.BatchSize = 100
	}
	if cfg.Linger <= 0 {
		cfg.Linger = 2 * time.Millisecond
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Registerer == nil {
		cfg.Registerer = prometheus.NewRegistry()
	}
	m, err := newMetrics(cfg.Registerer)
	if err != nil {
		return nil, err
	}
	return &Intake{cfg: cfg, metrics: m}, nil
}

// Run consumes until ctx is done, then stops fetching, records what it already holds, and returns.
//
// When the consumer stops delivering (its server went away, or came back without it), Run drops
// it and, once the stream is ready again, creates it anew: unacknowledged messages are redelivered
// and recorded once.
func (in *Intake) Run(ctx context.Context) error {
	// Batches in hand are finished even after ctx is done: Drain makes NextBatch return them and
	// then ErrClosed.
	work := context.WithoutCancel(ctx)
	for failures := uint64(0); ; failures++ {
		if failures > 0 {
			select {
			case <-ctx.Done():
				in.cfg.Logger.Info("intake stopped")
				return nil
			case <-time.After(backoff(failures)):
			}
		}
		cons, err := in.consume(ctx)
		if err != nil {
			in.cfg.Logger.Info("intake stopped")
			return nil // shut down before the consumer was reachable
		}
		delivered, err := in.pull(ctx, work, cons)
		if err == nil {
			in.cfg.Logger.Info("intake stopped")
			return nil
		}
		if delivered {
			failures = 0
		}
		in.cfg.Logger.Warn("the stream's consumer stopped delivering; creating it again", "consumer", in.cfg.Consumer.Durable,
			"retry_in", backoff(failures+1).String(), "error", err)
	}
}

// pull records the batches cons delivers until ctx is done and cons drained (nil), or cons fails
// (the error). delivered reports whether it delivered anything.
func (in *Intake) pull(ctx, work context.Context, cons *natsbus.Consumer) (delivered bool, err error) {
	stop := context.AfterFunc(ctx, cons.Drain)
	defer stop()
	defer cons.Stop()
	in.cfg.Logger.Info("intake started", "consumer", in.cfg.Consumer.Durable, "batch_size", in.cfg.BatchSize)
	for {
		batch, err := cons.NextBatch(work, in.cfg.BatchSize, in.cfg.Linger)
		if errors.Is(err, natsbus.ErrClosed) {
			return delivered, nil
		}
		if err != nil {
			return delivered, err
		}
		delivered = true
		in.Process(work, batch)
	}
}

// consume creates (or finds) the durable consumer and starts pulling once the stream is ready,
// retrying with backoff for as long as NATS cannot answer: a worker started during an outage waits
// for it rather than exiting (the bus logs its own attempts; this loop logs only failures to
// create the consumer on a ready stream). It fails only when ctx is done.
func (in *Intake) consume(ctx context.Context) (*natsbus.Consumer, error) {
	for attempt := uint64(1); ; attempt++ {
		if err := in.cfg.Bus.WaitReady(ctx); err != nil {
			return nil, err
		}
		cons, err := in.cfg.Bus.Consume(ctx, in.cfg.Consumer, 2*in.cfg.BatchSize)
		if err == nil {
			return cons, nil
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		delay := backoff(attempt)
		in.cfg.Logger.Warn("cannot reach the stream's consumer yet; retrying", "consumer", in.cfg.Consumer.Durable,
			"attempt", attempt, "retry_in", delay.String(), "error", err)
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(delay):
		}
	}
}

// item is one delivery on its way into Postgres.
type item struct {
	d     *natsbus.Delivery
	event store.NewEvent
	dead  *store.DeadLetter
	// outcome is set once a transaction holding the item committed.
	outcome Outcome
}

// Outcome is what recording did with a delivery.
type Outcome string

// Outcomes, also the outcome label of idpsync_intake_messages_total.
const (
	// Recorded: a new event in the log (and a job, when it changes the mirror).
	Recorded Outcome = "recorded"
	// Duplicate: the log already held the event; nothing was enqueued.
	Duplicate Outcome = "duplicate"
	// DeadLettered: the delivery cannot be recorded and was kept in dead_letters.
	DeadLettered Outcome = "dead_lettered"
)

// Process records one batch and settles every message of it: ack, term (dead letter) or nak.
func (in *Intake) Process(ctx context.Context, batch []*natsbus.Delivery) {
	items, err := in.record(ctx, batch)
	if err != nil {
		in.retryLater(batch, err)
		return
	}
	in.settle(items)
}

// Record records batch as Process does but settles nothing: for replays, which read the stream
// or the dead letters instead of the consumer. It returns each delivery's outcome, in order.
func (in *Intake) Record(ctx context.Context, batch []*natsbus.Delivery) ([]Outcome, error) {
	items, err := in.record(ctx, batch)
	if err != nil {
		return nil, err
	}
	out := make([]Outcome, len(items))
	for i, it := range items {
		out[i] = it.outcome
		in.count(it)
	}
	return out, nil
}

// record runs the batch's transaction. When Postgres refuses a value of one delivery, it finds
// that delivery by recording them one by one and dead-letters it. The error is a transient
// failure: nothing of the batch can be assumed recorded.
func (in *Intake) record(ctx context.Context, batch []*natsbus.Delivery) ([]*item, error) {
	items := make([]*item, len(batch))
	for i, d := range batch {
		items[i] = in.prepare(d)
	}
	err := in.recordTx(ctx, items)
	if err == nil || !store.IsDataError(err) {
		return items, err
	}
	for _, it := range items {
		err := in.recordTx(ctx, []*item{it})
		if err != nil && store.IsDataError(err) && it.dead == nil {
			it.dead = in.deadLetter(it.d, it.d.Event, "postgres refused the payload: "+err.Error())
			err = in.recordTx(ctx, []*item{it})
		}
		if err != nil {
			return nil, err
		}
	}
	return items, nil
}

// prepare parses a delivery into an event row, or a dead letter when it cannot be.
func (in *Intake) prepare(d *natsbus.Delivery) *item {
	it := &item{d: d}
	ev := d.Event
	if d.DecodeErr != nil {
		it.dead = in.deadLetter(d, nil, d.DecodeErr.Error())
		return it
	}
	kind, ok := in.cfg.KindOf(ev.Source)
	if !ok {
		it.dead = in.deadLetter(d, ev, fmt.Sprintf("source %q is not in the worker's configuration", ev.Source))
		return it
	}
	parsed, err := events.Parse(kind, ev.EventID, ev.Body)
	if err != nil {
		it.dead = in.deadLetter(d, ev, err.Error())
		return it
	}
	status := store.StatusPending
	switch parsed.Type.Entity() {
	case "":
		status = store.StatusIgnored
	case events.EntitySession:
		status = store.StatusRecorded
	}
	it.event = store.NewEvent{
		Source: ev.Source, EventID: ev.EventID, Kind: kind, Type: parsed.Type, SourceType: parsed.SourceType,
		EntityID: store.EntityID(parsed), OccurredAt: parsed.OccurredAt, ReceivedAt: ev.ReceivedAt,
		StreamSeq: int64(d.StreamSeq), Payload: ev.Body, Status: status,
	}
	return it
}

func (in *Intake) deadLetter(d *natsbus.Delivery, ev *natsbus.Event, reason string) *store.DeadLetter {
	dl := &store.DeadLetter{Subject: d.Subject, StreamSeq: int64(d.StreamSeq), Reason: reason, Payload: d.Body(), Headers: d.Header()}
	if ev != nil {
		dl.Source, dl.EventID, dl.ReceivedAt = ev.Source, ev.EventID, ev.ReceivedAt
	} else {
		dl.Source, dl.EventID = "unknown", "seq:"+strconv.FormatUint(d.StreamSeq, 10)
	}
	return dl
}

// recordTx runs one transaction for items.
func (in *Intake) recordTx(ctx context.Context, items []*item) error {
	ctx, cancel := context.WithTimeout(ctx, in.cfg.Consumer.AckWait)
	defer cancel()
	return pgx.BeginFunc(ctx, in.cfg.Pool, func(tx pgx.Tx) error {
		var (
			evs   []store.NewEvent
			owner []*item
		)
		for _, it := range items {
			if it.dead != nil {
				if _, err := store.RecordDeadLetter(ctx, tx, *it.dead); err != nil {
					return err
				}
				it.outcome = DeadLettered
				continue
			}
			evs = append(evs, it.event)
			owner = append(owner, it)
		}
		ids, err := store.RecordEvents(ctx, tx, evs)
		if err != nil {
			return err
		}
		var jobs []river.InsertManyParams
		for i, id := range ids {
			e := owner[i].event
			if id == 0 || e.Status != store.StatusPending {
				continue
			}
			jobs = append(jobs, river.InsertManyParams{Args: handlers.ApplyEventArgs{EventID: id, Source: e.Source, Type: string(e.Type)}})
		}
		if len(jobs) > 0 {
			if _, err := in.cfg.Jobs.InsertManyTx(ctx, tx, jobs); err != nil {
				return fmt.Errorf("enqueueing jobs: %w", err)
			}
		}
		for i, id := range ids {
			owner[i].outcome = Recorded
			if id == 0 {
				owner[i].outcome = Duplicate
			}
		}
		return nil
	})
}

// settle acknowledges what was recorded and terminates what was dead-lettered. It runs after the
// commit; a lost ack only means a redelivery that will find the event recorded.
func (in *Intake) settle(items []*item) {
	for _, it := range items {
		in.count(it)
		if it.dead != nil {
			if err := it.d.Term(truncate(it.dead.Reason, 200)); err != nil {
				in.cfg.Logger.Warn("terminating a dead-lettered message", "stream_seq", it.d.StreamSeq, "error", err)
			}
			continue
		}
		if err := it.d.Ack(); err != nil {
			in.cfg.Logger.Warn("acknowledging a recorded message", "stream_seq", it.d.StreamSeq, "error", err)
		}
	}
}

// count updates the metrics and logs dead letters.
func (in *Intake) count(it *item) {
	if it.dead != nil {
		in.metrics.messages.WithLabelValues(it.dead.Source, string(DeadLettered)).Inc()
		in.cfg.Logger.Warn("dead-lettered a delivery", "source", it.dead.Source, "event_id", it.dead.EventID,
			"stream_seq", it.d.StreamSeq, "reason", it.dead.Reason)
		return
	}
	in.metrics.messages.WithLabelValues(it.event.Source, string(it.outcome)).Inc()
	if it.outcome == Recorded {
		in.metrics.lag.Observe(time.Since(it.event.ReceivedAt).Seconds())
	}
}

// retryLater hands the messages back to JetStream with a backoff that grows with the deliveries.
func (in *Intake) retryLater(batch []*natsbus.Delivery, err error) {
	in.metrics.failures.Inc()
	var delivered uint64
	for _, d := range batch {
		delivered = max(delivered, d.NumDelivered)
	}
	delay := backoff(delivered)
	in.cfg.Logger.Error("recording events failed; JetStream will redeliver them", "messages", len(batch),
		"delivered", delivered, "retry_in", delay.String(), "error", err)
	for _, d := range batch {
		_ = d.Nak(delay)
	}
}

// backoff is 1s, 2s, 4s … up to a minute.
func backoff(delivered uint64) time.Duration {
	if delivered < 1 {
		delivered = 1
	}
	return time.Second << min(delivered-1, 6) // 64s at most
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}
