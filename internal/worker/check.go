package worker

import (
	"context"
	"strings"
	"sync"
	"time"

	"github.com/idpsync/idpsync/internal/handlers"
	"github.com/idpsync/idpsync/internal/provider"
)

// Probe is one source's check: its cheapest authenticated call.
type Probe struct {
	Source string
	// BaseURL is the root of the source's management API, to say where a call went.
	BaseURL string
	Prober  provider.Prober
}

// Checked is the outcome of one source's check.
type Checked struct {
	Source string
	// Call is the call made, "METHOD https://host/path".
	Call string
	// Took is how long the source took to answer.
	Took time.Duration
	// Err is the call's error; nil when the check passed.
	Err error
	// Problem says Err for an operator ("401 from GET https://…: the secret key … is wrong …").
	Problem string
}

// CheckTimeout bounds one source's check.
const CheckTimeout = 15 * time.Second

// CheckSources makes each probe's call, four at once at most, and returns the outcomes in the
// probes' order. health observes each outcome, so that /readyz names a source the check found
// misconfigured (until a later call to it succeeds).
func CheckSources(ctx context.Context, probes []Probe, health *handlers.SourceHealth) []Checked {
	out := make([]Checked, len(probes))
	sem := make(chan struct{}, 4)
	var wg sync.WaitGroup
	for i, p := range probes {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			cctx, cancel := context.WithTimeout(ctx, CheckTimeout)
			defer cancel()
			start := time.Now()
			call, err := p.Prober.Probe(cctx)
			c := Checked{Source: p.Source, Took: time.Since(start), Err: err}
			if method, path, ok := cutCall(call); ok {
				c.Call = method + " " + p.BaseURL + path
			} else {
				c.Call = call
			}
			if ctx.Err() != nil {
				return // shutting down: no outcome
			}
			health.Observe(p.Source, err)
			if err != nil {
				c.Problem = health.Explain(p.Source, err)
			}
			out[i] = c
		})
	}
	wg.Wait()
	return out
}

// cutCall splits "GET /users?limit=1" into its method and its path.
func cutCall(call string) (method, path string, ok bool) {
	method, path, ok = strings.Cut(call, " ")
	return method, path, ok && strings.HasPrefix(path, "/")
}

// checkSources runs the start-up check and logs what it finds: a line per source.
func (w *Worker) checkSources(ctx context.Context) {
	for _, c := range CheckSources(ctx, w.cfg.Probes, w.cfg.IdPs.Health) {
		switch {
		case c.Source == "": // cancelled
		case c.Err == nil:
			w.cfg.Logger.Info("source check passed", "source", c.Source, "call", c.Call, "took", c.Took.Round(time.Millisecond))
		default:
			w.cfg.Logger.Error("source check failed", "source", c.Source, "problem", c.Problem)
		}
	}
}
