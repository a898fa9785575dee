package fakeidp

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/idpsync/idpsync/internal/webhook"
)

// AuthPIMaxLimit is the largest page AuthPI serves; larger limits are rejected with 400.
const (
	AuthPIMaxLimit     = 100
	AuthPIDefaultLimit = 50
)

const base36 = "0123456789abcdefghijklmnopqrstuvwxyz"

// AuthPIOptions configures an AuthPI fake.
type AuthPIOptions struct {
	// KeyID and KeySecret are the API key the fake accepts. Default "key_fakeidp" and
	// "fakeidp-key-secret".
	KeyID, KeySecret string
	// AccountID is the key's account. Defaults to "acc_fakeidp".
	AccountID string
	// Seed makes the generated data reproducible.
	Seed uint64
	// Users is the number of users generated in the first issuer.
	Users int
	// Organizations is the number of organizations generated in the first issuer.
	Organizations int
	// Issuers is the number of issuers. Defaults to 1.
	Issuers int
}

// AuthPIUser is a user held by the AuthPI fake.
type AuthPIUser struct {
	ID          string
	IssuerID    string
	Username    string
	Email       string
	DisplayName string
	// Status is active, suspended, disabled or deleted.
	Status    string
	CreatedAt time.Time
	UpdatedAt time.Time
}

// AuthPIOrganization is an organization held by the AuthPI fake.
type AuthPIOrganization struct {
	ID        string
	IssuerID  string
	Name      string
	Slug      string
	Status    string
	CreatedAt time.Time
	UpdatedAt time.Time
}

type authpiIssuer struct {
	ID, Name  string
	CreatedAt time.Time
}

type authpiWebhook struct {
	ID, Name, URL, Status     string
	Events                    []string
	AuthType, Bearer, Signing string
	CreatedAt                 time.Time
}

// AuthPI is an in-memory imitation of AuthPI's Core API (API key over Basic, access tokens,
// account resolution, cursor pagination, webhooks) that delivers CloudEvents webhooks with bearer
// or HMAC authentication.
type AuthPI struct {
	*Core
	keyID, keySecret, account string
	seed                      uint64
	seq                       atomic.Int64

	mu          sync.RWMutex
	tokens      map[string]bool
	issuers     *table[authpiIssuer]
	users       map[string]*table[AuthPIUser]         // by issuer
	orgs        map[string]*table[AuthPIOrganization] // by issuer
	members     map[string]map[string]string          // org id → user id → role
	webhooks    *table[authpiWebhook]
	idempotency map[string][]byte
	subscribed  []string // event filter of the API-registered target, nil = all
}

// NewAuthPI returns an AuthPI fake holding the generated data set of opts.
func NewAuthPI(opts AuthPIOptions) *AuthPI {
	f := &AuthPI{
		keyID:       orStr(opts.KeyID, "key_fakeidp"),
		keySecret:   orStr(opts.KeySecret, "fakeidp-key-secret"),
		account:     orStr(opts.AccountID, "acc_fakeidp"),
		seed:        opts.Seed,
		tokens:      map[string]bool{},
		issuers:     newTable(func(i *authpiIssuer) string { return i.ID }, max(opts.Issuers, 1)),
		users:       map[string]*table[AuthPIUser]{},
		orgs:        map[string]*table[AuthPIOrganization]{},
		members:     map[string]map[string]string{},
		webhooks:    newTable(func(w *authpiWebhook) string { return w.ID }, 0),
		idempotency: map[string][]byte{},
	}
	f.Core = newCore("authpi", authpiErrorBody)
	f.hooks.sign = authpiSign
	f.seq.Store(int64(opts.Users + opts.Organizations + 10))
	for i := range max(opts.Issuers, 1) {
		iss := &authpiIssuer{ID: sortableID("i_", base36, 25, opts.Seed^0x15, i), Name: fmt.Sprintf("issuer-%d", i), CreatedAt: genEpoch}
		f.issuers.add(iss)
		f.users[iss.ID] = newTable(func(u *AuthPIUser) string { return u.ID }, 0)
		f.orgs[iss.ID] = newTable(func(o *AuthPIOrganization) string { return o.ID }, 0)
	}
	iss := f.issuers.rows[0].ID
	users := f.users[iss]
	for i := range opts.Users {
		p := genPerson(opts.Seed, i)
		users.add(&AuthPIUser{ID: sortableID("usr_", base36, 25, opts.Seed, i), IssuerID: iss, Username: p.Username,
			Email: p.Email, DisplayName: p.First + " " + p.Last, Status: "active", CreatedAt: p.Created, UpdatedAt: p.Created})
	}
	for i := range opts.Organizations {
		name, slug := genOrgName(i)
		at := genEpoch.Add(time.Duration(i) * time.Hour)
		o := &AuthPIOrganization{ID: sortableID("org_", base36, 25, opts.Seed^0x0f, i), IssuerID: iss, Name: name, Slug: slug,
			Status: "active", CreatedAt: at, UpdatedAt: at}
		f.orgs[iss].add(o)
		f.members[o.ID] = map[string]string{}
	}
	return f
}

