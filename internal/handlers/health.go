package handlers

import (
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/idpsync/idpsync/internal/idpclient"
)

// SourceHealth remembers, per source, the last call to its management API that failed in a way
// only an operator can fix: a wrong base URL or route (idpclient.ErrUnexpected), rejected
// credentials (401) or missing permissions (403). Jobs report their calls; the worker's /readyz
// and `worker check` read it, so that a misconfigured source is named where operators look,
// not only in a log line. It is safe for concurrent use.
type SourceHealth struct {
	mu       sync.Mutex
	problems map[string]Problem
	now      func() time.Time
}

// Problem is a source's configuration problem, as the last failing call showed it.
type Problem struct {
	// Summary is a sentence for operators: what failed and what to check.
	Summary string
	// Since is when the problem was first seen (since the source last worked).
	Since time.Time
}

// NewSourceHealth returns an empty SourceHealth.
func NewSourceHealth() *SourceHealth {
	return &SourceHealth{problems: map[string]Problem{}, now: time.Now}
}

// Observe records the outcome of a call to source's management API: a configuration problem
// marks the source, an answer of the API (a success, or "not found" for one resource) clears it,
// anything else (a rate limit, a 5xx, the network) leaves it as it was.
func (h *SourceHealth) Observe(source string, err error) {
	if h == nil {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if err == nil || errors.Is(err, idpclient.ErrNotFound) {
		delete(h.problems, source)
		return
	}
	summary, ok := misconfiguration(err)
	if !ok {
		return
	}
	p, had := h.problems[source]
	if !had {
		p.Since = h.now()
	}
	p.Summary = summary
	h.problems[source] = p
}

// Problems returns the sources with a configuration problem, by name.
func (h *SourceHealth) Problems() map[string]Problem {
	if h == nil {
		return nil
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	return maps.Clone(h.problems)
}

// Err is nil when no source has a configuration problem, else an error naming each.
func (h *SourceHealth) Err() error {
	problems := h.Problems()
	if len(problems) == 0 {
		return nil
	}
	lines := make([]string, 0, len(problems))
	for _, name := range slices.Sorted(maps.Keys(problems)) {
		lines = append(lines, name+": "+problems[name].Summary)
	}
	return errors.New("misconfigured sources: " + strings.Join(lines, "; "))
}

// misconfiguration says whether err is a failure only an operator can fix, and how to read it.
func misconfiguration(err error) (string, bool) {
	var what string
	switch {
	case errors.Is(err, idpclient.ErrUnexpected):
		what = "the IdP's answer is not its API's (check base_url)"
	case errors.Is(err, idpclient.ErrUnauthorized):
		what = "the credentials are rejected (expired or wrong)"
	case errors.Is(err, idpclient.ErrForbidden):
		what = "the credentials lack a permission idpsync needs"
	default:
		return "", false
	}
	var apiErr *idpclient.APIError
	if errors.As(err, &apiErr) {
		return fmt.Sprintf("%s: %d %s from %s", what, apiErr.Status, http.StatusText(apiErr.Status), apiErr.Op), true
	}
	return fmt.Sprintf("%s: %v", what, err), true
}
