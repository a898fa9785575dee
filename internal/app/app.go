// Package app holds the wiring every idpsync process shares, and the receiver's: the logger, the
// metrics registry, the connection to JetStream and the receiver built from a config.Config. The
// worker's wiring is internal/worker's. The mains in cmd/ are thin shells around them, and the
// end-to-end tests run the very same wiring. It links no database and no job queue, so neither
// does the receiver binary.
package app

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"go.opentelemetry.io/otel/trace"

	"github.com/idpsync/idpsync/internal/admin"
	"github.com/idpsync/idpsync/internal/config"
	"github.com/idpsync/idpsync/internal/natsbus"
	"github.com/idpsync/idpsync/internal/receiver"
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

// headerAllowance is room left in a NATS message for the headers the receiver adds.
const headerAllowance = 4096

// NewReceiver builds the receiver of cfg over bus and binds its address. The handler's metrics go
// to reg; its spans to tp (nil: tracing off, see internal/telemetry).
func NewReceiver(cfg *config.Config, bus *natsbus.Bus, logger *slog.Logger, reg prometheus.Registerer, tp trace.TracerProvider) (*receiver.Server, error) {
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
		sources = append(sources, receiver.Source{Name: s.Name, Verifier: v, ParseEnvelopeFunc: s.Provider().Webhook.ParseEnvelopeFunc})
	}
	if len(sources) == 0 {
		return nil, errors.New("no source has webhook settings, so the receiver has nothing to receive")
	}
	h, err := receiver.New(receiver.Config{
		Sources:          sources,
		Publisher:        bus,
		Ready:            ready,
		MaxBodyBytes:     r.MaxBodyBytes,
		MaxInFlightBytes: r.MaxInFlightBytes,
		RetryAfter:       time.Duration(r.RetryAfter),
		Logger:           logger,
		Registerer:       reg,
		TracerProvider:   tp,
	})
	if err != nil {
		return nil, err
	}
	return receiver.Listen(receiver.ServerConfig{
		Addr:            r.Addr,
		ShutdownTimeout: time.Duration(r.ShutdownTimeout),
		MaxConns:        r.MaxConns,
		MaxHeaderBytes:  r.MaxHeaderBytes,
		Logger:          logger,
		Registerer:      reg,
	}, h)
}

// AdminCredentials are the credentials of cfg's admin servers.
func AdminCredentials(cfg *config.Config) admin.Credentials {
	return admin.Credentials{Username: cfg.Admin.Username, Password: cfg.Admin.Password, BearerTokens: cfg.Admin.BearerTokens}
}

// ServeAdmin serves the receiver's admin surface (/metrics, /healthz, and /readyz answered by
// ready) on addr until ctx is done.
func ServeAdmin(ctx context.Context, addr string, cfg *config.Config, reg *prometheus.Registry, ready func(context.Context) error) error {
	h, err := admin.New(admin.Config{Registry: reg, ReadyFunc: ready, Credentials: AdminCredentials(cfg), ProtectMetrics: cfg.Admin.ProtectMetrics})
	if err != nil {
		return err
	}
	srv, err := receiver.Listen(receiver.ServerConfig{Addr: addr, ShutdownTimeout: 5 * time.Second, MaxConns: 64, MaxHeaderBytes: 64 << 10}, h)
	if err != nil {
		return err
	}
	return srv.Serve(ctx)
}
