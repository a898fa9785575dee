package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"

	"github.com/idpsync/idpsync/internal/cli"
	"github.com/idpsync/idpsync/internal/events"
	"github.com/idpsync/idpsync/internal/handlers"
	"github.com/idpsync/idpsync/internal/store"
	"github.com/idpsync/idpsync/internal/worker"
)

func resyncFlags(fs *flag.FlagSet) func(ctx context.Context, e *cli.Env) error {
	source := fs.String("source", "", "the source to resync (required)")
	entities := fs.String("entity", "", "users, organizations, memberships, comma-separated (default: all the source resyncs)")
	wait := fs.Bool("wait", false, "wait for the resyncs to finish, showing their progress")
	return func(ctx context.Context, e *cli.Env) error {
		src, ok := e.Config.Source(*source)
		switch {
		case *source == "":
			return errors.New("-source is required")
		case !ok:
			return fmt.Errorf("-source: no source named %q in the configuration", *source)
		case len(src.ResyncEntities()) == 0:
			return fmt.Errorf("source %s has no api credentials to resync from", *source)
		}
		list := src.ResyncEntities()
		if *entities != "" {
			list = nil
			for _, name := range split(*entities) {
				en, err := events.ParseEntity(name)
				if err != nil {
					return fmt.Errorf("-entity: %w", err)
				}
				if !slices.Contains(src.ResyncEntities(), en) {
					return fmt.Errorf("-entity: source %s resyncs %s, not %s", *source, plurals(src.ResyncEntities()), en.Plural())
				}
				list = append(list, en)
			}
		}

		pool, err := worker.OpenDatabase(ctx, e.Config)
		if err != nil {
			return err
		}
		defer pool.Close()
		client, err := river.NewClient(riverpgxv5.New(pool), &river.Config{Schema: e.Config.Database.Schema})
		if err != nil {
			return err
		}
		jobs := make(map[events.Entity]int64, len(list))
		for _, en := range list {
			res, err := client.Insert(ctx, handlers.ResyncArgs{Source: *source, Entity: en}, nil)
			if err != nil {
				return fmt.Errorf("enqueueing the resync of %s: %w", en.Plural(), err)
			}
			jobs[en] = res.Job.ID
			if res.UniqueSkippedAsDuplicate {
				fmt.Fprintf(e.Stdout, "a resync of %s %s is already under way (job %d)\n", *source, en.Plural(), res.Job.ID)
			} else {
				fmt.Fprintf(e.Stdout, "resync of %s %s enqueued (job %d); a running worker takes it\n", *source, en.Plural(), res.Job.ID)
			}
		}
		if !*wait {
			return nil
		}
		return follow(ctx, e, pool, list, jobs)
	}
}

// follow shows the runs' progress until they finish: one line rewritten in place on a terminal, a
// line every five seconds otherwise.
func follow(ctx context.Context, e *cli.Env, pool store.DBTX, entities []events.Entity, jobs map[events.Entity]int64) error {
	tty := isTerminal(e.Stderr)
	ticker := time.NewTicker(500 * time.Millisecond)
	defer ticker.Stop()
	var lastPrint time.Time
	for {
		runs := map[events.Entity]store.ResyncRun{}
		done := 0
		for _, en := range entities {
			r, err := store.GetResyncRunByJob(ctx, pool, jobs[en])
			if err != nil && !errors.Is(err, store.ErrNotFound) {
				return err
			}
			runs[en] = r
			if r.Status == store.RunSucceeded || r.Status == store.RunFailed {
				done++
			}
		}
		var parts []string
		for _, en := range entities {
			r := runs[en]
			switch r.Status {
			case "":
				parts = append(parts, en.Plural()+": waiting for a worker")
			default:
				parts = append(parts, fmt.Sprintf("%s: %s, %d seen, drift +%d ~%d -%d", en.Plural(), r.Status, r.Seen, r.Created, r.Updated, r.Deleted))
			}
		}
		line := strings.Join(parts, " | ")
		switch {
		case tty:
			fmt.Fprintf(e.Stderr, "\r\033[K%s", line)
		case time.Since(lastPrint) >= 5*time.Second || done == len(entities):
			fmt.Fprintln(e.Stderr, line)
			lastPrint = time.Now()
		}
		if done == len(entities) {
			if tty {
				fmt.Fprintln(e.Stderr)
			}
			var failed []string
			for _, en := range entities {
				r := runs[en]
				fmt.Fprintf(e.Stdout, "%s %s: %s in %s; %d seen, %d created, %d updated, %d deleted, %d skipped\n",
					r.Source, en.Plural(), r.Status, r.FinishedAt.Sub(r.StartedAt).Round(time.Millisecond), r.Seen, r.Created, r.Updated, r.Deleted, r.Skipped)
				if r.Status == store.RunFailed {
					failed = append(failed, en.Plural()+": "+r.Error)
				}
			}
			if len(failed) > 0 {
				return fmt.Errorf("resync failed (nothing was deleted): %s", strings.Join(failed, "; "))
			}
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-ticker.C:
		}
	}
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	info, err := f.Stat()
	return err == nil && info.Mode()&os.ModeCharDevice != 0
}

func plurals(es []events.Entity) string {
	names := make([]string, len(es))
	for i, e := range es {
		names[i] = e.Plural()
	}
	return strings.Join(names, ", ")
}
