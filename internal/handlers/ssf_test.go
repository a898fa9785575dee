package handlers_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"fmt"
	"io"
	"iter"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivertype"

	"github.com/idpsync/idpsync/internal/events"
	"github.com/idpsync/idpsync/internal/handlers"
	"github.com/idpsync/idpsync/internal/provider"
	"github.com/idpsync/idpsync/internal/ssf"
	"github.com/idpsync/idpsync/internal/ssf/ssftest"
	"github.com/idpsync/idpsync/internal/store"
	"github.com/idpsync/idpsync/internal/store/storetest"
)

var (
	keyOnce sync.Once
	testKey *rsa.PrivateKey
)

func signingKey(t testing.TB) *rsa.PrivateKey {
	keyOnce.Do(func() {
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			panic(err)
		}
		testKey = k
	})
	return testKey
}

// Tokens of the two receivers of every harness.
var (
	tokenA = strings.Repeat("a", 40)
	tokenB = strings.Repeat("b", 40)
)

// harness is a transmitter over a fresh schema, with River working the ssf queue.
type harness struct {
	t     testing.TB
	pool  *pgxpool.Pool
	cfg   ssf.Config
	ssf   *handlers.SSF
	river *river.Client[pgx.Tx]
	url   string // the transmitter's issuer
}

// fastRetry retries failed jobs after 20 ms, so that tests see retries without River's backoff.
type fastRetry struct{}

func (fastRetry) NextRetry(*rivertype.JobRow) time.Time { return time.Now().Add(20 * time.Millisecond) }

func newHarness(t testing.TB, change func(*ssf.Config)) *harness {
	t.Helper()
	return startHarness(t, change, true)
}

// startHarness is newHarness, with River working the ssf queue only when work is set.
func startHarness(t testing.TB, change func(*ssf.Config), work bool, register ...func(*river.Workers, *handlers.SSF, *pgxpool.Pool)) *harness {
	t.Helper()
	pool, schema := storetest.NewSchema(t)
	srv := httptest.NewUnstartedServer(nil)
	cfg := ssf.Config{
		Issuer: "http://" + srv.Listener.Addr().String(),
		Keys:   []ssf.KeyFile{{File: "unused.pem"}},
		Receivers: []ssf.Receiver{
			{Name: "rp-a", Token: tokenA, Audience: []string{"https://rp-a.example.com"}},
			{Name: "rp-b", Token: tokenB},
		},
		Push: ssf.PushConfig{AllowHTTP: true, PausedRecheck: 50 * time.Millisecond, MaxAttempts: 4, Timeout: 2 * time.Second},
		Poll: ssf.PollConfig{Wait: 300 * time.Millisecond, Redeliver: time.Second},
	}
	if change != nil {
		change(&cfg)
	}
	cfg.ApplyDefaults()
	signer, err := ssf.NewSigner([]ssf.Key{{ID: "k1", Private: signingKey(t)}}, "")
	if err != nil {
		t.Fatal(err)
	}
	logger := slog.New(slog.DiscardHandler)
	s, err := handlers.NewSSF(cfg, pool, signer, logger, nil)
	if err != nil {
		t.Fatal(err)
	}
	workers := river.NewWorkers()
	s.Register(workers)
	for _, r := range register {
		r(workers, s, pool)
	}
	client, err := river.NewClient(riverpgxv5.New(pool), &river.Config{
		Queues: map[string]river.QueueConfig{
			handlers.QueueSSF:    {MaxWorkers: 10, FetchCooldown: 5 * time.Millisecond, FetchPollInterval: 20 * time.Millisecond},
			handlers.QueueRevoke: {MaxWorkers: 2, FetchCooldown: 5 * time.Millisecond, FetchPollInterval: 20 * time.Millisecond},
		},
		Workers:     workers,
		Schema:      schema,
		RetryPolicy: fastRetry{},
		Logger:      logger,
	})
	if err != nil {
		t.Fatal(err)
	}
	s.UseJobs(client)
	tr, err := ssf.NewTransmitter(cfg, signer, s.Store(), logger)
	if err != nil {
		t.Fatal(err)
	}
	srv.Config.Handler = tr.Handler()
	srv.Start()
	t.Cleanup(srv.Close)
	h := &harness{t: t, pool: pool, cfg: cfg, ssf: s, river: client, url: cfg.Issuer}
	if !work {
		return h
	}
	if err := client.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = client.Stop(ctx)
	})
	return h
}

// call makes an API call with token and decodes a JSON answer into out (when not nil).
func (h *harness) call(method, path, token string, body any, out any) int {
	h.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	default:
		j, _ := json.Marshal(b)
		rd = bytes.NewReader(j)
	}
	req, _ := http.NewRequest(method, h.url+path, rd)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	if out != nil && len(raw) > 0 {
		if err := json.Unmarshal(raw, out); err != nil {
			h.t.Fatalf("%s %s: answer %q: %v", method, path, raw, err)
		}
	}
	if res.StatusCode >= 400 {
		var e ssf.SETError
		if json.Unmarshal(raw, &e) != nil || e.Err == "" {
			h.t.Errorf("%s %s: error answer %d %q lacks the {err, description} shape", method, path, res.StatusCode, raw)
		}
	}
	return res.StatusCode
}

// receiver starts a push receiver for receiver A's audience.
func (h *harness) receiver() *ssftest.Receiver {
	v := &ssftest.Verifier{JWKSURI: h.url + "/jwks.json", Issuer: h.url, Audience: "https://rp-a.example.com"}
	return ssftest.NewReceiver(h.t, v, "Bearer receiver-secret")
}

// pushStream creates a push stream of receiver A to r requesting events (all when none).
func (h *harness) pushStream(r *ssftest.Receiver, evs ...string) ssf.StreamConfig {
	h.t.Helper()
	if len(evs) == 0 {
		evs = ssf.EventTypes
	}
	var cfg ssf.StreamConfig
	st := h.call("POST", "/ssf/stream", tokenA, map[string]any{
		"delivery":         map[string]any{"method": ssf.MethodPush, "endpoint_url": r.URL + "/events", "authorization_header": "Bearer receiver-secret"},
		"events_requested": evs,
	}, &cfg)
	if st != http.StatusCreated {
		h.t.Fatalf("creating a push stream: %d", st)
	}
	return cfg
}

