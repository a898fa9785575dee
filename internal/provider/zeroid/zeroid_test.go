package zeroid_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"iter"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/idpsync/idpsync/internal/fakeidp"
	"github.com/idpsync/idpsync/internal/idpclient"
	"github.com/idpsync/idpsync/internal/idpclient/idpclienttest"
	"github.com/idpsync/idpsync/internal/provider/zeroid"
	"github.com/idpsync/idpsync/internal/provider/zeroid/zeroidfake"
)

// Tests of the client against ZeroID. Those named "…AgainstBackends" run against the fake in
// both modes, at the root of its listener and behind a gateway that mounts it under /zeroid, and
// against real ZeroIDs when
//
//	ZEROID_TEST_URL_P=http://127.0.0.1:25101   (allow_unauthenticated_token_inspection: true)
//	ZEROID_TEST_URL_S=http://127.0.0.1:25102   (false, as in production)
//
// are set. Nothing else is needed: each test works in a tenant of its own and creates its own
// OAuth client, identities and keys through ZeroID's admin API.

var fastRetry = idpclient.RetryPolicy{BaseDelay: time.Millisecond, MaxDelay: 5 * time.Millisecond}

// backend is a ZeroID a test runs against.
type backend struct {
	name string
	base string
	mode zeroidfake.Mode
	fake *zeroidfake.Fake // nil for a real server
}

// prefixProxy serves target under /zeroid, as a gateway mounting ZeroID on a path would, and
// returns the proxy's root.
func prefixProxy(t *testing.T, target string) string {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/zeroid/", http.StripPrefix("/zeroid", httputil.NewSingleHostReverseProxy(u)))
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv.URL
}

func startFake(t *testing.T, opts zeroidfake.Options) *zeroidfake.Fake {
	t.Helper()
	f := zeroidfake.New(opts)
	f.Start()
	t.Cleanup(f.Close)
	return f
}

