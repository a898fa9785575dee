package app_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// BenchmarkPacedLatency publishes signed Clerk user.created deliveries into the stream at a steady
// rate, as the receiver would, while the worker runs, and reports how long events wait from the
// stream storing them to the mirror holding them: events.processed_at - events.received_at, p50,
// p99 and max over every event of the run. processed_at is the start of the transaction that
// recorded and applied the event, so it leaves out that transaction's own duration; the
// intake's lag histogram (idpsync_intake_lag_seconds, observed after the commit) gives the share of
// events committed within 250 ms, which includes it.
//
//	go test -run '^$' -bench 'BenchmarkPacedLatency$' ./internal/app
//
// BENCH_PACED_RATE sets the rate in events/s (default 2000), BENCH_PACED_SECONDS the duration
// (default 30); BENCH_WORKER adds settings to the worker's section.
func BenchmarkPacedLatency(b *testing.B) {
	benchDatabase(b)
	rate := envInt(b, "BENCH_PACED_RATE", 2000)
	seconds := envInt(b, "BENCH_PACED_SECONDS", 30)
	n := rate * seconds
	for b.Loop() {
		s := startStack(b, withWorker(workerYAML(`admin_addr: "-", ack_wait: 30s`)))
		took := publishPaced(b, s, n, rate)
		waitProcessed(b, s, n, 5*time.Minute)

		var p50, p99, worst float64
		if err := s.pool.QueryRow(context.Background(), `
			SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY ms), percentile_cont(0.99) WITHIN GROUP (ORDER BY ms), max(ms)
			FROM (SELECT extract(epoch FROM processed_at - received_at) * 1000 AS ms FROM events) t`).Scan(&p50, &p99, &worst); err != nil {
			b.Fatal(err)
		}
		within := committedWithin(b, s.registry, 0.25)
		b.Logf("%d events at %.0f/s: stored→applied p50 %.1f ms, p99 %.1f ms, max %.1f ms; %.2f%% committed within 250 ms",
			n, float64(n)/took.Seconds(), p50, p99, worst, within*100)
		b.ReportMetric(float64(n)/took.Seconds(), "events/s")
		b.ReportMetric(p50, "p50-ms")
		b.ReportMetric(p99, "p99-ms")
		b.ReportMetric(worst, "max-ms")
		b.ReportMetric(within*100, "committed<=250ms-%")
	}
}

// publishPaced publishes n distinct user.created deliveries, event i at i/rate seconds after the
// start (late ones at once, never in a burst to catch up a schedule), and returns how long it took.
func publishPaced(b *testing.B, s *stack, n, rate int) time.Duration {
	b.Helper()
	ctx := context.Background()
	const publishers = 32 // a publish waits for its PubAck: enough of them in flight to hold the rate
	interval := time.Second / time.Duration(rate)
	start := time.Now()
	var (
		wg   sync.WaitGroup
		once sync.Once
		fail error
		last time.Time
		mu   sync.Mutex
	)
	for w := range publishers {
		wg.Go(func() {
			for i := w; i < n; i += publishers {
				time.Sleep(time.Until(start.Add(time.Duration(i) * interval)))
				if _, err := s.bus.Publish(ctx, benchUser(i, 1700000000000+int64(i))); err != nil {
					once.Do(func() { fail = err })
					return
				}
				mu.Lock()
				last = time.Now()
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if fail != nil {
		b.Fatal(fail)
	}
	return last.Sub(start)
}

// committedWithin is the share of the events the intake recorded whose lag (from the stream to the
// commit) was at most bound seconds, read from the intake's histogram; bound must be one of its
// bucket bounds.
func committedWithin(b *testing.B, reg *prometheus.Registry, bound float64) float64 {
	b.Helper()
	families, err := reg.Gather()
	if err != nil {
		b.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != "idpsync_intake_lag_seconds" {
			continue
		}
		h := f.GetMetric()[0].GetHistogram()
		for _, bucket := range h.GetBucket() {
			if bucket.GetUpperBound() == bound {
				return float64(bucket.GetCumulativeCount()) / float64(h.GetSampleCount())
			}
		}
		b.Fatalf("idpsync_intake_lag_seconds has no bucket at %g", bound)
	}
	b.Fatal("the worker's registry has no idpsync_intake_lag_seconds")
	return 0
}
