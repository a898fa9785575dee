package admin_test

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/idpsync/idpsync/internal/admin"
)

// The dashboard can retry, cancel and delete jobs and pause queues: nobody reaches it without the
// credentials, compared in constant time, and no other site can make a browser change anything.
func TestProtectedPages(t *testing.T) {
	t.Parallel()
	var changes atomic.Int32
	dashboard := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet {
			changes.Add(1)
		}
		_, _ = w.Write([]byte("dashboard"))
	})
	h, err := admin.New(admin.Config{Registry: prometheus.NewRegistry(), Protected: map[string]http.Handler{"/riverui/": dashboard},
		Credentials: admin.Credentials{Username: "ops", Password: "s3cret", BearerTokens: []string{"tok-1"}}})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	do := func(method, path string, set func(*http.Request)) int {
		t.Helper()
		req, _ := http.NewRequest(method, srv.URL+path, strings.NewReader(`{"queue":"revoke"}`))
		if set != nil {
			set(req)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	basic := func(u, p string) func(*http.Request) { return func(r *http.Request) { r.SetBasicAuth(u, p) } }
	for _, c := range []struct {
		name   string
		method string
		set    func(*http.Request)
		want   int
	}{
		{"no credentials", "GET", nil, 401},
		{"no credentials, state change", "POST", nil, 401},
		{"wrong password", "GET", basic("ops", "s3cre"), 401},
		{"wrong user", "GET", basic("opz", "s3cret"), 401},
		{"wrong token", "GET", func(r *http.Request) { r.Header.Set("Authorization", "Bearer tok-2") }, 401},
		{"basic", "GET", basic("ops", "s3cret"), 200},
		{"bearer", "GET", func(r *http.Request) { r.Header.Set("Authorization", "Bearer tok-1") }, 200},
		{"same-origin state change", "POST", func(r *http.Request) { basic("ops", "s3cret")(r); r.Header.Set("Sec-Fetch-Site", "same-origin") }, 200},
		{"cross-site state change, text/plain", "POST", func(r *http.Request) {
			basic("ops", "s3cret")(r)
			r.Header.Set("Sec-Fetch-Site", "cross-site")
			r.Header.Set("Content-Type", "text/plain")
		}, 403},
		{"foreign origin state change", "DELETE", func(r *http.Request) {
			basic("ops", "s3cret")(r)
			r.Header.Set("Origin", "https://evil.example")
		}, 403},
	} {
		if got := do(c.method, "/riverui/api/queues/revoke/pause", c.set); got != c.want {
			t.Errorf("%s: status %d, want %d", c.name, got, c.want)
		}
	}
	if n := changes.Load(); n != 1 {
		t.Fatalf("%d state changes reached the dashboard, want the one same-origin request", n)
	}
	if got := do("GET", "/metrics", nil); got != 200 {
		t.Fatalf("/metrics without protection: %d", got)
	}
	if got := do("GET", "/healthz", nil); got != 200 {
		t.Fatalf("/healthz: %d", got)
	}
}

func TestMetricsBehindCredentials(t *testing.T) {
	t.Parallel()
	h, err := admin.New(admin.Config{Registry: prometheus.NewRegistry(), ProtectMetrics: true, Credentials: admin.Credentials{BearerTokens: []string{"t"}}})
	if err != nil {
		t.Fatal(err)
	}
	for token, want := range map[string]int{"": 401, "x": 401, "t": 200} {
		r := httptest.NewRequest("GET", "/metrics", nil)
		if token != "" {
			r.Header.Set("Authorization", "Bearer "+token)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code != want {
			t.Errorf("token %q: %d, want %d", token, w.Code, want)
		}
	}
}

// A protected page, or protected metrics, cannot be served without credentials.
func TestNoCredentialsNoProtectedPages(t *testing.T) {
	t.Parallel()
	for _, cfg := range []admin.Config{
		{Registry: prometheus.NewRegistry(), Protected: map[string]http.Handler{"/riverui/": http.NotFoundHandler()}},
		{Registry: prometheus.NewRegistry(), ProtectMetrics: true},
		{Registry: prometheus.NewRegistry(), ProtectMetrics: true, Credentials: admin.Credentials{Username: "ops"}},
	} {
		if _, err := admin.New(cfg); !errors.Is(err, admin.ErrNoCredentials) {
			t.Errorf("New(%+v) = %v, want ErrNoCredentials", cfg, err)
		}
	}
}
