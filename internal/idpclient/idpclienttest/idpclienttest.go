// Package idpclienttest is the conformance suite every IdP client passes: lazy pagination without
// gaps or duplicates, Retry-After honoured on 429, 5xx retried for reads but not for writes that
// are not idempotent, 401 mapped to ErrUnauthorized without leaking the secret, and prompt
// cancellation. A client's test calls Run with an adapter that wires the client to its fake.
package idpclienttest

import (
	"context"
	"errors"
	"iter"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/idpsync/idpsync/internal/idpclient"
)

// Request is one request the fake recorded.
type Request struct {
	Method, Path string
	At           time.Time
	Status       int
}

// Env is one fake seeded with users and a client pointed at it, as built by Harness.Setup.
type Env struct {
	// ListUsers iterates over every user's id with the client's lazy iterator.
	ListUsers func(ctx context.Context) iter.Seq2[string, error]
	// WantUserIDs returns the ids the fake holds.
	WantUserIDs func() []string
	// Read makes one idempotent read call.
	Read func(ctx context.Context) error
	// Write makes one call that is not idempotent (and so must not be retried on 5xx).
	Write func(ctx context.Context) error
	// WritePath is the path prefix of Write's request as the fake records it.
	WritePath string
	// UnauthorizedRead makes a read with a client holding the wrong secret.
	UnauthorizedRead func(ctx context.Context) error
	// WrongSecret is that wrong secret; it must not appear in errors.
	WrongSecret string
	// FailNext makes the fake's next n requests whose path starts with pathPrefix fail.
	FailNext func(n, status int, retryAfter time.Duration, pathPrefix string)
	// Requests returns what the fake recorded.
	Requests func() []Request
	// ListPath is the path of the user list's page requests as the fake records them.
	ListPath string
	// MaxPageSize is the provider's largest page.
	MaxPageSize int
}

// Harness adapts one client and its fake to the suite.
type Harness struct {
	// Provider names the client, as in its errors.
	Provider string
	// Setup seeds a fresh fake with users users and returns the environment. The client must use
	// a retry policy with short backoff delays (a few milliseconds) so the suite stays fast.
	Setup func(t *testing.T, users int) Env
}

