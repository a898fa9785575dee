// Package config loads idpsync's configuration: one YAML file whose string values may reference
// environment variables as ${NAME} (required) or ${NAME:-default}, plus the overrides DATABASE_URL
// and NATS_URL. Loading applies the documented defaults and validates the result; every problem is
// reported as a sentence naming the field and the fix.
package config

import (
	"cmp"
	"errors"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/idpsync/idpsync/internal/events"
	"github.com/idpsync/idpsync/internal/idpclient"
	"github.com/idpsync/idpsync/internal/provider"
	"github.com/idpsync/idpsync/internal/ssf"

	// The configuration's kinds are the providers idpsync ships with.
	_ "github.com/idpsync/idpsync/internal/provider/all"
	"github.com/idpsync/idpsync/internal/webhook"
)

// Config is the whole configuration of the receiver and the worker. Both read the same file.
type Config struct {
	// lines maps each field of the file to its line, for validation errors.
	lines map[string]int

	Database Database `yaml:"database"`
	NATS     NATS     `yaml:"nats"`
	Receiver Receiver `yaml:"receiver"`
	Worker   Worker   `yaml:"worker"`
	Admin    Admin    `yaml:"admin"`
	Sources  []Source `yaml:"sources"`
	// SSF turns on the worker's Shared Signals transmitter (README, "Security events out"): the
	// changes idpsync sees go out as CAEP and RISC security events to the configured receivers.
	// Off when absent.
	SSF *ssf.Config `yaml:"ssf"`
}

// Admin protects the operators' HTTP surfaces (the receiver's and the worker's admin_addr): River
// UI is served only behind these credentials, and /metrics too with ProtectMetrics. /healthz and
// /readyz stay open for probes.
type Admin struct {
	// Username and Password are HTTP Basic credentials. Optional.
	Username string `yaml:"username"`
	Password string `yaml:"password"`
	// BearerTokens are accepted as "Authorization: Bearer <token>". Optional.
	BearerTokens []string `yaml:"bearer_tokens"`
	// ProtectMetrics puts /metrics behind the credentials. Defaults to false.
	ProtectMetrics bool `yaml:"protect_metrics"`
}

// HasCredentials reports whether admin credentials are configured.
func (a Admin) HasCredentials() bool {
	return a.Username != "" && a.Password != "" || len(a.BearerTokens) > 0
}

// Database configures the Postgres that holds the event log, the mirror and River's queue.
type Database struct {
	// URL is a libpq connection string or URL. DATABASE_URL overrides it.
	// Defaults to postgres://postgres@127.0.0.1:5432/idpsync?sslmode=disable.
	URL string `yaml:"url"`
	// Schema holds every idpsync and River table, so nothing collides with the application's own
	// tables. Defaults to "idpsync".
	Schema string `yaml:"schema"`
	// MaxConns bounds the connection pool of each process. Defaults to 20.
	MaxConns int32 `yaml:"max_conns"`
}

// NATS configures the JetStream connection and the event stream.
type NATS struct {
	// URL of the NATS servers, comma-separated. NATS_URL overrides it. Required by the receiver and
	// the worker; when empty, `make run` (cmd/worker dev) embeds a JetStream server instead.
	URL string `yaml:"url"`
	// CredsFile is a NATS credentials file (JWT and nkey seed). Optional.
	CredsFile string `yaml:"creds_file"`
	// Stream is the JetStream stream of webhook events. Defaults to "IDPSYNC_EVENTS".
	Stream string `yaml:"stream"`
	// SubjectPrefix prefixes every event subject: <prefix>.<source>.<type>. Defaults to "idpsync.events".
	SubjectPrefix string `yaml:"subject_prefix"`
	// Replicas of the stream: 1 for development, 3 in a production cluster. Defaults to 1.
	Replicas int `yaml:"replicas"`
	// MaxAge is how long the stream keeps events for replay. Defaults to 7 days (168h).
	MaxAge Duration `yaml:"max_age"`
	// Duplicates is JetStream's deduplication window by Nats-Msg-Id. The event log dedupes forever
	// behind it. Defaults to 2m.
	Duplicates Duration `yaml:"duplicates"`
	// MaxBytes caps the stream's size; -1 means no cap. Defaults to -1.
	MaxBytes int64 `yaml:"max_bytes"`
}

