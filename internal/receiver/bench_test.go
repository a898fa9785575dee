package receiver_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	svix "github.com/svix/svix-webhooks/go"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/idpsync/idpsync/internal/config"
	"github.com/idpsync/idpsync/internal/natsbus"
	"github.com/idpsync/idpsync/internal/natsbus/natsembed"
	"github.com/idpsync/idpsync/internal/provider/clerk"
	"github.com/idpsync/idpsync/internal/receiver"
)

// BenchmarkReceiver measures, in one run on one machine, the receiver against two references:
//
//   - bare:  a net/http handler that reads the body and answers 204 (the HTTP floor);
//   - naive: Svix verification and a synchronous JetStream publish, nothing else;
//   - full:  idpsync's receiver (verification, envelope, headers, metrics, publish, PubAck).
//
// 64 concurrent senders post distinct, correctly signed 1.5 KB Clerk events over keep-alive HTTP
// to a server on loopback; the publishing variants use the same in-process nats-server (file
// storage, a fresh stream per round). Variants are interleaved over several rounds and the median
// round is reported, because these machines are shared and noisy. Ratios are against the naive
// reference (full/naive) and the bare handler (full/bare).
//
// Tune with BENCH_REQUESTS (per round and variant, default 20000), BENCH_ROUNDS (default 3),
// BENCH_CONCURRENCY (default 64); BENCH_VARIANTS=full (comma-separated) runs only those, to profile
// one. BENCH_VARIANTS may also name "traced": the full receiver with tracing on, every delivery
// sampled and its spans batched to an exporter that drops them (the cost of tracing itself).
func BenchmarkReceiver(b *testing.B) {
	requests := envInt("BENCH_REQUESTS", 20000)
	rounds := envInt("BENCH_ROUNDS", 3)
	concurrency := envInt("BENCH_CONCURRENCY", 64)

	ns, err := natsembed.Start(natsembed.Options{StoreDir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	defer func() { ns.Shutdown(); ns.WaitForShutdown() }()
	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		b.Fatal(err)
	}
	defer nc.Close()

	reqs := signedRequests(b, requests)
	variants := []variant{
		{"bare", func(*testing.B, *nats.Conn, int) http.Handler { return bareHandler() }},
		{"naive", naiveHandler},
		{"full", fullHandler},
	}
	if only := os.Getenv("BENCH_VARIANTS"); slices.Contains(strings.Split(only, ","), "traced") {
		variants = append(variants, variant{"traced", tracedHandler})
	}
	if only := os.Getenv("BENCH_VARIANTS"); only != "" {
		variants = slices.DeleteFunc(variants, func(v variant) bool { return !slices.Contains(strings.Split(only, ","), v.name) })
	}
	results := map[string][]result{}
	for round := range rounds {
		for _, v := range variants {
			runtimeGC()
			r := load(b, v.build(b, nc, round), reqs, concurrency)
			results[v.name] = append(results[v.name], r)
			b.Logf("round %d %-5s %8.0f req/s  p50 %6.2f ms  p99 %6.2f ms  cpu %5.1f µs/req  errors %d", round+1, v.name, r.rps, r.p50, r.p99, r.cpu, r.errors)
		}
	}
	med, cpu := map[string]result{}, map[string]float64{}
	for name, rs := range results {
		cpus := make([]float64, len(rs))
		for i, r := range rs {
			cpus[i] = r.cpu
		}
		slices.Sort(cpus)
		cpu[name] = cpus[len(cpus)/2]
		slices.SortFunc(rs, func(a, b result) int { return int(a.rps - b.rps) })
		med[name] = rs[len(rs)/2]
		if errs := sumErrors(rs); errs > 0 {
			b.Errorf("%s: %d requests failed", name, errs)
		}
	}
	if len(med) < 3 {
		return
	}
	for _, name := range []string{"bare", "naive", "full"} {
		r := med[name]
		b.ReportMetric(r.rps, name+"-req/s")
		b.ReportMetric(r.p50, name+"-p50-ms")
		b.ReportMetric(r.p99, name+"-p99-ms")
		b.ReportMetric(cpu[name], name+"-cpu-µs/req")
	}
	b.ReportMetric(med["full"].rps/med["naive"].rps, "full/naive")
	b.ReportMetric(med["full"].rps/med["bare"].rps, "full/bare")
	b.ReportMetric(cpu["full"]/cpu["naive"], "cpu-full/naive")
	if r, ok := med["traced"]; ok {
		b.ReportMetric(r.rps, "traced-req/s")
		b.ReportMetric(cpu["traced"], "traced-cpu-µs/req")
		b.ReportMetric(r.rps/med["naive"].rps, "traced/naive")
		b.ReportMetric(cpu["traced"]/cpu["naive"], "cpu-traced/naive")
	}
	b.ReportMetric(0, "ns/op") // not meaningful here
}

type variant struct {
	name  string
	build func(b *testing.B, nc *nats.Conn, round int) http.Handler
}

type result struct {
	rps, p50, p99 float64
	// cpu is the process's CPU time (user and system, every goroutine: HTTP client and server,
	// handler, NATS client and server) per request, in microseconds. It varies less than the
	// throughput when other tenants load the machine.
	cpu    float64
	errors int
}

func sumErrors(rs []result) int {
	n := 0
	for _, r := range rs {
		n += r.errors
	}
	return n
}

type signedRequest struct {
	body   []byte
	header http.Header
}

// signedRequests makes n distinct Clerk user.updated deliveries of about 1.5 KB, each signed.
func signedRequests(b *testing.B, n int) []signedRequest {
	pad := bytes.Repeat([]byte("x"), 900)
	out := make([]signedRequest, n)
	now := time.Now()
	for i := range out {
		body := fmt.Appendf(nil, `{"data":{"id":"user_%08d","object":"user","first_name":"Ada","last_name":"Lovelace",`+
			`"primary_email_address_id":"idn_%08d","email_addresses":[{"id":"idn_%08d","email_address":"ada%d@example.com"}],`+
			`"public_metadata":{"note":"%s"},"banned":false,"locked":false,"created_at":1716883200000,"updated_at":%d},`+
			`"object":"event","type":"user.updated","timestamp":%d,"instance_id":"ins_bench"}`,
			i, i, i, i, pad, 1716883200000+int64(i), now.Unix())
		h, err := clerk.SignSvix(fmt.Sprintf("msg_bench_%08d", i), now, body, secret)
		if err != nil {
			b.Fatal(err)
		}
		h.Set("Content-Type", "application/json")
		out[i] = signedRequest{body: body, header: h}
	}
	return out
}

// load posts every request once from concurrency senders over keep-alive connections.
func load(b *testing.B, h http.Handler, reqs []signedRequest, concurrency int) result {
	srv := httptest.NewUnstartedServer(h)
	srv.Config.ReadHeaderTimeout = 10 * time.Second
	srv.Start()
	defer srv.Close()
	client := &http.Client{Transport: &http.Transport{
		MaxIdleConns: concurrency, MaxIdleConnsPerHost: concurrency,
		DialContext: (&net.Dialer{}).DialContext,
	}}
	defer client.CloseIdleConnections()
	url := srv.URL + "/webhooks/clerk-bench"

	var (
		next   atomic.Int64
		errs   atomic.Int64
		wg     sync.WaitGroup
		lats   = make([]time.Duration, len(reqs))
		cpu0   = cpuTime()
		starts = time.Now()
	)
	for range concurrency {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= len(reqs) {
					return
				}
				req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(reqs[i].body))
				req.Header = reqs[i].header.Clone()
				t0 := time.Now()
				resp, err := client.Do(req)
				if err != nil {
					errs.Add(1)
					continue
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				lats[i] = time.Since(t0)
				if resp.StatusCode >= 300 {
					errs.Add(1)
				}
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(starts)
	cpuPerReq := float64(cpuTime()-cpu0) / float64(time.Microsecond) / float64(len(reqs))
	slices.Sort(lats)
	pct := func(p float64) float64 { return float64(lats[int(p*float64(len(lats)-1))]) / float64(time.Millisecond) }
	return result{rps: float64(len(reqs)) / elapsed.Seconds(), p50: pct(0.50), p99: pct(0.99), cpu: cpuPerReq, errors: int(errs.Load())}
}

func bareHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.ReadAll(r.Body)
		w.WriteHeader(http.StatusNoContent)
	})
}

