package worker

import (
	"context"
	"net/http"
	"net/url"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
	"github.com/riverqueue/rivercontrib/otelriver"
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel/attribute"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/trace"

	"github.com/idpsync/idpsync/internal/idpclient"
	"github.com/idpsync/idpsync/internal/telemetry"
)

// tracingMiddleware is the River middleware of a traced worker, outermost first: the trace
// context of jobs (jobTrace), then otelriver's span around each job ("river.work/<kind>").
func tracingMiddleware(tp trace.TracerProvider) []rivertype.Middleware {
	spans := otelriver.NewMiddleware(&otelriver.MiddlewareConfig{
		TracerProvider:              tp,
		MeterProvider:               metricnoop.NewMeterProvider(), // the worker's metrics are Prometheus's
		EnableWorkSpanJobKindSuffix: true,
		// Propagation is jobTrace's: otelriver's would stamp every job of a batch insert with
		// the one span of the insert, and link a job's span to it rather than continue it.
		EnableTracePropagation: false,
	})
	return []rivertype.Middleware{&jobTrace{}, &workSpans{spans: spans}}
}

// jobTrace carries trace context through River jobs. At insert, a job whose metadata has no
// traceparent gets the one of the inserting context's span (so a revocation a change triggers
// continues the trace of the webhook that made it); the intake, which inserts the jobs of many
// webhooks at once, stamps each with its own. At work, a job's traceparent becomes the parent of
// its span: an apply_event job is a child of the intake's span of its webhook, in the same trace.
type jobTrace struct{ river.MiddlewareDefaults }

var (
	_ rivertype.JobInsertMiddleware = (*jobTrace)(nil)
	_ rivertype.WorkerMiddleware    = (*jobTrace)(nil)
)

// InsertMany implements rivertype.JobInsertMiddleware.
func (*jobTrace) InsertMany(ctx context.Context, params []*rivertype.JobInsertParams, doInner func(context.Context) ([]*rivertype.JobInsertResult, error)) ([]*rivertype.JobInsertResult, error) {
	if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
		for _, p := range params {
			if md, err := telemetry.WithJobTraceparent(p.Metadata, sc); err == nil {
				p.Metadata = md // metadata that is not a JSON object stays as it is: tracing never fails an insert
			}
		}
	}
	return doInner(ctx)
}

// Work implements rivertype.WorkerMiddleware.
func (*jobTrace) Work(ctx context.Context, job *rivertype.JobRow, doInner func(context.Context) error) error {
	return doInner(telemetry.ContextWithTraceparent(ctx, telemetry.JobTraceparent(job.Metadata)))
}

// workSpans is otelriver's middleware for work only: a span per job named "river.work/<kind>",
// with the job's id, kind, queue, attempt, priority, tags and status (never its args). Its insert
// spans are left out: the intake's batch inserts belong to many traces at once.
type workSpans struct {
	river.MiddlewareDefaults
	spans *otelriver.Middleware
}

var _ rivertype.WorkerMiddleware = (*workSpans)(nil)

// Work implements rivertype.WorkerMiddleware.
func (w *workSpans) Work(ctx context.Context, job *rivertype.JobRow, doInner func(context.Context) error) error {
	return w.spans.Work(ctx, job, doInner)
}

// traceIdPCalls returns base wrapped in otelhttp's client instrumentation for the management API
// of source, of the given kind: a span per HTTP request named "<kind> <operation>" (the
// operation the job named with idpclient.WithOperation, e.g. "zitadel get_user"; else the HTTP
// method), with the HTTP semantic conventions' attributes, idpsync.source and idpsync.operation.
// otelhttp records no header (so no credential) and strips user info from url.full; the query's
// values are redacted here too, because some calls filter by a user's email. The W3C
// traceparent of the span is sent to the IdP, as otelhttp does.
func traceIdPCalls(base http.RoundTripper, tp trace.TracerProvider, source, kind string) http.RoundTripper {
	if base == nil {
		base = http.DefaultTransport
	}
	return otelhttp.NewTransport(redactedURL{base},
		otelhttp.WithTracerProvider(tp),
		otelhttp.WithPropagators(telemetry.Propagator),
		otelhttp.WithMeterProvider(metricnoop.NewMeterProvider()),
		otelhttp.WithSpanNameFormatter(func(_ string, r *http.Request) string {
			op := idpclient.Operation(r.Context())
			if op == "" {
				op = r.Method
			}
			return kind + " " + op
		}),
		otelhttp.WithSpanOptions(trace.WithAttributes(telemetry.AttrSource.String(source))),
	)
}

// redactedURL sits under otelhttp's transport and replaces the url.full its span recorded with
// the request's URL whose query values read "REDACTED", and adds the operation's name.
type redactedURL struct{ base http.RoundTripper }

func (t redactedURL) RoundTrip(r *http.Request) (*http.Response, error) {
	if span := trace.SpanFromContext(r.Context()); span.IsRecording() {
		attrs := []attribute.KeyValue{attribute.String("url.full", redactURL(r.URL))}
		if op := idpclient.Operation(r.Context()); op != "" {
			attrs = append(attrs, telemetry.AttrOperation.String(op))
		}
		span.SetAttributes(attrs...)
	}
	return t.base.RoundTrip(r)
}

// redactURL is u without user info, fragment and query values: "https://api.clerk.com/v1/users?
// limit=REDACTED&offset=REDACTED".
func redactURL(u *url.URL) string {
	c := *u
	c.User, c.Fragment, c.RawFragment = nil, "", ""
	if c.RawQuery != "" {
		q := c.Query()
		for k, vs := range q {
			for i := range vs {
				vs[i] = "REDACTED"
			}
			q[k] = vs
		}
		c.RawQuery = q.Encode()
	}
	return c.String()
}