// Run runs the conformance suite.
func Run(t *testing.T, h Harness) {
	t.Run("FullIterationNoGapsNoDuplicates", func(t *testing.T) {
		t.Parallel()
		const n = 10_000
		env := h.Setup(t, n)
		seen := make(map[string]bool, n)
		for id, err := range env.ListUsers(t.Context()) {
			if err != nil {
				t.Fatalf("iteration failed after %d users: %v", len(seen), err)
			}
			if seen[id] {
				t.Fatalf("user %s yielded twice", id)
			}
			seen[id] = true
		}
		want := env.WantUserIDs()
		if len(seen) != len(want) || len(want) != n {
			t.Fatalf("iterated %d users, fake holds %d, seeded %d", len(seen), len(want), n)
		}
		for _, id := range want {
			if !seen[id] {
				t.Fatalf("user %s was never yielded", id)
			}
		}
		pages := countPath(env.Requests(), env.ListPath)
		minPages := (n + env.MaxPageSize - 1) / env.MaxPageSize
		if pages < minPages || pages > minPages+1 {
			t.Fatalf("fetched %d pages for %d users, want %d or %d (page size %d)", pages, n, minPages, minPages+1, env.MaxPageSize)
		}
	})

	t.Run("RetryAfterHonouredOn429", func(t *testing.T) {
		t.Parallel()
		env := h.Setup(t, 5)
		env.FailNext(1, http.StatusTooManyRequests, time.Second, env.ListPath)
		n := 0
		for _, err := range env.ListUsers(t.Context()) {
			if err != nil {
				t.Fatalf("iteration failed: %v", err)
			}
			n++
		}
		if n != 5 {
			t.Fatalf("iterated %d users, want 5", n)
		}
		reqs := onPath(env.Requests(), env.ListPath)
		if len(reqs) < 2 || reqs[0].Status != http.StatusTooManyRequests || reqs[1].Status != http.StatusOK {
			t.Fatalf("want a 429 then a 200 on %s, got %+v", env.ListPath, reqs)
		}
		if gap := reqs[1].At.Sub(reqs[0].At); gap < time.Second {
			t.Fatalf("retried %s after the 429, before its Retry-After of 1s", gap)
		}
	})

	t.Run("RetryAfterBeyondDeadlineFailsFast", func(t *testing.T) {
		t.Parallel()
		env := h.Setup(t, 5)
		env.FailNext(1, http.StatusTooManyRequests, time.Hour, env.ListPath)
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		defer cancel()
		_, err := first(env.ListUsers(ctx))
		if !errors.Is(err, idpclient.ErrRateLimited) {
			t.Fatalf("err = %v, want ErrRateLimited", err)
		}
		if ctx.Err() != nil {
			t.Fatal("the client slept into the deadline instead of failing fast")
		}
		if d, ok := idpclient.RetryAfter(err); !ok || d != time.Hour {
			t.Fatalf("RetryAfter(err) = %s, %v; want 1h, true", d, ok)
		}
		if c := idpclient.Classify(err); c != idpclient.ClassDeferred {
			t.Fatalf("Classify(err) = %s, want deferred", c)
		}
		if got := countPath(env.Requests(), env.ListPath); got != 1 {
			t.Fatalf("sent %d list requests, want exactly 1", got)
		}
	})

	t.Run("ServerErrorRetriedForReads", func(t *testing.T) {
		t.Parallel()
		env := h.Setup(t, 5)
		env.FailNext(2, http.StatusServiceUnavailable, 0, "")
		if err := env.Read(t.Context()); err != nil {
			t.Fatalf("read failed despite retries: %v", err)
		}
		reqs := env.Requests()
		if len(reqs) < 3 || reqs[0].Status != 503 || reqs[1].Status != 503 || reqs[len(reqs)-1].Status/100 != 2 {
			t.Fatalf("want two 503s then a success, got %+v", reqs)
		}
	})

	t.Run("ServerErrorNotRetriedForWrites", func(t *testing.T) {
		t.Parallel()
		env := h.Setup(t, 5)
		env.FailNext(1, http.StatusInternalServerError, 0, env.WritePath)
		err := env.Write(t.Context())
		if !errors.Is(err, idpclient.ErrServer) {
			t.Fatalf("err = %v, want ErrServer", err)
		}
		if !idpclient.Retryable(err) {
			t.Fatal("a 500 must be classified retryable for the caller")
		}
		var apiErr *idpclient.APIError
		if !errors.As(err, &apiErr) || apiErr.Provider != h.Provider || apiErr.Status != 500 {
			t.Fatalf("err = %#v, want *APIError from %s with status 500", err, h.Provider)
		}
		if got := countPath(env.Requests(), env.WritePath); got != 1 {
			t.Fatalf("sent the write %d times, want exactly once", got)
		}
	})

	t.Run("UnauthorizedWithoutSecret", func(t *testing.T) {
		t.Parallel()
		env := h.Setup(t, 5)
		err := env.UnauthorizedRead(t.Context())
		if !errors.Is(err, idpclient.ErrUnauthorized) {
			t.Fatalf("err = %v, want ErrUnauthorized", err)
		}
		if strings.Contains(err.Error(), env.WrongSecret) {
			t.Fatalf("error text leaks the secret: %q", err.Error())
		}
		var apiErr *idpclient.APIError
		if !errors.As(err, &apiErr) || apiErr.Status != http.StatusUnauthorized || apiErr.Provider != h.Provider {
			t.Fatalf("err = %#v, want *APIError from %s with status 401", err, h.Provider)
		}
		if apiErr.Message == "" {
			t.Fatal("APIError.Message is empty; the provider's error body was not decoded")
		}
		if idpclient.Retryable(err) || idpclient.Classify(err) != idpclient.ClassPermanent {
			t.Fatal("a 401 must be permanent")
		}
	})

	t.Run("CancelStopsIteration", func(t *testing.T) {
		t.Parallel()
		env := h.Setup(t, 3*env0(h, t).MaxPageSize)
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		var got int
		var lastErr error
		for _, err := range env.ListUsers(ctx) {
			if err != nil {
				lastErr = err
				break
			}
			got++
			if got == 1 {
				cancel()
			}
		}
		if !errors.Is(lastErr, context.Canceled) {
			t.Fatalf("iteration ended with %v after %d users, want context.Canceled", lastErr, got)
		}
		if pages := countPath(env.Requests(), env.ListPath); pages != 1 {
			t.Fatalf("fetched %d pages, want 1: no page may be requested after cancel", pages)
		}
	})
}

// env0 returns the page size of the harness without seeding many users.
func env0(h Harness, t *testing.T) Env { return h.Setup(t, 0) }

func first(seq iter.Seq2[string, error]) (string, error) {
	for id, err := range seq {
		return id, err
	}
	return "", nil
}

func onPath(reqs []Request, path string) []Request {
	var out []Request
	for _, r := range reqs {
		if r.Path == path {
			out = append(out, r)
		}
	}
	return out
}

func countPath(reqs []Request, path string) int { return len(onPath(reqs, path)) }
