// Package register registers a source's receiver endpoint as a webhook at its identity provider,
// and removes it again: the work of `worker register` and `worker unregister`, testable without
// the command line.
//
// A run plans, prints, then applies. The plan comes from the provider's Registrar
// (provider.Connection.Registrar), which builds it from reads of what the IdP already has for the
// endpoint; a second run therefore finds what the first one made and changes nothing. A dry run
// prints the reads it made and the writes it would send, and sends none: once the plan is made,
// its HTTP client refuses every request.
//
// Secrets that the IdP shows once (AuthPI's bearer token and signature secret, a Zitadel target's
// signing key) are printed once, as the exact line to put in the source's webhook settings, or
// written to a file created with mode 0600. They are never logged: the logger gets the source, the
// endpoint, the calls and the ids of what they made.
package register

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path"
	"strings"
	"sync"

	"github.com/idpsync/idpsync/internal/idpclient"
	"github.com/idpsync/idpsync/internal/provider"
)

// Errors of the command itself; the IdP's are idpclient's (*idpclient.APIError, matched with
// idpclient.ErrUnauthorized and the other sentinels). All of them are permanent: a run that
// failed is run again once the cause is fixed, and finds what the failed run made.
var (
	// ErrNotSupported means idpsync cannot register the source's endpoint: its provider sends no
	// webhooks (ZeroID), or idpsync has no registrar for it.
	ErrNotSupported = errors.New("registering this source's endpoint is not supported")
	// ErrInvalidOptions means the options are wrong: the endpoint URL, the secrets file, a
	// missing field.
	ErrInvalidOptions = errors.New("invalid options")
)

// Options configure a run.
type Options struct {
	// Provider is the source's provider. Required.
	Provider *provider.Provider
	// Settings are the source's api settings with what the process adds filled in, as for the
	// jobs: HTTPClient, UserAgent, Limiter and Logger. Settings.Source names the source.
	// Required.
	Settings provider.APISettings
	// Endpoint is the receiver's URL for the source: https://<receiver>/webhooks/<source>.
	// Required.
	Endpoint string
	// DryRun makes the reads that find existing registrations, prints the writes it would send,
	// and sends none.
	DryRun bool
	// SecretsOut, when set, is a file to create with mode 0600 for the secrets the IdP shows
	// once, instead of printing them; an existing file is never overwritten. Register only.
	SecretsOut string
	// Out receives the report. Required.
	Out io.Writer
}

// Register registers o.Endpoint at the source's IdP, unless it is registered already, and
// reports to o.Out what it found, sent and made, the secrets the IdP showed once (or the file
// they went to) and the steps left to the operator.
func Register(ctx context.Context, o Options) error {
	return run(ctx, o, true)
}

// Unregister removes from the source's IdP what Register made for o.Endpoint, if anything, and
// reports to o.Out what it found, sent and removed, and the steps left to the operator.
func Unregister(ctx context.Context, o Options) error {
	if o.SecretsOut != "" {
		return fmt.Errorf("%w: a secrets file is for register only; unregister shows no secret", ErrInvalidOptions)
	}
	return run(ctx, o, false)
}

