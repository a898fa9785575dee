package intake

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	messages *prometheus.CounterVec
	lag      prometheus.Histogram
	failures prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		messages: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "idpsync_intake_messages_total",
			Help: "Messages taken from the stream, by source and outcome (recorded, duplicate, dead_lettered).",
		}, []string{"source", "outcome"}),
		lag: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "idpsync_intake_lag_seconds",
			Help:    "Time from the receiver accepting a delivery to its event being recorded in Postgres.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300},
		}),
		failures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "idpsync_intake_failures_total",
			Help: "Batches that could not be recorded (Postgres unavailable) and were handed back for redelivery.",
		}),
	}
	for _, c := range []prometheus.Collector{m.messages, m.lag, m.failures} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("registering intake metrics: %w", err)
		}
	}
	return m, nil
}
