package zeroid

import (
	"errors"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/idpsync/idpsync/internal/idpclient"
	"github.com/idpsync/idpsync/internal/provider"
	"github.com/idpsync/idpsync/internal/provider/zeroid/zeroidfake"
)

// The adapter the revocation jobs use, built as the worker builds it: through the registered
// provider's ConnectFunc.
func connectTo(t *testing.T, f *zeroidfake.Fake, base string, change func(*provider.APISettings)) provider.AgentRevoker {
	t.Helper()
	acc, proj := f.Tenant()
	id, secret := f.ClientCredentials()
	s := provider.APISettings{Source: "agents", BaseURL: base, AccountID: acc, ProjectID: proj, ClientID: id, ClientSecret: secret,
		HTTPClient: http.DefaultClient, UserAgent: "idpsync-test"}
	if change != nil {
		change(&s)
	}
	p, ok := provider.Lookup(Kind)
	if !ok {
		t.Fatal("zeroid is not registered")
	}
	if err := p.API.CheckSettingsFunc(s); err != nil {
		t.Fatal(err)
	}
	conn, err := p.API.ConnectFunc(s)
	if err != nil {
		t.Fatal(err)
	}
	return conn.Agents
}

func startFake(t *testing.T) *zeroidfake.Fake {
	t.Helper()
	f := zeroidfake.New(zeroidfake.Options{Seed: 4})
	f.Start()
	t.Cleanup(f.Close)
	return f
}

func TestOwnedAgentsAreActiveAndSuspendedOnly(t *testing.T) {
	t.Parallel()
	f := startFake(t)
	var want []string
	for _, status := range []string{"active", "suspended", "deactivated", "expired", "pending", "discovered", "active"} {
		i := f.CreateIdentity(zeroidfake.Identity{OwnerUserID: "user_a", Status: status})
		if status == "active" || status == "suspended" {
			want = append(want, i.ID)
		}
	}
	f.CreateIdentity(zeroidfake.Identity{OwnerUserID: "user_b"})
	f.CreateIdentity(zeroidfake.Identity{OwnerUserID: "user_a", AccountID: "acct_elsewhere"})
	agents := connectTo(t, f, f.URL(), nil)
	var got []string
	for id, err := range agents.OwnedAgents(t.Context(), "user_a") {
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, id)
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("owned agents %v, want the active and suspended ones %v", got, want)
	}
}

func TestDeactivateAgent(t *testing.T) {
	t.Parallel()
	f := startFake(t)
	i := f.CreateIdentity(zeroidfake.Identity{OwnerUserID: "user_a"})
	key, err := f.IssueAPIKey(i.ID)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := f.MintToken(key, "")
	if err != nil {
		t.Fatal(err)
	}
	agents := connectTo(t, f, f.URL(), nil)
	if err := agents.DeactivateAgent(t.Context(), i.ID); err != nil {
		t.Fatal(err)
	}
	if got, _ := f.Identity(i.ID); got.Status != "deactivated" || got.ModifiedBy != DefaultUserID {
		t.Fatalf("identity %s modified by %q, want deactivated by %s", got.Status, got.ModifiedBy, DefaultUserID)
	}
	if f.TokenActive(tok) || f.CanMint(i.ID) {
		t.Fatal("the deactivated agent keeps a token or a key")
	}
	if err := agents.DeactivateAgent(t.Context(), i.ID); err != nil {
		t.Fatalf("deactivating again: %v", err)
	}
	err = agents.DeactivateAgent(t.Context(), "00000000-0000-4000-8000-000000000001")
	if !errors.Is(err, idpclient.ErrNotFound) {
		t.Fatalf("unknown identity = %v, want ErrNotFound", err)
	}
	wrong := connectTo(t, f, f.URL()+"/not-zeroid", nil)
	other := f.CreateIdentity(zeroidfake.Identity{OwnerUserID: "user_a"})
	err = wrong.DeactivateAgent(t.Context(), other.ID)
	if !errors.Is(err, idpclient.ErrUnexpected) || errors.Is(err, idpclient.ErrNotFound) {
		t.Fatalf("route 404 = %v, want ErrUnexpected", err)
	}
	if got, _ := f.Identity(other.ID); got.Status != "active" {
		t.Fatalf("the identity is %s", got.Status)
	}
}

