package receiver_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/idpsync/idpsync/internal/receiver"
)

// serve serves e's handler through receiver.Listen (the production server: connection cap,
// header limit) and returns its address.
func (e *env) serve(t *testing.T, cfg receiver.ServerConfig) string {
	t.Helper()
	cfg.Addr = "127.0.0.1:0"
	srv, err := receiver.Listen(cfg, e.srv.Config.Handler)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return srv.Addr()
}

// openRequest sends a request's head declaring contentLength and the first bytes of its body, and
// leaves the connection open without sending the rest.
func openRequest(t *testing.T, addr, path string, contentLength int, prefix []byte) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	head := fmt.Sprintf("POST %s HTTP/1.1\r\nHost: receiver\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n", path, contentLength)
	if _, err := c.Write(append([]byte(head), prefix...)); err != nil {
		t.Fatal(err)
	}
	return c
}

// gauge reads an unlabelled gauge from reg.
func gauge(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name && len(mf.GetMetric()) == 1 {
			return mf.GetMetric()[0].GetGauge().GetValue()
		}
	}
	t.Fatalf("no gauge %s", name)
	return 0
}

func heapInUse() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse
}

// A request declaring a large body and sending nothing costs little: memory grows with the bytes
// that arrive, not with the length declared. (Before, each such request reserved its declared
// megabyte: 100 of them took 100 MB.)
func TestDeclaredLengthReservesNoMemory(t *testing.T) {
	e := newEnv(t, func(c *receiver.Config) { c.MaxBodyBytes = 1 << 20 })
	addr := e.serve(t, receiver.ServerConfig{})
	before := heapInUse()
	const conns = 100
	for range conns {
		openRequest(t, addr, "/webhooks/clerk-test", 1_000_000, []byte(`{"data":`))
	}
	// Every handler has read the first bytes of its body (and counted them) before we measure.
	waitFor(t, func() bool { return gauge(t, e.reg, "idpsync_webhook_body_bytes_in_flight") == conns*8 })
	after := heapInUse()
	if grown := int64(after) - int64(before); grown > 32<<20 {
		t.Fatalf("%d requests declaring 1 MB each and sending 8 bytes grew the heap by %d MB", conns, grown>>20)
	}
}

// The bytes held by all requests at once are capped: the request that passes the cap gets 503 with
// Retry-After and its bytes are released, while the others go on; once they finish, deliveries
// are accepted again.
func TestBodyBytesInFlightAreCapped(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *receiver.Config) { c.MaxBodyBytes, c.MaxInFlightBytes = 32<<10, 64<<10 })
	addr := e.serve(t, receiver.ServerConfig{})
	held := func() float64 { return gauge(t, e.reg, "idpsync_webhook_body_bytes_in_flight") }

	a := openRequest(t, addr, "/webhooks/clerk-test", 32<<10, bytes.Repeat([]byte(" "), 30_000))
	openRequest(t, addr, "/webhooks/clerk-test", 32<<10, bytes.Repeat([]byte(" "), 30_000))
	waitFor(t, func() bool { return held() == 60_000 })

	c := openRequest(t, addr, "/webhooks/clerk-test", 20_000, bytes.Repeat([]byte(" "), 20_000))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") != "7" || !strings.Contains(string(got), `"error":"overloaded"`) {
		t.Fatalf("over the cap: %d, Retry-After %q, %s", resp.StatusCode, resp.Header.Get("Retry-After"), got)
	}
	if !resp.Close {
		t.Error("the connection of a request over the cap is kept open")
	}
	waitFor(t, func() bool { return held() == 60_000 }) // its bytes are released, the others' kept

	a.Close() // a sender that gives up releases its bytes too
	waitFor(t, func() bool { return held() == 30_000 })
	if resp := e.post(t, "/webhooks/clerk-test", "msg_after", userCreated("user_1"), nil, secret); resp.StatusCode != http.StatusAccepted {
		t.Fatalf("under the cap again: %d", resp.StatusCode)
	}
	if got := held(); got != 30_000 {
		t.Fatalf("%v bytes held after the accepted delivery, want 30000", got)
	}
	if n := metricValue(t, e.reg, "idpsync_webhook_requests_total", "clerk-test", "overloaded"); n != 1 {
		t.Errorf("overloaded counter = %v", n)
	}
}

// At the connection cap the server stops accepting: a further client waits until a connection
// closes, then is served.
func TestConnectionsAreCapped(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	reg := prometheus.NewRegistry()
	addr := e.serve(t, receiver.ServerConfig{MaxConns: 3, Registerer: reg})
	var idle []net.Conn
	for range 3 {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		idle = append(idle, c)
	}
	waitFor(t, func() bool { return gauge(t, reg, "idpsync_receiver_connections") == 3 })

	answered := make(chan int, 1)
	go func() {
		resp, err := http.Get("http://" + addr + "/healthz")
		if err != nil {
			answered <- 0
			return
		}
		resp.Body.Close()
		answered <- resp.StatusCode
	}()
	select {
	case code := <-answered:
		t.Fatalf("a fourth connection was served (%d) while three were open", code)
	case <-time.After(300 * time.Millisecond):
	}
	idle[0].Close()
	if code := <-answered; code != http.StatusOK {
		t.Fatalf("the waiting client got %d", code)
	}
}
