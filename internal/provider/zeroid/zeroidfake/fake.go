// Package zeroidfake is an in-memory imitation of ZeroID's management API, for tests, demos and
// benchmarks: the same routes, limits, error shapes and semantics as the real service, with
// recording and failure injection from internal/fakeidp. ZeroID sends no webhooks.
package zeroidfake

import (
	"cmp"
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/idpsync/idpsync/internal/fakeidp"
)

// MaxLimit is the largest identities page ZeroID serves; a larger (or missing) limit is
// replaced by DefaultLimit, as ZeroID does.
const (
	MaxLimit     = 100
	DefaultLimit = 20
)

// Options configures a ZeroID fake.
type Options struct {
	// AccountID and ProjectID are the tenant the fake serves. Default "acct_fakeidp" and
	// "proj_fakeidp".
	AccountID, ProjectID string
	// AdminToken is the bearer token the fake's AdminAuth hook accepts on admin routes. Defaults
	// to "fakeidp-zeroid-admin"; "-" disables the check (ZeroID's own default).
	AdminToken string
	// APIKey is the "zid_sk_…" key the token endpoint accepts; it belongs to the first identity.
	// Defaults to "zid_sk_fakeidp".
	APIKey string
	// Seed makes the generated data reproducible.
	Seed uint64
	// Identities is the number of agent identities to generate.
	Identities int
	// Owners is the number of distinct owners ("user_<n>") the generated identities are spread
	// over. Defaults to Identities (one each).
	Owners int
	// TokenTTL is the lifetime of issued tokens. Defaults to 15 minutes.
	TokenTTL time.Duration
}

// Identity is an identity held by the ZeroID fake.
type Identity struct {
	ID           string
	ExternalID   string
	Name         string
	IdentityType string
	SubType      string
	TrustLevel   string
	// Status is pending, active, suspended or deactivated.
	Status      string
	OwnerUserID string
	CreatedAt   time.Time
	UpdatedAt   time.Time
}

type zeroidToken struct {
	jti, identity, scope string
	iat, exp             time.Time
	revoked              bool
}

// Fake is an in-memory imitation of ZeroID's token endpoints, CAE signal ingestion, identities
// and owner offboarding. ZeroID sends no webhooks (it streams signals over SSE), so this fake
// sends none.
type Fake struct {
	*fakeidp.Core
	account, project, adminToken, apiKey string
	ttl                                  time.Duration
	seed                                 uint64
	seq                                  atomic.Int64

	mu         sync.RWMutex
	identities *fakeidp.Table[Identity]
	tokens     map[string]*zeroidToken
	signals    []map[string]any
}

// New returns a ZeroID fake holding the generated identities of opts.
func New(opts Options) *Fake {
	f := &Fake{
		account:    cmp.Or(opts.AccountID, "acct_fakeidp"),
		project:    cmp.Or(opts.ProjectID, "proj_fakeidp"),
		adminToken: cmp.Or(opts.AdminToken, "fakeidp-zeroid-admin"),
		apiKey:     cmp.Or(opts.APIKey, "zid_sk_fakeidp"),
		ttl:        opts.TokenTTL,
		seed:       opts.Seed,
		identities: fakeidp.NewTable(func(i *Identity) string { return i.ID }, opts.Identities),
		tokens:     map[string]*zeroidToken{},
	}
	if f.ttl <= 0 {
		f.ttl = 15 * time.Minute
	}
	f.Core = fakeidp.NewCore("zeroid", zeroidErrorBody, nil)
	owners := opts.Owners
	if owners <= 0 {
		owners = max(opts.Identities, 1)
	}
	for i := range opts.Identities {
		at := fakeidp.Epoch.Add(time.Duration(i) * time.Minute)
		f.identities.Add(&Identity{ID: fakeidp.UUID(opts.Seed, "identity", i), ExternalID: fmt.Sprintf("agent-%d", i),
			Name: fmt.Sprintf("Agent %d", i), IdentityType: "agent", SubType: "autonomous", TrustLevel: "unverified",
			Status: "active", OwnerUserID: fmt.Sprintf("user_%d", i%owners), CreatedAt: at, UpdatedAt: at})
	}
	return f
}

// Start serves the fake on a loopback port and returns its base URL.
func (f *Fake) Start() string { return f.Serve(f.Handler()) }

