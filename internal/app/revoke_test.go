package app_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/idpsync/idpsync/internal/fakeidp"
	"github.com/idpsync/idpsync/internal/provider/clerk/clerkfake"
	"github.com/idpsync/idpsync/internal/provider/zeroid/zeroidfake"
)

// revocationStack is a stack whose Clerk source revokes sessions at the Clerk fake and signals the
// ZeroID fake's agents; the Clerk fake delivers its webhooks to the receiver.
func revocationStack(t *testing.T, policy string) (*stack, *clerkfake.Fake, *zeroidfake.Fake) {
	t.Helper()
	return revocationStackWith(t, clerkfake.Options{Seed: 11}, policy)
}

func revocationStackWith(t testing.TB, opts clerkfake.Options, policy string) (*stack, *clerkfake.Fake, *zeroidfake.Fake) {
	t.Helper()
	clerkFake := startClerk(t, opts)
	zero := zeroidfake.New(zeroidfake.Options{Seed: 12})
	zero.Start()
	t.Cleanup(zero.Close)
	account, project := zero.Tenant()
	sources := "[" + clerkSource(clerkFake, ", revocation: "+policy) +
		fmt.Sprintf(`, {name: agents, kind: zeroid, api: {base_url: %q, account_id: %q, project_id: %q}}]`,
			zero.URL(), account, project)
	s := startStack(t, withSources(sources))
	clerkFake.SetWebhookTarget(fakeidp.WebhookTarget{URL: s.url, Secret: secret})
	return s, clerkFake, zero
}

// person is a Clerk user with sessions and owned agents.
type person struct {
	id       string
	sessions []string
	agents   []string
}

func newPerson(t *testing.T, c *clerkfake.Fake, z *zeroidfake.Fake, name string) person {
	t.Helper()
	u := c.CreateUser(clerkfake.User{FirstName: name, Email: name + "@example.com"})
	p := person{id: u.ID}
	for range 2 {
		sess, err := c.CreateSession(u.ID)
		if err != nil {
			t.Fatal(err)
		}
		p.sessions = append(p.sessions, sess.ID)
		agent := z.CreateIdentity(zeroidfake.Identity{Name: name + "-agent", IdentityType: "agent", Status: "active", OwnerUserID: u.ID})
		p.agents = append(p.agents, agent.ID)
	}
	return p
}

// quiescent waits until no job is left to run.
func (s *stack) quiescent() {
	s.t.Helper()
	// The consumer first: a message is acknowledged only after its jobs were inserted, so once
	// nothing is pending every job is visible (checked the other way round, a job inserted between
	// the two reads went unseen).
	s.eventually("the jobs to be done", func() bool {
		return s.consumerPending() == 0 &&
			s.scalar(`SELECT count(*) FROM river_job WHERE state NOT IN ('completed', 'cancelled', 'discarded')`) == int64(0)
	})
}

func mutationIDs(ms []fakeidp.Mutation) []string {
	ids := make([]string, len(ms))
	for i, m := range ms {
		ids[i] = m.ID
	}
	slices.Sort(ids)
	return ids
}

func sorted(lists ...[]string) []string {
	var out []string
	for _, l := range lists {
		out = append(out, l...)
	}
	slices.Sort(out)
	return out
}