// Receiver configures cmd/receiver.
type Receiver struct {
	// Addr is the listen address of the webhook endpoint. Defaults to ":8080".
	Addr string `yaml:"addr"`
	// MaxBodyBytes is the largest body accepted; larger ones get 413. Defaults to 1000000, which
	// fits, with headers, in NATS' default max_payload of 1 MiB; the receiver refuses to start with
	// a limit the NATS server would not accept.
	MaxBodyBytes int64 `yaml:"max_body_bytes"`
	// MaxInFlightBytes caps the body bytes held by all requests at once (counted as they arrive);
	// over it a delivery gets 503 with Retry-After. Defaults to 32 MiB; at least max_body_bytes.
	MaxInFlightBytes int64 `yaml:"max_in_flight_bytes"`
	// MaxConns caps the open connections (an IdP delivers over a handful; each stalled one costs
	// about 17 KB). Defaults to 1024.
	MaxConns int `yaml:"max_conns"`
	// MaxHeaderBytes caps a request's header block; more gets 431. Defaults to 16 KiB (IdPs send
	// under 2 KiB; an id up to this size gets a 400 naming it).
	MaxHeaderBytes int `yaml:"max_header_bytes"`
	// PublishTimeout bounds the wait for JetStream's acknowledgement before answering 503.
	// Defaults to 5s.
	PublishTimeout Duration `yaml:"publish_timeout"`
	// RetryAfter is the Retry-After sent with a 503. Defaults to 5s.
	RetryAfter Duration `yaml:"retry_after"`
	// ShutdownTimeout bounds the drain of in-flight requests on shutdown. Defaults to 25s.
	ShutdownTimeout Duration `yaml:"shutdown_timeout"`
	// AdminAddr serves the receiver's /metrics and /healthz, apart from the public webhook port.
	// Defaults to "127.0.0.1:9091" (loopback: put a scraper on the host, or set an address and
	// admin credentials); "-" turns it off.
	AdminAddr string `yaml:"admin_addr"`
}

// Worker configures cmd/worker.
type Worker struct {
	// AdminAddr serves /metrics, /healthz, /readyz and, when RiverUI is on, /riverui/.
	// Defaults to "127.0.0.1:9090" (loopback); "-" turns the admin server off.
	AdminAddr string `yaml:"admin_addr"`
	// RiverUI mounts River's job dashboard at /riverui/ on the admin server, behind the admin
	// credentials (it can retry, cancel and delete jobs and pause queues; cross-site requests are
	// refused). Defaults to false; true needs admin credentials.
	RiverUI bool `yaml:"river_ui"`
	// Consumer is the durable JetStream consumer the workers share. Defaults to "idpsync-worker".
	Consumer string `yaml:"consumer"`
	// BatchSize is the most messages recorded in one Postgres transaction. Defaults to 100.
	BatchSize int `yaml:"batch_size"`
	// AckWait is how long JetStream waits for an ack before redelivering. Defaults to 30s.
	AckWait Duration `yaml:"ack_wait"`
	// ReconcileWorkers is how many mirror jobs run at once in each process. Defaults to 20.
	ReconcileWorkers int `yaml:"reconcile_workers"`
	// RevokeWorkers is how many calls back to the IdPs (revocations) run at once in each
	// process. Defaults to 10.
	RevokeWorkers int `yaml:"revoke_workers"`
	// ResyncWorkers is how many resyncs run at once in each process. Defaults to 2.
	ResyncWorkers int `yaml:"resync_workers"`
	// SSFWorkers is how many SET pushes run at once in each process, with ssf configured.
	// Defaults to 10.
	SSFWorkers int `yaml:"ssf_workers"`
	// ShutdownTimeout bounds how long running jobs may finish on shutdown before they are
	// cancelled (and retried later). Defaults to 25s.
	ShutdownTimeout Duration `yaml:"shutdown_timeout"`
	// EventRetention, when set, is how long the event log keeps an event: an hourly job deletes
	// older ones (never a pending one) in bounded batches. At least nats.max_age, so that the
	// stream cannot hold an event the log forgot. Defaults to 0: kept forever.
	EventRetention Duration `yaml:"event_retention"`
	// JobRetention is how long River keeps completed jobs (for River UI and audits) before its
	// cleaner deletes them; cancelled and discarded jobs are kept 7 days. Defaults to 24h.
	JobRetention Duration `yaml:"job_retention"`
}

