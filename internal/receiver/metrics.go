package receiver

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	requests             *prometheus.CounterVec
	verificationFailures *prometheus.CounterVec
	publishSeconds       *prometheus.HistogramVec
	bodyBytes            prometheus.GaugeFunc
}

func newMetrics(reg prometheus.Registerer, bs *bodies) (*metrics, error) {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "idpsync_webhook_requests_total",
			Help: "Webhook deliveries by source and outcome (accepted, duplicate, unauthorized, bad_request, too_large, unsupported_media_type, method_not_allowed, unknown_source, unavailable, overloaded).",
		}, []string{"source", "outcome"}),
		verificationFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "idpsync_webhook_verification_failures_total",
			Help: "Deliveries that failed verification, by source and reason (missing_header, malformed_header, missing_signature, invalid_signature, timestamp_too_old, timestamp_too_new).",
		}, []string{"source", "reason"}),
		publishSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "idpsync_webhook_publish_seconds",
			Help:    "Time from receiving a verified delivery's first byte to JetStream's acknowledgement (or failure).",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
		}, []string{"source"}),
		bodyBytes: prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "idpsync_webhook_body_bytes_in_flight",
			Help: "Body bytes held by requests being read, verified or published (capped by the receiver's in-flight limit).",
		}, func() float64 { return float64(bs.heldBytes()) }),
	}
	for _, c := range []prometheus.Collector{m.requests, m.verificationFailures, m.publishSeconds, m.bodyBytes} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("registering receiver metrics: %w", err)
		}
	}
	return m, nil
}
