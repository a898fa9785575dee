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
	// banTarget is a member of the first organization who owns agents, for the printed example.
	banTarget string
}

const (
	demoSource  = "clerk-demo"
	demoAgents  = "zeroid-demo"
	demoUsers   = 200
	demoOrgs    = 10
	demoMembers = 8
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
			MembersPerOrganization: demoMembers, SessionsPerUser: 2}),
		zeroid: zeroidfake.New(zeroidfake.Options{Seed: 1}),
	}
	d.clerk.Start()
	d.zeroid.Start()
	ids := d.clerk.UserIDs()
	for i, id := range ids[:min(len(ids), 40)] {
		for j := range 2 {
			d.zeroid.CreateIdentity(zeroidfake.Identity{Name: fmt.Sprintf("agent-%d-%d", i, j), IdentityType: "agent",
				Status: "active", OwnerUserID: id})
		}
	}
	if orgs := d.clerk.OrganizationIDs(); len(orgs) > 0 {
		if members := d.clerk.Memberships(orgs[0]); len(members) > 0 {
			d.banTarget = members[0].UserID
		}
	}
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

func (d *demo) printTryIt(w io.Writer, receiverAddr, configPath string) {
	fmt.Fprintf(w, "Demo IdPs (in this process; their data lives in memory):\n\n")
	fmt.Fprintf(w, "  fake Clerk   %s  (secret key %s; %d users, %d organizations, sessions)\n", d.clerk.BaseURL(), d.clerk.SecretKey(), demoUsers, demoOrgs)
	fmt.Fprintf(w, "  fake ZeroID  %s  (agents owned by the first 40 users)\n\n", d.zeroid.URL())
	fmt.Fprintf(w, "The mirror fills by a resync at start. Then try:\n\n")
	fmt.Fprintf(w, "  # a signed sample webhook\n  go run ./cmd/fakeidp send -provider clerk -url http://%s/webhooks/%s -secret %s -type user.created\n\n",
		receiverAddr, demoSource, d.secret)
	if d.banTarget != "" {
		fmt.Fprintf(w, "  # ban a user at the fake Clerk: it sends user.updated, idpsync revokes the user's sessions and its agents\n")
		fmt.Fprintf(w, "  curl -X POST -H 'Authorization: Bearer %s' %s/users/%s/ban\n\n", d.clerk.SecretKey(), d.clerk.BaseURL(), d.banTarget)
	}
	fmt.Fprintf(w, "  # a resync now, with its progress\n  go run ./cmd/worker -config %s resync -source %s -wait\n\n", configPath, demoSource)
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