// Tenant returns the account and project the fake serves.
func (f *Fake) Tenant() (account, project string) { return f.account, f.project }

// AdminToken returns the admin bearer token the fake accepts.
func (f *Fake) AdminToken() string { return f.adminToken }

// APIKey returns the API key the token endpoint accepts.
func (f *Fake) APIKey() string { return f.apiKey }

// IdentityIDs returns the ids of all identities in creation order.
func (f *Fake) IdentityIDs() []string {
	f.mu.RLock()
	defer f.mu.RUnlock()
	ids := make([]string, f.identities.Len())
	for i, id := range f.identities.Rows {
		ids[i] = id.ID
	}
	return ids
}

// Identity returns a copy of one identity.
func (f *Fake) Identity(id string) (Identity, bool) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	i, ok := f.identities.Get(id)
	if !ok {
		return Identity{}, false
	}
	return *i, true
}

// CreateIdentity adds an identity (an agent owned by OwnerUserID, typically).
func (f *Fake) CreateIdentity(i Identity) Identity {
	now := time.Now().UTC()
	if i.ID == "" {
		i.ID = fakeidp.UUID(f.seed^0x5eed, "identity", int(f.seq.Add(1)))
	}
	i.IdentityType = cmp.Or(i.IdentityType, "agent")
	i.TrustLevel = cmp.Or(i.TrustLevel, "unverified")
	i.Status = cmp.Or(i.Status, "active")
	i.ExternalID = cmp.Or(i.ExternalID, i.ID)
	if i.CreatedAt.IsZero() {
		i.CreatedAt = now
	}
	i.UpdatedAt = i.CreatedAt
	f.mu.Lock()
	f.identities.Add(&i)
	f.mu.Unlock()
	return i
}

// UpdateIdentity applies change to an identity.
func (f *Fake) UpdateIdentity(id string, change func(*Identity)) (Identity, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	i, ok := f.identities.Get(id)
	if !ok {
		return Identity{}, fmt.Errorf("zeroid fake: no identity %q", id)
	}
	change(i)
	i.ID, i.UpdatedAt = id, fakeidp.LaterTime(i.UpdatedAt)
	return *i, nil
}

// DeleteIdentity removes an identity.
func (f *Fake) DeleteIdentity(id string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.identities.Remove(id); !ok {
		return fmt.Errorf("zeroid fake: no identity %q", id)
	}
	return nil
}

// IssueToken issues an active token for an identity, as the token endpoint would.
func (f *Fake) IssueToken(identityID, scope string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.issueLocked(identityID, scope).jti
}

func (f *Fake) issueLocked(identityID, scope string) *zeroidToken {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	now := time.Now()
	t := &zeroidToken{jti: "zid_at_" + hex.EncodeToString(b), identity: identityID, scope: scope, iat: now, exp: now.Add(f.ttl)}
	f.tokens[t.jti] = t
	return t
}

// TokenActive reports whether a token is still active.
func (f *Fake) TokenActive(token string) bool {
	f.mu.RLock()
	defer f.mu.RUnlock()
	t := f.tokens[token]
	return t != nil && !t.revoked && time.Now().Before(t.exp)
}

// revokeIdentityLocked revokes every active token of an identity and returns how many.
func (f *Fake) revokeIdentityLocked(identityID string) int {
	n := 0
	for _, t := range f.tokens {
		if t.identity == identityID && !t.revoked {
			t.revoked = true
			n++
		}
	}
	return n
}

// ---- HTTP --------------------------------------------------------------------------------

func zeroidErrorBody(status int, msg string) (string, []byte) {
	return zeroidProblem(status, msg, nil)
}

// zeroidProblem is Huma's RFC 9457 problem details.
func zeroidProblem(status int, detail string, errs []map[string]any) (string, []byte) {
	body := map[string]any{"title": http.StatusText(status), "status": status, "detail": detail}
	if errs != nil {
		body["errors"] = errs
	}
	b, _ := json.Marshal(body)
	return "application/problem+json", b
}

