// Package clerkfake is an in-memory imitation of Clerk's management API, for tests, demos and
// benchmarks: the same routes, limits, error shapes and semantics as the real service, with
// recording and failure injection from internal/fakeidp. Its webhooks are signed and shaped as the
// IdP's.
package clerkfake

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/idpsync/idpsync/internal/fakeidp"
	"github.com/idpsync/idpsync/internal/provider/clerk"
)

// MaxLimit is the largest page Clerk's Backend API serves; larger limits are rejected with 422.
const MaxLimit = 500

// Options configures a Clerk fake.
type Options struct {
	// SecretKey is the only key the fake accepts. Defaults to "sk_test_fakeidp".
	SecretKey string
	// InstanceID goes into webhook envelopes. Defaults to "ins_fakeidp".
	InstanceID string
	// Seed makes the generated data reproducible. Any value; the same seed gives the same ids.
	Seed uint64
	// Users is the number of users to generate.
	Users int
	// Organizations is the number of organizations to generate.
	Organizations int
	// MembersPerOrganization is how many users (taken in turn) join each organization.
	MembersPerOrganization int
	// SessionsPerUser is how many active sessions each generated user has.
	SessionsPerUser int
	// SvixApp gives the instance a Svix app from the start (an instance whose webhooks page was
	// opened in Clerk's dashboard has one).
	SvixApp bool
}

// User is a user held by the Clerk fake.
type User struct {
	ID             string
	ExternalID     string
	FirstName      string
	LastName       string
	Username       string
	Email          string
	Banned         bool
	Locked         bool
	PublicMetadata map[string]any
	CreatedAt      time.Time
	UpdatedAt      time.Time
}

// Organization is an organization held by the Clerk fake.
type Organization struct {
	ID        string
	Name      string
	Slug      string
	CreatedBy string
	CreatedAt time.Time
	UpdatedAt time.Time
}

// Membership is an organization membership held by the Clerk fake.
type Membership struct {
	ID             string
	OrganizationID string
	UserID         string
	Role           string
	CreatedAt      time.Time
	UpdatedAt      time.Time
}

// Session is a session held by the Clerk fake.
type Session struct {
	ID        string
	UserID    string
	ClientID  string
	Status    string
	CreatedAt time.Time
	UpdatedAt time.Time
}

// Fake is an in-memory imitation of Clerk's Backend API under /v1, with Clerk's limits, error
// bodies and Svix-signed webhooks.
type Fake struct {
	*fakeidp.Core
	secret     string
	instanceID string
	seed       uint64
	seq        atomic.Int64

	mu          sync.RWMutex
	users       *fakeidp.Table[User]
	orgs        *fakeidp.Table[Organization]
	memberships map[string]*fakeidp.Table[Membership] // by organization id, keyed by user id
	sessions    *fakeidp.Table[Session]
	byUser      map[string][]string // session ids by user id

	svixApp       bool     // the instance has a Svix app (svix.go)
	svixLinks     []string // the dashboard links made, oldest first
	svixEndpoints []string // the endpoint URLs added in the dashboard
}

// New returns a Clerk fake holding the generated data set of opts.
func New(opts Options) *Fake {
	f := &Fake{
		secret:      cmp.Or(opts.SecretKey, "sk_test_fakeidp"),
		instanceID:  cmp.Or(opts.InstanceID, "ins_fakeidp"),
		seed:        opts.Seed,
		users:       fakeidp.NewTable(func(u *User) string { return u.ID }, opts.Users),
		orgs:        fakeidp.NewTable(func(o *Organization) string { return o.ID }, opts.Organizations),
		memberships: map[string]*fakeidp.Table[Membership]{},
		sessions:    fakeidp.NewTable(func(s *Session) string { return s.ID }, opts.Users*opts.SessionsPerUser),
		byUser:      map[string][]string{},
		svixApp:     opts.SvixApp,
	}
	f.Core = fakeidp.NewCore("clerk", clerkErrorBody, f.sign)
	f.seq.Store(int64(opts.Users + opts.Organizations + 1))
	for i := range opts.Users {
		p := fakeidp.NewPerson(opts.Seed, i)
		f.users.Add(&User{
			ID: fakeidp.SortableID("user_", fakeidp.Base62, 27, opts.Seed, i), FirstName: p.First, LastName: p.Last,
			Username: p.Username, Email: p.Email, CreatedAt: p.Created, UpdatedAt: p.Created,
		})
		for s := range opts.SessionsPerUser {
			n := i*opts.SessionsPerUser + s
			sess := &Session{ID: fakeidp.SortableID("sess_", fakeidp.Base62, 27, opts.Seed, n), UserID: f.users.Rows[i].ID,
				ClientID: fakeidp.SortableID("client_", fakeidp.Base62, 27, opts.Seed, n), Status: "active", CreatedAt: p.Created, UpdatedAt: p.Created}
			f.sessions.Add(sess)
			f.byUser[sess.UserID] = append(f.byUser[sess.UserID], sess.ID)
		}
	}
	for i := range opts.Organizations {
		name, slug := fakeidp.OrgName(i)
		at := fakeidp.Epoch.Add(time.Duration(i) * time.Hour)
		o := &Organization{ID: fakeidp.SortableID("org_", fakeidp.Base62, 27, opts.Seed^0x0f, i), Name: name, Slug: slug, CreatedAt: at, UpdatedAt: at}
		f.orgs.Add(o)
		mt := fakeidp.NewTable(func(m *Membership) string { return m.UserID }, opts.MembersPerOrganization)
		for k := range min(opts.MembersPerOrganization, opts.Users) {
			u := f.users.Rows[(i*opts.MembersPerOrganization+k)%opts.Users]
			role := "org:member"
			if k == 0 {
				role = "org:admin"
				o.CreatedBy = u.ID
			}
			mt.Add(&Membership{ID: fakeidp.SortableID("orgmem_", fakeidp.Base62, 27, opts.Seed^0xf0, i*opts.MembersPerOrganization+k),
				OrganizationID: o.ID, UserID: u.ID, Role: role, CreatedAt: at, UpdatedAt: at})
		}
		f.memberships[o.ID] = mt
	}
	return f
}

