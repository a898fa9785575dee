package receiver

import (
	"context"
	"net/http"
	"strings"

	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/idpsync/idpsync/internal/logsafe"
	"github.com/idpsync/idpsync/internal/natsbus"
	"github.com/idpsync/idpsync/internal/telemetry"
)

// tracerName names the receiver's spans' instrumentation scope.
const tracerName = "github.com/idpsync/idpsync/internal/receiver"

// webhookRoute is the route of the webhook endpoint, the only one traced.
const webhookRoute = "/webhooks/{source}"

// PublishSpanName names the span of a delivery's publish to JetStream.
const PublishSpanName = "jetstream.publish"

// traceDeliveries wraps the webhook endpoint in otelhttp's server instrumentation: a span per
// delivery named "POST /webhooks/{source}", with the HTTP semantic conventions' attributes (method,
// route, path without query, status, body sizes, peer and client address, user agent; no header
// but the trace context is read) and continuing the trace of a well-formed traceparent the IdP
// sent. The health checks are not traced. Its metrics go nowhere: the receiver has its own.
func traceDeliveries(next http.Handler, tp trace.TracerProvider) http.Handler {
	return otelhttp.NewHandler(next, "webhook",
		otelhttp.WithTracerProvider(tp),
		otelhttp.WithPropagators(propagation.TraceContext{}),
		otelhttp.WithMeterProvider(metricnoop.NewMeterProvider()),
		otelhttp.WithFilter(func(r *http.Request) bool { return strings.HasPrefix(r.URL.Path, "/webhooks/") }),
	)
}

// annotate adds what the receiver knows of a delivery to its server span: the source (when it is
// a configured one), the event (when it was read and its id checked) and the outcome.
func annotate(ctx context.Context, source string, ev *natsbus.Event, outcome string) {
	span := trace.SpanFromContext(ctx)
	if !span.IsRecording() {
		return
	}
	attrs := make([]attribute.KeyValue, 0, 5)
	attrs = append(attrs, attribute.String("http.route", webhookRoute)) // otelhttp reads the route before the mux sets it
	if source != "" {
		attrs = append(attrs, telemetry.AttrSource.String(source))
	}
	if ev != nil {
		attrs = append(attrs, telemetry.AttrEventID.String(ev.EventID), telemetry.AttrEventType.String(eventType(ev)))
	}
	span.SetAttributes(append(attrs, telemetry.AttrOutcome.String(outcome))...)
}

// eventType is the event's canonical type, else the IdP's own (bounded, like a log value).
func eventType(ev *natsbus.Event) string {
	if ev.Type != "" {
		return string(ev.Type)
	}
	return logsafe.Value(ev.SourceType)
}

// publishTraced publishes ev under a producer span, child of the delivery's span, whose context
// is the traceparent the message carries: the worker's spans continue the trace from it.
func (h *Handler) publishTraced(ctx context.Context, ev *natsbus.Event) (natsbus.PubAck, error) {
	ctx, span := h.tracer.Start(ctx, PublishSpanName, trace.WithSpanKind(trace.SpanKindProducer),
		trace.WithAttributes(
			attribute.String("messaging.system", "nats"),
			attribute.String("messaging.operation.type", "send"),
			attribute.String("messaging.message.id", natsbus.MsgID(ev.Source, ev.EventID)),
			telemetry.AttrSource.String(ev.Source),
			telemetry.AttrEventID.String(ev.EventID),
		))
	defer span.End()
	ev.Traceparent = telemetry.Traceparent(span.SpanContext())
	ack, err := h.cfg.Publisher.Publish(ctx, ev)
	if err != nil {
		span.SetStatus(codes.Error, "jetstream did not acknowledge the message")
		return ack, err
	}
	span.SetAttributes(telemetry.AttrStreamSeq.Int64(int64(ack.Sequence)), telemetry.AttrDuplicate.Bool(ack.Duplicate))
	return ack, nil
}
