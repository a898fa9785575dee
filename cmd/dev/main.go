// Command dev runs the whole idpsync pipeline in one process, for development: it is what `make
// run` starts.
//
//   - Postgres: DATABASE_URL, by default the local server's database "idpsync", created when
//     missing and migrated.
//   - NATS: NATS_URL, or, when unset, an embedded JetStream server on 127.0.0.1:4223 that keeps
//     its store under .data/nats and fsyncs every write.
//   - The receiver on 127.0.0.1:8080 and the worker, whose admin server (127.0.0.1:9090) serves
//     the metrics of both and River UI.
//   - Without -config, a demo: fake Clerk and ZeroID management APIs in this process, seeded with
//     users, organizations, sessions and agents; a source "clerk-demo" that receives the fake
//     Clerk's signed webhooks (its signing secret is generated once into .data/demo-secret),
//     resyncs from its API and revokes through it and the fake ZeroID. The effective configuration
//     is written to .data/idpsync-dev.yaml, so that `worker -config .data/idpsync-dev.yaml …`
//     commands work against the running stack. The fakes keep their data in memory and start
//     afresh in every run, so the demo sources' rows are deleted at start.
//
// Ctrl-C stops everything: the receiver drains, the worker records what it holds and finishes its
// jobs, then the embedded server stops.
package main

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"

	"github.com/idpsync/idpsync/internal/app"
	"github.com/idpsync/idpsync/internal/config"
	"github.com/idpsync/idpsync/internal/handlers"
	"github.com/idpsync/idpsync/internal/natsbus/natsembed"
	"github.com/idpsync/idpsync/internal/store"
	"github.com/idpsync/idpsync/internal/telemetry"
	"github.com/idpsync/idpsync/internal/worker"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "dev:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("dev", flag.ContinueOnError)
	fs.SetOutput(stderr)
	configFile := fs.String("config", getenv("IDPSYNC_CONFIG"), "configuration file; without one, a demo with fake IdPs is served")
	addr := fs.String("addr", "127.0.0.1:8080", "receiver address (overrides receiver.addr)")
	adminAddr := fs.String("admin-addr", "127.0.0.1:9090", "worker admin address: metrics and River UI (overrides worker.admin_addr)")
	dataDir := fs.String("data", ".data", "directory for the embedded NATS store and the demo secret")
	natsPort := fs.Int("nats-port", 4223, "port of the embedded NATS server (used when NATS_URL is unset)")
	logLevel := fs.String("log-level", cmp.Or(getenv("LOG_LEVEL"), "info"), "debug, info, warn or error")
	if err := fs.Parse(args); err != nil {
		return err
	}
	logger, err := app.NewLogger(stderr, *logLevel)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(*dataDir, 0o700); err != nil {
		return err
	}

	// NATS: the configured one, or an embedded server.
	env := map[string]string{}
	natsNote := "from NATS_URL"
	if getenv("NATS_URL") == "" {
		storeDir := filepath.Join(*dataDir, "nats")
		ns, err := natsembed.Start(natsembed.Options{StoreDir: storeDir, Port: *natsPort, SyncAlways: true})
		if err != nil {
			return fmt.Errorf("embedded nats on port %d (change it with -nats-port): %w", *natsPort, err)
		}
		defer func() { ns.Shutdown(); ns.WaitForShutdown() }()
		env["NATS_URL"] = ns.ClientURL()
		natsNote = "embedded, store " + storeDir
	}
	getenvDev := func(k string) string {
		if v, ok := env[k]; ok {
			return v
		}
		return getenv(k)
	}

	// Configuration: the given file, or the demo.
	var (
		cfg        *config.Config
		d          *demo
		configPath = *configFile
	)
	if configPath != "" {
		cfg, err = config.Load(configPath, getenvDev)
	} else {
		if d, err = startDemo(*dataDir); err != nil {
			return err
		}
		defer d.close(context.WithoutCancel(ctx))
		yaml := d.config()
		if cfg, err = config.Parse([]byte(yaml), getenvDev); err != nil {
			return err
		}
		configPath = filepath.Join(*dataDir, "idpsync-dev.yaml")
		effective := fmt.Sprintf("# written by `make run`; valid while it runs\ndatabase: {url: %q}\nnats: {url: %q}\n%s", cfg.Database.URL, cfg.NATS.URL, yaml)
		err = os.WriteFile(configPath, []byte(effective), 0o600)
	}
	if err != nil {
		return err
	}
	cfg.Receiver.Addr, cfg.Receiver.AdminAddr, cfg.Worker.AdminAddr = *addr, "-", *adminAddr

	// Postgres: create the database if needed, migrate.
	if name, created, err := store.EnsureDatabase(ctx, cfg.Database.URL); err != nil {
		return err
	} else if created {
		logger.Info("database created", "database", name)
	}
	pool, err := worker.OpenDatabase(ctx, cfg)
	if err != nil {
		return err
	}
	defer pool.Close()
	if _, err := store.Migrate(ctx, pool, cfg.Database.Schema, logger); err != nil {
		return err
	}
	if d != nil {
		// The demo's fakes start afresh in every run; so do the demo sources in the database.
		for _, s := range cfg.Sources {
			if err := store.ForgetSource(ctx, pool, s.Name); err != nil {
				return err
			}
		}
	}

	bus, err := app.ConnectBus(ctx, cfg, "idpsync-dev", logger)
	if err != nil {
		return err
	}
	defer bus.Conn().Close()
	tracing, err := telemetry.Setup(ctx, "idpsync-dev", getenv, logger)
	if err != nil {
		return err
	}
	defer tracing.Shutdown(context.WithoutCancel(ctx))
	reg := app.NewRegistry()
	srv, err := app.NewReceiver(cfg, bus, logger.With("component", "receiver"), reg, tracing.TracerProvider())
	if err != nil {
		return err
	}
	w, err := worker.FromConfig(cfg, pool, bus, logger, reg, tracing.TracerProvider())
	if err != nil {
		return err
	}
	if err := w.Listen(); err != nil {
		return err
	}

	printBanner(stdout, cfg, srv.Addr(), w.AdminAddr(), natsNote)
	if d != nil {
		d.deliverTo(srv.Addr())
		for _, s := range cfg.Sources {
			for _, entity := range s.ResyncEntities() {
				if _, err := w.River().Insert(ctx, handlers.ResyncArgs{Source: s.Name, Entity: entity}, nil); err != nil {
					return err
				}
			}
		}
		d.printTryIt(stdout, redactURL(cfg.Database.URL), cfg.Database.Schema, configPath)
	}

	var (
		wg             sync.WaitGroup
		errMu          sync.Mutex
		runErrs        []error
		ctxRun, cancel = context.WithCancel(ctx)
	)
	defer cancel()
	for _, part := range []func(context.Context) error{srv.Serve, w.Run} {
		wg.Go(func() {
			if err := part(ctxRun); err != nil {
				errMu.Lock()
				runErrs = append(runErrs, err)
				errMu.Unlock()
				cancel()
			}
		})
	}
	wg.Wait()
	return errors.Join(runErrs...)
}

