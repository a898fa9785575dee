package register_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/idpsync/idpsync/internal/config"
	"github.com/idpsync/idpsync/internal/events"
	"github.com/idpsync/idpsync/internal/fakeidp"
	"github.com/idpsync/idpsync/internal/idpclient"
	"github.com/idpsync/idpsync/internal/provider"
	_ "github.com/idpsync/idpsync/internal/provider/all"
	"github.com/idpsync/idpsync/internal/provider/authpi"
	"github.com/idpsync/idpsync/internal/provider/authpi/authpifake"
	"github.com/idpsync/idpsync/internal/provider/zeroid"
	"github.com/idpsync/idpsync/internal/register"
	"github.com/idpsync/idpsync/internal/webhook"
)

// receiver stands in for idpsync's receiver: it answers the deliveries to /webhooks/<source> with
// 204 when the verifier built from the configuration accepts them, 401 when it refuses them, and
// 503 before the configuration is known.
type receiver struct {
	*httptest.Server
	source string

	mu       sync.Mutex
	verifier webhook.Verifier
	refused  []error
}

func newReceiver(t *testing.T, source string) *receiver {
	t.Helper()
	rc := &receiver{source: source}
	rc.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		rc.mu.Lock()
		v := rc.verifier
		rc.mu.Unlock()
		switch {
		case r.URL.Path != "/webhooks/"+source:
			http.NotFound(w, r)
		case v == nil:
			w.WriteHeader(http.StatusServiceUnavailable)
		default:
			if _, err := v.Verify(body, r.Header); err != nil {
				rc.mu.Lock()
				rc.refused = append(rc.refused, err)
				rc.mu.Unlock()
				w.WriteHeader(http.StatusUnauthorized)
				return
			}
			w.WriteHeader(http.StatusNoContent)
		}
	}))
	t.Cleanup(rc.Close)
	return rc
}

// Endpoint is the receiver's URL for its source.
func (rc *receiver) Endpoint() string { return rc.URL + "/webhooks/" + rc.source }

// configure builds the source's verifier the way idpsync does, from a configuration holding the
// source with its webhook settings as configLine states them (the line register printed).
func (rc *receiver) configure(t *testing.T, kind, configLine, api string) {
	t.Helper()
	yaml := fmt.Sprintf("sources:\n  - name: %s\n    kind: %s\n    %s\n    api: %s\n", rc.source, kind, configLine, api)
	cfg, err := config.Parse([]byte(yaml), func(string) string { return "" })
	if err != nil {
		t.Fatalf("the printed settings do not make a valid configuration: %v\n%s", err, yaml)
	}
	src, _ := cfg.Source(rc.source)
	v, err := src.Verifier(nil)
	if err != nil {
		t.Fatal(err)
	}
	rc.mu.Lock()
	rc.verifier = v
	rc.mu.Unlock()
}

// deliveredAndVerified flushes the fake's webhooks and checks that each was delivered and
// accepted by the receiver's verifier; it returns how many there were.
func deliveredAndVerified(t *testing.T, f interface {
	FlushWebhooks(context.Context) error
	Deliveries() []fakeidp.Delivery
}, rc *receiver) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if err := f.FlushWebhooks(ctx); err != nil {
		t.Fatal(err)
	}
	ds := f.Deliveries()
	for _, d := range ds {
		if d.Status != http.StatusNoContent {
			rc.mu.Lock()
			refused := rc.refused
			rc.mu.Unlock()
			t.Errorf("delivery %s (%s) was answered %d (%s); verifier refusals: %v", d.ID, d.Type, d.Status, d.Err, refused)
		}
	}
	return len(ds)
}

// run is one run of the command against a source; it returns the report and the log.
type run struct {
	out, log string
	err      error
}

