package idpclient

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"golang.org/x/time/rate"
)

// Defaults shared by every client.
const (
	// DefaultUserAgent is sent when a Config leaves UserAgent empty.
	DefaultUserAgent = "idpsync/1 (+https://github.com/idpsync/idpsync)"
	// DefaultTimeout is the per-attempt timeout of the default *http.Client.
	DefaultTimeout = 30 * time.Second
	// MaxResponseBytes bounds how much of a response body is read.
	MaxResponseBytes = 64 << 20
)

// Authenticator puts credentials on an outgoing request.
type Authenticator interface {
	// Authorize sets the credential headers of req. It may block to fetch a token, honouring ctx.
	Authorize(ctx context.Context, req *http.Request) error
}

// Refresher is implemented by authenticators whose credentials can be renewed. When the provider
// answers 401 to a request, the transport calls Refresh with that request once; if it returns true
// the request is sent again with fresh credentials (a 401 means the request was not processed, so
// this is safe for writes too).
type Refresher interface {
	// Refresh renews the credentials that req was sent with, unless another caller already did.
	Refresh(ctx context.Context, req *http.Request) (bool, error)
}

// AuthenticatorFunc adapts a function to Authenticator.
type AuthenticatorFunc func(ctx context.Context, req *http.Request) error

// Authorize implements Authenticator.
func (f AuthenticatorFunc) Authorize(ctx context.Context, req *http.Request) error {
	return f(ctx, req)
}

// BearerToken returns an Authenticator sending "Authorization: Bearer <token>".
func BearerToken(token string) Authenticator {
	return AuthenticatorFunc(func(_ context.Context, req *http.Request) error {
		req.Header.Set("Authorization", "Bearer "+token)
		return nil
	})
}

// BasicAuth returns an Authenticator sending HTTP Basic credentials.
func BasicAuth(user, password string) Authenticator {
	return AuthenticatorFunc(func(_ context.Context, req *http.Request) error {
		req.SetBasicAuth(user, password)
		return nil
	})
}

// ErrorDecoderFunc turns a provider's error body into an *APIError. It fills Code, Message,
// RequestID and Fields from the body, and sets Recognized when the body is in the provider's own
// error shape (not an edge proxy's page or a router's default answer); the transport fills
// Provider, Op, Status, RetryAfter and Gone and falls back to the status text for Message. It
// must not return nil.
type ErrorDecoderFunc func(status int, header http.Header, body []byte) *APIError

// Config configures a Transport. Provider packages build it from their own Config.
type Config struct {
	// Provider names the IdP in errors and logs. Required.
	Provider string
	// BaseURL is the API root every request path is appended to, e.g. "https://api.clerk.com/v1".
	// Required.
	BaseURL string
	// HTTPClient sends the requests. Defaults to a client with a DefaultTimeout timeout. Whatever
	// the client, the transport follows no redirect to another origin (scheme, host and port):
	// credentials never leave the origin they are configured for.
	HTTPClient *http.Client
	// UserAgent is sent on every request. Defaults to DefaultUserAgent.
	UserAgent string
	// Auth sets credentials on every request that does not opt out. Nil sends none.
	Auth Authenticator
	// Header holds extra headers sent on every request (API version, tenant headers).
	Header http.Header
	// Limiter, when set, is waited on before every attempt (client-side rate limit shared by
	// all clients of one source). Nil means no client-side limit.
	Limiter *rate.Limiter
	// Retry is the retry policy; see RetryPolicy for its defaults.
	Retry RetryPolicy
	// DecodeErrorFunc decodes the provider's error bodies. Defaults to one that keeps the status
	// text only.
	DecodeErrorFunc ErrorDecoderFunc
	// RequestIDHeaders are response headers that carry the provider's request or trace id, tried
	// in order when the error body carries none. Defaults to X-Request-Id.
	RequestIDHeaders []string
	// Logger receives debug records of retries. Defaults to a logger that discards.
	Logger *slog.Logger
}

// Transport is the one seam between a provider client and HTTP: it owns the base URL, auth, JSON,
// client-side rate limiting, retries and the decoding of errors. It is safe for concurrent use.
type Transport struct {
	provider  string
	base      *url.URL
	client    *http.Client
	userAgent string
	auth      Authenticator
	header    http.Header
	limiter   *rate.Limiter
	retry     RetryPolicy
	decode    ErrorDecoderFunc
	reqIDs    []string
	logger    *slog.Logger
}

