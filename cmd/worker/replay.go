package main

import (
	"context"
	"flag"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/idpsync/idpsync/internal/app"
	"github.com/idpsync/idpsync/internal/cli"
	"github.com/idpsync/idpsync/internal/natsbus"
	"github.com/idpsync/idpsync/internal/replay"
	"github.com/idpsync/idpsync/internal/store"
	"github.com/idpsync/idpsync/internal/worker"
)

const replayUsage = `  -from log           re-apply events of the event log (after fixing how events map to rows)
  -from stream        re-record the stream's messages (after a parser fix, or a restored database)
  -from dead-letters  re-record the payloads kept in dead_letters (after a parser fix)

Times are RFC 3339 ("2026-11-24T08:00:00Z") or durations meaning that long ago ("6h").
`

func replayFlags(fs *flag.FlagSet) func(ctx context.Context, e *cli.Env) error {
	from := fs.String("from", "log", "log, stream or dead-letters")
	source := fs.String("source", "", "only this source")
	since := fs.String("since", "", "log: received at or after; stream: stored at or after")
	until := fs.String("until", "", "log: received before")
	types := fs.String("type", "", "log: canonical types, comma-separated (user.updated,membership.created)")
	entity := fs.String("entity", "", "log: only events of this entity id (a membership is <org id>/<user id>)")
	statuses := fs.String("status", "", "log: only events in these statuses, comma-separated (applied,stale)")
	eventIDs := fs.String("event-id", "", "log: only these event ids, comma-separated")
	startSeq := fs.Uint64("start-seq", 0, "stream: start at this stream sequence")
	deadIDs := fs.String("id", "", "dead-letters: only these dead letter ids, comma-separated")
	dryRun := fs.Bool("dry-run", false, "log: count the matching events, change nothing")
	return func(ctx context.Context, e *cli.Env) error {
		now := time.Now()
		sinceT, err := parseWhen(*since, now)
		if err != nil {
			return fmt.Errorf("-since: %w", err)
		}
		untilT, err := parseWhen(*until, now)
		if err != nil {
			return fmt.Errorf("-until: %w", err)
		}
		if *source != "" {
			if _, ok := e.Config.Source(*source); !ok {
				return fmt.Errorf("-source: no source named %q in the configuration", *source)
			}
		}

		pool, err := worker.OpenDatabase(ctx, e.Config)
		if err != nil {
			return err
		}
		defer pool.Close()
		bus, err := app.ConnectBus(ctx, e.Config, "idpsync-replay", e.Logger)
		if err != nil {
			return err
		}
		defer bus.Conn().Close()
		if *from == "stream" {
			// An operator waits a moment for NATS, not for the whole outage.
			wctx, cancel := context.WithTimeout(ctx, streamWait)
			err := bus.WaitReady(wctx)
			cancel()
			if err != nil {
				if why := bus.Ready(ctx); why != nil {
					err = why
				}
				return fmt.Errorf("the stream is not reachable after %s, so it cannot be replayed: %w", streamWait, err)
			}
		}
		rec, err := worker.NewRecorder(e.Config, pool, bus, e.Logger)
		if err != nil {
			return err
		}
		progress := func(c replay.Counts) { fmt.Fprintf(e.Stderr, "\r%d read", c.Read) }

		var c replay.Counts
		switch *from {
		case "log":
			f := store.EventFilter{Source: *source, Since: sinceT, Until: untilT, Types: split(*types), EntityID: *entity,
				Statuses: split(*statuses), EventIDs: split(*eventIDs)}
			c, err = replay.Log(ctx, pool, rec.Mirror, rec.River, f, *dryRun, progress)
			fmt.Fprintln(e.Stderr)
			if err == nil {
				if *dryRun {
					fmt.Fprintf(e.Stdout, "%d events match; nothing was changed (-dry-run)\n", c.Read)
				} else {
					fmt.Fprintf(e.Stdout, "%d events re-applied: %d changed the mirror, %d found it already right; %d enqueued to be read from their IdP\n",
						c.Read, c.Applied, c.Stale, c.Enqueued)
				}
			}
		case "stream":
			c, err = replay.Stream(ctx, bus, pool, rec.Intake, *source, natsbus.ReadFrom{Seq: *startSeq, Time: sinceT}, progress)
			fmt.Fprintln(e.Stderr)
			if err == nil {
				fmt.Fprintf(e.Stdout, "%d messages read: %d recorded, %d already in the log, %d dead-lettered\n", c.Read, c.Recorded, c.Duplicate, c.DeadLettered)
			}
		case "dead-letters":
			ids, perr := splitInts(*deadIDs)
			if perr != nil {
				return fmt.Errorf("-id: %w", perr)
			}
			c, err = replay.DeadLetters(ctx, pool, rec.Intake, store.DeadLetterFilter{Source: *source, IDs: ids}, progress)
			fmt.Fprintln(e.Stderr)
			if err == nil {
				fmt.Fprintf(e.Stdout, "%d dead letters replayed: %d recorded, %d already in the log, %d still failing\n", c.Read, c.Recorded, c.Duplicate, c.DeadLettered)
			}
		default:
			return fmt.Errorf("-from %q: use log, stream or dead-letters", *from)
		}
		return err
	}
}

// streamWait bounds the wait of `replay -from stream` for NATS.
const streamWait = 15 * time.Second

// parseWhen reads an RFC 3339 time or a duration meaning that long before now; "" is zero.
func parseWhen(s string, now time.Time) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if d, err := time.ParseDuration(s); err == nil {
		return now.Add(-d), nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%q is neither an RFC 3339 time nor a duration", s)
	}
	return t, nil
}

func split(s string) []string {
	var out []string
	for part := range strings.SplitSeq(s, ",") {
		if part = strings.TrimSpace(part); part != "" {
			out = append(out, part)
		}
	}
	return out
}

func splitInts(s string) ([]int64, error) {
	var out []int64
	for _, part := range split(s) {
		n, err := strconv.ParseInt(part, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("%q is not a number", part)
		}
		out = append(out, n)
	}
	return out, nil
}