// An organization deleted at Clerk (agent action signal): every member's sessions are revoked at Clerk and ZeroID gets a
// signal per agent a member owns; nobody else is touched; the same webhook again calls nobody.
func TestOrganizationDeletedRevokesEveryMember(t *testing.T) {
	t.Parallel()
	s, c, z := revocationStack(t, "{zeroid: agents, zeroid_action: signal}")
	ctx := context.Background()

	org := c.CreateOrganization(clerkfake.Organization{Name: "Acme"})
	var members []person
	for i := range 5 {
		p := newPerson(t, c, z, fmt.Sprint("member", i))
		if _, err := c.AddMembership(org.ID, p.id, "org:member"); err != nil {
			t.Fatal(err)
		}
		members = append(members, p)
	}
	outsider := newPerson(t, c, z, "outsider")
	if err := c.FlushWebhooks(ctx); err != nil {
		t.Fatal(err)
	}
	s.eventually("the memberships in the mirror", func() bool {
		return s.scalar(`SELECT count(*) FROM memberships WHERE organization_id = $1 AND deleted_at IS NULL`, org.ID) == int64(5)
	})

	start := time.Now()
	if err := c.DeleteOrganization(org.ID); err != nil {
		t.Fatal(err)
	}
	if err := c.FlushWebhooks(ctx); err != nil {
		t.Fatal(err)
	}
	s.quiescent()

	var wantSessions, wantAgents []string
	for _, m := range members {
		wantSessions, wantAgents = append(wantSessions, m.sessions...), append(wantAgents, m.agents...)
	}
	if got := mutationIDs(c.MutationsOf("session.revoke")); !slices.Equal(got, sorted(wantSessions)) {
		t.Fatalf("sessions revoked at Clerk: %v, want the members' %v", got, sorted(wantSessions))
	}
	signals := z.MutationsOf("signal.ingest")
	var signalled []string
	for _, m := range signals {
		var body struct {
			IdentityID string `json:"identity_id"`
			Severity   string `json:"severity"`
		}
		if err := json.Unmarshal(m.Body, &body); err != nil {
			t.Fatal(err)
		}
		if body.Severity != "critical" && body.Severity != "high" {
			t.Fatalf("signal severity %q does not force revocation", body.Severity)
		}
		signalled = append(signalled, body.IdentityID)
	}
	slices.Sort(signalled)
	if !slices.Equal(signalled, sorted(wantAgents)) {
		t.Fatalf("ZeroID signalled %v, want one per member's agent %v", signalled, sorted(wantAgents))
	}
	for _, sid := range outsider.sessions {
		if sess, _ := c.Session(sid); sess.Status != "active" {
			t.Fatalf("the outsider's session %s is %s", sid, sess.Status)
		}
	}

	// The audit: every call, with its outcome and the time from the webhook's receipt.
	var calls, done int64
	var slowest float64
	err := s.pool.QueryRow(ctx, `SELECT count(*), count(*) FILTER (WHERE outcome = 'done'),
		coalesce(max(extract(epoch FROM completed_at - triggered_at)), -1) FROM revocations WHERE trigger = 'organization.deleted'`).Scan(&calls, &done, &slowest)
	if err != nil {
		t.Fatal(err)
	}
	if want := int64(5 + 10 + 5 + 10); calls != want || done != want || slowest < 0 || slowest > time.Since(start).Seconds() {
		t.Fatalf("revocations: %d calls, %d done, slowest %.3fs; want %d done within %s", calls, done, slowest, want, time.Since(start))
	}

	// The IdP delivers the same webhook again: nothing more is called.
	deliveries := c.Deliveries()
	i := slices.IndexFunc(deliveries, func(d fakeidp.Delivery) bool { return d.Type == "organization.deleted" })
	if i < 0 {
		t.Fatal("the fake sent no organization.deleted")
	}
	last := deliveries[i]
	revokedBefore, signalsBefore := len(c.MutationsOf("session.revoke")), len(z.MutationsOf("signal.ingest"))
	if code := s.deliver(last.ID, last.Body); code != http.StatusAccepted {
		t.Fatalf("redelivery: %d", code)
	}
	s.quiescent()
	if len(c.MutationsOf("session.revoke")) != revokedBefore || len(z.MutationsOf("signal.ingest")) != signalsBefore {
		t.Fatal("the same webhook delivered again made calls again")
	}
}

