package app_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/idpsync/idpsync/internal/events"
	"github.com/idpsync/idpsync/internal/natsbus"
)

// The mirror's throughput is measured against a naive consumer in the same run, because these
// machines are shared and noisy: the ratio is the figure that means something.
//
//   - naive: a JetStream pull consumer fetching 256 messages, decoding each Clerk user and writing
//     them in one transaction of version-guarded upserts (pipelined), then acknowledging them;
//   - idpsync: the worker as deployed (intake, event log, mirror, hooks, River).
//
// Both drain the same number of signed Clerk user.created deliveries from a pre-filled stream, each
// on a stack of its own. The two run one after the other in each round, in alternating order, and
// idpsync/naive is the median of the rounds' ratios. cpu-us/event is the CPU time per event of this
// process and of its Postgres backends (see cpuCost).
//
//	go test -run '^$' -bench 'BenchmarkDrain$' ./internal/app
//
// BENCH_DRAIN_EVENTS sets the number of events (default 20000), BENCH_ROUNDS the rounds (default
// 3); BENCH_WORKER adds settings to the worker's section (e.g. "batch_size: 500");
// BENCH_DRAIN_CPUPROFILE writes a CPU profile of the idpsync drains to that file.
func BenchmarkDrain(b *testing.B) {
	benchDatabase(b)
	n := envInt(b, "BENCH_DRAIN_EVENTS", 20000)
	rounds := envInt(b, "BENCH_ROUNDS", 3)
	worker := workerYAML(`admin_addr: "-", ack_wait: 30s`)
	rates, costs := map[string][]float64{}, map[string][]float64{}
	var ratios []float64
	for b.Loop() {
		for round := range rounds {
			order := []string{"naive", "idpsync"}
			if round%2 == 1 {
				slices.Reverse(order)
			}
			rate := map[string]float64{}
			for _, variant := range order {
				s := startStack(b, withoutWorker(), withWorker(worker))
				fillStream(b, s, n)
				cost := startCPUCost(b, s)
				start := time.Now()
				if variant == "naive" {
					naiveDrain(b, s, n)
				} else {
					stop := cpuProfile(b, os.Getenv("BENCH_DRAIN_CPUPROFILE"))
					s.startWorker()
					waitProcessed(b, s, n, 5*time.Minute)
					stop()
				}
				rate[variant] = float64(n) / time.Since(start).Seconds()
				self, pg := cost.perUnit(n)
				rates[variant] = append(rates[variant], rate[variant])
				costs[variant] = append(costs[variant], self+pg)
				b.Logf("round %d %-8s %8.0f events/s  cpu/event: %5.1f us here + %5.1f us in Postgres", round+1, variant, rate[variant], self, pg)
				s.stopWorkerAndWait()
			}
			ratios = append(ratios, rate["idpsync"]/rate["naive"])
		}
	}
	b.ReportMetric(median(rates["naive"]), "naive-events/s")
	b.ReportMetric(median(rates["idpsync"]), "idpsync-events/s")
	b.ReportMetric(median(ratios), "idpsync/naive")
	b.ReportMetric(median(costs["naive"]), "naive-cpu-us/event")
	b.ReportMetric(median(costs["idpsync"]), "idpsync-cpu-us/event")
}

// workerYAML is the worker section of a benchmark's stack: base, plus BENCH_WORKER's settings.
func workerYAML(base string) string {
	if extra := os.Getenv("BENCH_WORKER"); extra != "" {
		base += ", " + extra
	}
	return "{" + base + "}"
}

func envInt(b *testing.B, name string, def int) int {
	b.Helper()
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		b.Fatalf("%s=%q is not a positive integer", name, v)
	}
	return n
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
}

// benchUser is the Clerk user.created delivery of user i, as the receiver stores it.
func benchUser(i int, updatedAt int64) *natsbus.Event {
	id := fmt.Sprintf("user_bench%07d", i)
	body := clerkEvent("user.created", updatedAt/1000, clerkUser(id, "Ada", updatedAt, false))
	return &natsbus.Event{Source: "clerk-e2e", EventID: fmt.Sprintf("msg_bench%07d", i), Type: events.UserCreated,
		SourceType: "user.created", Body: body}
}

// fillStream publishes n distinct user.created deliveries, as the receiver would.
func fillStream(b *testing.B, s *stack, n int) {
	b.Helper()
	publishAll(b, s, n, func(i int) *natsbus.Event { return benchUser(i, 1700000000000+int64(i)) })
}

