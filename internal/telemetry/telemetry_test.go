package telemetry_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/trace"

	"github.com/idpsync/idpsync/internal/telemetry"
)

func env(vars map[string]string) func(string) string {
	return func(k string) string { return vars[k] }
}

// Without an OTLP endpoint, or with the SDK or the exporter turned off, tracing is off: no
// provider for the components (which then create no span), the global provider left a no-op,
// and nothing to flush.
func TestTracingIsOffWithoutAnEndpoint(t *testing.T) {
	t.Parallel()
	for name, vars := range map[string]map[string]string{
		"no variable":        {},
		"only a service":     {"OTEL_SERVICE_NAME": "x", "OTEL_TRACES_SAMPLER": "always_on"},
		"sdk disabled":       {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318", "OTEL_SDK_DISABLED": "true"},
		"no trace exporter":  {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://127.0.0.1:4318/v1/traces", "OTEL_TRACES_EXPORTER": "none"},
		"empty endpoint var": {"OTEL_EXPORTER_OTLP_ENDPOINT": ""},
	} {
		t.Run(name, func(t *testing.T) {
			global := otel.GetTracerProvider()
			tr, err := telemetry.Setup(t.Context(), "idpsync-test", env(vars), nil)
			if err != nil {
				t.Fatal(err)
			}
			if tr.Enabled() || tr.TracerProvider() != nil {
				t.Fatalf("tracing is on: enabled %t, provider %v", tr.Enabled(), tr.TracerProvider())
			}
			if err := tr.Shutdown(t.Context()); err != nil {
				t.Fatalf("shutdown: %v", err)
			}
			if otel.GetTracerProvider() != global {
				t.Fatal("the global tracer provider was replaced")
			}
		})
	}
}

func TestUnsupportedSettingsAreRefusedWithTheFix(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		vars map[string]string
		want string
	}{
		{map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318", "OTEL_TRACES_EXPORTER": "zipkin"}, "OTEL_TRACES_EXPORTER=zipkin is not supported: set it to otlp (the default), console or none"},
		{map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"}, "OTEL_EXPORTER_OTLP_PROTOCOL=http/json is not supported for traces"},
	} {
		_, err := telemetry.Setup(t.Context(), "idpsync-test", env(tc.vars), nil)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: error %v, want %q", tc.vars, err, tc.want)
		}
	}
}

// collector is an OTLP/HTTP endpoint that keeps the bodies of the trace exports it receives.
type collector struct {
	mu     sync.Mutex
	bodies [][]byte
}

func (c *collector) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	if r.URL.Path == "/v1/traces" {
		c.mu.Lock()
		c.bodies = append(c.bodies, body)
		c.mu.Unlock()
	}
	w.Header().Set("Content-Type", "application/x-protobuf")
}

func (c *collector) received() []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	return bytes.Join(c.bodies, nil)
}

// With an endpoint, spans are batched and exported over OTLP/HTTP, and Shutdown flushes the last
// of them; the service is named by default after the process, and OTEL_SERVICE_NAME overrides it.
// (The exporter reads the process environment, hence Setenv and no parallelism.)
func TestSpansAreExportedOverOTLPAndFlushedOnShutdown(t *testing.T) {
	for _, tc := range []struct{ serviceEnv, want string }{{"", "idpsync-test"}, {"custom-name", "custom-name"}} {
		col := &collector{}
		srv := httptest.NewServer(col)
		t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", srv.URL)
		t.Setenv("OTEL_SERVICE_NAME", tc.serviceEnv)
		tr, err := telemetry.Setup(context.Background(), "idpsync-test", os.Getenv, nil)
		if err != nil {
			t.Fatal(err)
		}
		if !tr.Enabled() || tr.TracerProvider() == nil {
			t.Fatal("tracing is off with an endpoint")
		}
		_, span := tr.TracerProvider().Tracer("test").Start(context.Background(), "span-to-flush")
		span.End()
		if err := tr.Shutdown(context.Background()); err != nil {
			t.Fatal(err)
		}
		got := col.received()
		if !bytes.Contains(got, []byte("span-to-flush")) || !bytes.Contains(got, []byte(tc.want)) {
			t.Errorf("OTEL_SERVICE_NAME=%q: the collector received %q, want the span and the service %s", tc.serviceEnv, got, tc.want)
		}
		srv.Close()
	}
}