// NewTransport validates cfg and returns a Transport.
func NewTransport(cfg Config) (*Transport, error) {
	if cfg.Provider == "" {
		return nil, errors.New("idpclient: Provider is empty; set it to the IdP kind, e.g. \"clerk\"")
	}
	base, err := ParseBaseURL(cfg.BaseURL)
	if err != nil {
		return nil, err
	}
	if err := cfg.Retry.validate(); err != nil {
		return nil, err
	}
	t := &Transport{
		provider:  cfg.Provider,
		base:      base,
		client:    cfg.HTTPClient,
		userAgent: cmp.Or(cfg.UserAgent, DefaultUserAgent),
		auth:      cfg.Auth,
		header:    cfg.Header.Clone(),
		limiter:   cfg.Limiter,
		retry:     cfg.Retry.withDefaults(),
		decode:    cfg.DecodeErrorFunc,
		reqIDs:    cfg.RequestIDHeaders,
		logger:    cfg.Logger,
	}
	if t.client == nil {
		t.client = &http.Client{Timeout: DefaultTimeout}
	}
	client := *t.client // a copy: the caller's client keeps its own redirect policy
	client.CheckRedirect = sameOriginRedirects
	t.client = &client
	if t.decode == nil {
		t.decode = func(int, http.Header, []byte) *APIError { return &APIError{} }
	}
	if len(t.reqIDs) == 0 {
		t.reqIDs = []string{"X-Request-Id"}
	}
	if t.logger == nil {
		t.logger = slog.New(slog.DiscardHandler)
	}
	return t, nil
}

// ParseBaseURL checks that raw is an absolute http(s) URL without user info, query or fragment
// and returns it without a trailing slash. Its errors never repeat raw, which may hold a
// credential.
func ParseBaseURL(raw string) (*url.URL, error) {
	if raw == "" {
		return nil, errors.New("base URL is empty; set it to the API root, e.g. https://api.example.com")
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, errors.New("base URL is not an absolute http(s) URL; write it as https://host[:port][/path]")
	}
	if u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("base URL %s://%s… must not carry user info, a query or a fragment; credentials go in the api settings", u.Scheme, u.Host)
	}
	u.Path = strings.TrimSuffix(u.Path, "/")
	u.RawPath = strings.TrimSuffix(u.RawPath, "/")
	return u, nil
}

// URL returns the URL of an escaped API path: the base URL's path, then path. A base URL at a
// host root ("https://zeroid.internal") and one with a path ("https://api.clerk.com/v1") join
// alike, with exactly one slash between them.
func (t *Transport) URL(path string) (*url.URL, error) {
	if path != "" && !strings.HasPrefix(path, "/") {
		return nil, fmt.Errorf("request path %q does not start with a slash", path)
	}
	raw := strings.TrimSuffix(t.base.EscapedPath(), "/") + path
	unescaped, err := url.PathUnescape(raw)
	if err != nil {
		return nil, fmt.Errorf("request path %q is not escaped correctly: %w", path, err)
	}
	u := *t.base
	u.Path, u.RawPath = unescaped, raw
	return &u, nil
}

// sameOriginRedirects lets the client follow a redirect only within the origin of the request:
// a redirect elsewhere would carry the credentials there.
func sameOriginRedirects(req *http.Request, via []*http.Request) error {
	first := via[0].URL
	switch {
	case len(via) >= 10:
		return errors.New("stopped after 10 redirects")
	case req.URL.Scheme != first.Scheme || req.URL.Host != first.Host:
		return fmt.Errorf("%w: redirected to another origin (%s://%s); idpsync sends credentials only to the configured base_url",
			ErrUnexpected, req.URL.Scheme, req.URL.Host)
	}
	return nil
}

// Provider returns the IdP kind the transport talks to.
func (t *Transport) Provider() string { return t.provider }

// BaseURL returns the API root.
func (t *Transport) BaseURL() string { return t.base.String() }