// Start serves the fake on a loopback port and returns its API root (".../v1").
func (f *Fake) Start() string { return f.Serve(f.Handler()) + "/v1" }

// BaseURL returns the API root of the running fake (".../v1").
func (f *Fake) BaseURL() string { return f.URL() + "/v1" }

// SecretKey returns the key the fake accepts.
func (f *Fake) SecretKey() string { return f.secret }

func (f *Fake) newID(prefix string) string {
	return fakeidp.SortableID(prefix, fakeidp.Base62, 27, f.seed^0x5eed, int(f.seq.Add(1)))
}

// ---- Go-side data access and mutation -------------------------------------------------------

// UserIDs returns the ids of all users in creation order.
func (f *Fake) UserIDs() []string {
	f.mu.RLock()
	defer f.mu.RUnlock()
	ids := make([]string, len(f.users.Rows))
	for i, u := range f.users.Rows {
		ids[i] = u.ID
	}
	return ids
}

// User returns a copy of one user.
func (f *Fake) User(id string) (User, bool) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	u, ok := f.users.Get(id)
	if !ok {
		return User{}, false
	}
	return *u, true
}

// CreateUser adds u (an empty ID or time is filled in) and emits user.created.
func (f *Fake) CreateUser(u User) User {
	out, _ := f.addUser(u, false)
	return out
}

// addUser fills in u's id and times, adds it and emits user.created. With unique, as Clerk's API
// does, it refuses an email address or username another user has, and returns the parameter that
// names it.
func (f *Fake) addUser(u User, unique bool) (User, string) {
	now := time.Now().UTC().Truncate(time.Millisecond)
	if u.ID == "" {
		u.ID = f.newID("user_")
	}
	if u.CreatedAt.IsZero() {
		u.CreatedAt = now
	}
	if u.UpdatedAt.IsZero() {
		u.UpdatedAt = u.CreatedAt
	}
	f.mu.Lock()
	if unique {
		for _, other := range f.users.Rows {
			switch {
			case u.Email != "" && strings.EqualFold(other.Email, u.Email):
				f.mu.Unlock()
				return User{}, "email_address"
			case u.Username != "" && strings.EqualFold(other.Username, u.Username):
				f.mu.Unlock()
				return User{}, "username"
			}
		}
	}
	f.users.Add(&u)
	f.mu.Unlock()
	f.emit("user.created", clerkUserWire(&u))
	return u, ""
}

// UpdateUser applies change to a user, bumps its updated_at and emits user.updated.
func (f *Fake) UpdateUser(id string, change func(*User)) (User, error) {
	f.mu.Lock()
	u, ok := f.users.Get(id)
	if !ok {
		f.mu.Unlock()
		return User{}, fmt.Errorf("clerk fake: no user %q", id)
	}
	change(u)
	u.ID = id
	u.UpdatedAt = laterMillis(u.UpdatedAt)
	out := *u
	f.mu.Unlock()
	f.emit("user.updated", clerkUserWire(&out))
	return out, nil
}

// DeleteUser removes a user with their memberships and sessions, and emits user.deleted.
func (f *Fake) DeleteUser(id string) error {
	f.mu.Lock()
	u, ok := f.users.Remove(id)
	if ok {
		for _, mt := range f.memberships {
			mt.Remove(id)
		}
		for _, sid := range f.byUser[id] {
			f.sessions.Remove(sid)
		}
		delete(f.byUser, id)
	}
	f.mu.Unlock()
	if !ok {
		return fmt.Errorf("clerk fake: no user %q", id)
	}
	f.emit("user.deleted", clerkDeleted("user", u.ID, ""))
	return nil
}

// OrganizationIDs returns the ids of all organizations in creation order.
func (f *Fake) OrganizationIDs() []string {
	f.mu.RLock()
	defer f.mu.RUnlock()
	ids := make([]string, len(f.orgs.Rows))
	for i, o := range f.orgs.Rows {
		ids[i] = o.ID
	}
	return ids
}

// Organization returns a copy of one organization.
func (f *Fake) Organization(id string) (Organization, bool) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	o, ok := f.orgs.Get(id)
	if !ok {
		return Organization{}, false
	}
	return *o, true
}

// CreateOrganization adds o and emits organization.created.
func (f *Fake) CreateOrganization(o Organization) Organization {
	now := time.Now().UTC().Truncate(time.Millisecond)
	if o.ID == "" {
		o.ID = f.newID("org_")
	}
	if o.Slug == "" {
		o.Slug = strings.ToLower(strings.ReplaceAll(o.Name, " ", "-"))
	}
	if o.CreatedAt.IsZero() {
		o.CreatedAt = now
	}
	if o.UpdatedAt.IsZero() {
		o.UpdatedAt = o.CreatedAt
	}
	f.mu.Lock()
	f.orgs.Add(&o)
	f.memberships[o.ID] = fakeidp.NewTable(func(m *Membership) string { return m.UserID }, 0)
	wire := f.orgWire(&o)
	f.mu.Unlock()
	f.emit("organization.created", wire)
	return o
}

