// Package provider is the registry of the identity providers idpsync speaks to, and the contract
// each of them fulfils.
//
// Each kind of IdP lives in one package, internal/provider/<kind>, that registers itself here:
// its webhook scheme and envelope, its payload parsers, its management-API client, the adapters
// the jobs use (a Directory to resync from, a SessionRevoker, an AgentRevoker), the Registrar that
// registers idpsync's receiver as its webhook endpoint, and what of all this it supports. Its fake
// lives beside it (internal/provider/<kind>/<kind>fake). As with database/sql drivers, adding a
// provider is one package and one line in internal/provider/all; nothing else in idpsync switches
// on kinds: configuration validation, the receiver, the intake, the jobs and the operator commands
// ask the registry.
//
// This package and the provider packages link no database and no job queue: the receiver binary
// uses them to verify and route deliveries.
package provider

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/idpsync/idpsync/internal/events"
	"github.com/idpsync/idpsync/internal/webhook"
)

// Provider describes one kind of identity provider.
type Provider struct {
	// Kind names the provider in configurations ("clerk"). Required.
	Kind events.Kind
	// Name is the provider's name for people ("Clerk").
	Name string
	// Webhook is how the provider's webhooks are verified and read; nil for a provider that sends
	// none (a revocation target).
	Webhook *Webhook
	// API is what idpsync does through the provider's management API; nil when it calls none.
	API *API
}

// Webhook is a provider's inbound side.
type Webhook struct {
	// Settings names the webhook settings the provider uses, for documentation and errors:
	// e.g. "secrets (Svix signing secrets, whsec_…), tolerance".
	Settings string
	// NewVerifierFunc builds a source's verifier. Its errors name the settings at fault, never
	// their values. Required.
	NewVerifierFunc func(WebhookSettings) (webhook.Verifier, error)
	// ParseEnvelopeFunc reads what routing needs (event id, type, time) from a verified body; the
	// receiver calls it on its hot path. deliveryID is the id the verifier found ("" when the
	// scheme carries none). Required.
	ParseEnvelopeFunc func(deliveryID string, body []byte) (events.Envelope, error)
	// ParseFunc reads a verified body into an event. Required.
	ParseFunc func(deliveryID string, body []byte) (events.Event, error)
	// ReadsEntities is true when the provider's events name entities without carrying their
	// state: the worker reads each from the management API, so a source with webhooks needs api
	// settings too.
	ReadsEntities bool
}

// API is a provider's outbound side: what the jobs can do through its management API.
type API struct {
	// Settings names the api settings the provider uses, for documentation and errors.
	Settings string
	// Resync lists the entities a resync can read; empty when the provider cannot be resynced.
	Resync []events.Entity
	// Sessions is true when the provider can revoke a user's sessions.
	Sessions bool
	// Agents is true when the provider holds agent identities owned by users, so that other
	// sources' revocations can reach them (ZeroID).
	Agents bool
	// CheckSettingsFunc reports what is missing or inconsistent in a source's api settings, naming
	// fields, never values. Required.
	CheckSettingsFunc func(APISettings) error
	// ConnectFunc builds the management client and the adapters of Connection that the
	// capabilities above promise, and its Prober. It makes no call. Required.
	ConnectFunc func(APISettings) (*Connection, error)
	// DefaultBaseURL is the API root used when a source sets no base_url; empty when base_url is
	// required (a self-hosted IdP).
	DefaultBaseURL string
	// Hints say what a refused credential means at this provider, for Explain.
	Hints Hints
}

// WebhookSettings are a source's webhook verification settings, as configured.
type WebhookSettings struct {
	// Secrets are the signing secrets or keys; several at once during a rotation.
	Secrets []string
	// BearerTokens are shared tokens sent in the Authorization header.
	BearerTokens []string
	// Tolerance is how far a signed timestamp may be from now, both ways.
	Tolerance time.Duration
	// NowFunc is the clock; nil means time.Now.
	NowFunc func() time.Time
}