// Request is one API call.
type Request struct {
	// Method is the HTTP method.
	Method string
	// Path is appended to the base URL; path parameters must already be escaped (use PathEscape).
	Path string
	// Query is the URL query.
	Query url.Values
	// JSON, when non-nil, is encoded as the JSON request body.
	JSON any
	// Form, when non-nil, is sent as an application/x-www-form-urlencoded body.
	Form url.Values
	// Header holds per-request headers.
	Header http.Header
	// Idempotent marks a request that may be repeated safely (a read sent as POST, a call the
	// provider deduplicates). GET and HEAD are always idempotent. Only idempotent requests are
	// retried on 429, 5xx and network errors.
	Idempotent bool
	// IdempotencyKey, when set, is sent as the Idempotency-Key header and makes the request
	// idempotent: the provider deduplicates repeats, so it is retried like a read.
	IdempotencyKey string
	// NoAuth skips the transport's Authenticator (for token endpoints with their own credentials).
	NoAuth bool
	// NotFoundMeansGone declares that a 404 to this request, in the provider's own error shape,
	// means that the one resource the request names no longer exists (a session to revoke, an
	// identity to deactivate, a user to read): the error then matches ErrNotFound. Every other
	// 404 — from a list or a search, a token endpoint, or a route the server does not have —
	// matches ErrUnexpected: idpsync is misconfigured (a wrong base_url), never "already done".
	NotFoundMeansGone bool
}

func (r *Request) idempotent() bool {
	return r.Idempotent || r.IdempotencyKey != "" || r.Method == http.MethodGet || r.Method == http.MethodHead
}

// Op returns "METHOD /path" for errors and logs.
func (r *Request) Op() string { return r.Method + " " + r.Path }

// PathEscape escapes one path segment (an id taken from a payload).
func PathEscape(s string) string { return url.PathEscape(s) }

// Do sends req, retrying as the policy allows, and decodes a 2xx JSON body into out (unless out is
// nil or the body is empty). A non-2xx answer becomes an *APIError; no response at all a
// *TransportError; cancellation returns an error matching ctx.Err().
func (t *Transport) Do(ctx context.Context, req *Request, out any) error {
	body, contentType, err := encodeBody(req)
	if err != nil {
		return fmt.Errorf("%s %s: encoding request: %w", t.provider, req.Op(), err)
	}
	target, err := t.URL(req.Path)
	if err != nil {
		return fmt.Errorf("%s %s: %w", t.provider, req.Op(), err)
	}
	if len(req.Query) > 0 {
		target.RawQuery = req.Query.Encode()
	}
	idempotent := req.idempotent()
	refreshed := false
	for attempt := 1; ; attempt++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		if t.limiter != nil {
			if err := t.limiter.Wait(ctx); err != nil {
				if ctxErr := ctx.Err(); ctxErr != nil {
					return ctxErr
				}
				// The limiter refuses waits that would pass the deadline: report that as a
				// client-side rate limit so callers defer rather than fail.
				return &APIError{Provider: t.provider, Op: req.Op(), Status: http.StatusTooManyRequests,
					Message: "client-side rate limit would exceed the context deadline"}
			}
		}
		hreq, err := t.newHTTPRequest(ctx, req, target, body, contentType)
		if err != nil {
			return err
		}
		resp, err := t.client.Do(hreq)
		var callErr error
		if err != nil {
			if ctxErr := ctx.Err(); ctxErr != nil {
				return ctxErr
			}
			if errors.Is(err, ErrUnexpected) { // a redirect refused: not a network failure
				return fmt.Errorf("%s %s: %w", t.provider, req.Op(), stripURL(err))
			}
			callErr = &TransportError{Provider: t.provider, Op: req.Op(), Err: stripURL(err)}
		} else {
			var status int
			status, callErr = t.readResponse(resp, req, out)
			if callErr == nil {
				return nil
			}
			if status == http.StatusUnauthorized && !refreshed {
				if r, ok := t.auth.(Refresher); ok && !req.NoAuth {
					again, rerr := r.Refresh(ctx, hreq)
					if rerr != nil {
						return fmt.Errorf("%w (refreshing credentials failed: %w)", callErr, rerr)
					}
					if again {
						refreshed = true
						attempt--
						continue
					}
				}
			}
		}
		if !idempotent || Classify(callErr) == ClassPermanent || attempt >= t.retry.MaxAttempts {
			return callErr
		}
		wait, ok := t.retry.wait(attempt, callErr)
		if !ok {
			return callErr
		}
		if deadline, has := ctx.Deadline(); has && time.Until(deadline) < wait {
			// Sleeping would run into the deadline: hand the error back now so the caller can
			// defer the work instead of failing at the deadline.
			return callErr
		}
		t.logger.DebugContext(ctx, "retrying idp request",
			slog.String("provider", t.provider), slog.String("op", req.Op()),
			slog.Int("attempt", attempt), slog.Duration("wait", wait), slog.String("error", callErr.Error()))
		if err := t.retry.SleepFunc(ctx, wait); err != nil {
			return fmt.Errorf("%w (while waiting to retry after: %w)", err, callErr)
		}
	}
}

