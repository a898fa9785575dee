package app_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"go.opentelemetry.io/otel/trace"

	"github.com/idpsync/idpsync/internal/app"
	"github.com/idpsync/idpsync/internal/config"
	"github.com/idpsync/idpsync/internal/events"
	"github.com/idpsync/idpsync/internal/handlers"
	"github.com/idpsync/idpsync/internal/intake"
	"github.com/idpsync/idpsync/internal/natsbus"
	"github.com/idpsync/idpsync/internal/natsbus/natstest"
	"github.com/idpsync/idpsync/internal/provider/clerk"
	"github.com/idpsync/idpsync/internal/store/storetest"
	"github.com/idpsync/idpsync/internal/worker"
)

const secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

// stack is the whole pipeline of one test: an in-process NATS, a schema of the real Postgres, the
// receiver and the worker wired exactly as cmd/receiver and cmd/worker wire them.
type stack struct {
	t      testing.TB
	cfg    *config.Config
	nats   *natstest.Server
	pool   *pgxpool.Pool
	bus    *natsbus.Bus
	url    string // the webhook endpoint of the source "clerk-e2e"
	seq    atomic.Int64
	logger *slog.Logger

	worker     *worker.Worker
	registry   *prometheus.Registry // the running worker's metrics
	stopWorker context.CancelFunc
	workerDone chan struct{}
	// tracing receives the spans of the receiver and the worker; nil: tracing off.
	tracing trace.TracerProvider
}

// stackOption adjusts a stack's configuration.
type stackOption func(*stackConfig)

type stackConfig struct {
	// sources is the YAML of the sources list.
	sources string
	// worker is the YAML of the worker section.
	worker string
	// noWorker leaves the worker to be started by the test.
	noWorker bool
	// admin is the YAML of the admin section.
	admin string
	// ssf is the YAML of the ssf section; empty for none.
	ssf string
	// tracing traces the receiver and the worker.
	tracing trace.TracerProvider
}

// withSources replaces the sources (by default: clerk-e2e, webhook only).
func withSources(yaml string) stackOption { return func(c *stackConfig) { c.sources = yaml } }

// withWorker replaces the worker section.
func withWorker(yaml string) stackOption { return func(c *stackConfig) { c.worker = yaml } }

// withAdmin sets the admin section.
func withAdmin(yaml string) stackOption { return func(c *stackConfig) { c.admin = yaml } }

// withSSF sets the ssf section.
func withSSF(yaml string) stackOption { return func(c *stackConfig) { c.ssf = yaml } }

// withTracing gives the receiver and the worker tp.
func withTracing(tp trace.TracerProvider) stackOption { return func(c *stackConfig) { c.tracing = tp } }

// withoutWorker starts no worker: the test calls startWorker when it wants one.
func withoutWorker() stackOption { return func(c *stackConfig) { c.noWorker = true } }

