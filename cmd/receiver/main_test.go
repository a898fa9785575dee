package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/idpsync/idpsync/internal/natsbus/natstest"
	"github.com/idpsync/idpsync/internal/provider/clerk"
)

const secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// records returns the logged records whose message is msg.
func (s *syncBuffer) records(msg string) []map[string]any {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []map[string]any
	for line := range strings.SplitSeq(s.b.String(), "\n") {
		var rec map[string]any
		if json.Unmarshal([]byte(line), &rec) == nil && rec["msg"] == msg {
			out = append(out, rec)
		}
	}
	return out
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(40 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 40s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// A receiver started while NATS is down starts all the same: it is not ready and tells the IdPs to
// retry (503 with Retry-After). When NATS comes it creates the stream and accepts deliveries; when
// NATS goes away and comes back, it recovers by itself, without a restart.
func TestReceiverStartsWhileNATSIsDown(t *testing.T) {
	t.Parallel()
	ns := natstest.NewStopped(t)
	path := filepath.Join(t.TempDir(), "idpsync.yaml")
	yaml := fmt.Sprintf("nats: {stream: RECEIVER_TEST, max_age: 1h}\nreceiver: {addr: \"127.0.0.1:0\", admin_addr: \"-\", retry_after: 3s}\nsources: [{name: clerk-a, kind: clerk, webhook: {secrets: [%q]}}]\n", secret)
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	getenv := func(k string) string { return map[string]string{"NATS_URL": ns.URL()}[k] }
	logs := &syncBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx, []string{"-config", path}, getenv, &bytes.Buffer{}, logs) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
	})

	var base string
	eventually(t, "the receiver to listen", func() bool {
		select {
		case err := <-done:
			done <- err // for the cleanup
			t.Fatalf("the receiver exited while NATS was down: %v", err)
		default:
		}
		if recs := logs.records("receiver listening"); len(recs) > 0 {
			base = "http://" + recs[0]["addr"].(string)
			return true
		}
		return false
	})
	get := func(path string) int {
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	deliver := func(id string) (int, string) {
		body := []byte(`{"data":{"id":"user_1","object":"user","updated_at":1716883200000},"object":"event","type":"user.created","timestamp":1716883200}`)
		h, _ := clerk.SignSvix(id, time.Now(), body, secret)
		req, _ := http.NewRequest(http.MethodPost, base+"/webhooks/clerk-a", bytes.NewReader(body))
		req.Header = h
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode, resp.Header.Get("Retry-After")
	}
	down := func(when string) {
		t.Helper()
		if code := get("/readyz"); code != http.StatusServiceUnavailable {
			t.Fatalf("%s: readyz %d", when, code)
		}
		if code, retry := deliver("msg_refused"); code != http.StatusServiceUnavailable || retry != "3" {
			t.Fatalf("%s: delivery answered %d, Retry-After %q", when, code, retry)
		}
		if code := get("/healthz"); code != http.StatusOK {
			t.Fatalf("%s: healthz %d", when, code)
		}
	}
	up := func(id string) {
		t.Helper()
		eventually(t, "readyz 200", func() bool { return get("/readyz") == http.StatusOK })
		if code, _ := deliver(id); code != http.StatusAccepted {
			t.Fatalf("delivery %s answered %d", id, code)
		}
	}

	down("at start")
	eventually(t, "two logged attempts", func() bool { return len(logs.records("cannot reach nats; retrying with backoff")) >= 2 })
	ns.Restart()
	up("msg_1")
	ns.Shutdown()
	eventually(t, "readyz 503 once NATS is gone", func() bool { return get("/readyz") == http.StatusServiceUnavailable })
	down("NATS gone")
	ns.Restart()
	up("msg_2")

	// Both deliveries are in the stream the receiver created, as configured.
	nc, err := nats.Connect(ns.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	st, err := js.Stream(context.Background(), "RECEIVER_TEST")
	if err != nil {
		t.Fatal(err)
	}
	info, _ := st.Info(context.Background())
	if info.State.Msgs != 2 || info.Config.MaxAge != time.Hour {
		t.Fatalf("stream holds %d messages, max age %s", info.State.Msgs, info.Config.MaxAge)
	}
	for i, rec := range logs.records("cannot reach nats; retrying with backoff") {
		if _, ok := rec["attempt"].(float64); !ok || rec["error"] == nil {
			t.Fatalf("attempt line %d: %v", i, rec)
		}
	}
}

// Help works without a configuration, on stdout, and exits 0; a stray argument says what to do.
func TestHelp(t *testing.T) {
	t.Parallel()
	noEnv := func(string) string { return "" }
	for _, args := range [][]string{{"-h"}, {"help"}, {"run", "-h"}, {"help", "run"}} {
		var out, errOut bytes.Buffer
		if err := run(context.Background(), args, noEnv, &out, &errOut); err != nil || !strings.Contains(out.String(), "usage: receiver") || errOut.Len() != 0 {
			t.Errorf("%v: %v, stdout %q, stderr %q", args, err, out.String(), errOut.String())
		}
	}
	err := run(context.Background(), []string{"serve"}, noEnv, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), `unknown command "serve"; the commands are run`) {
		t.Errorf("receiver serve: %v", err)
	}
	err = run(context.Background(), nil, noEnv, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "pass -config FILE or set IDPSYNC_CONFIG") {
		t.Errorf("receiver without a configuration: %v", err)
	}
}

