// Package zeroidfake is an in-memory imitation of a ZeroID server, for tests, demos and benchmarks.
// It models what reference/real-servers.md recorded from a real ZeroID (highflame-ai/zeroid at
// f08f979): the routes at the root of its own listener, the admin API without authentication and
// scoped by tenant headers, the Content-Type gate before routing, the two kinds of 404, the error
// shapes (Huma problems, the ZEROID-40001 envelope, RFC 6749 errors), identities with per-identity
// API keys, the api_key and client_credentials grants, the identity status machine and what each
// action revokes, CAE signals, offboard-by-owner, token introspection and revocation with the client
// authentication of either mode, and the signal stream. Recording and failure injection come from
// internal/fakeidp. ZeroID sends no webhooks, so neither does the fake.
//
// What the fake leaves out: JWTs (its tokens are opaque strings), the jwt-bearer, token-exchange,
// refresh and CIBA grants, credential policies, discovery ingestion, the agent registry routes and
// the audit log.
package zeroidfake

import (
	"cmp"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/idpsync/idpsync/internal/fakeidp"
)

// Page sizes of GET /api/v1/identities: a limit ≤ 0 or above MaxLimit becomes DefaultLimit, as
// ZeroID does (it does not clamp to MaxLimit).
const (
	MaxLimit     = 100
	DefaultLimit = 20
)

// Mode is how the fake authenticates callers of token introspection and revocation: ZeroID's
// token.allow_unauthenticated_token_inspection setting.
type Mode string

const (
	// ModeStrict is allow_unauthenticated_token_inspection: false, the production setting:
	// introspection and revocation require client authentication (mode S of real-servers.md).
	ModeStrict Mode = "S"
	// ModePermissive is allow_unauthenticated_token_inspection: true: callers that present no
	// client credentials are served; presented credentials are still verified (mode P).
	ModePermissive Mode = "P"
)

// Identity statuses.
const (
	StatusPending     = "pending"
	StatusDiscovered  = "discovered"
	StatusActive      = "active"
	StatusSuspended   = "suspended"
	StatusDeactivated = "deactivated"
	StatusExpired     = "expired"
)

// Options configures a ZeroID fake.
type Options struct {
	// AccountID and ProjectID are the tenant the generated identities live in and the Go API uses
	// by default. Every other tenant exists implicitly, as in ZeroID. Defaults "acct_fakeidp" and
	// "proj_fakeidp".
	AccountID, ProjectID string
	// Mode selects the client authentication of introspection and revocation. Defaults to
	// ModeStrict.
	Mode Mode
	// ClientID names the confidential OAuth client the fake is created with (its secret is
	// derived from Seed; see ClientCredentials). Defaults to "idpsync".
	ClientID string
	// WIMSEDomain is the trust domain of wimse_uri. Defaults to "fakeidp.test".
	WIMSEDomain string
	// Seed makes the generated data, the ids, the API keys and the client secret reproducible.
	Seed uint64
	// Identities is the number of agent identities to generate in the default tenant.
	Identities int
	// Owners is the number of distinct owners ("user_<n>") the generated identities are spread
	// over. Defaults to Identities (one each).
	Owners int
	// TokenTTL is the lifetime of issued tokens. Defaults to an hour, as ZeroID's default_ttl.
	TokenTTL time.Duration
}

// Identity is an identity held by the fake.
type Identity struct {
	ID                   string
	AccountID, ProjectID string
	ExternalID           string
	Name                 string
	// IdentityType is agent (the default), application, mcp_server or service.
	IdentityType string
	// SubType defaults to tool_agent for agents.
	SubType string
	// TrustLevel defaults to unverified.
	TrustLevel string
	// Status is pending, discovered, active (the default), suspended, deactivated or expired.
	Status string
	// Origin defaults to native.
	Origin      string
	OwnerUserID string
	// CreatedBy and ModifiedBy are the audit actors (X-User-ID, without system: values).
	CreatedBy, ModifiedBy string
	CreatedAt, UpdatedAt  time.Time
}

// Signal is a CAE signal the fake stored: ingested through the API, or emitted by ZeroID itself
// when an identity is deactivated or expires (source "identity_lifecycle").
type Signal struct {
	ID                   string
	AccountID, ProjectID string
	IdentityID           string
	SignalType, Severity string
	Source               string
	Payload              map[string]any
	CreatedAt            time.Time
}

