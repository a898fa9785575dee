package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/idpsync/idpsync/internal/app"
	"github.com/idpsync/idpsync/internal/config"
	"github.com/idpsync/idpsync/internal/events"
	"github.com/idpsync/idpsync/internal/natsbus"
	"github.com/idpsync/idpsync/internal/natsbus/natstest"
	"github.com/idpsync/idpsync/internal/provider/clerk/clerkfake"
	"github.com/idpsync/idpsync/internal/store/storetest"
	"github.com/idpsync/idpsync/internal/worker"
)

// setup writes a configuration for a fresh schema and returns its path and getenv.
func setup(t *testing.T, sources string) (string, func(string) string, *config.Config) {
	t.Helper()
	_, schema := storetest.NewSchema(t)
	ns := natstest.Start(t)
	path := filepath.Join(t.TempDir(), "idpsync.yaml")
	yaml := fmt.Sprintf("database: {schema: %s}\nworker: {admin_addr: \"-\"}\nsources: %s\n", schema, sources)
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	getenv := func(k string) string {
		return map[string]string{"DATABASE_URL": storetest.DatabaseURL(), "NATS_URL": ns.URL(), "LOG_LEVEL": "error"}[k]
	}
	cfg, err := config.Load(path, getenv)
	if err != nil {
		t.Fatal(err)
	}
	return path, getenv, cfg
}

func runCmd(t *testing.T, getenv func(string) string, args ...string) (string, error) {
	t.Helper()
	var out bytes.Buffer
	err := run(context.Background(), args, getenv, &out, io.Discard)
	return out.String(), err
}

func TestMigrateIsANoOpTheSecondTime(t *testing.T) {
	t.Parallel()
	path, getenv, cfg := setup(t, `[{name: c, kind: clerk, webhook: {secrets: ["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"]}}]`)
	out, err := runCmd(t, getenv, "-config", path, "migrate")
	if err != nil || out != fmt.Sprintf("schema %s is up to date\n", cfg.Database.Schema) {
		t.Fatalf("migrate on a migrated schema: %q, %v", out, err)
	}
}

// `worker resync -wait` enqueues the resync, follows the running worker's progress and reports the
// drift it healed.
func TestResyncWaits(t *testing.T) {
	t.Parallel()
	f := clerkfake.New(clerkfake.Options{Seed: 3, Users: 120})
	f.Start()
	t.Cleanup(f.Close)
	sources := fmt.Sprintf(`[{name: c, kind: clerk, api: {secret_key: %q, base_url: %q}, resync: {periodic: false}}]`, f.SecretKey(), f.BaseURL())
	path, getenv, cfg := setup(t, sources)

	// A worker, as deployed next to the command.
	ctx, cancel := context.WithCancel(context.Background())
	logger := slog.New(slog.DiscardHandler)
	pool, err := worker.OpenDatabase(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	bus, err := app.ConnectBus(ctx, cfg, "test", logger)
	if err != nil {
		t.Fatal(err)
	}
	w, err := worker.FromConfig(cfg, pool, bus, logger, app.NewRegistry(), nil)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { defer close(done); _ = w.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done; bus.Conn().Close(); pool.Close() })

	waitCtx, stop := context.WithTimeout(context.Background(), 30*time.Second)
	defer stop()
	var out bytes.Buffer
	if err := run(waitCtx, []string{"-config", path, "resync", "-source", "c", "-entity", "users", "-wait"}, getenv, &out, io.Discard); err != nil {
		t.Fatalf("resync -wait: %v\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), "c users: succeeded") || !strings.Contains(out.String(), "120 seen, 120 created, 0 updated, 0 deleted") {
		t.Fatalf("output:\n%s", out.String())
	}
}

func TestCommandErrorsSayWhatToDo(t *testing.T) {
	t.Parallel()
	path, getenv, _ := setup(t, `[{name: c, kind: clerk, webhook: {secrets: ["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"]}}]`)
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"migrate"}, "pass -config FILE or set IDPSYNC_CONFIG"},
		{[]string{"-config", path, "frobnicate"}, `unknown command "frobnicate"; the commands are run, migrate`},
		{[]string{"resync", "stray", "-config", path}, `resync takes no argument "stray"`},
		{[]string{"-config", path, "resync", "-nope"}, "flag provided but not defined: -nope; run 'worker help resync'"},
		{[]string{"-config", path, "resync", "-source", "nope"}, `no source named "nope"`},
		{[]string{"-config", path, "resync", "-source", "c"}, "has no api credentials"},
		{[]string{"-config", path, "replay", "-from", "somewhere"}, `-from "somewhere": use log, stream or dead-letters`},
		{[]string{"-config", path, "replay", "-since", "yesterday"}, "neither an RFC 3339 time nor a duration"},
	}
	for _, c := range cases {
		_, err := runCmd(t, getenv, c.args...)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: err = %v, want %q", c.args, err, c.want)
		}
	}
	out, err := runCmd(t, getenv, "-config", path, "replay", "-dry-run")
	if err != nil || out != "0 events match; nothing was changed (-dry-run)\n" {
		t.Errorf("replay -dry-run: %q %v", out, err)
	}
}