func (t *Transport) newHTTPRequest(ctx context.Context, req *Request, target *url.URL, body []byte, contentType string) (*http.Request, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	hreq, err := http.NewRequestWithContext(ctx, req.Method, target.String(), rd)
	if err != nil {
		return nil, fmt.Errorf("%s %s: building request: %w", t.provider, req.Op(), err)
	}
	for k, vs := range t.header {
		hreq.Header[k] = vs
	}
	for k, vs := range req.Header {
		hreq.Header[k] = vs
	}
	hreq.Header.Set("User-Agent", t.userAgent)
	hreq.Header.Set("Accept", "application/json")
	if contentType != "" {
		hreq.Header.Set("Content-Type", contentType)
	}
	if req.IdempotencyKey != "" {
		hreq.Header.Set("Idempotency-Key", req.IdempotencyKey)
	}
	if t.auth != nil && !req.NoAuth {
		if err := t.auth.Authorize(ctx, hreq); err != nil {
			if ctxErr := ctx.Err(); ctxErr != nil {
				return nil, ctxErr
			}
			return nil, fmt.Errorf("%s %s: authorizing request: %w", t.provider, req.Op(), err)
		}
	}
	return hreq, nil
}

// readResponse reads and closes resp. It returns nil after decoding a 2xx answer into out.
func (t *Transport) readResponse(resp *http.Response, req *Request, out any) (int, error) {
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, MaxResponseBytes))
	if err != nil {
		return resp.StatusCode, &TransportError{Provider: t.provider, Op: req.Op(), Err: fmt.Errorf("reading response body: %w", err)}
	}
	if resp.StatusCode >= 200 && resp.StatusCode <= 299 {
		if out == nil || len(bytes.TrimSpace(data)) == 0 {
			return resp.StatusCode, nil
		}
		if err := json.Unmarshal(data, out); err != nil {
			// A 2xx that does not decode is a contract break (or not the API at all), not a
			// transient failure.
			return resp.StatusCode, fmt.Errorf("%s %s: %w: the %d answer does not decode: %w", t.provider, req.Op(), ErrUnexpected, resp.StatusCode, err)
		}
		return resp.StatusCode, nil
	}
	apiErr := t.decode(resp.StatusCode, resp.Header, data)
	if apiErr == nil {
		apiErr = &APIError{}
	}
	apiErr.Provider = t.provider
	apiErr.Op = req.Op()
	apiErr.Status = resp.StatusCode
	apiErr.Gone = resp.StatusCode == http.StatusNotFound && req.NotFoundMeansGone && apiErr.Recognized
	if apiErr.Message == "" {
		apiErr.Message = http.StatusText(resp.StatusCode)
	}
	if apiErr.RequestID == "" {
		for _, h := range t.reqIDs {
			if v := resp.Header.Get(h); v != "" {
				apiErr.RequestID = v
				break
			}
		}
	}
	if d, ok := ParseRetryAfter(resp.Header.Get("Retry-After"), time.Now()); ok {
		apiErr.RetryAfter = d
	}
	return resp.StatusCode, apiErr
}

func encodeBody(req *Request) ([]byte, string, error) {
	switch {
	case req.JSON != nil:
		b, err := json.Marshal(req.JSON)
		return b, "application/json", err
	case req.Form != nil:
		return []byte(req.Form.Encode()), "application/x-www-form-urlencoded", nil
	}
	return nil, "", nil
}

// stripURL drops the URL from a *url.Error: it adds nothing the Op does not say.
func stripURL(err error) error {
	var uerr *url.Error
	if errors.As(err, &uerr) {
		return uerr.Err
	}
	return err
}

// ParseRetryAfter parses a Retry-After value, either delay-seconds or an HTTP date, relative to
// now. It reports false for an empty, malformed or past value.
func ParseRetryAfter(v string, now time.Time) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if secs, err := strconv.ParseFloat(v, 64); err == nil {
		if secs <= 0 || secs > 7*24*3600 {
			return 0, false
		}
		return time.Duration(secs * float64(time.Second)), true
	}
	if at, err := http.ParseTime(v); err == nil && at.After(now) {
		return at.Sub(now), true
	}
	return 0, false
}