func run(ctx context.Context, o Options, registering bool) error {
	if err := o.check(); err != nil {
		return err
	}
	p, source := o.Provider, o.Settings.Source
	logger := o.Settings.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	logger = logger.With(slog.String("source", source), slog.String("endpoint", o.Endpoint))
	if p.Webhook == nil {
		return fmt.Errorf("%w: source %s is a %s source, and %s sends no webhooks: there is no endpoint to register",
			ErrNotSupported, source, p.Kind, p.Name)
	}
	if p.API == nil {
		return fmt.Errorf("%w: idpsync has no management API client for %s; register the endpoint by hand (README, Registering the endpoint)",
			ErrNotSupported, p.Name)
	}
	if err := p.API.CheckSettingsFunc(o.Settings); err != nil {
		return fmt.Errorf("%w: source %s: %v (registering the endpoint goes through %s's management API, with the source's api settings)",
			ErrInvalidOptions, source, err, p.Name)
	}

	rec := &recorder{}
	settings := o.Settings
	client := http.Client{}
	if settings.HTTPClient != nil {
		client = *settings.HTTPClient
	}
	rec.next = client.Transport
	if rec.next == nil {
		rec.next = http.DefaultTransport
	}
	client.Transport = rec
	settings.HTTPClient = &client
	conn, err := p.API.ConnectFunc(settings)
	if err != nil {
		return fmt.Errorf("source %s: %w", source, err)
	}
	if conn.Registrar == nil {
		return fmt.Errorf("%w: idpsync cannot register endpoints at %s; register it by hand (README, Registering the endpoint)",
			ErrNotSupported, p.Name)
	}

	var out *secretsFile
	if registering && o.SecretsOut != "" {
		if out, err = reserveSecretsFile(o.SecretsOut, o.DryRun); err != nil {
			return err
		}
		defer out.discardUnused()
	}

	r := &report{w: o.Out, provider: p.Name, source: source}
	verb, dry := "unregister", ""
	if registering {
		verb = "register"
	}
	if o.DryRun {
		dry = " (dry run: reads only)"
	}
	r.line("%s source %s (%s) at %s%s", verb, source, p.Name, o.Endpoint, dry)
	if u, _ := url.Parse(o.Endpoint); u.Scheme == "http" {
		r.item("note", "the endpoint is plain http; an IdP delivers over the internet, so use https outside tests")
	}

	// Plan: reads only.
	var plan *provider.RegistrationPlan
	if registering {
		plan, err = conn.Registrar.PlanRegistration(ctx, o.Endpoint)
	} else {
		plan, err = conn.Registrar.PlanRemoval(ctx, o.Endpoint)
	}
	for _, c := range rec.take() {
		r.item("read", "%s", c)
	}
	if err != nil {
		logger.ErrorContext(ctx, "looking up the endpoint's registration failed", slog.String("error", err.Error()))
		return explain(fmt.Errorf("looking up what %s has for the endpoint: %w", p.Name, err), p.Name)
	}
	r.plan(plan)
	logger.InfoContext(ctx, "endpoint registration planned", slog.String("action", verb), slog.Int("steps", len(plan.Steps)),
		slog.Bool("dry_run", o.DryRun))

	switch {
	case len(plan.Steps) == 0 && len(plan.Manual) > 0:
		r.line("nothing for idpsync to change at %s; the rest is yours (below).", p.Name)
	case len(plan.Steps) == 0 && registering:
		r.line("nothing to change: the endpoint is registered at %s already.", p.Name)
		r.line("Its secrets were shown when it was registered; to get new ones, unregister it and register it again.")
	case len(plan.Steps) == 0:
		r.line("nothing to change: %s has nothing registered for the endpoint.", p.Name)
	case o.DryRun:
		rec.refuseAll()
		for _, s := range plan.Steps {
			r.item("would send", "%s %s%s", s.Method, s.Path, bodyText(s.Body))
			r.more("%s", s.Does)
		}
		r.line("dry run: %s planned; nothing was sent.", changes(len(plan.Steps)))
		r.manual(plan.Manual)
		return nil
	}
	if len(plan.Steps) == 0 {
		r.noSecrets(out)
		r.manual(plan.Manual)
		return nil
	}

	// Apply, step by step; what a failed run made is reported, and its secrets are not lost.
	res := apply(ctx, plan, r, logger)
	switch {
	case res.failure != nil:
		r.line("failed after %s; the calls sent so far stay made: run the command again once the cause is fixed.", changes(res.done))
	case len(res.manual) > 0:
		r.line("%s; the rest is yours (below).", made(res.done))
	case registering:
		r.line("registered: %s made.", changes(res.done))
	default:
		r.line("unregistered: %s made.", changes(res.done))
	}
	if res.secrets.Empty() {
		r.noSecrets(out)
	} else if err := r.secrets(res.secrets, out, o.Endpoint); err != nil {
		return errors.Join(explain(res.failure, p.Name), err)
	}
	r.manual(res.manual)
	return explain(res.failure, p.Name)
}

// applied is what applying a plan did.
type applied struct {
	done    int // steps that succeeded
	secrets provider.WebhookSecrets
	manual  []string
	failure error // the first step's error, after which none was sent
}

// apply sends the plan's steps in order, reporting each, and stops at the first failure.
func apply(ctx context.Context, plan *provider.RegistrationPlan, r *report, logger *slog.Logger) applied {
	out := applied{manual: plan.Manual}
	for _, s := range plan.Steps {
		r.item("send", "%s %s%s", s.Method, s.Path, bodyText(s.Body))
		r.more("%s", s.Does)
		res, err := s.ApplyFunc(ctx)
		out.secrets.Add(res.Secrets)
		if res.Manual != nil {
			out.manual = res.Manual
		}
		if res.Made != "" {
			r.more("→ %s", res.Made)
			logger.InfoContext(ctx, "endpoint registration changed", slog.String("call", s.Method+" "+s.Path), slog.String("made", res.Made))
		}
		if err != nil {
			out.failure = fmt.Errorf("%s: %w", s.Does, err)
			logger.ErrorContext(ctx, "endpoint registration step failed", slog.String("call", s.Method+" "+s.Path),
				slog.String("error", err.Error()))
			return out
		}
		out.done++
	}
	return out
}

