// Package app wires idpsync's processes from a config.Config: the logger, the connections, the
// receiver and the worker. The mains in cmd/ are thin shells around it, and the end-to-end tests
// run the very same wiring.
package app

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"

	"github.com/idpsync/idpsync/internal/config"
	"github.com/idpsync/idpsync/internal/connector"
	"github.com/idpsync/idpsync/internal/events"
	"github.com/idpsync/idpsync/internal/handlers"
	"github.com/idpsync/idpsync/internal/intake"
	"github.com/idpsync/idpsync/internal/natsbus"
	"github.com/idpsync/idpsync/internal/receiver"
	"github.com/idpsync/idpsync/internal/store"
	"github.com/idpsync/idpsync/internal/worker"
)

// NewLogger returns the JSON logger of every idpsync process. level is debug, info, warn or error.
func NewLogger(w io.Writer, level string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(strings.ToUpper(cmp.Or(level, "info")))); err != nil {
		return nil, fmt.Errorf("log level %q: use debug, info, warn or error", level)
	}
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: l})), nil
}

// NewRegistry returns a metrics registry with the Go runtime and process collectors.
func NewRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

// StreamConfig is the event stream described by cfg.
func StreamConfig(cfg *config.Config) natsbus.StreamConfig {
	n := cfg.NATS
	return natsbus.StreamConfig{
		Name: n.Stream, SubjectPrefix: n.SubjectPrefix, Replicas: n.Replicas,
		MaxAge: time.Duration(n.MaxAge), Duplicates: time.Duration(n.Duplicates), MaxBytes: n.MaxBytes,
	}
}

// ConnectBus connects to cfg's NATS and keeps the event stream created and up to date until ctx is
// done or the connection is closed (natsbus.Bus.KeepStream).
//
// It does not wait for NATS: a process started while NATS is unreachable starts all the same, not
// ready (bus.Ready says why, publishes fail fast), and the connection keeps trying with backoff;
// the stream is created or updated as soon as NATS answers, and again after every reconnection.
// When NATS answers at once, the stream is ensured before ConnectBus returns, and JetStream
// refusing its configuration is returned as an error: that needs an operator, not a retry.
func ConnectBus(ctx context.Context, cfg *config.Config, clientName string, logger *slog.Logger) (*natsbus.Bus, error) {
	if cfg.NATS.URL == "" {
		return nil, errors.New("nats.url is not set: set NATS_URL or nats.url in the config (for a single-process development setup with an embedded server, run `make run`)")
	}
	nc, err := natsbus.Connect(cfg.NATS.URL, cfg.NATS.CredsFile, clientName, logger)
	if err != nil {
		return nil, err
	}
	bus, err := natsbus.New(nc, StreamConfig(cfg), time.Duration(cfg.Receiver.PublishTimeout))
	if err != nil {
		nc.Close()
		return nil, err
	}
	if nc.IsConnected() {
		ectx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err := bus.EnsureStream(ectx)
		cancel()
		if natsbus.IsRefusal(err) {
			nc.Close()
			return nil, err
		}
	} else {
		logger.Warn("nats is not reachable; starting without it, not ready until it is")
	}
	go bus.KeepStream(ctx, logger)
	return bus, nil
}

// OpenDatabase connects to cfg's Postgres.
func OpenDatabase(ctx context.Context, cfg *config.Config) (*pgxpool.Pool, error) {
	return store.Open(ctx, cfg.Database.URL, cfg.Database.Schema, cfg.Database.MaxConns)
}

// headerAllowance is room left in a NATS message for the headers the receiver adds.
const headerAllowance = 4096

// NewReceiver builds the receiver of cfg over bus and binds its address. The handler's metrics go
// to reg.
func NewReceiver(cfg *config.Config, bus *natsbus.Bus, logger *slog.Logger, reg prometheus.Registerer) (*receiver.Server, error) {
	r := cfg.Receiver
	// The NATS server's message limit is known once connected: at start when NATS answers (a
	// mismatch is then a start-up error), else in every readiness check.
	payloadFits := func() error {
		if limit := bus.Conn().MaxPayload(); r.MaxBodyBytes+headerAllowance > limit {
			return fmt.Errorf("receiver.max_body_bytes is %d but the NATS server takes messages of at most %d bytes, headers included; set max_body_bytes to at most %d or raise max_payload in the NATS server's configuration",
				r.MaxBodyBytes, limit, limit-headerAllowance)
		}
		return nil
	}
	if bus.Conn().IsConnected() {
		if err := payloadFits(); err != nil {
			return nil, err
		}
	}
	ready := func(ctx context.Context) error {
		if err := bus.Ready(ctx); err != nil {
			return err
		}
		return payloadFits()
	}
	sources := make([]receiver.Source, 0, len(cfg.Sources))
	for _, s := range cfg.Sources {
		if !s.HasWebhook() {
			continue // resync and revocation only
		}
		v, err := s.Verifier(nil)
		if err != nil {
			return nil, fmt.Errorf("source %s: %w", s.Name, err)
		}
		sources = append(sources, receiver.Source{Name: s.Name, Kind: s.Kind, Verifier: v})
	}
	if len(sources) == 0 {
		return nil, errors.New("no source has webhook settings, so the receiver has nothing to receive")
	}
	h, err := receiver.New(receiver.Config{
		Sources:      sources,
		Publisher:    bus,
		Ready:        ready,
		MaxBodyBytes: r.MaxBodyBytes,
		RetryAfter:   time.Duration(r.RetryAfter),
		Logger:       logger,
		Registerer:   reg,
	})
	if err != nil {
		return nil, err
	}
	return receiver.Listen(receiver.ServerConfig{
		Addr:            r.Addr,
		ShutdownTimeout: time.Duration(r.ShutdownTimeout),
		Logger:          logger,
		Registerer:      reg,
	}, h)
}

