package zitadel_test

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/idpsync/idpsync/internal/fakeidp"
	"github.com/idpsync/idpsync/internal/idpclient"
	"github.com/idpsync/idpsync/internal/idpclient/idpclienttest"
	"github.com/idpsync/idpsync/internal/provider/zitadel"
	"github.com/idpsync/idpsync/internal/provider/zitadel/zitadelfake"
)

var fastRetry = idpclient.RetryPolicy{BaseDelay: time.Millisecond, MaxDelay: 5 * time.Millisecond}

func startFake(t *testing.T, opts zitadelfake.Options) (*zitadelfake.Fake, string) {
	t.Helper()
	f := zitadelfake.New(opts)
	base := f.Start()
	t.Cleanup(f.Close)
	return f, base
}

func newClient(t *testing.T, cfg zitadel.Config) *zitadel.Client {
	t.Helper()
	cfg.Retry = fastRetry
	c, err := zitadel.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestConformance(t *testing.T) {
	t.Parallel()
	for _, method := range []string{"pat", "client_credentials", "key_file"} {
		t.Run(method, func(t *testing.T) {
			t.Parallel()
			idpclienttest.Run(t, idpclienttest.Harness{
				Provider: "zitadel",
				Setup: func(t *testing.T, users int) idpclienttest.Env {
					t.Helper()
					f, base := startFake(t, zitadelfake.Options{Users: users, Seed: 3})
					cfg := zitadel.Config{BaseURL: base}
					const wrong = "wrong-zitadel-secret-value"
					bad := zitadel.Config{BaseURL: base}
					switch method {
					case "pat":
						cfg.PersonalAccessToken = f.PAT()
						bad.PersonalAccessToken = wrong
					case "client_credentials":
						cfg.ClientID, cfg.ClientSecret = f.ClientCredentials()
						bad.ClientID, bad.ClientSecret = cfg.ClientID, wrong
					case "key_file":
						cfg.KeyFile = f.KeyFile()
						bad.PersonalAccessToken = wrong
					}
					c, badc := newClient(t, cfg), newClient(t, bad)
					first := ""
					if ids := f.UserIDs(); len(ids) > 0 {
						first = ids[0]
					}
					return idpclienttest.Env{
						ListUsers: func(ctx context.Context) iter.Seq2[string, error] {
							return func(yield func(string, error) bool) {
								for u, err := range c.ListUsers(ctx, nil) {
									if !yield(u.UserID, err) {
										return
									}
								}
							}
						},
						WantUserIDs: f.UserIDs,
						Read: func(ctx context.Context) error {
							_, err := c.GetUser(ctx, first)
							return err
						},
						Write: func(ctx context.Context) error {
							_, err := c.DeactivateUser(ctx, first)
							return err
						},
						WritePath: "/v2/users/" + first + "/deactivate",
						UnauthorizedRead: func(ctx context.Context) error {
							_, err := badc.GetUser(ctx, first)
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
						ListPath:    "/v2/users",
						MaxPageSize: zitadel.MaxPageSize,
					}
				},
			})
		})
	}
}

func TestTokenFetchedOnceForConcurrentCallers(t *testing.T) {
	t.Parallel()
	for _, method := range []string{"client_credentials", "key_file"} {
		t.Run(method, func(t *testing.T) {
			t.Parallel()
			f, base := startFake(t, zitadelfake.Options{Users: 3})
			cfg := zitadel.Config{BaseURL: base}
			if method == "key_file" {
				cfg.KeyFile = f.KeyFile()
			} else {
				cfg.ClientID, cfg.ClientSecret = f.ClientCredentials()
			}
			// Slow the token endpoint down so the callers really overlap.
			f.SetLatency(50 * time.Millisecond)
			c := newClient(t, cfg)
			id := f.UserIDs()[0]
			var wg sync.WaitGroup
			var failed atomic.Int32
			for range 20 {
				wg.Go(func() {
					if _, err := c.GetUser(t.Context(), id); err != nil {
						failed.Add(1)
						t.Error(err)
					}
				})
			}
			wg.Wait()
			if got := f.TokenRequests(); got != 1 {
				t.Fatalf("20 concurrent callers made %d token requests, want 1", got)
			}
		})
	}
}

func TestTokenRefreshedBeforeExpiry(t *testing.T) {
	t.Parallel()
	f, base := startFake(t, zitadelfake.Options{Users: 3, TokenTTL: time.Hour})
	var clock atomic.Int64
	clock.Store(time.Now().UnixNano())
	now := func() time.Time { return time.Unix(0, clock.Load()) }
	id, secret := f.ClientCredentials()
	c := newClient(t, zitadel.Config{BaseURL: base, ClientID: id, ClientSecret: secret, NowFunc: now, TokenRefreshBefore: 5 * time.Minute})
	uid := f.UserIDs()[0]
	for range 3 {
		if _, err := c.GetUser(t.Context(), uid); err != nil {
			t.Fatal(err)
		}
	}
	if got := f.TokenRequests(); got != 1 {
		t.Fatalf("3 calls with a fresh token made %d token requests, want 1", got)
	}
	// 56 minutes later the token is inside the 5-minute refresh window.
	clock.Add(int64(56 * time.Minute))
	if _, err := c.GetUser(t.Context(), uid); err != nil {
		t.Fatal(err)
	}
	if got := f.TokenRequests(); got != 2 {
		t.Fatalf("a call inside the refresh window made %d token requests in total, want 2", got)
	}
}

func TestTokenRefetchedAfter401(t *testing.T) {
	t.Parallel()
	f, base := startFake(t, zitadelfake.Options{Users: 3})
	id, secret := f.ClientCredentials()
	c := newClient(t, zitadel.Config{BaseURL: base, ClientID: id, ClientSecret: secret})
	uid := f.UserIDs()[0]
	if _, err := c.GetUser(t.Context(), uid); err != nil {
		t.Fatal(err)
	}
	f.ExpireTokens()
	// A write is retried once after a 401 too: the rejected request was not processed.
	if _, err := c.LockUser(t.Context(), uid); err != nil {
		t.Fatalf("lock after the token was revoked: %v", err)
	}
	if got := f.TokenRequests(); got != 2 {
		t.Fatalf("token requests = %d, want 2 (initial, then after the 401)", got)
	}
	if got := len(f.MutationsOf("user.lock")); got != 1 {
		t.Fatalf("lock applied %d times, want 1", got)
	}
}

func TestWrongClientSecretIsUnauthorized(t *testing.T) {
	t.Parallel()
	f, base := startFake(t, zitadelfake.Options{Users: 1})
	id, _ := f.ClientCredentials()
	c := newClient(t, zitadel.Config{BaseURL: base, ClientID: id, ClientSecret: "not-the-secret-123"})
	_, err := c.GetUser(t.Context(), f.UserIDs()[0])
	if !errors.Is(err, idpclient.ErrUnauthorized) {
		t.Fatalf("err = %v, want ErrUnauthorized", err)
	}
	var apiErr *idpclient.APIError
	if !errors.As(err, &apiErr) || apiErr.Code != "invalid_client" {
		t.Fatalf("err = %#v, want the token endpoint's invalid_client", err)
	}
	if strings.Contains(err.Error(), "not-the-secret-123") {
		t.Fatal("error leaks the client secret")
	}
}

func TestDeactivateTwiceIsValidationError(t *testing.T) {
	t.Parallel()
	f, base := startFake(t, zitadelfake.Options{Users: 1})
	c := newClient(t, zitadel.Config{BaseURL: base, PersonalAccessToken: f.PAT()})
	uid := f.UserIDs()[0]
	d, err := c.DeactivateUser(t.Context(), uid)
	if err != nil || d.Sequence == 0 {
		t.Fatalf("deactivate: %v, details %+v", err, d)
	}
	if u, _ := f.User(uid); u.State != zitadel.UserStateInactive {
		t.Fatalf("state = %s after deactivate", u.State)
	}
	_, err = c.DeactivateUser(t.Context(), uid)
	var apiErr *idpclient.APIError
	if !errors.Is(err, idpclient.ErrValidation) || !errors.As(err, &apiErr) || apiErr.Code != "COMMAND-5M0sf" {
		t.Fatalf("second deactivate: %v, want ErrValidation with Zitadel's error id", err)
	}
}

func TestSessionsSearchAndDelete(t *testing.T) {
	t.Parallel()
	f, base := startFake(t, zitadelfake.Options{Users: 2, SessionsPerUser: 3})
	c := newClient(t, zitadel.Config{BaseURL: base, PersonalAccessToken: f.PAT(), PageSize: 2})
	uid := f.UserIDs()[1]
	var ids []string
	for s, err := range c.ListSessions(t.Context(), &zitadel.ListSessionsParams{UserID: uid}) {
		if err != nil {
			t.Fatal(err)
		}
		if s.UserID() != uid || len(s.Raw) == 0 {
			t.Fatalf("session %s belongs to %q (raw %d bytes), want %s", s.ID, s.UserID(), len(s.Raw), uid)
		}
		ids = append(ids, s.ID)
	}
	if len(ids) != 3 {
		t.Fatalf("listed %d sessions, want 3", len(ids))
	}
	if _, err := c.DeleteSession(t.Context(), ids[0]); err != nil {
		t.Fatal(err)
	}
	if _, err := c.DeleteSession(t.Context(), ids[0]); !errors.Is(err, idpclient.ErrNotFound) {
		t.Fatalf("second delete: %v, want ErrNotFound", err)
	}
	if got := len(f.SessionsOf(uid)); got != 2 {
		t.Fatalf("fake holds %d sessions after delete, want 2", got)
	}
	if m := f.MutationsOf("session.delete"); len(m) != 1 || m[0].ID != ids[0] {
		t.Fatalf("recorded deletes %+v", m)
	}
}

func TestListOrganizationsAndPageLimit(t *testing.T) {
	t.Parallel()
	f, base := startFake(t, zitadelfake.Options{Organizations: 7})
	c := newClient(t, zitadel.Config{BaseURL: base, PersonalAccessToken: f.PAT(), PageSize: 3})
	n := 0
	for o, err := range c.ListOrganizations(t.Context(), nil) {
		if err != nil {
			t.Fatal(err)
		}
		if o.State != zitadel.OrganizationStateActive || o.Details == nil || o.Details.Sequence == 0 {
			t.Fatalf("organization decoded badly: %+v", o)
		}
		n++
	}
	if n != 7 {
		t.Fatalf("listed %d organizations, want 7", n)
	}
	for _, r := range f.Requests() {
		if r.Path == "/v2/organizations/_search" && r.Status != 200 {
			t.Fatalf("page request failed with %d", r.Status)
		}
	}
}

func TestConfigValidation(t *testing.T) {
	t.Parallel()
	for name, cfg := range map[string]zitadel.Config{
		"no base URL":      {PersonalAccessToken: "x"},
		"no credentials":   {BaseURL: "https://z.example"},
		"two methods":      {BaseURL: "https://z.example", PersonalAccessToken: "x", ClientID: "a", ClientSecret: "b"},
		"half credentials": {BaseURL: "https://z.example", ClientID: "a"},
		"bad key file":     {BaseURL: "https://z.example", KeyFile: []byte(`{"type":"serviceaccount","keyId":"1","userId":"2","key":"nope"}`)},
	} {
		if _, err := zitadel.New(cfg); err == nil {
			t.Errorf("%s: New accepted an invalid config", name)
		}
	}
}

func TestGetOrganization(t *testing.T) {
	t.Parallel()
	f := zitadelfake.New(zitadelfake.Options{Organizations: 3})
	url := f.Start()
	t.Cleanup(f.Close)
	c, err := zitadel.New(zitadel.Config{BaseURL: url, PersonalAccessToken: f.PAT()})
	if err != nil {
		t.Fatal(err)
	}
	ids := f.OrganizationIDs()
	o, err := c.GetOrganization(t.Context(), ids[1])
	if err != nil || o.ID != ids[1] {
		t.Fatalf("GetOrganization = %+v, %v", o, err)
	}
	if _, err := c.GetOrganization(t.Context(), "no-such-org"); !errors.Is(err, idpclient.ErrNotFound) {
		t.Fatalf("missing organization: %v", err)
	}
}

// TestActionsV2ListsPageOldestFirstAndFilter runs the Actions v2 calls against the fake: lists
// page oldest first (Zitadel's default is newest first, so the client asks for asc), and filter.
func TestActionsV2ListsPageOldestFirstAndFilter(t *testing.T) {
	t.Parallel()
	f, base := startFake(t, zitadelfake.Options{})
	c := newClient(t, zitadel.Config{BaseURL: base, PersonalAccessToken: f.PAT(), PageSize: 2})
	ctx := t.Context()
	var ids []string
	for i := range 5 {
		tg, err := c.CreateTarget(ctx, &zitadel.CreateTargetParams{Name: fmt.Sprintf("t%d", i), RESTWebhook: &zitadel.RESTTarget{},
			Timeout: "10s", Endpoint: fmt.Sprintf("https://hooks.example.com/%d", i), PayloadType: zitadel.PayloadTypeJSON})
		if err != nil {
			t.Fatal(err)
		}
		if tg.SigningKey == "" {
			t.Fatal("no signing key in the creation's answer")
		}
		ids = append(ids, tg.ID)
	}
	var listed []string
	for tg, err := range c.ListTargets(ctx, nil) {
		if err != nil {
			t.Fatal(err)
		}
		if tg.Type() != "restWebhook" || tg.Timeout != "10s" || tg.PayloadType != zitadel.PayloadTypeJSON {
			t.Errorf("target %+v", tg)
		}
		listed = append(listed, tg.ID)
	}
	if !slices.Equal(listed, ids) {
		t.Fatalf("ListTargets = %v, want %v oldest first", listed, ids)
	}
	if searches := len(f.Requests()) - 5; searches != 3 {
		t.Errorf("%d searches for 5 targets in pages of 2, want 3", searches)
	}
	if err := c.SetExecution(ctx, zitadel.EventGroup("user"), ids[:2]); err != nil {
		t.Fatal(err)
	}
	if err := c.SetExecution(ctx, zitadel.EventGroup("org"), ids[1:2]); err != nil {
		t.Fatal(err)
	}
	count := func(p *zitadel.ListExecutionsParams) int {
		n := 0
		for _, err := range c.ListExecutions(ctx, p) {
			if err != nil {
				t.Fatal(err)
			}
			n++
		}
		return n
	}
	if n := count(&zitadel.ListExecutionsParams{TargetID: ids[0]}); n != 1 {
		t.Errorf("%d executions call %s, want 1", n, ids[0])
	}
	if n := count(&zitadel.ListExecutionsParams{Conditions: []zitadel.Condition{zitadel.EventGroup("org"), zitadel.EventGroup("session")}}); n != 1 {
		t.Errorf("%d executions of org or session, want 1", n)
	}
	// An event group Zitadel does not have, or a target it does not have, is refused.
	if err := c.SetExecution(ctx, zitadel.EventGroup("nogroup"), ids[:1]); !errors.Is(err, idpclient.ErrUnexpected) {
		t.Errorf("an unknown group: %v", err)
	}
	if _, err := c.CreateTarget(ctx, &zitadel.CreateTargetParams{Name: "x", RESTWebhook: &zitadel.RESTTarget{}, Timeout: "300s",
		Endpoint: "https://hooks.example.com/x"}); !errors.Is(err, idpclient.ErrValidation) {
		t.Errorf("a timeout above 270s: %v", err)
	}
	// Deleting a target takes it out of the executions; deleting it again succeeds.
	if err := c.DeleteTarget(ctx, ids[1]); err != nil {
		t.Fatal(err)
	}
	if err := c.DeleteTarget(ctx, ids[1]); err != nil {
		t.Errorf("deleting a deleted target: %v", err)
	}
	if n := count(nil); n != 1 {
		t.Errorf("%d executions left, want user's (org's lost its only target)", n)
	}
}