// UpdateOrganization applies change to an organization and emits organization.updated.
func (f *Fake) UpdateOrganization(id string, change func(*Organization)) (Organization, error) {
	f.mu.Lock()
	o, ok := f.orgs.Get(id)
	if !ok {
		f.mu.Unlock()
		return Organization{}, fmt.Errorf("clerk fake: no organization %q", id)
	}
	change(o)
	o.ID = id
	o.UpdatedAt = laterMillis(o.UpdatedAt)
	out := *o
	wire := f.orgWire(o)
	f.mu.Unlock()
	f.emit("organization.updated", wire)
	return out, nil
}

// DeleteOrganization removes an organization and its memberships and emits organization.deleted.
func (f *Fake) DeleteOrganization(id string) error {
	f.mu.Lock()
	o, ok := f.orgs.Remove(id)
	delete(f.memberships, id)
	f.mu.Unlock()
	if !ok {
		return fmt.Errorf("clerk fake: no organization %q", id)
	}
	f.emit("organization.deleted", clerkDeleted("organization", o.ID, o.Slug))
	return nil
}

// Memberships returns copies of an organization's memberships.
func (f *Fake) Memberships(orgID string) []Membership {
	f.mu.RLock()
	defer f.mu.RUnlock()
	mt := f.memberships[orgID]
	if mt == nil {
		return nil
	}
	out := make([]Membership, len(mt.Rows))
	for i, m := range mt.Rows {
		out[i] = *m
	}
	return out
}

// AddMembership makes a user a member of an organization and emits organizationMembership.created.
func (f *Fake) AddMembership(orgID, userID, role string) (Membership, error) {
	now := time.Now().UTC().Truncate(time.Millisecond)
	f.mu.Lock()
	mt, okOrg := f.memberships[orgID]
	_, okUser := f.users.Get(userID)
	if !okOrg || !okUser {
		f.mu.Unlock()
		return Membership{}, fmt.Errorf("clerk fake: no organization %q or user %q", orgID, userID)
	}
	if _, dup := mt.Get(userID); dup {
		f.mu.Unlock()
		return Membership{}, fmt.Errorf("clerk fake: user %q is already a member of %q", userID, orgID)
	}
	m := &Membership{ID: f.newID("orgmem_"), OrganizationID: orgID, UserID: userID, Role: cmp.Or(role, "org:member"), CreatedAt: now, UpdatedAt: now}
	mt.Add(m)
	wire := f.membershipWire(m)
	out := *m
	f.mu.Unlock()
	f.emit("organizationMembership.created", wire)
	return out, nil
}

// UpdateMembership changes a member's role and emits organizationMembership.updated.
func (f *Fake) UpdateMembership(orgID, userID, role string) (Membership, error) {
	f.mu.Lock()
	var m *Membership
	if mt := f.memberships[orgID]; mt != nil {
		m, _ = mt.Get(userID)
	}
	if m == nil {
		f.mu.Unlock()
		return Membership{}, fmt.Errorf("clerk fake: user %q is not a member of %q", userID, orgID)
	}
	m.Role = role
	m.UpdatedAt = laterMillis(m.UpdatedAt)
	wire := f.membershipWire(m)
	out := *m
	f.mu.Unlock()
	f.emit("organizationMembership.updated", wire)
	return out, nil
}

// RemoveMembership removes a member and emits organizationMembership.deleted (whose data is the
// full membership, as Clerk sends it).
func (f *Fake) RemoveMembership(orgID, userID string) error {
	f.mu.Lock()
	var m *Membership
	if mt := f.memberships[orgID]; mt != nil {
		m, _ = mt.Remove(userID)
	}
	if m == nil {
		f.mu.Unlock()
		return fmt.Errorf("clerk fake: user %q is not a member of %q", userID, orgID)
	}
	wire := f.membershipWire(m)
	f.mu.Unlock()
	f.emit("organizationMembership.deleted", wire)
	return nil
}

// Session returns a copy of one session.
func (f *Fake) Session(id string) (Session, bool) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	s, ok := f.sessions.Get(id)
	if !ok {
		return Session{}, false
	}
	return *s, true
}

// SessionsOf returns copies of a user's sessions, oldest first.
func (f *Fake) SessionsOf(userID string) []Session {
	f.mu.RLock()
	defer f.mu.RUnlock()
	var out []Session
	for _, id := range f.byUser[userID] {
		if s, ok := f.sessions.Get(id); ok {
			out = append(out, *s)
		}
	}
	return out
}

// CreateSession starts an active session for a user and emits session.created.
func (f *Fake) CreateSession(userID string) (Session, error) {
	now := time.Now().UTC().Truncate(time.Millisecond)
	f.mu.Lock()
	u, ok := f.users.Get(userID)
	if !ok {
		f.mu.Unlock()
		return Session{}, fmt.Errorf("clerk fake: no user %q", userID)
	}
	s := &Session{ID: f.newID("sess_"), UserID: userID, ClientID: f.newID("client_"), Status: "active", CreatedAt: now, UpdatedAt: now}
	f.sessions.Add(s)
	f.byUser[userID] = append(f.byUser[userID], s.ID)
	wire := clerkSessionEventWire(s, u)
	out := *s
	f.mu.Unlock()
	f.emit("session.created", wire)
	return out, nil
}

