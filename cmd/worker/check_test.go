package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/idpsync/idpsync/internal/provider/clerk/clerkfake"
	"github.com/idpsync/idpsync/internal/provider/zeroid/zeroidfake"
	"github.com/idpsync/idpsync/internal/provider/zitadel/zitadelfake"
)

// worker check says what each source does and makes one authenticated call to each API; a
// failing call is a sentence naming the status, the URL and what to check, and the command fails.
// It needs no database and no NATS.
func TestCheckSaysWhatIsWrong(t *testing.T) {
	t.Parallel()
	clerk := clerkfake.New(clerkfake.Options{Seed: 1, Users: 3})
	clerk.Start()
	t.Cleanup(clerk.Close)
	zitadel := zitadelfake.New(zitadelfake.Options{Seed: 2})
	zitadel.Start()
	t.Cleanup(zitadel.Close)
	zero := zeroidfake.New(zeroidfake.Options{Seed: 3})
	zero.Start()
	t.Cleanup(zero.Close)
	account, project := zero.Tenant()
	clientID, _ := zero.ClientCredentials()

	yaml := fmt.Sprintf(`sources:
  - {name: clerk-ok, kind: clerk, webhook: {secrets: ["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"]}, api: {secret_key: %q, base_url: %q},
     revocation: {zeroid: agents}}
  - {name: zitadel-expired, kind: zitadel, api: {base_url: %q, token: "expired-pat"}}
  - {name: agents, kind: zeroid, api: {base_url: %q, account_id: %q, project_id: %q, client_id: %q, client_secret: "wrong"}}
  - {name: agents-wrong-url, kind: zeroid, api: {base_url: %q, account_id: %q, project_id: %q}}
`, clerk.SecretKey(), clerk.BaseURL(), zitadel.URL(), zero.URL(), account, project, clientID, zero.URL()+"/not-zeroid", account, project)
	path := filepath.Join(t.TempDir(), "idpsync.yaml")
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	noEnv := func(string) string { return "" }
	var out strings.Builder
	err := run(context.Background(), []string{"check", "-config", path}, noEnv, &out, io.Discard)
	if err == nil || err.Error() != "3 of 4 sources failed the check" {
		t.Errorf("check: %v", err)
	}
	got := out.String()
	for _, want := range []string{
		"clerk-ok (Clerk)\n  webhooks: verified with 1 signing secret, timestamps within 5m0s; the receiver serves /webhooks/clerk-ok\n",
		"  revocation: on user.deleted, user.banned, user.locked, organization.deleted, organization.suspended, revokes the user's sessions here and offboards the user's agents at agents (owner by id)\n",
		"  check: ok, GET " + clerk.BaseURL() + "/users?limit=1 answered in ",
		"zitadel-expired (Zitadel)\n",
		"  check: FAILED: 401 from POST " + zitadel.URL() + "/v2/users: the token (a PAT) is expired or revoked",
		"agents (ZeroID)\n",
		"  revocation target of clerk-ok: its users' agents are offboarded here\n",
		"  check: FAILED: 401 from POST " + zero.URL() + "/oauth2/token/introspect: ZeroID refused the OAuth client",
		"  check: FAILED: 404 from GET " + zero.URL() + "/not-zeroid/api/v1/identities: ZeroID does not answer like that: base_url should be the API's root",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("output lacks %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "expired-pat") || strings.Contains(got, `"wrong"`) {
		t.Errorf("output repeats a credential:\n%s", got)
	}

	out.Reset()
	if err := run(context.Background(), []string{"check", "-config", path, "-source", "clerk-ok"}, noEnv, &out, io.Discard); err != nil {
		t.Errorf("check -source clerk-ok: %v\n%s", err, out.String())
	}
}
