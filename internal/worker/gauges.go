package worker

import (
	"context"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/idpsync/idpsync/internal/handlers"
	"github.com/idpsync/idpsync/internal/store"
)

// gauges reads, at each scrape, what the database holds that alerts watch: the dead letters not
// replayed, River's jobs by queue and state and the age of the oldest, and the sources the worker
// found misconfigured. Every worker exports the database's figures; alert on their max.
type gauges struct {
	pool    *pgxpool.Pool
	probes  []Probe
	health  *handlers.SourceHealth
	logger  *slog.Logger
	dead    *prometheus.Desc
	jobs    *prometheus.Desc
	oldest  *prometheus.Desc
	misconf *prometheus.Desc
}

// gaugeTimeout bounds the queries of one scrape.
const gaugeTimeout = 5 * time.Second

func newGauges(pool *pgxpool.Pool, probes []Probe, health *handlers.SourceHealth, logger *slog.Logger) *gauges {
	return &gauges{
		pool: pool, probes: probes, health: health, logger: logger,
		dead: prometheus.NewDesc("idpsync_dead_letters_pending",
			"Dead letters no replay has recorded yet (replayed_at is NULL), by source.", []string{"source"}, nil),
		jobs: prometheus.NewDesc("idpsync_jobs",
			"Jobs not finished, by queue and state (available, running, retryable, scheduled, pending), read from River's table.", []string{"queue", "state"}, nil),
		oldest: prometheus.NewDesc("idpsync_job_oldest_age_seconds",
			"Age of the oldest job of a queue in a state: waiting for a worker (available) or being worked (running).", []string{"queue", "state"}, nil),
		misconf: prometheus.NewDesc("idpsync_source_misconfigured",
			"1 while the last call to the source's management API showed a problem only an operator can fix (base_url, credentials, permissions); the worker's /readyz names it.", []string{"source"}, nil),
	}
}

// Describe implements prometheus.Collector.
func (g *gauges) Describe(ch chan<- *prometheus.Desc) {
	ch <- g.dead
	ch <- g.jobs
	ch <- g.oldest
	ch <- g.misconf
}

// Collect implements prometheus.Collector. A failed query leaves its series out of the scrape
// (absent, not zero) and is logged at debug level: Postgres being down is reported elsewhere.
func (g *gauges) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), gaugeTimeout)
	defer cancel()
	if dead, err := store.DeadLettersPending(ctx, g.pool); err != nil {
		g.logger.Debug("reading dead letters for metrics", "error", err)
	} else {
		for _, p := range g.probes {
			if _, ok := dead[p.Source]; !ok {
				dead[p.Source] = 0
			}
		}
		for source, n := range dead {
			ch <- prometheus.MustNewConstMetric(g.dead, prometheus.GaugeValue, float64(n), source)
		}
	}
	if stats, err := store.JobStats(ctx, g.pool); err != nil {
		g.logger.Debug("reading jobs for metrics", "error", err)
	} else {
		for _, s := range stats {
			ch <- prometheus.MustNewConstMetric(g.jobs, prometheus.GaugeValue, float64(s.Count), s.Queue, s.State)
			if s.State == "available" || s.State == "running" {
				ch <- prometheus.MustNewConstMetric(g.oldest, prometheus.GaugeValue, s.OldestAge.Seconds(), s.Queue, s.State)
			}
		}
	}
	problems := g.health.Problems()
	for _, p := range g.probes {
		v := 0.0
		if _, bad := problems[p.Source]; bad {
			v = 1
		}
		ch <- prometheus.MustNewConstMetric(g.misconf, prometheus.GaugeValue, v, p.Source)
	}
}
