package zeroid_test

import (
	"context"
	"errors"
	"iter"
	"testing"
	"time"

	"github.com/idpsync/idpsync/internal/fakeidp"
	"github.com/idpsync/idpsync/internal/idpclient"
	"github.com/idpsync/idpsync/internal/idpclient/idpclienttest"
	"github.com/idpsync/idpsync/internal/provider/zeroid"
	"github.com/idpsync/idpsync/internal/provider/zeroid/zeroidfake"
)

var fastRetry = idpclient.RetryPolicy{BaseDelay: time.Millisecond, MaxDelay: 5 * time.Millisecond}

func setup(t *testing.T, opts zeroidfake.Options, adminToken string) (*zeroidfake.Fake, *zeroid.Client) {
	t.Helper()
	f := zeroidfake.New(opts)
	base := f.Start()
	t.Cleanup(f.Close)
	acc, proj := f.Tenant()
	if adminToken == "" {
		adminToken = f.AdminToken()
	}
	c, err := zeroid.New(zeroid.Config{BaseURL: base, AccountID: acc, ProjectID: proj, AdminToken: adminToken, APIKey: f.APIKey(), Retry: fastRetry})
	if err != nil {
		t.Fatal(err)
	}
	return f, c
}

func TestConformance(t *testing.T) {
	t.Parallel()
	idpclienttest.Run(t, idpclienttest.Harness{
		Provider: "zeroid",
		Setup: func(t *testing.T, users int) idpclienttest.Env {
			t.Helper()
			f, c := setup(t, zeroidfake.Options{Identities: users, Seed: 9}, "")
			const wrong = "wrong-zeroid-admin-token"
			_, bad := setup(t, zeroidfake.Options{}, wrong)
			badFake := bad
			return idpclienttest.Env{
				ListUsers: func(ctx context.Context) iter.Seq2[string, error] {
					return func(yield func(string, error) bool) {
						for i, err := range c.ListIdentities(ctx, nil) {
							if !yield(i.ID, err) {
								return
							}
						}
					}
				},
				WantUserIDs: f.IdentityIDs,
				Read: func(ctx context.Context) error {
					_, err := c.Health(ctx)
					return err
				},
				Write: func(ctx context.Context) error {
					_, err := c.IngestSignal(ctx, &zeroid.IngestSignalParams{SignalType: zeroid.SignalSessionRevoked})
					return err
				},
				WritePath: "/api/v1/signals/ingest",
				UnauthorizedRead: func(ctx context.Context) error {
					for _, err := range badFake.ListIdentities(ctx, nil) {
						return err
					}
					return nil
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

func TestTokenIssueIntrospectRevoke(t *testing.T) {
	t.Parallel()
	f, c := setup(t, zeroidfake.Options{Identities: 1}, "")
	tok, err := c.IssueToken(t.Context(), &zeroid.IssueTokenParams{Scope: "read"})
	if err != nil {
		t.Fatal(err)
	}
	if tok.AccessToken == "" || tok.ExpiresIn <= 0 {
		t.Fatalf("token = %+v", tok)
	}
	in, err := c.IntrospectToken(t.Context(), tok.AccessToken)
	if err != nil || !in.Active || in.Scope != "read" || len(in.Raw) == 0 {
		t.Fatalf("introspection = %+v, %v; want active with scope read", in, err)
	}
	if err := c.RevokeToken(t.Context(), tok.AccessToken); err != nil {
		t.Fatal(err)
	}
	if in, err := c.IntrospectToken(t.Context(), tok.AccessToken); err != nil || in.Active {
		t.Fatalf("after revoke: %+v, %v; want inactive", in, err)
	}
	// Revoking again, or an unknown token, succeeds (RFC 7009).
	if err := c.RevokeToken(t.Context(), "unknown"); err != nil {
		t.Fatal(err)
	}
	if got := len(f.MutationsOf("token.revoke")); got != 2 {
		t.Fatalf("recorded %d revocations, want 2", got)
	}
}

func TestWrongAPIKeyIsUnauthorized(t *testing.T) {
	t.Parallel()
	_, c := setup(t, zeroidfake.Options{Identities: 1}, "")
	_, err := c.IssueToken(t.Context(), &zeroid.IssueTokenParams{APIKey: "zid_sk_wrong_key_value"})
	var apiErr *idpclient.APIError
	if !errors.Is(err, idpclient.ErrUnauthorized) || !errors.As(err, &apiErr) || apiErr.Code != "invalid_client" {
		t.Fatalf("err = %v, want ErrUnauthorized invalid_client", err)
	}
}

func TestCriticalSignalRevokesIdentityCredentials(t *testing.T) {
	t.Parallel()
	f, c := setup(t, zeroidfake.Options{Identities: 2}, "")
	ids := f.IdentityIDs()
	victim, bystander := f.IssueToken(ids[0], ""), f.IssueToken(ids[1], "")
	sig, err := c.IngestSignal(t.Context(), &zeroid.IngestSignalParams{IdentityID: ids[0], SignalType: zeroid.SignalCredentialChange,
		Severity: zeroid.SeverityCritical, Payload: map[string]any{"reason": "owner banned"}})
	if err != nil {
		t.Fatal(err)
	}
	if sig.IdentityID != ids[0] || sig.Source != "idpsync" || sig.ProcessedAt == nil {
		t.Fatalf("signal = %+v", sig)
	}
	if f.TokenActive(victim) || !f.TokenActive(bystander) {
		t.Fatal("a critical signal must revoke exactly the identity's tokens")
	}
	if m := f.MutationsOf("signal.ingest"); len(m) != 1 || m[0].ID != ids[0] {
		t.Fatalf("recorded ingests %+v", m)
	}
}

func TestSignalValidationErrorHasFields(t *testing.T) {
	t.Parallel()
	_, c := setup(t, zeroidfake.Options{}, "")
	_, err := c.IngestSignal(t.Context(), &zeroid.IngestSignalParams{SignalType: "made_up"})
	var apiErr *idpclient.APIError
	if !errors.Is(err, idpclient.ErrValidation) || !errors.As(err, &apiErr) || apiErr.Status != 422 {
		t.Fatalf("err = %v, want 422 ErrValidation", err)
	}
	if len(apiErr.Fields) != 1 || apiErr.Fields[0].Field != "body.signal_type" {
		t.Fatalf("fields = %+v, want body.signal_type", apiErr.Fields)
	}
}

func TestOffboardByOwnerAndListByOwner(t *testing.T) {
	t.Parallel()
	f, c := setup(t, zeroidfake.Options{Identities: 250, Owners: 5}, "")
	var owned []string
	for i, err := range c.ListIdentities(t.Context(), &zeroid.ListIdentitiesParams{OwnerUserID: "user_3"}) {
		if err != nil {
			t.Fatal(err)
		}
		if i.OwnerUserID != "user_3" {
			t.Fatalf("identity %s is owned by %s", i.ID, i.OwnerUserID)
		}
		owned = append(owned, i.ID)
	}
	if len(owned) != 50 {
		t.Fatalf("user_3 owns %d identities, want 50", len(owned))
	}
	tok := f.IssueToken(owned[0], "")
	res, err := c.OffboardByOwner(t.Context(), "user_3", "deprovisioned in clerk")
	if err != nil {
		t.Fatal(err)
	}
	if res.IdentitiesDeactivated != 50 || res.CredentialsRevoked != 1 || f.TokenActive(tok) {
		t.Fatalf("offboard = %+v, token active %v", res, f.TokenActive(tok))
	}
	again, err := c.OffboardByOwner(t.Context(), "user_3", "")
	if err != nil || again.IdentitiesDeactivated != 0 {
		t.Fatalf("second offboard = %+v, %v; want no changes", again, err)
	}
	if i, _ := f.Identity(owned[10]); i.Status != "deactivated" {
		t.Fatalf("identity status %s after offboarding", i.Status)
	}
}

func TestHealthAndJWKS(t *testing.T) {
	t.Parallel()
	_, c := setup(t, zeroidfake.Options{}, "")
	h, err := c.Health(t.Context())
	if err != nil || h.Status == "" {
		t.Fatalf("health = %+v, %v", h, err)
	}
	k, err := c.JWKS(t.Context())
	if err != nil || len(k.Keys) != 1 {
		t.Fatalf("jwks = %+v, %v", k, err)
	}
}