func runCmd(t *testing.T, action func(context.Context, register.Options) error, o register.Options) run {
	t.Helper()
	var out, log bytes.Buffer
	o.Out = &out
	if o.Settings.Logger == nil {
		o.Settings.Logger = slog.New(slog.NewJSONHandler(&log, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	if o.Settings.HTTPClient == nil {
		o.Settings.HTTPClient = &http.Client{Timeout: 10 * time.Second}
	}
	o.Settings.UserAgent = "idpsync-register-test"
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	err := action(ctx, o)
	return run{out: out.String(), log: log.String(), err: err}
}

func lookup(t *testing.T, kind string) *provider.Provider {
	t.Helper()
	p, ok := provider.Lookup(events.Kind(kind))
	if !ok {
		t.Fatalf("no provider %s", kind)
	}
	return p
}

// noSecretIn fails the test when a secret appears in text (a log, an error).
func noSecretIn(t *testing.T, what, text string, secrets ...string) {
	t.Helper()
	for _, s := range secrets {
		if s != "" && strings.Contains(text, s) {
			t.Errorf("%s contains a secret (…%s)", what, s[len(s)-4:])
		}
	}
}

func mustContain(t *testing.T, what, text string, parts ...string) {
	t.Helper()
	for _, p := range parts {
		if !strings.Contains(text, p) {
			t.Errorf("%s lacks %q:\n%s", what, p, text)
		}
	}
}

// configLineOf returns the line of out that holds the webhook settings.
func configLineOf(t *testing.T, out string) string {
	t.Helper()
	for l := range strings.Lines(out) {
		if strings.HasPrefix(l, "webhook: {") {
			return strings.TrimSpace(l)
		}
	}
	t.Fatalf("no webhook settings line in the report:\n%s", out)
	return ""
}

// ---- AuthPI ---------------------------------------------------------------------------------

type authpiEnv struct {
	f    *authpifake.Fake
	rc   *receiver
	opts register.Options
	api  string // the source's api settings in YAML flow style
}

func newAuthPI(t *testing.T) *authpiEnv {
	t.Helper()
	f := authpifake.New(authpifake.Options{Users: 2, Organizations: 1, Seed: 3})
	base := f.Start()
	t.Cleanup(f.Close)
	rc := newReceiver(t, "authpi-prod")
	id, secret := f.APIKey()
	iss := f.IssuerIDs()[0]
	return &authpiEnv{f: f, rc: rc,
		opts: register.Options{Provider: lookup(t, "authpi"), Endpoint: rc.Endpoint(),
			Settings: provider.APISettings{Source: "authpi-prod", BaseURL: base, KeyID: id, KeySecret: secret, IssuerID: iss}},
		api: fmt.Sprintf("{key_id: %s, key_secret: %s, issuer_id: %s, base_url: %q}", id, secret, iss, base)}
}

func TestAuthPIRegisterCreatesTheWebhookAndPrintsItsSecretsOnce(t *testing.T) {
	t.Parallel()
	e := newAuthPI(t)
	r := runCmd(t, register.Register, e.opts)
	if r.err != nil {
		t.Fatalf("register: %v\n%s", r.err, r.out)
	}
	hooks := e.f.Webhooks()
	if len(hooks) != 1 {
		t.Fatalf("the fake has %d webhooks, want 1:\n%s", len(hooks), r.out)
	}
	w := hooks[0]
	if w.URL != e.rc.Endpoint() || w.AuthType != "bearer+signature" || w.Name != "idpsync-authpi-prod" {
		t.Errorf("webhook = %+v", w)
	}
	if !slices.Equal(w.Events, authpi.EventTypes()) || !slices.Contains(w.Events, "organization.member.removed") {
		t.Errorf("webhook events = %v, want every type the parser maps: %v", w.Events, authpi.EventTypes())
	}
	line := configLineOf(t, r.out)
	want := fmt.Sprintf(`webhook: {bearer_tokens: [%q], secrets: [%q]}`, w.BearerToken, w.SignatureSecret)
	if line != want {
		t.Errorf("config line = %s, want %s", line, want)
	}
	if n := strings.Count(r.out, w.BearerToken); n != 1 {
		t.Errorf("the bearer token is printed %d times, want once", n)
	}
	mustContain(t, "the report", r.out,
		"register source authpi-prod (AuthPI) at "+e.rc.Endpoint(),
		"read       GET /v1/me → 200",
		"read       GET /v1/accounts/"+e.f.AccountID()+"/webhooks → 200",
		"found      nothing registered for this endpoint",
		`send       POST /v1/accounts/`+e.f.AccountID()+`/webhooks {"name":"idpsync-authpi-prod","url":"`+e.rc.Endpoint()+`"`,
		"→ created webhook "+w.ID,
		"registered: 1 change made.")
	noSecretIn(t, "the log", r.log, w.BearerToken, w.SignatureSecret)
	mustContain(t, "the log", r.log, w.ID, e.rc.Endpoint())

	// The printed line, in the source's configuration, makes idpsync's verifier accept what
	// AuthPI now sends to the endpoint.
	e.rc.configure(t, "authpi", line, e.api)
	if _, err := e.f.CreateUser(authpifake.User{Username: "new", Email: "new@example.com", Status: "active"}); err != nil {
		t.Fatal(err)
	}
	if n := deliveredAndVerified(t, e.f, e.rc); n != 1 {
		t.Fatalf("%d deliveries after a user was created, want 1", n)
	}

	// A second run finds the webhook and changes nothing.
	again := runCmd(t, register.Register, e.opts)
	if again.err != nil {
		t.Fatal(again.err)
	}
	if got := e.f.MutationsOf("webhook.create"); len(got) != 1 {
		t.Errorf("%d webhooks created after two runs, want 1", len(got))
	}
	mustContain(t, "the second report", again.out, "found      webhook "+w.ID, "nothing to change: the endpoint is registered at AuthPI already.")
	noSecretIn(t, "the second report", again.out, w.BearerToken, w.SignatureSecret)
	if strings.Contains(again.out, "send") {
		t.Errorf("the second run sent a write:\n%s", again.out)
	}
}

func TestAuthPIDryRunListsTheCallsAndChangesNothing(t *testing.T) {
	t.Parallel()
	e := newAuthPI(t)
	o := e.opts
	o.DryRun = true
	o.SecretsOut = filepath.Join(t.TempDir(), "secrets.yaml")
	r := runCmd(t, register.Register, o)
	if r.err != nil {
		t.Fatal(r.err)
	}
	mustContain(t, "the report", r.out, "(dry run: reads only)",
		"read       GET /v1/accounts/"+e.f.AccountID()+"/webhooks → 200",
		`would send POST /v1/accounts/`+e.f.AccountID()+`/webhooks {"name":"idpsync-authpi-prod","url":"`+e.rc.Endpoint()+`","events":["organization.created",`,
		`"auth":{"type":"bearer+signature","signature_algorithm":"hmac-sha256"}}`,
		"dry run: 1 change planned; nothing was sent.")
	if len(e.f.Webhooks()) != 0 || len(e.f.Mutations()) != 0 {
		t.Errorf("a dry run changed the fake: %+v", e.f.Mutations())
	}
	for _, req := range e.f.Requests() {
		if req.Method != http.MethodGet {
			t.Errorf("a dry run sent %s %s", req.Method, req.Path)
		}
	}
	if _, err := os.Stat(o.SecretsOut); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a dry run created the secrets file: %v", err)
	}
}

func TestAuthPISecretsGoToAFileOnlyTheOwnerReads(t *testing.T) {
	t.Parallel()
	e := newAuthPI(t)
	o := e.opts
	o.SecretsOut = filepath.Join(t.TempDir(), "authpi-prod.yaml")
	r := runCmd(t, register.Register, o)
	if r.err != nil {
		t.Fatalf("register: %v\n%s", r.err, r.out)
	}
	w := e.f.Webhooks()[0]
	info, err := os.Stat(o.SecretsOut)
	if err != nil {
		t.Fatal(err)
	}
	if info.Mode().Perm() != 0o600 {
		t.Errorf("the secrets file has mode %v, want 0600", info.Mode().Perm())
	}
	content, _ := os.ReadFile(o.SecretsOut)
	want := fmt.Sprintf("# webhook settings of source authpi-prod for %s, shown once by AuthPI\nwebhook: {bearer_tokens: [%q], secrets: [%q]}\n",
		e.rc.Endpoint(), w.BearerToken, w.SignatureSecret)
	if string(content) != want {
		t.Errorf("the secrets file holds\n%s\nwant\n%s", content, want)
	}
	noSecretIn(t, "the report", r.out, w.BearerToken, w.SignatureSecret)
	noSecretIn(t, "the log", r.log, w.BearerToken, w.SignatureSecret)
	mustContain(t, "the report", r.out, "They are in "+o.SecretsOut+" (mode 0600)")

	// The file's line configures a verifier that accepts AuthPI's deliveries.
	e.rc.configure(t, "authpi", configLineOf(t, string(content)), e.api)
	if _, err := e.f.CreateUser(authpifake.User{Username: "n", Email: "n@example.com", Status: "active"}); err != nil {
		t.Fatal(err)
	}
	if n := deliveredAndVerified(t, e.f, e.rc); n != 1 {
		t.Fatalf("%d deliveries, want 1", n)
	}

	// An existing file is refused before anything is sent, and kept as it was.
	other := newAuthPI(t)
	o = other.opts
	o.SecretsOut = filepath.Join(t.TempDir(), "taken.yaml")
	if err := os.WriteFile(o.SecretsOut, []byte("keep me\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	r = runCmd(t, register.Register, o)
	if !errors.Is(r.err, register.ErrInvalidOptions) || !strings.Contains(r.err.Error(), "never overwrites") {
		t.Fatalf("register with an existing secrets file: %v", r.err)
	}
	if len(other.f.Requests()) != 0 || len(other.f.Webhooks()) != 0 {
		t.Errorf("register called AuthPI although the secrets file exists: %+v", other.f.Requests())
	}
	if b, _ := os.ReadFile(o.SecretsOut); string(b) != "keep me\n" {
		t.Errorf("the existing file was changed: %q", b)
	}
}

func TestAuthPIUnregisterRemovesTheWebhookOnce(t *testing.T) {
	t.Parallel()
	e := newAuthPI(t)
	keep := e.f.CreateWebhook("https://elsewhere.example.com/hooks", []string{"user.created"})
	if r := runCmd(t, register.Register, e.opts); r.err != nil {
		t.Fatal(r.err)
	}
	id := e.f.Webhooks()[1].ID
	r := runCmd(t, register.Unregister, e.opts)
	if r.err != nil {
		t.Fatalf("unregister: %v\n%s", r.err, r.out)
	}
	hooks := e.f.Webhooks()
	if len(hooks) != 1 || hooks[0].ID != keep {
		t.Errorf("webhooks after unregister: %+v, want only %s", hooks, keep)
	}
	mustContain(t, "the report", r.out, "unregister source authpi-prod (AuthPI)", "found      webhook "+id,
		"send       DELETE /v1/accounts/"+e.f.AccountID()+"/webhooks/"+id, "→ deleted webhook "+id, "unregistered: 1 change made.")

	// AuthPI sends nothing more to the endpoint.
	if _, err := e.f.CreateUser(authpifake.User{Username: "late", Status: "active"}); err != nil {
		t.Fatal(err)
	}
	if n := deliveredAndVerified(t, e.f, e.rc); n != 0 {
		t.Errorf("%d deliveries after unregister, want none", n)
	}

	again := runCmd(t, register.Unregister, e.opts)
	if again.err != nil {
		t.Fatal(again.err)
	}
	mustContain(t, "the second report", again.out, "nothing to change: AuthPI has nothing registered for the endpoint.")
	if n := len(e.f.MutationsOf("webhook.delete")); n != 1 {
		t.Errorf("%d deletes after two runs, want 1", n)
	}
}

func TestAuthPIErrorsAreClearAndChangeNothing(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		setup func(e *authpiEnv, o *register.Options)
		is    error
		says  string
	}{
		{"a wrong key secret", func(_ *authpiEnv, o *register.Options) { o.Settings.KeySecret = "wrong" },
			idpclient.ErrUnauthorized, "refused the source's api credentials"},
		{"a key without the permission", func(e *authpiEnv, _ *register.Options) {
			e.f.FailNext(1, fakeidp.Failure{Status: http.StatusForbidden, Method: http.MethodPost})
		}, idpclient.ErrForbidden, "may not manage webhooks at AuthPI"},
		{"a wrong base URL", func(_ *authpiEnv, o *register.Options) { o.Settings.BaseURL += "/api" },
			idpclient.ErrUnexpected, "check the source's base_url"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newAuthPI(t)
			o := e.opts
			tc.setup(e, &o)
			r := runCmd(t, register.Register, o)
			if !errors.Is(r.err, tc.is) || !strings.Contains(r.err.Error(), tc.says) {
				t.Fatalf("err = %v, want %v saying %q\n%s", r.err, tc.is, tc.says, r.out)
			}
			if idpclient.Classify(r.err) != idpclient.ClassPermanent {
				t.Errorf("%v is not permanent", r.err)
			}
			if len(e.f.Webhooks()) != 0 {
				t.Errorf("a failed run left webhooks: %+v", e.f.Webhooks())
			}
			noSecretIn(t, "the error", r.err.Error(), o.Settings.KeySecret)
		})
	}
}

// ---- what cannot be registered --------------------------------------------------------------

func TestZeroIDHasNoEndpointToRegister(t *testing.T) {
	t.Parallel()
	r := runCmd(t, register.Register, register.Options{Provider: lookup(t, string(zeroid.Kind)),
		Endpoint: "https://hooks.example.com/webhooks/agents",
		Settings: provider.APISettings{Source: "agents", BaseURL: "http://127.0.0.1:1", AccountID: "a", ProjectID: "p"}})
	if !errors.Is(r.err, register.ErrNotSupported) || !strings.Contains(r.err.Error(), "ZeroID sends no webhooks") {
		t.Fatalf("err = %v", r.err)
	}
	if r.out != "" {
		t.Errorf("report: %q", r.out)
	}
}

func TestEndpointMustBeTheSourcesReceiverURL(t *testing.T) {
	t.Parallel()
	for _, bad := range []string{"", "hooks.example.com/webhooks/s", "ftp://hooks.example.com/webhooks/s",
		"https://hooks.example.com/webhooks/other", "https://hooks.example.com/s", "https://u:p@hooks.example.com/webhooks/s",
		"https://hooks.example.com/webhooks/s?x=1"} {
		if err := register.CheckEndpoint(bad, "s"); !errors.Is(err, register.ErrInvalidOptions) {
			t.Errorf("CheckEndpoint(%q) = %v", bad, err)
		}
	}
	for _, good := range []string{"https://hooks.example.com/webhooks/s", "https://hooks.example.com/idpsync/webhooks/s", "http://127.0.0.1:8080/webhooks/s"} {
		if err := register.CheckEndpoint(good, "s"); err != nil {
			t.Errorf("CheckEndpoint(%q) = %v", good, err)
		}
	}
}

func TestWhatCannotRunIsRefusedBeforeAnyCall(t *testing.T) {
	t.Parallel()
	// A provider with webhooks and an API but no registrar.
	provider.Register(&provider.Provider{Kind: "noregistrar", Name: "NoRegistrar",
		Webhook: &provider.Webhook{
			NewVerifierFunc:   func(provider.WebhookSettings) (webhook.Verifier, error) { return nil, nil },
			ParseEnvelopeFunc: func(string, []byte) (events.Envelope, error) { return events.Envelope{}, nil },
			ParseFunc:         func(string, []byte) (events.Event, error) { return events.Event{}, nil },
		},
		API: &provider.API{CheckSettingsFunc: func(provider.APISettings) error { return nil },
			ConnectFunc: func(provider.APISettings) (*provider.Connection, error) { return &provider.Connection{}, nil }},
	})
	r := runCmd(t, register.Register, register.Options{Provider: lookup(t, "noregistrar"), Endpoint: "https://h.example.com/webhooks/s",
		Settings: provider.APISettings{Source: "s"}})
	if !errors.Is(r.err, register.ErrNotSupported) || !strings.Contains(r.err.Error(), "cannot register endpoints at NoRegistrar") {
		t.Errorf("no registrar: %v", r.err)
	}

	e := newAuthPI(t)
	for name, tc := range map[string]struct {
		action func(context.Context, register.Options) error
		set    func(o *register.Options)
		says   string
	}{
		"api settings the provider refuses": {register.Register, func(o *register.Options) { o.Settings.IssuerID = "" }, "issuer_id is required"},
		"a secrets file for unregister": {register.Unregister, func(o *register.Options) { o.SecretsOut = filepath.Join(t.TempDir(), "s") },
			"a secrets file is for register only"},
		"an existing secrets file in a dry run": {register.Register, func(o *register.Options) {
			o.DryRun, o.SecretsOut = true, filepath.Join(t.TempDir(), "taken")
			if err := os.WriteFile(o.SecretsOut, nil, 0o600); err != nil {
				t.Fatal(err)
			}
		}, "never overwrites"},
		"an endpoint of another source": {register.Register, func(o *register.Options) { o.Endpoint = e.rc.URL + "/webhooks/other" },
			"does not end in /webhooks/authpi-prod"},
	} {
		o := e.opts
		tc.set(&o)
		r := runCmd(t, tc.action, o)
		if !errors.Is(r.err, register.ErrInvalidOptions) || !strings.Contains(r.err.Error(), tc.says) {
			t.Errorf("%s: %v, want ErrInvalidOptions saying %q", name, r.err, tc.says)
		}
	}
	if reqs := e.f.Requests(); len(reqs) != 0 {
		t.Errorf("refused runs called AuthPI: %+v", reqs)
	}
}