// The default configuration starts against a stock nats-server (max_payload 1 MiB, as the test
// servers have it) and a delivery of the largest default size (1,000,000 bytes) gets its 202 and
// reaches the stream; one byte more gets 413.
func TestDefaultsFitAStockNATSServer(t *testing.T) {
	t.Parallel()
	ns := natstest.Start(t)
	nc, err := nats.Connect(ns.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	if nc.MaxPayload() != 1<<20 {
		t.Fatalf("the test server takes %d bytes, not a stock server's 1 MiB", nc.MaxPayload())
	}
	path := filepath.Join(t.TempDir(), "idpsync.yaml")
	yaml := fmt.Sprintf("receiver: {addr: \"127.0.0.1:0\", admin_addr: \"-\"}\nsources: [{name: clerk-a, kind: clerk, webhook: {secrets: [%q]}}]\n", secret)
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	getenv := func(k string) string { return map[string]string{"NATS_URL": ns.URL()}[k] }
	logs := &syncBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx, []string{"-config", path}, getenv, &bytes.Buffer{}, logs) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
	})
	var base string
	eventually(t, "the receiver to listen", func() bool {
		select {
		case err := <-done:
			done <- err
			t.Fatalf("the receiver refused to start with the default configuration: %v", err)
		default:
		}
		if recs := logs.records("receiver listening"); len(recs) > 0 {
			base = "http://" + recs[0]["addr"].(string)
			return true
		}
		return false
	})
	deliver := func(id string, size int) int {
		prefix := `{"data":{"id":"user_1","object":"user","updated_at":1716883200000,"first_name":"`
		suffix := `"},"object":"event","type":"user.created","timestamp":1716883200}`
		body := []byte(prefix + strings.Repeat("x", size-len(prefix)-len(suffix)) + suffix)
		h, _ := clerk.SignSvix(id, time.Now(), body, secret)
		req, _ := http.NewRequest(http.MethodPost, base+"/webhooks/clerk-a", bytes.NewReader(body))
		req.Header = h
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	eventually(t, "the largest delivery accepted", func() bool { return deliver("msg_largest", 1_000_000) == http.StatusAccepted })
	if code := deliver("msg_too_large", 1_000_001); code != http.StatusRequestEntityTooLarge {
		t.Errorf("a delivery over max_body_bytes: %d, want 413", code)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	st, err := js.Stream(ctx, "IDPSYNC_EVENTS")
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(ctx)
	if err != nil || info.State.Msgs != 1 {
		t.Fatalf("stream holds %v messages (%v), want the largest delivery", info.State.Msgs, err)
	}
}
