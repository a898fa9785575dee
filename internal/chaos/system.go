package chaos

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Names the suite's deployment uses; the stream and the consumer are the configuration's defaults.
const (
	// SourceName is the configured Clerk source; deliveries go to /webhooks/clerk-chaos.
	SourceName = "clerk-chaos"
	// Schema is the database schema (the configuration's default).
	Schema = "idpsync"
	// StreamName is the JetStream stream (the configuration's default).
	StreamName = "IDPSYNC_EVENTS"
	// ConsumerName is the workers' durable consumer (the configuration's default).
	ConsumerName = "idpsync-worker"
)

// System is one deployment under test, configured as the README's Configuration describes: a
// database of the private Postgres, a NATS of one or three nodes, the receiver and the worker,
// each a process of the binaries built from this module.
type System struct {
	// Dir holds the configuration, the NATS stores and every process's output.
	Dir      string
	Bin      Binaries
	Postgres *Postgres
	// Database is the run's database in Postgres.
	Database string
	NATS     *NATS
	// Config is the path of the YAML configuration both programs read.
	Config   string
	Receiver *Process
	Worker   *Process
	// Secret is the source's webhook signing secret (whsec_…), passed to the programs as
	// CLERK_WEBHOOK_SECRET.
	Secret string

	receiverAddr string
	workerAdmin  string
}

// NewSystem prepares a deployment in dir over pg (database db, which must exist) and nats, writes
// its configuration and migrates the database with `worker migrate`. Nothing runs yet except
// what pg and nats run.
func NewSystem(ctx context.Context, dir string, bin Binaries, pg *Postgres, db string, nats *NATS) (*System, error) {
	s := &System{Dir: dir, Bin: bin, Postgres: pg, Database: db, NATS: nats, Config: filepath.Join(dir, "idpsync.yaml")}
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	s.Secret = "whsec_" + base64.StdEncoding.EncodeToString(key)
	rport, err := freePort()
	if err != nil {
		return nil, err
	}
	wport, err := freePort()
	if err != nil {
		return nil, err
	}
	s.receiverAddr = fmt.Sprintf("127.0.0.1:%d", rport)
	s.workerAdmin = fmt.Sprintf("127.0.0.1:%d", wport)
	config := fmt.Sprintf(`# idpsync configuration of one chaos run (README, Configuration).
database:
  url: %q
  max_conns: 10
nats:
  url: %q
  replicas: %d
receiver:
  addr: %q
  admin_addr: "-"
  retry_after: 1s
  shutdown_timeout: 5s
worker:
  admin_addr: %q
  shutdown_timeout: 5s
sources:
  - name: %s
    kind: clerk
    webhook:
      secrets: ["${CLERK_WEBHOOK_SECRET}"]
`, pg.URL(db), nats.URL(), nats.Nodes(), s.receiverAddr, s.workerAdmin, SourceName)
	if err := os.WriteFile(s.Config, []byte(config), 0o600); err != nil {
		return nil, err
	}
	// NATS_URL repeats nats.url, as an operator of a cluster would set it; the harness's own
	// environment must not leak DATABASE_URL or IDPSYNC_CONFIG into the programs.
	env := []string{"CLERK_WEBHOOK_SECRET=" + s.Secret, "LOG_LEVEL=info", "IDPSYNC_CONFIG=", "DATABASE_URL=", "NATS_URL=" + nats.URL()}
	migrate := NewProcess("migrate", bin.Worker, []string{"-config", s.Config, "migrate"}, env, dir, nil)
	if err := migrate.Start(); err != nil {
		return nil, err
	}
	if err := migrate.Wait(ctx); err != nil {
		return nil, fmt.Errorf("worker migrate: %w\n%s", err, migrate.Tail(20))
	}
	s.Receiver = NewProcess("receiver", bin.Receiver, []string{"-config", s.Config}, env, dir, nil)
	s.Worker = NewProcess("worker", bin.Worker, []string{"-config", s.Config}, env, dir, nil)
	return s, nil
}

// WebhookURL is the source's webhook endpoint at the receiver.
func (s *System) WebhookURL() string {
	return "http://" + s.receiverAddr + "/webhooks/" + SourceName
}

// DatabaseURL is the run's database.
func (s *System) DatabaseURL() string { return s.Postgres.URL(s.Database) }

// StartReceiver starts the receiver; with ready, it waits until its /readyz answers 200.
func (s *System) StartReceiver(ctx context.Context, ready bool) error {
	if err := s.Receiver.Start(); err != nil {
		return err
	}
	if !ready {
		return nil
	}
	return waitReady(ctx, s.Receiver, "http://"+s.receiverAddr+"/readyz")
}

// StartWorker starts the worker; with ready, it waits until its admin /readyz answers 200.
func (s *System) StartWorker(ctx context.Context, ready bool) error {
	if err := s.Worker.Start(); err != nil {
		return err
	}
	if !ready {
		return nil
	}
	return waitReady(ctx, s.Worker, "http://"+s.workerAdmin+"/readyz")
}

func waitReady(ctx context.Context, p *Process, url string) error {
	deadline := time.Now().Add(30 * time.Second)
	client := &http.Client{Timeout: 3 * time.Second}
	var last string
	for {
		resp, err := client.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			last = resp.Status
		} else {
			last = err.Error()
		}
		select {
		case <-p.Exited():
			return fmt.Errorf("%s exited before it was ready\n%s", p.Name, p.Tail(20))
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s is not ready after 30s: %s", p.Name, last)
		}
	}
}

// Processes are the long-running processes of the deployment, Postgres included.
func (s *System) Processes() []*Process {
	ps := []*Process{s.Receiver, s.Worker}
	for i := range s.NATS.Nodes() {
		ps = append(ps, s.NATS.Process(i))
	}
	return append(ps, s.Postgres.Process())
}

// Close stops the receiver and the worker (SIGTERM, then SIGKILL after 15 seconds) and kills the
// NATS nodes. It reports programs that did not stop on SIGTERM.
func (s *System) Close() error {
	var errs []error
	for _, p := range []*Process{s.Receiver, s.Worker} {
		if p != nil && !p.Stop(15*time.Second) {
			errs = append(errs, fmt.Errorf("%s did not stop within 15s of SIGTERM", p.Name))
		}
	}
	s.NATS.Close()
	return errors.Join(errs...)
}

// describe is a one-line description of the deployment for reports.
func (s *System) describe() string {
	return fmt.Sprintf("dir %s; receiver %s; worker admin %s; nats %s; postgres %s",
		s.Dir, s.receiverAddr, s.workerAdmin, strings.ReplaceAll(s.NATS.URL(), "nats://", ""), s.DatabaseURL())
}