func (f *Fake) problem(w http.ResponseWriter, status int, detail string, errs []map[string]any) {
	ct, body := zeroidProblem(status, detail, errs)
	w.Header().Set("Content-Type", ct)
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// Handler returns the fake's HTTP handler, with recording and failure injection.
func (f *Fake) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /health", func(w http.ResponseWriter, _ *http.Request) {
		fakeidp.WriteJSON(w, http.StatusOK, map[string]any{"status": "healthy", "version": "fakeidp"})
	})
	mux.HandleFunc("GET /.well-known/jwks.json", func(w http.ResponseWriter, _ *http.Request) {
		fakeidp.WriteJSON(w, http.StatusOK, map[string]any{"keys": []any{map[string]any{"kty": "EC", "crv": "P-256", "kid": "fakeidp-1",
			"use": "sig", "alg": "ES256", "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU", "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}}})
	})
	mux.HandleFunc("POST /oauth2/token", f.token)
	mux.HandleFunc("POST /oauth2/token/introspect", f.introspect)
	mux.HandleFunc("POST /oauth2/token/revoke", f.revoke)
	admin := http.NewServeMux()
	admin.HandleFunc("GET /api/v1/identities", f.listIdentities)
	admin.HandleFunc("POST /api/v1/identities/offboard-by-owner", f.offboard)
	admin.HandleFunc("POST /api/v1/signals/ingest", f.ingest)
	admin.HandleFunc("/", func(w http.ResponseWriter, _ *http.Request) { f.problem(w, http.StatusNotFound, "Not Found", nil) })
	mux.Handle("/api/v1/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if f.adminToken != "-" && subtle.ConstantTimeCompare([]byte(r.Header.Get("Authorization")), []byte("Bearer "+f.adminToken)) != 1 {
			// The AdminAuth hook answers with ZeroID's raw-route envelope.
			fakeidp.WriteJSON(w, http.StatusUnauthorized, map[string]any{"error": map[string]any{"code": 401, "internalCode": "ZEROID-40101",
				"message": "admin authentication required", "status": "Unauthorized", "timestamp": time.Now().UTC().Format(time.RFC3339)}})
			return
		}
		if r.Header.Get("X-Account-ID") != f.account || r.Header.Get("X-Project-ID") != f.project {
			fakeidp.WriteJSON(w, http.StatusUnauthorized, map[string]any{"error": map[string]any{"code": 401, "internalCode": "ZEROID-40102",
				"message": "missing or unknown tenant context", "status": "Unauthorized", "timestamp": time.Now().UTC().Format(time.RFC3339)}})
			return
		}
		admin.ServeHTTP(w, r)
	}))
	mux.HandleFunc("/", func(w http.ResponseWriter, _ *http.Request) { f.problem(w, http.StatusNotFound, "Not Found", nil) })
	return f.Wrap(mux)
}

// readFormOrJSON reads the OAuth endpoints' bodies, which ZeroID accepts as JSON or form.
func readFormOrJSON(r *http.Request) (map[string]string, error) {
	out := map[string]string{}
	if strings.HasPrefix(r.Header.Get("Content-Type"), "application/x-www-form-urlencoded") {
		if err := r.ParseForm(); err != nil {
			return nil, err
		}
		for k := range r.PostForm {
			out[k] = r.PostForm.Get(k)
		}
		return out, nil
	}
	b, err := fakeidp.ReadBody(r)
	if err != nil {
		return nil, err
	}
	var raw map[string]any
	if err := json.Unmarshal(b, &raw); err != nil {
		return nil, err
	}
	for k, v := range raw {
		if s, ok := v.(string); ok {
			out[k] = s
		}
	}
	return out, nil
}