// Source is one configured IdP tenant.
type Source struct {
	// Name identifies the source in the URL (/webhooks/<name>), in NATS subjects and in the mirror's
	// source column. Lowercase letters, digits, '-' and '_'. Required.
	Name string `yaml:"name"`
	// Kind is the IdP: one of the registered providers (clerk, zitadel, authpi, zeroid). Required.
	Kind events.Kind `yaml:"kind"`
	// Webhook holds the verification settings of the source's deliveries. A source without them
	// receives no webhooks (resync and revocation only).
	Webhook Webhook `yaml:"webhook"`
	// API holds the management-API credentials that resyncs and revocations use. A source
	// without them is mirrored from webhooks only.
	API API `yaml:"api"`
	// Resync schedules the periodic resyncs of the source from its management API.
	Resync Resync `yaml:"resync"`
	// Revocation is what the source's users losing access triggers.
	Revocation Revocation `yaml:"revocation"`
}

// API holds a source's management-API credentials; which fields apply depends on the kind (see
// docs/providers.md):
//
//	clerk:   secret_key
//	zitadel: base_url and one of token (a PAT), client_id with client_secret, or key_file
//	authpi:  key_id, key_secret, issuer_id (account_id is looked up when empty)
//	zeroid:  base_url, account_id, project_id; client_id and client_secret (an OAuth client, for token
//	         introspection and revocation); actor; token only when a gateway in front of /api/v1
//	         wants a bearer token (ZeroID itself has no admin authentication)
type API struct {
	// BaseURL is the API root. Defaults to the IdP's public API (clerk, authpi); required for
	// zitadel (the instance URL) and zeroid.
	BaseURL        string `yaml:"base_url"`
	SecretKey      string `yaml:"secret_key"`
	Token          string `yaml:"token"`
	ClientID       string `yaml:"client_id"`
	ClientSecret   string `yaml:"client_secret"`
	KeyFile        string `yaml:"key_file"`
	KeyID          string `yaml:"key_id"`
	KeySecret      string `yaml:"key_secret"`
	AccountID      string `yaml:"account_id"`
	ProjectID      string `yaml:"project_id"`
	IssuerID       string `yaml:"issuer_id"`
	OrganizationID string `yaml:"organization_id"`
	// Actor is who idpsync says it is where the IdP records who made a change (ZeroID's
	// X-User-ID, shown as modified_by). Defaults to "idpsync".
	Actor string `yaml:"actor"`
	// RateLimit caps the requests per second idpsync sends to this source; 0 means no cap beyond
	// honouring the IdP's 429s. Defaults to 0.
	RateLimit float64 `yaml:"rate_limit"`
	// Timeout bounds each request. Defaults to 30s.
	Timeout Duration `yaml:"timeout"`
}

// Configured reports whether any credential is set.
func (a API) Configured() bool {
	return a.SecretKey != "" || a.Token != "" || a.ClientID != "" || a.KeyFile != "" || a.KeyID != "" ||
		a.BaseURL != "" || a.AccountID != ""
}

// Resync configures the periodic resyncs of a source with API credentials.
type Resync struct {
	// Interval between two resyncs of each entity. Defaults to 6h.
	Interval Duration `yaml:"interval"`
	// Periodic turns the periodic resyncs on or off; `worker resync` works either way.
	// Defaults to true.
	Periodic *bool `yaml:"periodic"`
	// Entities resynced: users, organizations, memberships. Defaults to all that the kind
	// supports.
	Entities []string `yaml:"entities"`
}

// Revocation is a source's revocation policy: which changes trigger it and what it revokes.
type Revocation struct {
	// Triggers: user.deleted, user.banned, user.locked, organization.deleted,
	// organization.suspended (events.Triggers). Defaults to all of them; an empty list ([]) turns
	// revocation off. An organization's triggers act on every member the mirror holds.
	Triggers []events.Trigger `yaml:"triggers"`
	// Sessions revokes the user's sessions at this source's IdP. Defaults to true when the source
	// has API credentials and its kind can revoke sessions (clerk, zitadel).
	Sessions *bool `yaml:"sessions"`
	// ZeroID names a zeroid source whose agent identities owned by the user lose their
	// credentials too. Defaults to none.
	ZeroID string `yaml:"zeroid"`
	// ZeroIDAction is what happens to the user's agents: offboard (ZeroID's offboard-by-owner,
	// across its projects, then a check that none is left), deactivate (each identity of the
	// configured project deactivated), or signal (a critical CAE signal per identity: its current
	// tokens are revoked, but the identity stays active and its keys mint new tokens). Defaults to
	// offboard.
	ZeroIDAction events.AgentAction `yaml:"zeroid_action"`
	// OwnerKey is the user attribute ZeroID knows the owner by: id, external_id or email.
	// Defaults to id.
	OwnerKey string `yaml:"owner_key"`
}

// HasWebhook reports whether the source receives webhooks.
func (s Source) HasWebhook() bool {
	return len(s.Webhook.Secrets) > 0 || len(s.Webhook.BearerTokens) > 0
}

