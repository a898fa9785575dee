package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/idpsync/idpsync/internal/app"
	"github.com/idpsync/idpsync/internal/config"
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
	w, err := worker.FromConfig(cfg, pool, bus, logger, app.NewRegistry())
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
		{[]string{"-config", path, "frobnicate"}, `unknown command "frobnicate"`},
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
