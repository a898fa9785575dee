// Package intake moves events from the JetStream stream into Postgres: for each batch fetched from
// the durable consumer, one transaction records the events in the log (once per source and event
// id), applies the entities they carry to the mirror (version-guarded, in per-entity version
// order), lets the change hooks (revocations) react in the same transaction, and enqueues a River
// job for the events whose entity must first be read from the IdP; the messages are acknowledged
// only after that transaction commits.
//
// Crash windows: before the commit nothing happened and JetStream redelivers; after the commit but
// before the ack, the redelivered messages find their events already recorded (the mirror writes
// are stale, nothing reacts, nothing is enqueued).
//
// Nothing one message holds can stop the intake. A payload that verified at the receiver but
// cannot be parsed is kept as a dead letter and terminated. When Postgres refuses a batch while
// being reachable, its messages are recorded one by one: the one it refuses is retried on its next
// deliveries and, after a bounded number of them (at once for a value Postgres can never take), it
// is parked as a dead letter stored so that Postgres always accepts it, while the rest of the batch
// is recorded. When Postgres is unreachable, the batch is handed back to JetStream with backoff for
// as long as the outage lasts; the log says so once when it starts and once when it ends.
package intake

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/riverqueue/river"
	"go.opentelemetry.io/otel/trace"

	"github.com/idpsync/idpsync/internal/events"
	"github.com/idpsync/idpsync/internal/handlers"
	"github.com/idpsync/idpsync/internal/logsafe"
	"github.com/idpsync/idpsync/internal/natsbus"
	"github.com/idpsync/idpsync/internal/provider"
	"github.com/idpsync/idpsync/internal/store"
	"github.com/idpsync/idpsync/internal/telemetry"
)

// Config configures an Intake.
type Config struct {
	// Bus is the stream to consume. Required.
	Bus *natsbus.Bus
	// Consumer is the durable consumer's configuration. Required.
	Consumer natsbus.ConsumerConfig
	// Pool is the Postgres pool (search_path set to idpsync's schema). Required.
	Pool *pgxpool.Pool
	// Jobs enqueues jobs in the intake's transactions. Required.
	Jobs handlers.JobInserter
	// Mirror writes the events' entities and runs the change hooks. Required.
	Mirror *handlers.Mirror
	// KindOf tells the kind of a configured source; events of other sources are dead-lettered
	// (and can be replayed once the source is configured). Required.
	KindOf func(source string) (events.Kind, bool)
	// BatchSize is the most messages recorded per transaction. Required.
	BatchSize int
	// Linger is how long a batch waits for more messages once it has one. Defaults to 2ms.
	Linger time.Duration
	// Logger defaults to a logger that discards.
	Logger *slog.Logger
	// Registerer receives the intake's metrics. Nil keeps them unexported.
	Registerer prometheus.Registerer
	// TracerProvider traces each delivery: a span (RecordSpanName) continuing the trace its
	// message's traceparent names, with children for its writes, and the jobs it enqueues
	// continuing it. Nil turns tracing off: no span, no cost.
	TracerProvider trace.TracerProvider
}

// ParkAfter is how many deliveries of a message Postgres keeps refusing (while taking the rest of
// its batch) are tried before the message is parked as a dead letter.
const ParkAfter = 3

// Intake is the consumer loop.
type Intake struct {
	cfg     Config
	metrics *metrics
	tracer  trace.Tracer // nil when tracing is off

	// outage tracks a Postgres outage, so that it is logged when it starts and when it ends.
	mu          sync.Mutex
	outageSince time.Time
	outageFails int
}