// Start serves the fake on a loopback port and returns its API root.
func (f *AuthPI) Start() string { return f.start(f.Handler()) }

// APIKey returns the key id and secret the fake accepts.
func (f *AuthPI) APIKey() (id, secret string) { return f.keyID, f.keySecret }

// AccountID returns the account of the fake's key.
func (f *AuthPI) AccountID() string { return f.account }

// IssuerIDs returns the issuers' ids.
func (f *AuthPI) IssuerIDs() []string {
	f.mu.RLock()
	defer f.mu.RUnlock()
	out := make([]string, f.issuers.len())
	for i, iss := range f.issuers.rows {
		out[i] = iss.ID
	}
	return out
}

// IssueAccessToken returns a new access token the fake accepts as a bearer token.
func (f *AuthPI) IssueAccessToken() string {
	b := make([]byte, 18)
	_, _ = rand.Read(b)
	tok := "eyJfake." + hex.EncodeToString(b)
	f.mu.Lock()
	f.tokens[tok] = true
	f.mu.Unlock()
	return tok
}

// ExpireAccessTokens makes every access token issued so far answer 401 session_expired.
func (f *AuthPI) ExpireAccessTokens() {
	f.mu.Lock()
	clear(f.tokens)
	f.mu.Unlock()
}

func (f *AuthPI) newID(prefix string) string {
	return sortableID(prefix, base36, 25, f.seed^0x5eed, int(f.seq.Add(1)))
}

// ---- Go-side data access and mutation -------------------------------------------------------

// UserIDs returns the ids of an issuer's users in creation order ("" = the first issuer).
func (f *AuthPI) UserIDs(issuerID string) []string {
	f.mu.RLock()
	defer f.mu.RUnlock()
	t := f.users[f.issuerOr(issuerID)]
	if t == nil {
		return nil
	}
	ids := make([]string, t.len())
	for i, u := range t.rows {
		ids[i] = u.ID
	}
	return ids
}

func (f *AuthPI) issuerOr(id string) string {
	if id == "" && f.issuers.len() > 0 {
		return f.issuers.rows[0].ID
	}
	return id
}

// User returns a copy of a user of the first issuer or of u.IssuerID.
func (f *AuthPI) User(issuerID, id string) (AuthPIUser, bool) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	t := f.users[f.issuerOr(issuerID)]
	if t == nil {
		return AuthPIUser{}, false
	}
	u, ok := t.get(id)
	if !ok {
		return AuthPIUser{}, false
	}
	return *u, true
}

// CreateUser adds a user (to the first issuer when IssuerID is empty) and emits user.created.
func (f *AuthPI) CreateUser(u AuthPIUser) (AuthPIUser, error) {
	now := time.Now().UTC()
	f.mu.Lock()
	u.IssuerID = f.issuerOr(u.IssuerID)
	t := f.users[u.IssuerID]
	if t == nil {
		f.mu.Unlock()
		return AuthPIUser{}, fmt.Errorf("authpi fake: no issuer %q", u.IssuerID)
	}
	if u.ID == "" {
		u.ID = f.newID("usr_")
	}
	if u.Status == "" {
		u.Status = "active"
	}
	if u.CreatedAt.IsZero() {
		u.CreatedAt = now
	}
	u.UpdatedAt = u.CreatedAt
	t.add(&u)
	f.mu.Unlock()
	f.emit("user.created", map[string]string{"user_id": u.ID, "issuer_id": u.IssuerID}, authpiUserWire(&u, true))
	return u, nil
}