// Help works anywhere, without a configuration, on stdout, and exits 0 (run returns nil).
func TestHelpAnywhere(t *testing.T) {
	t.Parallel()
	noEnv := func(string) string { return "" }
	for _, args := range [][]string{
		{"-h"}, {"-help"}, {"help"}, {"help", "resync"}, {"resync", "-h"}, {"replay", "-h"}, {"migrate", "-h"},
		{"migrate", "help"}, {"-config", "/nonexistent.yaml", "resync", "-source", "x", "-h"}, {"resync", "--help"},
	} {
		var out, errOut bytes.Buffer
		if err := run(context.Background(), args, noEnv, &out, &errOut); err != nil {
			t.Errorf("%v: %v", args, err)
			continue
		}
		if !strings.Contains(out.String(), "usage: worker") || errOut.Len() != 0 {
			t.Errorf("%v: stdout %q, stderr %q", args, out.String(), errOut.String())
		}
		if args[0] == "resync" || slices.Contains(args, "resync") {
			if !strings.Contains(out.String(), "-source") || !strings.Contains(out.String(), "-config") {
				t.Errorf("%v: the command's help lacks its flags:\n%s", args, out.String())
			}
		}
	}
}

// The common flags go before or after the command.
func TestFlagsBeforeOrAfterTheCommand(t *testing.T) {
	t.Parallel()
	path, getenv, cfg := setup(t, `[{name: c, kind: clerk, webhook: {secrets: ["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"]}}]`)
	want := fmt.Sprintf("schema %s is up to date\n", cfg.Database.Schema)
	for _, args := range [][]string{
		{"-config", path, "migrate"}, {"migrate", "-config", path}, {"-log-level", "warn", "migrate", "-config", path},
	} {
		if out, err := runCmd(t, getenv, args...); err != nil || out != want {
			t.Errorf("%v: %q %v", args, out, err)
		}
	}
}

// migrate reads only the database section: a configuration without sources, or with a source
// whose secrets are unset, migrates all the same, and the worker itself still refuses it.
func TestMigrateNeedsOnlyTheDatabase(t *testing.T) {
	t.Parallel()
	_, schema := storetest.NewSchema(t)
	path := filepath.Join(t.TempDir(), "idpsync.yaml")
	yaml := fmt.Sprintf("database: {schema: %s}\nsources: [{name: c, kind: clerk, webhook: {secrets: [\"${UNSET_SECRET}\"]}}]\n", schema)
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	getenv := func(k string) string { return map[string]string{"DATABASE_URL": storetest.DatabaseURL()}[k] }
	if out, err := runCmd(t, getenv, "migrate", "-config", path); err != nil || !strings.Contains(out, "is up to date") {
		t.Fatalf("migrate: %q %v", out, err)
	}
	if _, err := runCmd(t, getenv, "run", "-config", path); err == nil || !strings.Contains(err.Error(), "UNSET_SECRET") {
		t.Fatalf("run with an unset secret: %v", err)
	}
}

