package worker

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"go.opentelemetry.io/otel/trace"
	"golang.org/x/time/rate"

	"github.com/idpsync/idpsync/internal/app"
	"github.com/idpsync/idpsync/internal/config"
	"github.com/idpsync/idpsync/internal/events"
	"github.com/idpsync/idpsync/internal/handlers"
	"github.com/idpsync/idpsync/internal/intake"
	"github.com/idpsync/idpsync/internal/natsbus"
	"github.com/idpsync/idpsync/internal/provider"
	"github.com/idpsync/idpsync/internal/store"
)

// UserAgent identifies idpsync to the IdPs.
const UserAgent = "idpsync (+https://github.com/idpsync/idpsync)"

// OpenDatabase connects to cfg's Postgres.
func OpenDatabase(ctx context.Context, cfg *config.Config) (*pgxpool.Pool, error) {
	return store.Open(ctx, cfg.Database.URL, cfg.Database.Schema, cfg.Database.MaxConns)
}

// FromConfig builds the worker of cfg; its metrics go to reg, which its admin server serves, and
// its spans to tp (nil: tracing off, see internal/telemetry).
func FromConfig(cfg *config.Config, pool *pgxpool.Pool, bus *natsbus.Bus, logger *slog.Logger, reg *prometheus.Registry, tp trace.TracerProvider) (*Worker, error) {
	w := cfg.Worker
	idps, probes, err := ConnectIdPs(cfg, logger, tp)
	if err != nil {
		return nil, err
	}
	var resyncs []ResyncSchedule
	for _, s := range cfg.Sources {
		if *s.Resync.Periodic {
			for _, e := range s.ResyncEntities() {
				resyncs = append(resyncs, ResyncSchedule{Source: s.Name, Entity: e, Interval: time.Duration(s.Resync.Interval)})
			}
		}
	}
	adminAddr := w.AdminAddr
	if adminAddr == "-" {
		adminAddr = ""
	}
	return New(Config{
		Pool:   pool,
		Schema: cfg.Database.Schema,
		Bus:    bus,
		Consumer: natsbus.ConsumerConfig{
			Durable:       w.Consumer,
			AckWait:       time.Duration(w.AckWait),
			MaxAckPending: 10 * w.BatchSize,
		},
		KindOf:           cfg.KindOf,
		BatchSize:        w.BatchSize,
		ReconcileWorkers: w.ReconcileWorkers,
		RevokeWorkers:    w.RevokeWorkers,
		ResyncWorkers:    w.ResyncWorkers,
		SSF:              cfg.SSF,
		SSFWorkers:       w.SSFWorkers,
		EventRetention:   time.Duration(w.EventRetention),
		JobRetention:     time.Duration(w.JobRetention),
		IdPs:             idps,
		Probes:           probes,
		Policies:         Policies(cfg),
		Resyncs:          resyncs,
		ShutdownTimeout:  time.Duration(w.ShutdownTimeout),
		AdminAddr:        adminAddr,
		RiverUI:          w.RiverUI,
		Admin:            app.AdminCredentials(cfg),
		ProtectMetrics:   cfg.Admin.ProtectMetrics,
		Logger:           logger,
		Registry:         reg,
		TracerProvider:   tp,
	})
}

// Policies returns the revocation policy of each source of cfg.
func Policies(cfg *config.Config) map[string]handlers.Policy {
	policies := map[string]handlers.Policy{}
	for _, s := range cfg.Sources {
		r := s.Revocation
		triggers := map[events.Trigger]bool{}
		for _, t := range r.Triggers {
			triggers[t] = true
		}
		policies[s.Name] = handlers.Policy{Triggers: triggers, Sessions: s.RevokesSessions(), ZeroID: r.ZeroID,
			AgentAction: r.ZeroIDAction, OwnerKey: r.OwnerKey}
	}
	return policies
}

