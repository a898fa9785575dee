package app_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/idpsync/idpsync/internal/events"
	"github.com/idpsync/idpsync/internal/fakeidp"
	"github.com/idpsync/idpsync/internal/handlers"
	"github.com/idpsync/idpsync/internal/provider/clerk/clerkfake"
	"github.com/idpsync/idpsync/internal/store"
)

// startClerk starts a Clerk fake with the given data set, closed when the test ends.
func startClerk(t testing.TB, opts clerkfake.Options) *clerkfake.Fake {
	t.Helper()
	f := clerkfake.New(opts)
	f.Start()
	t.Cleanup(f.Close)
	return f
}

// clerkSource is the YAML of a Clerk source with webhooks and the fake's API.
func clerkSource(f *clerkfake.Fake, extra string) string {
	return fmt.Sprintf(`{name: clerk-e2e, kind: clerk, webhook: {secrets: ["%s"]}, api: {secret_key: %q, base_url: %q}, resync: {periodic: false}%s}`,
		secret, f.SecretKey(), f.BaseURL(), extra)
}

// resync enqueues a resync job and returns its id.
func (s *stack) resync(entity events.Entity) int64 {
	s.t.Helper()
	res, err := s.worker.River().Insert(context.Background(), handlers.ResyncArgs{Source: "clerk-e2e", Entity: entity}, nil)
	if err != nil {
		s.t.Fatal(err)
	}
	return res.Job.ID
}

// run reads the resync run of job; zero until it started.
func (s *stack) run(jobID int64) store.ResyncRun {
	s.t.Helper()
	r, err := store.GetResyncRunByJob(context.Background(), s.pool, jobID)
	if err != nil && !isNotFound(err) {
		s.t.Fatal(err)
	}
	return r
}

func isNotFound(err error) bool { return errors.Is(err, store.ErrNotFound) }

// finished waits, up to 20 seconds, for the resync of job to end and returns its run.
func (s *stack) finished(jobID int64) store.ResyncRun {
	s.t.Helper()
	return s.finishedWithin(jobID, 20*time.Second)
}

func (s *stack) finishedWithin(jobID int64, d time.Duration) store.ResyncRun {
	s.t.Helper()
	deadline := time.Now().Add(d)
	for {
		r := s.run(jobID)
		if r.Status == store.RunSucceeded || r.Status == store.RunFailed {
			return r
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("resync job %d did not finish within %s: %+v", jobID, d, r)
		}
		time.Sleep(25 * time.Millisecond)
	}
}

// liveUsers maps the live mirror users of clerk-e2e to their first names.
func (s *stack) liveUsers() map[string]string {
	s.t.Helper()
	rows, err := s.pool.Query(context.Background(), `SELECT id, coalesce(first_name, '') FROM users WHERE source = 'clerk-e2e' AND deleted_at IS NULL`)
	if err != nil {
		s.t.Fatal(err)
	}
	defer rows.Close()
	out := map[string]string{}
	for rows.Next() {
		var id, name string
		if err := rows.Scan(&id, &name); err != nil {
			s.t.Fatal(err)
		}
		out[id] = name
	}
	return out
}

// seedMirror writes users into the mirror directly, as if earlier webhooks had.
func (s *stack) seedMirror(users ...*events.User) {
	s.t.Helper()
	for _, u := range users {
		if _, err := store.ApplyUser(context.Background(), s.pool, "clerk-e2e", u, store.ApplyOptions{}); err != nil {
			s.t.Fatal(err)
		}
	}
}

