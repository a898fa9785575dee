package idpclient_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/time/rate"

	"github.com/idpsync/idpsync/internal/idpclient"
)

func TestParseRetryAfter(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for in, want := range map[string]time.Duration{
		"":                              0,
		"0":                             0,
		"-3":                            0,
		"abc":                           0,
		"7":                             7 * time.Second,
		"1.5":                           1500 * time.Millisecond,
		"Fri, 02 Jan 2026 03:04:35 GMT": 30 * time.Second,
		"Fri, 02 Jan 2026 03:00:00 GMT": 0, // in the past
	} {
		got, ok := idpclient.ParseRetryAfter(in, now)
		if got != want || ok != (want > 0) {
			t.Errorf("ParseRetryAfter(%q) = %s, %v; want %s", in, got, ok, want)
		}
	}
}

func TestClassify(t *testing.T) {
	t.Parallel()
	api := func(status int) error {
		return fmt.Errorf("wrapped: %w", &idpclient.APIError{Provider: "clerk", Status: status, RetryAfter: time.Second})
	}
	for _, tc := range []struct {
		err      error
		class    idpclient.Class
		sentinel error
	}{
		{nil, idpclient.ClassNone, nil},
		{api(400), idpclient.ClassPermanent, idpclient.ErrValidation},
		{api(401), idpclient.ClassPermanent, idpclient.ErrUnauthorized},
		{api(403), idpclient.ClassPermanent, idpclient.ErrForbidden},
		{api(404), idpclient.ClassPermanent, idpclient.ErrUnexpected},
		{&idpclient.APIError{Status: 404, Gone: true}, idpclient.ClassPermanent, idpclient.ErrNotFound},
		{api(409), idpclient.ClassPermanent, idpclient.ErrConflict},
		{api(422), idpclient.ClassPermanent, idpclient.ErrValidation},
		{api(429), idpclient.ClassDeferred, idpclient.ErrRateLimited},
		{api(500), idpclient.ClassRetryable, idpclient.ErrServer},
		{api(503), idpclient.ClassRetryable, idpclient.ErrServer},
		{&idpclient.TransportError{Provider: "x", Op: "GET /", Err: io.ErrUnexpectedEOF}, idpclient.ClassRetryable, idpclient.ErrNetwork},
		{context.DeadlineExceeded, idpclient.ClassRetryable, nil},
		{context.Canceled, idpclient.ClassPermanent, nil},
		{errors.New("decoding"), idpclient.ClassPermanent, nil},
	} {
		if got := idpclient.Classify(tc.err); got != tc.class {
			t.Errorf("Classify(%v) = %s, want %s", tc.err, got, tc.class)
		}
		if tc.sentinel != nil && !errors.Is(tc.err, tc.sentinel) {
			t.Errorf("%v does not match %v", tc.err, tc.sentinel)
		}
		if got := idpclient.Retryable(tc.err); got != (tc.class == idpclient.ClassRetryable || tc.class == idpclient.ClassDeferred) {
			t.Errorf("Retryable(%v) = %v", tc.err, got)
		}
	}
	if d, ok := idpclient.RetryAfter(api(429)); !ok || d != time.Second {
		t.Errorf("RetryAfter = %s, %v", d, ok)
	}
}