func (f *Fake) token(w http.ResponseWriter, r *http.Request) {
	in, err := readFormOrJSON(r)
	if err != nil {
		fakeidp.OAuthError(w, http.StatusBadRequest, "invalid_request", "malformed body")
		return
	}
	if in["grant_type"] != "api_key" {
		fakeidp.OAuthError(w, http.StatusBadRequest, "unsupported_grant_type", "the fake supports the api_key grant")
		return
	}
	if subtle.ConstantTimeCompare([]byte(in["api_key"]), []byte(f.apiKey)) != 1 {
		fakeidp.OAuthError(w, http.StatusUnauthorized, "invalid_client", "invalid api key")
		return
	}
	f.mu.Lock()
	if f.identities.Len() == 0 {
		f.mu.Unlock()
		fakeidp.OAuthError(w, http.StatusBadRequest, "invalid_grant", "the key's identity does not exist")
		return
	}
	ident := f.identities.Rows[0]
	if ident.Status != "active" {
		f.mu.Unlock()
		fakeidp.OAuthError(w, http.StatusBadRequest, "invalid_grant", "identity is suspended or deactivated")
		return
	}
	t := f.issueLocked(ident.ID, in["scope"])
	f.mu.Unlock()
	fakeidp.WriteJSON(w, http.StatusOK, map[string]any{"access_token": t.jti, "token_type": "Bearer", "expires_in": int(f.ttl.Seconds()),
		"scope": t.scope, "jti": t.jti, "account_id": f.account, "project_id": f.project, "external_id": ident.ExternalID})
}

func (f *Fake) introspect(w http.ResponseWriter, r *http.Request) {
	in, err := readFormOrJSON(r)
	if err != nil || in["token"] == "" {
		f.problem(w, http.StatusUnprocessableEntity, "validation failed", []map[string]any{{"message": "expected required property token to be present", "location": "body.token"}})
		return
	}
	f.mu.RLock()
	t := f.tokens[in["token"]]
	f.mu.RUnlock()
	if t == nil || t.revoked || !time.Now().Before(t.exp) {
		fakeidp.WriteJSON(w, http.StatusOK, map[string]any{"active": false})
		return
	}
	fakeidp.WriteJSON(w, http.StatusOK, map[string]any{"active": true, "sub": "spiffe://fakeidp/" + f.account + "/" + f.project + "/agent/" + t.identity,
		"scope": t.scope, "exp": t.exp.Unix(), "iat": t.iat.Unix(), "jti": t.jti, "token_type": "Bearer",
		"account_id": f.account, "project_id": f.project})
}

func (f *Fake) revoke(w http.ResponseWriter, r *http.Request) {
	in, err := readFormOrJSON(r)
	if err != nil || in["token"] == "" {
		f.problem(w, http.StatusUnprocessableEntity, "validation failed", []map[string]any{{"message": "expected required property token to be present", "location": "body.token"}})
		return
	}
	f.mu.Lock()
	if t := f.tokens[in["token"]]; t != nil {
		t.revoked = true
	}
	f.mu.Unlock()
	f.RecordMutation("token.revoke", in["token"], nil)
	fakeidp.WriteJSON(w, http.StatusOK, map[string]any{"revoked": true})
}

var zeroidSignalTypes = []string{"credential_change", "session_revoked", "ip_change", "anomalous_behavior",
	"policy_violation", "retirement", "owner_change", "identity_expired"}

func (f *Fake) ingest(w http.ResponseWriter, r *http.Request) {
	body, err := fakeidp.ReadBody(r)
	var in struct {
		IdentityID string         `json:"identity_id"`
		SignalType string         `json:"signal_type"`
		Severity   string         `json:"severity"`
		Source     string         `json:"source"`
		Payload    map[string]any `json:"payload"`
	}
	if err == nil {
		err = json.Unmarshal(body, &in)
	}
	var errs []map[string]any
	if err != nil {
		errs = append(errs, map[string]any{"message": "body must be a JSON object", "location": "body"})
	}
	if !slices.Contains(zeroidSignalTypes, in.SignalType) {
		errs = append(errs, map[string]any{"message": "expected value to be one of \"" + strings.Join(zeroidSignalTypes, ", ") + "\"",
			"location": "body.signal_type", "value": in.SignalType})
	}
	in.Severity = cmp.Or(in.Severity, "low")
	if !slices.Contains([]string{"low", "medium", "high", "critical"}, in.Severity) {
		errs = append(errs, map[string]any{"message": "expected value to be one of \"low, medium, high, critical\"", "location": "body.severity", "value": in.Severity})
	}
	if in.Source == "" {
		errs = append(errs, map[string]any{"message": "expected required property source to be present", "location": "body.source"})
	}
	if errs != nil {
		f.problem(w, http.StatusUnprocessableEntity, "validation failed", errs)
		return
	}
	now := time.Now().UTC()
	sig := map[string]any{"id": fakeidp.UUID(f.seed^0x51, "signal", int(f.seq.Add(1))), "account_id": f.account, "project_id": f.project,
		"signal_type": in.SignalType, "severity": in.Severity, "source": in.Source, "payload": in.Payload, "created_at": now.Format(time.RFC3339Nano)}
	if in.IdentityID != "" {
		sig["identity_id"] = in.IdentityID
	}
	f.mu.Lock()
	if in.IdentityID != "" && (in.Severity == "high" || in.Severity == "critical") {
		// High and critical signals cascade: every active credential of the identity is revoked.
		if _, ok := f.identities.Get(in.IdentityID); ok {
			f.revokeIdentityLocked(in.IdentityID)
			sig["processed_at"] = now.Format(time.RFC3339Nano)
		}
	}
	f.signals = append(f.signals, sig)
	f.mu.Unlock()
	f.RecordMutation("signal.ingest", in.IdentityID, body)
	fakeidp.WriteJSON(w, http.StatusCreated, sig)
}

