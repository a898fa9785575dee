package receiver_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/idpsync/idpsync/internal/config"
	"github.com/idpsync/idpsync/internal/natsbus"
	"github.com/idpsync/idpsync/internal/natsbus/natsembed"
	"github.com/idpsync/idpsync/internal/provider/clerk"
	"github.com/idpsync/idpsync/internal/receiver"
)

// childEnv makes the test binary run the receiver of BenchmarkStalledBodiesRSS instead of the tests.
const childEnv = "IDPSYNC_BENCH_RECEIVER_CHILD"

func TestMain(m *testing.M) {
	if url := os.Getenv(childEnv); url != "" {
		if err := serveChild(url); err != nil {
			fmt.Fprintln(os.Stderr, "receiver child:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// serveChild runs a receiver with the production defaults (as app.NewReceiver builds it, with
// receiver.max_body_bytes at its default of 1 MiB) over the NATS server at natsURL, prints its
// address on stdout and serves until stdin closes.
func serveChild(natsURL string) error {
	nc, err := nats.Connect(natsURL)
	if err != nil {
		return err
	}
	defer nc.Close()
	bus, err := natsbus.New(nc, natsbus.StreamConfig{Name: "RSS", SubjectPrefix: "rss", Replicas: 1,
		MaxAge: time.Hour, Duplicates: 2 * time.Minute, MaxBytes: -1}, 0)
	if err != nil {
		return err
	}
	if err := bus.EnsureStream(context.Background()); err != nil {
		return err
	}
	v, err := clerk.NewSvix(clerk.SvixConfig{Secrets: []string{secret}, Tolerance: config.WebhookToleranceDefault})
	if err != nil {
		return err
	}
	h, err := receiver.New(receiver.Config{
		Sources:          []receiver.Source{{Name: "clerk-bench", Verifier: v, ParseEnvelopeFunc: clerk.ParseEnvelope}},
		Publisher:        bus,
		Ready:            bus.Ready,
		MaxBodyBytes:     config.MaxBodyBytesDefault,
		MaxInFlightBytes: config.MaxInFlightBytesDefault,
		RetryAfter:       config.RetryAfterDefault,
	})
	if err != nil {
		return err
	}
	srv, err := receiver.Listen(receiver.ServerConfig{Addr: "127.0.0.1:0", ShutdownTimeout: config.ReceiverShutdownTimeoutDefault,
		MaxConns: config.ReceiverMaxConnsDefault, MaxHeaderBytes: config.MaxHeaderBytesDefault}, h)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(context.Background())
	go func() { _, _ = io.Copy(io.Discard, os.Stdin); cancel() }()
	fmt.Println(srv.Addr())
	return srv.Serve(ctx)
}

// BenchmarkStalledBodiesRSS measures what stalled bodies cost the receiver: in a child process
// (so that /proc/<pid>/status gives the receiver's own memory), with the production defaults,
// BENCH_STALLED_CONNS connections (default 1000) each declare a Content-Length of 1 MB and send
// nothing, and stay open while BENCH_SIGNED_REQUESTS (default 2000) distinct, correctly signed
// Clerk deliveries are posted by 16 concurrent senders. It reports the receiver's resident memory
// before the stalled connections, once they are open, and after the deliveries (and its peak), the
// deliveries that got 202 and their latency. Linux only.
func BenchmarkStalledBodiesRSS(b *testing.B) {
	if _, err := os.Stat("/proc/self/status"); err != nil {
		b.Skip("needs /proc")
	}
	stalled := envInt("BENCH_STALLED_CONNS", 1000)
	signed := envInt("BENCH_SIGNED_REQUESTS", 2000)
	const senders = 16

	ns, err := natsembed.Start(natsembed.Options{StoreDir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	defer func() { ns.Shutdown(); ns.WaitForShutdown() }()

	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+ns.ClientURL())
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() { stdin.Close(); _ = cmd.Wait() }()
	addr, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		b.Fatalf("the child did not start: %v", err)
	}
	addr = strings.TrimSpace(addr)
	pid := cmd.Process.Pid

	reqs := signedRequests(b, signed+200)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: senders, MaxConnsPerHost: senders}}
	defer client.CloseIdleConnections()
	url := "http://" + addr + "/webhooks/clerk-bench"
	post := func(reqs []signedRequest) (lats []time.Duration, accepted int) {
		var (
			next  atomic.Int64
			mu    sync.Mutex
			wg    sync.WaitGroup
			codes = map[int]int{}
		)
		lats = make([]time.Duration, len(reqs))
		for range senders {
			wg.Go(func() {
				for i := int(next.Add(1) - 1); i < len(reqs); i = int(next.Add(1) - 1) {
					req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(reqs[i].body))
					req.Header = reqs[i].header.Clone()
					t0 := time.Now()
					resp, err := client.Do(req)
					code := 0
					if err == nil {
						_, _ = io.Copy(io.Discard, resp.Body)
						resp.Body.Close()
						code = resp.StatusCode
					}
					lats[i] = time.Since(t0)
					mu.Lock()
					codes[code]++
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		if len(codes) > 1 || codes[http.StatusAccepted] != len(reqs) {
			b.Errorf("answers to the signed deliveries: %v", codes)
		}
		return lats, codes[http.StatusAccepted]
	}

	post(reqs[:200]) // warm up: connections, pools, the stream
	time.Sleep(500 * time.Millisecond)
	before := procStatus(b, pid)

	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	head := []byte("POST /webhooks/clerk-bench HTTP/1.1\r\nHost: receiver\r\nContent-Type: application/json\r\nContent-Length: 1000000\r\n\r\n")
	for range stalled {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			b.Fatalf("after %d stalled connections: %v", len(conns), err)
		}
		conns = append(conns, c)
		if _, err := c.Write(head); err != nil {
			b.Fatal(err)
		}
	}
	time.Sleep(2 * time.Second) // every stalled request reaches its handler, which waits for its body
	idle := procStatus(b, pid)

	lats, accepted := post(reqs[200:])
	after := procStatus(b, pid)

	// The stalled connections are still open: a read times out rather than finding them closed.
	open := 0
	for _, c := range conns {
		_ = c.SetReadDeadline(time.Now().Add(time.Millisecond))
		if _, err := c.Read(make([]byte, 1)); errors.Is(err, os.ErrDeadlineExceeded) {
			open++
		}
	}
	if open != len(conns) {
		b.Errorf("%d of %d stalled connections were closed during the run", len(conns)-open, len(conns))
	}
	slices.Sort(lats)
	pct := func(p float64) float64 { return float64(lats[int(p*float64(len(lats)-1))]) / float64(time.Millisecond) }
	b.Logf("RSS %.1f MB before, %.1f MB with %d stalled 1 MB bodies, %.1f MB after %d signed deliveries (peak %.1f MB); %d accepted, p50 %.2f ms, p99 %.2f ms, max %.2f ms",
		before.rss, idle.rss, open, after.rss, len(lats), after.peak, accepted, pct(0.5), pct(0.99), pct(1))
	b.ReportMetric(before.rss, "rss-before-MB")
	b.ReportMetric(idle.rss, "rss-stalled-MB")
	b.ReportMetric(after.rss, "rss-after-MB")
	b.ReportMetric(after.peak, "rss-peak-MB")
	b.ReportMetric(float64(accepted), "signed-202")
	b.ReportMetric(pct(0.5), "signed-p50-ms")
	b.ReportMetric(pct(0.99), "signed-p99-ms")
	b.ReportMetric(0, "ns/op") // not meaningful here
}

type memStatus struct{ rss, peak float64 } // MB

// procStatus reads the resident set (VmRSS) and its peak (VmHWM) of process pid.
func procStatus(b *testing.B, pid int) memStatus {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		b.Fatal(err)
	}
	var m memStatus
	for line := range strings.SplitSeq(string(data), "\n") {
		key, value, _ := strings.Cut(line, ":")
		kb, err := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(value), " kB"))
		if err != nil {
			continue
		}
		switch key {
		case "VmRSS":
			m.rss = float64(kb) / 1024
		case "VmHWM":
			m.peak = float64(kb) / 1024
		}
	}
	return m
}
