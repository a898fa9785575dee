package intake

import (
	"context"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/idpsync/idpsync/internal/handlers"
	"github.com/idpsync/idpsync/internal/telemetry"
)

// Span names of the intake. A batch holds deliveries of many traces (one per webhook), so there
// is no batch span: each delivery gets its own span, a child of the span its message's
// traceparent names (the receiver's publish), covering the transaction that recorded it; its
// mirror write and event log insert are child spans timed by the round trips that made them for
// the whole batch. The jobs it enqueues and the changes hooks react to continue its trace.
const (
	RecordSpanName   = "intake.record"
	EventLogSpanName = "eventlog.insert"
)

// tracerName names the instrumentation scope of the intake's spans.
const tracerName = "github.com/idpsync/idpsync/internal/intake"

// redelivered is the outcome of a delivery handed back to JetStream (Postgres unavailable or
// refusing it): its next delivery gets a span of its own.
const redelivered Outcome = "redelivered"

// Steps of a transaction the spans time.
const (
	mirrorStart = iota
	mirrorEnd
	logStart
	logEnd
	steps
)

// txTrace is when a transaction's round trips ran; nil when tracing is off.
type txTrace struct {
	at     [steps]time.Time
	writes int
}

func (t *txTrace) mark(step int) {
	if t != nil {
		t.at[step] = time.Now()
	}
}

func (t *txTrace) wrote(n int) {
	if t != nil {
		t.writes = n
	}
}

// startSpans starts the span of each delivery of a batch.
func (in *Intake) startSpans(ctx context.Context, items []*item) {
	if in.tracer == nil {
		return
	}
	for _, it := range items {
		parent := ctx
		attrs := []attribute.KeyValue{
			attribute.String("messaging.system", "nats"),
			attribute.String("messaging.operation.type", "process"),
			attribute.Int("messaging.batch.message_count", len(items)),
			telemetry.AttrStreamSeq.Int64(int64(it.d.StreamSeq)),
			attribute.Int64("idpsync.delivered", int64(it.d.NumDelivered)),
		}
		if ev := it.d.Event; ev != nil {
			parent = telemetry.ContextWithTraceparent(ctx, ev.Traceparent)
			attrs = append(attrs, telemetry.AttrSource.String(ev.Source), telemetry.AttrEventID.String(ev.EventID))
		}
		if it.dead == nil {
			typ := string(it.event.Type)
			if typ == "" {
				typ = it.event.SourceType
			}
			attrs = append(attrs, telemetry.AttrEventType.String(typ))
		}
		_, it.span = in.tracer.Start(parent, RecordSpanName, trace.WithSpanKind(trace.SpanKindConsumer), trace.WithAttributes(attrs...))
	}
}

// endSpans ends the spans of items with their outcome: for those recorded (or found recorded),
// their status in the event log and the child spans of the writes that recorded them.
func (in *Intake) endSpans(items []*item, outcome Outcome) {
	for _, it := range items {
		span := it.span
		if span == nil {
			continue
		}
		it.span = nil
		span.SetAttributes(telemetry.AttrOutcome.String(string(outcome)))
		switch {
		case outcome == redelivered: // why is logged; a span's status names a class, never an error's text
			span.SetStatus(codes.Error, "not recorded; handed back to jetstream for redelivery")
		case it.dead != nil:
			span.SetStatus(codes.Error, "dead-lettered")
		default:
			if outcome == Recorded {
				span.SetAttributes(telemetry.AttrStatus.String(it.event.Status))
			}
			writeSpans(span, it)
		}
		span.End()
	}
}

// writeSpans records, as children of the delivery's span, the round trips of the committed
// transaction that wrote its entity and its event log row.
func writeSpans(parent trace.Span, it *item) {
	tt := it.tx
	if tt == nil || tt.at[logEnd].IsZero() {
		return
	}
	ctx := trace.ContextWithSpan(context.Background(), parent)
	tracer := parent.TracerProvider().Tracer(tracerName)
	if it.change != nil && !tt.at[mirrorEnd].IsZero() {
		_, span := tracer.Start(ctx, handlers.MirrorWriteSpanName, trace.WithTimestamp(tt.at[mirrorStart]),
			trace.WithAttributes(telemetry.AttrWrites.Int(tt.writes), telemetry.AttrApplied.Bool(it.change.Applied),
				telemetry.AttrEntity.String(string(it.parsed.Type.Entity()))))
		span.End(trace.WithTimestamp(tt.at[mirrorEnd]))
	}
	_, span := tracer.Start(ctx, EventLogSpanName, trace.WithTimestamp(tt.at[logStart]))
	span.End(trace.WithTimestamp(tt.at[logEnd]))
}
