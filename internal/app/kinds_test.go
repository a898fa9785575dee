package app_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/idpsync/idpsync/internal/events"
	"github.com/idpsync/idpsync/internal/fakeidp"
	"github.com/idpsync/idpsync/internal/provider/authpi/authpifake"
	"github.com/idpsync/idpsync/internal/provider/zitadel/zitadelfake"
	"github.com/idpsync/idpsync/internal/store"
)

// endpoint is the webhook URL of a source of the stack.
func (s *stack) endpoint(source string) string {
	return strings.TrimSuffix(s.url, "clerk-e2e") + source
}

// Zitadel: signed Actions v2 events reach the mirror through reads of the changed entities (its
// events carry changes), memberships come from the events themselves, a deactivation revokes the
// user's sessions at Zitadel, and a resync converges on the same rows.
func TestZitadelSource(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	const key = "zitadel-target-signing-key"
	z := zitadelfake.New(zitadelfake.Options{Seed: 21, Organizations: 1})
	url := z.Start()
	t.Cleanup(z.Close)
	s := startStack(t, withSources(fmt.Sprintf(`[
  {name: clerk-e2e, kind: clerk, webhook: {secrets: ["%s"]}},
  {name: zitadel-e2e, kind: zitadel, webhook: {secrets: [%q]}, api: {base_url: %q, token: %q}, resync: {periodic: false}}]`,
		secret, key, url, z.PAT())))
	z.SetWebhookTarget(fakeidp.WebhookTarget{URL: s.endpoint("zitadel-e2e"), Secret: key})
	org := z.OrganizationIDs()[0]
	flush := func() {
		t.Helper()
		if err := z.FlushWebhooks(ctx); err != nil {
			t.Fatal(err)
		}
		for _, d := range z.Deliveries() {
			if d.Status != 202 {
				t.Fatalf("delivery %s %s answered %d", d.Type, d.ID, d.Status)
			}
		}
		s.quiescent()
	}
	row := func(id string) (first, email string, banned, deleted bool) {
		t.Helper()
		err := s.pool.QueryRow(ctx, `SELECT coalesce(first_name, ''), coalesce(primary_email, ''), banned, deleted_at IS NOT NULL
			FROM users WHERE source = 'zitadel-e2e' AND id = $1`, id).Scan(&first, &email, &banned, &deleted)
		if err != nil {
			t.Fatalf("user %s: %v", id, err)
		}
		return first, email, banned, deleted
	}

	u := z.CreateUser(zitadelfake.User{OrgID: org, Username: "grace", FirstName: "Grace", LastName: "Hopper", Email: "grace@example.com"})
	flush()
	if first, email, _, _ := row(u.ID); first != "Grace" || email != "grace@example.com" {
		t.Fatalf("after user.human.added: %q %q", first, email)
	}
	if _, err := z.UpdateUserProfile(u.ID, "Amazing Grace", "Hopper"); err != nil {
		t.Fatal(err)
	}
	if err := z.AddMember(org, u.ID, "ORG_OWNER"); err != nil {
		t.Fatal(err)
	}
	flush()
	if first, _, _, _ := row(u.ID); first != "Amazing Grace" {
		t.Fatalf("after a profile change: %q", first)
	}
	if got := s.scalar(`SELECT role FROM memberships WHERE source = 'zitadel-e2e' AND organization_id = $1 AND user_id = $2 AND deleted_at IS NULL`, org, u.ID); got != "ORG_OWNER" {
		t.Fatalf("membership role %v", got)
	}

	var sessions []string
	for range 2 {
		sess, err := z.CreateSession(u.ID)
		if err != nil {
			t.Fatal(err)
		}
		sessions = append(sessions, sess.ID)
	}
	if _, err := z.SetUserState(u.ID, "USER_STATE_INACTIVE"); err != nil {
		t.Fatal(err)
	}
	flush()
	if _, _, banned, _ := row(u.ID); !banned {
		t.Fatal("a deactivated user is not banned in the mirror")
	}
	slices.Sort(sessions)
	if got := mutationIDs(z.MutationsOf("session.delete")); !slices.Equal(got, sessions) {
		t.Fatalf("sessions deleted at Zitadel: %v, want %v", got, sessions)
	}

	if err := z.RemoveMember(org, u.ID); err != nil {
		t.Fatal(err)
	}
	if err := z.DeleteUser(u.ID); err != nil {
		t.Fatal(err)
	}
	flush()
	if _, _, _, deleted := row(u.ID); !deleted {
		t.Fatal("a removed user is not tombstoned")
	}
	if got := s.scalar(`SELECT count(*) FROM memberships WHERE source = 'zitadel-e2e' AND deleted_at IS NULL`); got != int64(0) {
		t.Fatalf("live memberships after removal: %v", got)
	}

	// A resync finds the webhooks' rows right (no drift in users) and heals what no webhook
	// announced: the organization the fake was seeded with.
	for entity, wantCreated := range map[events.Entity]int64{events.EntityUser: 0, events.EntityOrganization: 1} {
		job, err := s.worker.River().Insert(ctx, resyncArgs("zitadel-e2e", entity), nil)
		if err != nil {
			t.Fatal(err)
		}
		run := s.finished(job.Job.ID)
		if run.Status != store.RunSucceeded || run.Created != wantCreated || run.Updated+run.Deleted != 0 {
			t.Fatalf("resync of %s after the webhooks: %+v, want %d created and nothing else", entity, run, wantCreated)
		}
	}
}