func newTransport(t *testing.T, h http.HandlerFunc, mutate func(*idpclient.Config)) *idpclient.Transport {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	cfg := idpclient.Config{Provider: "test", BaseURL: srv.URL + "/api", Auth: idpclient.BearerToken("s3cret-token"),
		Retry: idpclient.RetryPolicy{BaseDelay: time.Millisecond, MaxDelay: 2 * time.Millisecond}}
	if mutate != nil {
		mutate(&cfg)
	}
	tr, err := idpclient.NewTransport(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

func TestNetworkErrorsRetriedForReadsOnly(t *testing.T) {
	t.Parallel()
	var calls atomic.Int32
	tr := newTransport(t, func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) <= 2 {
			// Hijack and drop the connection: no HTTP answer at all.
			conn, _, _ := w.(http.Hijacker).Hijack()
			conn.Close()
			return
		}
		_, _ = io.WriteString(w, `{"ok":true}`)
	}, nil)
	var out struct{ OK bool }
	if err := tr.Do(t.Context(), &idpclient.Request{Method: http.MethodGet, Path: "/x"}, &out); err != nil || !out.OK {
		t.Fatalf("read = %v, %+v; want success after two dropped connections", err, out)
	}
	calls.Store(0)
	err := tr.Do(t.Context(), &idpclient.Request{Method: http.MethodPost, Path: "/x"}, nil)
	if !errors.Is(err, idpclient.ErrNetwork) || calls.Load() != 1 {
		t.Fatalf("write = %v after %d calls; want ErrNetwork after exactly one", err, calls.Load())
	}
	if strings.Contains(err.Error(), "s3cret-token") {
		t.Fatal("network error leaks the token")
	}
}

func TestIdempotencyKeyMakesWritesRetryable(t *testing.T) {
	t.Parallel()
	var calls atomic.Int32
	var keys sync.Map
	tr := newTransport(t, func(w http.ResponseWriter, r *http.Request) {
		keys.Store(r.Header.Get("Idempotency-Key"), true)
		if calls.Add(1) == 1 {
			w.WriteHeader(http.StatusBadGateway)
			return
		}
		w.WriteHeader(http.StatusCreated)
	}, nil)
	if err := tr.Do(t.Context(), &idpclient.Request{Method: http.MethodPost, Path: "/x", IdempotencyKey: "k1"}, nil); err != nil {
		t.Fatal(err)
	}
	n := 0
	keys.Range(func(k, _ any) bool { n++; return k == "k1" })
	if calls.Load() != 2 || n != 1 {
		t.Fatalf("calls %d, distinct keys %d; want 2 calls with the same key", calls.Load(), n)
	}
}

func TestRetryAfterLongerThanPolicyIsReturned(t *testing.T) {
	t.Parallel()
	var calls atomic.Int32
	tr := newTransport(t, func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		w.Header().Set("Retry-After", "120")
		w.WriteHeader(http.StatusTooManyRequests)
	}, nil)
	err := tr.Do(t.Context(), &idpclient.Request{Method: http.MethodGet, Path: "/x"}, nil)
	if d, ok := idpclient.RetryAfter(err); !ok || d != 2*time.Minute || calls.Load() != 1 {
		t.Fatalf("err %v (retry after %s) after %d calls; want the 429 at once", err, d, calls.Load())
	}
}

func TestRetriesGiveUpAfterMaxAttempts(t *testing.T) {
	t.Parallel()
	var calls atomic.Int32
	tr := newTransport(t, func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		w.WriteHeader(http.StatusInternalServerError)
	}, func(c *idpclient.Config) { c.Retry.MaxAttempts = 3 })
	err := tr.Do(t.Context(), &idpclient.Request{Method: http.MethodGet, Path: "/x"}, nil)
	var apiErr *idpclient.APIError
	if !errors.As(err, &apiErr) || apiErr.Status != 500 || apiErr.Op != "GET /x" || apiErr.Message != "Internal Server Error" || calls.Load() != 3 {
		t.Fatalf("err %#v after %d calls; want a 500 after 3", err, calls.Load())
	}
}

func TestCancelDuringBackoffReturnsContextError(t *testing.T) {
	t.Parallel()
	tr := newTransport(t, func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable)
	}, func(c *idpclient.Config) {
		c.Retry = idpclient.RetryPolicy{BaseDelay: time.Hour, MaxDelay: time.Hour}
	})
	ctx, cancel := context.WithCancel(t.Context())
	time.AfterFunc(20*time.Millisecond, cancel)
	err := tr.Do(ctx, &idpclient.Request{Method: http.MethodGet, Path: "/x"}, nil)
	if !errors.Is(err, context.Canceled) || !errors.Is(err, idpclient.ErrServer) {
		t.Fatalf("err = %v, want context.Canceled wrapping the 503", err)
	}
}