// RevokeSession sets a session's status to revoked and emits session.revoked.
func (f *Fake) RevokeSession(id string) (Session, error) {
	f.mu.Lock()
	out, wire, err := f.revokeSessionLocked(id)
	f.mu.Unlock()
	if err != nil {
		return Session{}, err
	}
	f.emit("session.revoked", wire)
	return out, nil
}

func (f *Fake) revokeSessionLocked(id string) (Session, any, error) {
	s, ok := f.sessions.Get(id)
	if !ok {
		return Session{}, nil, fmt.Errorf("clerk fake: no session %q", id)
	}
	s.Status = "revoked"
	s.UpdatedAt = laterMillis(s.UpdatedAt)
	u, _ := f.users.Get(s.UserID)
	return *s, clerkSessionEventWire(s, u), nil
}

// ---- wire shapes --------------------------------------------------------------------------

func ms(t time.Time) int64 { return t.UnixMilli() }

func laterMillis(prev time.Time) time.Time {
	now := time.Now().UTC().Truncate(time.Millisecond)
	if !now.After(prev) {
		return prev.Add(time.Millisecond)
	}
	return now
}

func nullStr(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// clerkUserWire renders a user as BAPI's User schema (the field order of Clerk's own examples).
func clerkUserWire(u *User) map[string]any {
	emailID := "idn_" + strings.TrimPrefix(u.ID, "user_")
	emails := []any{}
	var primary *string
	if u.Email != "" {
		primary = &emailID
		emails = append(emails, map[string]any{
			"id": emailID, "object": "email_address", "email_address": u.Email, "reserved": false,
			"verification": map[string]any{"status": "verified", "strategy": "email_code", "attempts": nil, "expire_at": nil},
			"linked_to":    []any{}, "created_at": ms(u.CreatedAt), "updated_at": ms(u.UpdatedAt),
		})
	}
	meta := u.PublicMetadata
	if meta == nil {
		meta = map[string]any{}
	}
	var lockout any
	if u.Locked {
		lockout = 1800
	}
	return map[string]any{
		"object": "user", "id": u.ID, "external_id": nullStr(u.ExternalID),
		"primary_email_address_id": primary, "primary_phone_number_id": nil, "primary_web3_wallet_id": nil,
		"username": nullStr(u.Username), "first_name": nullStr(u.FirstName), "last_name": nullStr(u.LastName),
		"profile_image_url": "https://img.clerk.com/fakeidp", "image_url": "https://img.clerk.com/fakeidp", "has_image": false,
		"public_metadata": meta, "private_metadata": map[string]any{}, "unsafe_metadata": map[string]any{},
		"email_addresses": emails, "phone_numbers": []any{}, "web3_wallets": []any{}, "passkeys": []any{},
		"password_enabled": true, "two_factor_enabled": false, "totp_enabled": false, "backup_code_enabled": false,
		"mfa_enabled_at": nil, "mfa_disabled_at": nil, "external_accounts": []any{}, "saml_accounts": []any{},
		"enterprise_accounts": []any{}, "last_sign_in_at": ms(u.CreatedAt), "banned": u.Banned, "locked": u.Locked,
		"lockout_expires_in_seconds": lockout, "verification_attempts_remaining": 100,
		"updated_at": ms(u.UpdatedAt), "created_at": ms(u.CreatedAt), "delete_self_enabled": true,
		"create_organization_enabled": true, "create_organizations_limit": nil,
		"last_active_at": ms(u.UpdatedAt), "legal_accepted_at": nil,
	}
}

func clerkDeleted(object, id, slug string) map[string]any {
	d := map[string]any{"object": object, "id": id, "deleted": true}
	if slug != "" {
		d["slug"] = slug
	}
	return d
}

func (f *Fake) orgWire(o *Organization) map[string]any {
	members := 0
	if mt := f.memberships[o.ID]; mt != nil {
		members = mt.Len()
	}
	return map[string]any{
		"object": "organization", "id": o.ID, "name": o.Name, "slug": o.Slug,
		"image_url": "https://img.clerk.com/fakeidp", "has_image": false, "members_count": members,
		"missing_member_with_elevated_permissions": false, "pending_invitations_count": 0,
		"max_allowed_memberships": 0, "admin_delete_enabled": true, "public_metadata": map[string]any{},
		"private_metadata": map[string]any{}, "created_by": o.CreatedBy,
		"created_at": ms(o.CreatedAt), "updated_at": ms(o.UpdatedAt),
	}
}

func (f *Fake) membershipWire(m *Membership) map[string]any {
	org, _ := f.orgs.Get(m.OrganizationID)
	var orgWire any = map[string]any{"object": "organization", "id": m.OrganizationID}
	if org != nil {
		orgWire = f.orgWire(org)
	}
	pud := map[string]any{"user_id": m.UserID, "first_name": nil, "last_name": nil,
		"profile_image_url": "https://img.clerk.com/fakeidp", "image_url": "https://img.clerk.com/fakeidp",
		"has_image": false, "identifier": nil, "username": nil}
	if u, ok := f.users.Get(m.UserID); ok {
		pud["first_name"], pud["last_name"] = nullStr(u.FirstName), nullStr(u.LastName)
		pud["identifier"], pud["username"] = nullStr(u.Email), nullStr(u.Username)
	}
	roleName := strings.TrimPrefix(m.Role, "org:")
	if roleName != "" {
		roleName = strings.ToUpper(roleName[:1]) + roleName[1:]
	}
	perms := []string{"org:sys_profile:read", "org:sys_memberships:read"}
	if m.Role == "org:admin" {
		perms = append(perms, "org:sys_profile:manage", "org:sys_memberships:manage")
	}
	return map[string]any{
		"object": "organization_membership", "id": m.ID, "role": m.Role, "role_name": roleName,
		"permissions": perms, "public_metadata": map[string]any{}, "private_metadata": map[string]any{},
		"organization": orgWire, "public_user_data": pud,
		"created_at": ms(m.CreatedAt), "updated_at": ms(m.UpdatedAt),
	}
}

func clerkSessionWire(s *Session) map[string]any {
	return map[string]any{
		"object": "session", "id": s.ID, "user_id": s.UserID, "client_id": s.ClientID, "actor": nil,
		"status": s.Status, "last_active_organization_id": nil, "last_active_at": ms(s.UpdatedAt),
		"latest_activity": nil, "expire_at": ms(s.CreatedAt.Add(7 * 24 * time.Hour)),
		"abandon_at": ms(s.CreatedAt.Add(30 * 24 * time.Hour)), "updated_at": ms(s.UpdatedAt),
		"created_at": ms(s.CreatedAt), "tasks": nil,
	}
}

// clerkSessionEventWire is the SessionEventPayload of session.* webhooks: the session with its user.
func clerkSessionEventWire(s *Session, u *User) map[string]any {
	w := clerkSessionWire(s)
	delete(w, "tasks")
	if u != nil {
		w["user"] = clerkUserWire(u)
	}
	return w
}

func clerkErrorBody(status int, msg string) (string, []byte) {
	code := map[int]string{
		http.StatusBadRequest: "bad_request", http.StatusUnauthorized: "authentication_invalid",
		http.StatusForbidden: "authorization_invalid", http.StatusNotFound: "resource_not_found",
		http.StatusConflict: "conflict", http.StatusUnprocessableEntity: "form_param_value_invalid",
		http.StatusTooManyRequests: "too_many_requests",
	}[status]
	if code == "" {
		code = "internal_clerk_error"
	}
	return clerkErrorJSON(code, msg, "")
}

func clerkErrorJSON(code, msg, param string) (string, []byte) {
	return clerkErrorJSONShort(code, shortMessage(msg), msg, param)
}

// clerkErrorJSONShort is clerkErrorJSON with Clerk's own short message, e.g. "is unknown".
func clerkErrorJSONShort(code, short, msg, param string) (string, []byte) {
	e := map[string]any{"message": short, "long_message": msg, "code": code}
	if param != "" {
		e["meta"] = map[string]any{"param_name": param}
	}
	b, _ := json.Marshal(map[string]any{"errors": []any{e}, "clerk_trace_id": fakeidp.TraceID()})
	return "application/json", b
}

func shortMessage(msg string) string {
	if i := strings.IndexAny(msg, ",."); i > 0 {
		return msg[:i]
	}
	return msg
}

// ---- HTTP --------------------------------------------------------------------------------

// Handler returns the fake's HTTP handler (paths under /v1), with recording and failure
// injection.
func (f *Fake) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/users", f.listUsers)
	mux.HandleFunc("POST /v1/users", f.createUser)
	mux.HandleFunc("GET /v1/users/count", f.countUsers)
	mux.HandleFunc("GET /v1/users/{id}", f.getUser)
	mux.HandleFunc("DELETE /v1/users/{id}", f.deleteUser)
	mux.HandleFunc("POST /v1/users/{id}/{action}", f.userAction)
	mux.HandleFunc("GET /v1/organizations", f.listOrgs)
	mux.HandleFunc("GET /v1/organizations/{id}", f.getOrg)
	mux.HandleFunc("GET /v1/organizations/{id}/memberships", f.listMemberships)
	mux.HandleFunc("GET /v1/sessions", f.listSessions)
	mux.HandleFunc("POST /v1/sessions/{id}/revoke", f.revokeSession)
	mux.HandleFunc("POST /v1/webhooks/svix", f.createSvixApp)
	mux.HandleFunc("DELETE /v1/webhooks/svix", f.deleteSvixApp)
	mux.HandleFunc("POST /v1/webhooks/svix_url", f.svixURL)
	mux.HandleFunc("/", func(w http.ResponseWriter, _ *http.Request) {
		f.fail(w, http.StatusNotFound, "resource_not_found", "The requested resource was not found.", "")
	})
	return f.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer "+f.secret {
			f.fail(w, http.StatusUnauthorized, "authentication_invalid",
				"Unable to authenticate the request, you need to supply an active API key.", "")
			return
		}
		mux.ServeHTTP(w, r)
	}))
}