// Clerk answers the revocations with 429: they wait for the Retry-After and then happen; none is
// lost.
func TestRateLimitedRevocationIsDelayedNotLost(t *testing.T) {
	t.Parallel()
	s, c, z := revocationStack(t, "{zeroid: agents, zeroid_action: offboard}")
	ctx := context.Background()
	p := newPerson(t, c, z, "banned")
	if err := c.FlushWebhooks(ctx); err != nil {
		t.Fatal(err)
	}
	s.eventually("the user in the mirror", func() bool { return s.scalar(`SELECT count(*) FROM users WHERE id = $1`, p.id) == int64(1) })

	c.FailNext(3, fakeidp.Failure{Status: http.StatusTooManyRequests, RetryAfter: time.Second, PathPrefix: "/v1/sessions/", Method: http.MethodPost})
	if _, err := c.UpdateUser(p.id, func(u *clerkfake.User) { u.Banned = true }); err != nil {
		t.Fatal(err)
	}
	if err := c.FlushWebhooks(ctx); err != nil {
		t.Fatal(err)
	}
	s.eventually("both sessions revoked", func() bool { return len(c.MutationsOf("session.revoke")) == 2 })
	s.quiescent()

	var limited int
	for _, r := range c.Requests() {
		if r.Status == http.StatusTooManyRequests {
			limited++
		}
	}
	if limited != 3 {
		t.Fatalf("%d requests were rate limited, want the 3 injected", limited)
	}
	if got := mutationIDs(c.MutationsOf("session.revoke")); !slices.Equal(got, sorted(p.sessions)) {
		t.Fatalf("revoked %v, want %v", got, sorted(p.sessions))
	}
	// Offboarding is one call for the owner.
	if off := z.MutationsOf("identity.offboard"); len(off) != 1 {
		t.Fatalf("offboard calls: %+v", off)
	}
	if n := s.scalar(`SELECT count(*) FROM revocations WHERE trigger = 'user.banned' AND outcome = 'done'`); n != int64(1+2+1) {
		t.Fatalf("revocations done: %v, want list + 2 sessions + offboard", n)
	}
}

// Revocation is the security promise: a Clerk user who owns two agents is deleted, and once the
// revocation jobs are done, at ZeroID (whose fake models the real semantics: a signal revokes the
// tokens held now, only deactivation refuses the API key) none of the agents' tokens is active and
// neither agent can mint a new one, with offboarding (the default) or deactivation. With the
// signal-only action the old tokens die but the keys go on minting, as documented.
func TestUserDeletedLosesAgentAccess(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		policy   string
		canMint  bool
		mutation string
	}{
		{"{zeroid: agents}", false, "identity.offboard"},
		{"{zeroid: agents, zeroid_action: deactivate}", false, "identity.deactivate"},
		{"{zeroid: agents, zeroid_action: signal}", true, "signal.ingest"},
	} {
		t.Run(tc.policy, func(t *testing.T) {
			t.Parallel()
			s, c, z := revocationStack(t, tc.policy)
			ctx := context.Background()
			p := newPerson(t, c, z, "leaver")
			var tokens []string
			for _, agent := range p.agents {
				key, err := z.IssueAPIKey(agent)
				if err != nil {
					t.Fatal(err)
				}
				tok, err := z.MintToken(key, "")
				if err != nil {
					t.Fatal(err)
				}
				tokens = append(tokens, tok)
			}
			if err := c.FlushWebhooks(ctx); err != nil {
				t.Fatal(err)
			}
			s.eventually("the user in the mirror", func() bool { return s.scalar(`SELECT count(*) FROM users WHERE id = $1`, p.id) == int64(1) })

			if err := c.DeleteUser(p.id); err != nil {
				t.Fatal(err)
			}
			if err := c.FlushWebhooks(ctx); err != nil {
				t.Fatal(err)
			}
			s.eventually("the agents' revocation", func() bool { return len(z.MutationsOf(tc.mutation)) > 0 })
			s.quiescent()
			for i, agent := range p.agents {
				if z.TokenActive(tokens[i]) {
					t.Errorf("agent %s: the token minted before the deletion is still active", agent)
				}
				if got := z.CanMint(agent); got != tc.canMint {
					t.Errorf("agent %s: can mint a new token = %v, want %v", agent, got, tc.canMint)
				}
			}
			if n := s.scalar(`SELECT count(*) FROM revocations WHERE trigger = 'user.deleted' AND outcome = 'failed'`); n != int64(0) {
				t.Fatalf("%v revocations failed", n)
			}
		})
	}
}