func TestLimiterPacesRequestsAndRespectsDeadline(t *testing.T) {
	t.Parallel()
	var calls atomic.Int32
	lim := rate.NewLimiter(rate.Every(time.Hour), 1)
	tr := newTransport(t, func(w http.ResponseWriter, r *http.Request) { calls.Add(1) }, func(c *idpclient.Config) { c.Limiter = lim })
	if err := tr.Do(t.Context(), &idpclient.Request{Method: http.MethodGet, Path: "/x"}, nil); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), time.Second)
	defer cancel()
	err := tr.Do(ctx, &idpclient.Request{Method: http.MethodGet, Path: "/x"}, nil)
	if !errors.Is(err, idpclient.ErrRateLimited) || calls.Load() != 1 || ctx.Err() != nil {
		t.Fatalf("err = %v after %d calls; want a client-side rate limit at once", err, calls.Load())
	}
}

func TestHeadersAndQuery(t *testing.T) {
	t.Parallel()
	tr := newTransport(t, func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path != "/api/users/a%2Fb" && r.URL.RawPath != "/api/users/a%2Fb":
			t.Errorf("path %q (raw %q)", r.URL.Path, r.URL.RawPath)
		case r.URL.Query().Get("limit") != "5":
			t.Errorf("query %q", r.URL.RawQuery)
		case r.Header.Get("Authorization") != "Bearer s3cret-token":
			t.Errorf("auth %q", r.Header.Get("Authorization"))
		case r.Header.Get("User-Agent") != "ua/1" || r.Header.Get("X-Static") != "yes":
			t.Errorf("headers %v", r.Header)
		}
	}, func(c *idpclient.Config) {
		c.UserAgent = "ua/1"
		c.Header = http.Header{"X-Static": {"yes"}}
	})
	req := &idpclient.Request{Method: http.MethodGet, Path: "/users/" + idpclient.PathEscape("a/b"), Query: map[string][]string{"limit": {"5"}}}
	if err := tr.Do(t.Context(), req, nil); err != nil {
		t.Fatal(err)
	}
}

func TestPaginateStopsAtFirstErrorAndOnBreak(t *testing.T) {
	t.Parallel()
	pages := 0
	fetch := func(_ context.Context, c int) ([]int, int, bool, error) {
		pages++
		if c == 2 {
			return nil, 0, false, errors.New("page 2 failed")
		}
		return []int{c*10 + 1, c*10 + 2}, c + 1, true, nil
	}
	var got []int
	var last error
	for v, err := range idpclient.Paginate(t.Context(), 0, fetch) {
		if err != nil {
			last = err
			continue
		}
		got = append(got, v)
	}
	if len(got) != 4 || last == nil || pages != 3 {
		t.Fatalf("got %v, err %v after %d pages", got, last, pages)
	}
	pages = 0
	for range idpclient.Paginate(t.Context(), 0, fetch) {
		break
	}
	if pages != 1 {
		t.Fatalf("breaking after the first item fetched %d pages", pages)
	}
}

