// Package authpifake is an in-memory imitation of AuthPI's management API, for tests, demos and
// benchmarks: the same routes, limits, error shapes and semantics as the real service, with
// recording and failure injection from internal/fakeidp. Its webhooks are signed and shaped as the
// IdP's.
package authpifake

import (
	"cmp"
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

	"github.com/idpsync/idpsync/internal/fakeidp"
	"github.com/idpsync/idpsync/internal/provider/authpi"
)

// MaxLimit is the largest page AuthPI serves; larger limits are rejected with 400.
const (
	MaxLimit     = 100
	DefaultLimit = 50
)

const base36 = "0123456789abcdefghijklmnopqrstuvwxyz"

// Options configures an AuthPI fake.
type Options struct {
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

// User is a user held by the AuthPI fake.
type User struct {
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

// Organization is an organization held by the AuthPI fake.
type Organization struct {
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

// Fake is an in-memory imitation of AuthPI's Core API (API key over Basic, access tokens,
// account resolution, cursor pagination, webhooks) that delivers CloudEvents webhooks with bearer
// or HMAC authentication.
type Fake struct {
	*fakeidp.Core
	keyID, keySecret, account string
	seed                      uint64
	seq                       atomic.Int64

	mu          sync.RWMutex
	tokens      map[string]bool
	issuers     *fakeidp.Table[authpiIssuer]
	users       map[string]*fakeidp.Table[User]         // by issuer
	orgs        map[string]*fakeidp.Table[Organization] // by issuer
	members     map[string]map[string]string            // org id → user id → role
	webhooks    *fakeidp.Table[authpiWebhook]
	idempotency map[string][]byte
	subscribed  []string // event filter of the API-registered target, nil = all
	delivering  string   // the API-registered webhook deliveries go to, "" when none
}

// New returns an AuthPI fake holding the generated data set of opts.
func New(opts Options) *Fake {
	f := &Fake{
		keyID:       cmp.Or(opts.KeyID, "key_fakeidp"),
		keySecret:   cmp.Or(opts.KeySecret, "fakeidp-key-secret"),
		account:     cmp.Or(opts.AccountID, "acc_fakeidp"),
		seed:        opts.Seed,
		tokens:      map[string]bool{},
		issuers:     fakeidp.NewTable(func(i *authpiIssuer) string { return i.ID }, max(opts.Issuers, 1)),
		users:       map[string]*fakeidp.Table[User]{},
		orgs:        map[string]*fakeidp.Table[Organization]{},
		members:     map[string]map[string]string{},
		webhooks:    fakeidp.NewTable(func(w *authpiWebhook) string { return w.ID }, 0),
		idempotency: map[string][]byte{},
	}
	f.Core = fakeidp.NewCore("authpi", authpiErrorBody, authpiSign)
	f.seq.Store(int64(opts.Users + opts.Organizations + 10))
	for i := range max(opts.Issuers, 1) {
		iss := &authpiIssuer{ID: fakeidp.SortableID("i_", base36, 25, opts.Seed^0x15, i), Name: fmt.Sprintf("issuer-%d", i), CreatedAt: fakeidp.Epoch}
		f.issuers.Add(iss)
		f.users[iss.ID] = fakeidp.NewTable(func(u *User) string { return u.ID }, 0)
		f.orgs[iss.ID] = fakeidp.NewTable(func(o *Organization) string { return o.ID }, 0)
	}
	iss := f.issuers.Rows[0].ID
	users := f.users[iss]
	for i := range opts.Users {
		p := fakeidp.NewPerson(opts.Seed, i)
		users.Add(&User{ID: fakeidp.SortableID("usr_", base36, 25, opts.Seed, i), IssuerID: iss, Username: p.Username,
			Email: p.Email, DisplayName: p.First + " " + p.Last, Status: "active", CreatedAt: p.Created, UpdatedAt: p.Created})
	}
	for i := range opts.Organizations {
		name, slug := fakeidp.OrgName(i)
		at := fakeidp.Epoch.Add(time.Duration(i) * time.Hour)
		o := &Organization{ID: fakeidp.SortableID("org_", base36, 25, opts.Seed^0x0f, i), IssuerID: iss, Name: name, Slug: slug,
			Status: "active", CreatedAt: at, UpdatedAt: at}
		f.orgs[iss].Add(o)
		f.members[o.ID] = map[string]string{}
	}
	return f
}

// Start serves the fake on a loopback port and returns its API root.
func (f *Fake) Start() string { return f.Serve(f.Handler()) }

// APIKey returns the key id and secret the fake accepts.
func (f *Fake) APIKey() (id, secret string) { return f.keyID, f.keySecret }

// AccountID returns the account of the fake's key.
func (f *Fake) AccountID() string { return f.account }

// IssuerIDs returns the issuers' ids.
func (f *Fake) IssuerIDs() []string {
	f.mu.RLock()
	defer f.mu.RUnlock()
	out := make([]string, f.issuers.Len())
	for i, iss := range f.issuers.Rows {
		out[i] = iss.ID
	}
	return out
}

// IssueAccessToken returns a new access token the fake accepts as a bearer token.
func (f *Fake) IssueAccessToken() string {
	b := make([]byte, 18)
	_, _ = rand.Read(b)
	tok := "eyJfake." + hex.EncodeToString(b)
	f.mu.Lock()
	f.tokens[tok] = true
	f.mu.Unlock()
	return tok
}

// ExpireAccessTokens makes every access token issued so far answer 401 session_expired.
func (f *Fake) ExpireAccessTokens() {
	f.mu.Lock()
	clear(f.tokens)
	f.mu.Unlock()
}

func (f *Fake) newID(prefix string) string {
	return fakeidp.SortableID(prefix, base36, 25, f.seed^0x5eed, int(f.seq.Add(1)))
}

// ---- Go-side data access and mutation -------------------------------------------------------

// UserIDs returns the ids of an issuer's users in creation order ("" = the first issuer).
func (f *Fake) UserIDs(issuerID string) []string {
	f.mu.RLock()
	defer f.mu.RUnlock()
	t := f.users[f.issuerOr(issuerID)]
	if t == nil {
		return nil
	}
	ids := make([]string, t.Len())
	for i, u := range t.Rows {
		ids[i] = u.ID
	}
	return ids
}

func (f *Fake) issuerOr(id string) string {
	if id == "" && f.issuers.Len() > 0 {
		return f.issuers.Rows[0].ID
	}
	return id
}

// User returns a copy of a user of the first issuer or of u.IssuerID.
func (f *Fake) User(issuerID, id string) (User, bool) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	t := f.users[f.issuerOr(issuerID)]
	if t == nil {
		return User{}, false
	}
	u, ok := t.Get(id)
	if !ok {
		return User{}, false
	}
	return *u, true
}

// CreateUser adds a user (to the first issuer when IssuerID is empty) and emits user.created.
func (f *Fake) CreateUser(u User) (User, error) {
	now := time.Now().UTC()
	f.mu.Lock()
	u.IssuerID = f.issuerOr(u.IssuerID)
	t := f.users[u.IssuerID]
	if t == nil {
		f.mu.Unlock()
		return User{}, fmt.Errorf("authpi fake: no issuer %q", u.IssuerID)
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
	t.Add(&u)
	f.mu.Unlock()
	f.emit("user.created", map[string]string{"user_id": u.ID, "issuer_id": u.IssuerID}, authpiUserWire(&u, true))
	return u, nil
}

// UpdateUser applies change to a user and emits user.updated (user.suspended when the status
// became suspended).
func (f *Fake) UpdateUser(issuerID, id string, change func(*User)) (User, error) {
	f.mu.Lock()
	t := f.users[f.issuerOr(issuerID)]
	var u *User
	if t != nil {
		u, _ = t.Get(id)
	}
	if u == nil {
		f.mu.Unlock()
		return User{}, fmt.Errorf("authpi fake: no user %q", id)
	}
	before := u.Status
	change(u)
	u.ID, u.UpdatedAt = id, fakeidp.LaterTime(u.UpdatedAt)
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
func (f *Fake) DeleteUser(issuerID, id string) error {
	f.mu.Lock()
	t := f.users[f.issuerOr(issuerID)]
	var u *User
	if t != nil {
		u, _ = t.Remove(id)
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
	u.Status, u.UpdatedAt = "deleted", fakeidp.LaterTime(u.UpdatedAt)
	f.emit("user.deleted", map[string]string{"user_id": u.ID, "issuer_id": u.IssuerID}, authpiUserWire(u, true))
	return nil
}

// CreateOrganization adds an organization and emits organization.created.
func (f *Fake) CreateOrganization(o Organization) (Organization, error) {
	now := time.Now().UTC()
	f.mu.Lock()
	o.IssuerID = f.issuerOr(o.IssuerID)
	t := f.orgs[o.IssuerID]
	if t == nil {
		f.mu.Unlock()
		return Organization{}, fmt.Errorf("authpi fake: no issuer %q", o.IssuerID)
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
	t.Add(&o)
	f.members[o.ID] = map[string]string{}
	f.mu.Unlock()
	f.emit("organization.created", map[string]string{"organization_id": o.ID, "issuer_id": o.IssuerID}, authpiOrgWire(&o))
	return o, nil
}

// UpdateOrganization applies change and emits organization.updated (organization.suspended
// when the status became suspended).
func (f *Fake) UpdateOrganization(issuerID, id string, change func(*Organization)) (Organization, error) {
	f.mu.Lock()
	t := f.orgs[f.issuerOr(issuerID)]
	var o *Organization
	if t != nil {
		o, _ = t.Get(id)
	}
	if o == nil {
		f.mu.Unlock()
		return Organization{}, fmt.Errorf("authpi fake: no organization %q", id)
	}
	before := o.Status
	change(o)
	o.ID, o.UpdatedAt = id, fakeidp.LaterTime(o.UpdatedAt)
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
func (f *Fake) DeleteOrganization(issuerID, id string) error {
	f.mu.Lock()
	t := f.orgs[f.issuerOr(issuerID)]
	var o *Organization
	if t != nil {
		o, _ = t.Remove(id)
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
func (f *Fake) AddMember(orgID, userID, role string) error {
	f.mu.Lock()
	m := f.members[orgID]
	if m == nil {
		f.mu.Unlock()
		return fmt.Errorf("authpi fake: no organization %q", orgID)
	}
	m[userID] = cmp.Or(role, "member")
	f.mu.Unlock()
	f.emit("organization.member.added", map[string]string{"organization_id": orgID, "user_id": userID},
		map[string]any{"organization_id": orgID, "user_id": userID, "role": cmp.Or(role, "member")})
	return nil
}

// RemoveMember removes a user from an organization and emits organization.member.removed.
func (f *Fake) RemoveMember(orgID, userID string) error {
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

func authpiUserWire(u *User, detailed bool) map[string]any {
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

func authpiOrgWire(o *Organization) map[string]any {
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
	return authpiErrorJSON(cmp.Or(code, "server_error"), msg, nil)
}

func authpiErrorJSON(code, desc string, fields []map[string]string) (string, []byte) {
	body := map[string]any{"error": code, "error_description": desc, "request_id": "req_" + fakeidp.TraceID()[:20]}
	if fields != nil {
		body["fields"] = fields
	}
	b, _ := json.Marshal(body)
	return "application/json", b
}

// ---- HTTP --------------------------------------------------------------------------------

// Handler returns the fake's HTTP handler, with recording and failure injection.
func (f *Fake) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/me", func(w http.ResponseWriter, _ *http.Request) {
		fakeidp.WriteJSON(w, http.StatusOK, map[string]any{"object": "api_key", "key_id": f.keyID, "account_id": f.account})
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
	return f.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
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

func (f *Fake) authenticate(r *http.Request) (code, desc string) {
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

func (f *Fake) fail(w http.ResponseWriter, status int, code, desc string, fields []map[string]string) {
	ct, body := authpiErrorJSON(code, desc, fields)
	w.Header().Set("Content-Type", ct)
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// paging reads limit (1–100, default 50) and cursor.
func (f *Fake) paging(w http.ResponseWriter, r *http.Request) (int, string, bool) {
	limit := DefaultLimit
	if v := r.URL.Query().Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > MaxLimit {
			f.fail(w, http.StatusBadRequest, "invalid_request", "The request parameters are invalid.",
				[]map[string]string{{"field": "limit", "code": "out_of_range", "message": fmt.Sprintf("must be between 1 and %d", MaxLimit)}})
			return 0, "", false
		}
		limit = n
	}
	return limit, r.URL.Query().Get("cursor"), true
}

// cursorPage returns up to limit rows after the row with id cursor, whether more follow, and
// false when the cursor is unknown.
func cursorPage[T any](t *fakeidp.Table[T], cursor string, limit int, keep func(*T) bool) ([]*T, bool, bool) {
	start := 0
	if cursor != "" {
		i, ok := t.Pos(cursor)
		if !ok {
			return nil, false, false
		}
		start = i + 1
	}
	var out []*T
	for i := start; i < len(t.Rows); i++ {
		if keep != nil && !keep(t.Rows[i]) {
			continue
		}
		if len(out) == limit {
			return out, true, true
		}
		out = append(out, t.Rows[i])
	}
	return out, false, true
}

func (f *Fake) writePage(w http.ResponseWriter, data []map[string]any, more bool, last string) {
	if data == nil {
		data = []map[string]any{}
	}
	var next any
	if more {
		next = last
	}
	fakeidp.WriteJSON(w, http.StatusOK, map[string]any{"object": "list", "data": data, "has_more": more, "next_cursor": next})
}

func (f *Fake) listIssuers(w http.ResponseWriter, r *http.Request) {
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

func (f *Fake) listUsers(w http.ResponseWriter, r *http.Request) {
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
	var keep func(*User) bool
	if status != "" {
		keep = func(u *User) bool { return u.Status == status }
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

func (f *Fake) getUser(w http.ResponseWriter, r *http.Request) {
	u, ok := f.User(r.PathValue("iss"), r.PathValue("id"))
	if !ok {
		f.fail(w, http.StatusNotFound, "not_found", "User not found.", nil)
		return
	}
	fakeidp.WriteJSON(w, http.StatusOK, authpiUserWire(&u, true))
}

func (f *Fake) listOrgs(w http.ResponseWriter, r *http.Request) {
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
	var keep func(*Organization) bool
	if status != "" {
		keep = func(o *Organization) bool { return o.Status == status }
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

func (f *Fake) createWebhook(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Name   string   `json:"name"`
		URL    string   `json:"url"`
		Events []string `json:"events"`
		Auth   struct {
			Type               string `json:"type"`
			SignatureAlgorithm string `json:"signature_algorithm"`
		} `json:"auth"`
	}
	body, err := fakeidp.ReadBody(r)
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
	authType := cmp.Or(req.Auth.Type, "bearer")
	if !slices.Contains([]string{"none", "bearer", "signature", "bearer+signature"}, authType) {
		fields = append(fields, map[string]string{"field": "auth.type", "code": "invalid", "message": "must be none, bearer, signature or bearer+signature"})
	}
	if alg := req.Auth.SignatureAlgorithm; alg != "" && alg != "hmac-sha256" {
		fields = append(fields, map[string]string{"field": "auth.signature_algorithm", "code": "invalid", "message": "must be hmac-sha256"})
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
	f.webhooks.Add(wh)
	out, _ := json.Marshal(authpiWebhookWire(wh, true))
	if key != "" {
		f.idempotency[key] = out
	}
	f.subscribed, f.delivering = wh.Events, wh.ID
	f.mu.Unlock()
	// Deliveries go to the registered webhook from now on, authenticated as it asked.
	t := fakeidp.WebhookTarget{URL: wh.URL, Scheme: authType, Secret: wh.Bearer, SignatureSecret: wh.Signing}
	if authType == "signature" {
		t.Secret = wh.Signing
	}
	f.SetWebhookTarget(t)
	f.RecordMutation("webhook.create", wh.ID, body)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusCreated)
	_, _ = w.Write(out)
}

func (f *Fake) listWebhooks(w http.ResponseWriter, r *http.Request) {
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

func (f *Fake) deleteWebhook(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	f.mu.Lock()
	_, ok := f.webhooks.Remove(id)
	stop := ok && f.delivering == id
	if stop {
		f.subscribed, f.delivering = nil, ""
	}
	f.mu.Unlock()
	if !ok {
		f.fail(w, http.StatusNotFound, "not_found", "Webhook not found.", nil)
		return
	}
	if stop {
		// A deleted webhook receives nothing more.
		f.SetWebhookTarget(fakeidp.WebhookTarget{})
	}
	f.RecordMutation("webhook.delete", id, nil)
	w.WriteHeader(http.StatusNoContent)
}

// ---- webhooks ----------------------------------------------------------------------------

func (f *Fake) emit(eventType string, subject map[string]string, data any) {
	if !f.WebhooksEnabled() {
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
		f.Enqueue(ev)
	}
}

// event wraps data in AuthPI's CloudEvents 1.0 envelope: the business type is data.type, the ids
// are in data.subject, the outer type is the constant "event".
func (f *Fake) event(eventType string, subject map[string]string, data any) (fakeidp.Event, error) {
	f.mu.RLock()
	whID := "wh_fakeidp"
	if f.webhooks.Len() > 0 {
		whID = f.webhooks.Rows[f.webhooks.Len()-1].ID
	}
	f.mu.RUnlock()
	evtID := fakeidp.SortableID("evt_", base36, 25, f.DeliverySeed(), int(f.seq.Add(1)))
	body, err := json.Marshal(map[string]any{
		"id": fakeidp.UUID(f.DeliverySeed(), "cloudevent", int(f.seq.Add(1))), "specversion": "1.0",
		"source": "com.authpi.webhooks/v1/" + whID, "type": "event", "datacontenttype": "application/json",
		"time": time.Now().UTC().Format(time.RFC3339),
		"data": map[string]any{"id": evtID, "type": eventType, "trace": fakeidp.TraceID()[:16], "source": "com.authpi/v1",
			"subject": subject, "data": data},
	})
	if err != nil {
		return fakeidp.Event{}, err
	}
	return fakeidp.Event{ID: evtID, Type: eventType, Body: body}, nil
}

// authpiSign authenticates a delivery as the target's Scheme says: bearer token, HMAC signature
// (X-Webhook-Signature), or both.
func authpiSign(t fakeidp.WebhookTarget, ev fakeidp.Event, _ time.Time) (http.Header, error) {
	h := http.Header{}
	switch cmp.Or(t.Scheme, "bearer") {
	case "none":
	case "bearer":
		h.Set("Authorization", "Bearer "+t.Secret)
	case "signature":
		h.Set(authpi.HMACSignatureHeader, authpi.SignHMAC(t.Secret, ev.Body))
	case "bearer+signature":
		if t.SignatureSecret == "" {
			return nil, errors.New("authpi fake: bearer+signature needs SignatureSecret")
		}
		h.Set("Authorization", "Bearer "+t.Secret)
		h.Set(authpi.HMACSignatureHeader, authpi.SignHMAC(t.SignatureSecret, ev.Body))
	default:
		return nil, fmt.Errorf("authpi fake: unknown webhook scheme %q", t.Scheme)
	}
	return h, nil
}

// SampleEvent returns one event of eventType built from the fake's first user or organization.
// Supported: user.created|updated|suspended|deleted, organization.created|updated|suspended|deleted.
func (f *Fake) SampleEvent(eventType string) (fakeidp.Event, error) {
	f.mu.RLock()
	iss := f.issuers.Rows[0].ID
	var u *User
	var o *Organization
	if t := f.users[iss]; t.Len() > 0 {
		c := *t.Rows[0]
		u = &c
	}
	if t := f.orgs[iss]; t.Len() > 0 {
		c := *t.Rows[0]
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
	return fakeidp.Event{}, fmt.Errorf("authpi fake: unsupported sample event type %q (or no data to build it from)", eventType)
}

// SignEvent returns the headers AuthPI would send with ev for target.
func (f *Fake) SignEvent(t fakeidp.WebhookTarget, ev fakeidp.Event, at time.Time) (http.Header, error) {
	return authpiSign(t, ev, at)
}

// CreateWebhook registers a webhook from Go (as if created in AuthPI's console) without sending
// deliveries to it, and returns its id.
func (f *Fake) CreateWebhook(url string, events []string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	wh := &authpiWebhook{ID: f.newID("wh_"), URL: url, Events: events, Status: "active", AuthType: "bearer",
		Bearer: randomSecret("whb_"), CreatedAt: time.Now().UTC()}
	f.webhooks.Add(wh)
	return wh.ID
}

// Webhook is a webhook registered at the AuthPI fake, with the secrets it authenticates its
// deliveries with.
type Webhook struct {
	ID, Name, URL, Status string
	Events                []string
	// AuthType is none, bearer, signature or bearer+signature.
	AuthType string
	// BearerToken and SignatureSecret are what AuthPI showed once when the webhook was created.
	BearerToken, SignatureSecret string
	CreatedAt                    time.Time
}

// Webhooks returns copies of the account's webhooks, oldest first.
func (f *Fake) Webhooks() []Webhook {
	f.mu.RLock()
	defer f.mu.RUnlock()
	out := make([]Webhook, 0, f.webhooks.Len())
	for _, w := range f.webhooks.Rows {
		out = append(out, Webhook{ID: w.ID, Name: w.Name, URL: w.URL, Status: w.Status, Events: slices.Clone(w.Events),
			AuthType: w.AuthType, BearerToken: w.Bearer, SignatureSecret: w.Signing, CreatedAt: w.CreatedAt})
	}
	return out
}