// NewWorker builds the worker of cfg; its metrics go to reg, which its admin server serves.
func NewWorker(cfg *config.Config, pool *pgxpool.Pool, bus *natsbus.Bus, logger *slog.Logger, reg *prometheus.Registry) (*worker.Worker, error) {
	w := cfg.Worker
	idps, err := connector.Build(cfg, logger)
	if err != nil {
		return nil, err
	}
	policies := map[string]handlers.Policy{}
	var resyncs []worker.ResyncSchedule
	for _, s := range cfg.Sources {
		r := s.Revocation
		triggers := map[string]bool{}
		for _, t := range r.Triggers {
			triggers[t] = true
		}
		policies[s.Name] = handlers.Policy{Triggers: triggers, Sessions: s.RevokesSessions(), ZeroID: r.ZeroID,
			Offboard: r.ZeroIDAction == "offboard", OwnerKey: r.OwnerKey}
		if *s.Resync.Periodic {
			for _, e := range s.ResyncEntities() {
				resyncs = append(resyncs, worker.ResyncSchedule{Source: s.Name, Entity: e, Interval: time.Duration(s.Resync.Interval)})
			}
		}
	}
	adminAddr := w.AdminAddr
	if adminAddr == "-" {
		adminAddr = ""
	}
	return worker.New(worker.Config{
		Pool:   pool,
		Schema: cfg.Database.Schema,
		Bus:    bus,
		Consumer: natsbus.ConsumerConfig{
			Durable:       w.Consumer,
			AckWait:       time.Duration(w.AckWait),
			MaxAckPending: 10 * w.BatchSize,
		},
		KindOf:           KindOf(cfg),
		BatchSize:        w.BatchSize,
		ReconcileWorkers: w.ReconcileWorkers,
		RevokeWorkers:    w.RevokeWorkers,
		ResyncWorkers:    w.ResyncWorkers,
		IdPs:             idps,
		Policies:         policies,
		Resyncs:          resyncs,
		ShutdownTimeout:  time.Duration(w.ShutdownTimeout),
		AdminAddr:        adminAddr,
		RiverUI:          w.RiverUI,
		Logger:           logger,
		Registry:         reg,
	})
}

// ServeMetrics serves reg at /metrics (with /healthz) on addr until ctx is done. The receiver's
// admin server uses it.
func ServeMetrics(ctx context.Context, addr string, reg *prometheus.Registry) error {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok\n")) })
	srv, err := receiver.Listen(receiver.ServerConfig{Addr: addr, ShutdownTimeout: 5 * time.Second, MaxConns: 64}, mux)
	if err != nil {
		return err
	}
	return srv.Serve(ctx)
}

// KindOf returns the lookup of each configured source's kind.
func KindOf(cfg *config.Config) func(string) (events.Kind, bool) {
	kinds := make(map[string]events.Kind, len(cfg.Sources))
	for _, s := range cfg.Sources {
		kinds[s.Name] = s.Kind
	}
	return func(source string) (events.Kind, bool) {
		k, ok := kinds[source]
		return k, ok
	}
}

// NewRecorder returns an intake that records deliveries without consuming (for replays), with an
// insert-only River client to enqueue their jobs.
func NewRecorder(cfg *config.Config, pool *pgxpool.Pool, bus *natsbus.Bus, logger *slog.Logger) (*intake.Intake, *river.Client[pgx.Tx], error) {
	client, err := river.NewClient(riverpgxv5.New(pool), &river.Config{Schema: cfg.Database.Schema, Logger: logger.With("component", "river")})
	if err != nil {
		return nil, nil, fmt.Errorf("river client: %w", err)
	}
	in, err := intake.New(intake.Config{
		Bus: bus, Pool: pool, Jobs: client, Logger: logger, KindOf: KindOf(cfg),
		Consumer: natsbus.ConsumerConfig{Durable: cfg.Worker.Consumer, AckWait: time.Duration(cfg.Worker.AckWait)},
	})
	if err != nil {
		return nil, nil, err
	}
	return in, client, nil
}
