package main

import (
	"context"
	"flag"
	"fmt"
	"strings"
	"time"

	"github.com/idpsync/idpsync/internal/cli"
	"github.com/idpsync/idpsync/internal/config"
	"github.com/idpsync/idpsync/internal/events"
	"github.com/idpsync/idpsync/internal/handlers"
	"github.com/idpsync/idpsync/internal/worker"
)

const checkUsage = `For each source: what the configuration makes idpsync do with it, and one cheap authenticated call
to its management API, told as a sentence when it fails. Reads only the sources' settings; the
worker runs the same calls when it starts and reports a misconfigured source in /readyz.`

func checkFlags(fs *flag.FlagSet) func(ctx context.Context, e *cli.Env) error {
	only := fs.String("source", "", "check only this source")
	return func(ctx context.Context, e *cli.Env) error {
		var sources []config.Source
		for _, s := range e.Config.Sources {
			if *only == "" || s.Name == *only {
				sources = append(sources, s)
			}
		}
		if len(sources) == 0 {
			return fmt.Errorf("-source: no source named %q in the configuration", *only)
		}
		health := handlers.NewSourceHealth()
		var probes []worker.Probe
		for _, s := range sources {
			conn, err := worker.ConnectSource(s, e.Logger, nil)
			if err != nil {
				return err
			}
			if conn != nil {
				health.Describe(s.Name, func(err error) string { return worker.Explain(s, err) })
				probes = append(probes, worker.Probe{Source: s.Name, BaseURL: worker.BaseURL(s), Prober: conn.Probe})
			}
		}
		results := map[string]worker.Checked{}
		for _, c := range worker.CheckSources(ctx, probes, health) {
			results[c.Source] = c
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		failed := 0
		for _, s := range sources {
			fmt.Fprintf(e.Stdout, "%s (%s)\n", s.Name, s.Provider().Name)
			for _, line := range describe(e.Config, s) {
				fmt.Fprintf(e.Stdout, "  %s\n", line)
			}
			c, ok := results[s.Name]
			switch {
			case !ok:
				fmt.Fprintf(e.Stdout, "  check: no api settings, so no call to make\n")
			case c.Err == nil:
				fmt.Fprintf(e.Stdout, "  check: ok, %s answered in %s\n", c.Call, c.Took.Round(time.Millisecond))
			default:
				failed++
				fmt.Fprintf(e.Stdout, "  check: FAILED: %s\n", c.Problem)
			}
		}
		if failed > 0 {
			return fmt.Errorf("%d of %d sources failed the check", failed, len(sources))
		}
		return nil
	}
}

// describe says what the configuration makes idpsync do with source s.
func describe(cfg *config.Config, s config.Source) []string {
	var lines []string
	switch w := s.Webhook; {
	case !s.HasWebhook() && len(s.ResyncEntities()) > 0:
		lines = append(lines, "webhooks: none (its changes reach the mirror by resync only)")
	case !s.HasWebhook():
		lines = append(lines, "webhooks: none")
	default:
		var parts []string
		if n := len(w.Secrets); n > 0 {
			parts = append(parts, count(n, "signing secret")+rotation(n))
		}
		if n := len(w.BearerTokens); n > 0 {
			parts = append(parts, count(n, "bearer token")+rotation(n))
		}
		line := "webhooks: verified with " + strings.Join(parts, " and ")
		if len(w.Secrets) > 0 && w.Tolerance > 0 {
			line += fmt.Sprintf(", timestamps within %s", w.Tolerance)
		}
		lines = append(lines, line+"; the receiver serves /webhooks/"+s.Name)
	}
	if !s.API.Configured() {
		lines = append(lines, "api: none (mirrored from webhooks only; never resynced)")
	} else {
		line := "api: " + worker.BaseURL(s)
		switch es := s.ResyncEntities(); {
		case len(es) == 0:
			line += "; not resynced"
		case !*s.Resync.Periodic:
			line += "; resyncs " + plurals(es) + " on demand (worker resync)"
		default:
			line += fmt.Sprintf("; resyncs %s every %s", plurals(es), s.Resync.Interval)
		}
		lines = append(lines, line)
	}
	r := s.Revocation
	var does []string
	if s.RevokesSessions() {
		does = append(does, "revokes the user's sessions here")
	}
	if r.ZeroID != "" {
		does = append(does, fmt.Sprintf("%s the user's agents at %s (owner by %s)", agentVerb(r.ZeroIDAction), r.ZeroID, r.OwnerKey))
	}
	switch {
	case !s.HasWebhook() && len(s.ResyncEntities()) == 0: // no changes of its own to react to
	case len(r.Triggers) == 0:
		lines = append(lines, "revocation: off")
	case len(does) == 0:
		lines = append(lines, "revocation: nothing to revoke (no sessions here, no zeroid source)")
	default:
		names := make([]string, len(r.Triggers))
		for i, t := range r.Triggers {
			names[i] = string(t)
		}
		lines = append(lines, fmt.Sprintf("revocation: on %s, %s", strings.Join(names, ", "), strings.Join(does, " and ")))
	}
	for _, other := range cfg.Sources {
		if other.Revocation.ZeroID == s.Name {
			lines = append(lines, fmt.Sprintf("revocation target of %s: its users' agents are %s here", other.Name, agentDone(other.Revocation.ZeroIDAction)))
		}
	}
	return lines
}

func agentVerb(a events.AgentAction) string {
	switch a {
	case events.AgentDeactivate:
		return "deactivates"
	case events.AgentSignal:
		return "sends a critical CAE signal for"
	}
	return "offboards"
}

func agentDone(a events.AgentAction) string {
	switch a {
	case events.AgentDeactivate:
		return "deactivated"
	case events.AgentSignal:
		return "signalled"
	}
	return "offboarded"
}

func count(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}

func rotation(n int) string {
	if n > 1 {
		return " (a rotation)"
	}
	return ""
}
