package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/idpsync/idpsync/internal/fakeidp"
	"github.com/idpsync/idpsync/internal/provider/clerk/clerkfake"
	"github.com/idpsync/idpsync/internal/provider/zeroid/zeroidfake"
)

// demo is what `make run` serves without a configuration: fake Clerk and ZeroID management APIs,
// in this process, and the sources that use them.
type demo struct {
	secret string
	// adminPassword protects River UI for this run (user "admin").
	adminPassword string
	clerk         *clerkfake.Fake
	zeroid        *zeroidfake.Fake
	// lockTarget is the user the printed revocation example locks: the first user, who has active
	// sessions at the fake Clerk and owns agents at the fake ZeroID.
	lockTarget string
}

const (
	demoSource   = "clerk-demo"
	demoAgents   = "zeroid-demo"
	demoUsers    = 200
	demoOrgs     = 10
	demoMembers  = 8
	demoSessions = 2
	// demoOwners are the first users, who own demoAgentsEach agents each at the fake ZeroID.
	demoOwners     = 40
	demoAgentsEach = 2
	// newUserEmail is the address of the user the printed example creates; the generated users'
	// addresses never take it.
	newUserEmail = "mary.jackson@example.com"
)

// startDemo starts the fakes with a small, reproducible data set: users with sessions, organizations
// with members, and agent identities owned by the first users.
func startDemo(dataDir string) (*demo, error) {
	secret, err := demoSecret(filepath.Join(dataDir, "demo-secret"))
	if err != nil {
		return nil, err
	}
	pw := make([]byte, 12)
	_, _ = rand.Read(pw)
	d := &demo{
		secret:        secret,
		adminPassword: base64.RawURLEncoding.EncodeToString(pw),
		clerk: clerkfake.New(clerkfake.Options{Seed: 1, Users: demoUsers, Organizations: demoOrgs,
			MembersPerOrganization: demoMembers, SessionsPerUser: demoSessions}),
		zeroid: zeroidfake.New(zeroidfake.Options{Seed: 1}),
	}
	d.clerk.Start()
	d.zeroid.Start()
	ids := d.clerk.UserIDs()
	for i, id := range ids[:demoOwners] {
		for j := range demoAgentsEach {
			d.zeroid.CreateIdentity(zeroidfake.Identity{Name: fmt.Sprintf("agent-%d-%d", i, j), IdentityType: "agent",
				Status: "active", OwnerUserID: id})
		}
	}
	d.lockTarget = ids[0]
	return d, nil
}

// config is the demo's configuration: a Clerk source with webhooks and the fake's API, whose
// revocations reach the fake ZeroID too.
func (d *demo) config() string {
	account, project := d.zeroid.Tenant()
	clientID, clientSecret := d.zeroid.ClientCredentials()
	return fmt.Sprintf(`worker: {river_ui: true}
admin: {username: admin, password: %q}
sources:
  - name: %s
    kind: clerk
    webhook: {secrets: [%q]}
    api: {secret_key: %q, base_url: %q}
    revocation: {zeroid: %s}
  - name: %s
    kind: zeroid
    api: {base_url: %q, account_id: %q, project_id: %q, client_id: %q, client_secret: %q}
`, d.adminPassword, demoSource, d.secret, d.clerk.SecretKey(), d.clerk.BaseURL(), demoAgents,
		demoAgents, d.zeroid.URL(), account, project, clientID, clientSecret)
}

// deliverTo makes the fake Clerk send its webhooks, signed, to the receiver.
func (d *demo) deliverTo(receiverAddr string) {
	d.clerk.SetWebhookTarget(fakeidp.WebhookTarget{URL: "http://" + receiverAddr + "/webhooks/" + demoSource, Secret: d.secret})
}

func (d *demo) close(ctx context.Context) {
	_ = d.clerk.FlushWebhooks(ctx)
	d.clerk.Close()
	d.zeroid.Close()
}