// Client is an OAuth client. Clients are global, not scoped by tenant.
type Client struct {
	// ClientID is the client's public identifier. Required.
	ClientID string
	// Confidential clients have a secret; public ones authenticate by client_id alone.
	Confidential bool
	// GrantTypes defaults to client_credentials for a confidential client and
	// authorization_code for a public one.
	GrantTypes []string
	// Scopes are the scopes client_credentials may grant; a client without scopes can mint none.
	Scopes []string
}

// OAuthError is an RFC 6749 error the token endpoint answers with.
type OAuthError struct {
	// Status is the HTTP status: 400 or 401.
	Status int
	// Code is the RFC 6749 error code, e.g. "invalid_grant".
	Code string
	// Description is ZeroID's error_description, e.g. "invalid api key".
	Description string
}

// Error implements error.
func (e *OAuthError) Error() string { return e.Code + ": " + e.Description }

type tenantKey struct{ account, project string }

type apiKey struct {
	id, key, prefix, name string
	identityID            string
	account, project      string
	createdBy             string
	state                 string // active or revoked
	revokedBy, reason     string
	createdAt             time.Time
}

type token struct {
	value, jti       string
	identityID       string
	account, project string
	scope, actor     string
	iat, exp         time.Time
	revoked          bool
	reason           string
}

type oauthClient struct {
	Client
	id, name, secret string
	createdAt        time.Time
}

// Fake is an in-memory ZeroID. Its methods are safe for concurrent use.
type Fake struct {
	*fakeidp.Core
	account, project string
	mode             Mode
	domain           string
	clientID         string
	ttl              time.Duration
	seed             uint64
	seq              atomic.Uint64
	started          time.Time

	mu       sync.Mutex
	tenants  map[tenantKey]*fakeidp.Table[Identity]
	byID     map[string]*Identity
	keys     map[string]*apiKey // by the key itself
	tokens   map[string]*token  // by the access token
	clients  map[string]*oauthClient
	signals  []*Signal
	subs     map[chan []byte]tenantKey
	done     chan struct{}
	doneOnce sync.Once
}

// New returns a ZeroID fake holding the generated identities of opts and one confidential OAuth
// client.
func New(opts Options) *Fake {
	f := &Fake{
		account:  cmp.Or(opts.AccountID, "acct_fakeidp"),
		project:  cmp.Or(opts.ProjectID, "proj_fakeidp"),
		mode:     cmp.Or(opts.Mode, ModeStrict),
		domain:   cmp.Or(opts.WIMSEDomain, "fakeidp.test"),
		clientID: cmp.Or(opts.ClientID, "idpsync"),
		ttl:      cmp.Or(opts.TokenTTL, time.Hour),
		seed:     opts.Seed,
		started:  time.Now(),
		tenants:  map[tenantKey]*fakeidp.Table[Identity]{},
		byID:     make(map[string]*Identity, opts.Identities),
		keys:     map[string]*apiKey{},
		tokens:   map[string]*token{},
		clients:  map[string]*oauthClient{},
		subs:     map[chan []byte]tenantKey{},
		done:     make(chan struct{}),
	}
	f.Core = fakeidp.NewCore("zeroid", f.problemBody, nil)
	owners := opts.Owners
	if owners <= 0 {
		owners = max(opts.Identities, 1)
	}
	table := fakeidp.NewTable(func(i *Identity) string { return i.ID }, opts.Identities)
	f.tenants[tenantKey{f.account, f.project}] = table
	for i := range opts.Identities {
		at := fakeidp.Epoch.Add(time.Duration(i) * time.Minute)
		id := &Identity{ID: fakeidp.UUID(opts.Seed, "identity", i), AccountID: f.account, ProjectID: f.project,
			ExternalID: fmt.Sprintf("agent-%d", i), Name: fmt.Sprintf("Agent %d", i), IdentityType: "agent", SubType: "tool_agent",
			TrustLevel: "unverified", Status: StatusActive, Origin: "native", OwnerUserID: fmt.Sprintf("user_%d", i%owners),
			CreatedAt: at, UpdatedAt: at}
		table.Add(id)
		f.byID[id.ID] = id
	}
	f.clients[f.clientID] = &oauthClient{Client: Client{ClientID: f.clientID, Confidential: true,
		GrantTypes: []string{"client_credentials"}, Scopes: []string{"identities:read"}},
		id: fakeidp.UUID(f.seed, "client", 0), name: f.clientID, secret: f.derive("client-secret", 0, 64), createdAt: fakeidp.Epoch}
	return f
}

// Start serves the fake at the root of a loopback listener and returns its base URL.
func (f *Fake) Start() string { return f.Serve(f.Handler()) }