// ResyncEntities returns the entities the source resyncs, none without API credentials.
func (s Source) ResyncEntities() []events.Entity {
	if !s.API.Configured() {
		return nil
	}
	var out []events.Entity
	for _, name := range s.Resync.Entities {
		if e, err := events.ParseEntity(name); err == nil {
			out = append(out, e)
		}
	}
	return out
}

// Provider returns the source's provider; nil for a kind no provider registered (which Validate
// reports).
func (s Source) Provider() *provider.Provider {
	p, _ := provider.Lookup(s.Kind)
	return p
}

// WebhookSettings returns the source's webhook settings for its provider. now is the clock; nil
// means time.Now.
func (s Source) WebhookSettings(now func() time.Time) provider.WebhookSettings {
	return provider.WebhookSettings{Secrets: s.Webhook.Secrets, BearerTokens: s.Webhook.BearerTokens,
		Tolerance: time.Duration(s.Webhook.Tolerance), NowFunc: now}
}

// APISettings returns the source's management-API settings for its provider; the caller adds
// the HTTP client, limiter, user agent and logger.
func (s Source) APISettings() provider.APISettings {
	a := s.API
	return provider.APISettings{Source: s.Name, BaseURL: a.BaseURL, SecretKey: a.SecretKey, Token: a.Token,
		ClientID: a.ClientID, ClientSecret: a.ClientSecret, KeyFile: a.KeyFile, KeyID: a.KeyID, KeySecret: a.KeySecret,
		AccountID: a.AccountID, ProjectID: a.ProjectID, IssuerID: a.IssuerID, OrganizationID: a.OrganizationID, Actor: a.Actor}
}

// RevokesSessions reports whether the policy revokes sessions at the source's IdP.
func (s Source) RevokesSessions() bool { return s.Revocation.Sessions != nil && *s.Revocation.Sessions }

// Webhook holds a source's webhook verification settings. Which fields apply depends on the kind:
//
//	clerk:   secrets (Svix signing secrets, whsec_...), tolerance
//	zitadel: secrets (the target's signing keys), tolerance
//	authpi:  bearer_tokens, secrets (HMAC signature secrets), or both (then both must pass)
//
// (ZeroID sends no webhooks.)
// Several values are accepted at once so that a secret can be rotated: list the new and the old one.
type Webhook struct {
	Secrets      []string `yaml:"secrets"`
	BearerTokens []string `yaml:"bearer_tokens"`
	// Tolerance is how far a signed timestamp may be from now (clerk, zitadel). Defaults to 5m.
	Tolerance Duration `yaml:"tolerance"`
}

// Defaults.
const (
	DatabaseURLDefault      = "postgres://postgres@127.0.0.1:5432/idpsync?sslmode=disable"
	SchemaDefault           = "idpsync"
	StreamDefault           = "IDPSYNC_EVENTS"
	SubjectPrefixDefault    = "idpsync.events"
	ConsumerDefault         = "idpsync-worker"
	MaxBodyBytesDefault     = 1_000_000
	WebhookToleranceDefault = 5 * time.Minute
	ActorDefault            = "idpsync"

	// The receiver's bounds (see Receiver).
	MaxInFlightBytesDefault        = 32 << 20
	ReceiverMaxConnsDefault        = 1024
	MaxHeaderBytesDefault          = 16 << 10
	RetryAfterDefault              = 5 * time.Second
	ReceiverShutdownTimeoutDefault = 25 * time.Second
)

// Part is a top-level section of the configuration. A command loads the parts it needs: the
// others are neither required nor validated (migrate needs no webhook secret).
type Part string

// The parts.
const (
	PartDatabase Part = "database"
	PartNATS     Part = "nats"
	PartReceiver Part = "receiver"
	PartWorker   Part = "worker"
	PartAdmin    Part = "admin"
	PartSources  Part = "sources"
	PartSSF      Part = "ssf"
)

var allParts = []Part{PartDatabase, PartNATS, PartReceiver, PartWorker, PartAdmin, PartSources, PartSSF}

// What each process or command needs.
var (
	// ForReceiver is what the receiver needs.
	ForReceiver = []Part{PartNATS, PartReceiver, PartAdmin, PartSources}
	// ForWorker is what the worker and most of its commands need: everything but the receiver's.
	ForWorker = []Part{PartDatabase, PartNATS, PartWorker, PartAdmin, PartSources, PartSSF}
	// ForDatabase is what a command that only touches Postgres needs (migrate).
	ForDatabase = []Part{PartDatabase}
)