// The grpc protocol builds without reaching the collector: a collector down at start costs no
// failed start. (Setup replaces the global provider: not in parallel with the tests that check it
// is left alone.)
func TestGRPCProtocolStartsWithoutACollector(t *testing.T) {
	tr, err := telemetry.Setup(t.Context(), "idpsync-test", env(map[string]string{
		"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://127.0.0.1:1", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "grpc",
	}), nil)
	if err != nil {
		t.Fatal(err)
	}
	if !tr.Enabled() {
		t.Fatal("tracing is off")
	}
	if err := tr.Shutdown(t.Context()); err != nil {
		t.Fatal(err)
	}
}

func TestTraceparentRoundTrips(t *testing.T) {
	t.Parallel()
	const tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	sc := trace.SpanContextFromContext(telemetry.ContextWithTraceparent(t.Context(), tp))
	if !sc.IsValid() || !sc.IsRemote() || sc.TraceID().String() != "4bf92f3577b34da6a3ce929d0e0e4736" || !sc.IsSampled() {
		t.Fatalf("span context %+v", sc)
	}
	if got := telemetry.Traceparent(sc); got != tp {
		t.Fatalf("Traceparent = %q, want %q", got, tp)
	}
	for _, bad := range []string{"", "00-zz", "00-00000000000000000000000000000000-00f067aa0ba902b7-01"} {
		if sc := trace.SpanContextFromContext(telemetry.ContextWithTraceparent(t.Context(), bad)); sc.IsValid() {
			t.Errorf("%q gave a valid span context", bad)
		}
	}
	if telemetry.Traceparent(trace.SpanContext{}) != "" || telemetry.JobMetadata(trace.SpanContext{}) != nil {
		t.Fatal("an invalid span context was formatted")
	}

	md := telemetry.JobMetadata(sc)
	if got := telemetry.JobTraceparent(md); got != tp {
		t.Fatalf("JobTraceparent(%s) = %q", md, got)
	}
	// Metadata with other keys keeps them; metadata that has a traceparent keeps it.
	other := trace.SpanContextFromContext(telemetry.ContextWithTraceparent(t.Context(), "00-11111111111111111111111111111111-2222222222222222-01"))
	md, err := telemetry.WithJobTraceparent([]byte(`{"river:output":{"n":1}}`), other)
	if err != nil {
		t.Fatal(err)
	}
	if telemetry.JobTraceparent(md) != telemetry.Traceparent(other) || !bytes.Contains(md, []byte(`"river:output":{"n":1}`)) {
		t.Fatalf("metadata %s", md)
	}
	if md, _ := telemetry.WithJobTraceparent(telemetry.JobMetadata(sc), other); telemetry.JobTraceparent(md) != tp {
		t.Fatalf("a job's own traceparent was replaced: %s", md)
	}
}

// OTEL_TRACES_EXPORTER=console writes each span to stdout as JSON, to see a trace without a
// collector. (Not parallel: it swaps os.Stdout.)
func TestConsoleExporterWritesSpansToStdout(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout := os.Stdout
	os.Stdout = w
	tr, err := telemetry.Setup(context.Background(), "idpsync-test", env(map[string]string{"OTEL_TRACES_EXPORTER": "console"}), nil)
	os.Stdout = stdout
	if err != nil {
		t.Fatal(err)
	}
	_, span := tr.TracerProvider().Tracer("test").Start(context.Background(), "POST /webhooks/{source}")
	span.End()
	if err := tr.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	w.Close()
	out, _ := io.ReadAll(r)
	if !strings.Contains(string(out), `"Name":"POST /webhooks/{source}"`) || !strings.Contains(string(out), "idpsync-test") {
		t.Fatalf("stdout: %s", out)
	}
}
