package fakeidp_test

import (
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/idpsync/idpsync/internal/fakeidp"
	"github.com/idpsync/idpsync/internal/provider/authpi"
	"github.com/idpsync/idpsync/internal/provider/authpi/authpifake"
	"github.com/idpsync/idpsync/internal/provider/clerk"
	"github.com/idpsync/idpsync/internal/provider/clerk/clerkfake"
	"github.com/idpsync/idpsync/internal/provider/zeroid/zeroidfake"
	"github.com/idpsync/idpsync/internal/provider/zitadel"
	"github.com/idpsync/idpsync/internal/provider/zitadel/zitadelfake"
	"github.com/idpsync/idpsync/internal/webhook"
)

// receiver verifies every delivery with v and keeps the verified bodies.
type receiver struct {
	mu     sync.Mutex
	bodies [][]byte
	errs   []error
}

func newReceiver(t *testing.T, v webhook.Verifier) (*receiver, string) {
	t.Helper()
	rc := &receiver{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		_, err := v.Verify(body, r.Header)
		rc.mu.Lock()
		defer rc.mu.Unlock()
		if err != nil {
			rc.errs = append(rc.errs, err)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		rc.bodies = append(rc.bodies, body)
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(srv.Close)
	return rc, srv.URL
}

func (rc *receiver) events(t *testing.T) []map[string]any {
	t.Helper()
	rc.mu.Lock()
	defer rc.mu.Unlock()
	for _, err := range rc.errs {
		t.Errorf("delivery failed verification: %v", err)
	}
	var out []map[string]any
	for _, b := range rc.bodies {
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatal(err)
		}
		out = append(out, m)
	}
	return out
}

const clerkSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

func TestClerkWebhooksFollowMutations(t *testing.T) {
	t.Parallel()
	v, err := clerk.NewSvix(clerk.SvixConfig{Secrets: []string{clerkSecret}, Tolerance: 5 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	rc, url := newReceiver(t, v)
	f := clerkfake.New(clerkfake.Options{Users: 2, Organizations: 1, MembersPerOrganization: 1, SessionsPerUser: 1})
	base := f.Start()
	defer f.Close()
	f.SetWebhookTarget(fakeidp.WebhookTarget{URL: url, Secret: clerkSecret})

	u := f.CreateUser(clerkfake.User{FirstName: "Grace", LastName: "Hopper", Email: "grace@example.com"})
	org := f.OrganizationIDs()[0]
	if _, err := f.AddMembership(org, u.ID, "org:admin"); err != nil {
		t.Fatal(err)
	}
	// A ban through the API revokes the user's sessions and updates the user.
	victim := f.UserIDs()[0]
	req, _ := http.NewRequest(http.MethodPost, base+"/users/"+victim+"/ban", nil)
	req.Header.Set("Authorization", "Bearer "+f.SecretKey())
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("ban: %v %v", resp, err)
	}
	resp.Body.Close()
	if err := f.DeleteUser(u.ID); err != nil {
		t.Fatal(err)
	}
	if err := f.FlushWebhooks(t.Context()); err != nil {
		t.Fatal(err)
	}

	evs := rc.events(t)
	var types []string
	for _, e := range evs {
		types = append(types, e["type"].(string))
		if e["object"] != "event" || e["instance_id"] == "" || e["timestamp"] == nil {
			t.Fatalf("envelope is not Clerk's: %v", e)
		}
	}
	want := []string{"user.created", "organizationMembership.created", "session.revoked", "user.updated", "user.deleted"}
	if strings.Join(types, ",") != strings.Join(want, ",") {
		t.Fatalf("event types %v, want %v", types, want)
	}
	if d := evs[3]["data"].(map[string]any); d["id"] != victim || d["banned"] != true {
		t.Fatalf("user.updated data %v, want the banned user", d)
	}
	if d := evs[4]["data"].(map[string]any); d["deleted"] != true || d["object"] != "user" || len(d) != 3 {
		t.Fatalf("user.deleted data %v, want a DeletedObject", d)
	}
	if m := f.MutationsOf("user.ban"); len(m) != 1 || m[0].ID != victim {
		t.Fatalf("recorded bans %+v", m)
	}
	if s := f.SessionsOf(victim); len(s) != 1 || s[0].Status != "revoked" {
		t.Fatalf("sessions after ban %+v", s)
	}
}

func TestZitadelWebhooksAreSignedActionsEvents(t *testing.T) {
	t.Parallel()
	v, err := zitadel.NewVerifier(zitadel.VerifierConfig{SigningKeys: []string{"zitadel-signing-key"}, Tolerance: 5 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	rc, url := newReceiver(t, v)
	f := zitadelfake.New(zitadelfake.Options{Users: 1})
	f.Start()
	defer f.Close()
	f.SetWebhookTarget(fakeidp.WebhookTarget{URL: url, Secret: "zitadel-signing-key"})
	u := f.CreateUser(zitadelfake.User{Username: "ada", FirstName: "Ada", LastName: "Lovelace", Email: "ada@example.com"})
	if _, err := f.SetUserState(u.ID, "USER_STATE_INACTIVE"); err != nil {
		t.Fatal(err)
	}
	if err := f.DeleteUser(u.ID); err != nil {
		t.Fatal(err)
	}
	if err := f.FlushWebhooks(t.Context()); err != nil {
		t.Fatal(err)
	}
	evs := rc.events(t)
	if len(evs) != 3 {
		t.Fatalf("got %d events, want 3", len(evs))
	}
	for i, want := range []string{"user.human.added", "user.deactivated", "user.removed"} {
		e := evs[i]
		if e["event_type"] != want || e["aggregateID"] != u.ID || e["aggregateType"] != "user" || e["instanceID"] == "" {
			t.Fatalf("event %d = %v, want %s for %s", i, e, want, u.ID)
		}
		if e["sequence"].(float64) != float64(i+1) {
			t.Fatalf("event %d sequence %v, want %d", i, e["sequence"], i+1)
		}
	}
	raw, err := base64.StdEncoding.DecodeString(evs[0]["event_payload"].(string))
	if err != nil || !strings.Contains(string(raw), `"email":"ada@example.com"`) {
		t.Fatalf("event_payload %s (%v), want base64 JSON with the email", raw, err)
	}
	if _, ok := evs[2]["event_payload"]; ok {
		t.Fatal("user.removed must carry no payload")
	}
}

func TestAuthPIWebhookSchemes(t *testing.T) {
	t.Parallel()
	for _, scheme := range []string{"bearer", "signature", "bearer+signature"} {
		t.Run(scheme, func(t *testing.T) {
			t.Parallel()
			bearer, _ := authpi.NewBearer("bearer-token")
			hmac, _ := authpi.NewHMAC("signing-secret")
			var v webhook.Verifier = bearer
			target := fakeidp.WebhookTarget{Scheme: scheme, Secret: "bearer-token"}
			switch scheme {
			case "signature":
				v, target.Secret = hmac, "signing-secret"
			case "bearer+signature":
				v, target.SignatureSecret = webhook.All{bearer, hmac}, "signing-secret"
			}
			rc, url := newReceiver(t, v)
			target.URL = url
			f := authpifake.New(authpifake.Options{})
			defer f.Close()
			f.SetWebhookTarget(target)
			u, err := f.CreateUser(authpifake.User{Email: "x@example.com"})
			if err != nil {
				t.Fatal(err)
			}
			if err := f.FlushWebhooks(t.Context()); err != nil {
				t.Fatal(err)
			}
			evs := rc.events(t)
			if len(evs) != 1 || evs[0]["specversion"] != "1.0" || evs[0]["type"] != "event" {
				t.Fatalf("events %v, want one CloudEvent", evs)
			}
			inner := evs[0]["data"].(map[string]any)
			if inner["type"] != "user.created" || inner["subject"].(map[string]any)["user_id"] != u.ID {
				t.Fatalf("inner event %v", inner)
			}
		})
	}
}

func TestFailedDeliveriesAreRetriedAndRecorded(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	calls := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		mu.Lock()
		calls++
		n := calls
		mu.Unlock()
		if n < 3 {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusOK)
	}))
	defer srv.Close()
	f := clerkfake.New(clerkfake.Options{})
	defer f.Close()
	f.SetWebhookTarget(fakeidp.WebhookTarget{URL: srv.URL, Secret: clerkSecret, RetryDelay: time.Millisecond})
	f.CreateUser(clerkfake.User{FirstName: "A"})
	if err := f.FlushWebhooks(t.Context()); err != nil {
		t.Fatal(err)
	}
	d := f.Deliveries()
	if len(d) != 1 || d[0].Attempts != 3 || d[0].Status != http.StatusOK || d[0].Header.Get("svix-id") != d[0].ID {
		t.Fatalf("deliveries %+v, want one delivered on the third attempt", d)
	}
}

func TestPageLimitsAreEnforcedLikeTheRealAPIs(t *testing.T) {
	t.Parallel()
	clerk := clerkfake.New(clerkfake.Options{Users: 1})
	authpi := authpifake.New(authpifake.Options{Users: 1})
	zitadel := zitadelfake.New(zitadelfake.Options{Users: 1})
	zeroid := zeroidfake.New(zeroidfake.Options{Identities: 30})
	for _, f := range []interface{ Close() }{clerk, authpi, zitadel, zeroid} {
		defer f.Close()
	}
	do := func(method, url, auth, body string, hdr ...string) (int, string) {
		req, _ := http.NewRequest(method, url, strings.NewReader(body))
		req.Header.Set("Authorization", auth)
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if st, body := do("GET", clerk.Start()+"/users?limit=501", "Bearer "+clerk.SecretKey(), ""); st != 422 || !strings.Contains(body, `"param_name":"limit"`) {
		t.Errorf("clerk limit=501: %d %s", st, body)
	}
	id, secret := authpi.APIKey()
	basic := "Basic " + base64.StdEncoding.EncodeToString([]byte(id+":"+secret))
	if st, body := do("GET", authpi.Start()+"/v1/accounts/"+authpi.AccountID()+"/issuers/"+authpi.IssuerIDs()[0]+"/users?limit=101", basic, ""); st != 400 || !strings.Contains(body, `"field":"limit"`) {
		t.Errorf("authpi limit=101: %d %s", st, body)
	}
	if st, body := do("POST", zitadel.Start()+"/v2/users", "Bearer "+zitadel.PAT(), `{"query":{"offset":"0","limit":1001}}`); st != 400 || !strings.Contains(body, `"code":3`) {
		t.Errorf("zitadel limit=1001: %d %s", st, body)
	}
	acc, proj := zeroid.Tenant()
	st, body := do("GET", zeroid.Start()+"/api/v1/identities?limit=500", "", "", "X-Account-ID", acc, "X-Project-ID", proj)
	if st != 200 || !strings.Contains(body, `"limit":20`) {
		t.Errorf("zeroid limit=500 must fall back to 20 like ZeroID: %d %.200s", st, body)
	}
}

func TestFailEveryAndLatency(t *testing.T) {
	t.Parallel()
	f := clerkfake.New(clerkfake.Options{Users: 1})
	base := f.Start()
	defer f.Close()
	f.FailEvery(3, fakeidp.Failure{Status: http.StatusTooManyRequests, RetryAfter: 2 * time.Second})
	f.SetLatency(20 * time.Millisecond)
	var statuses []int
	for range 6 {
		req, _ := http.NewRequest("GET", base+"/users/count", nil)
		req.Header.Set("Authorization", "Bearer "+f.SecretKey())
		start := time.Now()
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		if time.Since(start) < 20*time.Millisecond {
			t.Fatal("latency was not injected")
		}
		if resp.StatusCode == 429 && resp.Header.Get("Retry-After") != "2" {
			t.Fatalf("Retry-After = %q, want 2", resp.Header.Get("Retry-After"))
		}
		resp.Body.Close()
		statuses = append(statuses, resp.StatusCode)
	}
	want := []int{200, 200, 429, 200, 200, 429}
	for i := range want {
		if statuses[i] != want[i] {
			t.Fatalf("statuses %v, want %v", statuses, want)
		}
	}
}

func TestSeedingIsDeterministicAndCheap(t *testing.T) {
	t.Parallel()
	start := time.Now()
	a := clerkfake.New(clerkfake.Options{Users: 100_000, Seed: 42})
	elapsed := time.Since(start)
	b := clerkfake.New(clerkfake.Options{Users: 100_000, Seed: 42})
	ia, ib := a.UserIDs(), b.UserIDs()
	if len(ia) != 100_000 || ia[0] != ib[0] || ia[99_999] != ib[99_999] {
		t.Fatal("the same seed must give the same users")
	}
	seen := make(map[string]bool, len(ia))
	for i, id := range ia {
		if seen[id] {
			t.Fatalf("duplicate id %s", id)
		}
		seen[id] = true
		if i > 0 && id <= ia[i-1] {
			t.Fatalf("ids do not sort in creation order at %d", i)
		}
	}
	// Not a performance assertion: a guard against an accidental quadratic seeder.
	if elapsed > 10*time.Second {
		t.Fatalf("seeding 100,000 users took %s", elapsed)
	}
}

func TestSampleEventsForEveryProvider(t *testing.T) {
	t.Parallel()
	c := clerkfake.New(clerkfake.Options{Users: 1, Organizations: 1, MembersPerOrganization: 1})
	z := zitadelfake.New(zitadelfake.Options{Users: 1})
	a := authpifake.New(authpifake.Options{Users: 1, Organizations: 1})
	cases := map[string]func(string) (fakeidp.Event, error){}
	for _, typ := range []string{"user.created", "user.updated", "user.deleted", "organization.created", "organization.deleted",
		"organizationMembership.created", "organizationMembership.deleted", "session.revoked"} {
		cases["clerk "+typ] = c.SampleEvent
	}
	for _, typ := range []string{"user.human.added", "user.deactivated", "user.removed", "org.added", "org.member.added", "session.terminated"} {
		cases["zitadel "+typ] = z.SampleEvent
	}
	for _, typ := range []string{"user.created", "user.deleted", "organization.suspended"} {
		cases["authpi "+typ] = a.SampleEvent
	}
	for name, sample := range cases {
		typ := name[strings.Index(name, " ")+1:]
		ev, err := sample(typ)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if ev.Type != typ || ev.ID == "" || !json.Valid(ev.Body) {
			t.Errorf("%s: event %+v", name, ev)
		}
	}
	if _, err := c.SampleEvent("no.such.type"); err == nil {
		t.Error("an unknown type must be refused")
	}
}