func (f *Fake) fail(w http.ResponseWriter, status int, code, msg, param string) {
	f.failShort(w, status, code, shortMessage(msg), msg, param)
}

// failShort answers a Clerk error whose short message is not the first clause of msg.
func (f *Fake) failShort(w http.ResponseWriter, status int, code, short, msg, param string) {
	ct, body := clerkErrorJSONShort(code, short, msg, param)
	w.Header().Set("Content-Type", ct)
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// paging reads limit and offset as Clerk does: limit 1–500 (default 10), offset ≥ 0.
func (f *Fake) paging(w http.ResponseWriter, r *http.Request) (limit, offset int, ok bool) {
	limit, offset = 10, 0
	if v := r.URL.Query().Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > MaxLimit {
			f.fail(w, http.StatusUnprocessableEntity, "form_param_value_invalid",
				fmt.Sprintf("limit must be an integer between 1 and %d.", MaxLimit), "limit")
			return 0, 0, false
		}
		limit = n
	}
	if v := r.URL.Query().Get("offset"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			f.fail(w, http.StatusUnprocessableEntity, "form_param_value_invalid", "offset must be a non-negative integer.", "offset")
			return 0, 0, false
		}
		offset = n
	}
	return limit, offset, true
}

func (f *Fake) userFilter(r *http.Request) func(*User) bool {
	q := r.URL.Query()
	ids, emails, ext := q["user_id"], q["email_address"], q["external_id"]
	banned := q.Get("banned")
	if len(ids) == 0 && len(emails) == 0 && len(ext) == 0 && banned == "" {
		return nil
	}
	return func(u *User) bool {
		return (len(ids) == 0 || slices.Contains(ids, u.ID)) &&
			(len(emails) == 0 || slices.Contains(emails, u.Email)) &&
			(len(ext) == 0 || slices.Contains(ext, u.ExternalID)) &&
			(banned == "" || strconv.FormatBool(u.Banned) == banned)
	}
}