func backends(t *testing.T) []backend {
	t.Helper()
	var out []backend
	for _, m := range []zeroidfake.Mode{zeroidfake.ModePermissive, zeroidfake.ModeStrict} {
		root := startFake(t, zeroidfake.Options{Mode: m})
		out = append(out, backend{name: "fake" + string(m) + "/root", base: root.URL(), mode: m, fake: root})
		behind := startFake(t, zeroidfake.Options{Mode: m})
		out = append(out, backend{name: "fake" + string(m) + "/prefix", base: prefixProxy(t, behind.URL()) + "/zeroid", mode: m, fake: behind})
	}
	for env, m := range map[string]zeroidfake.Mode{"ZEROID_TEST_URL_P": zeroidfake.ModePermissive, "ZEROID_TEST_URL_S": zeroidfake.ModeStrict} {
		if u := strings.TrimSuffix(os.Getenv(env), "/"); u != "" {
			out = append(out, backend{name: "real" + string(m) + "/root", base: u, mode: m},
				backend{name: "real" + string(m) + "/prefix", base: prefixProxy(t, u) + "/zeroid", mode: m})
		}
	}
	return out
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// world is a fresh tenant on a backend, an OAuth client for idpsync and a client using it.
type world struct {
	t                *testing.T
	b                backend
	run              string
	acct, proj       string
	clientID, secret string
	c                *zeroid.Client
}

func newWorld(t *testing.T, b backend) *world {
	t.Helper()
	w := &world{t: t, b: b, run: randomHex(4), proj: "proj_test"}
	w.acct = "acct_idpsync_" + w.run
	w.clientID = "idpsync-" + w.run
	var created struct {
		Secret string `json:"client_secret"`
	}
	w.admin(http.MethodPost, "/api/v1/oauth/clients", "", map[string]any{"client_id": w.clientID, "name": "idpsync",
		"confidential": true, "grant_types": []string{"client_credentials"}, "scopes": []string{"identities:read"}}, http.StatusCreated, &created)
	w.secret = created.Secret
	w.c = w.client(nil)
	return w
}

// client returns a client of the world's tenant with its OAuth client; change adjusts the config.
func (w *world) client(change func(*zeroid.Config)) *zeroid.Client {
	w.t.Helper()
	cfg := zeroid.Config{BaseURL: w.b.base, AccountID: w.acct, ProjectID: w.proj, ClientID: w.clientID, ClientSecret: w.secret, Retry: fastRetry}
	if change != nil {
		change(&cfg)
	}
	c, err := zeroid.New(cfg)
	if err != nil {
		w.t.Fatal(err)
	}
	return c
}

// admin calls ZeroID's admin API directly, in the world's tenant, and decodes the answer.
func (w *world) admin(method, path, user string, body any, wantStatus int, out any) {
	w.t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequestWithContext(w.t.Context(), method, w.b.base+path, rd)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Account-ID", w.acct)
	req.Header.Set("X-Project-ID", w.proj)
	if user != "" {
		req.Header.Set("X-User-ID", user)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		w.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != wantStatus {
		w.t.Fatalf("%s %s: %d %s, want %d", method, path, resp.StatusCode, raw, wantStatus)
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			w.t.Fatal(err)
		}
	}
}

// identity creates an agent identity owned by owner and returns its id.
func (w *world) identity(owner string) string {
	w.t.Helper()
	var out struct {
		ID string `json:"id"`
	}
	w.admin(http.MethodPost, "/api/v1/identities", "admin@example.com", map[string]any{"external_id": "agent-" + randomHex(4),
		"name": "agent", "owner_user_id": owner}, http.StatusCreated, &out)
	return out.ID
}

// get reads an identity through the admin API.
func (w *world) get(id string) zeroid.Identity {
	w.t.Helper()
	var out zeroid.Identity
	w.admin(http.MethodGet, "/api/v1/identities/"+id, "", nil, http.StatusOK, &out)
	return out
}

func (w *world) setStatus(id, status string) {
	w.t.Helper()
	w.admin(http.MethodPatch, "/api/v1/identities/"+id, "admin@example.com", map[string]any{"status": status}, http.StatusOK, nil)
}

// key creates an API key for an identity.
func (w *world) key(id string) string {
	w.t.Helper()
	var out struct {
		Key string `json:"key"`
	}
	w.admin(http.MethodPost, "/api/v1/api-keys", "admin@example.com", map[string]any{"name": "k", "identity_id": id}, http.StatusCreated, &out)
	return out.Key
}

// mint exchanges a key for a token through the client.
func (w *world) mint(key string) string {
	w.t.Helper()
	tok, err := w.c.IssueToken(w.t.Context(), &zeroid.IssueTokenParams{APIKey: key})
	if err != nil {
		w.t.Fatalf("minting: %v", err)
	}
	return tok.AccessToken
}

// active asks the client, and the fake's Go API when there is a fake, whether a token is active.
func (w *world) active(tok string) bool {
	w.t.Helper()
	in, err := w.c.IntrospectToken(w.t.Context(), tok)
	if err != nil {
		w.t.Fatalf("introspecting: %v", err)
	}
	if w.b.fake != nil && w.b.fake.TokenActive(tok) != in.Active {
		w.t.Fatalf("the fake's Go API says active=%v, its introspection %v", w.b.fake.TokenActive(tok), in.Active)
	}
	return in.Active
}

// refused asserts that minting with key fails as ZeroID refuses it: invalid_grant with desc.
func (w *world) refused(key, desc string) {
	w.t.Helper()
	_, err := w.c.IssueToken(w.t.Context(), &zeroid.IssueTokenParams{APIKey: key})
	var apiErr *idpclient.APIError
	if !errors.As(err, &apiErr) || apiErr.Status != http.StatusBadRequest || apiErr.Code != "invalid_grant" || apiErr.Message != desc {
		w.t.Fatalf("minting err = %v, want 400 invalid_grant %q", err, desc)
	}
	if !errors.Is(err, idpclient.ErrValidation) || idpclient.Retryable(err) {
		w.t.Fatalf("a refused key must be a permanent validation error: %v", err)
	}
	if strings.Contains(err.Error(), key) {
		w.t.Fatalf("the error carries the API key: %v", err)
	}
}

func (w *world) canMint(id string, want bool) {
	w.t.Helper()
	if w.b.fake != nil && w.b.fake.CanMint(id) != want {
		w.t.Fatalf("fake CanMint(%s) = %v, want %v", id, !want, want)
	}
}

func forEachBackend(t *testing.T, test func(t *testing.T, w *world)) {
	t.Helper()
	for _, b := range backends(t) {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			test(t, newWorld(t, b))
		})
	}
}

