// Package receiver is the HTTP endpoint the identity providers deliver webhooks to.
//
// For POST /webhooks/{source} it checks the request's shape, verifies the signature against the raw
// bytes, reads the envelope (event id and type) and publishes the body verbatim to JetStream. It
// answers 2xx only after JetStream acknowledged the message, so an acknowledged delivery is never
// lost; every failure before that is an error status and the IdP retries. A payload that verifies
// but cannot be read is accepted all the same: the worker keeps it as a dead letter.
package receiver

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/trace"

	"github.com/idpsync/idpsync/internal/events"
	"github.com/idpsync/idpsync/internal/logsafe"
	"github.com/idpsync/idpsync/internal/natsbus"
	"github.com/idpsync/idpsync/internal/telemetry"
	"github.com/idpsync/idpsync/internal/webhook"
)

// Publisher stores an event durably and returns once it is acknowledged, bounding the wait itself.
type Publisher interface {
	Publish(ctx context.Context, ev *natsbus.Event) (natsbus.PubAck, error)
}

// Source is one configured webhook source.
type Source struct {
	Name     string
	Verifier webhook.Verifier
	// ParseEnvelopeFunc reads the event id and type of a verified body (the source's provider's
	// envelope parser).
	ParseEnvelopeFunc func(deliveryID string, body []byte) (events.Envelope, error)
}

// Config configures a Handler.
type Config struct {
	// Sources served under /webhooks/{name}. Required.
	Sources []Source
	// Publisher takes verified events. Required.
	Publisher Publisher
	// Ready reports whether the publisher can take events, for GET /readyz. Required.
	Ready func(context.Context) error
	// MaxBodyBytes is the largest accepted body; larger ones get 413. Required.
	MaxBodyBytes int64
	// MaxInFlightBytes caps the body bytes held by all requests at once, counted as they arrive
	// (not as declared) and until the request is answered. A request whose bytes would pass it gets
	// 503 with Retry-After and its bytes are released; the IdP retries later. Buffers hold at most
	// about twice their bytes, so bodies never take much more than twice this. Required, at least
	// MaxBodyBytes (the configuration's default, 32 MiB, holds some ten thousand typical 3 KB
	// deliveries at once).
	MaxInFlightBytes int64
	// RetryAfter is sent with 503 answers. Required.
	RetryAfter time.Duration
	// Logger receives one line per rejected delivery (never a secret or a signature) and, at debug
	// level, one per accepted delivery. Defaults to a logger that discards.
	Logger *slog.Logger
	// Registerer receives the receiver's metrics. Nil keeps them unexported.
	Registerer prometheus.Registerer
	// NowFunc returns the current time. Defaults to time.Now.
	NowFunc func() time.Time
	// TracerProvider traces deliveries: a server span per POST /webhooks/{source} (otelhttp),
	// continuing the IdP's traceparent, with a child span for the publish whose context travels in
	// the message's traceparent header. Nil turns tracing off: no span, no cost, and the IdP's
	// traceparent, when well-formed, travels as it came.
	TracerProvider trace.TracerProvider
}

// Handler serves the webhook endpoint and the health checks.
type Handler struct {
	cfg        Config
	sources    map[string]*source
	mux        *http.ServeMux
	handler    http.Handler // mux, traced when tracing is on
	tracer     trace.Tracer // nil when tracing is off
	metrics    *metrics
	retryAfter string
	bodies     *bodies
}

type source struct {
	Source
	accepted, duplicate prometheus.Counter
	publishSeconds      prometheus.Observer
}