func TestSignalAndOffboardAgents(t *testing.T) {
	t.Parallel()
	f := startFake(t)
	a, b := f.CreateIdentity(zeroidfake.Identity{OwnerUserID: "user_a"}), f.CreateIdentity(zeroidfake.Identity{OwnerUserID: "user_a", Status: "suspended"})
	key, _ := f.IssueAPIKey(a.ID)
	tok, _ := f.MintToken(key, "")
	agents := connectTo(t, f, f.URL(), func(s *provider.APISettings) { s.Actor = "revoker@example.com" })
	err := agents.SignalAgent(t.Context(), a.ID, provider.Signal{Type: SignalCredentialChange, Severity: SeverityCritical, Source: "idpsync",
		Payload: map[string]any{"trigger": "user.banned"}})
	if err != nil {
		t.Fatal(err)
	}
	if f.TokenActive(tok) || !f.CanMint(a.ID) {
		t.Fatal("a critical signal must revoke the token and leave the key minting")
	}
	summary, err := agents.Offboard(t.Context(), "user_a", "user.deleted at clerk")
	if err != nil {
		t.Fatal(err)
	}
	if summary != "2 identities deactivated, 0 credentials revoked" {
		t.Fatalf("summary %q", summary)
	}
	for _, id := range []string{a.ID, b.ID} {
		if got, _ := f.Identity(id); got.Status != "deactivated" || got.ModifiedBy != "revoker@example.com" {
			t.Fatalf("after offboarding %s by %q", got.Status, got.ModifiedBy)
		}
	}
	if f.CanMint(a.ID) {
		t.Fatal("the offboarded agent can mint")
	}
}

func TestCheckSettings(t *testing.T) {
	t.Parallel()
	base := provider.APISettings{BaseURL: "http://z", AccountID: "a", ProjectID: "p"}
	for _, tc := range []struct {
		change func(*provider.APISettings)
		want   string
	}{
		{func(s *provider.APISettings) { s.BaseURL = "" }, "base_url"},
		{func(s *provider.APISettings) { s.ClientSecret = "sekrit" }, "client_id"},
		{func(s *provider.APISettings) { s.Actor = "system:idpsync" }, "system:"},
	} {
		s := base
		tc.change(&s)
		err := checkSettings(s)
		if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "sekrit") {
			t.Errorf("checkSettings = %v, want an error naming %s and no secret", err, tc.want)
		}
	}
	if err := checkSettings(base); err != nil {
		t.Fatal(err)
	}
}

func TestDecodeErrorRecognizesZeroIDShapesOnly(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, ct, body string
		status         int
		recognized     bool
		code, message  string
	}{
		{"resource 404", "application/problem+json", `{"$schema":"x","title":"Not Found","status":404,"detail":"identity not found"}`, 404, true, "", "identity not found"},
		{"route 404", "text/plain; charset=utf-8", "404 page not found\n", 404, false, "", ""},
		{"405", "", "", 405, false, "", ""},
		{"problem of another status", "application/problem+json", `{"title":"Not Found","status":404,"detail":"x"}`, 502, false, "", ""},
		{"problem served as JSON", "application/json", `{"title":"Not Found","status":404,"detail":"x"}`, 404, false, "", ""},
		{"gateway JSON", "application/json", `{"message":"no Route matched with those values"}`, 404, false, "", ""},
		{"gateway error string", "application/json", `{"error":"Not Found"}`, 404, false, "", ""},
		{"envelope", "application/json", `{"error":{"code":400,"internalCode":"ZEROID-40001","message":"Content-Type must be application/json, got: text/plain","requestId":"vm/x-1","status":"BAD_REQUEST"}}`,
			400, true, "ZEROID-40001", "Content-Type must be application/json, got: text/plain"},
		{"oauth", "application/json", `{"error":"invalid_grant","error_description":"invalid api key"}`, 400, true, "invalid_grant", "invalid api key"},
		{"revoke error", "application/json", `{"$schema":"x","revoked":false,"error":"invalid_client","error_description":"invalid client credentials"}`,
			401, true, "invalid_client", "invalid client credentials"},
		{"validation", "application/problem+json", `{"title":"Unprocessable Entity","status":422,"detail":"validation failed","errors":[{"message":"expected length >= 1","location":"body.owner_user_id","value":""}]}`,
			422, true, "", "validation failed"},
	} {
		h := http.Header{}
		if tc.ct != "" {
			h.Set("Content-Type", tc.ct)
		}
		e := decodeError(tc.status, h, []byte(tc.body))
		if e.Recognized != tc.recognized || e.Code != tc.code || e.Message != tc.message {
			t.Errorf("%s: %+v, want recognized=%v code=%q message=%q", tc.name, e, tc.recognized, tc.code, tc.message)
		}
	}
	e := decodeError(422, http.Header{"Content-Type": {"application/problem+json"}},
		[]byte(`{"title":"Unprocessable Entity","status":422,"detail":"validation failed","errors":[{"message":"expected length >= 1","location":"body.owner_user_id"}]}`))
	if len(e.Fields) != 1 || e.Fields[0].Field != "body.owner_user_id" {
		t.Fatalf("fields %+v", e.Fields)
	}
}