func publishAll(b *testing.B, s *stack, n int, ev func(int) *natsbus.Event) {
	b.Helper()
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make(chan error, 1)
	const senders = 32
	for w := range senders {
		wg.Go(func() {
			for i := w; i < n; i += senders {
				if _, err := s.bus.Publish(ctx, ev(i)); err != nil {
					select {
					case errs <- err:
					default:
					}
					return
				}
			}
		})
	}
	wg.Wait()
	select {
	case err := <-errs:
		b.Fatal(err)
	default:
	}
}

// waitProcessed waits until n events are recorded and none is pending: it watches the durable
// consumer (cheap), then checks the event log once.
func waitProcessed(b *testing.B, s *stack, n int, within time.Duration) {
	b.Helper()
	deadline := time.Now().Add(within)
	for s.consumerPending() > 0 {
		if time.Now().After(deadline) {
			b.Fatalf("after %s: the stream is not drained", within)
		}
		// Each look costs a JetStream API call (CPU in this process, which is measured): every
		// 25 ms keeps that small and the drain's end within a few ms.
		time.Sleep(25 * time.Millisecond)
	}
	for {
		var done, pending int64
		if err := s.pool.QueryRow(context.Background(),
			`SELECT count(*) FILTER (WHERE status <> 'pending'), count(*) FILTER (WHERE status = 'pending') FROM events`).Scan(&done, &pending); err != nil {
			b.Fatal(err)
		}
		if done >= int64(n) && pending == 0 {
			return
		}
		if time.Now().After(deadline) {
			b.Fatalf("after %s: %d of %d events processed, %d pending", within, done, n, pending)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// naiveDrain is the reference consumer: fetch 256, one transaction of version-guarded upserts,
// ack.
func naiveDrain(b *testing.B, s *stack, n int) {
	b.Helper()
	ctx := context.Background()
	cons, err := s.bus.JetStream().CreateOrUpdateConsumer(ctx, s.cfg.NATS.Stream, jetstream.ConsumerConfig{
		Durable: "naive", AckPolicy: jetstream.AckExplicitPolicy, MaxAckPending: 4096})
	if err != nil {
		b.Fatal(err)
	}
	type user struct {
		ID             string `json:"id"`
		FirstName      string `json:"first_name"`
		LastName       string `json:"last_name"`
		PrimaryEmailID string `json:"primary_email_address_id"`
		Emails         []struct {
			ID    string `json:"id"`
			Email string `json:"email_address"`
		} `json:"email_addresses"`
		UpdatedAt int64 `json:"updated_at"`
	}
	for done := 0; done < n; {
		batch, err := cons.Fetch(256, jetstream.FetchMaxWait(time.Second))
		if err != nil {
			b.Fatal(err)
		}
		var msgs []jetstream.Msg
		pb := &pgx.Batch{}
		for m := range batch.Messages() {
			var env struct {
				Data json.RawMessage `json:"data"`
			}
			var u user
			if err := json.Unmarshal(m.Data(), &env); err != nil {
				b.Fatal(err)
			}
			if err := json.Unmarshal(env.Data, &u); err != nil {
				b.Fatal(err)
			}
			email := ""
			for _, e := range u.Emails {
				if e.ID == u.PrimaryEmailID {
					email = e.Email
				}
			}
			pb.Queue(`INSERT INTO users (source, id, primary_email, first_name, last_name, raw, source_version)
				VALUES ('clerk-e2e', $1, $2, $3, $4, $5, $6)
				ON CONFLICT (source, id) DO UPDATE SET primary_email = excluded.primary_email, first_name = excluded.first_name,
				    last_name = excluded.last_name, raw = excluded.raw, source_version = excluded.source_version, synced_at = now()
				WHERE users.source_version < excluded.source_version`, u.ID, email, u.FirstName, u.LastName, []byte(env.Data), u.UpdatedAt)
			msgs = append(msgs, m)
		}
		if err := batch.Error(); err != nil && len(msgs) == 0 {
			b.Fatal(err)
		}
		if len(msgs) == 0 {
			continue
		}
		if err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error { return tx.SendBatch(ctx, pb).Close() }); err != nil {
			b.Fatal(err)
		}
		for _, m := range msgs {
			if err := m.Ack(); err != nil {
				b.Fatal(err)
			}
		}
		done += len(msgs)
	}
}