// New returns a Handler for cfg.
func New(cfg Config) (*Handler, error) {
	if len(cfg.Sources) == 0 || cfg.Publisher == nil || cfg.Ready == nil || cfg.MaxBodyBytes <= 0 || cfg.MaxInFlightBytes <= 0 || cfg.RetryAfter <= 0 {
		return nil, errors.New("receiver: Sources, Publisher, Ready, MaxBodyBytes, MaxInFlightBytes and RetryAfter are required")
	}
	if cfg.MaxInFlightBytes < cfg.MaxBodyBytes {
		return nil, fmt.Errorf("receiver: MaxInFlightBytes (%d) is less than MaxBodyBytes (%d), so the largest bodies could never be accepted; raise it to at least MaxBodyBytes",
			cfg.MaxInFlightBytes, cfg.MaxBodyBytes)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Registerer == nil {
		cfg.Registerer = prometheus.NewRegistry()
	}
	if cfg.NowFunc == nil {
		cfg.NowFunc = time.Now
	}
	bs := newBodies(cfg.MaxBodyBytes, cfg.MaxInFlightBytes)
	m, err := newMetrics(cfg.Registerer, bs)
	if err != nil {
		return nil, err
	}
	h := &Handler{
		cfg:        cfg,
		sources:    make(map[string]*source, len(cfg.Sources)),
		mux:        http.NewServeMux(),
		metrics:    m,
		retryAfter: strconv.Itoa(int((cfg.RetryAfter + time.Second - 1) / time.Second)),
		bodies:     bs,
	}
	for _, s := range cfg.Sources {
		if s.Verifier == nil || s.ParseEnvelopeFunc == nil {
			return nil, fmt.Errorf("receiver: source %s has no verifier or envelope parser", s.Name)
		}
		h.sources[s.Name] = &source{
			Source:         s,
			accepted:       m.requests.WithLabelValues(s.Name, outcomeAccepted),
			duplicate:      m.requests.WithLabelValues(s.Name, outcomeDuplicate),
			publishSeconds: m.publishSeconds.WithLabelValues(s.Name),
		}
	}
	h.mux.HandleFunc("POST /webhooks/{source}", h.serveWebhook)
	h.mux.HandleFunc("/webhooks/{source}", h.serveMethodNotAllowed)
	h.mux.HandleFunc("GET /healthz", serveHealthz)
	h.mux.HandleFunc("GET /readyz", h.serveReadyz)
	h.handler = h.mux
	if cfg.TracerProvider != nil {
		h.tracer = cfg.TracerProvider.Tracer(tracerName)
		h.handler = traceDeliveries(h.mux, cfg.TracerProvider)
	}
	return h, nil
}

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) { h.handler.ServeHTTP(w, r) }

// The answers. Each failure class has one status, one outcome label and one error code, here.
var (
	errUnknownSource    = &answer{http.StatusNotFound, "unknown_source", "no source of that name is configured"}
	errMethod           = &answer{http.StatusMethodNotAllowed, "method_not_allowed", "webhooks are delivered with POST"}
	errMediaType        = &answer{http.StatusUnsupportedMediaType, "unsupported_media_type", "the body must be application/json"}
	errTooLarge         = &answer{http.StatusRequestEntityTooLarge, "too_large", "the body is larger than this endpoint accepts"}
	errUnreadable       = &answer{http.StatusBadRequest, "bad_request", "the body could not be read"}
	errUnavailable      = &answer{http.StatusServiceUnavailable, "unavailable", "the event could not be stored; retry later"}
	errOverloaded       = &answer{http.StatusServiceUnavailable, "overloaded", "the receiver holds too many request bodies at the moment; retry later"}
	verificationAnswers = []struct {
		err error
		ans *answer
	}{
		{webhook.ErrMissingHeader, &answer{http.StatusBadRequest, "bad_request", "a required header is missing"}},
		{webhook.ErrMalformedHeader, &answer{http.StatusBadRequest, "bad_request", "a header is malformed"}},
		{webhook.ErrSignatureMissing, &answer{http.StatusUnauthorized, "unauthorized", "the signature is missing"}},
		{webhook.ErrSignatureInvalid, &answer{http.StatusUnauthorized, "unauthorized", "the signature does not match any configured secret"}},
		{webhook.ErrTimestampTooOld, &answer{http.StatusUnauthorized, "unauthorized", "the signature timestamp is too old"}},
		{webhook.ErrTimestampTooNew, &answer{http.StatusUnauthorized, "unauthorized", "the signature timestamp is in the future"}},
	}
)

type answer struct {
	status  int
	outcome string
	message string
}

// Outcomes of the idpsync_webhook_requests_total metric besides the answers' own.
const (
	outcomeAccepted  = "accepted"
	outcomeDuplicate = "duplicate"
)

var (
	contentTypeJSON = []string{"application/json"}
	bodyAccepted    = []byte(`{"status":"accepted"}` + "\n")
	bodyDuplicate   = []byte(`{"status":"duplicate"}` + "\n")
)