// A critical signal kills the tokens the identity holds now; nothing else: the identity stays
// active and its key mints a new, active token at once.
func TestCriticalSignalRevokesTokensKeyMintsAgainAgainstBackends(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, w *world) {
		victim, bystander := w.identity("owner-"+w.run), w.identity("owner-"+w.run)
		vk, bk := w.key(victim), w.key(bystander)
		old, other := w.mint(vk), w.mint(bk)
		sig, err := w.c.IngestSignal(t.Context(), &zeroid.IngestSignalParams{IdentityID: victim, SignalType: zeroid.SignalCredentialChange,
			Severity: zeroid.SeverityCritical, Payload: map[string]any{"reason": "owner banned"}})
		if err != nil {
			t.Fatal(err)
		}
		if sig.IdentityID != victim || sig.Source != "idpsync" || sig.Severity != "critical" || sig.AccountID != w.acct {
			t.Fatalf("signal = %+v", sig)
		}
		if w.active(old) {
			t.Fatal("the identity's token is still active after a critical signal")
		}
		if !w.active(other) {
			t.Fatal("a critical signal revoked another identity's token")
		}
		if got := w.get(victim).Status; got != "active" {
			t.Fatalf("status after a signal = %s, want active (a signal is no kill switch)", got)
		}
		w.canMint(victim, true)
		if fresh := w.mint(vk); !w.active(fresh) {
			t.Fatal("the key's new token is not active")
		}
	})
}

// DeactivateIdentity leaves the identity nothing: tokens inactive, key refused, as "idpsync".
func TestDeactivateIdentityRevokesTokensAndKeysAgainstBackends(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, w *world) {
		id := w.identity("owner-" + w.run)
		k := w.key(id)
		t1, t2 := w.mint(k), w.mint(k)
		got, err := w.c.DeactivateIdentity(t.Context(), id)
		if err != nil {
			t.Fatal(err)
		}
		if got.ID != id || got.Status != "deactivated" || got.ModifiedBy != zeroid.DefaultUserID {
			t.Fatalf("deactivated = %+v, want status deactivated, modified_by %s", got, zeroid.DefaultUserID)
		}
		if w.active(t1) || w.active(t2) {
			t.Fatal("a token of the deactivated identity is still active")
		}
		w.refused(k, "invalid api key")
		w.canMint(id, false)
		// Again: the same answer, nothing changes.
		if again, err := w.c.DeactivateIdentity(t.Context(), id); err != nil || again.Status != "deactivated" {
			t.Fatalf("second deactivation = %+v, %v", again, err)
		}
		// Re-activating does not restore the key.
		w.setStatus(id, "active")
		w.refused(k, "invalid api key")
	})
}

// Suspending (what an operator may do by hand) blocks minting but leaves tokens valid; idpsync's
// revocations therefore never rely on it.
func TestSuspensionKeepsTokensAgainstBackends(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, w *world) {
		id := w.identity("owner-" + w.run)
		k := w.key(id)
		tok := w.mint(k)
		w.setStatus(id, "suspended")
		if !w.active(tok) {
			t.Fatal("suspension revoked a token; ZeroID keeps them")
		}
		w.refused(k, "identity is suspended or deactivated")
		w.canMint(id, false)
	})
}

