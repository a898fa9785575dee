// Command receiver is idpsync's webhook endpoint: POST /webhooks/{source}. It verifies each
// delivery against its raw bytes, publishes it to NATS JetStream and answers 2xx only once
// JetStream has acknowledged it.
//
// Usage:
//
//	receiver -config idpsync.yaml [-log-level info]
//
// "receiver help" and "receiver -h" show help.
//
// Environment: IDPSYNC_CONFIG (default for -config), NATS_URL, LOG_LEVEL, the OTEL_* variables of
// tracing (see internal/telemetry), and whatever the config references as ${NAME}.
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
	"sync"
	"syscall"

	"github.com/idpsync/idpsync/internal/app"
	"github.com/idpsync/idpsync/internal/cli"
	"github.com/idpsync/idpsync/internal/config"
	"github.com/idpsync/idpsync/internal/telemetry"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "receiver:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	return program.Run(ctx, args, getenv, stdout, stderr)
}

var program = &cli.Program{
	Name:    "receiver",
	Summary: "idpsync's webhook endpoint: it verifies each delivery and publishes it to NATS JetStream before answering 2xx",
	Default: "run",
	Commands: []cli.Command{
		{Name: "run", Summary: "serve POST /webhooks/{source} and the admin endpoints", Parts: config.ForReceiver, Flags: runFlags},
	},
	Environment: "IDPSYNC_CONFIG (default for -config), NATS_URL, LOG_LEVEL, the OTEL_* variables of tracing (README, Tracing), and whatever the configuration references as ${NAME}.",
}

func runFlags(*flag.FlagSet) func(ctx context.Context, e *cli.Env) error {
	return func(ctx context.Context, e *cli.Env) error { return serve(ctx, e.Config, e.Getenv, e.Logger) }
}

func serve(ctx context.Context, cfg *config.Config, getenv func(string) string, logger *slog.Logger) error {
	bus, err := app.ConnectBus(ctx, cfg, "idpsync-receiver", logger)
	if err != nil {
		return err
	}
	defer bus.Conn().Close()

	tracing, err := telemetry.Setup(ctx, "idpsync-receiver", getenv, logger)
	if err != nil {
		return err
	}
	defer tracing.Shutdown(context.WithoutCancel(ctx))
	reg := app.NewRegistry()
	srv, err := app.NewReceiver(cfg, bus, logger, reg, tracing.TracerProvider())
	if err != nil {
		return err
	}
	logger.Info("receiver listening", "addr", srv.Addr(), "sources", len(cfg.Sources), "stream", cfg.NATS.Stream)

	var (
		wg       sync.WaitGroup
		adminErr error
	)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if addr := cfg.Receiver.AdminAddr; addr != "-" {
		wg.Go(func() {
			if adminErr = app.ServeAdmin(ctx, addr, cfg, reg, bus.Ready); adminErr != nil {
				cancel()
			}
		})
	}
	err = srv.Serve(ctx)
	cancel()
	wg.Wait()
	// Publishes of the drained requests are acknowledged; flush what the connection still holds.
	_ = bus.Conn().Drain()
	logger.Info("receiver stopped")
	return errors.Join(err, adminErr)
}