// UpdateUser applies change to a user and emits user.updated (user.suspended when the status
// became suspended).
func (f *AuthPI) UpdateUser(issuerID, id string, change func(*AuthPIUser)) (AuthPIUser, error) {
	f.mu.Lock()
	t := f.users[f.issuerOr(issuerID)]
	var u *AuthPIUser
	if t != nil {
		u, _ = t.get(id)
	}
	if u == nil {
		f.mu.Unlock()
		return AuthPIUser{}, fmt.Errorf("authpi fake: no user %q", id)
	}
	before := u.Status
	change(u)
	u.ID, u.UpdatedAt = id, laterTime(u.UpdatedAt)
	out := *u
	f.mu.Unlock()
	eventType := "user.updated"
	if out.Status == "suspended" && before != "suspended" {
		eventType = "user.suspended"
	}
	f.emit(eventType, map[string]string{"user_id": out.ID, "issuer_id": out.IssuerID}, authpiUserWire(&out, true))
	return out, nil
}

// DeleteUser removes a user and emits user.deleted.
func (f *AuthPI) DeleteUser(issuerID, id string) error {
	f.mu.Lock()
	t := f.users[f.issuerOr(issuerID)]
	var u *AuthPIUser
	if t != nil {
		u, _ = t.remove(id)
	}
	if u != nil {
		for _, m := range f.members {
			delete(m, id)
		}
	}
	f.mu.Unlock()
	if u == nil {
		return fmt.Errorf("authpi fake: no user %q", id)
	}
	u.Status, u.UpdatedAt = "deleted", laterTime(u.UpdatedAt)
	f.emit("user.deleted", map[string]string{"user_id": u.ID, "issuer_id": u.IssuerID}, authpiUserWire(u, true))
	return nil
}

// CreateOrganization adds an organization and emits organization.created.
func (f *AuthPI) CreateOrganization(o AuthPIOrganization) (AuthPIOrganization, error) {
	now := time.Now().UTC()
	f.mu.Lock()
	o.IssuerID = f.issuerOr(o.IssuerID)
	t := f.orgs[o.IssuerID]
	if t == nil {
		f.mu.Unlock()
		return AuthPIOrganization{}, fmt.Errorf("authpi fake: no issuer %q", o.IssuerID)
	}
	if o.ID == "" {
		o.ID = f.newID("org_")
	}
	if o.Status == "" {
		o.Status = "active"
	}
	if o.CreatedAt.IsZero() {
		o.CreatedAt = now
	}
	o.UpdatedAt = o.CreatedAt
	t.add(&o)
	f.members[o.ID] = map[string]string{}
	f.mu.Unlock()
	f.emit("organization.created", map[string]string{"organization_id": o.ID, "issuer_id": o.IssuerID}, authpiOrgWire(&o))
	return o, nil
}

// UpdateOrganization applies change and emits organization.updated (organization.suspended
// when the status became suspended).
func (f *AuthPI) UpdateOrganization(issuerID, id string, change func(*AuthPIOrganization)) (AuthPIOrganization, error) {
	f.mu.Lock()
	t := f.orgs[f.issuerOr(issuerID)]
	var o *AuthPIOrganization
	if t != nil {
		o, _ = t.get(id)
	}
	if o == nil {
		f.mu.Unlock()
		return AuthPIOrganization{}, fmt.Errorf("authpi fake: no organization %q", id)
	}
	before := o.Status
	change(o)
	o.ID, o.UpdatedAt = id, laterTime(o.UpdatedAt)
	out := *o
	f.mu.Unlock()
	eventType := "organization.updated"
	if out.Status == "suspended" && before != "suspended" {
		eventType = "organization.suspended"
	}
	f.emit(eventType, map[string]string{"organization_id": out.ID, "issuer_id": out.IssuerID}, authpiOrgWire(&out))
	return out, nil
}

// DeleteOrganization removes an organization and emits organization.deleted.
func (f *AuthPI) DeleteOrganization(issuerID, id string) error {
	f.mu.Lock()
	t := f.orgs[f.issuerOr(issuerID)]
	var o *AuthPIOrganization
	if t != nil {
		o, _ = t.remove(id)
	}
	delete(f.members, id)
	f.mu.Unlock()
	if o == nil {
		return fmt.Errorf("authpi fake: no organization %q", id)
	}
	o.Status = "deleted"
	f.emit("organization.deleted", map[string]string{"organization_id": o.ID, "issuer_id": o.IssuerID}, authpiOrgWire(o))
	return nil
}