// emit runs f in a transaction that commits, as a job's would.
func (h *harness) emit(f func(ctx context.Context, tx pgx.Tx) error) {
	h.t.Helper()
	if err := pgx.BeginFunc(context.Background(), h.pool, func(tx pgx.Tx) error { return f(context.Background(), tx) }); err != nil {
		h.t.Fatal(err)
	}
}

func (h *harness) disable(user string) {
	h.emit(func(ctx context.Context, tx pgx.Tx) error {
		_, err := h.ssf.Emit(ctx, tx, nil, ssf.AccountDisabled(ssf.User{Issuer: h.cfg.SubjectIssuer("clerk"), ID: user, Email: user + "@example.com"}, ""))
		return err
	})
}

// setStates returns the outbox's states of stream id, by jti.
func (h *harness) setStates(id string) map[string]string {
	h.t.Helper()
	rows, err := h.pool.Query(context.Background(), `SELECT jti, state || coalesce(': ' || detail, '') FROM ssf_sets WHERE stream_id = $1`, id)
	if err != nil {
		h.t.Fatal(err)
	}
	states, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (kv [2]string, err error) {
		err = r.Scan(&kv[0], &kv[1])
		return kv, err
	})
	if err != nil {
		h.t.Fatal(err)
	}
	m := map[string]string{}
	for _, kv := range states {
		m[kv[0]] = kv[1]
	}
	return m
}

