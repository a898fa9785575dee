package receiver_test

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/idpsync/idpsync/internal/config"
	"github.com/idpsync/idpsync/internal/provider/authpi"
	"github.com/idpsync/idpsync/internal/provider/clerk"
	"github.com/idpsync/idpsync/internal/receiver"
)

// serve serves e's handler through receiver.Listen (the production server: connection cap,
// header limit) and returns its address.
func (e *env) serve(t *testing.T, cfg receiver.ServerConfig) string {
	t.Helper()
	cfg.Addr = "127.0.0.1:0"
	cfg.ShutdownTimeout = config.ReceiverShutdownTimeoutDefault
	cfg.MaxConns = cmp.Or(cfg.MaxConns, config.ReceiverMaxConnsDefault)
	cfg.MaxHeaderBytes = cmp.Or(cfg.MaxHeaderBytes, config.MaxHeaderBytesDefault)
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

// The event id is checked before anything is published: ids that would poison the worker (NUL,
// invalid UTF-8) or that NATS cannot carry (a 200 KB id fills the 64 KB header limit, so every
// retry got 503) get a 400 that says what is wrong without repeating the id.
func TestUnusableEventIDsAre400(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *receiver.Config) { c.MaxBodyBytes = 1 << 20 })
	authpiEvent := func(id string) []byte {
		return fmt.Appendf(nil, `{"id":%s,"specversion":"1.0","type":"event","data":{"type":"user.updated","data":{"object":"user","id":"usr_1"}}}`, id)
	}
	signHMAC := func(body []byte) func(*http.Request) {
		return func(r *http.Request) { r.Header.Set(authpi.HMACSignatureHeader, authpi.SignHMAC(authpiSecret, body)) }
	}
	bigID := strings.Repeat("i", 200<<10)
	cases := []struct {
		name, path, svixID string
		body               []byte
		sign               func([]byte) func(*http.Request)
		want               string // in the message
	}{
		{"NUL in a payload id", "/webhooks/authpi-test", "", authpiEvent(`"nul\u0000id"`), signHMAC, "the event id in the payload cannot identify an event (malformed payload: authpi: the event id: invalid id: unprintable character U+0000 at byte 3)"},
		{"200 KB payload id", "/webhooks/authpi-test", "", authpiEvent(`"` + bigID + `"`), signHMAC, "204800 bytes, more than 256"},
		{"invalid UTF-8 in svix-id", "/webhooks/clerk-test", "msg_\xff\xfe", userCreated("user_1"), nil, "a header is malformed: svix-id: invalid id: not valid UTF-8 at byte 4"},
		{"invalid UTF-8 in the svix-id of an unreadable payload", "/webhooks/clerk-test", "msg_\xff", []byte(`{"data": [1, 2`), nil, "not valid UTF-8"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var resp *http.Response
			if c.sign != nil {
				resp = e.post(t, c.path, "", c.body, c.sign(c.body))
			} else {
				resp = e.post(t, c.path, c.svixID, c.body, nil, secret)
			}
			got, _ := io.ReadAll(resp.Body)
			var answer struct{ Error, Message string }
			if err := json.Unmarshal(got, &answer); err != nil || resp.StatusCode != http.StatusBadRequest || answer.Error != "bad_request" {
				t.Fatalf("got %d %s, want 400 bad_request", resp.StatusCode, got)
			}
			if !strings.Contains(answer.Message, c.want) {
				t.Errorf("message %q does not say %q", answer.Message, c.want)
			}
			if strings.Contains(answer.Message, "nul") || strings.Contains(answer.Message, "iiii") || strings.Contains(answer.Message, "msg_") {
				t.Errorf("the message repeats the id: %q", answer.Message)
			}
		})
	}
	if n := e.streamMsgs(t); n != 0 {
		t.Fatalf("%d deliveries with unusable ids were published", n)
	}
	if n := metricValue(t, e.reg, "idpsync_webhook_requests_total", "authpi-test", "bad_request"); n != 2 {
		t.Errorf("authpi-test bad_request = %v, want 2", n)
	}
	if logs := e.logs.String(); !strings.Contains(logs, `"reason":"invalid_event_id"`) || strings.Contains(logs, "iiiiiiii") {
		t.Errorf("the rejections are not logged with their reason, or the logs repeat the id (%d bytes of logs)", len(logs))
	}
}

