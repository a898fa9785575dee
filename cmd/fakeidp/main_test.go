package main

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/idpsync/idpsync/internal/provider/authpi"
	"github.com/idpsync/idpsync/internal/provider/clerk"
	"github.com/idpsync/idpsync/internal/provider/zeroid"
	"github.com/idpsync/idpsync/internal/provider/zitadel"
	"github.com/idpsync/idpsync/internal/webhook"
)

func noEnv(string) string { return "" }

// fields parses "key=value" words of one printed line.
func fields(line string) map[string]string {
	out := map[string]string{}
	for _, w := range strings.Fields(line) {
		if k, v, ok := strings.Cut(w, "="); ok {
			out[k] = v
		}
	}
	return out
}

func TestServeAllProviders(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(t.Context())
	pr, pw := io.Pipe()
	keyPath := filepath.Join(t.TempDir(), "zitadel-key.json")
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"serve", "-addr", "127.0.0.1:0", "-seed-users", "250", "-seed-orgs", "3", "-zitadel-key-file", keyPath}, noEnv, pw, io.Discard)
		pw.Close()
	}()
	lines := map[string]map[string]string{}
	sc := bufio.NewScanner(pr)
	for len(lines) < 4 && sc.Scan() {
		if name, rest, ok := strings.Cut(sc.Text(), " "); ok && strings.Contains(rest, "base_url=") {
			lines[name] = fields(rest)
		}
	}
	go func() { _, _ = io.Copy(io.Discard, pr) }()

	c, err := clerk.New(clerk.Config{BaseURL: lines["clerk"]["base_url"], SecretKey: lines["clerk"]["secret_key"]})
	if err != nil {
		t.Fatal(err)
	}
	if n, err := c.CountUsers(ctx, nil); err != nil || n != 250 {
		t.Fatalf("clerk users = %d, %v; want 250", n, err)
	}
	key, err := os.ReadFile(keyPath)
	if err != nil {
		t.Fatal(err)
	}
	z, err := zitadel.New(zitadel.Config{BaseURL: lines["zitadel"]["base_url"], KeyFile: key})
	if err != nil {
		t.Fatal(err)
	}
	// The printed client credentials work too (each provider's line carries its own).
	zc2, err := zitadel.New(zitadel.Config{BaseURL: lines["zitadel"]["base_url"], ClientID: lines["zitadel"]["client_id"], ClientSecret: lines["zitadel"]["client_secret"]})
	if err != nil {
		t.Fatal(err)
	}
	for _, err := range zc2.ListUsers(ctx, nil) {
		if err != nil {
			t.Fatalf("zitadel with the printed client credentials: %v", err)
		}
		break
	}
	n := 0
	for _, err := range z.ListUsers(ctx, nil) {
		if err != nil {
			t.Fatal(err)
		}
		n++
	}
	if n != 250 {
		t.Fatalf("zitadel users = %d, want 250", n)
	}
	a, err := authpi.New(authpi.Config{BaseURL: lines["authpi"]["base_url"], APIKeyID: lines["authpi"]["api_key_id"], APIKeySecret: lines["authpi"]["api_key_secret"]})
	if err != nil {
		t.Fatal(err)
	}
	if acc, err := a.AccountID(ctx); err != nil || acc != lines["authpi"]["account_id"] {
		t.Fatalf("authpi account = %q, %v", acc, err)
	}
	zl := lines["zeroid"]
	zc, err := zeroid.New(zeroid.Config{BaseURL: zl["base_url"], AccountID: zl["account_id"], ProjectID: zl["project_id"],
		ClientID: zl["client_id"], ClientSecret: zl["client_secret"], APIKey: zl["api_key"]})
	if err != nil {
		t.Fatal(err)
	}
	n = 0
	for _, err := range zc.ListIdentities(ctx, nil) {
		if err != nil {
			t.Fatal(err)
		}
		n++
	}
	if n != 250 {
		t.Fatalf("zeroid identities = %d, want 250", n)
	}
	tok, err := zc.IssueToken(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if in, err := zc.IntrospectToken(ctx, tok.AccessToken); err != nil || !in.Active {
		t.Fatalf("the printed key's token introspects %+v, %v; want active with the printed client", in, err)
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("serve returned %v after cancel", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("serve did not stop after cancel")
	}
}

func TestSendSignsLikeTheIdP(t *testing.T) {
	t.Parallel()
	const secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	svix, _ := clerk.NewSvix(clerk.SvixConfig{Secrets: []string{secret}, Tolerance: 5 * time.Minute})
	zit, _ := zitadel.NewVerifier(zitadel.VerifierConfig{SigningKeys: []string{"zkey"}, Tolerance: 5 * time.Minute})
	bearer, _ := authpi.NewBearer("tok")
	for _, tc := range []struct {
		provider, typ, secret string
		v                     webhook.Verifier
		want                  string
	}{
		{"clerk", "user.created", secret, svix, `"type":"user.created"`},
		{"zitadel", "user.human.added", "zkey", zit, `"event_type":"user.human.added"`},
		{"authpi", "user.deleted", "tok", bearer, `"type":"user.deleted"`},
	} {
		t.Run(tc.provider, func(t *testing.T) {
			t.Parallel()
			var body string
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				b, _ := io.ReadAll(r.Body)
				if _, err := tc.v.Verify(b, r.Header); err != nil {
					t.Errorf("verification failed: %v", err)
					w.WriteHeader(http.StatusUnauthorized)
					return
				}
				body = string(b)
			}))
			defer srv.Close()
			var out strings.Builder
			err := run(t.Context(), []string{"send", "-provider", tc.provider, "-url", srv.URL, "-secret", tc.secret, "-type", tc.typ}, noEnv, &out, io.Discard)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(body, tc.want) || !strings.Contains(out.String(), "HTTP 200") {
				t.Fatalf("body %s, output %q", body, out.String())
			}
		})
	}
}

func TestSendRejectsMissingFlagsAndBadAnswers(t *testing.T) {
	t.Parallel()
	if err := run(t.Context(), []string{"send", "-provider", "clerk"}, noEnv, io.Discard, io.Discard); err == nil {
		t.Fatal("send without -url and -type must fail")
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusUnauthorized) }))
	defer srv.Close()
	err := run(t.Context(), []string{"send", "-provider", "clerk", "-url", srv.URL, "-type", "user.created"},
		func(k string) string {
			if k == "FAKEIDP_WEBHOOK_SECRET" {
				return "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
			}
			return ""
		}, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "401") {
		t.Fatalf("err = %v, want the receiver's 401 reported", err)
	}
	if err := run(t.Context(), nil, noEnv, io.Discard, io.Discard); err == nil {
		t.Fatal("no subcommand must fail")
	}
}