func (h *harness) waitState(id, jti, prefix string) {
	h.t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if strings.HasPrefix(h.setStates(id)[jti], prefix) {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	h.t.Fatalf("SET %s is %q, want %s…", jti, h.setStates(id)[jti], prefix)
}

func TestSSFDiscoveryAndJWKS(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	var md map[string]any
	if st := h.call("GET", "/.well-known/ssf-configuration", "", nil, &md); st != 200 {
		t.Fatalf("discovery: %d", st)
	}
	want := map[string]any{
		"spec_version": "1_0", "issuer": h.url, "jwks_uri": h.url + "/jwks.json",
		"configuration_endpoint": h.url + "/ssf/stream", "status_endpoint": h.url + "/ssf/status",
		"add_subject_endpoint": h.url + "/ssf/subjects:add", "remove_subject_endpoint": h.url + "/ssf/subjects:remove",
		"verification_endpoint": h.url + "/ssf/verify", "default_subjects": "ALL",
	}
	for k, v := range want {
		if md[k] != v {
			t.Errorf("%s = %v, want %v", k, md[k], v)
		}
	}
	if fmt.Sprint(md["delivery_methods_supported"]) != "[urn:ietf:rfc:8935 urn:ietf:rfc:8936]" {
		t.Errorf("delivery_methods_supported = %v", md["delivery_methods_supported"])
	}
	if fmt.Sprint(md["authorization_schemes"]) != "[map[spec_urn:urn:ietf:rfc:6750]]" {
		t.Errorf("authorization_schemes = %v", md["authorization_schemes"])
	}
	var jwks struct{ Keys []map[string]any }
	if st := h.call("GET", "/jwks.json", "", nil, &jwks); st != 200 || len(jwks.Keys) != 1 || jwks.Keys[0]["kid"] != "k1" {
		t.Fatalf("jwks: %d %v", st, jwks)
	}
}

// TestSSFStreamManagement: create, read, update, replace and delete a stream, each receiver
// seeing only its own, and every kind of bad request answered 400 with the error shape.
func TestSSFStreamManagement(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	if st := h.call("GET", "/ssf/stream", "", nil, nil); st != 401 {
		t.Errorf("no token: %d, want 401", st)
	}
	if st := h.call("GET", "/ssf/stream", strings.Repeat("c", 40), nil, nil); st != 401 {
		t.Errorf("unknown token: %d, want 401", st)
	}

	var created ssf.StreamConfig
	st := h.call("POST", "/ssf/stream", tokenA, map[string]any{
		"delivery":         map[string]any{"method": ssf.MethodPush, "endpoint_url": "https://rp-a.example.com/events", "authorization_header": "Bearer x"},
		"events_requested": []string{ssf.TypeSessionRevoked, ssf.TypeAccountDisabled, "urn:example:unknown"},
		"description":      strings.Repeat("é", 300),
	}, &created)
	if st != 201 {
		t.Fatalf("create: %d", st)
	}
	if created.StreamID == "" || created.Iss != h.url || fmt.Sprint(created.Aud) != "[https://rp-a.example.com]" ||
		fmt.Sprint(created.EventsDelivered) != fmt.Sprint([]string{ssf.TypeSessionRevoked, ssf.TypeAccountDisabled}) ||
		len(created.EventsRequested) != 3 || len(created.EventsSupported) != len(ssf.EventTypes) || len([]rune(created.Description)) != 256 {
		t.Errorf("created = %+v", created)
	}
	var poll ssf.StreamConfig
	if st := h.call("POST", "/ssf/stream", tokenA, map[string]any{"events_requested": []string{ssf.TypeAccountPurged}}, &poll); st != 201 {
		t.Fatalf("create without delivery: %d", st)
	}
	if poll.Delivery.Method != ssf.MethodPoll || poll.Delivery.EndpointURL != h.url+"/ssf/poll/"+poll.StreamID {
		t.Errorf("a stream without delivery is poll with the transmitter's endpoint: %+v", poll.Delivery)
	}

	var one ssf.StreamConfig
	if st := h.call("GET", "/ssf/stream?stream_id="+created.StreamID, tokenA, nil, &one); st != 200 || one.StreamID != created.StreamID {
		t.Errorf("read one: %d %+v", st, one)
	}
	var all []ssf.StreamConfig
	if st := h.call("GET", "/ssf/stream", tokenA, nil, &all); st != 200 || len(all) != 2 || all[0].StreamID != created.StreamID {
		t.Errorf("read all: %d %d streams", st, len(all))
	}
	var none []ssf.StreamConfig
	if st := h.call("GET", "/ssf/stream", tokenB, nil, &none); st != 200 || none == nil || len(none) != 0 {
		t.Errorf("another receiver's list: %d %v, want []", st, none)
	}
	for _, req := range []struct{ method, path string }{
		{"GET", "/ssf/stream?stream_id=" + created.StreamID}, {"DELETE", "/ssf/stream?stream_id=" + created.StreamID},
		{"GET", "/ssf/status?stream_id=" + created.StreamID},
	} {
		if st := h.call(req.method, req.path, tokenB, nil, nil); st != 404 {
			t.Errorf("%s %s with another receiver's token: %d, want 404", req.method, req.path, st)
		}
	}
	if st := h.call("PATCH", "/ssf/stream", tokenB, map[string]any{"stream_id": created.StreamID, "description": "mine"}, nil); st != 404 {
		t.Errorf("PATCH of another receiver's stream: %d, want 404", st)
	}

	// PATCH changes what it names and keeps the rest.
	var patched ssf.StreamConfig
	if st := h.call("PATCH", "/ssf/stream", tokenA, map[string]any{"stream_id": created.StreamID, "description": "patched",
		"iss": h.url, "events_delivered": created.EventsDelivered}, &patched); st != 200 {
		t.Fatalf("patch: %d", st)
	}
	if patched.Description != "patched" || patched.Delivery != created.Delivery || len(patched.EventsDelivered) != 2 {
		t.Errorf("patched = %+v", patched)
	}
	// PUT deletes the receiver-supplied members it omits: no delivery means poll.
	var replaced ssf.StreamConfig
	if st := h.call("PUT", "/ssf/stream", tokenA, map[string]any{"stream_id": created.StreamID, "events_requested": []string{ssf.TypeAccountEnabled}}, &replaced); st != 200 {
		t.Fatalf("put: %d", st)
	}
	if replaced.Description != "" || replaced.Delivery.Method != ssf.MethodPoll || fmt.Sprint(replaced.EventsDelivered) != "["+ssf.TypeAccountEnabled+"]" {
		t.Errorf("replaced = %+v", replaced)
	}

	bad := []struct {
		method string
		body   any
		why    string
	}{
		{"POST", `{"delivery":`, "truncated JSON"},
		{"POST", `[]`, "not an object"},
		{"POST", `{} {}`, "two objects"},
		{"POST", map[string]any{"stream_id": "mine"}, "stream_id chosen by the receiver"},
		{"POST", map[string]any{"delivery": map[string]any{"method": "urn:example:carrier-pigeon"}}, "unknown method"},
		{"POST", map[string]any{"delivery": map[string]any{"method": ssf.MethodPush}}, "push without endpoint"},
		{"POST", map[string]any{"delivery": map[string]any{"method": ssf.MethodPush, "endpoint_url": "/relative"}}, "relative endpoint"},
		{"POST", map[string]any{"delivery": map[string]any{"method": ssf.MethodPush, "endpoint_url": "https://u:p@rp.example.com/"}}, "credentials in the URL"},
		{"POST", map[string]any{"delivery": map[string]any{"method": ssf.MethodPush, "endpoint_url": "https://rp.example.com/", "authorization_header": "a\r\nX-Injected: 1"}}, "header injection"},
		{"POST", map[string]any{"delivery": map[string]any{"method": ssf.MethodPoll, "endpoint_url": "https://rp.example.com/"}}, "poll endpoint chosen by the receiver"},
		{"POST", map[string]any{"events_requested": make([]string, 65)}, "too many event types"},
		{"POST", map[string]any{"events_requested": []string{strings.Repeat("x", 300)}}, "a long event type"},
		{"POST", map[string]any{"aud": "https://someone-else.example.com"}, "aud chosen by the receiver"},
		{"PATCH", map[string]any{"description": "x"}, "PATCH without stream_id"},
		{"PATCH", map[string]any{"stream_id": created.StreamID, "iss": "https://evil.example.com"}, "another iss"},
		{"PATCH", map[string]any{"stream_id": created.StreamID, "events_delivered": []string{}}, "events_delivered not current"},
		{"PUT", map[string]any{"stream_id": created.StreamID, "inactivity_timeout": 10}, "inactivity_timeout"},
	}
	for _, b := range bad {
		if st := h.call(b.method, "/ssf/stream", tokenA, b.body, nil); st != 400 {
			t.Errorf("%s: %d, want 400", b.why, st)
		}
	}
	if st := h.call("POST", "/ssf/stream", tokenA, `{"description":"`+strings.Repeat("x", 70000)+`"}`, nil); st != 413 {
		t.Errorf("a body over the limit: %d, want 413", st)
	}

	if st := h.call("DELETE", "/ssf/stream?stream_id="+created.StreamID, tokenA, nil, nil); st != 204 {
		t.Errorf("delete: %d", st)
	}
	if st := h.call("GET", "/ssf/stream?stream_id="+created.StreamID, tokenA, nil, nil); st != 404 {
		t.Errorf("read after delete: %d, want 404", st)
	}
	if st := h.call("DELETE", "/ssf/stream", tokenA, nil, nil); st != 400 {
		t.Errorf("delete without stream_id: %d, want 400", st)
	}
}

func TestSSFStreamLimit(t *testing.T) {
	t.Parallel()
	h := newHarness(t, func(c *ssf.Config) { c.Limits.MaxStreams = 2 })
	for i := range 2 {
		if st := h.call("POST", "/ssf/stream", tokenA, map[string]any{}, nil); st != 201 {
			t.Fatalf("stream %d: %d", i, st)
		}
	}
	if st := h.call("POST", "/ssf/stream", tokenA, map[string]any{}, nil); st != 403 {
		t.Errorf("a stream over the limit: %d, want 403", st)
	}
	if st := h.call("POST", "/ssf/stream", tokenB, map[string]any{}, nil); st != 201 {
		t.Errorf("another receiver's first stream: %d, want 201", st)
	}
}

// TestSSFPushDelivers: a SET emitted in a transaction reaches the receiver once, verified by
// jwx, with the stream's aud; the outbox records it delivered with what was sent.
func TestSSFPushDelivers(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	r := h.receiver()
	stream := h.pushStream(r)
	other := h.pushStream(r, ssf.TypeSessionRevoked) // does not request account-disabled
	h.disable("user_1")
	got := r.WaitAccepted(t, 1, 5*time.Second)
	if got[0].Type != ssf.TypeAccountDisabled || got[0].Claims["aud"] != "https://rp-a.example.com" {
		t.Errorf("received %s aud %v", got[0].Type, got[0].Claims["aud"])
	}
	sub := got[0].Claims["sub_id"].(map[string]any)
	if sub["format"] != "iss_sub" || sub["sub"] != "user_1" || sub["iss"] != h.cfg.SubjectIssuer("clerk") {
		t.Errorf("sub_id = %v", sub)
	}
	h.waitState(stream.StreamID, got[0].JTI, "delivered")
	var jwt string
	if err := h.pool.QueryRow(context.Background(), `SELECT jwt FROM ssf_sets WHERE jti = $1`, got[0].JTI).Scan(&jwt); err != nil || jwt != got[0].Raw {
		t.Errorf("the outbox keeps %q, the receiver got %q (%v)", jwt, got[0].Raw, err)
	}
	if n := len(h.setStates(other.StreamID)); n != 0 {
		t.Errorf("a stream that did not request account-disabled got %d SETs", n)
	}
	time.Sleep(200 * time.Millisecond)
	if n := len(r.Accepted()); n != 1 {
		t.Errorf("receiver got %d SETs, want exactly 1", n)
	}
}

// TestSSFPauseResume: while paused, SETs are held; after resume each is delivered exactly once.
// Disabling drops what a stream holds, and nothing is recorded for a disabled stream.
func TestSSFPauseResume(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	r := h.receiver()
	stream := h.pushStream(r)
	status := func(s string) {
		t.Helper()
		var out ssf.Status
		if st := h.call("POST", "/ssf/status", tokenA, map[string]any{"stream_id": stream.StreamID, "status": s, "reason": "test"}, &out); st != 200 || out.Status != s {
			t.Fatalf("status %s: %d %+v", s, st, out)
		}
		var read ssf.Status
		if st := h.call("GET", "/ssf/status?stream_id="+stream.StreamID, tokenA, nil, &read); st != 200 || read.Status != s || read.Reason != "test" {
			t.Fatalf("read status: %d %+v", st, read)
		}
	}
	status("paused")
	for i := range 3 {
		h.disable(fmt.Sprintf("user_%d", i))
	}
	time.Sleep(300 * time.Millisecond) // several rechecks of the paused stream
	if n := len(r.Accepted()); n != 0 {
		t.Fatalf("a paused stream delivered %d SETs", n)
	}
	for jti, s := range h.setStates(stream.StreamID) {
		if s != "pending" {
			t.Errorf("held SET %s is %s, want pending", jti, s)
		}
	}
	status("enabled")
	r.WaitAccepted(t, 3, 5*time.Second)
	time.Sleep(300 * time.Millisecond)
	got := r.Accepted()
	if len(got) != 3 {
		t.Fatalf("after resume the receiver got %d SETs, want exactly 3", len(got))
	}
	seen := map[string]bool{}
	for _, g := range got {
		if seen[g.JTI] {
			t.Errorf("SET %s delivered twice", g.JTI)
		}
		seen[g.JTI] = true
	}

	status("paused")
	h.disable("user_held")
	status("disabled")
	states := h.setStates(stream.StreamID)
	dropped := 0
	for _, s := range states {
		if s == "failed: dropped: the stream was disabled" {
			dropped++
		}
	}
	if dropped != 1 {
		t.Errorf("disabling dropped %d held SETs, want 1: %v", dropped, states)
	}
	h.disable("user_after")
	if n := len(h.setStates(stream.StreamID)); n != 4 {
		t.Errorf("a disabled stream got a SET recorded: %d rows, want 4", n)
	}
	status("enabled")
	time.Sleep(300 * time.Millisecond)
	if n := len(r.Accepted()); n != 3 {
		t.Errorf("the dropped SET was delivered after all: %d", n)
	}
	if st := h.call("POST", "/ssf/status", tokenA, map[string]any{"stream_id": stream.StreamID, "status": "stopped"}, nil); st != 400 {
		t.Errorf("an unknown status: %d, want 400", st)
	}
}

// TestSSFPushFailures: a 5xx is retried until delivered; a 4xx fails the SET at once with the
// receiver's error; attempts run out into a failed SET.
func TestSSFPushFailures(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	r := h.receiver()
	stream := h.pushStream(r)

	var mu sync.Mutex
	tries := map[string]int{}
	r.Respond(func(rec ssftest.Received) (int, *ssftest.SETError) {
		mu.Lock()
		defer mu.Unlock()
		tries[rec.JTI]++
		sub := rec.Claims["sub_id"].(map[string]any)["sub"]
		switch {
		case sub == "flaky" && tries[rec.JTI] < 3:
			return 503, nil
		case sub == "refused":
			return 400, &ssftest.SETError{Err: ssftest.ErrAccessDenied, Description: "not yours"}
		case sub == "down":
			return 502, nil
		}
		return 202, nil
	})
	h.disable("flaky")
	h.disable("refused")
	h.disable("down")
	got := r.WaitAccepted(t, 1, 5*time.Second)
	h.waitState(stream.StreamID, got[0].JTI, "delivered")
	mu.Lock()
	if tries[got[0].JTI] != 3 {
		t.Errorf("the flaky SET was tried %d times, want 3", tries[got[0].JTI])
	}
	mu.Unlock()

	jtiOf := func(sub string) string {
		var jti string
		if err := h.pool.QueryRow(context.Background(), `SELECT jti FROM ssf_sets WHERE stream_id = $1 AND claims->'sub_id'->>'sub' = $2`, stream.StreamID, sub).Scan(&jti); err != nil {
			t.Fatal(err)
		}
		return jti
	}
	refused, down := jtiOf("refused"), jtiOf("down")
	h.waitState(stream.StreamID, refused, "failed: the receiver answered 400 access_denied: not yours")
	h.waitState(stream.StreamID, down, "failed: gave up after 4 attempts")
	mu.Lock()
	defer mu.Unlock()
	if tries[refused] != 1 || tries[down] != 4 {
		t.Errorf("refused tried %d times (want 1), down %d (want 4 = max_attempts)", tries[refused], tries[down])
	}
	var states []string
	for deadline := time.Now().Add(3 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		rows, _ := h.pool.Query(context.Background(), `SELECT state FROM river_job WHERE kind = 'idpsync.ssf.push' ORDER BY id`)
		states, _ = pgx.CollectRows(rows, pgx.RowTo[string])
		if fmt.Sprint(states) == "[completed cancelled discarded]" {
			break
		}
	}
	if fmt.Sprint(states) != "[completed cancelled discarded]" {
		t.Errorf("push jobs ended %v, want [completed cancelled discarded]", states)
	}
}

// TestSSFVerification: a verification request becomes a verification SET with the state and
// the stream id as subject; requests closer than min_verification_interval get 429.
func TestSSFVerification(t *testing.T) {
	t.Parallel()
	h := newHarness(t, func(c *ssf.Config) { c.Limits.MinVerificationInterval = time.Hour })
	r := h.receiver()
	stream := h.pushStream(r, ssf.TypeAccountPurged) // verification needs no request
	if st := h.call("POST", "/ssf/verify", tokenA, map[string]any{"stream_id": stream.StreamID, "state": "c3RhdGU="}, nil); st != 204 {
		t.Fatalf("verify: %d", st)
	}
	got := r.WaitAccepted(t, 1, 5*time.Second)
	body := got[0].Claims["events"].(map[string]any)[ssf.TypeVerification].(map[string]any)
	sub := got[0].Claims["sub_id"].(map[string]any)
	if body["state"] != "c3RhdGU=" || sub["format"] != "opaque" || sub["id"] != stream.StreamID {
		t.Errorf("verification SET: %v %v", sub, body)
	}
	if st := h.call("POST", "/ssf/verify", tokenA, map[string]any{"stream_id": stream.StreamID}, nil); st != 429 {
		t.Errorf("a second verification within the interval: %d, want 429", st)
	}
	if st := h.call("POST", "/ssf/verify", tokenB, map[string]any{"stream_id": stream.StreamID}, nil); st != 404 {
		t.Errorf("verification of another receiver's stream: %d, want 404", st)
	}
	if st := h.call("POST", "/ssf/verify", tokenA, map[string]any{"stream_id": stream.StreamID, "state": strings.Repeat("s", 2000)}, nil); st != 400 {
		t.Errorf("a long state: %d, want 400", st)
	}
}

// TestSSFStreamUpdated: a status change decided by the transmitter sends stream-updated, even
// as it pauses the stream.
func TestSSFStreamUpdated(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	r := h.receiver()
	stream := h.pushStream(r)
	if err := h.ssf.ChangeStatus(context.Background(), stream.StreamID, ssf.StatusPaused, "maintenance"); err != nil {
		t.Fatal(err)
	}
	got := r.WaitAccepted(t, 1, 5*time.Second)
	body := got[0].Claims["events"].(map[string]any)[ssf.TypeStreamUpdated].(map[string]any)
	if body["status"] != "paused" || body["reason"] != "maintenance" {
		t.Errorf("stream-updated = %v", body)
	}
}

// TestSSFSubjects: under ALL, a removed subject gets nothing until added back; under NONE only
// added subjects get events, matched by any identifier of the user.
func TestSSFSubjects(t *testing.T) {
	t.Parallel()
	t.Run("ALL", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t, nil)
		r := h.receiver()
		stream := h.pushStream(r)
		subject := map[string]any{"format": "email", "email": "USER_X@example.com"}
		if st := h.call("POST", "/ssf/subjects:remove", tokenA, map[string]any{"stream_id": stream.StreamID, "subject": subject}, nil); st != 204 {
			t.Fatalf("remove: %d", st)
		}
		h.disable("user_x")
		h.disable("user_y")
		r.WaitAccepted(t, 1, 5*time.Second)
		time.Sleep(200 * time.Millisecond)
		if got := r.Accepted(); len(got) != 1 || got[0].Claims["sub_id"].(map[string]any)["sub"] != "user_y" {
			t.Fatalf("after removing user_x the receiver got %d SETs", len(got))
		}
		if st := h.call("POST", "/ssf/subjects:add", tokenA, map[string]any{"stream_id": stream.StreamID, "subject": subject}, nil); st != 200 {
			t.Fatalf("add: %d", st)
		}
		h.disable("user_x")
		r.WaitAccepted(t, 2, 5*time.Second)
	})
	t.Run("NONE", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t, func(c *ssf.Config) { c.DefaultSubjects = ssf.SubjectsNone; c.Limits.MaxSubjects = 2 })
		r := h.receiver()
		stream := h.pushStream(r)
		add := func(sub map[string]any) int {
			return h.call("POST", "/ssf/subjects:add", tokenA, map[string]any{"stream_id": stream.StreamID, "subject": sub, "verified": false}, nil)
		}
		if st := add(map[string]any{"format": "iss_sub", "iss": h.cfg.SubjectIssuer("clerk"), "sub": "user_x"}); st != 200 {
			t.Fatalf("add: %d", st)
		}
		if st := add(map[string]any{"format": "complex", "user": map[string]any{"format": "email", "email": "user_z@example.com"}}); st != 200 {
			t.Fatalf("add complex: %d", st)
		}
		if st := add(map[string]any{"format": "email", "email": "third@example.com"}); st != 403 {
			t.Errorf("a subject over max_subjects: %d, want 403", st)
		}
		h.disable("user_y")
		h.disable("user_x")
		h.disable("user_z")
		got := r.WaitAccepted(t, 2, 5*time.Second)
		time.Sleep(200 * time.Millisecond)
		subs := map[any]bool{}
		for _, g := range r.Accepted() {
			subs[g.Claims["sub_id"].(map[string]any)["sub"]] = true
		}
		if len(got) != 2 || !subs["user_x"] || !subs["user_z"] {
			t.Fatalf("under NONE the receiver got %v, want user_x and user_z", subs)
		}
		if st := h.call("POST", "/ssf/subjects:remove", tokenA, map[string]any{"stream_id": stream.StreamID,
			"subject": map[string]any{"format": "iss_sub", "iss": h.cfg.SubjectIssuer("clerk"), "sub": "user_x"}}, nil); st != 204 {
			t.Fatalf("remove: %d", st)
		}
		h.disable("user_x")
		time.Sleep(300 * time.Millisecond)
		if n := len(r.Accepted()); n != 2 {
			t.Errorf("a removed subject still gets events: %d", n)
		}
		for _, b := range []any{
			map[string]any{"stream_id": stream.StreamID},
			map[string]any{"stream_id": stream.StreamID, "subject": map[string]any{"format": "did", "url": "did:example:1"}},
			map[string]any{"stream_id": stream.StreamID, "subject": map[string]any{"format": "complex", "tenant": map[string]any{"format": "opaque", "id": "t"}}},
			map[string]any{"stream_id": stream.StreamID, "subject": map[string]any{"format": "email", "email": strings.Repeat("a", 600) + "@example.com"}},
		} {
			if st := h.call("POST", "/ssf/subjects:add", tokenA, b, nil); st != 400 {
				t.Errorf("add %v: %d, want 400", b, st)
			}
		}
		if st := h.call("POST", "/ssf/subjects:add", tokenB, map[string]any{"stream_id": stream.StreamID, "subject": map[string]any{"format": "email", "email": "a@example.com"}}, nil); st != 404 {
			t.Errorf("another receiver's stream: %d, want 404", st)
		}
	})
}