// benchStream creates a fresh stream for one variant's round.
func benchStream(b *testing.B, nc *nats.Conn, name, prefix string) {
	js, err := jetstream.New(nc)
	if err != nil {
		b.Fatal(err)
	}
	_, err = js.CreateStream(context.Background(), jetstream.StreamConfig{
		Name: name, Subjects: []string{prefix + ".>"}, Storage: jetstream.FileStorage,
		Duplicates: 2 * time.Minute, MaxAge: time.Hour,
	})
	if err != nil {
		b.Fatal(err)
	}
}

// naiveHandler is the reference: Svix verify, synchronous publish with the delivery id, 200.
func naiveHandler(b *testing.B, nc *nats.Conn, round int) http.Handler {
	name, prefix := fmt.Sprintf("NAIVE_%d", round), fmt.Sprintf("naive%d", round)
	benchStream(b, nc, name, prefix)
	js, err := jetstream.New(nc)
	if err != nil {
		b.Fatal(err)
	}
	wh, err := svix.NewWebhook(secret)
	if err != nil {
		b.Fatal(err)
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, "bad body", http.StatusBadRequest)
			return
		}
		if err := wh.Verify(body, r.Header); err != nil {
			http.Error(w, "bad signature", http.StatusUnauthorized)
			return
		}
		if _, err := js.Publish(r.Context(), prefix+".clerk-bench", body, jetstream.WithMsgID(r.Header.Get("svix-id"))); err != nil {
			http.Error(w, "unavailable", http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusOK)
	})
}