func TestNewTransportValidation(t *testing.T) {
	t.Parallel()
	for name, cfg := range map[string]idpclient.Config{
		"no provider":    {BaseURL: "https://x.example"},
		"no base URL":    {Provider: "p"},
		"relative URL":   {Provider: "p", BaseURL: "/api"},
		"query in URL":   {Provider: "p", BaseURL: "https://x.example/?a=b"},
		"negative retry": {Provider: "p", BaseURL: "https://x.example", Retry: idpclient.RetryPolicy{MaxAttempts: -1}},
	} {
		if _, err := idpclient.NewTransport(cfg); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// A base URL at a host root and one with a path join a request path alike: exactly one slash, the
// base path kept, escaped ids kept escaped. (A base at a host root once sent GET //api/v1/…, which
// real servers answer with a route 404.)
func TestURLJoin(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ base, path, want string }{
		{"https://zeroid.internal", "/api/v1/identities", "https://zeroid.internal/api/v1/identities"},
		{"https://zeroid.internal/", "/api/v1/identities", "https://zeroid.internal/api/v1/identities"},
		{"https://my.zitadel.cloud", "/oauth/v2/token", "https://my.zitadel.cloud/oauth/v2/token"},
		{"https://api.clerk.com/v1", "/users", "https://api.clerk.com/v1/users"},
		{"https://api.clerk.com/v1/", "/users", "https://api.clerk.com/v1/users"},
		{"http://127.0.0.1:8090/zeroid", "/health", "http://127.0.0.1:8090/zeroid/health"},
		{"https://gw.example/idp%2Fa", "/users", "https://gw.example/idp%2Fa/users"},
		{"https://api.clerk.com/v1", "/users/" + idpclient.PathEscape("a/b c"), "https://api.clerk.com/v1/users/a%2Fb%20c"},
		{"https://api.clerk.com/v1", "", "https://api.clerk.com/v1"},
	} {
		tr, err := idpclient.NewTransport(idpclient.Config{Provider: "test", BaseURL: tc.base})
		if err != nil {
			t.Fatalf("%s: %v", tc.base, err)
		}
		u, err := tr.URL(tc.path)
		if err != nil {
			t.Fatalf("%s + %s: %v", tc.base, tc.path, err)
		}
		if u.String() != tc.want {
			t.Errorf("%s + %s = %s, want %s", tc.base, tc.path, u, tc.want)
		}
	}
	tr, _ := idpclient.NewTransport(idpclient.Config{Provider: "test", BaseURL: "https://h"})
	if _, err := tr.URL("users"); err == nil {
		t.Error("a path without a leading slash was accepted")
	}
}

// The requests a real server sees for base URLs at a host root: never a double slash.
func TestRequestsAtAHostRoot(t *testing.T) {
	t.Parallel()
	var got []string
	var mu sync.Mutex
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		got = append(got, r.URL.RequestURI())
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{}`))
	}))
	t.Cleanup(srv.Close)
	for _, base := range []string{srv.URL, srv.URL + "/"} {
		tr, err := idpclient.NewTransport(idpclient.Config{Provider: "test", BaseURL: base})
		if err != nil {
			t.Fatal(err)
		}
		if err := tr.Do(context.Background(), &idpclient.Request{Method: http.MethodGet, Path: "/api/v1/identities",
			Query: url.Values{"owner_user_id": {"u"}}}, nil); err != nil {
			t.Fatal(err)
		}
	}
	if want := []string{"/api/v1/identities?owner_user_id=u", "/api/v1/identities?owner_user_id=u"}; !slices.Equal(got, want) {
		t.Fatalf("request URIs = %q, want %q", got, want)
	}
}

// A 404 means "gone" only for a request about one resource, and only in the provider's own error
// shape; a router's 404 (a wrong base_url) or a list's 404 is unexpected, never "already done".
func TestNotFoundMeansGoneOnlyWhereDeclared(t *testing.T) {
	t.Parallel()
	shaped := func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/problem+json")
		w.WriteHeader(http.StatusNotFound)
		_, _ = w.Write([]byte(`{"title":"Not Found","status":404,"detail":"identity not found"}`))
	}
	route := func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(http.StatusNotFound)
		_, _ = w.Write([]byte("404 page not found\n"))
	}
	decode := func(_ int, _ http.Header, body []byte) *idpclient.APIError {
		var p struct{ Title, Detail string }
		if json.Unmarshal(body, &p) != nil || p.Title == "" {
			return &idpclient.APIError{}
		}
		return &idpclient.APIError{Message: p.Detail, Recognized: true}
	}
	for _, tc := range []struct {
		name    string
		h       http.HandlerFunc
		gone    bool
		want    error
		notWant error
	}{
		{"resource 404 on a removal", shaped, true, idpclient.ErrNotFound, idpclient.ErrUnexpected},
		{"resource 404 on a list", shaped, false, idpclient.ErrUnexpected, idpclient.ErrNotFound},
		{"route 404 on a removal", route, true, idpclient.ErrUnexpected, idpclient.ErrNotFound},
		{"route 404 on a list", route, false, idpclient.ErrUnexpected, idpclient.ErrNotFound},
	} {
		tr := newTransport(t, tc.h, func(c *idpclient.Config) { c.DecodeErrorFunc = decode })
		err := tr.Do(context.Background(), &idpclient.Request{Method: http.MethodDelete, Path: "/identities/1", NotFoundMeansGone: tc.gone}, nil)
		if !errors.Is(err, tc.want) || errors.Is(err, tc.notWant) {
			t.Errorf("%s: err = %v, want %v and not %v", tc.name, err, tc.want, tc.notWant)
		}
		if idpclient.Classify(err) != idpclient.ClassPermanent {
			t.Errorf("%s: class = %s, want permanent", tc.name, idpclient.Classify(err))
		}
	}
}

// A 2xx answer that is not the API's shape (an HTML page of a proxy, a login page) is an error an
// operator sees, not an empty success.
func TestUnknownShapeIsUnexpected(t *testing.T) {
	t.Parallel()
	tr := newTransport(t, func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		_, _ = w.Write([]byte("<html>Sign in</html>"))
	}, nil)
	var out struct{ Data []string }
	err := tr.Do(context.Background(), &idpclient.Request{Method: http.MethodGet, Path: "/users"}, &out)
	if !errors.Is(err, idpclient.ErrUnexpected) || idpclient.Classify(err) != idpclient.ClassPermanent {
		t.Fatalf("err = %v (%s), want a permanent ErrUnexpected", err, idpclient.Classify(err))
	}
}

// Credentials never leave the configured origin: a redirect to another port of the same host (or
// any other origin) is refused before anything is sent there, even with a caller's own client;
// a redirect within the origin is followed with the credentials.
func TestRedirectsStayInTheOrigin(t *testing.T) {
	t.Parallel()
	var leaked atomic.Int32
	elsewhere := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "" {
			leaked.Add(1)
		}
		_, _ = w.Write([]byte(`{}`))
	}))
	t.Cleanup(elsewhere.Close)
	var sameOriginAuth atomic.Value
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/api/away":
			http.Redirect(w, r, elsewhere.URL+"/steal", http.StatusTemporaryRedirect)
		case "/api/moved":
			http.Redirect(w, r, "/api/here", http.StatusTemporaryRedirect)
		case "/api/here":
			sameOriginAuth.Store(r.Header.Get("Authorization"))
			_, _ = w.Write([]byte(`{}`))
		}
	}))
	t.Cleanup(origin.Close)
	for _, client := range []*http.Client{nil, {Timeout: time.Second}, http.DefaultClient} {
		tr, err := idpclient.NewTransport(idpclient.Config{Provider: "test", BaseURL: origin.URL + "/api", HTTPClient: client,
			Auth: idpclient.BearerToken("sk_live_secret")})
		if err != nil {
			t.Fatal(err)
		}
		err = tr.Do(context.Background(), &idpclient.Request{Method: http.MethodPost, Path: "/away", JSON: map[string]string{}}, nil)
		if !errors.Is(err, idpclient.ErrUnexpected) || idpclient.Classify(err) != idpclient.ClassPermanent {
			t.Fatalf("cross-origin redirect: err = %v, want a permanent ErrUnexpected", err)
		}
		if strings.Contains(err.Error(), "sk_live_secret") {
			t.Fatalf("the error carries the credential: %v", err)
		}
		if err := tr.Do(context.Background(), &idpclient.Request{Method: http.MethodGet, Path: "/moved"}, nil); err != nil {
			t.Fatalf("same-origin redirect: %v", err)
		}
		if got := sameOriginAuth.Load(); got != "Bearer sk_live_secret" {
			t.Fatalf("same-origin redirect carried Authorization %q", got)
		}
	}
	if leaked.Load() != 0 || http.DefaultClient.CheckRedirect != nil {
		t.Fatalf("credentials reached another origin %d times (or the caller's client was changed)", leaked.Load())
	}
}