// TestSSFPoll: RFC 8936 polling with maxEvents, moreAvailable, acks, setErrs and redelivery of
// unacknowledged SETs; every SET verified with jwx.
func TestSSFPoll(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	var stream ssf.StreamConfig
	if st := h.call("POST", "/ssf/stream", tokenA, map[string]any{"events_requested": ssf.EventTypes}, &stream); st != 201 {
		t.Fatalf("create: %d", st)
	}
	path := strings.TrimPrefix(stream.Delivery.EndpointURL, h.url)
	v := &ssftest.Verifier{JWKSURI: h.url + "/jwks.json", Issuer: h.url, Audience: "https://rp-a.example.com"}
	type answer struct {
		Sets          map[string]string `json:"sets"`
		MoreAvailable bool              `json:"moreAvailable"`
	}
	poll := func(body any) answer {
		t.Helper()
		var a answer
		if st := h.call("POST", path, tokenA, body, &a); st != 200 {
			t.Fatalf("poll: %d", st)
		}
		for jti, set := range a.Sets {
			claims, e := v.Verify(context.Background(), set)
			if e != nil {
				t.Fatalf("polled SET %s: %s: %s", jti, e.Err, e.Description)
			}
			if claims["jti"] != jti {
				t.Errorf("SET under %s has jti %v", jti, claims["jti"])
			}
		}
		return a
	}

	start := time.Now()
	if a := poll(map[string]any{"maxEvents": 10}); len(a.Sets) != 0 || time.Since(start) < 250*time.Millisecond {
		t.Errorf("a long poll on an empty stream answered %d SETs after %s, want none after poll.wait", len(a.Sets), time.Since(start))
	}
	for i := range 3 {
		h.disable(fmt.Sprintf("user_%d", i))
	}
	first := poll(map[string]any{"maxEvents": 2, "returnImmediately": true})
	if len(first.Sets) != 2 || !first.MoreAvailable {
		t.Fatalf("first poll: %d SETs, more %v; want 2, true", len(first.Sets), first.MoreAvailable)
	}
	var acks []string
	for jti := range first.Sets {
		acks = append(acks, jti)
	}
	second := poll(map[string]any{"ack": acks[:1], "setErrs": map[string]any{acks[1]: map[string]any{"err": "invalid_request", "description": "cannot use"}}, "returnImmediately": true})
	if len(second.Sets) != 1 || second.MoreAvailable {
		t.Fatalf("second poll: %d SETs, more %v; want 1, false", len(second.Sets), second.MoreAvailable)
	}
	var third string
	for jti := range second.Sets {
		third = jti
	}
	states := h.setStates(stream.StreamID)
	if states[acks[0]] != "acked" || states[acks[1]] != "failed: receiver error invalid_request: cannot use" || states[third] != "delivered" {
		t.Errorf("states = %v", states)
	}
	if a := poll(map[string]any{"returnImmediately": true}); len(a.Sets) != 0 {
		t.Errorf("an unacknowledged SET came back before poll.redeliver: %v", a.Sets)
	}
	time.Sleep(1100 * time.Millisecond)
	again := poll(map[string]any{"returnImmediately": true})
	if again.Sets[third] != second.Sets[third] {
		t.Errorf("redelivery of %s sent other bytes", third)
	}
	if a := poll(map[string]any{"ack": []string{third}, "maxEvents": 0}); len(a.Sets) != 0 || h.setStates(stream.StreamID)[third] != "acked" {
		t.Errorf("an ack-only poll: %d SETs, state %s", len(a.Sets), h.setStates(stream.StreamID)[third])
	}

	for _, b := range []any{
		map[string]any{"maxEvents": -1},
		map[string]any{"ack": make([]string, 1001)},
		map[string]any{"ack": []string{strings.Repeat("j", 300)}},
		map[string]any{"setErrs": map[string]any{"j": map[string]any{"description": "no err"}}},
		`{"ack": "not a list"}`,
	} {
		if st := h.call("POST", path, tokenA, b, nil); st != 400 {
			t.Errorf("poll %v: %d, want 400", b, st)
		}
	}
	if st := h.call("POST", path, tokenB, map[string]any{}, nil); st != 404 {
		t.Errorf("polling another receiver's stream: %d, want 404", st)
	}
	r := h.receiver()
	push := h.pushStream(r)
	if st := h.call("POST", "/ssf/poll/"+push.StreamID, tokenA, map[string]any{}, nil); st != 400 {
		t.Errorf("polling a push stream: %d, want 400", st)
	}
}