// Load reads the file at path, expands environment references with getenv, applies the
// DATABASE_URL and NATS_URL overrides and the defaults, and validates the parts given (all when
// none is). Every problem of those parts is reported at once, each with its field, line and fix.
func Load(path string, getenv func(string) string, parts ...Part) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading config: %w", err)
	}
	cfg, err := Parse(data, getenv, parts...)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return cfg, nil
}

// Parse is Load for configuration already in memory.
func Parse(data []byte, getenv func(string) string, parts ...Part) (*Config, error) {
	cfg := &Config{}
	d := &decoder{getenv: getenv, lines: map[string]int{}}
	d.decode(data, cfg)
	if v := getenv("DATABASE_URL"); v != "" {
		cfg.Database.URL = v
	}
	if v := getenv("NATS_URL"); v != "" {
		cfg.NATS.URL = v
	}
	cfg.applyDefaults()
	cfg.lines = d.lines
	errs := append(d.errs, cfg.validate()...)
	if len(parts) == 0 {
		parts = allParts
	}
	var kept []error
	for _, e := range errs {
		top, _, _ := strings.Cut(strings.SplitN(e.path, "[", 2)[0], ".")
		known := slices.Contains(allParts, Part(top))
		if e.path == "" || e.path == "(top level)" || !known || slices.Contains(parts, Part(top)) {
			kept = append(kept, e)
		}
	}
	if err := errors.Join(kept...); err != nil {
		return nil, err
	}
	return cfg, nil
}

func (c *Config) applyDefaults() {
	if c.SSF != nil {
		c.SSF.ApplyDefaults()
	}
	d := &c.Database
	d.URL = cmp.Or(d.URL, DatabaseURLDefault)
	d.Schema = cmp.Or(d.Schema, SchemaDefault)
	d.MaxConns = cmp.Or(d.MaxConns, 20)

	n := &c.NATS
	n.Stream = cmp.Or(n.Stream, StreamDefault)
	n.SubjectPrefix = cmp.Or(n.SubjectPrefix, SubjectPrefixDefault)
	n.Replicas = cmp.Or(n.Replicas, 1)
	n.MaxAge = cmp.Or(n.MaxAge, Duration(7*24*time.Hour))
	n.Duplicates = cmp.Or(n.Duplicates, Duration(2*time.Minute))
	n.MaxBytes = cmp.Or(n.MaxBytes, -1)

	r := &c.Receiver
	r.Addr = cmp.Or(r.Addr, ":8080")
	r.MaxBodyBytes = cmp.Or(r.MaxBodyBytes, MaxBodyBytesDefault)
	r.MaxInFlightBytes = cmp.Or(r.MaxInFlightBytes, MaxInFlightBytesDefault)
	r.MaxConns = cmp.Or(r.MaxConns, ReceiverMaxConnsDefault)
	r.MaxHeaderBytes = cmp.Or(r.MaxHeaderBytes, MaxHeaderBytesDefault)
	r.PublishTimeout = cmp.Or(r.PublishTimeout, Duration(5*time.Second))
	r.RetryAfter = cmp.Or(r.RetryAfter, Duration(RetryAfterDefault))
	r.ShutdownTimeout = cmp.Or(r.ShutdownTimeout, Duration(ReceiverShutdownTimeoutDefault))
	r.AdminAddr = cmp.Or(r.AdminAddr, "127.0.0.1:9091")

	w := &c.Worker
	w.AdminAddr = cmp.Or(w.AdminAddr, "127.0.0.1:9090")
	c.Admin.BearerTokens = nonEmpty(c.Admin.BearerTokens)
	w.Consumer = cmp.Or(w.Consumer, ConsumerDefault)
	w.BatchSize = cmp.Or(w.BatchSize, 100)
	w.AckWait = cmp.Or(w.AckWait, Duration(30*time.Second))
	w.ReconcileWorkers = cmp.Or(w.ReconcileWorkers, 20)
	w.RevokeWorkers = cmp.Or(w.RevokeWorkers, 10)
	w.ResyncWorkers = cmp.Or(w.ResyncWorkers, 2)
	w.SSFWorkers = cmp.Or(w.SSFWorkers, 10)
	w.JobRetention = cmp.Or(w.JobRetention, Duration(24*time.Hour))
	w.ShutdownTimeout = cmp.Or(w.ShutdownTimeout, Duration(25*time.Second))

	for i := range c.Sources {
		s := &c.Sources[i]
		s.Webhook.Tolerance = cmp.Or(s.Webhook.Tolerance, Duration(WebhookToleranceDefault))
		s.Webhook.Secrets = nonEmpty(s.Webhook.Secrets)
		s.Webhook.BearerTokens = nonEmpty(s.Webhook.BearerTokens)
		s.API.Timeout = cmp.Or(s.API.Timeout, Duration(30*time.Second))
		s.Resync.Interval = cmp.Or(s.Resync.Interval, Duration(6*time.Hour))
		if s.Resync.Periodic == nil {
			s.Resync.Periodic = boolPtr(true)
		}
		p := s.Provider()
		if s.Resync.Entities == nil && p != nil && p.API != nil {
			for _, e := range p.API.Resync {
				s.Resync.Entities = append(s.Resync.Entities, e.Plural())
			}
		}
		r := &s.Revocation
		if r.Triggers == nil {
			r.Triggers = events.Triggers
		}
		if r.Sessions == nil {
			r.Sessions = boolPtr(s.API.Configured() && p != nil && p.API != nil && p.API.Sessions)
		}
		r.ZeroIDAction = cmp.Or(r.ZeroIDAction, events.AgentOffboard)
		s.API.Actor = cmp.Or(s.API.Actor, ActorDefault)
		r.OwnerKey = cmp.Or(r.OwnerKey, "id")
	}
}

