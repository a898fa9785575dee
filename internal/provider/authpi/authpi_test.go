package authpi_test

import (
	"context"
	"errors"
	"iter"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/idpsync/idpsync/internal/fakeidp"
	"github.com/idpsync/idpsync/internal/idpclient"
	"github.com/idpsync/idpsync/internal/idpclient/idpclienttest"
	"github.com/idpsync/idpsync/internal/provider/authpi"
	"github.com/idpsync/idpsync/internal/provider/authpi/authpifake"
)

var fastRetry = idpclient.RetryPolicy{BaseDelay: time.Millisecond, MaxDelay: 5 * time.Millisecond}

func startFake(t *testing.T, opts authpifake.Options) (*authpifake.Fake, string) {
	t.Helper()
	f := authpifake.New(opts)
	base := f.Start()
	t.Cleanup(f.Close)
	return f, base
}

func newClient(t *testing.T, cfg authpi.Config) *authpi.Client {
	t.Helper()
	if cfg.Retry.MaxAttempts == 0 {
		cfg.Retry = fastRetry
	}
	c, err := authpi.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestConformance(t *testing.T) {
	t.Parallel()
	idpclienttest.Run(t, idpclienttest.Harness{
		Provider: "authpi",
		Setup: func(t *testing.T, users int) idpclienttest.Env {
			t.Helper()
			f, base := startFake(t, authpifake.Options{Users: users, Seed: 5})
			id, secret := f.APIKey()
			c := newClient(t, authpi.Config{BaseURL: base, APIKeyID: id, APIKeySecret: secret})
			const wrong = "wrong-authpi-key-secret"
			bad := newClient(t, authpi.Config{BaseURL: base, APIKeyID: id, APIKeySecret: wrong})
			iss := f.IssuerIDs()[0]
			whID := f.CreateWebhook("https://hooks.example.com/authpi", []string{"user.created"})
			first := ""
			if ids := f.UserIDs(""); len(ids) > 0 {
				first = ids[0]
			}
			acc := "/v1/accounts/" + f.AccountID()
			return idpclienttest.Env{
				ListUsers: func(ctx context.Context) iter.Seq2[string, error] {
					return func(yield func(string, error) bool) {
						for u, err := range c.ListUsers(ctx, &authpi.ListUsersParams{IssuerID: iss}) {
							if !yield(u.ID, err) {
								return
							}
						}
					}
				},
				WantUserIDs: func() []string { return f.UserIDs("") },
				Read: func(ctx context.Context) error {
					_, err := c.GetUser(ctx, iss, first)
					return err
				},
				Write:     func(ctx context.Context) error { return c.DeleteWebhook(ctx, whID) },
				WritePath: acc + "/webhooks/" + whID,
				UnauthorizedRead: func(ctx context.Context) error {
					_, err := bad.GetUser(ctx, iss, first)
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
				ListPath:    acc + "/issuers/" + iss + "/users",
				MaxPageSize: authpi.MaxPageSize,
			}
		},
	})
}

func TestAccountResolvedOnce(t *testing.T) {
	t.Parallel()
	f, base := startFake(t, authpifake.Options{Users: 3})
	id, secret := f.APIKey()
	c := newClient(t, authpi.Config{BaseURL: base, APIKeyID: id, APIKeySecret: secret})
	var wg sync.WaitGroup
	for range 10 {
		wg.Go(func() {
			for _, err := range c.ListIssuers(t.Context(), nil) {
				if err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	me := 0
	for _, r := range f.Requests() {
		if r.Path == "/v1/me" {
			me++
		}
	}
	if me != 1 {
		t.Fatalf("GET /v1/me sent %d times, want once", me)
	}
	got, err := c.AccountID(t.Context())
	if err != nil || got != f.AccountID() {
		t.Fatalf("AccountID = %q, %v; want %q", got, err, f.AccountID())
	}
	// A given account id skips the lookup.
	c2 := newClient(t, authpi.Config{BaseURL: base, APIKeyID: id, APIKeySecret: secret, AccountID: f.AccountID()})
	f.ResetRecords()
	for _, err := range c2.ListIssuers(t.Context(), nil) {
		if err != nil {
			t.Fatal(err)
		}
	}
	for _, r := range f.Requests() {
		if r.Path == "/v1/me" {
			t.Fatal("GET /v1/me sent although AccountID was given")
		}
	}
}

func TestAccessTokenRefreshedOnceOn401(t *testing.T) {
	t.Parallel()
	f, base := startFake(t, authpifake.Options{Users: 3})
	var calls atomic.Int32
	c := newClient(t, authpi.Config{BaseURL: base, AccessToken: f.IssueAccessToken(), AccountID: f.AccountID(),
		OnTokenExpiredFunc: func(context.Context) (string, error) {
			calls.Add(1)
			time.Sleep(20 * time.Millisecond) // let the other callers pile up behind the renewal
			return f.IssueAccessToken(), nil
		}})
	iss, uid := f.IssuerIDs()[0], f.UserIDs("")[0]
	if _, err := c.GetUser(t.Context(), iss, uid); err != nil {
		t.Fatal(err)
	}
	f.ExpireAccessTokens()
	var wg sync.WaitGroup
	for range 10 {
		wg.Go(func() {
			if _, err := c.GetUser(t.Context(), iss, uid); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if got := calls.Load(); got != 1 {
		t.Fatalf("OnTokenExpiredFunc called %d times for 10 concurrent callers, want 1", got)
	}
}

func TestAccessTokenWithoutCallbackIsUnauthorized(t *testing.T) {
	t.Parallel()
	f, base := startFake(t, authpifake.Options{Users: 1})
	tok := f.IssueAccessToken()
	f.ExpireAccessTokens()
	c := newClient(t, authpi.Config{BaseURL: base, AccessToken: tok, AccountID: f.AccountID()})
	_, err := c.GetUser(t.Context(), f.IssuerIDs()[0], f.UserIDs("")[0])
	var apiErr *idpclient.APIError
	if !errors.Is(err, idpclient.ErrUnauthorized) || !errors.As(err, &apiErr) || apiErr.Code != "session_expired" {
		t.Fatalf("err = %v, want ErrUnauthorized with code session_expired", err)
	}
	if strings.Contains(err.Error(), tok) {
		t.Fatal("error leaks the access token")
	}
}

func TestWebhooksCreateListDeleteAndDeliver(t *testing.T) {
	t.Parallel()
	f, base := startFake(t, authpifake.Options{Users: 1})
	id, secret := f.APIKey()
	c := newClient(t, authpi.Config{BaseURL: base, APIKeyID: id, APIKeySecret: secret})

	var got atomic.Value
	receiver := newReceiver(t, func(r *http.Request, body []byte) { got.Store(r.Header.Get("Authorization") + "\n" + string(body)) })
	wh, err := c.CreateWebhook(t.Context(), &authpi.CreateWebhookParams{URL: receiver, Events: []string{"user.created"}, IdempotencyKey: "create-1"})
	if err != nil {
		t.Fatal(err)
	}
	if wh.BearerTokenPlain == "" || wh.Auth.Type != "bearer" || len(wh.Raw) == 0 {
		t.Fatalf("created webhook %+v, want a bearer token shown once", wh)
	}
	// The same idempotency key replays the first answer instead of creating a second webhook.
	again, err := c.CreateWebhook(t.Context(), &authpi.CreateWebhookParams{URL: receiver, Events: []string{"user.created"}, IdempotencyKey: "create-1"})
	if err != nil || again.ID != wh.ID {
		t.Fatalf("replay = %v, %v; want webhook %s", again, err, wh.ID)
	}
	var ids []string
	for w, err := range c.ListWebhooks(t.Context(), nil) {
		if err != nil {
			t.Fatal(err)
		}
		if w.BearerTokenPlain != "" {
			t.Fatal("list answers must not repeat the secret")
		}
		ids = append(ids, w.ID)
	}
	if len(ids) != 1 || ids[0] != wh.ID {
		t.Fatalf("listed webhooks %v, want [%s]", ids, wh.ID)
	}

	if _, err := f.CreateUser(authpifake.User{Email: "new@example.com", Username: "new"}); err != nil {
		t.Fatal(err)
	}
	if err := f.FlushWebhooks(t.Context()); err != nil {
		t.Fatal(err)
	}
	s, _ := got.Load().(string)
	auth, body, _ := strings.Cut(s, "\n")
	if auth != "Bearer "+wh.BearerTokenPlain || !strings.Contains(body, `"type":"user.created"`) || !strings.Contains(body, `"specversion":"1.0"`) {
		t.Fatalf("delivery: auth %q body %s", auth, body)
	}

	if err := c.DeleteWebhook(t.Context(), wh.ID); err != nil {
		t.Fatal(err)
	}
	if err := c.DeleteWebhook(t.Context(), wh.ID); !errors.Is(err, idpclient.ErrNotFound) {
		t.Fatalf("second delete: %v, want ErrNotFound", err)
	}
}

func TestValidationErrorCarriesFields(t *testing.T) {
	t.Parallel()
	f, base := startFake(t, authpifake.Options{})
	id, secret := f.APIKey()
	c := newClient(t, authpi.Config{BaseURL: base, APIKeyID: id, APIKeySecret: secret})
	_, err := c.CreateWebhook(t.Context(), &authpi.CreateWebhookParams{URL: "not a url", Events: []string{"user.created"}})
	var apiErr *idpclient.APIError
	if !errors.Is(err, idpclient.ErrValidation) || !errors.As(err, &apiErr) {
		t.Fatalf("err = %v, want ErrValidation", err)
	}
	if len(apiErr.Fields) != 1 || apiErr.Fields[0].Field != "url" {
		t.Fatalf("fields = %+v, want one for url", apiErr.Fields)
	}
}

func TestHTMLRateLimitPageStillTyped(t *testing.T) {
	t.Parallel()
	f, base := startFake(t, authpifake.Options{Users: 1})
	id, secret := f.APIKey()
	c := newClient(t, authpi.Config{BaseURL: base, APIKeyID: id, APIKeySecret: secret, AccountID: f.AccountID(),
		Retry: idpclient.RetryPolicy{MaxAttempts: 1}})
	f.FailNext(1, fakeidp.Failure{Status: http.StatusTooManyRequests, RetryAfter: 7 * time.Second})
	_, err := c.GetUser(t.Context(), f.IssuerIDs()[0], f.UserIDs("")[0])
	if d, ok := idpclient.RetryAfter(err); !errors.Is(err, idpclient.ErrRateLimited) || !ok || d != 7*time.Second {
		t.Fatalf("err = %v (retry after %s), want ErrRateLimited with 7s", err, d)
	}
}
