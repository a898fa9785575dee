package fakeidp

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Request is one request a fake served, as recorded for assertions.
type Request struct {
	// Method and Path of the request (Path without the query).
	Method, Path string
	// Query is the parsed URL query.
	Query url.Values
	// At is when the fake received the request.
	At time.Time
	// Status is the status the fake answered with.
	Status int
}

// Mutation is one state-changing call a fake received through its API (a ban, a revocation, a
// delete, a signal ingest, an offboarding), as recorded for assertions.
type Mutation struct {
	// Kind names the call, e.g. "user.ban", "session.revoke", "signal.ingest".
	Kind string
	// ID is the target's id ("" when the call has none, e.g. a signal without identity).
	ID string
	// Body is the request body as received, when there was one.
	Body []byte
	// At is when the fake applied it.
	At time.Time
}

// Failure is an injected failure answer.
type Failure struct {
	// Status is the HTTP status to answer with, e.g. 429 or 503.
	Status int
	// RetryAfter, when positive, is sent as a Retry-After header in whole seconds (rounded up).
	RetryAfter time.Duration
	// PathPrefix limits the failure to requests whose path starts with it; empty matches all.
	PathPrefix string
	// Method limits the failure to one method; empty matches all.
	Method string
}

func (f Failure) matches(r *http.Request) bool {
	return strings.HasPrefix(r.URL.Path, f.PathPrefix) && (f.Method == "" || f.Method == r.Method)
}

// maxRecorded bounds the request and mutation logs of a long-running fake.
const maxRecorded = 100_000

// Core is the machinery shared by every fake: request and mutation recording, failure and latency
// injection, the HTTP server and the webhook sender. Its methods are promoted on every fake.
type Core struct {
	provider string
	errBody  func(status int, msg string) (string, []byte)

	mu        sync.Mutex
	requests  []Request
	mutations []Mutation
	failNext  []Failure
	every     int
	everyF    Failure
	served    int
	latency   time.Duration
	srv       *httptest.Server

	hooks *sender

	// deliverySeed makes the ids of the webhooks this process sends unique, as an IdP's are: the
	// data a seed generates is the same in every process, the deliveries must not be (a receiver
	// that saw them in an earlier run would take them for retries).
	deliverySeed uint64
}

// DeliverySeed makes the delivery ids of this process unique (see Core).
func (c *Core) DeliverySeed() uint64 { return c.deliverySeed }

// WebhooksEnabled reports whether a webhook target is set.
func (c *Core) WebhooksEnabled() bool { return c.hooks.enabled() }

// Enqueue queues a webhook for the target, in order.
func (c *Core) Enqueue(ev Event) { c.hooks.enqueue(ev) }

// NewCore returns the machinery of a fake of provider: errBody writes the provider's error shape
// (its Content-Type and body) for injected failures, and sign authenticates the webhooks it sends
// (nil for a provider that sends none).
func NewCore(provider string, errBody func(status int, msg string) (string, []byte), sign SignFunc) *Core {
	c := &Core{provider: provider, errBody: errBody, hooks: newSender(provider), deliverySeed: rand.Uint64()}
	c.hooks.sign = sign
	return c
}

// Provider returns the IdP kind this fake imitates.
func (c *Core) Provider() string { return c.provider }

// FailNext makes the next n requests matching f fail with f.Status, in the provider's error shape.
func (c *Core) FailNext(n int, f Failure) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for range n {
		c.failNext = append(c.failNext, f)
	}
}

// FailEvery makes every nth request matching f fail with f.Status; n <= 0 turns it off.
func (c *Core) FailEvery(n int, f Failure) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.every, c.everyF, c.served = n, f, 0
}

// SetLatency delays every answer by d (0 turns it off).
func (c *Core) SetLatency(d time.Duration) {
	c.mu.Lock()
	c.latency = d
	c.mu.Unlock()
}

// Requests returns a copy of the recorded requests, oldest first.
func (c *Core) Requests() []Request {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]Request(nil), c.requests...)
}

// Mutations returns a copy of the recorded mutating calls, oldest first.
func (c *Core) Mutations() []Mutation {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]Mutation(nil), c.mutations...)
}

// MutationsOf returns the recorded mutating calls of one kind.
func (c *Core) MutationsOf(kind string) []Mutation {
	var out []Mutation
	for _, m := range c.Mutations() {
		if m.Kind == kind {
			out = append(out, m)
		}
	}
	return out
}

// ResetRecords clears the request and mutation logs.
func (c *Core) ResetRecords() {
	c.mu.Lock()
	c.requests, c.mutations = nil, nil
	c.mu.Unlock()
}

// RecordMutation records a state-changing call the fake applied.
func (c *Core) RecordMutation(kind, id string, body []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.mutations) >= maxRecorded {
		c.mutations = c.mutations[1:]
	}
	c.mutations = append(c.mutations, Mutation{Kind: kind, ID: id, Body: body, At: time.Now()})
}

// URL returns the base URL of the running server, or "" before Start.
func (c *Core) URL() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.srv == nil {
		return ""
	}
	return c.srv.URL
}

// Close stops the server started by Start and the webhook sender.
func (c *Core) Close() {
	c.mu.Lock()
	srv := c.srv
	c.srv = nil
	c.mu.Unlock()
	if srv != nil {
		srv.Close()
	}
	c.hooks.close()
}