func (h *Handler) serveWebhook(w http.ResponseWriter, r *http.Request) {
	start := h.cfg.NowFunc()
	src, ok := h.sources[r.PathValue("source")]
	if !ok {
		h.reject(w, r, "", errUnknownSource)
		return
	}
	if !isJSON(r.Header.Get("Content-Type")) {
		h.reject(w, r, src.Name, errMediaType)
		return
	}
	if r.ContentLength > h.cfg.MaxBodyBytes {
		h.reject(w, r, src.Name, errTooLarge) // before reading a byte of it
		return
	}
	buf, err := h.bodies.read(r.Body)
	if err != nil {
		h.reject(w, r, src.Name, h.readAnswer(w, err))
		return
	}
	body := buf.b

	delivery, err := src.Verifier.Verify(body, r.Header)
	if err != nil {
		h.bodies.release(buf)
		reason := webhook.Reason(err)
		h.metrics.verificationFailures.WithLabelValues(src.Name, reason).Inc()
		if h.tracer != nil {
			trace.SpanFromContext(r.Context()).SetAttributes(telemetry.AttrReason.String(reason))
		}
		h.reject(w, r, src.Name, verificationAnswer(err), slog.String("reason", reason), slog.String("detail", logsafe.Value(err.Error())))
		return
	}

	ev := &natsbus.Event{Source: src.Name, Body: body}
	if h.tracer == nil {
		ev.Traceparent = traceparent(r) // with tracing on, the publish span's context travels instead
	}
	env, parseErr := src.ParseEnvelopeFunc(delivery.ID, body)
	if errors.Is(parseErr, events.ErrInvalidID) {
		// The payload names its event with an id that cannot serve as one: refused, with a reason.
		h.bodies.release(buf)
		h.reject(w, r, src.Name, badEventID(false, parseErr), slog.String("reason", "invalid_event_id"), slog.String("detail", logsafe.Value(parseErr.Error())))
		return
	}
	if parseErr != nil {
		// It verified, so it is the IdP's: keep it (the worker dead-letters it) rather than make
		// the IdP retry something that will never parse.
		ev.EventID, ev.SourceType = fallbackEventID(delivery.ID, body), natsbus.TypeInvalid
	} else {
		ev.EventID, ev.Type, ev.SourceType = env.ID, env.Type, env.SourceType
	}
	// The id names the event in the stream's headers and dedup window and in the event log's key:
	// one that cannot serve there is refused now, with a reason, rather than acknowledged and left
	// to fail in the worker (or in NATS, at every retry).
	if err := events.CheckID(ev.EventID); err != nil {
		h.bodies.release(buf)
		h.reject(w, r, src.Name, badEventID(delivery.ID != "" && ev.EventID == delivery.ID, err),
			slog.String("reason", "invalid_event_id"), slog.String("detail", err.Error()))
		return
	}
	if parseErr != nil {
		h.cfg.Logger.Warn("webhook verified but its payload cannot be read; it will be dead-lettered",
			"source", src.Name, "event_id", ev.EventID, "error", logsafe.Value(parseErr.Error()))
	}

	var ack natsbus.PubAck
	if h.tracer != nil {
		ack, err = h.publishTraced(r.Context(), ev)
	} else {
		ack, err = h.cfg.Publisher.Publish(r.Context(), ev)
	}
	src.publishSeconds.Observe(h.cfg.NowFunc().Sub(start).Seconds())
	if err != nil {
		// The NATS client may still hold the body to retry the publish: leave it to the
		// garbage collector rather than hand it to another request.
		h.bodies.forget(buf)
		if h.tracer != nil {
			annotate(r.Context(), src.Name, ev, errUnavailable.outcome)
		}
		w.Header().Set("Retry-After", h.retryAfter)
		h.reject(w, r, src.Name, errUnavailable, slog.String("event_id", ev.EventID), slog.String("error", logsafe.Value(err.Error())))
		return
	}
	h.bodies.release(buf)

	w.Header()["Content-Type"] = contentTypeJSON
	w.WriteHeader(http.StatusAccepted)
	if ack.Duplicate {
		src.duplicate.Inc()
		_, _ = w.Write(bodyDuplicate)
	} else {
		src.accepted.Inc()
		_, _ = w.Write(bodyAccepted)
	}
	if h.tracer != nil {
		outcome := outcomeAccepted
		if ack.Duplicate {
			outcome = outcomeDuplicate
		}
		annotate(r.Context(), src.Name, ev, outcome)
	}
	if h.cfg.Logger.Enabled(r.Context(), slog.LevelDebug) {
		h.cfg.Logger.Debug("webhook accepted", "source", src.Name, "event_id", ev.EventID, "type", logsafe.Value(ev.SourceType),
			"stream_seq", ack.Sequence, "duplicate", ack.Duplicate)
	}
}

