package receiver_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/idpsync/idpsync/internal/config"
	"github.com/idpsync/idpsync/internal/natsbus"
	"github.com/idpsync/idpsync/internal/natsbus/natstest"
	"github.com/idpsync/idpsync/internal/provider/authpi"
	"github.com/idpsync/idpsync/internal/provider/clerk"
	"github.com/idpsync/idpsync/internal/receiver"
)

const (
	secret    = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	oldSecret = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD"
)

type env struct {
	srv    *httptest.Server
	nats   *natstest.Server
	bus    *natsbus.Bus
	reg    *prometheus.Registry
	logs   *syncBuffer
	stream jetstream.Stream
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// authpiSecret signs the deliveries of the source "authpi-test".
const authpiSecret = "authpi-signature-secret"

// newEnv serves a Handler with the sources "clerk-test" (Svix) and "authpi-test" (HMAC), over a
// real stream; opts adjust its configuration.
func newEnv(t *testing.T, opts ...func(*receiver.Config)) *env {
	t.Helper()
	e := &env{nats: natstest.Start(t), reg: prometheus.NewRegistry(), logs: &syncBuffer{}}
	e.bus = e.nats.Bus()
	v, err := clerk.NewSvix(clerk.SvixConfig{Secrets: []string{secret, oldSecret}, Tolerance: 5 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	hv, err := authpi.NewHMAC(authpiSecret)
	if err != nil {
		t.Fatal(err)
	}
	cfg := receiver.Config{
		Sources: []receiver.Source{
			{Name: "clerk-test", Verifier: v, ParseEnvelopeFunc: clerk.ParseEnvelope},
			{Name: "authpi-test", Verifier: hv, ParseEnvelopeFunc: authpi.ParseEnvelope},
		},
		Publisher:        e.bus,
		Ready:            e.bus.Ready,
		MaxBodyBytes:     4096,
		MaxInFlightBytes: config.MaxInFlightBytesDefault,
		RetryAfter:       7 * time.Second,
		Logger:           slog.New(slog.NewJSONHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Registerer:       e.reg,
	}
	for _, o := range opts {
		o(&cfg)
	}
	h, err := receiver.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	e.srv = httptest.NewServer(h)
	t.Cleanup(e.srv.Close)
	e.stream, err = e.bus.JetStream().Stream(t.Context(), "IDPSYNC_EVENTS")
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func userCreated(id string) []byte {
	return fmt.Appendf(nil, `{"data":{"id":%q,"object":"user","first_name":"Ada","updated_at":1716883200000},"object":"event","type":"user.created","timestamp":1716883200,"instance_id":"ins_1"}`, id)
}

// post sends body signed with secrets (none: unsigned) under svix-id id.
func (e *env) post(t *testing.T, path, id string, body []byte, mutate func(*http.Request), secrets ...string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, e.srv.URL+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if len(secrets) > 0 {
		h, err := clerk.SignSvix(id, time.Now(), body, secrets...)
		if err != nil {
			t.Fatal(err)
		}
		for k, v := range h {
			req.Header[k] = v
		}
	}
	if mutate != nil {
		mutate(req)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

func (e *env) streamMsgs(t *testing.T) uint64 {
	t.Helper()
	info, err := e.stream.Info(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return info.State.Msgs
}

func TestAcceptedDeliveryIsInTheStreamVerbatim(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	body := userCreated("user_1")
	resp := e.post(t, "/webhooks/clerk-test", "msg_1", body, func(r *http.Request) {
		r.Header.Set("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
	}, secret)
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("status %d", resp.StatusCode)
	}
	msg, err := e.stream.GetMsg(t.Context(), 1)
	if err != nil {
		t.Fatal(err)
	}
	if msg.Subject != "idpsync.events.clerk-test.user.created" || !bytes.Equal(msg.Data, body) {
		t.Fatalf("subject %q, body %q", msg.Subject, msg.Data)
	}
	want := map[string]string{
		"Nats-Msg-Id":      "clerk-test:msg_1",
		"Idpsync-Source":   "clerk-test",
		"Idpsync-Event-Id": "msg_1",
		"Idpsync-Type":     "user.created",
		"traceparent":      "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
	}
	for k, v := range want {
		if got := msg.Header.Get(k); got != v {
			t.Errorf("header %s = %q, want %q", k, got, v)
		}
	}
	for k := range msg.Header {
		if _, documented := want[k]; !documented && !strings.HasPrefix(k, "Nats-") { // Nats-*: added by the direct get
			t.Errorf("header %s is not in the documented set", k)
		}
	}
	if got := (metricValue(t, e.reg, "idpsync_webhook_requests_total", "clerk-test", "accepted")); got != 1 {
		t.Errorf("accepted counter = %v", got)
	}
}

// The IdP retries a delivery it thinks failed; the stream keeps one copy and the retry is a
// success too.
func TestDuplicateDeliveryIsStoredOnce(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	body := userCreated("user_1")
	for i, want := range []string{`{"status":"accepted"}`, `{"status":"duplicate"}`} {
		resp := e.post(t, "/webhooks/clerk-test", "msg_dup", body, nil, secret)
		got, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusAccepted || strings.TrimSpace(string(got)) != want {
			t.Fatalf("delivery %d: %d %s", i, resp.StatusCode, got)
		}
	}
	if n := e.streamMsgs(t); n != 1 {
		t.Fatalf("stream holds %d messages, want 1", n)
	}
}

func TestRotationAcceptsOldAndNewSecrets(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	for i, s := range []string{secret, oldSecret} {
		if resp := e.post(t, "/webhooks/clerk-test", fmt.Sprintf("msg_%d", i), userCreated("user_1"), nil, s); resp.StatusCode != http.StatusAccepted {
			t.Fatalf("secret %d: status %d", i, resp.StatusCode)
		}
	}
}

// Every bad request gets its own clear answer, and nothing reaches the stream.
func TestRejectionsAnswerClearlyAndPublishNothing(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	body := userCreated("user_1")
	big := append(userCreated("user_1"), bytes.Repeat([]byte(" "), 5000)...)
	header := func(k, v string) func(*http.Request) { return func(r *http.Request) { r.Header.Set(k, v) } }
	cases := []struct {
		name    string
		method  string
		path    string
		body    []byte
		mutate  func(*http.Request)
		secrets []string
		status  int
		code    string
	}{
		{"unknown source", "POST", "/webhooks/nope", body, nil, []string{secret}, 404, "unknown_source"},
		{"wrong method", "GET", "/webhooks/clerk-test", nil, nil, nil, 405, "method_not_allowed"},
		{"not json", "POST", "/webhooks/clerk-test", body, header("Content-Type", "text/plain"), []string{secret}, 415, "unsupported_media_type"},
		{"no content type", "POST", "/webhooks/clerk-test", body, func(r *http.Request) { r.Header.Del("Content-Type") }, []string{secret}, 415, "unsupported_media_type"},
		{"declared too large", "POST", "/webhooks/clerk-test", big, nil, []string{secret}, 413, "too_large"},
		{"chunked too large", "POST", "/webhooks/clerk-test", big, func(r *http.Request) { r.ContentLength = -1 }, []string{secret}, 413, "too_large"},
		{"unsigned", "POST", "/webhooks/clerk-test", body, header("svix-id", "msg_x"), nil, 400, "bad_request"},
		{"missing signature", "POST", "/webhooks/clerk-test", body, func(r *http.Request) { r.Header.Del("svix-signature") }, []string{secret}, 401, "unauthorized"},
		{"missing id", "POST", "/webhooks/clerk-test", body, func(r *http.Request) { r.Header.Del("svix-id") }, []string{secret}, 400, "bad_request"},
		{"wrong secret", "POST", "/webhooks/clerk-test", body, nil, []string{"whsec_" + strings.Repeat("QUFB", 8)}, 401, "unauthorized"},
		{"tampered body", "POST", "/webhooks/clerk-test", body, func(r *http.Request) {
			r.Body = io.NopCloser(bytes.NewReader(userCreated("user_2")))
		}, []string{secret}, 401, "unauthorized"},
		{"stale timestamp", "POST", "/webhooks/clerk-test", body, header("svix-timestamp", fmt.Sprint(time.Now().Add(-10*time.Minute).Unix())), []string{secret}, 401, "unauthorized"},
		{"future timestamp", "POST", "/webhooks/clerk-test", body, header("svix-timestamp", fmt.Sprint(time.Now().Add(10*time.Minute).Unix())), []string{secret}, 401, "unauthorized"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var resp *http.Response
			if c.method == "POST" {
				resp = e.post(t, c.path, "msg_"+c.name, c.body, c.mutate, c.secrets...)
			} else {
				var err error
				if resp, err = http.Get(e.srv.URL + c.path); err != nil {
					t.Fatal(err)
				}
				defer resp.Body.Close()
				if allow := resp.Header.Get("Allow"); allow != "POST" {
					t.Errorf("Allow = %q", allow)
				}
			}
			got, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != c.status || !strings.Contains(string(got), `"error":"`+c.code+`"`) {
				t.Fatalf("got %d %s, want %d %s", resp.StatusCode, got, c.status, c.code)
			}
		})
	}
	if n := e.streamMsgs(t); n != 0 {
		t.Fatalf("rejected requests published %d messages", n)
	}
	// Verification failures are counted by reason; unknown paths never become labels.
	if got := (metricValue(t, e.reg, "idpsync_webhook_verification_failures_total", "clerk-test", "invalid_signature")); got != 2 {
		t.Errorf("invalid_signature failures = %v, want 2", got)
	}
	if got := (metricValue(t, e.reg, "idpsync_webhook_requests_total", "unknown", "unknown_source")); got != 1 {
		t.Errorf("unknown_source = %v", got)
	}
	// Logs say what went wrong without secrets or signatures.
	logs := e.logs.String()
	if !strings.Contains(logs, `"reason":"timestamp_too_old"`) {
		t.Errorf("logs lack the rejection reason:\n%s", logs)
	}
	for _, s := range []string{secret, oldSecret, strings.TrimPrefix(secret, "whsec_"), "v1,"} {
		if strings.Contains(logs, s) {
			t.Fatalf("logs contain %q", s)
		}
	}
}

// A payload that verifies but cannot be read is the IdP's own: it is accepted and travels on the
// "invalid" subject so that the worker keeps it as a dead letter.
func TestVerifiedButUnreadablePayloadIsAccepted(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	resp := e.post(t, "/webhooks/clerk-test", "msg_bad", []byte(`{"data": [1, 2`), nil, secret)
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("status %d", resp.StatusCode)
	}
	msg, err := e.stream.GetMsg(t.Context(), 1)
	if err != nil {
		t.Fatal(err)
	}
	if msg.Subject != "idpsync.events.clerk-test.invalid" || msg.Header.Get("Idpsync-Event-Id") != "msg_bad" || msg.Header.Get("Idpsync-Type") != "" {
		t.Fatalf("subject %q headers %v", msg.Subject, msg.Header)
	}
}

// When NATS cannot take the event the IdP is told to retry, and the retry lands once NATS is back.
func TestNATSDownAnswers503ThenTheRetryLands(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.nats.Shutdown()

	resp := e.post(t, "/webhooks/clerk-test", "msg_outage", userCreated("user_1"), nil, secret)
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") != "7" {
		t.Fatalf("during the outage: %d, Retry-After %q", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	if r, err := http.Get(e.srv.URL + "/readyz"); err != nil || r.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("readyz during the outage: %v %v", r.StatusCode, err)
	}

	e.nats.Restart()
	waitFor(t, func() bool { return e.bus.Conn().IsConnected() })
	resp = e.post(t, "/webhooks/clerk-test", "msg_outage", userCreated("user_1"), nil, secret)
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("the retry: %d", resp.StatusCode)
	}
	if n := e.streamMsgs(t); n != 1 {
		t.Fatalf("stream holds %d messages", n)
	}
	if r, err := http.Get(e.srv.URL + "/readyz"); err != nil || r.StatusCode != http.StatusOK {
		t.Fatalf("readyz after: %v %v", r.StatusCode, err)
	}
}

func TestHealthz(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.nats.Shutdown()
	// Alive, even when not ready.
	if r, err := http.Get(e.srv.URL + "/healthz"); err != nil || r.StatusCode != http.StatusOK {
		t.Fatalf("healthz: %v %v", r, err)
	}
}

// metricValue reads the counter name{source, <second label>} from reg; 0 when it was never
// incremented.
func metricValue(t *testing.T, reg *prometheus.Registry, name, source, second string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	metrics:
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				want := second
				if lp.GetName() == "source" {
					want = source
				}
				if lp.GetValue() != want {
					continue metrics
				}
			}
			return m.GetCounter().GetValue()
		}
	}
	return 0
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatal("condition not met within 15s")
		case <-time.After(20 * time.Millisecond):
		}
	}
}