// AddMember adds a user to an organization and emits organization.member.added (AuthPI's
// membership event names are not documented; this name is the fake's choice).
func (f *AuthPI) AddMember(orgID, userID, role string) error {
	f.mu.Lock()
	m := f.members[orgID]
	if m == nil {
		f.mu.Unlock()
		return fmt.Errorf("authpi fake: no organization %q", orgID)
	}
	m[userID] = orStr(role, "member")
	f.mu.Unlock()
	f.emit("organization.member.added", map[string]string{"organization_id": orgID, "user_id": userID},
		map[string]any{"organization_id": orgID, "user_id": userID, "role": orStr(role, "member")})
	return nil
}

// RemoveMember removes a user from an organization and emits organization.member.removed.
func (f *AuthPI) RemoveMember(orgID, userID string) error {
	f.mu.Lock()
	m := f.members[orgID]
	_, ok := m[userID]
	delete(m, userID)
	f.mu.Unlock()
	if !ok {
		return fmt.Errorf("authpi fake: user %q is not a member of %q", userID, orgID)
	}
	f.emit("organization.member.removed", map[string]string{"organization_id": orgID, "user_id": userID},
		map[string]any{"organization_id": orgID, "user_id": userID})
	return nil
}

// ---- wire shapes --------------------------------------------------------------------------

func authpiUserWire(u *AuthPIUser, detailed bool) map[string]any {
	username := u.Username
	if !detailed {
		// List answers carry hashed usernames; Get User has the details.
		sum := sha256.Sum256([]byte(u.Username))
		username = "sha256:" + hex.EncodeToString(sum[:8])
	}
	return map[string]any{"object": "user", "id": u.ID, "issuer_id": u.IssuerID, "username": username, "email": u.Email,
		"email_verified": true, "display_name": u.DisplayName, "status": u.Status, "region": "eu",
		"metadata": map[string]any{}, "created_at": u.CreatedAt.Format(time.RFC3339), "updated_at": u.UpdatedAt.Format(time.RFC3339Nano)}
}

func authpiOrgWire(o *AuthPIOrganization) map[string]any {
	return map[string]any{"object": "organization", "id": o.ID, "issuer_id": o.IssuerID, "name": o.Name, "slug": o.Slug,
		"status": o.Status, "metadata": map[string]any{}, "created_at": o.CreatedAt.Format(time.RFC3339),
		"updated_at": o.UpdatedAt.Format(time.RFC3339Nano)}
}

func hint(secret string) string {
	if len(secret) <= 4 {
		return ""
	}
	return "…" + secret[len(secret)-4:]
}

func authpiWebhookWire(w *authpiWebhook, plain bool) map[string]any {
	auth := map[string]any{"type": w.AuthType}
	if w.Signing != "" {
		auth["signature_algorithm"] = "hmac-sha256"
		auth["signature_secret_hint"] = hint(w.Signing)
	}
	if w.Bearer != "" {
		auth["bearer_token_hint"] = hint(w.Bearer)
	}
	out := map[string]any{"object": "webhook", "id": w.ID, "name": w.Name, "url": w.URL, "events": w.Events,
		"status": w.Status, "auth": auth, "created_at": w.CreatedAt.Format(time.RFC3339)}
	if plain {
		if w.Signing != "" {
			out["signature_secret_plain"] = w.Signing
		}
		if w.Bearer != "" {
			out["bearer_token_plain"] = w.Bearer
		}
	}
	return out
}

func authpiErrorBody(status int, msg string) (string, []byte) {
	if status == http.StatusTooManyRequests || status >= 500 {
		// AuthPI's edge answers these with an HTML page, not the JSON envelope.
		return "text/html; charset=utf-8", fmt.Appendf(nil, "<html><head><title>%d %s</title></head><body><h1>%s</h1></body></html>",
			status, http.StatusText(status), msg)
	}
	code := map[int]string{400: "invalid_request", 401: "unauthorized_client", 403: "access_denied", 404: "not_found", 409: "conflict"}[status]
	return authpiErrorJSON(orStr(code, "server_error"), msg, nil)
}

