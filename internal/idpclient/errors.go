package idpclient

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"
)

// Sentinels for the failure classes of a management-API call. An *APIError matches exactly one of
// them with errors.Is, chosen by its HTTP status (see [StatusSentinel]); a *TransportError matches
// ErrNetwork.
var (
	// ErrUnauthorized means the credentials were missing, wrong or expired (HTTP 401). Permanent
	// until an operator fixes the credentials.
	ErrUnauthorized = errors.New("unauthorized")
	// ErrForbidden means the credentials are valid but lack a permission (HTTP 403). Permanent.
	ErrForbidden = errors.New("forbidden")
	// ErrNotFound means the one resource a request named does not exist (a 404 in the provider's
	// own error shape to a request that declared Request.NotFoundMeansGone). Permanent; for a
	// revocation it means the work is already done.
	ErrNotFound = errors.New("not found")
	// ErrUnexpected means the answer is not one the API gives when idpsync is configured right: a
	// 404 from a list, a search, a token endpoint or an unknown route; a 2xx whose body does not
	// decode; a redirect to another origin. Permanent, and an operator must look: the source's
	// base_url or credentials are probably wrong. Never "already done".
	ErrUnexpected = errors.New("unexpected answer (check the source's base_url)")
	// ErrValidation means the provider rejected the request's parameters (HTTP 400 or 422). The
	// *APIError carries per-field details in Fields when the provider gave any. Permanent.
	ErrValidation = errors.New("validation failed")
	// ErrConflict means the request conflicts with the resource's current state (HTTP 409).
	// Permanent.
	ErrConflict = errors.New("conflict")
	// ErrRateLimited means the provider asked us to slow down (HTTP 429). Deferred: retry after
	// the *APIError's RetryAfter, or after a backoff when the provider gave none.
	ErrRateLimited = errors.New("rate limited")
	// ErrServer means the provider failed (HTTP 5xx). Retryable.
	ErrServer = errors.New("server error")
	// ErrNetwork means no HTTP response was received (connection refused or reset, timeout,
	// truncated body). Retryable.
	ErrNetwork = errors.New("network error")
)

// FieldError is one per-field detail of a validation error.
type FieldError struct {
	// Field names the offending parameter as the provider reported it (e.g. "limit",
	// "query.limit", "body.signal_type"). Empty when the provider did not say.
	Field string
	// Code is the provider's machine-readable code for this field, if any.
	Code string
	// Message is the provider's human-readable explanation.
	Message string
}

// APIError is a non-2xx answer from an IdP's management API, decoded from the provider's own error
// body. It never contains request credentials: the fields come from the response only.
type APIError struct {
	// Provider is the IdP kind: "clerk", "zitadel", "authpi" or "zeroid".
	Provider string
	// Op is the request that failed, as "METHOD /path" without the query string.
	Op string
	// Status is the HTTP status code.
	Status int
	// Code is the provider's machine-readable error code (Clerk "resource_not_found", Zitadel
	// "COMMAND-2M0fs" or the gRPC code, AuthPI "not_found", ZeroID "ZEROID-40401"), if any.
	Code string
	// Message is the provider's human-readable message, or the HTTP status text when the body
	// carried none (for example an HTML page from an edge proxy).
	Message string
	// RequestID is the provider's request or trace id (Clerk-Trace-Id, X-Request-Id, …), for
	// support tickets.
	RequestID string
	// RetryAfter is how long the provider asked us to wait (Retry-After header), zero if it did
	// not say.
	RetryAfter time.Duration
	// Fields holds per-field details of a validation error.
	Fields []FieldError
	// Recognized is true when the body was in the provider's own error shape (set by the
	// provider's decoder).
	Recognized bool
	// Gone is true for a 404 that means the resource the request named no longer exists
	// (Request.NotFoundMeansGone and a recognized body); such an error matches ErrNotFound, any
	// other 404 ErrUnexpected.
	Gone bool
}

// Error implements error. The text names the provider, operation, status, code and message.
func (e *APIError) Error() string {
	var b strings.Builder
	b.WriteString(e.Provider)
	if e.Op != "" {
		b.WriteString(" ")
		b.WriteString(e.Op)
	}
	fmt.Fprintf(&b, ": %d", e.Status)
	if e.Code != "" {
		b.WriteString(" ")
		b.WriteString(e.Code)
	}
	if e.Message != "" {
		b.WriteString(": ")
		b.WriteString(e.Message)
	}
	for i, f := range e.Fields {
		if i == 0 {
			b.WriteString(" (")
		} else {
			b.WriteString("; ")
		}
		if f.Field != "" {
			b.WriteString(f.Field)
			b.WriteString(": ")
		}
		b.WriteString(f.Message)
		if i == len(e.Fields)-1 {
			b.WriteString(")")
		}
	}
	if e.RetryAfter > 0 {
		fmt.Fprintf(&b, " [retry after %s]", e.RetryAfter)
	}
	if e.RequestID != "" {
		b.WriteString(" [request id ")
		b.WriteString(e.RequestID)
		b.WriteString("]")
	}
	return b.String()
}

