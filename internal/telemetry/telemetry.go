// Package telemetry sets up OpenTelemetry tracing for an idpsync process from the standard OTEL_*
// environment variables, and carries W3C trace context where idpsync's work travels: the
// traceparent of a NATS message and of a River job's metadata.
//
// Tracing is off unless an OTLP endpoint is set (OTEL_EXPORTER_OTLP_ENDPOINT or
// OTEL_EXPORTER_OTLP_TRACES_ENDPOINT), or OTEL_TRACES_EXPORTER=console writes the spans to stdout
// (one JSON object per span, to look at a trace without a collector). Off, Setup builds nothing: TracerProvider is nil, and the
// components given a nil provider create no span at all, so tracing costs nothing on their hot
// paths. On, spans are batched and exported over OTLP (http/protobuf by default, grpc when
// OTEL_EXPORTER_OTLP_PROTOCOL says so); the exporter, the batcher, the sampler and the resource
// read their own standard variables (OTEL_EXPORTER_OTLP_HEADERS, OTEL_BSP_*, OTEL_TRACES_SAMPLER,
// OTEL_RESOURCE_ATTRIBUTES, OTEL_SERVICE_NAME, ...) from the process environment.
package telemetry

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/exporters/stdout/stdouttrace"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
)

// ShutdownTimeout bounds Shutdown's flush of the spans still buffered.
const ShutdownTimeout = 5 * time.Second

// Tracing is a process's tracing: on with a tracer provider exporting over OTLP, or off.
type Tracing struct {
	provider *sdktrace.TracerProvider // nil when off
	logger   *slog.Logger
}

// Setup builds the tracing of the process named service (the default of OTEL_SERVICE_NAME, e.g.
// "idpsync-worker") from the environment getenv reads. The variables that decide whether tracing
// is on and how spans leave are read with getenv:
//
//   - OTEL_SDK_DISABLED=true, or OTEL_TRACES_EXPORTER=none: off;
//   - OTEL_TRACES_EXPORTER=console: on, the spans written to stdout as JSON;
//   - OTEL_EXPORTER_OTLP_TRACES_ENDPOINT or OTEL_EXPORTER_OTLP_ENDPOINT: on when either is set, off
//     otherwise;
//   - OTEL_EXPORTER_OTLP_TRACES_PROTOCOL or OTEL_EXPORTER_OTLP_PROTOCOL: http/protobuf (the
//     default) or grpc.
//
// When on, it also makes the provider and the W3C trace-context propagator the process's global
// ones, and routes the SDK's own errors (a failed export) to logger. Setup makes no connection: an
// unreachable collector costs failed exports, logged, never a failed start.
func Setup(ctx context.Context, service string, getenv func(string) string, logger *slog.Logger) (*Tracing, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	t := &Tracing{logger: logger}
	if strings.EqualFold(strings.TrimSpace(getenv("OTEL_SDK_DISABLED")), "true") {
		return t, nil
	}
	var (
		exporter sdktrace.SpanExporter
		err      error
		how      string
	)
	switch exp := strings.ToLower(strings.TrimSpace(getenv("OTEL_TRACES_EXPORTER"))); exp {
	case "", "otlp":
		if getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") == "" && getenv("OTEL_EXPORTER_OTLP_ENDPOINT") == "" {
			return t, nil
		}
		if exporter, err = newExporter(ctx, getenv); err != nil {
			return nil, err
		}
		how = "otlp " + protocol(getenv)
	case "console":
		if exporter, err = stdouttrace.New(stdouttrace.WithWriter(os.Stdout)); err != nil {
			return nil, fmt.Errorf("console trace exporter: %w", err)
		}
		how = "console (stdout)"
	case "none":
		return t, nil
	default:
		return nil, fmt.Errorf("OTEL_TRACES_EXPORTER=%s is not supported: set it to otlp (the default), console or none", exp)
	}
	res, err := resource.New(ctx,
		resource.WithTelemetrySDK(),
		resource.WithHost(),
		resource.WithAttributes(semconv.ServiceName(service)),
		resource.WithFromEnv(), // OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES win over the above
	)
	if err != nil {
		return nil, fmt.Errorf("tracing resource: %w", err)
	}
	t.provider = sdktrace.NewTracerProvider(sdktrace.WithBatcher(exporter), sdktrace.WithResource(res))
	otel.SetTracerProvider(t.provider)
	otel.SetTextMapPropagator(Propagator)
	otel.SetErrorHandler(otel.ErrorHandlerFunc(func(err error) {
		logger.Warn("tracing: the opentelemetry sdk reported an error", "error", err)
	}))
	logger.Info("tracing on", "service", service, "exporter", how)
	return t, nil
}

