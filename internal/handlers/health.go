package handlers

import (
	"errors"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/idpsync/idpsync/internal/idpclient"
	"github.com/idpsync/idpsync/internal/provider"
)

// SourceHealth remembers, per source, the last call to its management API that failed in a way
// only an operator can fix: a wrong base URL or route (idpclient.ErrUnexpected), rejected
// credentials (401) or missing permissions (403). Jobs report their calls; the worker's /readyz
// and `worker check` read it, so that a misconfigured source is named where operators look,
// not only in a log line. It is safe for concurrent use.
type SourceHealth struct {
	mu       sync.Mutex
	problems map[string]Problem
	explain  map[string]func(error) string
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
	return &SourceHealth{problems: map[string]Problem{}, explain: map[string]func(error) string{}, now: time.Now}
}

// Describe sets how source's errors are told to operators (its provider's Explain, with its base
// URL). Call it before the jobs run.
func (h *SourceHealth) Describe(source string, explain func(error) string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.explain[source] = explain
}

// Explain says err, from a call to source's management API, in a sentence for operators.
func (h *SourceHealth) Explain(source string, err error) string {
	if h != nil {
		h.mu.Lock()
		f := h.explain[source]
		h.mu.Unlock()
		if f != nil {
			return f(err)
		}
	}
	return err.Error()
}

// Observe records the outcome of a call to source's management API: a configuration problem
// marks the source, an answer of the API (a success, or "not found" for one resource) clears it,
// anything else (a rate limit, a 5xx, the network) leaves it as it was.
func (h *SourceHealth) Observe(source string, err error) {
	if h == nil {
		return
	}
	if err != nil && !errors.Is(err, idpclient.ErrNotFound) && !provider.Misconfigured(err) {
		return
	}
	var summary string
	if err != nil && !errors.Is(err, idpclient.ErrNotFound) {
		summary = h.Explain(source, err)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if summary == "" {
		delete(h.problems, source)
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