func (f *Fake) listUsers(w http.ResponseWriter, r *http.Request) {
	limit, offset, ok := f.paging(w, r)
	if !ok {
		return
	}
	f.mu.RLock()
	rows := fakeidp.Window(fakeidp.Ordered(f.users.List(f.userFilter(r)), r.URL.Query().Get("order_by")), offset, limit)
	out := make([]map[string]any, len(rows))
	for i, u := range rows {
		out[i] = clerkUserWire(u)
	}
	f.mu.RUnlock()
	fakeidp.WriteJSON(w, http.StatusOK, out)
}

func (f *Fake) countUsers(w http.ResponseWriter, r *http.Request) {
	f.mu.RLock()
	n := len(f.users.List(f.userFilter(r)))
	f.mu.RUnlock()
	fakeidp.WriteJSON(w, http.StatusOK, map[string]any{"object": "total_count", "total_count": n})
}

// createUserParams are the body properties of Clerk's CreateUser (POST /v1/users), which accepts
// no other.
var createUserParams = map[string]bool{
	"external_id": true, "first_name": true, "last_name": true, "locale": true, "email_address": true,
	"email_address_identification_status": true, "phone_number": true, "phone_number_identification_status": true,
	"web3_wallet": true, "username": true, "password": true, "password_digest": true, "password_hasher": true,
	"skip_password_checks": true, "skip_password_requirement": true, "totp_secret": true, "backup_codes": true,
	"public_metadata": true, "private_metadata": true, "unsafe_metadata": true, "delete_self_enabled": true,
	"legal_accepted_at": true, "skip_legal_checks": true, "skip_user_requirement": true,
	"create_organization_enabled": true, "create_organizations_limit": true, "created_at": true,
	"bypass_client_trust": true, "banned": true, "locked": true,
}

// createUser is Clerk's CreateUser: it answers 200 with the new user and sends user.created. The
// fake's instance requires no identifier and no password, and keeps of the body what its User
// holds: the first email address (the primary one), names, username, external id, public
// metadata, created_at, banned and locked. Errors are Clerk's: 400 request_body_invalid for a body
// that is not a JSON object, 422 form_param_unknown for a property CreateUser does not have,
// form_param_type_invalid, form_param_format_invalid for an email address without '@',
// form_param_invalid_time, and form_identifier_exists for an email address or username another
// user has.
func (f *Fake) createUser(w http.ResponseWriter, r *http.Request) {
	invalidBody := func() {
		f.failShort(w, http.StatusBadRequest, "request_body_invalid", "Request body invalid",
			"The request body is invalid. Please consult the API documentation for more information.", "")
	}
	body, err := fakeidp.ReadBody(r)
	var params map[string]json.RawMessage
	if err == nil {
		err = json.Unmarshal(body, &params)
	}
	if err != nil || params == nil {
		invalidBody()
		return
	}
	for _, k := range slices.Sorted(maps.Keys(params)) {
		if !createUserParams[k] {
			f.failShort(w, http.StatusUnprocessableEntity, "form_param_unknown", "is unknown", k+" is not a valid parameter for this request.", k)
			return
		}
	}
	var in struct {
		ExternalID     *string        `json:"external_id"`
		FirstName      *string        `json:"first_name"`
		LastName       *string        `json:"last_name"`
		EmailAddress   []string       `json:"email_address"`
		Username       *string        `json:"username"`
		PublicMetadata map[string]any `json:"public_metadata"`
		CreatedAt      *string        `json:"created_at"`
		Banned         *bool          `json:"banned"`
		Locked         *bool          `json:"locked"`
	}
	if err := json.Unmarshal(body, &in); err != nil {
		var typeErr *json.UnmarshalTypeError
		if errors.As(err, &typeErr) {
			f.failShort(w, http.StatusUnprocessableEntity, "form_param_type_invalid", "is invalid",
				fmt.Sprintf("`%s` must be a `%s`.", typeErr.Field, typeErr.Type), typeErr.Field)
			return
		}
		invalidBody()
		return
	}
	u := User{ExternalID: deref(in.ExternalID), FirstName: deref(in.FirstName), LastName: deref(in.LastName),
		Username: deref(in.Username), PublicMetadata: in.PublicMetadata, Banned: deref(in.Banned), Locked: deref(in.Locked)}
	for _, email := range in.EmailAddress {
		if !strings.Contains(email, "@") {
			f.failShort(w, http.StatusUnprocessableEntity, "form_param_format_invalid", "is invalid", "email_address must be a valid email address.", "email_address")
			return
		}
	}
	if len(in.EmailAddress) > 0 {
		u.Email = in.EmailAddress[0]
	}
	if in.CreatedAt != nil {
		at, err := time.Parse(time.RFC3339, *in.CreatedAt)
		if err != nil {
			f.failShort(w, http.StatusUnprocessableEntity, "form_param_invalid_time", "invalid format",
				"created_at must contain a datetime specified in RFC3339 format (e.g. `2022-10-20T10:00:27.645Z`).", "created_at")
			return
		}
		u.CreatedAt = at.UTC().Truncate(time.Millisecond)
	}
	u, taken := f.addUser(u, true)
	if taken != "" {
		what := map[string]string{"email_address": "email address", "username": "username"}[taken]
		msg := "That " + what + " is taken. Please try another."
		f.failShort(w, http.StatusUnprocessableEntity, "form_identifier_exists", msg, msg, taken)
		return
	}
	f.RecordMutation("user.create", u.ID, body)
	fakeidp.WriteJSON(w, http.StatusOK, clerkUserWire(&u))
}