func zeroidIdentityWire(f *Fake, i *Identity) map[string]any {
	return map[string]any{"id": i.ID, "account_id": f.account, "project_id": f.project, "external_id": i.ExternalID,
		"name": i.Name, "wimse_uri": "spiffe://fakeidp/" + f.account + "/" + f.project + "/" + i.IdentityType + "/" + i.ExternalID,
		"identity_type": i.IdentityType, "sub_type": i.SubType, "trust_level": i.TrustLevel, "status": i.Status,
		"owner_user_id": i.OwnerUserID, "allowed_scopes": []string{}, "capabilities": []any{}, "labels": map[string]any{},
		"metadata": map[string]any{}, "created_at": i.CreatedAt.Format(time.RFC3339Nano), "updated_at": i.UpdatedAt.Format(time.RFC3339Nano)}
}

func (f *Fake) listIdentities(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	limit, _ := strconv.Atoi(q.Get("limit"))
	if limit <= 0 || limit > MaxLimit {
		limit = DefaultLimit
	}
	offset, _ := strconv.Atoi(q.Get("offset"))
	offset = max(offset, 0)
	owner, typ, status, search := q.Get("owner_user_id"), q.Get("identity_type"), q.Get("status"), q.Get("search")
	f.mu.RLock()
	var keep func(*Identity) bool
	if owner != "" || typ != "" || status != "" || search != "" {
		keep = func(i *Identity) bool {
			return (owner == "" || i.OwnerUserID == owner) && (typ == "" || i.IdentityType == typ) &&
				(status == "" || i.Status == status) &&
				(search == "" || strings.Contains(i.Name, search) || strings.Contains(i.ExternalID, search))
		}
	}
	all := f.identities.List(keep)
	rows := fakeidp.Window(all, offset, limit)
	out := make([]map[string]any, len(rows))
	for k, i := range rows {
		out[k] = zeroidIdentityWire(f, i)
	}
	f.mu.RUnlock()
	fakeidp.WriteJSON(w, http.StatusOK, map[string]any{"identities": out, "total": len(all), "limit": limit, "offset": offset})
}

func (f *Fake) offboard(w http.ResponseWriter, r *http.Request) {
	body, err := fakeidp.ReadBody(r)
	var in struct {
		OwnerUserID string `json:"owner_user_id"`
		Reason      string `json:"reason"`
	}
	if err == nil {
		err = json.Unmarshal(body, &in)
	}
	if err != nil || in.OwnerUserID == "" {
		f.problem(w, http.StatusUnprocessableEntity, "validation failed", []map[string]any{{"message": "expected required property owner_user_id to be present", "location": "body.owner_user_id"}})
		return
	}
	f.mu.Lock()
	deactivated, revoked := 0, 0
	for _, i := range f.identities.Rows {
		if i.OwnerUserID != in.OwnerUserID || i.Status == "deactivated" {
			continue
		}
		i.Status, i.UpdatedAt = "deactivated", fakeidp.LaterTime(i.UpdatedAt)
		deactivated++
		revoked += f.revokeIdentityLocked(i.ID)
	}
	f.mu.Unlock()
	f.RecordMutation("identity.offboard", in.OwnerUserID, body)
	fakeidp.WriteJSON(w, http.StatusOK, map[string]any{"identities_deactivated": deactivated, "credentials_revoked": revoked})
}