// TestSSFChangeHook: mirror changes become the events they describe, and only transitions do.
func TestSSFChangeHook(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	r := h.receiver()
	h.pushStream(r)
	ctx := context.Background()
	version := int64(0)
	applyUser := func(u events.User) {
		t.Helper()
		version++
		u.Version, u.Raw = version, []byte(`{}`)
		h.emit(func(ctx context.Context, tx pgx.Tx) error {
			res, err := store.ApplyUser(ctx, tx, "clerk", &u, store.ApplyOptions{})
			if err != nil || !res.Applied {
				return err // as the apply job does, a change that did not apply runs no hook
			}
			return h.ssf.React(ctx, tx, nil, handlers.Change{Source: "clerk", Event: events.Event{Envelope: events.Envelope{ID: fmt.Sprint("msg_", version)}, User: &u}, Result: res, EventID: version, ReceivedAt: time.Now()})
		})
	}
	applyMember := func(role string, deleted bool) {
		t.Helper()
		version++
		m := events.Membership{OrganizationID: "org_1", UserID: "user_1", Role: role, Deleted: deleted, Version: version, Raw: []byte(`{}`)}
		h.emit(func(ctx context.Context, tx pgx.Tx) error {
			res, err := store.ApplyMembership(ctx, tx, "clerk", &m, store.ApplyOptions{})
			if err != nil {
				return err
			}
			return h.ssf.React(ctx, tx, nil, handlers.Change{Source: "clerk", Event: events.Event{Membership: &m}, Result: res, ReceivedAt: time.Now()})
		})
	}
	u := events.User{ID: "user_1", PrimaryEmail: "ada@example.com"}
	applyUser(u) // created: nothing
	u.FirstName = "Ada"
	applyUser(u) // updated: nothing
	u.Banned = true
	applyUser(u) // account-disabled
	u.Locked = true
	applyUser(u) // still disabled: nothing
	u.Banned, u.Locked = false, false
	applyUser(u) // account-enabled
	u.PrimaryEmail = "ada@new.example.com"
	applyUser(u)                 // identifier-changed
	applyMember("member", false) // added: nothing
	applyMember("admin", false)  // token-claims-change
	applyMember("admin", false)  // same role: nothing
	u.Deleted = true
	applyUser(u) // account-purged
	applyUser(u) // already deleted: not applied, nothing

	want := []string{ssf.TypeAccountDisabled, ssf.TypeAccountEnabled, ssf.TypeIdentifierChanged, ssf.TypeTokenClaimsChange, ssf.TypeAccountPurged}
	r.WaitAccepted(t, len(want), 5*time.Second)
	time.Sleep(200 * time.Millisecond)
	got := r.Accepted()
	byType := map[string]ssftest.Received{}
	for _, g := range got {
		byType[g.Type] = g
	}
	if len(got) != len(want) || len(byType) != len(want) {
		t.Fatalf("received %d SETs of %d types, want %v", len(got), len(byType), want)
	}
	ic := byType[ssf.TypeIdentifierChanged]
	if ic.Claims["sub_id"].(map[string]any)["email"] != "ada@example.com" ||
		ic.Claims["events"].(map[string]any)[ssf.TypeIdentifierChanged].(map[string]any)["new-value"] != "ada@new.example.com" {
		t.Errorf("identifier-changed = %v", ic.Claims)
	}
	if ic.Claims["txn"] == nil || !strings.HasPrefix(ic.Claims["txn"].(string), "clerk:msg_") {
		t.Errorf("txn = %v, want the source and the IdP's event id", ic.Claims["txn"])
	}
	tc := byType[ssf.TypeTokenClaimsChange].Claims["events"].(map[string]any)[ssf.TypeTokenClaimsChange].(map[string]any)
	if fmt.Sprint(tc["claims"]) != "map[org_id:org_1 org_role:admin]" {
		t.Errorf("token-claims-change claims = %v", tc["claims"])
	}

	// A session revoked by the revocation policy.
	h.emit(func(ctx context.Context, tx pgx.Tx) error {
		return h.ssf.SessionRevoked(ctx, tx, handlers.RevokeMeta{Source: "clerk", UserID: "user_1", Trigger: "user.banned", Txn: "clerk:msg_9"}, "sess_1", time.Now())
	})
	got = r.WaitAccepted(t, len(want)+1, 5*time.Second)
	sr := got[len(got)-1]
	sub := sr.Claims["sub_id"].(map[string]any)
	if sr.Type != ssf.TypeSessionRevoked || sub["format"] != "complex" || sub["session"].(map[string]any)["id"] != "sess_1" || sr.Claims["txn"] != "clerk:msg_9" {
		t.Errorf("session-revoked = %v", sr.Claims)
	}
	_ = ctx
}

