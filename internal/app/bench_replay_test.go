package app_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/idpsync/idpsync/internal/store"
)

// BenchmarkReplayLog measures `worker replay -from log` (replay.Log, wired as the command wires
// it) re-applying an event log of Clerk user.created events, in a run that also measures two
// references on the same data:
//
//   - select: reading the same rows as the replay does (its pages of store.ListEvents), nothing
//     applied: the floor of any replay;
//   - naive: the naive consumer of BenchmarkDrain draining as many events from the stream.
//
// Each round drains a filled stream with the naive consumer on a stack of its own; on another, lets
// the worker record the event log (every event applied, as in production), then times the replay
// and the select, in alternating order. Ratios are the medians of the rounds' ratios.
//
//	go test -run '^$' -bench 'BenchmarkReplayLog$' ./internal/app
//
// BENCH_REPLAY_EVENTS sets the number of events (default 20000), BENCH_ROUNDS the rounds (default 3).
func BenchmarkReplayLog(b *testing.B) {
	benchDatabase(b)
	n := envInt(b, "BENCH_REPLAY_EVENTS", 20000)
	rounds := envInt(b, "BENCH_ROUNDS", 3)
	ctx := context.Background()
	var replays, selects, naives, costs, toNaive, toSelect []float64
	for b.Loop() {
		for round := range rounds {
			ref := startStack(b, withoutWorker())
			fillStream(b, ref, n)
			start := time.Now()
			naiveDrain(b, ref, n)
			naive := float64(n) / time.Since(start).Seconds()

			s := startStack(b, withoutWorker(), withWorker(workerYAML(`admin_addr: "-", ack_wait: 30s`)))
			fillStream(b, s, n)
			s.startWorker()
			waitProcessed(b, s, n, 5*time.Minute)
			s.stopWorkerAndWait()
			_, logReplay := s.recorder()

			var replayed, selected float64
			var self, pg float64
			steps := []func(){
				func() {
					cost := startCPUCost(b, s)
					start := time.Now()
					c, err := logReplay(ctx, store.EventFilter{})
					if err != nil || c.Read != n || c.Applied != n {
						b.Fatalf("replay: %+v, %v", c, err)
					}
					replayed = float64(n) / time.Since(start).Seconds()
					self, pg = cost.perUnit(n)
				},
				func() {
					start := time.Now()
					if read := selectLog(b, s); read != n {
						b.Fatalf("read %d events of %d", read, n)
					}
					selected = float64(n) / time.Since(start).Seconds()
				},
			}
			if round%2 == 1 {
				slices.Reverse(steps)
			}
			for _, step := range steps {
				step()
			}
			b.Logf("round %d: replay %6.0f events/s (cpu/event: %.1f us here + %.1f us in Postgres), select %6.0f events/s, naive drain %6.0f events/s",
				round+1, replayed, self, pg, selected, naive)
			replays, selects, naives = append(replays, replayed), append(selects, selected), append(naives, naive)
			costs = append(costs, self+pg)
			toNaive, toSelect = append(toNaive, replayed/naive), append(toSelect, replayed/selected)
		}
	}
	b.ReportMetric(median(replays), "replay-events/s")
	b.ReportMetric(median(selects), "select-events/s")
	b.ReportMetric(median(naives), "naive-drain-events/s")
	b.ReportMetric(median(toNaive), "replay/naive-drain")
	b.ReportMetric(median(toSelect), "replay/select")
	b.ReportMetric(median(costs), "replay-cpu-us/event")
}

// selectLog reads the whole event log the way replay.Log pages through it, and returns how many
// events it read.
func selectLog(b *testing.B, s *stack) int {
	b.Helper()
	f := store.EventFilter{Limit: 500}
	read := 0
	for {
		recs, err := store.ListEvents(context.Background(), s.pool, f)
		if err != nil {
			b.Fatal(err)
		}
		if len(recs) == 0 {
			return read
		}
		read += len(recs)
		f.AfterID = recs[len(recs)-1].ID
	}
}
