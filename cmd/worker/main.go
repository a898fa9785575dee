// Command worker runs idpsync's workers and its operator commands.
//
// Usage:
//
//	worker [-config FILE] [-log-level LEVEL] [command] [command flags]
//
// The common flags may also follow the command; "worker help" and "worker COMMAND -h" show help.
//
// Commands:
//
//	run      consume the event stream, record events and work the jobs (the default)
//	migrate  apply idpsync's and River's migrations to the configured schema
//	replay   re-drive events from the event log, the stream or the dead letters
//	resync   resync a source from its management API now
//
// Environment: IDPSYNC_CONFIG (default for -config), DATABASE_URL, NATS_URL, LOG_LEVEL, and
// whatever the config references as ${NAME}.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/idpsync/idpsync/internal/app"
	"github.com/idpsync/idpsync/internal/cli"
	"github.com/idpsync/idpsync/internal/config"
	"github.com/idpsync/idpsync/internal/store"
	"github.com/idpsync/idpsync/internal/telemetry"
	"github.com/idpsync/idpsync/internal/worker"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "worker:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	return program.Run(ctx, args, getenv, stdout, stderr)
}

var program = &cli.Program{
	Name:    "worker",
	Summary: "idpsync's worker: it records the event stream in Postgres, keeps the mirror and revokes access; and the operator's commands",
	Default: "run",
	Commands: []cli.Command{
		{Name: "run", Summary: "consume the event stream, record events and work the jobs",
			Parts: config.ForWorker, Flags: runFlags},
		{Name: "migrate", Summary: "create the database if missing and apply idpsync's and River's migrations",
			Usage: migrateUsage, Parts: config.ForDatabase, Flags: migrateFlags},
		{Name: "replay", Summary: "re-drive events from the event log, the stream or the dead letters",
			Usage: replayUsage, Parts: config.ForWorker, Flags: replayFlags},
		{Name: "resync", Summary: "resync a source from its management API now (-wait shows the progress)",
			Parts: config.ForWorker, Flags: resyncFlags},
		{Name: "check", Summary: "say what each source is configured to do and make one authenticated call to its API",
			Usage: checkUsage, Parts: []config.Part{config.PartSources}, Flags: checkFlags},
		{Name: "register", Summary: "register the receiver as a source's webhook endpoint at its IdP (-dry-run shows the calls)",
			Usage: registerUsage, Parts: []config.Part{config.PartSources}, Flags: registerFlags},
		{Name: "unregister", Summary: "remove what register made at a source's IdP",
			Usage: unregisterUsage, Parts: []config.Part{config.PartSources}, Flags: unregisterFlags},
	},
	Environment: "IDPSYNC_CONFIG (default for -config), DATABASE_URL, NATS_URL, LOG_LEVEL, the OTEL_* variables of tracing (README, Tracing), and whatever the configuration references as ${NAME}.",
}

func runFlags(*flag.FlagSet) func(ctx context.Context, e *cli.Env) error {
	return func(ctx context.Context, e *cli.Env) error {
		pool, err := worker.OpenDatabase(ctx, e.Config)
		if err != nil {
			return err
		}
		defer pool.Close()
		bus, err := app.ConnectBus(ctx, e.Config, "idpsync-worker", e.Logger)
		if err != nil {
			return err
		}
		defer bus.Conn().Close()
		tracing, err := telemetry.Setup(ctx, "idpsync-worker", e.Getenv, e.Logger)
		if err != nil {
			return err
		}
		defer tracing.Shutdown(context.WithoutCancel(ctx))
		w, err := worker.FromConfig(e.Config, pool, bus, e.Logger, app.NewRegistry(), tracing.TracerProvider())
		if err != nil {
			return err
		}
		return w.Run(ctx)
	}
}

const migrateUsage = `Creates the configured database when it does not exist (the role needs CREATEDB; otherwise the
error gives the command for an administrator), then applies the migrations. Only the database
section of the configuration is read.`

func migrateFlags(*flag.FlagSet) func(ctx context.Context, e *cli.Env) error {
	return func(ctx context.Context, e *cli.Env) error {
		db := e.Config.Database
		name, created, err := store.EnsureDatabase(ctx, db.URL)
		if err != nil {
			return err
		}
		if created {
			fmt.Fprintf(e.Stdout, "created database %s\n", name)
		}
		pool, err := worker.OpenDatabase(ctx, e.Config)
		if err != nil {
			return err
		}
		defer pool.Close()
		// What was applied goes to stdout, one line each; the log keeps only warnings and errors.
		quiet := slog.New(slog.NewJSONHandler(e.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
		applied, err := store.Migrate(ctx, pool, db.Schema, quiet)
		if err != nil {
			return err
		}
		if len(applied) == 0 {
			fmt.Fprintf(e.Stdout, "schema %s is up to date\n", db.Schema)
			return nil
		}
		for _, m := range applied {
			fmt.Fprintf(e.Stdout, "applied %s %03d %s\n", m.Line, m.Version, m.Name)
		}
		return nil
	}
}