func (o Options) check() error {
	switch {
	case o.Provider == nil:
		return fmt.Errorf("%w: no provider", ErrInvalidOptions)
	case o.Out == nil:
		return fmt.Errorf("%w: no writer for the report", ErrInvalidOptions)
	case o.Settings.Source == "":
		return fmt.Errorf("%w: the settings name no source", ErrInvalidOptions)
	}
	return CheckEndpoint(o.Endpoint, o.Settings.Source)
}

// CheckEndpoint checks that endpoint is a URL where the receiver takes source's deliveries: an
// absolute http(s) URL, without user info, query or fragment, whose path ends in
// /webhooks/<source> (the receiver routes POST /webhooks/{source}).
func CheckEndpoint(endpoint, source string) error {
	u, err := url.Parse(endpoint)
	switch {
	case endpoint == "":
		return fmt.Errorf("%w: the endpoint URL is empty; pass https://<receiver>/webhooks/%s", ErrInvalidOptions, source)
	case err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "":
		return fmt.Errorf("%w: the endpoint %q is not an absolute https URL; pass https://<receiver>/webhooks/%s", ErrInvalidOptions, endpoint, source)
	case u.User != nil || u.RawQuery != "" || u.Fragment != "":
		return fmt.Errorf("%w: the endpoint %q carries user info, a query or a fragment; the receiver needs none", ErrInvalidOptions, endpoint)
	case path.Base(u.Path) != source || path.Base(path.Dir(u.Path)) != "webhooks":
		return fmt.Errorf("%w: the endpoint %q does not end in /webhooks/%s, where the receiver takes source %s's deliveries",
			ErrInvalidOptions, endpoint, source, source)
	}
	return nil
}

// explain adds what to check to the errors an operator can fix.
func explain(err error, idp string) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, idpclient.ErrUnauthorized):
		return fmt.Errorf("%w (%s refused the source's api credentials: check them)", err, idp)
	case errors.Is(err, idpclient.ErrForbidden):
		return fmt.Errorf("%w (the source's api credentials may not manage webhooks at %s: see the README, Registering the endpoint)", err, idp)
	case errors.Is(err, idpclient.ErrUnexpected):
		return fmt.Errorf("%w (%s does not answer like that: check the source's base_url)", err, idp)
	}
	return err
}

// made says "1 change made" or "n changes made", capitalized as a sentence's start.
func made(n int) string {
	c := changes(n)
	return strings.ToUpper(c[:1]) + c[1:] + " made"
}

// changes says "1 change" or "n changes".
func changes(n int) string {
	if n == 1 {
		return "1 change"
	}
	return fmt.Sprintf("%d changes", n)
}

func bodyText(b json.RawMessage) string {
	if len(b) == 0 {
		return ""
	}
	var c bytes.Buffer
	if json.Compact(&c, b) != nil {
		return " " + string(b)
	}
	return " " + c.String()
}

// report writes the report of a run.
type report struct {
	w                io.Writer
	provider, source string
}

func (r *report) line(format string, args ...any) { fmt.Fprintf(r.w, format+"\n", args...) }

// item writes an indented line headed by a label: "  read       GET /v1/me → 200".
func (r *report) item(label, format string, args ...any) {
	fmt.Fprintf(r.w, "  %-10s %s\n", label, fmt.Sprintf(format, args...))
}

// more continues the last item.
func (r *report) more(format string, args ...any) {
	fmt.Fprintf(r.w, "  %-10s %s\n", "", fmt.Sprintf(format, args...))
}

// plan writes what the lookups found and the plan's notes.
func (r *report) plan(p *provider.RegistrationPlan) {
	if len(p.Found) == 0 {
		r.item("found", "nothing registered for this endpoint")
	}
	for _, f := range p.Found {
		r.item("found", "%s", f)
	}
	for _, n := range p.Notes {
		r.item("note", "%s", n)
	}
}

func (r *report) manual(steps []string) {
	if len(steps) == 0 {
		return
	}
	r.line("\nLeft to you at %s:", r.provider)
	for i, s := range steps {
		r.line("  %d. %s", i+1, s)
	}
}

// secrets prints the secrets as the source's webhook settings, or writes them to the secrets
// file and says where they went.
func (r *report) secrets(s provider.WebhookSecrets, out *secretsFile, endpoint string) error {
	line := ConfigLine(s)
	if out != nil {
		content := fmt.Sprintf("# webhook settings of source %s for %s, shown once by %s\n%s\n", r.source, endpoint, r.provider, line)
		if err := out.write(content); err != nil {
			r.line("\n%s showed secrets once, and writing them to %s failed (%v); here they are:\n\n%s\n", r.provider, out.name, err, line)
			return err
		}
		r.line("\n%s showed secrets once; idpsync keeps no copy. They are in %s (mode 0600), as the line to put in the webhook settings of source %s.",
			r.provider, out.name, r.source)
		return nil
	}
	r.line("\n%s showed these secrets once; idpsync keeps no copy. Put this line in the settings of source %s, keeping its other webhook settings (such as tolerance); the values may go in the environment, referenced as ${NAME}:\n\n%s",
		r.provider, r.source, line)
	return nil
}