// fullHandler is idpsync's receiver as cmd/receiver builds it, tracing off.
func fullHandler(b *testing.B, nc *nats.Conn, round int) http.Handler {
	return receiverHandler(b, nc, "full", round, nil)
}

// tracedHandler is idpsync's receiver with tracing on: every delivery sampled, spans batched to an
// exporter that drops them.
func tracedHandler(b *testing.B, nc *nats.Conn, round int) http.Handler {
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(tracetest.NewNoopExporter()))
	b.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	return receiverHandler(b, nc, "traced", round, tp)
}

func receiverHandler(b *testing.B, nc *nats.Conn, name string, round int, tp trace.TracerProvider) http.Handler {
	cfg := natsbus.StreamConfig{Name: fmt.Sprintf("%s_%d", strings.ToUpper(name), round), SubjectPrefix: fmt.Sprintf("%s%d", name, round),
		Replicas: 1, MaxAge: time.Hour, Duplicates: 2 * time.Minute, MaxBytes: -1}
	bus, err := natsbus.New(nc, cfg, 0)
	if err != nil {
		b.Fatal(err)
	}
	if err := bus.EnsureStream(context.Background()); err != nil {
		b.Fatal(err)
	}
	v, err := clerk.NewSvix(clerk.SvixConfig{Secrets: []string{secret}, Tolerance: 5 * time.Minute})
	if err != nil {
		b.Fatal(err)
	}
	h, err := receiver.New(receiver.Config{
		Sources:          []receiver.Source{{Name: "clerk-bench", Verifier: v, ParseEnvelopeFunc: clerk.ParseEnvelope}},
		Publisher:        bus,
		Ready:            bus.Ready,
		MaxBodyBytes:     config.MaxBodyBytesDefault,
		MaxInFlightBytes: config.MaxInFlightBytesDefault,
		RetryAfter:       config.RetryAfterDefault,
		TracerProvider:   tp,
	})
	if err != nil {
		b.Fatal(err)
	}
	return h
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

func runtimeGC() { runtime.GC() }

// cpuTime is the CPU time the process used so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