// FuzzSSFManagementAPI sends arbitrary JSON to every management and poll endpoint: nothing a
// receiver sends may make the transmitter fail (5xx), and every refusal has the error shape.
func FuzzSSFManagementAPI(f *testing.F) {
	h := newHarness(f, func(c *ssf.Config) { c.Poll.Wait = 10 * time.Millisecond })
	var stream ssf.StreamConfig
	if st := h.call("POST", "/ssf/stream", tokenA, map[string]any{"events_requested": ssf.EventTypes}, &stream); st != 201 {
		f.Fatalf("create: %d", st)
	}
	seeds := []string{
		`{}`, `{"stream_id":"$ID"}`, `{"stream_id":"$ID","status":"paused","reason":"x"}`,
		`{"stream_id":"$ID","subject":{"format":"email","email":"a@example.com"},"verified":true}`,
		`{"stream_id":"$ID","subject":{"format":"complex","user":{"format":"iss_sub","iss":"https://i","sub":"s"},"session":{"format":"opaque","id":"x"}}}`,
		`{"stream_id":"$ID","state":"s"}`, `{"maxEvents":3,"returnImmediately":true,"ack":["x"],"setErrs":{"y":{"err":"e","description":"d"}}}`,
		`{"delivery":{"method":"urn:ietf:rfc:8935","endpoint_url":"https://rp.example.com/e","authorization_header":"Bearer t"},"events_requested":["x"],"description":"d"}`,
		`{"stream_id":"$ID","aud":["a","b"],"events_delivered":null,"delivery":{"method":"urn:ietf:rfc:8936"}}`,
		`null`, `[1,2]`, `"x"`, `{"stream_id":1e400}`, "{\"description\":\"\xff\"}",
	}
	for i, s := range seeds {
		f.Add(uint8(i), s)
	}
	endpoints := []struct{ method, path string }{
		{"POST", "/ssf/stream"}, {"PATCH", "/ssf/stream"}, {"PUT", "/ssf/stream"}, {"POST", "/ssf/status"},
		{"POST", "/ssf/subjects:add"}, {"POST", "/ssf/subjects:remove"}, {"POST", "/ssf/verify"}, {"POST", "/ssf/poll/" + stream.StreamID},
	}
	f.Fuzz(func(t *testing.T, which uint8, body string) {
		e := endpoints[int(which)%len(endpoints)]
		req, _ := http.NewRequest(e.method, h.url+e.path, strings.NewReader(strings.ReplaceAll(body, "$ID", stream.StreamID)))
		req.Header.Set("Authorization", "Bearer "+tokenA)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode >= 500 {
			t.Fatalf("%s %s %q: %d %s", e.method, e.path, body, res.StatusCode, raw)
		}
		if res.StatusCode >= 400 {
			var se ssf.SETError
			if json.Unmarshal(raw, &se) != nil || se.Err == "" {
				t.Fatalf("%s %s: refusal %d %q lacks {err, description}", e.method, e.path, res.StatusCode, raw)
			}
		}
		if res.StatusCode < 300 && len(raw) > 0 && !json.Valid(raw) {
			t.Fatalf("%s %s: success with invalid JSON %q", e.method, e.path, raw)
		}
	})
}