// AuthPI: CloudEvents authenticated by bearer token and signature carry whole entities into the
// mirror.
func TestAuthPISource(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	const token, signing = "authpi-bearer-token", "whs_authpi_signing_secret"
	a := authpifake.New(authpifake.Options{Seed: 31})
	a.Start()
	t.Cleanup(a.Close)
	s := startStack(t, withSources(fmt.Sprintf(`[{name: authpi-e2e, kind: authpi, webhook: {bearer_tokens: [%q], secrets: [%q]}}]`, token, signing)))
	a.SetWebhookTarget(fakeidp.WebhookTarget{URL: s.endpoint("authpi-e2e"), Secret: token, Scheme: "bearer+signature", SignatureSecret: signing})
	flush := func() {
		t.Helper()
		if err := a.FlushWebhooks(ctx); err != nil {
			t.Fatal(err)
		}
		for _, d := range a.Deliveries() {
			if d.Status != 202 {
				t.Fatalf("delivery %s answered %d", d.Type, d.Status)
			}
		}
		s.quiescent()
	}
	issuer := a.IssuerIDs()[0]
	u, err := a.CreateUser(authpifake.User{IssuerID: issuer, Username: "alan", Email: "alan@example.com", DisplayName: "Alan Turing"})
	if err != nil {
		t.Fatal(err)
	}
	o, err := a.CreateOrganization(authpifake.Organization{IssuerID: issuer, Name: "Bletchley", Slug: "bletchley"})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.AddMember(o.ID, u.ID, "admin"); err != nil {
		t.Fatal(err)
	}
	flush()
	if got := s.scalar(`SELECT primary_email || ' ' || banned::text FROM users WHERE source = 'authpi-e2e' AND id = $1`, u.ID); got != "alan@example.com false" {
		t.Fatalf("user: %v", got)
	}
	if got := s.scalar(`SELECT name FROM organizations WHERE source = 'authpi-e2e' AND id = $1`, o.ID); got != "Bletchley" {
		t.Fatalf("organization: %v", got)
	}
	if got := s.scalar(`SELECT role FROM memberships WHERE source = 'authpi-e2e' AND user_id = $1 AND deleted_at IS NULL`, u.ID); got != "admin" {
		t.Fatalf("membership: %v", got)
	}

	if _, err := a.UpdateUser(issuer, u.ID, func(x *authpifake.User) { x.Status = "suspended" }); err != nil {
		t.Fatal(err)
	}
	if err := a.RemoveMember(o.ID, u.ID); err != nil {
		t.Fatal(err)
	}
	flush()
	if got := s.scalar(`SELECT banned FROM users WHERE source = 'authpi-e2e' AND id = $1`, u.ID); got != true {
		t.Fatal("a suspended user is not banned")
	}
	if got := s.scalar(`SELECT deleted_at IS NOT NULL FROM memberships WHERE source = 'authpi-e2e' AND user_id = $1`, u.ID); got != true {
		t.Fatal("a removed membership is live")
	}
	if err := a.DeleteUser(issuer, u.ID); err != nil {
		t.Fatal(err)
	}
	flush()
	if got := s.scalar(`SELECT deleted_at IS NOT NULL FROM users WHERE source = 'authpi-e2e' AND id = $1`, u.ID); got != true {
		t.Fatal("a deleted user is live")
	}
}