// Close ends the signal streams, then stops the server.
func (f *Fake) Close() {
	f.doneOnce.Do(func() { close(f.done) })
	f.Core.Close()
}

// Tenant returns the default tenant: where the generated identities live and what the Go API uses
// when an Identity names no tenant.
func (f *Fake) Tenant() (account, project string) { return f.account, f.project }

// Mode returns the fake's client-authentication mode.
func (f *Fake) Mode() Mode { return f.mode }

// ClientCredentials returns the confidential OAuth client the fake was created with: use it to
// authenticate introspection and revocation (client_secret_basic or client_secret_post).
func (f *Fake) ClientCredentials() (clientID, secret string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := f.clients[f.clientID]
	return c.ClientID, c.secret
}

// CreateClient registers an OAuth client, as POST /api/v1/oauth/clients does, and returns its
// secret ("" for a public client).
func (f *Fake) CreateClient(c Client) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	oc, err := f.createClientLocked(c, c.ClientID)
	if err != nil {
		return "", err
	}
	return oc.secret, nil
}

var errClientExists = errors.New("oauth client with this client_id already exists")

func (f *Fake) createClientLocked(c Client, name string) (*oauthClient, error) {
	if c.ClientID == "" {
		return nil, errors.New("zeroid fake: a client needs a ClientID")
	}
	if _, ok := f.clients[c.ClientID]; ok {
		return nil, errClientExists
	}
	n := f.seq.Add(1)
	oc := &oauthClient{Client: c, id: fakeidp.UUID(f.seed, "client", int(n)), name: name, createdAt: time.Now().UTC()}
	oc.GrantTypes, oc.Scopes = slices.Clone(c.GrantTypes), slices.Clone(c.Scopes)
	if len(oc.GrantTypes) == 0 {
		oc.GrantTypes = []string{"authorization_code"}
		if c.Confidential {
			oc.GrantTypes = []string{"client_credentials"}
		}
	}
	if c.Confidential {
		oc.secret = f.derive("client-secret", n, 64)
	}
	f.clients[c.ClientID] = oc
	return oc, nil
}

// derive returns n deterministic characters for the i-th secret of kind: keys and secrets are
// reproducible from the seed, like the rest of the data.
func (f *Fake) derive(kind string, i uint64, n int) string {
	const alphabet = "0123456789abcdef"
	var b strings.Builder
	h := f.seed
	for _, c := range kind {
		h = fakeidp.Mix(h ^ uint64(c))
	}
	r := fakeidp.Mix(h ^ i)
	for k := range n {
		if k%16 == 0 {
			r = fakeidp.Mix(r + uint64(k))
		}
		b.WriteByte(alphabet[r&0xf])
		r >>= 4
	}
	return b.String()
}

// IdentityIDs returns the ids of the default tenant's identities in creation order.
func (f *Fake) IdentityIDs() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	t := f.tenants[tenantKey{f.account, f.project}]
	ids := make([]string, 0, t.Len())
	for _, i := range t.Rows {
		ids = append(ids, i.ID)
	}
	return ids
}

// Identity returns a copy of one identity, of any tenant.
func (f *Fake) Identity(id string) (Identity, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	i, ok := f.byID[id]
	if !ok {
		return Identity{}, false
	}
	return *i, true
}

// CreateIdentity adds an identity as POST /api/v1/identities does (in the default tenant unless i
// names one; an agent owned by OwnerUserID, typically) and returns it. It panics when the tenant
// already has an identity with i's ExternalID: that is a mistake in the test.
func (f *Fake) CreateIdentity(i Identity) Identity {
	f.mu.Lock()
	defer f.mu.Unlock()
	id, err := f.createIdentityLocked(i)
	if err != nil {
		panic("zeroid fake: " + err.Error())
	}
	return *id
}

var errDuplicateExternalID = errors.New("identity with this external_id already exists")