// printTryIt prints the demo's steps: commands to paste into another terminal, each followed by
// one that shows its effect. db is the database URL (password hidden) and schema idpsync's schema
// in it; configPath is the effective configuration file.
func (d *demo) printTryIt(w io.Writer, db, schema, configPath string) {
	clerkAPI, clerkAuth := d.clerk.BaseURL(), "-H 'Authorization: Bearer "+d.clerk.SecretKey()+"'"
	account, project := d.zeroid.Tenant()
	psql := func(query string, args ...any) string {
		return fmt.Sprintf(`psql '%s' -c "%s"`, db, fmt.Sprintf(query, args...))
	}
	// The APIs answer JSON on one line; each command keeps the fields that show the effect.
	const (
		userID       = `grep -oE '"id":"user_[^"]*"'`
		lockedFlag   = `grep -oE '"locked":[a-z]+'`
		idAndStatus  = `grep -oE '"(id|status)":"[^"]*"'`
		nameAndState = `grep -oE '"(name|status)":"[^"]*"'`
	)
	newUser := `{"email_address":["` + newUserEmail + `"],"first_name":"Mary","last_name":"Jackson"}`

	fmt.Fprintf(w, "Demo IdPs (in this process; their data lives in memory):\n\n")
	fmt.Fprintf(w, "  fake Clerk   %s  (secret key %s; %d users with %d sessions each, %d organizations)\n",
		clerkAPI, d.clerk.SecretKey(), demoUsers, demoSessions, demoOrgs)
	fmt.Fprintf(w, "  fake ZeroID  %s  (account %s, project %s; %d agents each for the first %d users)\n\n",
		d.zeroid.URL(), account, project, demoAgentsEach, demoOwners)
	fmt.Fprintf(w, "The mirror fills by a resync at start. Then try, in another terminal:\n\n")

	fmt.Fprintf(w, "1. Create a user at the fake Clerk through its Backend API (POST /v1/users); Clerk sends user.created:\n\n")
	fmt.Fprintf(w, "  curl -s -X POST %s -H 'Content-Type: application/json' -d '%s' %s/users | %s\n\n", clerkAuth, newUser, clerkAPI, userID)
	fmt.Fprintf(w, "   The user is in the mirror a moment later:\n\n")
	fmt.Fprintf(w, "  %s\n\n", psql("SELECT id, primary_email, first_name, last_name, synced_at FROM %s.users WHERE source = '%s' AND primary_email = '%s'",
		schema, demoSource, newUserEmail))

	fmt.Fprintf(w, "2. Lock a user and watch idpsync revoke their access. %s has active sessions at the\n", d.lockTarget)
	fmt.Fprintf(w, "   fake Clerk and owns agents at the fake ZeroID:\n\n")
	fmt.Fprintf(w, "  curl -s %s '%s/sessions?user_id=%s' | %s\n", clerkAuth, clerkAPI, d.lockTarget, idAndStatus)
	fmt.Fprintf(w, "  curl -s -H 'X-Account-ID: %s' -H 'X-Project-ID: %s' '%s/api/v1/identities?owner_user_id=%s' | %s\n\n",
		account, project, d.zeroid.URL(), d.lockTarget, nameAndState)
	fmt.Fprintf(w, "   Lock them (POST /v1/users/{id}/lock). Clerk only refuses them new sign-ins and sends user.updated;\n")
	fmt.Fprintf(w, "   idpsync revokes their sessions at Clerk and offboards their agents at ZeroID:\n\n")
	fmt.Fprintf(w, "  curl -s -X POST %s %s/users/%s/lock | %s\n\n", clerkAuth, clerkAPI, d.lockTarget, lockedFlag)
	fmt.Fprintf(w, "   The two commands above now show the sessions revoked and the agents deactivated; idpsync\n")
	fmt.Fprintf(w, "   records each call it made:\n\n")
	fmt.Fprintf(w, "  %s\n\n", psql("SELECT action, target, subject, outcome, completed_at - triggered_at AS took FROM %s.revocations WHERE source = '%s' AND user_id = '%s' ORDER BY id",
		schema, demoSource, d.lockTarget))

	fmt.Fprintf(w, "3. A resync now, with its progress:\n\n")
	fmt.Fprintf(w, "  go run ./cmd/worker -config %s resync -source %s -wait\n\n", configPath, demoSource)
}

// demoSecret reads the dev signing secret at path, creating it on first use.
func demoSecret(path string) (string, error) {
	if b, err := os.ReadFile(path); err == nil {
		return strings.TrimSpace(string(b)), nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return "", err
	}
	key := make([]byte, 24)
	_, _ = rand.Read(key)
	secret := "whsec_" + base64.StdEncoding.EncodeToString(key)
	if err := os.WriteFile(path, []byte(secret+"\n"), 0o600); err != nil {
		return "", err
	}
	return secret, nil
}