// APISettings are a source's management-API settings, as configured, and what the process gives
// every client.
type APISettings struct {
	// Source is the source's name, for errors and logs.
	Source string
	// The credentials and coordinates; which apply depends on the provider.
	BaseURL, SecretKey, Token, ClientID, ClientSecret, KeyFile, KeyID, KeySecret string
	AccountID, ProjectID, IssuerID, OrganizationID                               string
	// Actor is who idpsync says it is, where the provider records an actor (ZeroID's X-User-ID).
	Actor string

	// HTTPClient sends the requests. Required.
	HTTPClient *http.Client
	// Limiter caps the requests per second to this source; nil for none.
	Limiter *rate.Limiter
	// UserAgent identifies idpsync. Required.
	UserAgent string
	// Logger receives the client's debug records. Required.
	Logger *slog.Logger
}

// Connection is a source's management API, adapted to what the jobs and the operator commands
// need. A field is nil when the provider does not offer it.
type Connection struct {
	// Probe makes the source's cheapest authenticated call (worker check). Required.
	Probe     Prober
	Directory Directory
	Sessions  SessionRevoker
	Agents    AgentRevoker
	// Registrar registers the source's receiver endpoint at the IdP (worker register); nil when
	// idpsync cannot.
	Registrar Registrar
}

var (
	mu        sync.RWMutex
	providers = map[events.Kind]*Provider{}
)

// Register makes a provider available by its kind. It panics if the kind is registered twice or
// the description lacks a required function, like database/sql.Register: both are programming
// errors found at start-up.
func Register(p *Provider) {
	mu.Lock()
	defer mu.Unlock()
	switch {
	case p == nil || p.Kind == "":
		panic("provider: Register of a provider without a kind")
	case providers[p.Kind] != nil:
		panic(fmt.Sprintf("provider: Register called twice for %s", p.Kind))
	case p.Webhook != nil && (p.Webhook.NewVerifierFunc == nil || p.Webhook.ParseEnvelopeFunc == nil || p.Webhook.ParseFunc == nil):
		panic(fmt.Sprintf("provider: %s has webhooks without a verifier or parsers", p.Kind))
	case p.API != nil && (p.API.CheckSettingsFunc == nil || p.API.ConnectFunc == nil):
		panic(fmt.Sprintf("provider: %s has an api without settings checks or a connector", p.Kind))
	}
	providers[p.Kind] = p
}

// Lookup returns the provider of kind k.
func Lookup(k events.Kind) (*Provider, bool) {
	mu.RLock()
	defer mu.RUnlock()
	p, ok := providers[k]
	return p, ok
}

// All returns every registered provider, by kind.
func All() []*Provider {
	mu.RLock()
	defer mu.RUnlock()
	out := make([]*Provider, 0, len(providers))
	for _, p := range providers {
		out = append(out, p)
	}
	slices.SortFunc(out, func(a, b *Provider) int {
		switch {
		case a.Kind < b.Kind:
			return -1
		case a.Kind > b.Kind:
			return 1
		}
		return 0
	})
	return out
}

// Kinds returns the registered kinds, sorted.
func Kinds() []events.Kind {
	all := All()
	kinds := make([]events.Kind, len(all))
	for i, p := range all {
		kinds[i] = p.Kind
	}
	return kinds
}

// ErrNoParser is returned by Parse for a kind that is not registered or sends no webhooks.
var ErrNoParser = errors.New("no parser for this kind of source")

// Parse reads a verified body from a source of kind k with its provider's parser.
func Parse(k events.Kind, deliveryID string, body []byte) (events.Event, error) {
	p, ok := Lookup(k)
	if !ok || p.Webhook == nil {
		return events.Event{}, fmt.Errorf("%w: %q", ErrNoParser, k)
	}
	return p.Webhook.ParseFunc(deliveryID, body)
}
