// Package admin is the operators' HTTP surface of a process: /healthz, /readyz, /metrics and, on
// the worker, River's job dashboard. It is not the public webhook endpoint: it binds to loopback by
// default, and what can change state (the dashboard, which can retry, cancel and delete jobs and
// pause queues) is served only behind credentials and refuses cross-site requests.
package admin

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Credentials authorize requests to the protected parts of an admin server: HTTP Basic with
// Username and Password, or any of BearerTokens. Both are compared in constant time.
type Credentials struct {
	Username, Password string
	BearerTokens       []string
}

// Set reports whether any credential is configured.
func (c Credentials) Set() bool {
	return c.Username != "" && c.Password != "" || len(c.BearerTokens) > 0
}

// Config configures an admin handler.
type Config struct {
	// Registry is served at /metrics. Required.
	Registry *prometheus.Registry
	// ReadyFunc answers /readyz: nil is ready. Nil: /readyz is not served.
	ReadyFunc func(context.Context) error
	// Credentials protect Protected, and /metrics when ProtectMetrics.
	Credentials Credentials
	// ProtectMetrics puts /metrics behind Credentials.
	ProtectMetrics bool
	// Protected is mounted at its pattern (e.g. "/riverui/") behind Credentials and cross-origin
	// protection. A protected handler needs credentials: New fails without them.
	Protected map[string]http.Handler
}

// ErrNoCredentials is returned by New for protected handlers or metrics without credentials.
var ErrNoCredentials = errors.New("admin: a protected page needs credentials")

// New returns the admin handler of cfg.
func New(cfg Config) (http.Handler, error) {
	if cfg.Registry == nil {
		return nil, errors.New("admin: Registry is required")
	}
	if (len(cfg.Protected) > 0 || cfg.ProtectMetrics) && !cfg.Credentials.Set() {
		return nil, ErrNoCredentials
	}
	guard := newGuard(cfg.Credentials)
	mux := http.NewServeMux()
	metrics := promhttp.HandlerFor(cfg.Registry, promhttp.HandlerOpts{})
	if cfg.ProtectMetrics {
		metrics = guard.wrap(metrics)
	}
	mux.Handle("GET /metrics", metrics)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = io.WriteString(w, "ok\n")
	})
	if cfg.ReadyFunc != nil {
		mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
			ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
			defer cancel()
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			if err := cfg.ReadyFunc(ctx); err != nil {
				w.WriteHeader(http.StatusServiceUnavailable)
				_, _ = fmt.Fprintf(w, "not ready: %v\n", err)
				return
			}
			_, _ = io.WriteString(w, "ok\n")
		})
	}
	csrf := http.NewCrossOriginProtection()
	for pattern, h := range cfg.Protected {
		mux.Handle(pattern, guard.wrap(csrf.Handler(h)))
	}
	return mux, nil
}

// Server returns an http.Server for an admin handler with the timeouts and header limit of an
// operator surface.
func Server(h http.Handler) *http.Server {
	return &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second,
		WriteTimeout: time.Minute, IdleTimeout: 2 * time.Minute, MaxHeaderBytes: 64 << 10}
}

// guard checks credentials in constant time. It keeps digests, so that comparisons take the same
// time whatever the lengths.
type guard struct {
	user, pass [sha256.Size]byte
	basic      bool
	tokens     [][sha256.Size]byte
}

func newGuard(c Credentials) *guard {
	g := &guard{basic: c.Username != "" && c.Password != ""}
	g.user, g.pass = sha256.Sum256([]byte(c.Username)), sha256.Sum256([]byte(c.Password))
	for _, t := range c.BearerTokens {
		if t != "" {
			g.tokens = append(g.tokens, sha256.Sum256([]byte(t)))
		}
	}
	return g
}

func (g *guard) allowed(r *http.Request) bool {
	auth := r.Header.Get("Authorization")
	if scheme, token, ok := strings.Cut(auth, " "); ok && strings.EqualFold(scheme, "Bearer") {
		got := sha256.Sum256([]byte(strings.TrimSpace(token)))
		match := 0
		for _, want := range g.tokens {
			match |= subtle.ConstantTimeCompare(got[:], want[:])
		}
		return match == 1
	}
	user, pass, ok := r.BasicAuth()
	if !ok || !g.basic {
		return false
	}
	u, p := sha256.Sum256([]byte(user)), sha256.Sum256([]byte(pass))
	return subtle.ConstantTimeCompare(u[:], g.user[:])&subtle.ConstantTimeCompare(p[:], g.pass[:]) == 1
}

func (g *guard) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !g.allowed(r) {
			if g.basic {
				w.Header().Set("WWW-Authenticate", `Basic realm="idpsync admin", charset="UTF-8"`)
			}
			http.Error(w, "credentials required", http.StatusUnauthorized)
			return
		}
		h.ServeHTTP(w, r)
	})
}