// OffboardByOwner deactivates every identity of the owner in the tenant, suspended ones too: no
// token of theirs is active, their keys are refused; another owner's are untouched; a second
// call changes nothing.
func TestOffboardByOwnerAgainstBackends(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, w *world) {
		owner := "dave-" + w.run
		var ids, keys, toks []string
		for range 3 {
			id := w.identity(owner)
			k := w.key(id)
			ids, keys, toks = append(ids, id), append(keys, k), append(toks, w.mint(k))
		}
		w.setStatus(ids[2], "suspended")
		other := w.identity("erin-" + w.run)
		ok := w.key(other)
		otherTok := w.mint(ok)

		res, err := w.c.OffboardByOwner(t.Context(), owner, "user.deleted at clerk")
		if err != nil {
			t.Fatal(err)
		}
		if res.IdentitiesDeactivated != 3 {
			t.Fatalf("offboarding = %+v, want 3 identities deactivated", res)
		}
		for i, id := range ids {
			if w.active(toks[i]) {
				t.Fatalf("token of %s still active", id)
			}
			w.refused(keys[i], "invalid api key")
			w.canMint(id, false)
			if got := w.get(id); got.Status != "deactivated" || got.ModifiedBy != zeroid.DefaultUserID {
				t.Fatalf("identity after offboarding = %s by %q", got.Status, got.ModifiedBy)
			}
		}
		if !w.active(otherTok) {
			t.Fatal("offboarding touched another owner's token")
		}
		w.canMint(other, true)
		if res, err := w.c.OffboardByOwner(t.Context(), owner, ""); err != nil || res.IdentitiesDeactivated != 0 || res.CredentialsRevoked != 0 {
			t.Fatalf("second offboarding = %+v, %v; want 0/0", res, err)
		}
	})
}

// Introspection and revocation with each client authentication, in each mode.
func TestIntrospectAndRevokeClientAuthAgainstBackends(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, w *world) {
		k := w.key(w.identity("owner-" + w.run))
		tok := w.mint(k)
		post := w.client(func(c *zeroid.Config) { c.ClientAuthMethod = zeroid.ClientSecretPost })
		if in, err := post.IntrospectToken(t.Context(), tok); err != nil || !in.Active || !strings.HasPrefix(in.Sub, "spiffe://") {
			t.Fatalf("client_secret_post: %+v, %v", in, err)
		}
		if in, err := w.c.IntrospectToken(t.Context(), tok); err != nil || !in.Active || in.AccountID != w.acct || in.Act == nil || in.Act.Sub != "admin@example.com" {
			t.Fatalf("client_secret_basic: %+v, %v", in, err)
		}
		for _, method := range []string{zeroid.ClientSecretBasic, zeroid.ClientSecretPost} {
			wrong := w.client(func(c *zeroid.Config) { c.ClientSecret, c.ClientAuthMethod = "wrong-secret-"+w.run, method })
			_, err := wrong.IntrospectToken(t.Context(), tok)
			if !errors.Is(err, idpclient.ErrUnauthorized) || idpclient.Retryable(err) {
				t.Fatalf("%s with a wrong secret: %v, want permanent ErrUnauthorized", method, err)
			}
			if strings.Contains(err.Error(), "wrong-secret-"+w.run) || strings.Contains(err.Error(), tok) {
				t.Fatalf("the error carries a secret: %v", err)
			}
		}
		anonymous := w.client(func(c *zeroid.Config) { c.ClientID, c.ClientSecret = "", "" })
		_, err := anonymous.IntrospectToken(t.Context(), tok)
		switch w.b.mode {
		case zeroidfake.ModePermissive:
			if err != nil {
				t.Fatalf("anonymous introspection in mode P: %v", err)
			}
		case zeroidfake.ModeStrict:
			var apiErr *idpclient.APIError
			if !errors.As(err, &apiErr) || apiErr.Status != 401 || apiErr.Code != "invalid_client" {
				t.Fatalf("anonymous introspection in mode S: %v, want 401 invalid_client", err)
			}
		}
		w.admin(http.MethodPost, "/api/v1/oauth/clients", "", map[string]any{"client_id": "pub-" + w.run, "name": "pub"}, http.StatusCreated, nil)
		public := w.client(func(c *zeroid.Config) { c.ClientID, c.ClientSecret = "pub-"+w.run, "" })
		if in, err := public.IntrospectToken(t.Context(), tok); err != nil || !in.Active {
			t.Fatalf("public client: %+v, %v", in, err)
		}

		if err := w.c.RevokeToken(t.Context(), tok); err != nil {
			t.Fatal(err)
		}
		if w.active(tok) {
			t.Fatal("the revoked token is active")
		}
		if err := post.RevokeToken(t.Context(), tok); err != nil {
			t.Fatalf("revoking again: %v", err)
		}
		if err := w.c.RevokeToken(t.Context(), "garbage"); err != nil {
			t.Fatalf("revoking an unknown token: %v", err)
		}
		if err := anonymous.RevokeToken(t.Context(), "garbage"); (err == nil) != (w.b.mode == zeroidfake.ModePermissive) {
			t.Fatalf("anonymous revocation in mode %s: %v", w.b.mode, err)
		}
		if fresh := w.mint(k); !w.active(fresh) {
			t.Fatal("revoking a token stopped its key")
		}
	})
}