// New returns an Intake for cfg.
func New(cfg Config) (*Intake, error) {
	if cfg.Bus == nil || cfg.Pool == nil || cfg.Jobs == nil || cfg.Mirror == nil || cfg.KindOf == nil || cfg.Consumer.Durable == "" || cfg.BatchSize <= 0 {
		return nil, errors.New("intake: Bus, Pool, Jobs, Mirror, KindOf, Consumer.Durable and BatchSize are required")
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
	in := &Intake{cfg: cfg, metrics: m}
	if cfg.TracerProvider != nil {
		in.tracer = cfg.TracerProvider.Tracer(tracerName)
	}
	return in, nil
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
	d      *natsbus.Delivery
	parsed events.Event
	event  store.NewEvent
	dead   *store.DeadLetter
	// outcome is set once a transaction holding the item committed.
	outcome Outcome

	// With tracing on: the delivery's span, and what the last transaction that held the item
	// did, for its child spans.
	span   trace.Span
	tx     *txTrace
	change *store.Change
}

// Outcome is what recording did with a delivery.
type Outcome string

// Outcomes, also the outcome label of idpsync_intake_messages_total.
const (
	// Recorded: a new event in the log (applied to the mirror, or with a job to apply it).
	Recorded Outcome = "recorded"
	// Duplicate: the log already held the event; nothing changed and nothing was enqueued.
	Duplicate Outcome = "duplicate"
	// DeadLettered: the delivery cannot be recorded and was kept in dead_letters.
	DeadLettered Outcome = "dead_lettered"
)

// Process records one batch and settles every message of it: ack, term (dead letter) or nak.
func (in *Intake) Process(ctx context.Context, batch []*natsbus.Delivery) {
	items := make([]*item, len(batch))
	for i, d := range batch {
		items[i] = in.prepare(d)
	}
	in.startSpans(ctx, items)
	err := in.recordNew(ctx, items)
	switch {
	case err == nil:
		in.recovered()
		in.settle(items)
	case in.transient(ctx, err):
		in.unavailable(items, err)
	default:
		in.recovered()
		in.isolate(ctx, items, err, true)
	}
}

// Record records batch as Process does but settles nothing: for replays, which read the stream
// or the dead letters instead of the consumer. It returns each delivery's outcome, in order. A
// delivery Postgres refuses is dead-lettered at once.
func (in *Intake) Record(ctx context.Context, batch []*natsbus.Delivery) ([]Outcome, error) {
	items := make([]*item, len(batch))
	for i, d := range batch {
		items[i] = in.prepare(d)
	}
	in.startSpans(ctx, items)
	err := in.recordTx(ctx, items)
	switch {
	case err == nil:
	case in.transient(ctx, err):
		in.endSpans(items, redelivered)
		return nil, err
	default:
		if err := in.isolate(ctx, items, err, false); err != nil {
			in.endSpans(items, redelivered)
			return nil, err
		}
	}
	out := make([]Outcome, len(items))
	for i, it := range items {
		out[i] = it.outcome
		in.count(it)
	}
	return out, nil
}

// isolate records the items one by one after Postgres refused their batch while reachable. An
// item it still refuses is parked as a dead letter when its value can never be taken, when it was
// delivered ParkAfter times, or when consumed is false (a replay); else it is handed back for a
// later delivery. With consumed, every item is settled; the error is a transient failure that
// stopped the isolation (the items not settled were handed back).
func (in *Intake) isolate(ctx context.Context, items []*item, batchErr error, consumed bool) error {
	in.cfg.Logger.Warn("postgres refused a batch; recording its messages one by one", "messages", len(items), "error", batchErr)
	for i, it := range items {
		err := in.recordTx(ctx, []*item{it})
		if err == nil {
			if consumed {
				in.settle([]*item{it})
			}
			continue
		}
		if in.transient(ctx, err) {
			if consumed {
				in.unavailable(items[i:], err)
			}
			return err
		}
		if it.dead == nil && (store.IsDataError(err) || !consumed || it.d.NumDelivered >= ParkAfter) {
			it.dead = in.deadLetter(it.d, it.d.Event, "postgres refused it: "+err.Error())
			err = in.recordTx(ctx, []*item{it})
		}
		switch {
		case err == nil:
			if consumed {
				in.settle([]*item{it})
			}
		case !consumed:
			return err
		default:
			delay := backoff(it.d.NumDelivered)
			in.cfg.Logger.Warn("postgres refused a message; it will be delivered again, and parked as a dead letter if refused again",
				"stream_seq", it.d.StreamSeq, "delivered", it.d.NumDelivered, "park_after", ParkAfter, "retry_in", delay.String(), "error", err)
			_ = it.d.Nak(delay)
			in.endSpans([]*item{it}, redelivered)
		}
	}
	return nil
}

// transient reports whether err means Postgres could not take any work now: a failure
// store.IsTransient knows, or one it does not know while Postgres does not answer a ping.
func (in *Intake) transient(ctx context.Context, err error) bool {
	if store.IsTransient(err) {
		return true
	}
	if store.IsPostgresError(err) {
		return false
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	return in.cfg.Pool.Ping(ctx) != nil
}

// prepare parses a delivery into an event row, or a dead letter when it cannot be.
func (in *Intake) prepare(d *natsbus.Delivery) *item {
	it := &item{d: d}
	ev := d.Event
	if d.DecodeErr != nil {
		it.dead = in.deadLetter(d, nil, d.DecodeErr.Error())
		return it
	}
	if err := events.CheckID(ev.EventID); err != nil {
		it.dead = in.deadLetter(d, ev, "the event id cannot be recorded: "+err.Error())
		return it
	}
	kind, ok := in.cfg.KindOf(ev.Source)
	if !ok {
		it.dead = in.deadLetter(d, ev, fmt.Sprintf("source %q is not in the worker's configuration", ev.Source))
		return it
	}
	parsed, err := provider.Parse(kind, ev.EventID, ev.Body)
	if err != nil {
		it.dead = in.deadLetter(d, ev, err.Error())
		return it
	}
	it.parsed = parsed
	it.event = store.NewEvent{
		Source: ev.Source, EventID: ev.EventID, Kind: kind, Type: parsed.Type, SourceType: parsed.SourceType,
		EntityID: store.EntityID(parsed), OccurredAt: parsed.OccurredAt, ReceivedAt: ev.ReceivedAt,
		StreamSeq: int64(d.StreamSeq), Payload: ev.Body,
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

// recordNew records items expecting their events to be new to the log, which deliveries from the
// consumer almost always are: the log's insert then skips no conflicts, which costs Postgres
// less. When one was recorded already (a redelivery after a commit whose ack was lost, a copy
// the stream's deduplication window did not catch), that transaction is rolled back and
// recordTx runs again, skipping them.
func (in *Intake) recordNew(ctx context.Context, items []*item) error {
	err := in.recordTxWith(ctx, items, store.RecordNewEvents)
	if errors.Is(err, store.ErrAlreadyRecorded) {
		err = in.recordTx(ctx, items)
	}
	return err
}

// recordTx runs one transaction for items: dead letters, mirror writes, the event log, the
// hooks' reactions and the jobs of the events to read from the IdP.
func (in *Intake) recordTx(ctx context.Context, items []*item) error {
	return in.recordTxWith(ctx, items, store.RecordEvents)
}

// recordTxWith is recordTx recording the events with record.
func (in *Intake) recordTxWith(ctx context.Context, items []*item, record func(context.Context, store.DBTX, []store.NewEvent) ([]int64, error)) error {
	ctx, cancel := context.WithTimeout(ctx, in.cfg.Consumer.AckWait)
	defer cancel()
	var tt *txTrace
	if in.tracer != nil {
		tt = &txTrace{}
	}
	return pgx.BeginFunc(ctx, in.cfg.Pool, func(tx pgx.Tx) error {
		var (
			live   []*item
			writes []store.Write
			wrote  []int // index in live of each write
		)
		for _, it := range items {
			if it.dead != nil {
				if _, err := store.RecordDeadLetter(ctx, tx, *it.dead); err != nil {
					return err
				}
				it.outcome = DeadLettered
				continue
			}
			if handlers.HasEntity(it.parsed) {
				writes = append(writes, store.Write{Source: it.event.Source, Event: it.parsed,
					Opts: store.ApplyOptions{DeletedAt: it.event.OccurredAt}})
				wrote = append(wrote, len(live))
			}
			live = append(live, it)
		}
		tt.mark(mirrorStart)
		results, err := in.cfg.Mirror.Write(ctx, tx, writes)
		if err != nil {
			return err
		}
		tt.mark(mirrorEnd)
		tt.wrote(len(writes))
		changeOf := make([]*store.Change, len(live))
		for i, j := range wrote {
			changeOf[j] = &results[i]
		}
		evs := make([]store.NewEvent, len(live))
		for i, it := range live {
			it.event.Status = handlers.StatusOf(it.parsed, changeOf[i])
			evs[i] = it.event
			if tt != nil {
				it.tx, it.change = tt, changeOf[i]
			}
		}
		tt.mark(logStart)
		ids, err := record(ctx, tx, evs)
		if err != nil {
			return err
		}
		tt.mark(logEnd)
		var (
			jobs    []river.InsertManyParams
			changes []handlers.Change
		)
		for i, id := range ids {
			it := live[i]
			it.outcome = Recorded
			if id == 0 {
				it.outcome = Duplicate // already in the log: its effects happened when it was recorded
				continue
			}
			e := it.event
			var sc trace.SpanContext // the delivery's span: its jobs continue its trace
			if it.span != nil {
				sc = it.span.SpanContext()
			}
			if e.Status == store.StatusPending {
				job := river.InsertManyParams{Args: handlers.ApplyEventArgs{EventID: id, Source: e.Source, Type: string(e.Type)}}
				if md := telemetry.JobMetadata(sc); md != nil {
					job.InsertOpts = &river.InsertOpts{Metadata: md}
				}
				jobs = append(jobs, job)
			}
			if c := changeOf[i]; c != nil && c.Applied {
				changes = append(changes, handlers.Change{Source: e.Source, Event: it.parsed, Result: *c, EventID: id, ReceivedAt: e.ReceivedAt, Trace: sc})
			}
		}
		if err := in.cfg.Mirror.React(ctx, tx, in.cfg.Jobs, changes); err != nil {
			return err
		}
		if len(jobs) > 0 {
			if _, err := in.cfg.Jobs.InsertManyTx(ctx, tx, jobs); err != nil {
				return fmt.Errorf("enqueueing jobs: %w", err)
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
			if err := it.d.Term(logsafe.Value(it.dead.Reason)); err != nil {
				in.cfg.Logger.Warn("terminating a dead-lettered message", "stream_seq", it.d.StreamSeq, "error", err)
			}
			continue
		}
		if err := it.d.Ack(); err != nil {
			in.cfg.Logger.Warn("acknowledging a recorded message", "stream_seq", it.d.StreamSeq, "error", err)
		}
	}
}

// count updates the metrics, logs dead letters and ends the item's span, once it is settled.
func (in *Intake) count(it *item) {
	in.endSpans([]*item{it}, it.outcome)
	if it.dead != nil {
		in.metrics.messages.WithLabelValues(it.dead.Source, string(DeadLettered)).Inc()
		in.cfg.Logger.Warn("dead-lettered a delivery", "source", logsafe.Value(it.dead.Source), "event_id", logsafe.Value(it.dead.EventID),
			"stream_seq", it.d.StreamSeq, "reason", logsafe.Value(it.dead.Reason))
		return
	}
	in.metrics.messages.WithLabelValues(it.event.Source, string(it.outcome)).Inc()
	if it.outcome == Recorded {
		in.metrics.lag.Observe(time.Since(it.event.ReceivedAt).Seconds())
	}
}

// unavailable hands the items back to JetStream with a backoff that grows with their deliveries.
// The first failure of an outage is logged as an error; the following ones only counted, until
// recovered logs the outage's end.
func (in *Intake) unavailable(items []*item, err error) {
	in.metrics.failures.Inc()
	var delivered uint64
	for _, it := range items {
		delivered = max(delivered, it.d.NumDelivered)
	}
	delay := backoff(delivered)
	in.mu.Lock()
	first := in.outageSince.IsZero()
	if first {
		in.outageSince = time.Now()
	}
	in.outageFails++
	in.mu.Unlock()
	if first {
		in.cfg.Logger.Error("postgres is unavailable; deliveries are handed back to JetStream for redelivery until it returns",
			"messages", len(items), "retry_in", delay.String(), "error", err)
	} else {
		in.cfg.Logger.Debug("postgres still unavailable", "messages", len(items), "retry_in", delay.String(), "error", err)
	}
	for _, it := range items {
		_ = it.d.Nak(delay)
	}
	in.endSpans(items, redelivered)
}

// recovered ends an outage, if there was one, with one line saying how long it lasted.
func (in *Intake) recovered() {
	in.mu.Lock()
	since, fails := in.outageSince, in.outageFails
	in.outageSince, in.outageFails = time.Time{}, 0
	in.mu.Unlock()
	if !since.IsZero() {
		in.cfg.Logger.Info("postgres is available again; recording resumed", "outage", time.Since(since).Round(time.Millisecond).String(),
			"failed_batches", fails)
	}
}

// backoff is 1s, 2s, 4s … up to a minute.
func backoff(delivered uint64) time.Duration {
	if delivered < 1 {
		delivered = 1
	}
	return time.Second << min(delivered-1, 6) // 64s at most
}
