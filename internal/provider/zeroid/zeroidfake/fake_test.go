package zeroidfake_test

import (
	"bufio"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/idpsync/idpsync/internal/provider/zeroid/zeroidfake"
)

func TestSeedingIsDeterministic(t *testing.T) {
	t.Parallel()
	a, b := zeroidfake.New(zeroidfake.Options{Seed: 7, Identities: 5, Owners: 2}), zeroidfake.New(zeroidfake.Options{Seed: 7, Identities: 5, Owners: 2})
	if strings.Join(a.IdentityIDs(), ",") != strings.Join(b.IdentityIDs(), ",") {
		t.Fatal("the same seed gave different identities")
	}
	ida, sa := a.ClientCredentials()
	idb, sb := b.ClientCredentials()
	if ida != "idpsync" || ida != idb || sa != sb || len(sa) < 32 {
		t.Fatalf("clients %s/%d and %s, want the same generated secret", ida, len(sa), idb)
	}
	ka, _ := a.IssueAPIKey(a.IdentityIDs()[0])
	kb, _ := b.IssueAPIKey(b.IdentityIDs()[0])
	if ka != kb || !strings.HasPrefix(ka, "zid_sk_") {
		t.Fatalf("keys %s and %s", ka, kb)
	}
	if c := zeroidfake.New(zeroidfake.Options{Seed: 8, Identities: 1}); c.IdentityIDs()[0] == a.IdentityIDs()[0] {
		t.Fatal("another seed gave the same identity")
	}
	i, _ := a.Identity(a.IdentityIDs()[3])
	if i.OwnerUserID != "user_1" || i.Status != "active" || i.SubType != "tool_agent" || i.Origin != "native" {
		t.Fatalf("generated identity %+v", i)
	}
}

// The Go API applies ZeroID's semantics: what suspension, a signal and deactivation leave working.
func TestGoAPISemantics(t *testing.T) {
	t.Parallel()
	f := zeroidfake.New(zeroidfake.Options{})
	i := f.CreateIdentity(zeroidfake.Identity{OwnerUserID: "user_a", CreatedBy: "admin"})
	key, err := f.IssueAPIKey(i.ID)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := f.MintToken(key, "read")
	if err != nil || !f.TokenActive(tok) || !f.CanMint(i.ID) {
		t.Fatalf("a fresh identity: token %v, can mint %v", f.TokenActive(tok), f.CanMint(i.ID))
	}
	if _, err := f.SetStatus(i.ID, "suspended", "ops"); err != nil {
		t.Fatal(err)
	}
	var oe *zeroidfake.OAuthError
	if _, err := f.MintToken(key, ""); !errors.As(err, &oe) || oe.Code != "invalid_grant" || oe.Description != "identity is suspended or deactivated" {
		t.Fatalf("minting while suspended: %v", err)
	}
	if !f.TokenActive(tok) || f.CanMint(i.ID) {
		t.Fatal("suspension must keep the token and block minting")
	}
	if _, err := f.SetStatus(i.ID, "active", "ops"); err != nil {
		t.Fatal(err)
	}
	got, err := f.SetStatus(i.ID, "deactivated", "")
	if err != nil || got.ModifiedBy != "" {
		t.Fatalf("deactivated %+v, %v; an absent actor clears modified_by", got, err)
	}
	if f.TokenActive(tok) || f.CanMint(i.ID) {
		t.Fatal("deactivation must revoke the token and the key")
	}
	if _, err := f.MintToken(key, ""); !errors.As(err, &oe) || oe.Description != "invalid api key" {
		t.Fatalf("minting with the revoked key: %v", err)
	}
	signals := f.Signals()
	last := signals[len(signals)-1]
	if last.IdentityID != i.ID || last.SignalType != "retirement" || last.Severity != "high" || last.Source != "identity_lifecycle" ||
		last.Payload["reason"] != "identity_deactivated" {
		t.Fatalf("lifecycle signal %+v", last)
	}
	if _, err := f.SetStatus(i.ID, "suspended", ""); err == nil {
		t.Fatal("deactivated → suspended is not a transition ZeroID allows")
	}
	if _, err := f.SetStatus(i.ID, "active", ""); err != nil || f.CanMint(i.ID) {
		t.Fatalf("re-activation must not restore the key: %v", err)
	}
}

// The signal stream: "connected", then the tenant's signals only, lifecycle ones included.
func TestSignalStream(t *testing.T) {
	t.Parallel()
	f := zeroidfake.New(zeroidfake.Options{Identities: 1})
	base := f.Start()
	defer f.Close()
	acc, proj := f.Tenant()
	req, _ := http.NewRequestWithContext(t.Context(), "GET", base+"/api/v1/signals/stream", nil)
	req.Header.Set("X-Account-ID", acc)
	req.Header.Set("X-Project-ID", proj)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("Content-Type %q", resp.Header.Get("Content-Type"))
	}
	lines := make(chan string, 16)
	go func() {
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			if sc.Text() != "" {
				lines <- sc.Text()
			}
		}
		close(lines)
	}()
	next := func() string {
		select {
		case l := <-lines:
			return l
		case <-time.After(10 * time.Second):
			t.Fatal("no event")
			return ""
		}
	}
	if a, b := next(), next(); a != "event: connected" || b != "data: {}" {
		t.Fatalf("first event %q %q", a, b)
	}
	other := f.CreateIdentity(zeroidfake.Identity{OwnerUserID: "u", AccountID: "acct_other"})
	if _, err := f.SetStatus(other.ID, "deactivated", ""); err != nil { // another tenant: not streamed
		t.Fatal(err)
	}
	id := f.IdentityIDs()[0]
	if _, err := f.SetStatus(id, "deactivated", ""); err != nil {
		t.Fatal(err)
	}
	if a, b := next(), next(); a != "event: signal" || !strings.Contains(b, `"identity_id":"`+id+`"`) || !strings.Contains(b, `"signal_type":"retirement"`) {
		t.Fatalf("signal event %q %q", a, b)
	}
	f.Close() // ends the stream
	for l := range lines {
		t.Fatalf("unexpected line after close %q", l)
	}
}