// Unwrap returns the sentinel of the error's status class, so errors.Is(err, ErrNotFound) works
// through any wrapping. A 404 is ErrNotFound only when Gone, else ErrUnexpected.
func (e *APIError) Unwrap() error {
	if e.Status == http.StatusNotFound && !e.Gone {
		return ErrUnexpected
	}
	return StatusSentinel(e.Status)
}

// StatusSentinel is the one table mapping HTTP statuses to sentinels. It returns nil for statuses
// without a class of their own (other 4xx such as 402, 405, 410), which are permanent.
func StatusSentinel(status int) error {
	switch {
	case status == http.StatusUnauthorized:
		return ErrUnauthorized
	case status == http.StatusForbidden:
		return ErrForbidden
	case status == http.StatusNotFound:
		return ErrNotFound
	case status == http.StatusBadRequest, status == http.StatusUnprocessableEntity:
		return ErrValidation
	case status == http.StatusConflict:
		return ErrConflict
	case status == http.StatusTooManyRequests:
		return ErrRateLimited
	case status >= 500 && status <= 599:
		return ErrServer
	}
	return nil
}

// TransportError is a failure to get any HTTP response: DNS, connect, TLS, reset, client timeout
// or a body cut short. It matches ErrNetwork and unwraps to the underlying error.
type TransportError struct {
	// Provider is the IdP kind.
	Provider string
	// Op is the request, as "METHOD /path".
	Op string
	// Err is the underlying error from net/http.
	Err error
}

// Error implements error.
func (e *TransportError) Error() string {
	return fmt.Sprintf("%s %s: %v", e.Provider, e.Op, e.Err)
}

// Unwrap returns the sentinel ErrNetwork and the underlying error.
func (e *TransportError) Unwrap() []error { return []error{ErrNetwork, e.Err} }

// Class is how a caller should react to an error.
type Class int

const (
	// ClassNone means there was no error.
	ClassNone Class = iota
	// ClassRetryable means a later attempt may succeed: retry with the caller's own backoff
	// (a River job returns the error and lets River retry it).
	ClassRetryable
	// ClassDeferred means the provider asked to be called again later, after RetryAfter(err)
	// (a River job snoozes for that long).
	ClassDeferred
	// ClassPermanent means repeating the call cannot succeed without a change elsewhere
	// (credentials, parameters, the resource): a River job cancels.
	ClassPermanent
)

// String returns "none", "retryable", "deferred" or "permanent".
func (c Class) String() string {
	switch c {
	case ClassNone:
		return "none"
	case ClassRetryable:
		return "retryable"
	case ClassDeferred:
		return "deferred"
	case ClassPermanent:
		return "permanent"
	}
	return fmt.Sprintf("Class(%d)", int(c))
}

// Classify sorts err into a Class. Rate limits are deferred; 5xx, 408, network errors and an
// expired deadline are retryable; cancellation and every other error are permanent.
func Classify(err error) Class {
	if err == nil {
		return ClassNone
	}
	if errors.Is(err, context.Canceled) {
		return ClassPermanent
	}
	var apiErr *APIError
	if errors.As(err, &apiErr) {
		switch {
		case apiErr.Status == http.StatusTooManyRequests:
			return ClassDeferred
		case apiErr.Status >= 500, apiErr.Status == http.StatusRequestTimeout:
			return ClassRetryable
		}
		return ClassPermanent
	}
	if errors.Is(err, ErrNetwork) || errors.Is(err, context.DeadlineExceeded) {
		return ClassRetryable
	}
	return ClassPermanent
}

// Retryable reports whether a later attempt of the same call may succeed: true for rate limits,
// server errors, network errors and deadlines; false for nil, cancellation and permanent errors.
func Retryable(err error) bool {
	c := Classify(err)
	return c == ClassRetryable || c == ClassDeferred
}

// RetryAfter returns the wait the provider asked for (the Retry-After of a 429 or 503 answer) and
// whether it gave one.
func RetryAfter(err error) (time.Duration, bool) {
	var apiErr *APIError
	if errors.As(err, &apiErr) && apiErr.RetryAfter > 0 {
		return apiErr.RetryAfter, true
	}
	return 0, false
}