// An id in a header is refused with a 400 naming it, from 257 bytes up to the header limit of the
// production server; beyond that limit net/http answers 431 itself, and the handler never runs.
func TestOversizedHeaderIDs(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	addr := e.serve(t, receiver.ServerConfig{})
	post := func(id string) (int, string) {
		body := userCreated("user_1")
		h, err := clerk.SignSvix(id, time.Now(), body, secret)
		if err != nil {
			t.Fatal(err)
		}
		req, _ := http.NewRequest(http.MethodPost, "http://"+addr+"/webhooks/clerk-test", bytes.NewReader(body))
		req.Header = h
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("id of %d bytes: %v", len(id), err)
		}
		defer resp.Body.Close()
		got, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(got)
	}
	for _, n := range []int{257, 4 << 10, config.MaxHeaderBytesDefault - 1024} {
		code, got := post(strings.Repeat("x", n))
		if code != http.StatusBadRequest || !strings.Contains(got, `"error":"bad_request"`) || !strings.Contains(got, "svix-id") {
			t.Errorf("id of %d bytes: %d %s", n, code, got)
		}
	}
	for _, n := range []int{config.MaxHeaderBytesDefault + 8<<10, 1 << 20} {
		if code, got := post(strings.Repeat("x", n)); code != http.StatusRequestHeaderFieldsTooLarge {
			t.Errorf("id of %d bytes: %d %s, want 431", n, code, got)
		}
	}
	if n := e.streamMsgs(t); n != 0 {
		t.Fatalf("%d messages published", n)
	}
}

// However long the request, its rejection is one short log line: a 900 KB path used to be logged
// whole.
func TestLogsAreBoundedWhateverTheRequest(t *testing.T) {
	t.Parallel()
	e := newEnv(t) // httptest's server: net/http's default 1 MB header limit, so the path gets through
	path := "/webhooks/" + strings.Repeat("a", 900<<10) + "%ff%fe%00"
	req, _ := http.NewRequest(http.MethodPost, e.srv.URL+path, strings.NewReader("{}"))
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Fatalf("status %d", resp.StatusCode)
	}
	logs := e.logs.String()
	marker := fmt.Sprintf("truncated, %d bytes", len("/webhooks/")+900<<10+3)
	if len(logs) > 2048 || !strings.Contains(logs, marker) || !utf8.ValidString(logs) {
		t.Fatalf("%d bytes of logs for one rejection:\n%.600s", len(logs), logs)
	}
}

// The IdP's type name becomes subject tokens; a huge one used to make a subject longer than the
// NATS server's control line, and the server closed the connection for good: every later delivery
// got 503 until a restart. Now it is stored under a bounded subject, and the connection stays up.
func TestHugeTypeNameKeepsTheConnection(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *receiver.Config) { c.MaxBodyBytes = 1 << 20 })
	body := fmt.Appendf(nil, `{"data":{"id":"user_1","object":"user"},"object":"event","type":"%s.created","timestamp":1716883200}`, strings.Repeat("x", 100<<10))
	if resp := e.post(t, "/webhooks/clerk-test", "msg_huge_type", body, nil, secret); resp.StatusCode != http.StatusAccepted {
		t.Fatalf("huge type: %d", resp.StatusCode)
	}
	if resp := e.post(t, "/webhooks/clerk-test", "msg_next", userCreated("user_2"), nil, secret); resp.StatusCode != http.StatusAccepted {
		t.Fatalf("the next delivery: %d (connection %s)", resp.StatusCode, e.bus.Conn().Status())
	}
	msg, err := e.stream.GetMsg(t.Context(), 1)
	if err != nil {
		t.Fatal(err)
	}
	if want := "idpsync.events.clerk-test." + strings.Repeat("x", 64) + ".created"; msg.Subject != want {
		t.Fatalf("subject %q", msg.Subject)
	}
}