func deref[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}

func (f *Fake) getUser(w http.ResponseWriter, r *http.Request) {
	u, ok := f.User(r.PathValue("id"))
	if !ok {
		f.fail(w, http.StatusNotFound, "resource_not_found", "The requested resource was not found.", "")
		return
	}
	fakeidp.WriteJSON(w, http.StatusOK, clerkUserWire(&u))
}

func (f *Fake) deleteUser(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if err := f.DeleteUser(id); err != nil {
		f.fail(w, http.StatusNotFound, "resource_not_found", "The requested resource was not found.", "")
		return
	}
	f.RecordMutation("user.delete", id, nil)
	fakeidp.WriteJSON(w, http.StatusOK, clerkDeleted("user", id, ""))
}

func (f *Fake) userAction(w http.ResponseWriter, r *http.Request) {
	id, action := r.PathValue("id"), r.PathValue("action")
	var change func(*User)
	switch action {
	case "ban":
		change = func(u *User) { u.Banned = true }
	case "unban":
		change = func(u *User) { u.Banned = false }
	case "lock":
		change = func(u *User) { u.Locked = true }
	case "unlock":
		change = func(u *User) { u.Locked = false }
	default:
		f.fail(w, http.StatusNotFound, "resource_not_found", "The requested resource was not found.", "")
		return
	}
	if _, ok := f.User(id); !ok {
		f.fail(w, http.StatusNotFound, "resource_not_found", "The requested resource was not found.", "")
		return
	}
	if action == "ban" {
		// Banning revokes every session of the user.
		f.mu.Lock()
		var revoked []any
		for _, sid := range f.byUser[id] {
			if s, ok := f.sessions.Get(sid); ok && s.Status == "active" {
				_, wire, _ := f.revokeSessionLocked(sid)
				revoked = append(revoked, wire)
			}
		}
		f.mu.Unlock()
		for _, wire := range revoked {
			f.emit("session.revoked", wire)
		}
	}
	u, err := f.UpdateUser(id, change)
	if err != nil {
		f.fail(w, http.StatusNotFound, "resource_not_found", "The requested resource was not found.", "")
		return
	}
	f.RecordMutation("user."+action, id, nil)
	fakeidp.WriteJSON(w, http.StatusOK, clerkUserWire(&u))
}

func (f *Fake) listOrgs(w http.ResponseWriter, r *http.Request) {
	limit, offset, ok := f.paging(w, r)
	if !ok {
		return
	}
	f.mu.RLock()
	all := fakeidp.Ordered(f.orgs.Rows, r.URL.Query().Get("order_by"))
	rows := fakeidp.Window(all, offset, limit)
	out := make([]map[string]any, len(rows))
	for i, o := range rows {
		out[i] = f.orgWire(o)
	}
	f.mu.RUnlock()
	fakeidp.WriteJSON(w, http.StatusOK, map[string]any{"data": out, "total_count": len(all)})
}

func (f *Fake) getOrg(w http.ResponseWriter, r *http.Request) {
	key := r.PathValue("id")
	f.mu.RLock()
	defer f.mu.RUnlock()
	o, ok := f.orgs.Get(key)
	if !ok {
		for _, c := range f.orgs.Rows {
			if c.Slug == key {
				o, ok = c, true
				break
			}
		}
	}
	if !ok {
		f.fail(w, http.StatusNotFound, "resource_not_found", "The requested resource was not found.", "")
		return
	}
	fakeidp.WriteJSON(w, http.StatusOK, f.orgWire(o))
}

func (f *Fake) listMemberships(w http.ResponseWriter, r *http.Request) {
	limit, offset, ok := f.paging(w, r)
	if !ok {
		return
	}
	f.mu.RLock()
	defer f.mu.RUnlock()
	mt := f.memberships[r.PathValue("id")]
	if mt == nil {
		f.fail(w, http.StatusNotFound, "resource_not_found", "The requested resource was not found.", "")
		return
	}
	q := r.URL.Query()
	roles, users := q["role"], q["user_id"]
	all := fakeidp.Ordered(mt.List(func(m *Membership) bool {
		return (len(roles) == 0 || slices.Contains(roles, m.Role)) && (len(users) == 0 || slices.Contains(users, m.UserID))
	}), q.Get("order_by"))
	rows := fakeidp.Window(all, offset, limit)
	out := make([]map[string]any, len(rows))
	for i, m := range rows {
		out[i] = f.membershipWire(m)
	}
	fakeidp.WriteJSON(w, http.StatusOK, map[string]any{"data": out, "total_count": len(all)})
}