func authpiErrorJSON(code, desc string, fields []map[string]string) (string, []byte) {
	body := map[string]any{"error": code, "error_description": desc, "request_id": "req_" + traceID()[:20]}
	if fields != nil {
		body["fields"] = fields
	}
	b, _ := json.Marshal(body)
	return "application/json", b
}

// ---- HTTP --------------------------------------------------------------------------------

// Handler returns the fake's HTTP handler, with recording and failure injection.
func (f *AuthPI) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/me", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]any{"object": "api_key", "key_id": f.keyID, "account_id": f.account})
	})
	acc := "/v1/accounts/{acc}"
	mux.HandleFunc("GET "+acc+"/issuers", f.listIssuers)
	mux.HandleFunc("GET "+acc+"/issuers/{iss}/users", f.listUsers)
	mux.HandleFunc("GET "+acc+"/issuers/{iss}/users/{id}", f.getUser)
	mux.HandleFunc("GET "+acc+"/issuers/{iss}/organizations", f.listOrgs)
	mux.HandleFunc("POST "+acc+"/webhooks", f.createWebhook)
	mux.HandleFunc("GET "+acc+"/webhooks", f.listWebhooks)
	mux.HandleFunc("DELETE "+acc+"/webhooks/{id}", f.deleteWebhook)
	mux.HandleFunc("/", func(w http.ResponseWriter, _ *http.Request) {
		f.fail(w, http.StatusNotFound, "not_found", "No such route.", nil)
	})
	return f.wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if code, desc := f.authenticate(r); code != "" {
			f.fail(w, http.StatusUnauthorized, code, desc, nil)
			return
		}
		// An API key sees only its own account.
		if rest, ok := strings.CutPrefix(r.URL.Path, "/v1/accounts/"); ok {
			if accID, _, _ := strings.Cut(rest, "/"); accID != f.account {
				f.fail(w, http.StatusNotFound, "not_found", "Account not found.", nil)
				return
			}
		}
		mux.ServeHTTP(w, r)
	}))
}

func (f *AuthPI) authenticate(r *http.Request) (code, desc string) {
	if id, secret, ok := r.BasicAuth(); ok {
		if id == f.keyID && subtle.ConstantTimeCompare([]byte(secret), []byte(f.keySecret)) == 1 {
			return "", ""
		}
		return "unauthorized_client", "The API key is invalid or has been revoked."
	}
	if tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok {
		f.mu.RLock()
		valid := f.tokens[tok]
		f.mu.RUnlock()
		if valid {
			return "", ""
		}
		return "session_expired", "The access token has expired."
	}
	return "unauthorized_client", "Authentication is required."
}

func (f *AuthPI) fail(w http.ResponseWriter, status int, code, desc string, fields []map[string]string) {
	ct, body := authpiErrorJSON(code, desc, fields)
	w.Header().Set("Content-Type", ct)
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// paging reads limit (1–100, default 50) and cursor.
func (f *AuthPI) paging(w http.ResponseWriter, r *http.Request) (int, string, bool) {
	limit := AuthPIDefaultLimit
	if v := r.URL.Query().Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > AuthPIMaxLimit {
			f.fail(w, http.StatusBadRequest, "invalid_request", "The request parameters are invalid.",
				[]map[string]string{{"field": "limit", "code": "out_of_range", "message": fmt.Sprintf("must be between 1 and %d", AuthPIMaxLimit)}})
			return 0, "", false
		}
		limit = n
	}
	return limit, r.URL.Query().Get("cursor"), true
}

// cursorPage returns up to limit rows after the row with id cursor, whether more follow, and
// false when the cursor is unknown.
func cursorPage[T any](t *table[T], cursor string, limit int, keep func(*T) bool) ([]*T, bool, bool) {
	start := 0
	if cursor != "" {
		i, ok := t.index[cursor]
		if !ok {
			return nil, false, false
		}
		start = i + 1
	}
	var out []*T
	for i := start; i < len(t.rows); i++ {
		if keep != nil && !keep(t.rows[i]) {
			continue
		}
		if len(out) == limit {
			return out, true, true
		}
		out = append(out, t.rows[i])
	}
	return out, false, true
}

