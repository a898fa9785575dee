package natsbus_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/idpsync/idpsync/internal/events"
	"github.com/idpsync/idpsync/internal/natsbus"
	"github.com/idpsync/idpsync/internal/natsbus/natstest"
)

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// lines returns the logged records whose message is msg.
func (s *syncBuffer) lines(t *testing.T, msg string) []map[string]any {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []map[string]any
	for line := range strings.SplitSeq(strings.TrimSpace(s.b.String()), "\n") {
		if line == "" {
			continue
		}
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		if rec["msg"] == msg {
			out = append(out, rec)
		}
	}
	return out
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 30s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// A bus started while NATS is down is not ready and refuses publishes at once; it keeps trying
// with backoff, logging each attempt once, creates the stream when NATS comes, and after NATS goes
// away and comes back (even as a server that lost the stream) it is ready again by itself.
func TestBusWaitsForNATSAndKeepsItsStream(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	ns := natstest.NewStopped(t)
	logs := &syncBuffer{}
	logger := slog.New(slog.NewJSONHandler(logs, nil))
	nc, err := natsbus.Connect(ns.URL(), "", t.Name(), logger)
	if err != nil {
		t.Fatalf("connecting while NATS is down: %v", err)
	}
	t.Cleanup(nc.Close)
	bus, err := natsbus.New(nc, natstest.StreamConfig, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	go bus.KeepStream(ctx, logger)
	publish := func(id string) error {
		_, err := bus.Publish(ctx, &natsbus.Event{Source: "s1", EventID: id, Type: events.UserCreated, Body: []byte(`{}`)})
		return err
	}
	notReady := func() {
		t.Helper()
		if err := bus.Ready(ctx); !errors.Is(err, natsbus.ErrUnavailable) {
			t.Fatalf("Ready = %v, want ErrUnavailable", err)
		}
		start := time.Now()
		if err := publish("refused"); !errors.Is(err, natsbus.ErrUnavailable) || time.Since(start) > time.Second {
			t.Fatalf("Publish = %v after %v, want ErrUnavailable at once", err, time.Since(start))
		}
	}
	ready := func() {
		t.Helper()
		wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		if err := bus.WaitReady(wctx); err != nil {
			t.Fatalf("WaitReady: %v", err)
		}
		if err := bus.Ready(ctx); err != nil {
			t.Fatalf("Ready: %v", err)
		}
	}

	notReady()
	eventually(t, "three logged attempts", func() bool { return len(logs.lines(t, "cannot reach nats; retrying with backoff")) >= 3 })
	ns.Restart()
	ready()
	if err := publish("e1"); err != nil {
		t.Fatal(err)
	}
	attempts := logs.lines(t, "cannot reach nats; retrying with backoff")
	for i, rec := range attempts {
		if rec["attempt"] != float64(i+1) {
			t.Fatalf("attempt line %d says attempt %v", i+1, rec["attempt"])
		}
	}
	// Backoff: 1s, 2s, 4s … between attempts, so at most a handful of lines for these seconds.
	if len(attempts) > 6 {
		t.Errorf("%d attempt lines in a short outage", len(attempts))
	}

	ns.Shutdown()
	eventually(t, "not ready after NATS went away", func() bool { return bus.Ready(ctx) != nil })
	notReady()
	ns.Restart()
	ready()
	if err := publish("e2"); err != nil {
		t.Fatal(err)
	}

	// A server that comes back without the stream gets it again.
	ns.Shutdown()
	eventually(t, "not ready after NATS went away", func() bool { return bus.Ready(ctx) != nil })
	ns.RestartEmpty()
	ready()
	if err := publish("e3"); err != nil {
		t.Fatal(err)
	}
	st, err := bus.JetStream().Stream(ctx, natstest.StreamConfig.Name)
	if err != nil {
		t.Fatal(err)
	}
	if info, _ := st.Info(ctx); info.State.Msgs != 1 {
		t.Fatalf("the new server's stream holds %d messages, want 1", info.State.Msgs)
	}
}
