package worker

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/riverqueue/river/rivertype"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/idpsync/idpsync/internal/idpclient"
	"github.com/idpsync/idpsync/internal/telemetry"
)

// A call to an IdP is a client span named after the job's operation, in the caller's trace,
// whose URL keeps the query's names but not its values and which records no credential; the IdP
// receives the span's traceparent.
func TestIdPCallsAreSpansNamedByOperationWithoutCredentials(t *testing.T) {
	t.Parallel()
	var gotTraceparent string
	idp := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotTraceparent = r.Header.Get("traceparent")
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"data":[]}`))
	}))
	defer idp.Close()
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	const token = "sk_live_do_not_record"
	tr, err := idpclient.NewTransport(idpclient.Config{
		Provider: "clerk", BaseURL: idp.URL + "/v1", Auth: idpclient.BearerToken(token),
		HTTPClient: &http.Client{Transport: traceIdPCalls(nil, tp, "clerk-prod", "clerk")},
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, parent := tp.Tracer("test").Start(context.Background(), "job")
	err = tr.Do(idpclient.WithOperation(ctx, "list_sessions"), &idpclient.Request{Method: http.MethodGet, Path: "/sessions",
		Query: map[string][]string{"user_id": {"user_1"}, "email_address": {"ada@example.com"}}}, nil)
	parent.End()
	if err != nil {
		t.Fatal(err)
	}
	if err := tr.Do(ctx, &idpclient.Request{Method: http.MethodDelete, Path: "/sessions/sess_1"}, nil); err != nil {
		t.Fatal(err)
	}

	byName := map[string]tracetest.SpanStub{}
	for _, s := range exp.GetSpans() {
		byName[s.Name] = s
		for _, a := range s.Attributes {
			if v := a.Value.String(); strings.Contains(v, token) || strings.Contains(v, "ada@example.com") || strings.Contains(v, "user_1") {
				t.Errorf("span %s: attribute %s = %q", s.Name, a.Key, v)
			}
		}
	}
	call, ok := byName["clerk list_sessions"]
	if !ok {
		t.Fatalf("no span named after the operation: %v", exp.GetSpans().Snapshots())
	}
	if call.SpanKind != trace.SpanKindClient || call.Parent.SpanID() != parent.SpanContext().SpanID() {
		t.Fatalf("the call is not a client span under the job's")
	}
	attrs := map[string]string{}
	for _, a := range call.Attributes {
		attrs[string(a.Key)] = a.Value.String()
	}
	if want := idp.URL + "/v1/sessions?email_address=REDACTED&user_id=REDACTED"; attrs["url.full"] != want {
		t.Errorf("url.full = %q, want %q", attrs["url.full"], want)
	}
	if attrs["idpsync.operation"] != "list_sessions" || attrs["idpsync.source"] != "clerk-prod" || attrs["http.response.status_code"] != "200" {
		t.Errorf("attributes %v", attrs)
	}
	if _, ok := byName["clerk DELETE"]; !ok {
		t.Errorf("a call without an operation is not named after its method")
	}
	if gotTraceparent == "" || !strings.Contains(gotTraceparent, parent.SpanContext().TraceID().String()) {
		t.Errorf("the IdP received traceparent %q", gotTraceparent)
	}
}

// Jobs inserted under a span continue its trace, unless the inserter gave them their own.
func TestJobsCarryTheTraceTheyWereInsertedIn(t *testing.T) {
	t.Parallel()
	tp := sdktrace.NewTracerProvider()
	ctx, span := tp.Tracer("test").Start(context.Background(), "change")
	defer span.End()
	own := telemetry.JobMetadata(trace.SpanContextFromContext(telemetry.ContextWithTraceparent(ctx, "00-11111111111111111111111111111111-2222222222222222-01")))
	params := []*rivertype.JobInsertParams{{Metadata: []byte("{}")}, {Metadata: own}}
	_, err := (&jobTrace{}).InsertMany(ctx, params, func(context.Context) ([]*rivertype.JobInsertResult, error) { return nil, nil })
	if err != nil {
		t.Fatal(err)
	}
	if got := telemetry.JobTraceparent(params[0].Metadata); got != telemetry.Traceparent(span.SpanContext()) {
		t.Errorf("inserted job's traceparent %q, want the inserting span's", got)
	}
	if string(params[1].Metadata) != string(own) {
		t.Errorf("a job's own traceparent was replaced: %s", params[1].Metadata)
	}
	var parent trace.SpanContext
	err = (&jobTrace{}).Work(context.Background(), &rivertype.JobRow{Metadata: params[0].Metadata}, func(ctx context.Context) error {
		parent = trace.SpanContextFromContext(ctx)
		return nil
	})
	if err != nil || parent.SpanID() != span.SpanContext().SpanID() || !parent.IsRemote() {
		t.Errorf("the job is worked under %v (%v), want the inserting span", parent, err)
	}
}
