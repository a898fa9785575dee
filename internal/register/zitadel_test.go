package register_test

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/idpsync/idpsync/internal/fakeidp"
	"github.com/idpsync/idpsync/internal/idpclient"
	"github.com/idpsync/idpsync/internal/provider"
	"github.com/idpsync/idpsync/internal/provider/zitadel"
	"github.com/idpsync/idpsync/internal/provider/zitadel/zitadelfake"
	"github.com/idpsync/idpsync/internal/register"
)

type zitadelEnv struct {
	f    *zitadelfake.Fake
	c    *zitadel.Client // the operator's own client, to set up and read the instance
	rc   *receiver
	opts register.Options
	api  string
}

func newZitadel(t *testing.T) *zitadelEnv {
	t.Helper()
	f := zitadelfake.New(zitadelfake.Options{Users: 2, Organizations: 1, Seed: 4})
	base := f.Start()
	t.Cleanup(f.Close)
	c, err := zitadel.New(zitadel.Config{BaseURL: base, PersonalAccessToken: f.PAT(),
		Retry: idpclient.RetryPolicy{BaseDelay: time.Millisecond, MaxDelay: 2 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	rc := newReceiver(t, "zitadel-prod")
	return &zitadelEnv{f: f, c: c, rc: rc,
		opts: register.Options{Provider: lookup(t, "zitadel"), Endpoint: rc.Endpoint(),
			Settings: provider.APISettings{Source: "zitadel-prod", BaseURL: base, Token: f.PAT()}},
		api: fmt.Sprintf("{token: %s, base_url: %q}", f.PAT(), base)}
}

// groupTargets returns the targets of the execution of each event group.
func groupTargets(f *zitadelfake.Fake) map[string][]string {
	out := map[string][]string{}
	for _, e := range f.Executions() {
		if ev, ok := e.Condition["event"].(map[string]any); ok && ev["group"] != nil {
			out[fmt.Sprint(ev["group"])] = e.Targets
		}
	}
	return out
}

func TestZitadelRegisterCreatesTheTargetAndBothExecutions(t *testing.T) {
	t.Parallel()
	e := newZitadel(t)
	r := runCmd(t, register.Register, e.opts)
	if r.err != nil {
		t.Fatalf("register: %v\n%s", r.err, r.out)
	}
	targets := e.f.Targets()
	if len(targets) != 1 {
		t.Fatalf("the fake has %d targets, want 1:\n%s", len(targets), r.out)
	}
	tg := targets[0]
	if tg.Endpoint != e.rc.Endpoint() || tg.Name != "idpsync-zitadel-prod" || tg.Type != "restWebhook" || tg.InterruptOnError ||
		tg.PayloadType != "PAYLOAD_TYPE_JSON" || tg.Timeout != 10*time.Second {
		t.Errorf("target = %+v", tg)
	}
	got := groupTargets(e.f)
	if len(e.f.Executions()) != 2 || !slices.Equal(got["user"], []string{tg.ID}) || !slices.Equal(got["org"], []string{tg.ID}) {
		t.Errorf("executions = %+v, want the groups user and org calling %s", e.f.Executions(), tg.ID)
	}
	line := configLineOf(t, r.out)
	if want := fmt.Sprintf(`webhook: {secrets: [%q]}`, tg.SigningKey); line != want {
		t.Errorf("config line = %s, want %s", line, want)
	}
	mustContain(t, "the report", r.out,
		"read       POST /v2/actions/targets/search → 200",
		"read       POST /v2/actions/executions/search → 200",
		`send       POST /v2/actions/targets {"name":"idpsync-zitadel-prod","restWebhook":{"interruptOnError":false},"timeout":"10s","endpoint":"`+e.rc.Endpoint()+`","payloadType":"PAYLOAD_TYPE_JSON"}`,
		"→ created target "+tg.ID,
		`send       PUT /v2/actions/executions {"condition":{"event":{"group":"user"}},"targets":["<id of the new target>"]}`,
		`send       PUT /v2/actions/executions {"condition":{"event":{"group":"org"}},"targets":["<id of the new target>"]}`,
		"registered: 3 changes made.")
	noSecretIn(t, "the log", r.log, tg.SigningKey)

	// The printed line makes idpsync's verifier accept what Zitadel sends for user and org
	// events; other groups are not sent.
	e.rc.configure(t, "zitadel", line, e.api)
	u := e.f.CreateUser(zitadelfake.User{Username: "new", FirstName: "N", LastName: "U", Email: "n@example.com"})
	e.f.CreateOrganization(zitadelfake.Organization{Name: "Acme"})
	if _, err := e.f.CreateSession(u.ID); err != nil {
		t.Fatal(err)
	}
	if n := deliveredAndVerified(t, e.f, e.rc); n != 2 {
		t.Errorf("%d deliveries, want 2 (user.human.added, org.added): %+v", n, e.f.Deliveries())
	}

	again := runCmd(t, register.Register, e.opts)
	if again.err != nil {
		t.Fatal(again.err)
	}
	mustContain(t, "the second report", again.out, "found      target "+tg.ID,
		"found      execution of the event group user: targets "+tg.ID,
		"nothing to change: the endpoint is registered at Zitadel already.")
	if n := len(e.f.MutationsOf("target.create")) + len(e.f.MutationsOf("execution.set")); n != 3 {
		t.Errorf("%d writes after two runs, want the first run's 3", n)
	}
	noSecretIn(t, "the second report", again.out, tg.SigningKey)
}

func TestZitadelDryRunListsTheCallsAndChangesNothing(t *testing.T) {
	t.Parallel()
	e := newZitadel(t)
	o := e.opts
	o.DryRun = true
	r := runCmd(t, register.Register, o)
	if r.err != nil {
		t.Fatal(r.err)
	}
	mustContain(t, "the report", r.out,
		"read       POST /v2/actions/targets/search → 200",
		"read       POST /v2/actions/executions/search → 200",
		"would send POST /v2/actions/targets {",
		`would send PUT /v2/actions/executions {"condition":{"event":{"group":"user"}},"targets":["<id of the new target>"]}`,
		"dry run: 3 changes planned; nothing was sent.")
	if len(e.f.Mutations()) != 0 || len(e.f.Targets()) != 0 {
		t.Errorf("a dry run changed the fake: %+v", e.f.Mutations())
	}
	for _, req := range e.f.Requests() {
		if !strings.HasSuffix(req.Path, "/search") {
			t.Errorf("a dry run sent %s %s", req.Method, req.Path)
		}
	}
}

func TestZitadelKeepsTheExecutionsOtherTargets(t *testing.T) {
	t.Parallel()
	e := newZitadel(t)
	ctx := t.Context()
	other, err := e.c.CreateTarget(ctx, &zitadel.CreateTargetParams{Name: "audit", RESTAsync: &struct{}{}, Timeout: "5s",
		Endpoint: "https://audit.example.com/zitadel"})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.c.SetExecution(ctx, zitadel.EventGroup("user"), []string{other.ID}); err != nil {
		t.Fatal(err)
	}
	r := runCmd(t, register.Register, e.opts)
	if r.err != nil {
		t.Fatalf("register: %v\n%s", r.err, r.out)
	}
	var mine string
	for _, tg := range e.f.Targets() {
		if tg.Endpoint == e.rc.Endpoint() {
			mine = tg.ID
		}
	}
	got := groupTargets(e.f)
	if !slices.Equal(got["user"], []string{other.ID, mine}) || !slices.Equal(got["org"], []string{mine}) {
		t.Fatalf("executions after register: %v", got)
	}
	mustContain(t, "the report", r.out, `send       PUT /v2/actions/executions {"condition":{"event":{"group":"user"}},"targets":["`+other.ID+`","<id of the new target>"]}`)

	r = runCmd(t, register.Unregister, e.opts)
	if r.err != nil {
		t.Fatalf("unregister: %v\n%s", r.err, r.out)
	}
	got = groupTargets(e.f)
	if !slices.Equal(got["user"], []string{other.ID}) || got["org"] != nil || len(e.f.Executions()) != 1 {
		t.Errorf("executions after unregister: %v", got)
	}
	if ts := e.f.Targets(); len(ts) != 1 || ts[0].ID != other.ID {
		t.Errorf("targets after unregister: %+v", ts)
	}
	mustContain(t, "the report", r.out,
		`send       PUT /v2/actions/executions {"condition":{"event":{"group":"user"}},"targets":["`+other.ID+`"]}`,
		`send       PUT /v2/actions/executions {"condition":{"event":{"group":"org"}},"targets":[]}`,
		"(no target is left: Zitadel removes the execution)",
		"send       DELETE /v2/actions/targets/"+mine, "→ deleted target "+mine, "unregistered: 3 changes made.")

	again := runCmd(t, register.Unregister, e.opts)
	if again.err != nil {
		t.Fatal(again.err)
	}
	mustContain(t, "the second report", again.out, "nothing to change: Zitadel has nothing registered for the endpoint.")
	if n := len(e.f.MutationsOf("target.delete")); n != 1 {
		t.Errorf("%d target deletes after two runs, want 1", n)
	}
}

func TestZitadelUnregisterStopsTheDeliveries(t *testing.T) {
	t.Parallel()
	e := newZitadel(t)
	r := runCmd(t, register.Register, e.opts)
	if r.err != nil {
		t.Fatal(r.err)
	}
	if r := runCmd(t, register.Unregister, e.opts); r.err != nil {
		t.Fatal(r.err)
	}
	if len(e.f.Targets()) != 0 || len(e.f.Executions()) != 0 {
		t.Fatalf("left: %+v %+v", e.f.Targets(), e.f.Executions())
	}
	e.rc.configure(t, "zitadel", configLineOf(t, r.out), e.api)
	e.f.CreateUser(zitadelfake.User{Username: "late"})
	if n := deliveredAndVerified(t, e.f, e.rc); n != 0 {
		t.Errorf("%d deliveries after unregister, want none", n)
	}
}

func TestZitadelFailureHalfwayKeepsTheSigningKeyAndTheNextRunFinishes(t *testing.T) {
	t.Parallel()
	e := newZitadel(t)
	e.f.FailNext(1, fakeidp.Failure{Status: http.StatusForbidden, Method: http.MethodPut})
	r := runCmd(t, register.Register, e.opts)
	if !errors.Is(r.err, idpclient.ErrForbidden) || !strings.Contains(r.err.Error(), "may not manage webhooks at Zitadel") {
		t.Fatalf("err = %v\n%s", r.err, r.out)
	}
	tg := e.f.Targets()[0]
	// The key Zitadel showed is not lost with the run.
	if line := configLineOf(t, r.out); line != fmt.Sprintf(`webhook: {secrets: [%q]}`, tg.SigningKey) {
		t.Errorf("config line after the failure = %s", line)
	}
	mustContain(t, "the report", r.out, "failed after 1 change; the calls sent so far stay made")
	noSecretIn(t, "the error", r.err.Error(), tg.SigningKey)

	again := runCmd(t, register.Register, e.opts)
	if again.err != nil {
		t.Fatalf("second run: %v\n%s", again.err, again.out)
	}
	got := groupTargets(e.f)
	if len(e.f.Targets()) != 1 || !slices.Equal(got["user"], []string{tg.ID}) || !slices.Equal(got["org"], []string{tg.ID}) {
		t.Errorf("after the second run: targets %+v, executions %v", e.f.Targets(), got)
	}
	mustContain(t, "the second report", again.out, "found      target "+tg.ID, "registered: 2 changes made.")
	if strings.Contains(again.out, "webhook: {") {
		t.Errorf("the second run printed settings, though it got no secret:\n%s", again.out)
	}
}

func TestZitadelErrorsAreClear(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		set  func(o *register.Options)
		is   error
		says string
	}{
		{"a wrong token", func(o *register.Options) { o.Settings.Token = "wrong" }, idpclient.ErrUnauthorized, "refused the source's api credentials"},
		{"a wrong base URL", func(o *register.Options) { o.Settings.BaseURL += "/zitadel" }, idpclient.ErrUnexpected, "check the source's base_url"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newZitadel(t)
			o := e.opts
			tc.set(&o)
			r := runCmd(t, register.Register, o)
			if !errors.Is(r.err, tc.is) || !strings.Contains(r.err.Error(), tc.says) {
				t.Fatalf("err = %v, want %v saying %q", r.err, tc.is, tc.says)
			}
			if len(e.f.Targets()) != 0 {
				t.Errorf("a failed run created targets")
			}
		})
	}
}