// A resync of 10,000 users through injected 429s and a worker killed mid-run converges to exactly
// the IdP's state, resumes from its checkpoint, and counts the drift it healed.
func TestResyncConvergesThroughRateLimitsAndACrash(t *testing.T) {
	t.Parallel()
	f := startClerk(t, clerkfake.Options{Seed: 7, Users: 10_000})
	s := startStack(t, withSources("["+clerkSource(f, "")+"]"),
		withWorker(`{admin_addr: "-", shutdown_timeout: 1s}`))

	// Drift: 30 users the mirror holds in an older state, 50 it holds but the IdP deleted.
	ids := f.UserIDs()
	var seeded []*events.User
	for _, id := range ids[:30] {
		u, _ := f.User(id)
		seeded = append(seeded, &events.User{ID: id, FirstName: "outdated", Version: u.UpdatedAt.UnixMilli() - 1000, Raw: json.RawMessage(`{}`)})
	}
	for i := range 50 {
		seeded = append(seeded, &events.User{ID: fmt.Sprintf("user_gone_%02d", i), FirstName: "gone", Version: 1, Raw: json.RawMessage(`{}`)})
	}
	s.seedMirror(seeded...)
	if _, err := s.pool.Exec(context.Background(), `UPDATE users SET synced_at = now() - interval '1 day'`); err != nil {
		t.Fatal(err)
	}

	f.FailEvery(5, fakeidp.Failure{Status: http.StatusTooManyRequests, RetryAfter: time.Second, PathPrefix: "/v1/users"})
	f.SetLatency(150 * time.Millisecond)
	job := s.resync(events.EntityUser)

	// Kill the worker once a few pages are written; a new one resumes.
	s.eventually("the first pages to be written", func() bool { return s.run(job).Seen >= 1500 })
	s.stopWorkerAndWait()
	crashed := s.run(job)
	if crashed.Seen >= int64(len(ids)) {
		t.Fatalf("the pass finished before the crash (seen %d); slow the fake down", crashed.Seen)
	}
	var cp struct{ Offset int }
	_ = json.Unmarshal(crashed.Checkpoint, &cp)
	crashedAt := time.Now()
	f.SetLatency(0)
	f.FailEvery(0, fakeidp.Failure{})
	f.FailNext(2, fakeidp.Failure{Status: http.StatusTooManyRequests, RetryAfter: time.Second, PathPrefix: "/v1/users"})
	s.startWorker()
	run := s.finishedWithin(job, 3*time.Minute) // a bound, not a measure: -race on a loaded machine is slow

	if run.Status != store.RunSucceeded || run.Resumed < 1 {
		t.Fatalf("run = %+v, want succeeded after resuming", run)
	}
	// The resumed attempt continued from the checkpoint instead of starting over.
	var resumedAt []int
	for _, r := range f.Requests() {
		// (The new worker's start-up check reads one user: limit=1.)
		if r.Path == "/v1/users" && r.At.After(crashedAt) && r.Status == http.StatusOK && r.Query.Get("limit") != "1" {
			off, _ := strconv.Atoi(r.Query.Get("offset"))
			resumedAt = append(resumedAt, off)
		}
	}
	if len(resumedAt) == 0 || resumedAt[0] != cp.Offset || cp.Offset == 0 {
		t.Fatalf("after the crash the listing restarted at offsets %v, want the checkpoint %d first", resumedAt[:min(3, len(resumedAt))], cp.Offset)
	}
	// 429s slowed the pass down without failing it.
	var limited int
	for _, r := range f.Requests() {
		if r.Status == http.StatusTooManyRequests {
			limited++
		}
	}
	if limited == 0 {
		t.Fatal("no 429 was injected")
	}

	// Exactly the IdP's users, with the IdP's names.
	live := s.liveUsers()
	if len(live) != len(ids) {
		t.Fatalf("mirror holds %d live users, the IdP %d", len(live), len(ids))
	}
	for _, id := range ids {
		u, _ := f.User(id)
		if live[id] != u.FirstName {
			t.Fatalf("user %s: mirror %q, IdP %q", id, live[id], u.FirstName)
		}
	}
	if run.Created != int64(len(ids)-30) || run.Updated != 30 || run.Deleted != 50 || run.Seen < int64(len(ids)) {
		t.Fatalf("drift = created %d updated %d deleted %d (seen %d); want %d, 30, 50", run.Created, run.Updated, run.Deleted, run.Seen, len(ids)-30)
	}
}

// A webhook newer than the resync's snapshot keeps its state, and a user created by a webhook
// while the pass runs is not swept away by it.
func TestResyncKeepsNewerWebhooks(t *testing.T) {
	t.Parallel()
	f := startClerk(t, clerkfake.Options{Seed: 8, Users: 1_200})
	s := startStack(t, withSources("["+clerkSource(f, "")+"]"))
	ids := f.UserIDs()
	last := ids[len(ids)-1]
	lastUser, _ := f.User(last)

	f.SetLatency(300 * time.Millisecond)
	job := s.resync(events.EntityUser)
	s.eventually("the pass to start", func() bool { return s.run(job).Seen > 0 })
	// While the pass runs: a newer update of a user it has not reached yet, and a new user.
	newer := clerkUser(last, "FromWebhook", lastUser.UpdatedAt.UnixMilli()+60_000, false)
	s.settled(s.send(clerkEvent("user.updated", time.Now().Unix(), newer)))
	s.settled(s.send(clerkEvent("user.created", time.Now().Unix(), clerkUser("user_brand_new", "New", time.Now().UnixMilli(), false))))
	f.SetLatency(0)
	run := s.finished(job)

	live := s.liveUsers()
	if live[last] != "FromWebhook" {
		t.Fatalf("the resync's older snapshot overwrote a newer webhook: %q", live[last])
	}
	if _, ok := live["user_brand_new"]; !ok {
		t.Fatal("a user created by a webhook during the pass was swept away")
	}
	if run.Status != store.RunSucceeded || run.Deleted != 0 {
		t.Fatalf("run = %+v", run)
	}
}

// A pass that fails part way (the IdP starts refusing the key) deletes nothing.
func TestResyncFailedPassDeletesNothing(t *testing.T) {
	t.Parallel()
	f := startClerk(t, clerkfake.Options{Seed: 9, Users: 1_500})
	s := startStack(t, withSources("["+clerkSource(f, "")+"]"))
	s.seedMirror(&events.User{ID: "user_not_at_the_idp", FirstName: "kept", Version: 1, Raw: json.RawMessage(`{}`)})
	if _, err := s.pool.Exec(context.Background(), `UPDATE users SET synced_at = now() - interval '1 day'`); err != nil {
		t.Fatal(err)
	}
	f.SetLatency(200 * time.Millisecond)
	job := s.resync(events.EntityUser)
	s.eventually("the first page", func() bool { return s.run(job).Seen >= 500 })
	f.FailEvery(1, fakeidp.Failure{Status: http.StatusForbidden, PathPrefix: "/v1/users"})
	run := s.finished(job)

	if run.Status != store.RunFailed || run.Deleted != 0 || run.Error == "" {
		t.Fatalf("run = %+v, want failed with nothing deleted", run)
	}
	if live := s.liveUsers(); live["user_not_at_the_idp"] != "kept" {
		t.Fatal("a failed pass tombstoned a row it did not see")
	}
	if slices.ContainsFunc(f.Requests(), func(r fakeidp.Request) bool { return r.Path == "/v1/users/user_not_at_the_idp" }) {
		t.Fatal("a failed pass went on to check unseen rows")
	}
}

func resyncArgs(source string, entity events.Entity) handlers.ResyncArgs {
	return handlers.ResyncArgs{Source: source, Entity: entity}
}
