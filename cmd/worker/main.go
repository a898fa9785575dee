// Command worker runs idpsync's workers and its operator commands.
//
// Usage:
//
//	worker [-config FILE] [-log-level LEVEL] [command] [command flags]
//
// Commands:
//
//	run      consume the event stream, record events and work the jobs (the default)
//	migrate  apply idpsync's and River's migrations to the configured schema
//	replay   re-drive events from the event log, the stream or the dead letters
//	resync   resync a source from its management API now
//
// Environment: IDPSYNC_CONFIG (default for -config), DATABASE_URL, NATS_URL, LOG_LEVEL, the OTEL_*
// variables of tracing (see internal/telemetry), and whatever the config references as ${NAME}.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/idpsync/idpsync/internal/app"
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

// env is what every command gets.
type env struct {
	cfg    *config.Config
	logger *slog.Logger
	getenv func(string) string
	stdout io.Writer
	stderr io.Writer
}

type command struct {
	name, summary string
	run           func(ctx context.Context, e *env, args []string) error
}

var commands = []command{
	{"run", "consume the event stream, record events and work the jobs (the default)", runWorker},
	{"migrate", "apply idpsync's and River's migrations to the configured schema", runMigrate},
	{"replay", "re-drive events from the event log, the stream or the dead letters", runReplay},
	{"resync", "resync a source from its management API now (-wait shows the progress)", runResync},
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("worker", flag.ContinueOnError)
	fs.SetOutput(stderr)
	configPath := fs.String("config", getenv("IDPSYNC_CONFIG"), "configuration file (default $IDPSYNC_CONFIG)")
	logLevel := fs.String("log-level", getenv("LOG_LEVEL"), "debug, info, warn or error (default $LOG_LEVEL or info)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: worker [-config FILE] [-log-level LEVEL] [command] [command flags]\n\ncommands:")
		for _, c := range commands {
			fmt.Fprintf(stderr, "  %-8s %s\n", c.name, c.summary)
		}
		fmt.Fprintln(stderr, "\nflags:")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	name, rest := "run", fs.Args()
	if len(rest) > 0 {
		name, rest = rest[0], rest[1:]
	}
	var cmd *command
	for i := range commands {
		if commands[i].name == name {
			cmd = &commands[i]
		}
	}
	if cmd == nil {
		fs.Usage()
		return fmt.Errorf("unknown command %q", name)
	}
	if *configPath == "" {
		return errors.New("no configuration: pass -config FILE or set IDPSYNC_CONFIG (see the README, Configuration)")
	}
	cfg, err := config.Load(*configPath, getenv)
	if err != nil {
		return err
	}
	logger, err := app.NewLogger(stderr, *logLevel)
	if err != nil {
		return err
	}
	return cmd.run(ctx, &env{cfg: cfg, logger: logger, getenv: getenv, stdout: stdout, stderr: stderr}, rest)
}

func runWorker(ctx context.Context, e *env, args []string) error {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	if err := fs.Parse(args); err != nil {
		return err
	}
	pool, err := worker.OpenDatabase(ctx, e.cfg)
	if err != nil {
		return err
	}
	defer pool.Close()
	bus, err := app.ConnectBus(ctx, e.cfg, "idpsync-worker", e.logger)
	if err != nil {
		return err
	}
	defer bus.Conn().Close()
	tracing, err := telemetry.Setup(ctx, "idpsync-worker", e.getenv, e.logger)
	if err != nil {
		return err
	}
	defer tracing.Shutdown(context.WithoutCancel(ctx))
	w, err := worker.FromConfig(e.cfg, pool, bus, e.logger, app.NewRegistry(), tracing.TracerProvider())
	if err != nil {
		return err
	}
	return w.Run(ctx)
}

func runMigrate(ctx context.Context, e *env, args []string) error {
	fs := flag.NewFlagSet("migrate", flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	if err := fs.Parse(args); err != nil {
		return err
	}
	pool, err := worker.OpenDatabase(ctx, e.cfg)
	if err != nil {
		return err
	}
	defer pool.Close()
	applied, err := store.Migrate(ctx, pool, e.cfg.Database.Schema, e.logger)
	if err != nil {
		return err
	}
	if len(applied) == 0 {
		fmt.Fprintf(e.stdout, "schema %s is up to date\n", e.cfg.Database.Schema)
		return nil
	}
	for _, m := range applied {
		fmt.Fprintf(e.stdout, "applied %s %03d %s\n", m.Line, m.Version, m.Name)
	}
	return nil
}