var (
	namePattern   = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)
	schemaPattern = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,62}$`)
	streamPattern = regexp.MustCompile(`^[A-Za-z0-9_-]{1,255}$`)
	subjectPrefix = regexp.MustCompile(`^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$`)
)

// Validate reports every problem of the configuration at once.
func (c *Config) Validate() error {
	var errs []error
	for _, e := range c.validate() {
		errs = append(errs, e)
	}
	return errors.Join(errs...)
}

func (c *Config) validate() []fieldError {
	var errs []fieldError
	bad := func(field, format string, args ...any) {
		errs = append(errs, fieldError{path: field, line: c.line(field), msg: fmt.Sprintf(format, args...)})
	}

	if !schemaPattern.MatchString(c.Database.Schema) {
		bad("database.schema", "%q is not a plain Postgres identifier; use lowercase letters, digits and '_'", c.Database.Schema)
	}
	if c.Database.MaxConns < 4 {
		bad("database.max_conns", "%d is too few; the worker needs at least 4 connections (default 20)", c.Database.MaxConns)
	}
	if !streamPattern.MatchString(c.NATS.Stream) {
		bad("nats.stream", "%q is not a valid stream name; use letters, digits, '-' and '_'", c.NATS.Stream)
	}
	if !subjectPrefix.MatchString(c.NATS.SubjectPrefix) {
		bad("nats.subject_prefix", "%q is not a valid subject prefix; use dot-separated tokens of letters, digits, '-' and '_', without wildcards", c.NATS.SubjectPrefix)
	}
	if c.NATS.Replicas < 1 || c.NATS.Replicas > 5 {
		bad("nats.replicas", "%d is out of range; use 1 for development or 3 in a production cluster", c.NATS.Replicas)
	}
	if c.NATS.Duplicates > c.NATS.MaxAge {
		bad("nats.duplicates", "%s is longer than nats.max_age (%s); the deduplication window must fit in the stream's retention", c.NATS.Duplicates, c.NATS.MaxAge)
	}
	if c.Receiver.MaxBodyBytes < 1024 {
		bad("receiver.max_body_bytes", "%d is too small for any IdP payload; use at least 1024 (default %d)", c.Receiver.MaxBodyBytes, MaxBodyBytesDefault)
	}
	if c.Receiver.MaxInFlightBytes < c.Receiver.MaxBodyBytes {
		bad("receiver.max_in_flight_bytes", "%d is less than receiver.max_body_bytes (%d); one delivery of the largest size must fit (default %d)", c.Receiver.MaxInFlightBytes, c.Receiver.MaxBodyBytes, MaxInFlightBytesDefault)
	}
	if c.Receiver.MaxConns < 16 {
		bad("receiver.max_conns", "%d is too few; use at least 16 (default %d)", c.Receiver.MaxConns, ReceiverMaxConnsDefault)
	}
	if c.Receiver.MaxHeaderBytes < 4096 {
		bad("receiver.max_header_bytes", "%d is too small for an IdP's headers; use at least 4096 (default %d)", c.Receiver.MaxHeaderBytes, MaxHeaderBytesDefault)
	}
	if r := c.Worker.EventRetention; r > 0 && r < c.NATS.MaxAge {
		bad("worker.event_retention", "%s is shorter than nats.max_age (%s): the stream could redeliver or replay an event the log no longer knows, and it would be recorded again; use at least %s, or 0 to keep events forever", r, c.NATS.MaxAge, c.NATS.MaxAge)
	}
	if c.Worker.BatchSize < 1 || c.Worker.BatchSize > 1000 {
		bad("worker.batch_size", "%d is out of range; use 1 to 1000 (default 100)", c.Worker.BatchSize)
	}
	if c.Worker.ReconcileWorkers < 1 {
		bad("worker.reconcile_workers", "must be at least 1 (default 20)")
	}
	a := c.Admin
	if (a.Username == "") != (a.Password == "") {
		bad("admin", "username and password go together; set both, or neither and use bearer_tokens")
	}
	if c.Worker.RiverUI && !a.HasCredentials() {
		bad("worker.river_ui", "River UI can retry, cancel and delete jobs and pause queues; set admin.username and admin.password, or admin.bearer_tokens, to serve it")
	}
	if a.ProtectMetrics && !a.HasCredentials() {
		bad("admin.protect_metrics", "needs admin.username and admin.password, or admin.bearer_tokens")
	}
	if c.Worker.AckWait < Duration(time.Second) {
		bad("worker.ack_wait", "%s is too short; use at least 1s (default 30s)", c.Worker.AckWait)
	}

	if len(c.Sources) == 0 {
		bad("sources", "at least one source is required; add one with a name, a kind and its webhook secrets")
	}
	seen := map[string]int{}
	for i, s := range c.Sources {
		field := fmt.Sprintf("sources[%d]", i)
		switch {
		case s.Name == "":
			bad(field+".name", "is required; it names the source in the URL /webhooks/<name>")
		case !namePattern.MatchString(s.Name):
			bad(field+".name", "%s is not a valid name; use lowercase letters, digits, '-' and '_' (it appears in the URL /webhooks/<name> and in NATS subjects)", quoteShort(s.Name))
		default:
			if j, dup := seen[s.Name]; dup {
				bad(field+".name", "%q is already the name of sources[%d]; names must be unique", s.Name, j)
			}
			seen[s.Name] = i
		}
		if s.Provider() == nil {
			bad(field+".kind", "%q is not supported; use one of %s", s.Kind, kindList())
			continue
		}
		c.validateSource(field, s, bad)
	}
	if c.SSF != nil {
		var joined interface{ Unwrap() []error }
		if err := c.SSF.Validate(); errors.As(err, &joined) {
			for _, e := range joined.Unwrap() {
				var fe *ssf.FieldError
				if errors.As(e, &fe) {
					bad("ssf."+fe.Field, "%s", fe.Msg)
				} else {
					bad("ssf", "%v", e)
				}
			}
		}
		for source := range c.SSF.SubjectIssuers {
			if _, ok := c.Source(source); !ok {
				bad("ssf.subject_issuers."+source, "names no source of the configuration")
			}
		}
	}
	return errs
}

// line is the line of the file a field is on, or of its closest parent that is in the file.
func (c *Config) line(field string) int {
	for p := field; p != ""; {
		if l, ok := c.lines[p]; ok {
			return l
		}
		i := strings.LastIndexAny(p, ".[")
		if i < 0 {
			break
		}
		p = p[:i]
	}
	return 0
}

func (c *Config) validateSource(field string, s Source, bad func(field, format string, args ...any)) {
	p := s.Provider()
	switch {
	case s.HasWebhook() && p.Webhook == nil:
		bad(field+".webhook", "%s sends no webhooks; a %s source is configured with api: only", p.Name, s.Kind)
	case s.HasWebhook():
		if _, err := s.Verifier(nil); err != nil {
			bad(field+".webhook", "%v", err)
		}
	}
	if p.Webhook != nil && p.Webhook.ReadsEntities && s.HasWebhook() && !s.API.Configured() {
		bad(field+".api", "a %s source with webhooks needs api credentials too: %s's events carry changes, not states, so idpsync reads each changed user or organization from the API", s.Kind, p.Name)
	}
	if s.API.Configured() && p.API == nil {
		bad(field+".api", "idpsync calls no %s management API; remove api: (a %s source is mirrored from its webhooks)", p.Name, s.Kind)
	}
	if !s.HasWebhook() && !s.API.Configured() {
		bad(field, "the source has neither webhook secrets nor api credentials; give it webhook: to receive its events, api: to resync from it or revoke through it, or both")
	}
	if s.API.Configured() && p.API != nil {
		if err := p.API.CheckSettingsFunc(s.APISettings()); err != nil {
			bad(field+".api", "%v", err)
		}
		if s.API.BaseURL != "" {
			if _, err := idpclient.ParseBaseURL(s.API.BaseURL); err != nil {
				bad(field+".api.base_url", "%v", err)
			}
		}
		if s.API.RateLimit < 0 {
			bad(field+".api.rate_limit", "must not be negative; 0 means no cap")
		}
	}
	var supported []events.Entity
	if p.API != nil {
		supported = p.API.Resync
	}
	for i, name := range s.Resync.Entities {
		e, err := events.ParseEntity(name)
		switch {
		case err != nil:
			bad(fmt.Sprintf("%s.resync.entities[%d]", field, i), "%v", err)
		case !slices.Contains(supported, e):
			bad(fmt.Sprintf("%s.resync.entities[%d]", field, i), "%q cannot be resynced from a %s source; use %s", name, s.Kind, pluralNames(supported))
		}
	}
	if s.Resync.Interval < Duration(time.Minute) {
		bad(field+".resync.interval", "%s is too short; use at least 1m (default 6h)", s.Resync.Interval)
	}
	r := s.Revocation
	for i, t := range r.Triggers {
		if !t.Valid() {
			bad(fmt.Sprintf("%s.revocation.triggers[%d]", field, i), "%q is not a trigger; use %s", t, triggerList())
		}
	}
	if s.RevokesSessions() {
		switch {
		case !s.API.Configured():
			bad(field+".revocation.sessions", "revoking sessions needs the source's api credentials; add api: or set sessions: false")
		case p.API == nil || !p.API.Sessions:
			bad(field+".revocation.sessions", "%s's management API has no documented session revocation; set sessions: false", p.Name)
		}
	}
	if r.ZeroID != "" {
		target, ok := c.Source(r.ZeroID)
		switch {
		case !ok:
			bad(field+".revocation.zeroid", "no source is named %q; name a source whose kind holds agents (zeroid)", r.ZeroID)
		case target.Provider() == nil || target.Provider().API == nil || !target.Provider().API.Agents:
			bad(field+".revocation.zeroid", "source %q is of kind %s, which holds no agent identities; name a zeroid source", r.ZeroID, target.Kind)
		}
	}
	if !r.ZeroIDAction.Valid() {
		bad(field+".revocation.zeroid_action", "%q is not an action; use offboard, deactivate or signal", r.ZeroIDAction)
	}
	if r.OwnerKey != "id" && r.OwnerKey != "external_id" && r.OwnerKey != "email" {
		bad(field+".revocation.owner_key", "%q is not a user attribute; use id, external_id or email", r.OwnerKey)
	}
}

func kindList() string {
	kinds := provider.Kinds()
	names := make([]string, len(kinds))
	for i, k := range kinds {
		names[i] = string(k)
	}
	return strings.Join(names, ", ")
}

func triggerList() string {
	names := make([]string, len(events.Triggers))
	for i, t := range events.Triggers {
		names[i] = string(t)
	}
	return strings.Join(names, ", ")
}

func pluralNames(es []events.Entity) string {
	if len(es) == 0 {
		return "nothing (resync: entities: [])"
	}
	names := make([]string, len(es))
	for i, e := range es {
		names[i] = e.Plural()
	}
	return strings.Join(names, ", ")
}

// Verifier builds the source's webhook verifier with its provider. now is the clock; nil means
// time.Now.
func (s Source) Verifier(now func() time.Time) (webhook.Verifier, error) {
	p := s.Provider()
	if p == nil || p.Webhook == nil {
		return nil, fmt.Errorf("kind %q has no webhook verifier", s.Kind)
	}
	return p.Webhook.NewVerifierFunc(s.WebhookSettings(now))
}

// Source returns the source named name.
func (c *Config) Source(name string) (Source, bool) {
	for _, s := range c.Sources {
		if s.Name == name {
			return s, true
		}
	}
	return Source{}, false
}

func boolPtr(b bool) *bool { return &b }

func nonEmpty(values []string) []string {
	var out []string
	for _, v := range values {
		if v != "" {
			out = append(out, v)
		}
	}
	return out
}

// KindOf returns the kind of the configured source named source.
func (c *Config) KindOf(source string) (events.Kind, bool) {
	s, ok := c.Source(source)
	return s.Kind, ok
}

// quoteShort quotes a value for an error, cut to 40 bytes.
func quoteShort(s string) string {
	if len(s) > 40 {
		return strconv.Quote(s[:40]) + "…"
	}
	return strconv.Quote(s)
}
