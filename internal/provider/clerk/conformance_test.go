package clerk_test

import (
	"context"
	"iter"
	"testing"
	"time"

	"github.com/idpsync/idpsync/internal/fakeidp"
	"github.com/idpsync/idpsync/internal/idpclient"
	"github.com/idpsync/idpsync/internal/idpclient/idpclienttest"
	"github.com/idpsync/idpsync/internal/provider/clerk"
	"github.com/idpsync/idpsync/internal/provider/clerk/clerkfake"
)

// fastRetry keeps backoff short in tests; Retry-After is still honoured as sent.
var fastRetry = idpclient.RetryPolicy{BaseDelay: time.Millisecond, MaxDelay: 5 * time.Millisecond}

func newClient(t *testing.T, baseURL, secret string) *clerk.Client {
	t.Helper()
	c, err := clerk.New(clerk.Config{SecretKey: secret, BaseURL: baseURL, Retry: fastRetry})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func startFake(t *testing.T, opts clerkfake.Options) (*clerkfake.Fake, string) {
	t.Helper()
	f := clerkfake.New(opts)
	base := f.Start()
	t.Cleanup(f.Close)
	return f, base
}

func recorded(f *clerkfake.Fake) func() []idpclienttest.Request {
	return func() []idpclienttest.Request {
		var out []idpclienttest.Request
		for _, r := range f.Requests() {
			out = append(out, idpclienttest.Request{Method: r.Method, Path: r.Path, At: r.At, Status: r.Status})
		}
		return out
	}
}

func TestConformance(t *testing.T) {
	t.Parallel()
	idpclienttest.Run(t, idpclienttest.Harness{
		Provider: "clerk",
		Setup: func(t *testing.T, users int) idpclienttest.Env {
			t.Helper()
			f, base := startFake(t, clerkfake.Options{Users: users, Seed: 7})
			c := newClient(t, base, f.SecretKey())
			bad := newClient(t, base, "sk_test_wrong_secret_value")
			first := ""
			if ids := f.UserIDs(); len(ids) > 0 {
				first = ids[0]
			}
			return idpclienttest.Env{
				ListUsers: func(ctx context.Context) iter.Seq2[string, error] {
					return func(yield func(string, error) bool) {
						for u, err := range c.ListUsers(ctx, nil) {
							if !yield(u.ID, err) {
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
					_, err := c.BanUser(ctx, first)
					return err
				},
				WritePath: "/v1/users/" + first + "/ban",
				UnauthorizedRead: func(ctx context.Context) error {
					_, err := bad.CountUsers(ctx, nil)
					return err
				},
				WrongSecret: "sk_test_wrong_secret_value",
				FailNext: func(n, status int, ra time.Duration, prefix string) {
					f.FailNext(n, fakeidp.Failure{Status: status, RetryAfter: ra, PathPrefix: prefix})
				},
				Requests:    recorded(f),
				ListPath:    "/v1/users",
				MaxPageSize: clerk.MaxPageSize,
			}
		},
	})
}