// sessions is an IdP's session API that revokes whatever it is asked to.
type sessions struct{}

func (sessions) ActiveSessions(context.Context, string) iter.Seq2[string, error] {
	return func(yield func(string, error) bool) {}
}
func (sessions) RevokeSession(context.Context, string) error { return nil }

// TestSSFSessionRevokedByRevocationJob: a session the revocation policy revoked is told to the
// receivers as CAEP session-revoked, from the revocation job's transaction.
func TestSSFSessionRevokedByRevocationJob(t *testing.T) {
	t.Parallel()
	h := startHarness(t, nil, true, func(w *river.Workers, s *handlers.SSF, pool *pgxpool.Pool) {
		m, err := handlers.NewMetrics(prometheus.NewRegistry())
		if err != nil {
			t.Fatal(err)
		}
		rw := handlers.NewRevokeWorkers(pool, handlers.IdPs{Sessions: map[string]provider.SessionRevoker{"clerk": sessions{}}}, slog.New(slog.DiscardHandler), m)
		rw.OnSessionRevoked(s.SessionRevoked)
		rw.Register(w)
	})
	r := h.receiver()
	h.pushStream(r, ssf.TypeSessionRevoked)
	_, err := h.river.Insert(context.Background(), handlers.RevokeSessionArgs{SessionID: "sess_42",
		RevokeMeta: handlers.RevokeMeta{Source: "clerk", UserID: "user_1", Trigger: "user.banned", TriggeredAt: time.Now()}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	got := r.WaitAccepted(t, 1, 5*time.Second)
	sub := got[0].Claims["sub_id"].(map[string]any)
	body := got[0].Claims["events"].(map[string]any)[ssf.TypeSessionRevoked].(map[string]any)
	if sub["session"].(map[string]any)["id"] != "sess_42" || sub["user"].(map[string]any)["sub"] != "user_1" ||
		body["initiating_entity"] != "policy" || body["reason_admin"].(map[string]any)["en"] != "user.banned at clerk" {
		t.Errorf("session-revoked = %v", got[0].Claims)
	}
}

// TestSSFPrune: settled SETs older than the retention are deleted; held ones never are.
func TestSSFPrune(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	r := h.receiver()
	push := h.pushStream(r)
	var poll ssf.StreamConfig
	if st := h.call("POST", "/ssf/stream", tokenA, map[string]any{"events_requested": ssf.EventTypes}, &poll); st != 201 {
		t.Fatalf("create: %d", st)
	}
	h.disable("user_1")
	got := r.WaitAccepted(t, 1, 5*time.Second)
	h.waitState(push.StreamID, got[0].JTI, "delivered")
	h.disable("user_2")
	ctx := context.Background()
	if _, err := h.pool.Exec(ctx, `UPDATE ssf_sets SET created_at = now() - interval '8 days' WHERE claims->'sub_id'->>'sub' = 'user_1'`); err != nil {
		t.Fatal(err)
	}
	if _, err := h.pool.Exec(ctx, `UPDATE ssf_sets SET created_at = now() - interval '8 days' WHERE stream_id = $1`, poll.StreamID); err != nil {
		t.Fatal(err)
	}
	if _, err := h.river.Insert(ctx, handlers.PruneSETsArgs{}, nil); err != nil {
		t.Fatal(err)
	}
	want := map[string]int{push.StreamID: 1, poll.StreamID: 2} // push: user_2's, recent; poll: both held
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		a, b := len(h.setStates(push.StreamID)), len(h.setStates(poll.StreamID))
		if a == want[push.StreamID] && b == want[poll.StreamID] {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after the prune: %d SETs on the push stream, %d on the poll stream; want %v", a, b, want)
		}
	}
}

// TestSSFCredentialChange: what an IdP says of a user's credentials (Clerk's password_enabled,
// password_last_updated_at, totp_enabled) becomes CAEP credential-change events, through the
// one-row and the set-based mirror writes alike; a payload that says nothing changes nothing.
func TestSSFCredentialChange(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	r := h.receiver()
	h.pushStream(r, ssf.TypeCredentialChange)
	t1, t2 := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC), time.Date(2026, 11, 2, 0, 0, 0, 0, time.UTC)
	steps := []*events.Credentials{
		{},                                      // created: nothing
		{Password: true, PasswordChangedAt: t1}, // password create
		{Password: true, PasswordChangedAt: t1}, // the same: nothing
		{Password: true, PasswordChangedAt: t2}, // password update
		{Password: true, PasswordChangedAt: t2, TOTP: true}, // app create
		nil,                            // says nothing: nothing
		{Password: false, TOTP: false}, // password delete, app delete
	}
	want := []string{"password create", "password update", "app create", "password delete", "app delete"}
	for _, batch := range []bool{false, true} {
		user := fmt.Sprintf("user_cred_%v", batch)
		for i, c := range steps {
			u := events.User{ID: user, PrimaryEmail: user + "@example.com", FirstName: fmt.Sprint(i), Credentials: c, Version: int64(i + 1), Raw: []byte(`{}`)}
			h.emit(func(ctx context.Context, tx pgx.Tx) error {
				var res store.Change
				if batch {
					rs, err := store.ApplyBatch(ctx, tx, []store.Write{{Source: "clerk", Event: events.Event{User: &u}}})
					if err != nil {
						return err
					}
					res = rs[0]
				} else {
					var err error
					if res, err = store.ApplyUser(ctx, tx, "clerk", &u, store.ApplyOptions{}); err != nil {
						return err
					}
				}
				if !res.Applied {
					return fmt.Errorf("step %d not applied", i)
				}
				return h.ssf.React(ctx, tx, nil, handlers.Change{Source: "clerk", Event: events.Event{User: &u}, Result: res, ReceivedAt: time.Now()})
			})
		}
		got := r.WaitAccepted(t, len(want)*(map[bool]int{false: 1, true: 2}[batch]), 5*time.Second)
		var seen []string
		for _, g := range got {
			sub := g.Claims["sub_id"].(map[string]any)
			if sub["sub"] != user {
				continue
			}
			body := g.Claims["events"].(map[string]any)[ssf.TypeCredentialChange].(map[string]any)
			seen = append(seen, fmt.Sprint(body["credential_type"], " ", body["change_type"]))
		}
		slices.Sort(seen) // pushes arrive in any order
		if w := slices.Sorted(slices.Values(want)); !slices.Equal(seen, w) {
			t.Errorf("batch %v: credential changes %v, want %v", batch, seen, w)
		}
	}
	time.Sleep(200 * time.Millisecond)
	if n := len(r.Accepted()); n != 2*len(want) {
		t.Errorf("%d SETs, want %d", n, 2*len(want))
	}
}
