package app_test

import (
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/idpsync/idpsync/internal/ssf"
)

// BenchmarkSSFEndToEnd measures the security events idpsync transmits, from the webhook to the
// receiver: users banned at Clerk (their user.updated webhooks sent at BENCH_SSF_RATE a second,
// default 200) each become a RISC account-disabled SET pushed to a local RFC 8935 receiver that
// verifies it with jwx. It reports the SETs accepted per second and the latency from each webhook's
// send to its SET's acceptance (p50, p99): receiver, stream, intake and mirror transaction, push
// job, signing and delivery.
//
//	go test -run '^$' -bench BenchmarkSSFEndToEnd ./internal/app
//
// BENCH_SSF_USERS sets the number of users (default 1000).
func BenchmarkSSFEndToEnd(b *testing.B) {
	n := envInt(b, "BENCH_SSF_USERS", 1000)
	rate := envInt(b, "BENCH_SSF_RATE", 200)
	for b.Loop() {
		s := startSSFStack(b, `{admin_addr: "-", ack_wait: 30s}`)
		s.receiver.Respond(nil)
		// The users exist in the mirror before the run.
		for i := range n {
			s.send(clerkEvent("user.created", 1700000001, clerkUser(fmt.Sprintf("user_b%06d", i), "B", 1700000001000, false)))
		}
		s.quiescent()

		var mu sync.Mutex
		sent := make(map[string]time.Time, n)
		start := time.Now()
		tick := time.NewTicker(time.Second / time.Duration(rate))
		for i := range n {
			<-tick.C
			id := fmt.Sprintf("user_b%06d", i)
			mu.Lock()
			sent[id] = time.Now()
			mu.Unlock()
			s.send(clerkEvent("user.updated", 1700000002, clerkUser(id, "B", 1700000002000, true)))
		}
		tick.Stop()
		got := s.receiver.WaitAccepted(b, n, 5*time.Minute)
		elapsed := time.Since(start)
		var lat []float64
		for _, r := range got {
			if r.Type != ssf.TypeAccountDisabled {
				b.Fatalf("unexpected SET %s", r.Type)
			}
			id := r.Claims["sub_id"].(map[string]any)["sub"].(string)
			lat = append(lat, float64(r.At.Sub(sent[id]).Microseconds())/1000)
		}
		slices.Sort(lat)
		b.ReportMetric(float64(len(got))/elapsed.Seconds(), "SETs/s")
		b.ReportMetric(lat[len(lat)/2], "p50-ms")
		b.ReportMetric(lat[len(lat)*99/100], "p99-ms")
		b.Logf("%d SETs at %d webhooks/s: %.0f SETs/s, webhook→SET accepted p50 %.1f ms, p99 %.1f ms",
			len(got), rate, float64(len(got))/elapsed.Seconds(), lat[len(lat)/2], lat[len(lat)*99/100])
		s.stopWorkerAndWait()
	}
}