// readAnswer is the answer to a body that could not be read. Over the in-flight cap, the IdP is
// told to retry later and the connection is closed, so that the rest of the body is not read.
func (h *Handler) readAnswer(w http.ResponseWriter, err error) *answer {
	switch {
	case errors.Is(err, errBodyTooLarge):
		return errTooLarge
	case errors.Is(err, errOverBudget):
		w.Header().Set("Retry-After", h.retryAfter)
		w.Header().Set("Connection", "close")
		return errOverloaded
	}
	return errUnreadable
}

// badEventID is the answer to an event id that events.CheckID refuses. The message names where
// the id came from and what is wrong with it, never the id itself.
func badEventID(fromHeader bool, err error) *answer {
	from := "the event id in the payload"
	if fromHeader {
		from = "the delivery id header"
	}
	return &answer{http.StatusBadRequest, "bad_request",
		fmt.Sprintf("%s cannot identify an event (%v); ids must be 1 to %d bytes of printable UTF-8", from, err, events.MaxIDLen)}
}

// verificationAnswer is the answer to a delivery that failed verification. A 400 also says which
// header is missing or malformed (the verifiers' errors name headers, never their values); a 401
// says no more than its class.
func verificationAnswer(err error) *answer {
	for _, va := range verificationAnswers {
		if errors.Is(err, va.err) {
			if va.ans.status != http.StatusBadRequest {
				return va.ans
			}
			detail, ok := strings.CutPrefix(err.Error(), va.err.Error()+": ")
			if !ok {
				return va.ans
			}
			return &answer{va.ans.status, va.ans.outcome, va.ans.message + ": " + logsafe.Value(detail)}
		}
	}
	return &answer{http.StatusUnauthorized, "unauthorized", "the delivery could not be verified"}
}

func (h *Handler) reject(w http.ResponseWriter, r *http.Request, sourceName string, ans *answer, attrs ...slog.Attr) {
	label := sourceName
	if label == "" {
		label = "unknown" // never a label from an arbitrary URL
	}
	h.metrics.requests.WithLabelValues(label, ans.outcome).Inc()
	if h.tracer != nil {
		annotate(r.Context(), sourceName, nil, ans.outcome)
	}
	level := slog.LevelWarn
	if ans.status >= 500 {
		level = slog.LevelError
	}
	args := []any{"source", sourceName, "status", ans.status, "outcome", ans.outcome, "remote_addr", logsafe.Value(r.RemoteAddr)}
	if sourceName == "" {
		args = append(args, "path", logsafe.Value(r.URL.Path))
	}
	for _, a := range attrs {
		args = append(args, a)
	}
	h.cfg.Logger.Log(r.Context(), level, "webhook rejected", args...)
	writeError(w, ans)
}

func writeError(w http.ResponseWriter, ans *answer) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(ans.status)
	_, _ = fmt.Fprintf(w, "{\"error\":%q,\"message\":%q}\n", ans.outcome, ans.message)
}

func (h *Handler) serveMethodNotAllowed(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Allow", http.MethodPost)
	name := r.PathValue("source")
	if _, ok := h.sources[name]; !ok {
		name = ""
	}
	h.reject(w, r, name, errMethod)
}

func serveHealthz(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, _ = io.WriteString(w, "ok\n")
}

func (h *Handler) serveReadyz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	if err := h.cfg.Ready(ctx); err != nil {
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = fmt.Fprintf(w, "not ready: %v\n", err)
		return
	}
	_, _ = io.WriteString(w, "ok\n")
}

func isJSON(contentType string) bool {
	if contentType == "application/json" { // the common case, without parsing
		return true
	}
	mt, _, err := mime.ParseMediaType(contentType)
	return err == nil && (mt == "application/json" || (len(mt) > 5 && mt[len(mt)-5:] == "+json"))
}

// fallbackEventID names a delivery whose payload cannot be read: its delivery id when the scheme
// has one, else a digest of the body, so that retries of the same bytes dedupe.
func fallbackEventID(deliveryID string, body []byte) string {
	if deliveryID != "" {
		return deliveryID
	}
	sum := sha256.Sum256(body)
	return "sha256:" + hex.EncodeToString(sum[:16])
}

// traceparent returns the request's W3C trace context when it carries a well-formed one, so that
// the IdP's trace continues into the workers.
func traceparent(r *http.Request) string {
	tp := r.Header.Get("traceparent")
	if len(tp) != 55 || tp[2] != '-' || tp[35] != '-' || tp[52] != '-' {
		return ""
	}
	for i, c := range []byte(tp) {
		if i == 2 || i == 35 || i == 52 {
			continue
		}
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return ""
		}
	}
	return tp
}