func (f *AuthPI) writePage(w http.ResponseWriter, data []map[string]any, more bool, last string) {
	if data == nil {
		data = []map[string]any{}
	}
	var next any
	if more {
		next = last
	}
	writeJSON(w, http.StatusOK, map[string]any{"object": "list", "data": data, "has_more": more, "next_cursor": next})
}

func (f *AuthPI) listIssuers(w http.ResponseWriter, r *http.Request) {
	limit, cursor, ok := f.paging(w, r)
	if !ok {
		return
	}
	f.mu.RLock()
	defer f.mu.RUnlock()
	rows, more, ok := cursorPage(f.issuers, cursor, limit, nil)
	if !ok {
		f.fail(w, http.StatusBadRequest, "invalid_request", "The cursor is invalid.", []map[string]string{{"field": "cursor", "message": "unknown cursor"}})
		return
	}
	out := make([]map[string]any, len(rows))
	for i, iss := range rows {
		out[i] = map[string]any{"object": "issuer", "id": iss.ID, "name": iss.Name, "url": "https://idp.authpi.com/" + iss.ID,
			"status": "active", "created_at": iss.CreatedAt.Format(time.RFC3339), "updated_at": iss.CreatedAt.Format(time.RFC3339)}
	}
	last := ""
	if len(rows) > 0 {
		last = rows[len(rows)-1].ID
	}
	f.writePage(w, out, more, last)
}

func (f *AuthPI) listUsers(w http.ResponseWriter, r *http.Request) {
	limit, cursor, ok := f.paging(w, r)
	if !ok {
		return
	}
	status := r.URL.Query().Get("status")
	f.mu.RLock()
	defer f.mu.RUnlock()
	t := f.users[r.PathValue("iss")]
	if t == nil {
		f.fail(w, http.StatusNotFound, "not_found", "Issuer not found.", nil)
		return
	}
	var keep func(*AuthPIUser) bool
	if status != "" {
		keep = func(u *AuthPIUser) bool { return u.Status == status }
	}
	rows, more, ok := cursorPage(t, cursor, limit, keep)
	if !ok {
		f.fail(w, http.StatusBadRequest, "invalid_request", "The cursor is invalid.", []map[string]string{{"field": "cursor", "message": "unknown cursor"}})
		return
	}
	out := make([]map[string]any, len(rows))
	for i, u := range rows {
		out[i] = authpiUserWire(u, false)
	}
	last := ""
	if len(rows) > 0 {
		last = rows[len(rows)-1].ID
	}
	f.writePage(w, out, more, last)
}

func (f *AuthPI) getUser(w http.ResponseWriter, r *http.Request) {
	u, ok := f.User(r.PathValue("iss"), r.PathValue("id"))
	if !ok {
		f.fail(w, http.StatusNotFound, "not_found", "User not found.", nil)
		return
	}
	writeJSON(w, http.StatusOK, authpiUserWire(&u, true))
}

func (f *AuthPI) listOrgs(w http.ResponseWriter, r *http.Request) {
	limit, cursor, ok := f.paging(w, r)
	if !ok {
		return
	}
	status := r.URL.Query().Get("status")
	f.mu.RLock()
	defer f.mu.RUnlock()
	t := f.orgs[r.PathValue("iss")]
	if t == nil {
		f.fail(w, http.StatusNotFound, "not_found", "Issuer not found.", nil)
		return
	}
	var keep func(*AuthPIOrganization) bool
	if status != "" {
		keep = func(o *AuthPIOrganization) bool { return o.Status == status }
	}
	rows, more, ok := cursorPage(t, cursor, limit, keep)
	if !ok {
		f.fail(w, http.StatusBadRequest, "invalid_request", "The cursor is invalid.", nil)
		return
	}
	out := make([]map[string]any, len(rows))
	for i, o := range rows {
		out[i] = authpiOrgWire(o)
	}
	last := ""
	if len(rows) > 0 {
		last = rows[len(rows)-1].ID
	}
	f.writePage(w, out, more, last)
}

func randomSecret(prefix string) string {
	b := make([]byte, 24)
	_, _ = rand.Read(b)
	return prefix + hex.EncodeToString(b)
}