// AuthPI resync: through the documented cursor lists (and users.get for each listed user, whose
// list entry hashes the username), a pass writes exactly the rows webhooks would have, heals the
// changes whose webhooks never came, and tombstones what the IdP confirms gone.
func TestAuthPIResync(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	a := authpifake.New(authpifake.Options{Seed: 33, Users: 230, Organizations: 4})
	base := a.Start()
	t.Cleanup(a.Close)
	keyID, keySecret := a.APIKey()
	issuer := a.IssuerIDs()[0]
	s := startStack(t, withSources(fmt.Sprintf(`[{name: authpi-rs, kind: authpi, webhook: {bearer_tokens: [tok]}, api: {key_id: %q, key_secret: %q, issuer_id: %q, base_url: %q}, resync: {periodic: false}}]`,
		keyID, keySecret, issuer, base)))
	resync := func(entity events.Entity) store.ResyncRun {
		t.Helper()
		job, err := s.worker.River().Insert(ctx, resyncArgs("authpi-rs", entity), nil)
		if err != nil {
			t.Fatal(err)
		}
		run := s.finished(job.Job.ID)
		if run.Status != store.RunSucceeded {
			t.Fatalf("resync of %s: %+v", entity.Plural(), run)
		}
		s.eventually("the resync job to complete", func() bool {
			return s.scalar(`SELECT state FROM river_job WHERE id = $1`, job.Job.ID) == "completed"
		})
		return run
	}
	if run := resync(events.EntityUser); run.Seen != 230 || run.Created != 230 {
		t.Fatalf("first users pass: %+v", run)
	}
	if run := resync(events.EntityOrganization); run.Seen != 4 || run.Created != 4 {
		t.Fatalf("first organizations pass: %+v", run)
	}
	// The rows are the entities as users.get shows them, not the list's hashed usernames.
	first := a.UserIDs(issuer)[0]
	want, _ := a.User(issuer, first)
	if got := s.scalar(`SELECT username || ' ' || primary_email FROM users WHERE source = 'authpi-rs' AND id = $1`, first); got != want.Username+" "+want.Email {
		t.Fatalf("user row = %v, want %s %s", got, want.Username, want.Email)
	}

	// Changes made while no webhook reached idpsync: one suspension, one deletion of each.
	suspended := a.UserIDs(issuer)[7]
	if _, err := a.UpdateUser(issuer, suspended, func(u *authpifake.User) { u.Status = "suspended" }); err != nil {
		t.Fatal(err)
	}
	gone := a.UserIDs(issuer)[100]
	if err := a.DeleteUser(issuer, gone); err != nil {
		t.Fatal(err)
	}
	orgs := s.scalar(`SELECT array_agg(id ORDER BY id) FROM organizations WHERE source = 'authpi-rs'`).([]any)
	goneOrg := orgs[0].(string)
	if err := a.DeleteOrganization(issuer, goneOrg); err != nil {
		t.Fatal(err)
	}
	if run := resync(events.EntityUser); run.Seen != 229 || run.Updated != 1 || run.Deleted != 1 || run.Created != 0 {
		t.Fatalf("users pass after missed changes: %+v, want 1 updated and 1 deleted", run)
	}
	if run := resync(events.EntityOrganization); run.Deleted != 1 || run.Updated != 0 || run.Created != 0 {
		t.Fatalf("organizations pass after a missed deletion: %+v", run)
	}
	if got := s.scalar(`SELECT banned FROM users WHERE source = 'authpi-rs' AND id = $1`, suspended); got != true {
		t.Fatal("the suspension was not healed")
	}
	for table, id := range map[string]string{"users": gone, "organizations": goneOrg} {
		if got := s.scalar(`SELECT deleted_at IS NOT NULL FROM `+table+` WHERE source = 'authpi-rs' AND id = $1`, id); got != true {
			t.Fatalf("%s %s was not tombstoned", table, id)
		}
	}
}