// ---- against the fake only ------------------------------------------------------------------

// fakeClient is a client of a fake's default tenant with the fake's OAuth client.
func fakeClient(t *testing.T, f *zeroidfake.Fake, base string, change func(*zeroid.Config)) *zeroid.Client {
	t.Helper()
	acc, proj := f.Tenant()
	id, secret := f.ClientCredentials()
	cfg := zeroid.Config{BaseURL: base, AccountID: acc, ProjectID: proj, ClientID: id, ClientSecret: secret, Retry: fastRetry}
	if change != nil {
		change(&cfg)
	}
	c, err := zeroid.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestConformance(t *testing.T) {
	t.Parallel()
	idpclienttest.Run(t, idpclienttest.Harness{
		Provider: "zeroid",
		Setup: func(t *testing.T, users int) idpclienttest.Env {
			t.Helper()
			f := startFake(t, zeroidfake.Options{Identities: users, Seed: 9})
			c := fakeClient(t, f, f.URL(), nil)
			const wrong = "wrong-zeroid-client-secret"
			bad := fakeClient(t, f, f.URL(), func(c *zeroid.Config) { c.ClientSecret = wrong })
			seeded := f.IdentityIDs()
			target := f.CreateIdentity(zeroidfake.Identity{OwnerUserID: "someone"}) // what Write signals
			return idpclienttest.Env{
				ListUsers: func(ctx context.Context) iter.Seq2[string, error] {
					return func(yield func(string, error) bool) {
						for i, err := range c.ListIdentities(ctx, nil) {
							if i.ID == target.ID {
								continue
							}
							if !yield(i.ID, err) {
								return
							}
						}
					}
				},
				WantUserIDs: func() []string { return seeded },
				Read: func(ctx context.Context) error {
					_, err := c.IntrospectToken(ctx, "some-token")
					return err
				},
				Write: func(ctx context.Context) error {
					_, err := c.IngestSignal(ctx, &zeroid.IngestSignalParams{IdentityID: target.ID, SignalType: zeroid.SignalSessionRevoked})
					return err
				},
				WritePath: "/api/v1/signals/ingest",
				UnauthorizedRead: func(ctx context.Context) error {
					_, err := bad.IntrospectToken(ctx, "some-token")
					return err
				},
				WrongSecret: wrong,
				FailNext: func(n, status int, ra time.Duration, prefix string) {
					f.FailNext(n, fakeidp.Failure{Status: status, RetryAfter: ra, PathPrefix: prefix})
				},
				Requests: func() []idpclienttest.Request {
					var out []idpclienttest.Request
					for _, r := range f.Requests() {
						out = append(out, idpclienttest.Request{Method: r.Method, Path: r.Path, At: r.At, Status: r.Status})
					}
					return out
				},
				ListPath:    "/api/v1/identities",
				MaxPageSize: zeroid.MaxPageSize,
			}
		},
	})
}

// Listing by owner pages newest first, at the root and behind a path prefix, and never asks for
// more than 100 (ZeroID would answer a page of 20).
func TestListByOwnerPages(t *testing.T) {
	t.Parallel()
	for _, prefixed := range []bool{false, true} {
		t.Run(map[bool]string{false: "root", true: "prefix"}[prefixed], func(t *testing.T) {
			t.Parallel()
			f := startFake(t, zeroidfake.Options{Identities: 4, Seed: 2})
			base := f.URL()
			if prefixed {
				base = prefixProxy(t, base) + "/zeroid"
			}
			var want []string
			for i := range 7 {
				status := "active"
				if i == 3 {
					status = "suspended"
				}
				want = append([]string{f.CreateIdentity(zeroidfake.Identity{OwnerUserID: "user_x", Status: status}).ID}, want...)
			}
			f.CreateIdentity(zeroidfake.Identity{OwnerUserID: "user_y"})
			f.ResetRecords()

			c := fakeClient(t, f, base, func(c *zeroid.Config) { c.PageSize = 3 })
			var got []string
			for i, err := range c.ListIdentities(t.Context(), &zeroid.ListIdentitiesParams{OwnerUserID: "user_x", Status: "active,suspended"}) {
				if err != nil {
					t.Fatal(err)
				}
				got = append(got, i.ID)
			}
			if strings.Join(got, ",") != strings.Join(want, ",") {
				t.Fatalf("listed %v, want the owner's 7 newest first %v", got, want)
			}
			var offsets []string
			for _, r := range f.Requests() {
				if r.Query.Get("limit") != "3" || r.Query.Get("owner_user_id") != "user_x" {
					t.Fatalf("page request %v, want limit 3 for user_x", r.Query)
				}
				offsets = append(offsets, r.Query.Get("offset"))
			}
			if strings.Join(offsets, ",") != "0,3,6" {
				t.Fatalf("offsets %v, want 0,3,6", offsets)
			}

			f.ResetRecords()
			big := fakeClient(t, f, base, func(c *zeroid.Config) { c.PageSize = 150 })
			n := 0
			for _, err := range big.ListIdentities(t.Context(), &zeroid.ListIdentitiesParams{Limit: 500}) {
				if err != nil {
					t.Fatal(err)
				}
				n++
			}
			if n != 4+7+1 {
				t.Fatalf("listed %d identities, want 12", n)
			}
			for _, r := range f.Requests() {
				if r.Query.Get("limit") != "100" {
					t.Fatalf("asked for limit %s; ZeroID turns anything above 100 into 20", r.Query.Get("limit"))
				}
			}
		})
	}
}

// A wrong base URL or prefix meets route 404s (text/plain): that is ErrUnexpected, loud and
// permanent, never ErrNotFound ("already done"). A resource 404 is ErrNotFound.
func TestRouteNotFoundIsUnexpected(t *testing.T) {
	t.Parallel()
	f := startFake(t, zeroidfake.Options{Identities: 1})
	id := f.IdentityIDs()[0]
	proxy := prefixProxy(t, f.URL())
	for name, change := range map[string]func(*zeroid.Config){
		"proxy root without its prefix": func(c *zeroid.Config) { c.BaseURL = proxy },
		"base URL with a stray path":    func(c *zeroid.Config) { c.BaseURL = f.URL() + "/api/v1" },
		"wrong admin prefix":            func(c *zeroid.Config) { c.AdminPathPrefix = "/api/v2" },
	} {
		c := fakeClient(t, f, f.URL(), change)
		_, err := c.DeactivateIdentity(t.Context(), id)
		if !errors.Is(err, idpclient.ErrUnexpected) || errors.Is(err, idpclient.ErrNotFound) || idpclient.Retryable(err) {
			t.Fatalf("%s: deactivate = %v, want ErrUnexpected", name, err)
		}
		for _, err := range c.ListIdentities(t.Context(), nil) {
			if !errors.Is(err, idpclient.ErrUnexpected) {
				t.Fatalf("%s: list = %v, want ErrUnexpected", name, err)
			}
			break
		}
		if _, err := c.OffboardByOwner(t.Context(), "user_0", ""); !errors.Is(err, idpclient.ErrUnexpected) {
			t.Fatalf("%s: offboard = %v, want ErrUnexpected", name, err)
		}
	}
	if got, _ := f.Identity(id); got.Status != "active" {
		t.Fatalf("the identity is %s", got.Status)
	}

	c := fakeClient(t, f, prefixProxy(t, f.URL())+"/zeroid", nil)
	_, err := c.DeactivateIdentity(t.Context(), "00000000-0000-4000-8000-000000000000")
	var apiErr *idpclient.APIError
	if !errors.Is(err, idpclient.ErrNotFound) || !errors.As(err, &apiErr) || apiErr.Message != "resource not found" {
		t.Fatalf("unknown identity = %v, want ErrNotFound (resource not found)", err)
	}
	if _, err := c.DeactivateIdentity(t.Context(), "not-a-uuid"); !errors.Is(err, idpclient.ErrValidation) {
		t.Fatalf("non-UUID id = %v, want ErrValidation before any call", err)
	}
	if _, err := c.IngestSignal(t.Context(), &zeroid.IngestSignalParams{SignalType: zeroid.SignalSessionRevoked}); !errors.Is(err, idpclient.ErrValidation) {
		t.Fatalf("signal without identity = %v, want ErrValidation (ZeroID answers 500)", err)
	}
	if _, err := c.OffboardByOwner(t.Context(), " user_0", ""); !errors.Is(err, idpclient.ErrValidation) {
		t.Fatalf("padded owner = %v, want ErrValidation", err)
	}
}

// The audit actor: "idpsync" by default, the configured one otherwise; a system: actor, which
// ZeroID would drop, is refused.
func TestActor(t *testing.T) {
	t.Parallel()
	f := startFake(t, zeroidfake.Options{Identities: 2})
	ids := f.IdentityIDs()
	if _, err := fakeClient(t, f, f.URL(), nil).DeactivateIdentity(t.Context(), ids[0]); err != nil {
		t.Fatal(err)
	}
	if _, err := fakeClient(t, f, f.URL(), func(c *zeroid.Config) { c.UserID = "ops@example.com" }).DeactivateIdentity(t.Context(), ids[1]); err != nil {
		t.Fatal(err)
	}
	for id, want := range map[string]string{ids[0]: "idpsync", ids[1]: "ops@example.com"} {
		if got, _ := f.Identity(id); got.ModifiedBy != want {
			t.Fatalf("modified_by %q, want %q", got.ModifiedBy, want)
		}
	}
	for _, actor := range []string{"system:idpsync", "SYSTEM:x", "System:"} {
		_, err := zeroid.New(zeroid.Config{BaseURL: f.URL(), AccountID: "a", ProjectID: "p", UserID: actor})
		if err == nil || !strings.Contains(err.Error(), "UserID") || !strings.Contains(err.Error(), "system:") {
			t.Fatalf("UserID %q: %v, want a sentence refusing it", actor, err)
		}
	}
	if _, err := zeroid.New(zeroid.Config{BaseURL: f.URL(), AccountID: "a", ProjectID: "p", UserID: "systemd-operator"}); err != nil {
		t.Fatalf("systemd-operator is an ordinary actor: %v", err)
	}
}

func TestConfigValidation(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		cfg  zeroid.Config
		want string
	}{
		{zeroid.Config{AccountID: "a", ProjectID: "p"}, "BaseURL"},
		{zeroid.Config{BaseURL: "http://z", ProjectID: "p"}, "AccountID"},
		{zeroid.Config{BaseURL: "http://z", AccountID: "a", ProjectID: "p", ClientSecret: "s"}, "ClientID"},
		{zeroid.Config{BaseURL: "http://z", AccountID: "a", ProjectID: "p", ClientID: "c", ClientSecret: "s", ClientAuthMethod: "private_key_jwt"}, "ClientAuthMethod"},
	} {
		_, err := zeroid.New(tc.cfg)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("New(%+v) = %v, want an error naming %s", tc.cfg, err, tc.want)
		}
		if err != nil && strings.Contains(err.Error(), `"s"`) {
			t.Errorf("the error repeats the secret: %v", err)
		}
	}
}