func (f *AuthPI) createWebhook(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Name   string   `json:"name"`
		URL    string   `json:"url"`
		Events []string `json:"events"`
		Auth   struct {
			Type string `json:"type"`
		} `json:"auth"`
	}
	body, err := readBody(r)
	if err == nil {
		err = json.Unmarshal(body, &req)
	}
	var fields []map[string]string
	if err != nil {
		fields = append(fields, map[string]string{"field": "body", "message": "must be a JSON object"})
	}
	if req.URL == "" || !(strings.HasPrefix(req.URL, "https://") || strings.HasPrefix(req.URL, "http://")) {
		fields = append(fields, map[string]string{"field": "url", "code": "invalid", "message": "must be an absolute URL"})
	}
	if len(req.Events) == 0 {
		fields = append(fields, map[string]string{"field": "events", "code": "required", "message": "at least one event is required"})
	}
	authType := orStr(req.Auth.Type, "bearer")
	if !slices.Contains([]string{"none", "bearer", "signature", "bearer+signature"}, authType) {
		fields = append(fields, map[string]string{"field": "auth.type", "code": "invalid", "message": "must be none, bearer, signature or bearer+signature"})
	}
	if fields != nil {
		f.fail(w, http.StatusBadRequest, "invalid_request", "The request body is invalid.", fields)
		return
	}
	key := r.Header.Get("Idempotency-Key")
	f.mu.Lock()
	if prev, ok := f.idempotency[key]; ok && key != "" {
		f.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Idempotent-Replayed", "true")
		w.WriteHeader(http.StatusCreated)
		_, _ = w.Write(prev)
		return
	}
	wh := &authpiWebhook{ID: f.newID("wh_"), Name: req.Name, URL: req.URL, Events: req.Events, Status: "active",
		AuthType: authType, CreatedAt: time.Now().UTC()}
	if strings.Contains(authType, "bearer") {
		wh.Bearer = randomSecret("whb_")
	}
	if strings.Contains(authType, "signature") {
		wh.Signing = randomSecret("whs_")
	}
	f.webhooks.add(wh)
	out, _ := json.Marshal(authpiWebhookWire(wh, true))
	if key != "" {
		f.idempotency[key] = out
	}
	f.subscribed = wh.Events
	f.mu.Unlock()
	// Deliveries go to the registered webhook from now on, authenticated as it asked.
	t := WebhookTarget{URL: wh.URL, Scheme: authType, Secret: wh.Bearer, SignatureSecret: wh.Signing}
	if authType == "signature" {
		t.Secret = wh.Signing
	}
	f.SetWebhookTarget(t)
	f.recordMutation("webhook.create", wh.ID, body)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusCreated)
	_, _ = w.Write(out)
}

func (f *AuthPI) listWebhooks(w http.ResponseWriter, r *http.Request) {
	limit, cursor, ok := f.paging(w, r)
	if !ok {
		return
	}
	f.mu.RLock()
	defer f.mu.RUnlock()
	rows, more, ok := cursorPage(f.webhooks, cursor, limit, nil)
	if !ok {
		f.fail(w, http.StatusBadRequest, "invalid_request", "The cursor is invalid.", nil)
		return
	}
	out := make([]map[string]any, len(rows))
	for i, wh := range rows {
		out[i] = authpiWebhookWire(wh, false)
	}
	last := ""
	if len(rows) > 0 {
		last = rows[len(rows)-1].ID
	}
	f.writePage(w, out, more, last)
}

func (f *AuthPI) deleteWebhook(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	f.mu.Lock()
	_, ok := f.webhooks.remove(id)
	f.mu.Unlock()
	if !ok {
		f.fail(w, http.StatusNotFound, "not_found", "Webhook not found.", nil)
		return
	}
	f.recordMutation("webhook.delete", id, nil)
	w.WriteHeader(http.StatusNoContent)
}

// ---- webhooks ----------------------------------------------------------------------------

func (f *AuthPI) emit(eventType string, subject map[string]string, data any) {
	if !f.hooks.enabled() {
		return
	}
	f.mu.RLock()
	sub := f.subscribed
	f.mu.RUnlock()
	if sub != nil && !slices.Contains(sub, eventType) {
		return
	}
	ev, err := f.event(eventType, subject, data)
	if err == nil {
		f.hooks.enqueue(ev)
	}
}