// protocol is the OTLP protocol the environment asks for.
func protocol(getenv func(string) string) string {
	p := getenv("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
	if p == "" {
		p = getenv("OTEL_EXPORTER_OTLP_PROTOCOL")
	}
	if p = strings.ToLower(strings.TrimSpace(p)); p == "" {
		p = "http/protobuf"
	}
	return p
}

// newExporter returns the OTLP exporter of the protocol the environment names; the exporter
// reads its endpoint, headers, timeout, compression and TLS settings from the environment itself.
func newExporter(ctx context.Context, getenv func(string) string) (sdktrace.SpanExporter, error) {
	var (
		exp sdktrace.SpanExporter
		err error
	)
	switch p := protocol(getenv); p {
	case "http/protobuf":
		exp, err = otlptracehttp.New(ctx)
	case "grpc":
		exp, err = otlptracegrpc.New(ctx)
	default:
		return nil, fmt.Errorf("OTEL_EXPORTER_OTLP_PROTOCOL=%s is not supported for traces: set it to http/protobuf (the default) or grpc", p)
	}
	if err != nil {
		return nil, fmt.Errorf("otlp trace exporter: %w", err)
	}
	return exp, nil
}

// Enabled reports whether spans are exported.
func (t *Tracing) Enabled() bool { return t.provider != nil }

// TracerProvider is the provider to give the process's components, or nil when tracing is off:
// a component given nil creates no span and spends nothing on tracing.
func (t *Tracing) TracerProvider() trace.TracerProvider {
	if t.provider == nil {
		return nil
	}
	return t.provider
}

// Shutdown flushes the spans still buffered and stops the exporter, waiting at most
// ShutdownTimeout (or until ctx is done). It does nothing when tracing is off. Call it once the
// process's work has stopped, so that its last spans are exported.
func (t *Tracing) Shutdown(ctx context.Context) error {
	if t.provider == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, ShutdownTimeout)
	defer cancel()
	if err := t.provider.Shutdown(ctx); err != nil {
		t.logger.Warn("tracing: flushing the last spans failed", "error", err)
		return fmt.Errorf("shutting down tracing: %w", err)
	}
	return nil
}

// Propagator is how idpsync carries trace context across processes: W3C trace context.
var Propagator propagation.TextMapPropagator = propagation.TraceContext{}

// Traceparent is the W3C traceparent header value of sc, or "" when sc is not valid.
func Traceparent(sc trace.SpanContext) string {
	if !sc.IsValid() {
		return ""
	}
	var c carrier
	propagation.TraceContext{}.Inject(trace.ContextWithSpanContext(context.Background(), sc), &c)
	return c.traceparent
}

// ContextWithTraceparent returns ctx carrying the remote span context that the W3C traceparent
// value tp names, so that spans started from it continue that trace; ctx itself when tp is empty
// or malformed.
func ContextWithTraceparent(ctx context.Context, tp string) context.Context {
	if tp == "" {
		return ctx
	}
	return propagation.TraceContext{}.Extract(ctx, &carrier{traceparent: tp})
}

// carrier holds the one header idpsync carries, traceparent, without a map.
type carrier struct{ traceparent string }

func (c *carrier) Get(key string) string {
	if key == traceparentKey {
		return c.traceparent
	}
	return ""
}

func (c *carrier) Set(key, value string) {
	if key == traceparentKey {
		c.traceparent = value
	}
}

func (c *carrier) Keys() []string { return []string{traceparentKey} }

const traceparentKey = "traceparent"

// JobMetadata is the metadata of a River job that continues the trace of sc: {"traceparent":
// "…"}, the key River's OpenTelemetry middleware uses too. Nil when sc is not valid.
func JobMetadata(sc trace.SpanContext) []byte {
	tp := Traceparent(sc)
	if tp == "" {
		return nil
	}
	return []byte(`{"` + traceparentKey + `":"` + tp + `"}`) // a traceparent is hex digits and dashes
}

// JobTraceparent is the traceparent a River job's metadata carries, or "" when it carries none.
func JobTraceparent(metadata []byte) string {
	if len(metadata) < len(traceparentKey)+4 || !bytes.Contains(metadata, []byte(traceparentKey)) {
		return "" // most jobs: no need to decode
	}
	var m struct {
		Traceparent string `json:"traceparent"`
	}
	if err := json.Unmarshal(metadata, &m); err != nil {
		return ""
	}
	return m.Traceparent
}

// WithJobTraceparent returns a River job's metadata with the traceparent of sc added, unless it
// already has one (a job that continues another trace keeps it) or sc is not valid.
func WithJobTraceparent(metadata []byte, sc trace.SpanContext) ([]byte, error) {
	if !sc.IsValid() || JobTraceparent(metadata) != "" {
		return metadata, nil
	}
	if len(bytes.TrimSpace(metadata)) == 0 || string(bytes.TrimSpace(metadata)) == "{}" {
		return JobMetadata(sc), nil
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(metadata, &m); err != nil {
		return nil, fmt.Errorf("adding a traceparent to a job's metadata: %w", err)
	}
	tp, err := json.Marshal(Traceparent(sc))
	if err != nil {
		return nil, err
	}
	m[traceparentKey] = tp
	return json.Marshal(m)
}
