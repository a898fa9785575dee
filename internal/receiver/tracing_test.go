package receiver_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/idpsync/idpsync/internal/receiver"
	"github.com/idpsync/idpsync/internal/telemetry"
)

// tracedEnv is an env whose receiver traces into an in-memory exporter.
func tracedEnv(t *testing.T) (*env, *tracetest.InMemoryExporter) {
	t.Helper()
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	t.Cleanup(func() { _ = tp.Shutdown(t.Context()) })
	return newEnv(t, func(c *receiver.Config) { c.TracerProvider = tp }), exp
}

// spansNamed waits for the spans named name (a server span ends after its answer was sent).
func spansNamed(t *testing.T, exp *tracetest.InMemoryExporter, name string, n int) []tracetest.SpanStub {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		var out []tracetest.SpanStub
		for _, s := range exp.GetSpans() {
			if s.Name == name {
				out = append(out, s)
			}
		}
		if len(out) >= n || time.Now().After(deadline) {
			if len(out) != n {
				t.Fatalf("%d spans named %q, want %d (all: %v)", len(out), name, n, exp.GetSpans().Snapshots())
			}
			return out
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func attrs(s tracetest.SpanStub) map[string]string {
	m := map[string]string{}
	for _, a := range s.Attributes {
		m[string(a.Key)] = a.Value.String()
	}
	return m
}

// With tracing on, a delivery is a server span continuing the IdP's trace, its publish a child
// span, and the message carries the publish span's context, not the IdP's: the worker's spans
// descend from the receiver's.
func TestTracedDeliveryContinuesTheIdPTraceIntoTheMessage(t *testing.T) {
	t.Parallel()
	e, exp := tracedEnv(t)
	const idpTrace, idpSpan = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
	var signature string
	resp := e.post(t, "/webhooks/clerk-test", "msg_1", userCreated("user_1"), func(r *http.Request) {
		r.Header.Set("traceparent", "00-"+idpTrace+"-"+idpSpan+"-01")
		signature = r.Header.Get("svix-signature")
	}, secret)
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("status %d", resp.StatusCode)
	}
	server := spansNamed(t, exp, "POST /webhooks/{source}", 1)[0]
	publish := spansNamed(t, exp, receiver.PublishSpanName, 1)[0]
	if server.SpanKind != trace.SpanKindServer || server.SpanContext.TraceID().String() != idpTrace || server.Parent.SpanID().String() != idpSpan {
		t.Fatalf("server span %s in trace %s under %s, want a server span continuing the IdP's trace", server.SpanKind, server.SpanContext.TraceID(), server.Parent.SpanID())
	}
	if publish.Parent.SpanID() != server.SpanContext.SpanID() || publish.SpanKind != trace.SpanKindProducer {
		t.Fatalf("the publish span is not a producer child of the server span")
	}
	got := attrs(server)
	for k, v := range map[string]string{
		"idpsync.source": "clerk-test", "idpsync.event_id": "msg_1", "idpsync.event_type": "user.created",
		"idpsync.outcome": "accepted", "http.response.status_code": "202", "http.route": "/webhooks/{source}",
	} {
		if got[k] != v {
			t.Errorf("server span %s = %q, want %q", k, got[k], v)
		}
	}
	msg, err := e.stream.GetMsg(t.Context(), 1)
	if err != nil {
		t.Fatal(err)
	}
	if tp, want := msg.Header.Get("traceparent"), telemetry.Traceparent(publish.SpanContext); tp != want {
		t.Fatalf("the message carries traceparent %q, want the publish span's %q", tp, want)
	}
	for _, s := range exp.GetSpans() {
		for k, v := range attrs(s) {
			for _, secretish := range []string{secret, signature, "Ada"} {
				if strings.Contains(v, secretish) {
					t.Errorf("span %s attribute %s carries %q", s.Name, k, secretish)
				}
			}
		}
	}
}

// A delivery without a traceparent starts a trace at the receiver; a rejected one is traced with
// its outcome and reason, and without an event; the health checks are not traced.
func TestTracedRejectionsAndNewTraces(t *testing.T) {
	t.Parallel()
	e, exp := tracedEnv(t)
	if resp := e.post(t, "/webhooks/clerk-test", "msg_2", userCreated("user_2"), nil, secret); resp.StatusCode != http.StatusAccepted {
		t.Fatalf("status %d", resp.StatusCode)
	}
	if resp := e.post(t, "/webhooks/clerk-test", "msg_3", userCreated("user_3"), nil, "whsec_"+strings.Repeat("A", 32)); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("status %d", resp.StatusCode)
	}
	if resp, err := http.Get(e.srv.URL + "/healthz"); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("healthz: %v", err)
	}
	servers := spansNamed(t, exp, "POST /webhooks/{source}", 2)
	byOutcome := map[string]tracetest.SpanStub{}
	for _, s := range servers {
		byOutcome[attrs(s)["idpsync.outcome"]] = s
	}
	if s, ok := byOutcome["accepted"]; !ok || s.Parent.IsValid() {
		t.Fatalf("accepted delivery without traceparent: %+v", s)
	}
	rejected, ok := byOutcome["unauthorized"]
	if !ok {
		t.Fatalf("no span of the rejected delivery: %v", byOutcome)
	}
	if a := attrs(rejected); a["idpsync.reason"] != "invalid_signature" || a["idpsync.event_id"] != "" || a["idpsync.source"] != "clerk-test" {
		t.Fatalf("rejected delivery's attributes: %v", a)
	}
	spansNamed(t, exp, receiver.PublishSpanName, 1)
	for _, s := range exp.GetSpans() {
		if strings.Contains(s.Name, "GET") {
			t.Errorf("health check traced: %s", s.Name)
		}
	}
}