func printBanner(w io.Writer, cfg *config.Config, receiverAddr, adminAddr, natsNote string) {
	fmt.Fprintf(w, "\nidpsync is running; Ctrl-C stops it.\n\n")
	for _, s := range cfg.Sources {
		if s.HasWebhook() {
			fmt.Fprintf(w, "  webhook endpoint  http://%s/webhooks/%s  (%s)\n", receiverAddr, s.Name, s.Kind)
		}
	}
	fmt.Fprintf(w, "  metrics           http://%s/metrics\n", adminAddr)
	if cfg.Worker.RiverUI {
		fmt.Fprintf(w, "  jobs (River UI)   http://%s/riverui/  (user %s, password %s)\n", adminAddr, cfg.Admin.Username, cfg.Admin.Password)
	}
	fmt.Fprintf(w, "  postgres          %s  (schema %s)\n", redactURL(cfg.Database.URL), cfg.Database.Schema)
	fmt.Fprintf(w, "  nats              %s  (%s)\n\n", redactURL(cfg.NATS.URL), natsNote)
	fmt.Fprintf(w, "The mirror, for example:\n\n  psql '%s' -c 'SELECT source, id, primary_email, banned, deleted_at FROM %s.users LIMIT 10'\n\n",
		redactURL(cfg.Database.URL), cfg.Database.Schema)
}

// redactURL hides a password in a connection URL.
func redactURL(u string) string {
	scheme, rest, ok := strings.Cut(u, "://")
	if !ok {
		return u
	}
	at := strings.LastIndex(rest, "@")
	if at < 0 {
		return u
	}
	if user, _, hasPass := strings.Cut(rest[:at], ":"); hasPass {
		return scheme + "://" + user + ":***" + rest[at:]
	}
	return u
}