// Serve serves h (wrapped by the fake's handler) on a loopback port and returns its base URL.
func (c *Core) Serve(h http.Handler) string {
	srv := httptest.NewServer(h)
	c.mu.Lock()
	c.srv = srv
	c.mu.Unlock()
	return srv.URL
}

// statusRecorder captures the status a handler wrote.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (r *statusRecorder) WriteHeader(status int) {
	if r.status == 0 {
		r.status = status
	}
	r.ResponseWriter.WriteHeader(status)
}

// Unwrap gives http.ResponseController the underlying writer, so streaming handlers can flush.
func (r *statusRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

func (r *statusRecorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	return r.ResponseWriter.Write(b)
}

// Wrap records the request, applies latency and injected failures, then calls h.
func (c *Core) Wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := &statusRecorder{ResponseWriter: w}
		at := time.Now()
		c.mu.Lock()
		latency := c.latency
		var fail *Failure
		for i, f := range c.failNext {
			if f.matches(r) {
				fail = &f
				c.failNext = append(c.failNext[:i], c.failNext[i+1:]...)
				break
			}
		}
		if fail == nil && c.every > 0 && c.everyF.matches(r) {
			c.served++
			if c.served%c.every == 0 {
				f := c.everyF
				fail = &f
			}
		}
		c.mu.Unlock()
		if latency > 0 {
			t := time.NewTimer(latency)
			select {
			case <-r.Context().Done():
			case <-t.C:
			}
			t.Stop()
		}
		if fail != nil {
			if fail.RetryAfter > 0 {
				secs := int((fail.RetryAfter + time.Second - 1) / time.Second)
				rec.Header().Set("Retry-After", strconv.Itoa(secs))
			}
			ct, body := c.errBody(fail.Status, failureMessage(fail.Status))
			rec.Header().Set("Content-Type", ct)
			rec.WriteHeader(fail.Status)
			_, _ = rec.Write(body)
		} else {
			h.ServeHTTP(rec, r)
		}
		c.mu.Lock()
		if len(c.requests) >= maxRecorded {
			c.requests = c.requests[1:]
		}
		c.requests = append(c.requests, Request{Method: r.Method, Path: r.URL.Path, Query: r.URL.Query(), At: at, Status: rec.status})
		c.mu.Unlock()
	})
}

func failureMessage(status int) string {
	switch status {
	case http.StatusTooManyRequests:
		return "Too many requests, please try again later."
	case http.StatusServiceUnavailable:
		return "Service temporarily unavailable."
	}
	return http.StatusText(status)
}

// WebhookTarget is where a fake sends the webhooks its mutations cause.
type WebhookTarget struct {
	// URL receives the POSTs.
	URL string
	// Secret signs them: Clerk's "whsec_…" endpoint secret, Zitadel's target signing key, or
	// AuthPI's bearer token / signature secret (see Scheme).
	Secret string
	// Scheme selects AuthPI's webhook auth: "bearer" (default), "signature" or
	// "bearer+signature". Ignored by the other providers.
	Scheme string
	// SignatureSecret is AuthPI's HMAC secret for "bearer+signature" (Secret is then the bearer
	// token).
	SignatureSecret string
	// HTTPClient sends them. Defaults to a client with a 10 s timeout.
	HTTPClient *http.Client
	// MaxAttempts is how often one delivery is tried before it is recorded as failed.
	// Defaults to 3.
	MaxAttempts int
	// RetryDelay is the wait between attempts. Defaults to 100 ms.
	RetryDelay time.Duration
	// Drop is the fraction of webhooks never sent (0, the default, to 1), as webhooks are lost
	// when an IdP gives up on an endpoint or loses its queue. A dropped webhook is recorded as a
	// Delivery with Dropped set, in its place among the others.
	Drop float64
	// DropSeed chooses which webhooks Drop drops, from each one's position in the queue since the
	// target was set: the same seed and the same mutations drop the same webhooks.
	DropSeed uint64
}

// SetWebhookTarget makes the fake send a signed webhook, in its IdP's envelope, for every
// mutation made through its API or its Go methods. A zero target turns webhooks off.
func (c *Core) SetWebhookTarget(t WebhookTarget) { c.hooks.setTarget(t) }

// Deliveries returns a copy of the webhook deliveries made so far, oldest first.
func (c *Core) Deliveries() []Delivery { return c.hooks.deliveriesCopy() }

// FlushWebhooks waits until every queued webhook was delivered (or gave up) or ctx is done.
func (c *Core) FlushWebhooks(ctx context.Context) error { return c.hooks.flush(ctx) }

// ReadBody reads a request body of at most 1 MiB.
func ReadBody(r *http.Request) ([]byte, error) {
	return io.ReadAll(io.LimitReader(r.Body, 1<<20))
}

// WriteJSON answers v as JSON with status.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// OAuthError answers an RFC 6749 error.
func OAuthError(w http.ResponseWriter, status int, code, desc string) {
	WriteJSON(w, status, map[string]string{"error": code, "error_description": desc})
}

// LaterTime is now, or just after prev when the clock has not moved past it: update times that
// always increase.
func LaterTime(prev time.Time) time.Time {
	now := time.Now().UTC()
	if !now.After(prev) {
		return prev.Add(time.Microsecond)
	}
	return now
}

var traceSeq atomic.Uint64

// TraceID returns a fresh 32-hex-digit request or trace id.
func TraceID() string {
	return fmt.Sprintf("%032x", Mix(traceSeq.Add(1)))
}
