package handlers_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/idpsync/idpsync/internal/ssf"
)

// BenchmarkSSFPush measures push delivery end to end: account-disabled SETs emitted in
// transactions of 100 (as a resync page would), recorded, pushed by the ssf queue's 10 workers
// and accepted by a local receiver that verifies each with jwx. It reports SETs accepted per
// second and the latency from the emitting transaction's commit to the receiver's acceptance.
func BenchmarkSSFPush(b *testing.B) {
	const n, batch = 2000, 100
	h := newHarness(b, nil)
	r := h.receiver()
	h.pushStream(r, ssf.TypeAccountDisabled)
	issuer := h.cfg.SubjectIssuer("clerk")
	var latencies []time.Duration
	var elapsed time.Duration
	round := 0
	for b.Loop() {
		committed := make(map[string]time.Time, n)
		before := len(r.Accepted())
		start := time.Now()
		for i := 0; i < n; i += batch {
			ids := make([]string, 0, batch)
			h.emit(func(ctx context.Context, tx pgx.Tx) error {
				for j := i; j < i+batch; j++ {
					id := fmt.Sprintf("user_%d_%d", round, j)
					ids = append(ids, id)
					if _, err := h.ssf.Emit(ctx, tx, nil, ssf.AccountDisabled(ssf.User{Issuer: issuer, ID: id}, "")); err != nil {
						return err
					}
				}
				return nil
			})
			at := time.Now()
			for _, id := range ids {
				committed[id] = at
			}
		}
		got := r.WaitAccepted(b, before+n, 5*time.Minute)
		elapsed += time.Since(start)
		for _, g := range got[before:] {
			id := g.Claims["sub_id"].(map[string]any)["sub"].(string)
			latencies = append(latencies, g.At.Sub(committed[id]))
		}
		round++
	}
	slices.Sort(latencies)
	q := func(p float64) float64 {
		return float64(latencies[int(p*float64(len(latencies)-1))].Microseconds()) / 1000
	}
	b.ReportMetric(float64(round*n)/elapsed.Seconds(), "SETs/s")
	b.ReportMetric(q(0.50), "p50_ms")
	b.ReportMetric(q(0.99), "p99_ms")
}

// BenchmarkSSFEmit measures what Emit adds to a job's transaction, per SET (100 emits per
// transaction, one push stream: the targets query, the SET's insert and its push job's), and
// what signing each SET in that transaction would add: the measure behind signing at delivery.
func BenchmarkSSFEmit(b *testing.B) {
	for _, signInTx := range []bool{false, true} {
		name := "sign_at_delivery"
		if signInTx {
			name = "sign_in_tx"
		}
		b.Run(name, func(b *testing.B) {
			const batch = 100
			h := startHarness(b, nil, false) // River does not work the jobs: only the emit is measured
			h.pushStream(h.receiver(), ssf.TypeAccountDisabled)
			signer, err := ssf.NewSigner([]ssf.Key{{ID: "k1", Private: signingKey(b)}}, "")
			if err != nil {
				b.Fatal(err)
			}
			issuer := h.cfg.SubjectIssuer("clerk")
			round := 0
			for b.Loop() {
				h.emit(func(ctx context.Context, tx pgx.Tx) error {
					for j := range batch {
						ev := ssf.AccountDisabled(ssf.User{Issuer: issuer, ID: fmt.Sprintf("user_%d_%d", round, j)}, "")
						if _, err := h.ssf.Emit(ctx, tx, nil, ev); err != nil {
							return err
						}
						if signInTx {
							claims, _ := ev.Claims(h.cfg.Issuer, ssf.Audience{"a"}, ssf.NewJTI(), time.Now())
							if _, err := signer.Sign(claims); err != nil {
								return err
							}
						}
					}
					return nil
				})
				round++
			}
			b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(round*batch), "µs/SET")
		})
	}
}
