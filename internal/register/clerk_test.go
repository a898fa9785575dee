package register_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/idpsync/idpsync/internal/fakeidp"
	"github.com/idpsync/idpsync/internal/idpclient"
	"github.com/idpsync/idpsync/internal/provider"
	"github.com/idpsync/idpsync/internal/provider/clerk/clerkfake"
	"github.com/idpsync/idpsync/internal/register"
)

type clerkEnv struct {
	f    *clerkfake.Fake
	rc   *receiver
	opts register.Options
	api  string
}

func newClerk(t *testing.T, opts clerkfake.Options) *clerkEnv {
	t.Helper()
	opts.Users, opts.Seed = 2, 6
	f := clerkfake.New(opts)
	base := f.Start()
	t.Cleanup(f.Close)
	rc := newReceiver(t, "clerk-prod")
	return &clerkEnv{f: f, rc: rc,
		opts: register.Options{Provider: lookup(t, "clerk"), Endpoint: rc.Endpoint(),
			Settings: provider.APISettings{Source: "clerk-prod", BaseURL: base, SecretKey: f.SecretKey()}},
		api: fmt.Sprintf("{secret_key: %s, base_url: %q}", f.SecretKey(), base)}
}

func TestClerkRegisterCreatesTheSvixAppAndLeavesTheEndpointToTheOperator(t *testing.T) {
	t.Parallel()
	e := newClerk(t, clerkfake.Options{})
	r := runCmd(t, register.Register, e.opts)
	if r.err != nil {
		t.Fatalf("register: %v\n%s", r.err, r.out)
	}
	links := e.f.SvixLinks()
	if !e.f.SvixApp() || len(e.f.MutationsOf("svix_app.create")) != 1 || len(links) != 1 {
		t.Fatalf("Svix app %v, links %v:\n%s", e.f.SvixApp(), links, r.out)
	}
	mustContain(t, "the report", r.out,
		"read       POST /v1/webhooks/svix_url → 400",
		"note       Clerk refused a Svix dashboard link (400): the instance has no Svix app yet",
		"send       POST /v1/webhooks/svix\n",
		"→ created the instance's Svix app",
		"1 change made; the rest is yours (below).",
		"Left to you at Clerk:",
		"1. Open Svix's dashboard for the instance: "+links[0],
		"2. Add Endpoint, with the URL "+e.rc.Endpoint(),
		"3. Subscribe it to organization.*, organizationMembership.*, user.*, and to session.* if you want those events in the event log",
		`4. Copy the endpoint's Signing Secret (whsec_…) into the source's settings, best through the environment: webhook: {secrets: ["${CLERK_WEBHOOK_SECRET}"]}.`)
	// The dashboard link is a credential: printed for the operator, never logged.
	noSecretIn(t, "the log", r.log, links[0])

	// The operator follows the steps; the settings they were told to write make idpsync's
	// verifier accept what Clerk then sends.
	secret, err := e.f.AddSvixEndpoint(e.rc.Endpoint())
	if err != nil {
		t.Fatal(err)
	}
	e.rc.configure(t, "clerk", fmt.Sprintf("webhook: {secrets: [%q]}", secret), e.api)
	e.f.CreateUser(clerkfake.User{FirstName: "New", Email: "new@example.com"})
	if n := deliveredAndVerified(t, e.f, e.rc); n != 1 {
		t.Fatalf("%d deliveries, want 1", n)
	}

	again := runCmd(t, register.Register, e.opts)
	if again.err != nil {
		t.Fatal(again.err)
	}
	links = e.f.SvixLinks()
	mustContain(t, "the second report", again.out,
		"read       POST /v1/webhooks/svix_url → 200",
		"found      the instance's Svix app",
		"nothing for idpsync to change at Clerk; the rest is yours (below).",
		"1. Open Svix's dashboard for the instance: "+links[len(links)-1])
	if n := len(e.f.MutationsOf("svix_app.create")); n != 1 {
		t.Errorf("%d Svix apps created after two runs, want 1", n)
	}
}

func TestClerkDryRunAndUnregisterLeaveTheSvixApp(t *testing.T) {
	t.Parallel()
	e := newClerk(t, clerkfake.Options{})
	o := e.opts
	o.DryRun = true
	r := runCmd(t, register.Register, o)
	if r.err != nil {
		t.Fatal(r.err)
	}
	mustContain(t, "the dry run's report", r.out, "would send POST /v1/webhooks/svix\n", "dry run: 1 change planned; nothing was sent.",
		"1. Open the instance's webhooks: Clerk dashboard → Configure → Webhooks")
	if e.f.SvixApp() || len(e.f.Mutations()) != 0 {
		t.Fatal("a dry run created the Svix app")
	}

	// Unregistering from an instance without a Svix app has nothing to remove.
	r = runCmd(t, register.Unregister, e.opts)
	if r.err != nil {
		t.Fatal(r.err)
	}
	mustContain(t, "the report", r.out, "nothing to change: Clerk has nothing registered for the endpoint.")

	with := newClerk(t, clerkfake.Options{SvixApp: true})
	if _, err := with.f.AddSvixEndpoint(with.rc.Endpoint()); err != nil {
		t.Fatal(err)
	}
	r = runCmd(t, register.Unregister, with.opts)
	if r.err != nil {
		t.Fatal(r.err)
	}
	links := with.f.SvixLinks()
	mustContain(t, "the report", r.out, "found      the instance's Svix app",
		"1. Open Svix's dashboard for the instance: "+links[0],
		"2. Open the endpoint with the URL "+with.rc.Endpoint()+" and delete it; leave the other endpoints and the Svix app",
		"3. Remove its signing secret from the source's webhook.secrets.")
	// The Svix app holds every endpoint of the instance: idpsync never deletes it.
	if !with.f.SvixApp() || len(with.f.Mutations()) != 0 {
		t.Errorf("unregister changed Clerk: %+v", with.f.Mutations())
	}
}

func TestClerkErrorsAreClear(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		set  func(e *clerkEnv, o *register.Options)
		is   error
		says string
	}{
		{"a wrong secret key", func(_ *clerkEnv, o *register.Options) { o.Settings.SecretKey = "sk_test_wrong" },
			idpclient.ErrUnauthorized, "refused the source's api credentials"},
		{"a key that may not", func(e *clerkEnv, _ *register.Options) {
			e.f.FailNext(1, fakeidp.Failure{Status: 403, PathPrefix: "/v1/webhooks/svix_url"})
		}, idpclient.ErrForbidden, "may not manage webhooks at Clerk"},
		{"a wrong base URL", func(_ *clerkEnv, o *register.Options) {
			o.Settings.BaseURL = strings.TrimSuffix(o.Settings.BaseURL, "/v1")
		},
			idpclient.ErrUnexpected, "check the source's base_url"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newClerk(t, clerkfake.Options{})
			o := e.opts
			tc.set(e, &o)
			r := runCmd(t, register.Register, o)
			if !errors.Is(r.err, tc.is) || !strings.Contains(r.err.Error(), tc.says) {
				t.Fatalf("err = %v, want %v saying %q\n%s", r.err, tc.is, tc.says, r.out)
			}
			if e.f.SvixApp() {
				t.Error("a failed run created the Svix app")
			}
			noSecretIn(t, "the error", r.err.Error(), o.Settings.SecretKey)
		})
	}
}