func (f *Fake) createIdentityLocked(i Identity) (*Identity, error) {
	now := time.Now().UTC()
	if i.ID == "" {
		i.ID = fakeidp.UUID(f.seed^0x5eed, "identity", int(f.seq.Add(1)))
	}
	i.AccountID, i.ProjectID = cmp.Or(i.AccountID, f.account), cmp.Or(i.ProjectID, f.project)
	i.IdentityType = cmp.Or(i.IdentityType, "agent")
	if i.SubType == "" && i.IdentityType == "agent" {
		i.SubType = "tool_agent"
	}
	i.TrustLevel = cmp.Or(i.TrustLevel, "unverified")
	i.Status = cmp.Or(i.Status, StatusActive)
	i.Origin = cmp.Or(i.Origin, "native")
	i.ExternalID = cmp.Or(i.ExternalID, i.ID)
	if i.CreatedAt.IsZero() {
		i.CreatedAt = now
	}
	i.UpdatedAt = i.CreatedAt
	k := tenantKey{i.AccountID, i.ProjectID}
	t := f.tenants[k]
	if t == nil {
		t = fakeidp.NewTable(func(i *Identity) string { return i.ID }, 0)
		f.tenants[k] = t
	}
	for _, other := range t.Rows {
		if other.ExternalID == i.ExternalID {
			if other.Status == StatusDeactivated {
				return other, &deactivatedConflict{existing: other}
			}
			return other, errDuplicateExternalID
		}
	}
	t.Add(&i)
	f.byID[i.ID] = &i
	return &i, nil
}

type deactivatedConflict struct{ existing *Identity }

func (e *deactivatedConflict) Error() string {
	return fmt.Sprintf("an identity with external_id %q already exists but is deactivated (id: %s); reactivate it or register with a different external_id",
		e.existing.ExternalID, e.existing.ID)
}

// UpdateIdentity applies change to an identity as it is, without ZeroID's status machine or its
// side effects (use SetStatus for those).
func (f *Fake) UpdateIdentity(id string, change func(*Identity)) (Identity, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	i, ok := f.byID[id]
	if !ok {
		return Identity{}, fmt.Errorf("zeroid fake: no identity %q", id)
	}
	change(i)
	i.ID, i.UpdatedAt = id, fakeidp.LaterTime(i.UpdatedAt)
	return *i, nil
}

// SetStatus moves an identity to status through ZeroID's status machine, with actor as the audit
// actor, and applies the side effects: deactivation and expiry revoke the identity's API keys and
// tokens and emit a high signal; suspension revokes nothing. An invalid transition is an error.
func (f *Fake) SetStatus(id, status, actor string) (Identity, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	i, ok := f.byID[id]
	if !ok {
		return Identity{}, fmt.Errorf("zeroid fake: no identity %q", id)
	}
	if err := f.updateLocked(i, status, actor); err != nil {
		return Identity{}, err
	}
	return *i, nil
}

// transitions is ZeroID's identity status machine (domain.IdentityStatus.CanTransitionTo).
var transitions = map[string][]string{
	StatusActive:      {StatusSuspended, StatusDeactivated, StatusExpired},
	StatusSuspended:   {StatusActive, StatusDeactivated, StatusExpired},
	StatusDeactivated: {StatusActive},
	StatusExpired:     {StatusDeactivated},
	StatusPending:     {StatusActive, StatusDiscovered, StatusDeactivated},
	StatusDiscovered:  {StatusPending, StatusActive, StatusDeactivated},
}

var errInvalidTransition = errors.New("invalid status transition")

// updateLocked is ZeroID's UpdateIdentity for a status change (or none, status ""): it checks the
// transition, stamps the actor (an empty actor clears modified_by) and, on a fresh deactivation
// or expiry, runs the cleanup.
func (f *Fake) updateLocked(i *Identity, status, actor string) error {
	prior := i.Status
	if status != "" && status != prior {
		if !slices.Contains(transitions[prior], status) {
			return fmt.Errorf("%w: %s → %s", errInvalidTransition, prior, status)
		}
		i.Status = status
	}
	i.ModifiedBy, i.UpdatedAt = actor, fakeidp.LaterTime(i.UpdatedAt)
	switch {
	case prior != StatusDeactivated && i.Status == StatusDeactivated:
		f.cleanupLocked(i, SignalTypeRetirement, "identity_deactivated")
	case prior != StatusExpired && i.Status == StatusExpired:
		f.cleanupLocked(i, SignalTypeIdentityExpired, "expired")
	}
	return nil
}

// Signal types the fake emits itself.
const (
	SignalTypeRetirement      = "retirement"
	SignalTypeIdentityExpired = "identity_expired"
)

// cleanupLocked is ZeroID's runDeactivationCleanup: revoke the identity's keys and active tokens,
// and emit a high lifecycle signal.
func (f *Fake) cleanupLocked(i *Identity, signalType, reason string) {
	for _, k := range f.keys {
		if k.identityID == i.ID && k.state == "active" {
			k.state, k.revokedBy, k.reason = "revoked", "system:identity_revocation", "identity deactivated or key rotated"
		}
	}
	f.revokeTokensLocked(i.ID, reason)
	f.addSignalLocked(&Signal{AccountID: i.AccountID, ProjectID: i.ProjectID, IdentityID: i.ID, SignalType: signalType,
		Severity: "high", Source: "identity_lifecycle", Payload: map[string]any{"reason": reason}})
}