func (f *Fake) listSessions(w http.ResponseWriter, r *http.Request) {
	limit, offset, ok := f.paging(w, r)
	if !ok {
		return
	}
	q := r.URL.Query()
	userID, clientID, status := q.Get("user_id"), q.Get("client_id"), q.Get("status")
	if userID == "" && clientID == "" {
		f.fail(w, http.StatusBadRequest, "form_param_missing", "At least one of user_id or client_id must be provided.", "user_id")
		return
	}
	f.mu.RLock()
	var all []*Session
	if userID != "" {
		for _, id := range f.byUser[userID] {
			if s, ok := f.sessions.Get(id); ok {
				all = append(all, s)
			}
		}
	} else {
		all = f.sessions.Rows
	}
	var keep []*Session
	for _, s := range all {
		if (clientID == "" || s.ClientID == clientID) && (status == "" || s.Status == status) {
			keep = append(keep, s)
		}
	}
	keep = fakeidp.Ordered(keep, "-created_at")
	rows := fakeidp.Window(keep, offset, limit)
	out := make([]map[string]any, len(rows))
	for i, s := range rows {
		out[i] = clerkSessionWire(s)
	}
	f.mu.RUnlock()
	if q.Get("paginated") == "true" {
		fakeidp.WriteJSON(w, http.StatusOK, map[string]any{"data": out, "total_count": len(keep)})
		return
	}
	fakeidp.WriteJSON(w, http.StatusOK, out)
}

func (f *Fake) revokeSession(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	s, err := f.RevokeSession(id)
	if err != nil {
		f.fail(w, http.StatusNotFound, "resource_not_found", "The requested resource was not found.", "")
		return
	}
	f.RecordMutation("session.revoke", id, nil)
	fakeidp.WriteJSON(w, http.StatusOK, clerkSessionWire(&s))
}

// ---- webhooks ----------------------------------------------------------------------------

func (f *Fake) emit(eventType string, data any) {
	if !f.WebhooksEnabled() {
		return
	}
	ev, err := f.event(eventType, data)
	if err == nil {
		f.Enqueue(ev)
	}
}

// event wraps data in Clerk's webhook envelope.
func (f *Fake) event(eventType string, data any) (fakeidp.Event, error) {
	body, err := json.Marshal(map[string]any{
		"data": data, "object": "event", "type": eventType,
		"timestamp": time.Now().UnixMilli(), "instance_id": f.instanceID,
	})
	if err != nil {
		return fakeidp.Event{}, err
	}
	return fakeidp.Event{ID: fakeidp.SortableID("msg_", fakeidp.Base62, 27, f.DeliverySeed(), int(f.seq.Add(1))), Type: eventType, Body: body}, nil
}

func (f *Fake) sign(t fakeidp.WebhookTarget, ev fakeidp.Event, at time.Time) (http.Header, error) {
	return clerk.SignSvix(ev.ID, at, ev.Body, t.Secret)
}

// SampleEvent returns one event of eventType built from the fake's first user, organization,
// membership or session, as Clerk would send it. Supported: user.created|updated|deleted,
// organization.created|updated|deleted, organizationMembership.created|updated|deleted,
// session.created|revoked.
func (f *Fake) SampleEvent(eventType string) (fakeidp.Event, error) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	if len(f.users.Rows) == 0 {
		return fakeidp.Event{}, errors.New("clerk fake: no users to build a sample event from")
	}
	u := f.users.Rows[0]
	var data any
	switch eventType {
	case "user.created", "user.updated":
		data = clerkUserWire(u)
	case "user.deleted":
		data = clerkDeleted("user", u.ID, "")
	case "organization.created", "organization.updated", "organization.deleted",
		"organizationMembership.created", "organizationMembership.updated", "organizationMembership.deleted":
		if len(f.orgs.Rows) == 0 {
			return fakeidp.Event{}, errors.New("clerk fake: no organizations to build a sample event from")
		}
		o := f.orgs.Rows[0]
		switch {
		case eventType == "organization.deleted":
			data = clerkDeleted("organization", o.ID, o.Slug)
		case strings.HasPrefix(eventType, "organization."):
			data = f.orgWire(o)
		default:
			mt := f.memberships[o.ID]
			if mt == nil || mt.Len() == 0 {
				return fakeidp.Event{}, errors.New("clerk fake: no memberships to build a sample event from")
			}
			data = f.membershipWire(mt.Rows[0])
		}
	case "session.created", "session.revoked":
		s := &Session{ID: "sess_" + strings.TrimPrefix(u.ID, "user_"), UserID: u.ID, ClientID: "client_" + strings.TrimPrefix(u.ID, "user_"),
			Status: map[bool]string{true: "revoked", false: "active"}[eventType == "session.revoked"], CreatedAt: u.CreatedAt, UpdatedAt: u.UpdatedAt}
		data = clerkSessionEventWire(s, u)
	default:
		return fakeidp.Event{}, fmt.Errorf("clerk fake: unsupported sample event type %q", eventType)
	}
	return f.event(eventType, data)
}

// SignEvent returns the headers Clerk (via Svix) would send with ev for target.
func (f *Fake) SignEvent(t fakeidp.WebhookTarget, ev fakeidp.Event, at time.Time) (http.Header, error) {
	return f.sign(t, ev, at)
}
