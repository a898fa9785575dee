package handlers

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the jobs' own metrics (River's job counts are the worker's).
type Metrics struct {
	revocations       *prometheus.CounterVec
	revocationSeconds *prometheus.HistogramVec
	resyncRuns        *prometheus.CounterVec
	resyncDrift       *prometheus.CounterVec
	resyncSeen        *prometheus.CounterVec
	eventsPruned      prometheus.Counter
}

// NewMetrics registers the jobs' metrics with reg.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		revocations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "idpsync_revocations_total",
			Help: "Calls made back to IdPs, by target source, action (list_sessions, revoke_session, offboard, list_agents, deactivate_agent, signal_agent) and outcome (done, already_done, failed).",
		}, []string{"target", "action", "outcome"}),
		revocationSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "idpsync_revocation_seconds",
			Help:    "Time from receiving the webhook that triggered a revocation (or the resync finding it) to the call's completion, by action.",
			Buckets: []float64{.05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600},
		}, []string{"action"}),
		resyncRuns: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "idpsync_resync_runs_total",
			Help: "Finished resync passes, by source, entity and outcome (succeeded, failed).",
		}, []string{"source", "entity", "outcome"}),
		resyncDrift: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "idpsync_resync_drift_total",
			Help: "Mirror rows a resync created, updated or deleted (each a webhook that was missed), by source, entity and change.",
		}, []string{"source", "entity", "change"}),
		resyncSeen: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "idpsync_resync_seen_total",
			Help: "Entities read from the IdPs by resyncs, by source and entity.",
		}, []string{"source", "entity"}),
		eventsPruned: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "idpsync_events_pruned_total",
			Help: "Events deleted from the event log by the retention job (worker.event_retention).",
		}),
	}
	for _, c := range []prometheus.Collector{m.revocations, m.revocationSeconds, m.resyncRuns, m.resyncDrift, m.resyncSeen, m.eventsPruned} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("registering job metrics: %w", err)
		}
	}
	return m, nil
}