func (f *Fake) revokeTokensLocked(identityID, reason string) int {
	n := 0
	for _, t := range f.tokens {
		if t.identityID == identityID && t.activeAt(time.Now()) {
			t.revoked, t.reason = true, reason
			n++
		}
	}
	return n
}

func (f *Fake) addSignalLocked(s *Signal) {
	s.ID = fakeidp.UUID(f.seed^0x51, "signal", int(f.seq.Add(1)))
	s.CreatedAt = time.Now().UTC()
	f.signals = append(f.signals, s)
	b := signalJSON(s)
	for ch, k := range f.subs {
		if k == (tenantKey{s.AccountID, s.ProjectID}) {
			select {
			case ch <- b:
			default: // ZeroID drops events for a subscriber whose buffer is full
			}
		}
	}
}

// Signals returns every signal the fake stored, of every tenant, oldest first.
func (f *Fake) Signals() []Signal {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]Signal, len(f.signals))
	for i, s := range f.signals {
		out[i] = *s
		out[i].Payload = maps.Clone(s.Payload)
	}
	return out
}

// IssueAPIKey creates an API key for an identity, as POST /api/v1/api-keys does, and returns the
// key ("zid_sk_…").
func (f *Fake) IssueAPIKey(identityID string) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	i, ok := f.byID[identityID]
	if !ok {
		return "", fmt.Errorf("zeroid fake: no identity %q", identityID)
	}
	return f.issueKeyLocked(i, "key", "").key, nil
}

func (f *Fake) issueKeyLocked(i *Identity, name, createdBy string) *apiKey {
	n := f.seq.Add(1)
	value := "zid_sk_" + f.derive("api-key", n, 32)
	k := &apiKey{id: fakeidp.UUID(f.seed, "api-key", int(n)), key: value, prefix: value[:16], name: name, identityID: i.ID,
		account: i.AccountID, project: i.ProjectID, createdBy: createdBy, state: "active", createdAt: time.Now().UTC()}
	f.keys[value] = k
	return k
}

// MintToken exchanges an API key for an access token, as the api_key grant does. It fails with an
// *OAuthError as ZeroID would: invalid_grant "invalid api key" for an unknown or revoked key,
// invalid_grant "identity is suspended or deactivated" for an identity that is not active.
func (f *Fake) MintToken(key, scope string) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	t, err := f.mintLocked(key, scope)
	if err != nil {
		return "", err
	}
	return t.value, nil
}

func (f *Fake) mintLocked(key, scope string) (*token, error) {
	if key == "" {
		return nil, &OAuthError{Status: 400, Code: "invalid_request", Description: "api_key is required for api_key grant"}
	}
	k := f.keys[key]
	if k == nil || k.state != "active" {
		return nil, &OAuthError{Status: 400, Code: "invalid_grant", Description: "invalid api key"}
	}
	i := f.byID[k.identityID]
	if i == nil || i.Status != StatusActive {
		return nil, &OAuthError{Status: 400, Code: "invalid_grant", Description: "identity is suspended or deactivated"}
	}
	return f.issueTokenLocked(i, strings.Join(strings.Fields(scope), " "), k.createdBy), nil
}

func (f *Fake) issueTokenLocked(i *Identity, scope, actor string) *token {
	b := make([]byte, 24)
	_, _ = rand.Read(b)
	now := time.Now()
	t := &token{value: "zid_at_" + hex.EncodeToString(b), jti: fakeidp.UUID(f.seed^0x7, "jti", int(f.seq.Add(1))), identityID: i.ID,
		account: i.AccountID, project: i.ProjectID, scope: scope, actor: actor, iat: now, exp: now.Add(f.ttl)}
	f.tokens[t.value] = t
	return t
}

func (t *token) activeAt(now time.Time) bool { return !t.revoked && now.Before(t.exp) }

// TokenActive reports whether an access token is still active (what introspection would say).
func (f *Fake) TokenActive(accessToken string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	t := f.tokens[accessToken]
	return t != nil && t.activeAt(time.Now())
}

// CanMint reports whether an identity can still obtain a token: it is active and holds an active
// API key.
func (f *Fake) CanMint(identityID string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	i := f.byID[identityID]
	if i == nil || i.Status != StatusActive {
		return false
	}
	for _, k := range f.keys {
		if k.identityID == identityID && k.state == "active" {
			return true
		}
	}
	return false
}