// noSecrets says that the secrets file was not created, when there was one to create.
func (r *report) noSecrets(out *secretsFile) {
	if out != nil && out.f != nil {
		r.line("%s showed no secret, so %s was not created.", r.provider, out.name)
	}
}

// ConfigLine returns the source settings that hold s, as one line of YAML:
// `webhook: {bearer_tokens: ["…"], secrets: ["…"]}` (a list that s leaves empty is left out).
func ConfigLine(s provider.WebhookSecrets) string {
	var fields []string
	if len(s.BearerTokens) > 0 {
		fields = append(fields, "bearer_tokens: "+yamlList(s.BearerTokens))
	}
	if len(s.Secrets) > 0 {
		fields = append(fields, "secrets: "+yamlList(s.Secrets))
	}
	return "webhook: {" + strings.Join(fields, ", ") + "}"
}

// yamlList writes values as a YAML flow sequence of double-quoted scalars (JSON strings, which
// YAML reads alike).
func yamlList(values []string) string {
	quoted := make([]string, len(values))
	for i, v := range values {
		var b bytes.Buffer
		enc := json.NewEncoder(&b)
		enc.SetEscapeHTML(false)
		_ = enc.Encode(v)
		quoted[i] = strings.TrimSuffix(b.String(), "\n")
	}
	return "[" + strings.Join(quoted, ", ") + "]"
}

// secretsFile is the file the secrets go to, created before any write is sent so that secrets
// are never made that have nowhere to go.
type secretsFile struct {
	name    string
	f       *os.File // nil in a dry run
	written bool
}

func reserveSecretsFile(name string, dryRun bool) (*secretsFile, error) {
	if dryRun {
		if _, err := os.Lstat(name); err == nil {
			return nil, fmt.Errorf("%w: the secrets file %s exists; idpsync never overwrites one: pass another name", ErrInvalidOptions, name)
		}
		return &secretsFile{name: name}, nil
	}
	f, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, os.ErrExist) {
		return nil, fmt.Errorf("%w: the secrets file %s exists; idpsync never overwrites one: pass another name", ErrInvalidOptions, name)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: creating the secrets file: %w", ErrInvalidOptions, err)
	}
	// The mode of a new file is 0600 less the umask; make it exactly 0600.
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		os.Remove(name)
		return nil, fmt.Errorf("%w: creating the secrets file: %w", ErrInvalidOptions, err)
	}
	return &secretsFile{name: name, f: f}, nil
}

func (s *secretsFile) write(content string) error {
	if _, err := s.f.WriteString(content); err != nil {
		return err
	}
	if err := s.f.Sync(); err != nil {
		return err
	}
	s.written = true
	return s.f.Close()
}

// discardUnused removes the file when no secret went into it.
func (s *secretsFile) discardUnused() {
	if s.f == nil || s.written {
		return
	}
	s.f.Close()
	os.Remove(s.name)
}

// recorder is the HTTP transport of a run: it records the calls sent, for the report, and
// refuses every call once a dry run's plan is made.
type recorder struct {
	next http.RoundTripper

	mu     sync.Mutex
	calls  []call
	refuse bool
}

type call struct {
	method, path string
	status       int // 0: no answer
}

func (c call) String() string {
	if c.status == 0 {
		return c.method + " " + c.path + " → no answer"
	}
	return fmt.Sprintf("%s %s → %d", c.method, c.path, c.status)
}

// RoundTrip implements http.RoundTripper.
func (r *recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	r.mu.Lock()
	refuse := r.refuse
	r.mu.Unlock()
	if refuse {
		return nil, fmt.Errorf("dry run: refusing to send %s %s", req.Method, req.URL.EscapedPath())
	}
	resp, err := r.next.RoundTrip(req)
	c := call{method: req.Method, path: req.URL.EscapedPath()}
	if err == nil {
		c.status = resp.StatusCode
	}
	r.mu.Lock()
	r.calls = append(r.calls, c)
	r.mu.Unlock()
	return resp, err
}

// take returns the calls recorded since the last take.
func (r *recorder) take() []call {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.calls
	r.calls = nil
	return out
}

func (r *recorder) refuseAll() {
	r.mu.Lock()
	r.refuse = true
	r.mu.Unlock()
}