// migrate creates a missing database, and says so.
func TestMigrateCreatesTheDatabase(t *testing.T) {
	t.Parallel()
	name := fmt.Sprintf("idpsync_migrate_%d", time.Now().UnixNano())
	u, err := url.Parse(storetest.DatabaseURL())
	if err != nil {
		t.Fatal(err)
	}
	u.Path = "/" + name
	admin, _ := storetest.NewSchema(t)
	t.Cleanup(func() {
		_, _ = admin.Exec(context.Background(), "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
	})
	path := filepath.Join(t.TempDir(), "idpsync.yaml")
	if err := os.WriteFile(path, []byte("database: {schema: idpsync}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	getenv := func(k string) string { return map[string]string{"DATABASE_URL": u.String()}[k] }
	out, err := runCmd(t, getenv, "migrate", "-config", path)
	if err != nil || !strings.HasPrefix(out, "created database "+name+"\n") || !strings.Contains(out, "applied idpsync") {
		t.Fatalf("migrate: %q %v", out, err)
	}
	if out, err := runCmd(t, getenv, "migrate", "-config", path); err != nil || out != "schema idpsync is up to date\n" {
		t.Fatalf("second migrate: %q %v", out, err)
	}
}

// A worker started while NATS is down starts all the same: not ready, its intake waiting. When NATS
// comes it records what arrives; when NATS goes away and comes back, even as a server that lost
// the stream and the consumer, it recovers by itself, without a restart.
func TestWorkerStartsWhileNATSIsDown(t *testing.T) {
	t.Parallel()
	pool, schema := storetest.NewSchema(t)
	ns := natstest.NewStopped(t)
	path := filepath.Join(t.TempDir(), "idpsync.yaml")
	yaml := fmt.Sprintf("database: {schema: %s}\nworker: {admin_addr: \"127.0.0.1:0\", ack_wait: 5s}\nsources: [{name: c, kind: clerk, webhook: {secrets: [\"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\"]}}]\n", schema)
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	getenv := func(k string) string {
		return map[string]string{"DATABASE_URL": storetest.DatabaseURL(), "NATS_URL": ns.URL()}[k]
	}
	cfg, err := config.Load(path, getenv)
	if err != nil {
		t.Fatal(err)
	}
	logs := &syncBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx, []string{"-config", path}, getenv, io.Discard, logs) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
	})

	var admin string
	eventually(t, "the worker to start", func() bool {
		select {
		case err := <-done:
			done <- err // for the cleanup
			t.Fatalf("the worker exited while NATS was down: %v", err)
		default:
		}
		if recs := logs.records("worker started"); len(recs) > 0 {
			admin = "http://" + recs[0]["admin_addr"].(string)
			return true
		}
		return false
	})
	readyz := func() int {
		resp, err := http.Get(admin + "/readyz")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	// A publisher, as a receiver would be.
	nc, err := natsbus.Connect(ns.URL(), "", "publisher", slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	pub, err := natsbus.New(nc, app.StreamConfig(cfg), 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	recorded := func(id string) {
		t.Helper()
		body := fmt.Appendf(nil, `{"data":{"id":"user_%s","object":"user","updated_at":1716883200000},"object":"event","type":"user.created","timestamp":1716883200}`, id)
		eventually(t, "the publish of "+id, func() bool {
			_, err := pub.Publish(ctx, &natsbus.Event{Source: "c", EventID: id, Type: events.UserCreated, SourceType: "user.created", Body: body})
			return err == nil
		})
		eventually(t, id+" in the event log", func() bool {
			var n int
			err := pool.QueryRow(ctx, `SELECT count(*) FROM events WHERE source = 'c' AND event_id = $1`, id).Scan(&n)
			return err == nil && n == 1
		})
	}

	if code := readyz(); code != http.StatusServiceUnavailable {
		t.Fatalf("readyz while NATS is down: %d", code)
	}
	eventually(t, "two logged attempts", func() bool { return len(logs.records("cannot reach nats; retrying with backoff")) >= 2 })
	ns.Restart()
	eventually(t, "readyz 200", func() bool { return readyz() == http.StatusOK })
	if err := pub.EnsureStream(ctx); err != nil { // the publisher's own stream check
		t.Fatal(err)
	}
	recorded("msg_1")

	ns.Shutdown()
	eventually(t, "readyz 503 once NATS is gone", func() bool { return readyz() == http.StatusServiceUnavailable })
	ns.Restart()
	eventually(t, "readyz 200 again", func() bool { return readyz() == http.StatusOK })
	recorded("msg_2")

	ns.Shutdown()
	eventually(t, "readyz 503 once NATS is gone", func() bool { return readyz() == http.StatusServiceUnavailable })
	ns.RestartEmpty()
	eventually(t, "readyz 200 with a new server", func() bool { return readyz() == http.StatusOK })
	recorded("msg_3") // the worker created the stream and its consumer again
}

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