func startStack(t testing.TB, opts ...stackOption) *stack {
	t.Helper()
	sc := stackConfig{
		sources: fmt.Sprintf(`[{name: clerk-e2e, kind: clerk, webhook: {secrets: ["%s"]}}]`, secret),
		worker:  `{admin_addr: "-", ack_wait: 5s, reconcile_workers: 4}`,
	}
	for _, o := range opts {
		o(&sc)
	}
	s := &stack{t: t, nats: natstest.Start(t), logger: slog.New(slog.NewTextHandler(debugOut(), nil)), tracing: sc.tracing}
	var schema string
	s.pool, schema = storetest.NewSchema(t)
	yaml := fmt.Sprintf("database: {schema: %s}\nreceiver: {addr: \"127.0.0.1:0\", max_body_bytes: 8192, publish_timeout: 2s, retry_after: 3s}\nworker: %s\nsources: %s\n",
		schema, sc.worker, sc.sources)
	if sc.admin != "" {
		yaml += "admin: " + sc.admin + "\n"
	}
	if sc.ssf != "" {
		yaml += "ssf: " + sc.ssf + "\n"
	}
	var err error
	s.cfg, err = config.Parse([]byte(yaml), func(k string) string {
		return map[string]string{"NATS_URL": s.nats.URL(), "DATABASE_URL": storetest.DatabaseURL()}[k]
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s.bus, err = app.ConnectBus(ctx, s.cfg, "e2e", s.logger)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := app.NewReceiver(s.cfg, s.bus, s.logger, app.NewRegistry(), sc.tracing)
	if err != nil {
		t.Fatal(err)
	}
	s.url = "http://" + srv.Addr() + "/webhooks/clerk-e2e"
	served := make(chan struct{})
	go func() {
		defer close(served)
		if err := srv.Serve(ctx); err != nil {
			t.Errorf("receiver: %v", err)
		}
	}()
	if !sc.noWorker {
		s.startWorker()
	}
	t.Cleanup(func() {
		s.stopWorkerAndWait()
		cancel()
		<-served
		s.bus.Conn().Close()
	})
	return s
}

// startWorker starts a worker process, as a (re)started deployment would.
func (s *stack) startWorker() {
	s.t.Helper()
	reg := app.NewRegistry()
	w, err := worker.FromConfig(s.cfg, s.pool, s.bus, s.logger, reg, s.tracing)
	if err != nil {
		s.t.Fatal(err)
	}
	if err := w.Listen(); err != nil {
		s.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s.worker, s.registry, s.stopWorker, s.workerDone = w, reg, cancel, make(chan struct{})
	done := s.workerDone
	go func() {
		defer close(done)
		if err := w.Run(ctx); err != nil {
			s.t.Errorf("worker: %v", err)
		}
	}()
}

// stopWorkerAndWait stops the worker as SIGTERM would, and waits until it has stopped.
func (s *stack) stopWorkerAndWait() {
	if s.stopWorker == nil {
		return
	}
	s.stopWorker()
	<-s.workerDone
	s.stopWorker = nil
}

// deliver signs body as Clerk's Svix does and posts it under delivery id, returning the status.
func (s *stack) deliver(id string, body []byte) int {
	s.t.Helper()
	h, err := clerk.SignSvix(id, time.Now(), body, secret)
	if err != nil {
		s.t.Fatal(err)
	}
	req, _ := http.NewRequest(http.MethodPost, s.url, bytes.NewReader(body))
	req.Header = h
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// send delivers an event under a fresh delivery id and requires a 2xx.
func (s *stack) send(body []byte) string {
	s.t.Helper()
	id := fmt.Sprintf("msg_%d", s.seq.Add(1))
	if code := s.deliver(id, body); code != http.StatusAccepted {
		s.t.Fatalf("delivery %s: status %d", id, code)
	}
	return id
}

func clerkEvent(typ string, ts int64, data any) []byte {
	b, err := json.Marshal(map[string]any{"type": typ, "object": "event", "timestamp": ts, "instance_id": "ins_e2e", "data": data})
	if err != nil {
		panic(err)
	}
	return b
}

func clerkUser(id, first string, updatedAt int64, banned bool) map[string]any {
	return map[string]any{
		"object": "user", "id": id, "first_name": first, "last_name": "Lovelace", "banned": banned,
		"primary_email_address_id": "idn_1",
		"email_addresses":          []any{map[string]any{"id": "idn_1", "email_address": id + "@example.com"}},
		"created_at":               int64(1700000000000), "updated_at": updatedAt,
	}
}

func clerkOrg(id, name string, updatedAt int64) map[string]any {
	return map[string]any{"object": "organization", "id": id, "name": name, "slug": id, "created_at": int64(1700000000000), "updated_at": updatedAt}
}

func clerkMembership(orgID, userID, role string, updatedAt int64) map[string]any {
	return map[string]any{
		"object": "organization_membership", "id": "orgmem_" + orgID + userID, "role": role, "permissions": []string{},
		"organization": clerkOrg(orgID, "Org", 1700000000000), "public_user_data": map[string]any{"user_id": userID},
		"created_at": int64(1700000000000), "updated_at": updatedAt,
	}
}

// eventually polls cond until it holds or 20 seconds pass.
func (s *stack) eventually(what string, cond func() bool) {
	s.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			s.t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(25 * time.Millisecond)
	}
}

// eventStatus is the status of a delivery's event row, "" while not recorded.
func (s *stack) eventStatus(id string) string {
	var status string
	err := s.pool.QueryRow(context.Background(), `SELECT status FROM events WHERE source = 'clerk-e2e' AND event_id = $1`, id).Scan(&status)
	if err != nil && err != pgx.ErrNoRows {
		s.t.Fatal(err)
	}
	return status
}

// settled waits until the delivery's event was recorded and, if it had a job, applied.
func (s *stack) settled(id string) string {
	s.t.Helper()
	var status string
	s.eventually("event "+id+" to be processed", func() bool {
		status = s.eventStatus(id)
		return status != "" && status != "pending"
	})
	return status
}

func (s *stack) scalar(query string, args ...any) any {
	s.t.Helper()
	var v any
	if err := s.pool.QueryRow(context.Background(), query, args...).Scan(&v); err != nil {
		s.t.Fatalf("%s: %v", query, err)
	}
	return v
}

func TestEndToEndUsersOrganizationsMemberships(t *testing.T) {
	t.Parallel()
	s := startStack(t)

	// Users: created, updated (banned), deleted.
	s.settled(s.send(clerkEvent("user.created", 1700000001, clerkUser("user_a", "Ada", 1700000001000, false))))
	if got := s.scalar(`SELECT first_name || ' ' || primary_email FROM users WHERE id = 'user_a'`); got != "Ada user_a@example.com" {
		t.Fatalf("after create: %v", got)
	}
	s.settled(s.send(clerkEvent("user.updated", 1700000002, clerkUser("user_a", "Augusta", 1700000002000, true))))
	if got := s.scalar(`SELECT first_name || ' ' || banned::text FROM users WHERE id = 'user_a'`); got != "Augusta true" {
		t.Fatalf("after update: %v", got)
	}

	// Organizations and memberships.
	s.settled(s.send(clerkEvent("organization.created", 1700000003, clerkOrg("org_a", "Acme", 1700000003000))))
	s.settled(s.send(clerkEvent("organization.updated", 1700000004, clerkOrg("org_a", "Acme Inc", 1700000004000))))
	if got := s.scalar(`SELECT name FROM organizations WHERE id = 'org_a'`); got != "Acme Inc" {
		t.Fatalf("organization: %v", got)
	}
	s.settled(s.send(clerkEvent("organizationMembership.created", 1700000005, clerkMembership("org_a", "user_a", "org:member", 1700000005000))))
	s.settled(s.send(clerkEvent("organizationMembership.updated", 1700000006, clerkMembership("org_a", "user_a", "org:admin", 1700000006000))))
	if got := s.scalar(`SELECT role FROM memberships WHERE organization_id = 'org_a' AND user_id = 'user_a' AND deleted_at IS NULL`); got != "org:admin" {
		t.Fatalf("membership: %v", got)
	}
	s.settled(s.send(clerkEvent("organizationMembership.deleted", 1700000007, clerkMembership("org_a", "user_a", "org:admin", 1700000006000))))
	if got := s.scalar(`SELECT deleted_at IS NOT NULL FROM memberships WHERE organization_id = 'org_a' AND user_id = 'user_a'`); got != true {
		t.Fatal("membership not removed")
	}

	s.settled(s.send(clerkEvent("organization.deleted", 1700000008, map[string]any{"object": "organization", "id": "org_a", "deleted": true})))
	s.settled(s.send(clerkEvent("user.deleted", 1700000009, map[string]any{"object": "user", "id": "user_a", "deleted": true})))
	if got := s.scalar(`SELECT count(*) FROM users WHERE deleted_at IS NULL`); got != int64(0) {
		t.Fatalf("live users after delete: %v", got)
	}
	if got := s.scalar(`SELECT count(*) FROM organizations WHERE deleted_at IS NULL`); got != int64(0) {
		t.Fatalf("live organizations after delete: %v", got)
	}

	// Event types idpsync does not model are kept and acknowledged; sessions are recorded.
	if st := s.settled(s.send(clerkEvent("email.created", 1700000010, map[string]any{"id": "ema_1"}))); st != "ignored" {
		t.Fatalf("email.created: %s", st)
	}
	if st := s.settled(s.send(clerkEvent("session.created", 1700000011, map[string]any{"id": "sess_1", "user_id": "user_b", "status": "active"}))); st != "recorded" {
		t.Fatalf("session.created: %s", st)
	}
}

// The IdP delivers the same message twice (its retry crossed our answer): one event row, one
// effect (the mirror row written once), and no job left behind.
func TestEndToEndSameDeliveryTwice(t *testing.T) {
	t.Parallel()
	s := startStack(t)
	body := clerkEvent("user.created", 1700000001, clerkUser("user_d", "Dup", 1700000001000, false))
	for range 2 {
		if code := s.deliver("msg_twice", body); code != http.StatusAccepted {
			t.Fatalf("status %d", code)
		}
	}
	s.settled("msg_twice")
	written := s.scalar(`SELECT synced_at FROM users WHERE id = 'user_d'`)
	// A third delivery after the JetStream dedup window would reach the worker: the log absorbs it.
	// Publish it directly, bypassing the window with a different Nats-Msg-Id but the same event id.
	ev := &natsbus.Event{Source: "clerk-e2e", EventID: "msg_twice", Type: "user.created", ReceivedAt: time.Now(), Body: body}
	if _, err := s.bus.JetStream().PublishMsg(context.Background(), eventMsg(s, ev)); err != nil {
		t.Fatal(err)
	}
	s.eventually("the late copy to be consumed", func() bool { return s.consumerPending() == 0 })

	if n := s.scalar(`SELECT count(*) FROM events WHERE event_id = 'msg_twice'`); n != int64(1) {
		t.Fatalf("event rows: %v", n)
	}
	if again := s.scalar(`SELECT synced_at FROM users WHERE id = 'user_d'`); again != written {
		t.Fatalf("the late copy wrote the row again (synced_at %v, then %v)", written, again)
	}
	if n := s.scalar(`SELECT count(*) FROM river_job`); n != int64(0) {
		t.Fatalf("jobs: %v", n)
	}
}

func TestEndToEndOutOfOrder(t *testing.T) {
	t.Parallel()
	s := startStack(t)
	s.settled(s.send(clerkEvent("user.created", 1700000001, clerkUser("user_o", "First", 1700000001000, false))))
	s.settled(s.send(clerkEvent("user.updated", 1700000003, clerkUser("user_o", "Newest", 1700000003000, false))))

	// An older update arriving late changes nothing.
	if st := s.settled(s.send(clerkEvent("user.updated", 1700000002, clerkUser("user_o", "Older", 1700000002000, false)))); st != "stale" {
		t.Fatalf("older update: status %s", st)
	}
	if got := s.scalar(`SELECT first_name FROM users WHERE id = 'user_o'`); got != "Newest" {
		t.Fatalf("an older update overwrote a newer one: %v", got)
	}

	// After a delete, even a newer-looking update does not resurrect the user.
	s.settled(s.send(clerkEvent("user.deleted", 1700000004, map[string]any{"object": "user", "id": "user_o", "deleted": true})))
	if st := s.settled(s.send(clerkEvent("user.updated", 1700000005, clerkUser("user_o", "Zombie", 1700000005000, false)))); st != "stale" {
		t.Fatalf("update after delete: status %s", st)
	}
	if got := s.scalar(`SELECT first_name || ' ' || (deleted_at IS NOT NULL)::text FROM users WHERE id = 'user_o'`); got != "Newest true" {
		t.Fatalf("after update-after-delete: %v", got)
	}

	// A delete delivered before the create (never seen user) leaves a tombstone.
	s.settled(s.send(clerkEvent("user.deleted", 1700000007, map[string]any{"object": "user", "id": "user_p", "deleted": true})))
	s.settled(s.send(clerkEvent("user.created", 1700000006, clerkUser("user_p", "Late", 1700000006000, false))))
	if got := s.scalar(`SELECT (deleted_at IS NOT NULL)::text FROM users WHERE id = 'user_p'`); got != "true" {
		t.Fatal("a late create resurrected a deleted user")
	}
}

// A payload that verifies but cannot be parsed is kept as a dead letter and never blocks the stream.
func TestEndToEndDeadLetter(t *testing.T) {
	t.Parallel()
	s := startStack(t)
	bad := s.send([]byte(`{"type":"user.created","timestamp":1700000001,"data":{"first_name":"no id"}}`))
	good := s.send(clerkEvent("user.created", 1700000002, clerkUser("user_g", "Good", 1700000002000, false)))
	s.settled(good)
	s.eventually("the dead letter", func() bool {
		return s.scalar(`SELECT count(*) FROM dead_letters WHERE event_id = $1`, bad) == int64(1)
	})
	if reason := s.scalar(`SELECT reason FROM dead_letters WHERE event_id = $1`, bad).(string); !bytes.Contains([]byte(reason), []byte("clerk user: id: invalid id: empty")) {
		t.Fatalf("reason: %s", reason)
	}
	if s.eventStatus(bad) != "" {
		t.Fatal("the bad payload reached the event log")
	}
	s.eventually("the consumer to have nothing pending", func() bool { return s.consumerPending() == 0 })
}

// NATS goes away: the receiver answers 503 and the IdP's retry, once NATS is back, lands in the
// mirror.
func TestEndToEndNATSOutage(t *testing.T) {
	t.Parallel()
	s := startStack(t)
	body := clerkEvent("user.created", 1700000001, clerkUser("user_n", "Outage", 1700000001000, false))
	s.nats.Shutdown()
	if code := s.deliver("msg_outage", body); code != http.StatusServiceUnavailable {
		t.Fatalf("during the outage: %d", code)
	}
	s.nats.Restart()
	s.eventually("the receiver to be ready again", func() bool { return s.bus.Ready(context.Background()) == nil })
	if code := s.deliver("msg_outage", body); code != http.StatusAccepted {
		t.Fatalf("the retry: %d", code)
	}
	if st := s.settled("msg_outage"); st != "applied" {
		t.Fatalf("status %s", st)
	}
}

func TestEndToEndBodyOverLimit(t *testing.T) {
	t.Parallel()
	s := startStack(t)
	user := clerkUser("user_big", string(bytes.Repeat([]byte("x"), 9000)), 1700000001000, false)
	if code := s.deliver("msg_big", clerkEvent("user.created", 1700000001, user)); code != http.StatusRequestEntityTooLarge {
		t.Fatalf("status %d", code)
	}
	st, err := s.bus.JetStream().Stream(context.Background(), "IDPSYNC_EVENTS")
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(context.Background())
	if err != nil || info.State.Msgs != 0 {
		t.Fatalf("stream holds %d messages (%v)", info.State.Msgs, err)
	}
}

// The worker crashes after committing a batch but before acknowledging it: JetStream redelivers the
// messages, and recording them again changes nothing: no second row, no second write, no job, and
// no reaction (the revocation hook sees a change only once).
func TestRedeliveryAfterCommitEnqueuesNoSecondJob(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	nats := natstest.Start(t)
	bus := nats.Bus()
	pool, schema := storetest.NewSchema(t)
	inserter, err := river.NewClient(riverpgxv5.New(pool), &river.Config{Schema: schema})
	if err != nil {
		t.Fatal(err)
	}
	var reactions atomic.Int32
	mirror := handlers.NewMirror(func(context.Context, pgx.Tx, handlers.JobInserter, handlers.Change) error {
		reactions.Add(1)
		return nil
	})
	in, err := intake.New(intake.Config{Bus: bus, Consumer: natsbus.ConsumerConfig{Durable: "crash", AckWait: time.Second, MaxAckPending: 100},
		Pool: pool, Jobs: inserter, Mirror: mirror, BatchSize: 10, KindOf: func(string) (events.Kind, bool) { return clerk.Kind, true }})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		body := clerkEvent("user.created", 1700000001, clerkUser(fmt.Sprintf("user_%d", i), "R", 1700000001000, false))
		ev := &natsbus.Event{Source: "clerk-e2e", EventID: fmt.Sprintf("msg_%d", i), Type: "user.created",
			SourceType: "user.created", ReceivedAt: time.Now(), Body: body}
		if _, err := bus.Publish(ctx, ev); err != nil {
			t.Fatal(err)
		}
	}
	cons, err := bus.Consume(ctx, natsbus.ConsumerConfig{Durable: "crash", AckWait: time.Second, MaxAckPending: 100}, 10)
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Stop()
	first := fetch(t, cons, 3)
	if out, err := in.Record(ctx, first); err != nil || out[0] != intake.Recorded {
		t.Fatalf("first recording: %v %v", out, err)
	}
	// No ack: the "crash". After AckWait, JetStream delivers the same messages again.
	again := fetch(t, cons, 3)
	for _, d := range again {
		if d.NumDelivered < 2 {
			t.Fatalf("message %d delivered %d times, want a redelivery", d.StreamSeq, d.NumDelivered)
		}
	}
	var syncedBefore time.Time
	_ = pool.QueryRow(ctx, `SELECT max(synced_at) FROM users`).Scan(&syncedBefore)
	in.Process(ctx, again)
	var jobs, rows, applied, users int
	var syncedAfter time.Time
	_ = pool.QueryRow(ctx, `SELECT count(*) FROM river_job`).Scan(&jobs)
	_ = pool.QueryRow(ctx, `SELECT count(*), count(*) FILTER (WHERE status = 'applied') FROM events`).Scan(&rows, &applied)
	_ = pool.QueryRow(ctx, `SELECT count(*), max(synced_at) FROM users`).Scan(&users, &syncedAfter)
	if jobs != 0 || rows != 3 || applied != 3 || users != 3 || !syncedAfter.Equal(syncedBefore) || reactions.Load() != 3 {
		t.Fatalf("after the redelivery: %d jobs, %d event rows (%d applied), %d users (synced %v then %v), %d reactions; want 0, 3 (3), 3 (unchanged), 3",
			jobs, rows, applied, users, syncedBefore, syncedAfter, reactions.Load())
	}
}

func fetch(t *testing.T, cons *natsbus.Consumer, n int) []*natsbus.Delivery {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var got []*natsbus.Delivery
	for len(got) < n {
		batch, err := cons.NextBatch(ctx, n-len(got), 50*time.Millisecond)
		if err != nil {
			t.Fatalf("fetching: %v (have %d of %d)", err, len(got), n)
		}
		got = append(got, batch...)
	}
	return got
}

func (s *stack) consumerPending() uint64 {
	s.t.Helper()
	c, err := s.bus.JetStream().Consumer(context.Background(), "IDPSYNC_EVENTS", s.cfg.Worker.Consumer)
	if errors.Is(err, jetstream.ErrConsumerNotFound) {
		return 1 // the worker has not created it yet
	}
	if err != nil {
		s.t.Fatal(err)
	}
	info, err := c.Info(context.Background())
	if err != nil {
		s.t.Fatal(err)
	}
	// NumPending trails the stream by a moment after a publish; the stream's last sequence does
	// not (a publish is acknowledged once stored): what the consumer has not acknowledged up to it
	// is pending too.
	st, err := s.bus.JetStream().Stream(context.Background(), "IDPSYNC_EVENTS")
	if err != nil {
		s.t.Fatal(err)
	}
	sinfo, err := st.Info(context.Background())
	if err != nil {
		s.t.Fatal(err)
	}
	behind := uint64(0)
	if last := sinfo.State.LastSeq; info.AckFloor.Stream < last {
		behind = last - info.AckFloor.Stream
	}
	return max(info.NumPending+uint64(info.NumAckPending), behind)
}

// eventMsg is ev as the receiver would publish it, but with a Nats-Msg-Id of its own, as if it
// arrived after the JetStream deduplication window.
func eventMsg(s *stack, ev *natsbus.Event) *nats.Msg {
	m := nats.NewMsg(s.bus.Subject(ev.Source, ev.Type, ev.SourceType))
	m.Data = ev.Body
	m.Header.Set(natsbus.HeaderSource, ev.Source)
	m.Header.Set(natsbus.HeaderEventID, ev.EventID)
	m.Header.Set(natsbus.HeaderType, string(ev.Type))
	m.Header.Set("Nats-Msg-Id", "late-copy")
	return m
}

// A worker started while NATS is down waits for it instead of exiting, and records what arrives
// once NATS is back.
func TestEndToEndWorkerStartsDuringNATSOutage(t *testing.T) {
	t.Parallel()
	s := startStack(t)
	s.stopWorkerAndWait()
	s.nats.Shutdown()
	s.startWorker()
	time.Sleep(6 * time.Second) // longer than JetStream's 5s request timeout: the first attempts fail
	select {
	case <-s.workerDone:
		t.Fatal("the worker exited because NATS was down when it started")
	default:
	}
	s.nats.Restart()
	s.eventually("the receiver to be ready again", func() bool { return s.bus.Ready(context.Background()) == nil })
	if st := s.settled(s.send(clerkEvent("user.created", 1700000001, clerkUser("user_late", "Late", 1700000001000, false)))); st != "applied" {
		t.Fatalf("status %s", st)
	}
}

// River UI is served only behind the admin credentials, on an admin address that defaults to
// loopback, and refuses cross-site state changes: a foreign page cannot pause the revoke queue.
func TestRiverUIIsProtected(t *testing.T) {
	t.Parallel()
	s := startStack(t, withWorker(`{admin_addr: "127.0.0.1:0", river_ui: true, ack_wait: 5s}`), withAdmin(`{username: ops, password: s3cret}`))
	base := "http://" + s.worker.AdminAddr()
	do := func(method, path string, auth bool, headers map[string]string) int {
		t.Helper()
		req, _ := http.NewRequest(method, base+path, strings.NewReader(`{}`))
		if auth {
			req.SetBasicAuth("ops", "s3cret")
		}
		for k, v := range headers {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if got := do("GET", "/riverui/api/queues", false, nil); got != http.StatusUnauthorized {
		t.Fatalf("River UI without credentials: %d", got)
	}
	if got := do("GET", "/riverui/api/queues", true, nil); got != http.StatusOK {
		t.Fatalf("River UI with credentials: %d", got)
	}
	crossSite := map[string]string{"Sec-Fetch-Site": "cross-site", "Content-Type": "text/plain", "Origin": "https://evil.example"}
	if got := do("PUT", "/riverui/api/queues/revoke/pause", true, crossSite); got != http.StatusForbidden {
		t.Fatalf("cross-site pause of the revoke queue: %d", got)
	}
	if paused := s.scalar(`SELECT paused_at IS NOT NULL FROM river_queue WHERE name = 'revoke'`); paused != false {
		t.Fatal("the revoke queue was paused cross-site")
	}
	if got := do("GET", "/metrics", false, nil); got != http.StatusOK {
		t.Fatalf("/metrics: %d", got)
	}
}

// debugOut is where the stacks log: nowhere, or stderr with STACK_LOG=1 (to read a failing test's
// pipeline).
func debugOut() io.Writer {
	if os.Getenv("STACK_LOG") != "" {
		return os.Stderr
	}
	return io.Discard
}
