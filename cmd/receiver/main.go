// Command receiver is idpsync's webhook endpoint: POST /webhooks/{source}. It verifies each
// delivery against its raw bytes, publishes it to NATS JetStream and answers 2xx only once
// JetStream has acknowledged it.
//
// Usage:
//
//	receiver -config idpsync.yaml [-log-level info]
//
// Environment: IDPSYNC_CONFIG (default for -config), DATABASE_URL, NATS_URL (required unless set in
// the config), LOG_LEVEL, the OTEL_* variables of tracing (see internal/telemetry), and whatever
// the config references as ${NAME}.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sync"
	"syscall"

	"github.com/idpsync/idpsync/internal/app"
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

func run(ctx context.Context, args []string, getenv func(string) string, _, stderr io.Writer) error {
	fs := flag.NewFlagSet("receiver", flag.ContinueOnError)
	fs.SetOutput(stderr)
	configPath := fs.String("config", getenv("IDPSYNC_CONFIG"), "configuration file (default $IDPSYNC_CONFIG)")
	logLevel := fs.String("log-level", getenv("LOG_LEVEL"), "debug, info, warn or error (default $LOG_LEVEL or info)")
	if err := fs.Parse(args); err != nil {
		return err
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