// event wraps data in AuthPI's CloudEvents 1.0 envelope: the business type is data.type, the ids
// are in data.subject, the outer type is the constant "event".
func (f *AuthPI) event(eventType string, subject map[string]string, data any) (Event, error) {
	f.mu.RLock()
	whID := "wh_fakeidp"
	if f.webhooks.len() > 0 {
		whID = f.webhooks.rows[f.webhooks.len()-1].ID
	}
	f.mu.RUnlock()
	evtID := sortableID("evt_", base36, 25, f.deliverySeed, int(f.seq.Add(1)))
	body, err := json.Marshal(map[string]any{
		"id": uuidFor(f.deliverySeed, "cloudevent", int(f.seq.Add(1))), "specversion": "1.0",
		"source": "com.authpi.webhooks/v1/" + whID, "type": "event", "datacontenttype": "application/json",
		"time": time.Now().UTC().Format(time.RFC3339),
		"data": map[string]any{"id": evtID, "type": eventType, "trace": traceID()[:16], "source": "com.authpi/v1",
			"subject": subject, "data": data},
	})
	if err != nil {
		return Event{}, err
	}
	return Event{ID: evtID, Type: eventType, Body: body}, nil
}

// authpiSign authenticates a delivery as the target's Scheme says: bearer token, HMAC signature
// (X-Webhook-Signature), or both.
func authpiSign(t WebhookTarget, ev Event, _ time.Time) (http.Header, error) {
	h := http.Header{}
	switch orStr(t.Scheme, "bearer") {
	case "none":
	case "bearer":
		h.Set("Authorization", "Bearer "+t.Secret)
	case "signature":
		h.Set(webhook.HMACSignatureHeader, webhook.SignHMAC(t.Secret, ev.Body))
	case "bearer+signature":
		if t.SignatureSecret == "" {
			return nil, errors.New("authpi fake: bearer+signature needs SignatureSecret")
		}
		h.Set("Authorization", "Bearer "+t.Secret)
		h.Set(webhook.HMACSignatureHeader, webhook.SignHMAC(t.SignatureSecret, ev.Body))
	default:
		return nil, fmt.Errorf("authpi fake: unknown webhook scheme %q", t.Scheme)
	}
	return h, nil
}

// SampleEvent returns one event of eventType built from the fake's first user or organization.
// Supported: user.created|updated|suspended|deleted, organization.created|updated|suspended|deleted.
func (f *AuthPI) SampleEvent(eventType string) (Event, error) {
	f.mu.RLock()
	iss := f.issuers.rows[0].ID
	var u *AuthPIUser
	var o *AuthPIOrganization
	if t := f.users[iss]; t.len() > 0 {
		c := *t.rows[0]
		u = &c
	}
	if t := f.orgs[iss]; t.len() > 0 {
		c := *t.rows[0]
		o = &c
	}
	f.mu.RUnlock()
	switch {
	case strings.HasPrefix(eventType, "user.") && u != nil:
		if eventType == "user.suspended" {
			u.Status = "suspended"
		} else if eventType == "user.deleted" {
			u.Status = "deleted"
		}
		return f.event(eventType, map[string]string{"user_id": u.ID, "issuer_id": u.IssuerID}, authpiUserWire(u, true))
	case strings.HasPrefix(eventType, "organization.") && o != nil:
		if eventType == "organization.suspended" {
			o.Status = "suspended"
		} else if eventType == "organization.deleted" {
			o.Status = "deleted"
		}
		return f.event(eventType, map[string]string{"organization_id": o.ID, "issuer_id": o.IssuerID}, authpiOrgWire(o))
	}
	return Event{}, fmt.Errorf("authpi fake: unsupported sample event type %q (or no data to build it from)", eventType)
}

// SignEvent returns the headers AuthPI would send with ev for target.
func (f *AuthPI) SignEvent(t WebhookTarget, ev Event, at time.Time) (http.Header, error) {
	return authpiSign(t, ev, at)
}

// CreateWebhook registers a webhook from Go (as if created in AuthPI's console) without sending
// deliveries to it, and returns its id.
func (f *AuthPI) CreateWebhook(url string, events []string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	wh := &authpiWebhook{ID: f.newID("wh_"), URL: url, Events: events, Status: "active", AuthType: "bearer",
		Bearer: randomSecret("whb_"), CreatedAt: time.Now().UTC()}
	f.webhooks.add(wh)
	return wh.ID
}