// ConnectIdPs builds, through each source's provider, the management APIs of every source with
// api settings, and their probes. It makes no call. With tp, each HTTP request to an IdP is a span
// (traceIdPCalls).
func ConnectIdPs(cfg *config.Config, logger *slog.Logger, tp trace.TracerProvider) (handlers.IdPs, []Probe, error) {
	idps := handlers.IdPs{Directories: map[string]provider.Directory{}, Sessions: map[string]provider.SessionRevoker{},
		Agents: map[string]provider.AgentRevoker{}, Health: handlers.NewSourceHealth()}
	var probes []Probe
	for _, s := range cfg.Sources {
		conn, err := ConnectSource(s, logger, tp)
		if err != nil {
			return idps, nil, err
		}
		if conn == nil {
			continue
		}
		idps.Health.Describe(s.Name, func(err error) string { return Explain(s, err) })
		probes = append(probes, Probe{Source: s.Name, BaseURL: BaseURL(s), Prober: conn.Probe})
		if conn.Directory != nil {
			idps.Directories[s.Name] = conn.Directory
		}
		if conn.Sessions != nil {
			idps.Sessions[s.Name] = conn.Sessions
		}
		if conn.Agents != nil {
			idps.Agents[s.Name] = conn.Agents
		}
	}
	return idps, probes, nil
}

// ConnectSource builds the management API of source s through its provider; nil when s has no
// api settings. It makes no call. With tp, each HTTP request to the IdP is a span.
func ConnectSource(s config.Source, logger *slog.Logger, tp trace.TracerProvider) (*provider.Connection, error) {
	p := s.Provider()
	if !s.API.Configured() || p == nil || p.API == nil {
		return nil, nil
	}
	settings := APISettings(s, logger)
	if tp != nil {
		settings.HTTPClient.Transport = traceIdPCalls(nil, tp, s.Name, string(s.Kind))
	}
	conn, err := p.API.ConnectFunc(settings)
	if err != nil {
		return nil, fmt.Errorf("source %s: %w", s.Name, err)
	}
	if conn.Probe == nil {
		return nil, fmt.Errorf("source %s: the %s provider offers no check", s.Name, p.Name)
	}
	return conn, nil
}

// APISettings are source s's api settings with what the process gives every client: an HTTP
// client with the source's timeout, its rate limiter, the user agent and a logger.
func APISettings(s config.Source, logger *slog.Logger) provider.APISettings {
	settings := s.APISettings()
	settings.HTTPClient = &http.Client{Timeout: time.Duration(s.API.Timeout)}
	settings.Limiter = limiter(s.API.RateLimit)
	settings.UserAgent = UserAgent
	settings.Logger = logger.With("source", s.Name)
	return settings
}

// Explain says err, from a call to source s's management API, in a sentence for operators.
func Explain(s config.Source, err error) string {
	p := s.Provider()
	if p == nil || p.API == nil {
		return err.Error()
	}
	return p.Explain(BaseURL(s), err)
}

// BaseURL is the root of source s's management API: its base_url, or its provider's default.
func BaseURL(s config.Source) string {
	if p := s.Provider(); p != nil && p.API != nil {
		return strings.TrimSuffix(cmp.Or(s.API.BaseURL, p.API.DefaultBaseURL), "/")
	}
	return s.API.BaseURL
}

// limiter allows rps requests per second, with a burst of a second's worth; nil for no cap.
func limiter(rps float64) *rate.Limiter {
	if rps <= 0 {
		return nil
	}
	return rate.NewLimiter(rate.Limit(rps), max(1, int(rps)))
}

// Recorder is what operator replays write with: an intake that records deliveries without
// consuming, the mirror with the sources' revocation policies, and an insert-only River client.
type Recorder struct {
	Intake *intake.Intake
	Mirror *handlers.Mirror
	River  *river.Client[pgx.Tx]
}

// NewRecorder returns the Recorder of cfg.
func NewRecorder(cfg *config.Config, pool *pgxpool.Pool, bus *natsbus.Bus, logger *slog.Logger) (*Recorder, error) {
	client, err := river.NewClient(riverpgxv5.New(pool), &river.Config{Schema: cfg.Database.Schema, Logger: logger.With("component", "river")})
	if err != nil {
		return nil, fmt.Errorf("river client: %w", err)
	}
	mirror := newMirror(Policies(cfg), nil, logger)
	in, err := intake.New(intake.Config{
		Bus: bus, Pool: pool, Jobs: client, Mirror: mirror, Logger: logger, KindOf: cfg.KindOf, BatchSize: cfg.Worker.BatchSize,
		Consumer: natsbus.ConsumerConfig{Durable: cfg.Worker.Consumer, AckWait: time.Duration(cfg.Worker.AckWait)},
	})
	if err != nil {
		return nil, err
	}
	return &Recorder{Intake: in, Mirror: mirror, River: client}, nil
}