// A ZeroID source whose base_url is wrong answers every call with a route 404: the revocation is
// recorded failed (never "already done"), and the worker's readiness names the source.
func TestMisconfiguredTargetFailsLoudly(t *testing.T) {
	t.Parallel()
	clerkFake := startClerk(t, clerkfake.Options{Seed: 13})
	zero := zeroidfake.New(zeroidfake.Options{Seed: 14})
	zero.Start()
	t.Cleanup(zero.Close)
	account, project := zero.Tenant()
	for _, action := range []string{"offboard", "deactivate"} {
		t.Run(action, func(t *testing.T) {
			sources := "[" + clerkSource(clerkFake, ", revocation: {sessions: false, zeroid: agents, zeroid_action: "+action+"}") +
				fmt.Sprintf(`, {name: agents, kind: zeroid, api: {base_url: %q, account_id: %q, project_id: %q}}]`,
					zero.URL()+"/not-zeroid", account, project)
			s := startStack(t, withSources(sources))
			u := clerkFake.CreateUser(clerkfake.User{FirstName: "Eve", Email: "eve-" + action + "@example.com"})
			zero.CreateIdentity(zeroidfake.Identity{Name: "eve-agent", IdentityType: "agent", OwnerUserID: u.ID})
			s.send(clerkEvent("user.created", 1700000001, clerkUser(u.ID, "Eve", 1700000001000, false)))
			s.send(clerkEvent("user.deleted", 1700000002, map[string]any{"object": "user", "id": u.ID, "deleted": true}))
			s.quiescent()
			var outcome, detail string
			if err := s.pool.QueryRow(context.Background(), `SELECT outcome, detail FROM revocations WHERE user_id = $1`, u.ID).Scan(&outcome, &detail); err != nil {
				t.Fatal(err)
			}
			if outcome != "failed" || !strings.Contains(detail, "404") {
				t.Fatalf("revocation recorded %s (%s), want failed with the 404", outcome, detail)
			}
			err := s.worker.Ready(context.Background())
			if err == nil || !strings.Contains(err.Error(), "agents:") || !strings.Contains(err.Error(), "base_url") {
				t.Fatalf("readiness = %v, want it to name the misconfigured source", err)
			}
		})
	}
}

// The worker's /metrics carries what the alerting rules watch: dead letters not replayed, jobs
// by queue and state with the oldest's age, and the sources the start-up check found
// misconfigured (here a Clerk secret key the IdP refuses).
func TestMetricsForAlerts(t *testing.T) {
	t.Parallel()
	c := startClerk(t, clerkfake.Options{Seed: 41})
	sources := fmt.Sprintf(`[{name: clerk-e2e, kind: clerk, webhook: {secrets: ["%s"]}, api: {secret_key: "sk_test_not_this_instance", base_url: %q}, resync: {periodic: false}}]`,
		secret, c.BaseURL())
	s := startStack(t, withSources(sources), withWorker(`{admin_addr: "127.0.0.1:0", ack_wait: 5s}`))
	if _, err := s.pool.Exec(context.Background(), `INSERT INTO dead_letters (source, event_id, subject, reason, payload) VALUES ('clerk-e2e', 'msg_x', 's', 'r', '\x00')`); err != nil {
		t.Fatal(err)
	}
	if _, err := s.pool.Exec(context.Background(), `
		INSERT INTO river_job (kind, args, queue, state, scheduled_at, max_attempts)
		VALUES ('idpsync.test', '{}', 'nobody_works_this', 'available', now() - interval '90 seconds', 1)`); err != nil {
		t.Fatal(err)
	}
	scrape := func() string {
		resp, err := http.Get("http://" + s.worker.AdminAddr() + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	s.eventually("the start-up check to find the source misconfigured", func() bool {
		return strings.Contains(scrape(), `idpsync_source_misconfigured{source="clerk-e2e"} 1`)
	})
	got := scrape()
	for _, want := range []string{
		`idpsync_dead_letters_pending{source="clerk-e2e"} 1`,
		`idpsync_jobs{queue="nobody_works_this",state="available"} 1`,
	} {
		if !strings.Contains(got, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	var age float64
	for line := range strings.SplitSeq(got, "\n") {
		if v, ok := strings.CutPrefix(line, `idpsync_job_oldest_age_seconds{queue="nobody_works_this",state="available"} `); ok {
			age, _ = strconv.ParseFloat(v, 64)
		}
	}
	if age < 89 || age > 600 {
		t.Errorf("oldest available job's age = %v, want about 90s", age)
	}
	if err := s.worker.Ready(context.Background()); err == nil || !strings.Contains(err.Error(), "401 from GET "+c.BaseURL()+"/users") {
		t.Errorf("readiness = %v, want the check's sentence", err)
	}
}
