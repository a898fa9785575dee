// Package zitadelfake is an in-memory imitation of Zitadel's management API, for tests, demos and
// benchmarks: the same routes, limits, error shapes and semantics as the real service, with
// recording and failure injection from internal/fakeidp. Its webhooks are signed and shaped as the
// IdP's.
package zitadelfake

import (
	"cmp"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/idpsync/idpsync/internal/fakeidp"
	"github.com/idpsync/idpsync/internal/provider/zitadel"
)

// MaxLimit is Zitadel's default MaxQueryLimit: larger limits are rejected (v4.20 and
// later). A request without a limit gets DefaultLimit.
const (
	MaxLimit     = 1000
	DefaultLimit = 100
)

// Options configures a Zitadel fake.
type Options struct {
	// PAT is a personal access token the fake accepts. Defaults to "fakeidp-zitadel-pat".
	PAT string
	// ClientID and ClientSecret are client credentials the fake accepts. Default
	// "fakeidp-client" and "fakeidp-client-secret".
	ClientID, ClientSecret string
	// TokenTTL is the lifetime of access tokens it issues. Defaults to 12 h (Zitadel's 43199 s).
	TokenTTL time.Duration
	// InstanceID goes into webhook events. Defaults to "300000000000000001".
	InstanceID string
	// Seed makes the generated data reproducible.
	Seed uint64
	// Users is the number of users to generate.
	Users int
	// Organizations is the number of organizations to generate (at least one, the default
	// organization that owns the users).
	Organizations int
	// SessionsPerUser is how many sessions each generated user has.
	SessionsPerUser int
}

// User is a user held by the Zitadel fake.
type User struct {
	ID            string
	OrgID         string
	Username      string
	FirstName     string
	LastName      string
	Email         string
	EmailVerified bool
	// Machine marks a service user (no profile or email).
	Machine bool
	// State is one of USER_STATE_ACTIVE, _INACTIVE, _LOCKED, _INITIAL.
	State     string
	Sequence  uint64
	CreatedAt time.Time
	ChangedAt time.Time
}

// Organization is an organization held by the Zitadel fake.
type Organization struct {
	ID        string
	Name      string
	Domain    string
	State     string
	Sequence  uint64
	CreatedAt time.Time
	ChangedAt time.Time
}

// Session is a session held by the Zitadel fake.
type Session struct {
	ID        string
	UserID    string
	Sequence  uint64
	CreatedAt time.Time
	ChangedAt time.Time
	ExpiresAt time.Time
}

// Fake is an in-memory imitation of Zitadel's v2 REST API and token endpoint (PAT, client
// credentials and private key JWT), with Zitadel's limits and error bodies, and Actions v2 targets
// and executions whose webhooks are signed with ZITADEL-Signature.
type Fake struct {
	*fakeidp.Core
	pat, clientID, clientSecret string
	ttl                         time.Duration
	instanceID                  string
	key                         *rsa.PrivateKey
	keyID, serviceUserID        string
	seq                         atomic.Int64

	mu       sync.RWMutex
	issuer   string
	tokens   map[string]time.Time
	users    *fakeidp.Table[User]
	orgs     *fakeidp.Table[Organization]
	members  map[string]map[string][]string // org id → user id → roles
	sessions *fakeidp.Table[Session]
	byUser   map[string][]string

	targets    []*Target    // Actions v2, oldest first (actions.go)
	executions []*Execution // oldest first
	routed     *route       // where the executions send webhooks; nil: to the target set from Go
}

var (
	fakeKeyOnce sync.Once
	fakeKey     *rsa.PrivateKey
)

// serviceUserKey returns the RSA key of the fake's service user, generated once per process.
func serviceUserKey() *rsa.PrivateKey {
	fakeKeyOnce.Do(func() {
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			panic(fmt.Sprintf("fakeidp: generating the service user key: %v", err))
		}
		fakeKey = k
	})
	return fakeKey
}

// New returns a Zitadel fake holding the generated data set of opts.
func New(opts Options) *Fake {
	f := &Fake{
		pat:          cmp.Or(opts.PAT, "fakeidp-zitadel-pat"),
		clientID:     cmp.Or(opts.ClientID, "fakeidp-client"),
		clientSecret: cmp.Or(opts.ClientSecret, "fakeidp-client-secret"),
		ttl:          opts.TokenTTL,
		// A new instance id per process unless given: Zitadel's event ids (instance, aggregate,
		// sequence) must not repeat those of an earlier run.
		instanceID:    cmp.Or(opts.InstanceID, strconv.FormatUint(3e17+mrand.Uint64N(1e17), 10)),
		key:           serviceUserKey(),
		keyID:         "300000000000000002",
		serviceUserID: "300000000000000003",
		tokens:        map[string]time.Time{},
		users:         fakeidp.NewTable(func(u *User) string { return u.ID }, opts.Users),
		orgs:          fakeidp.NewTable(func(o *Organization) string { return o.ID }, opts.Organizations),
		members:       map[string]map[string][]string{},
		sessions:      fakeidp.NewTable(func(s *Session) string { return s.ID }, opts.Users*opts.SessionsPerUser),
		byUser:        map[string][]string{},
	}
	if f.ttl <= 0 {
		f.ttl = 43199 * time.Second
	}
	f.Core = fakeidp.NewCore("zitadel", zitadelErrorBody, f.signWebhook)
	f.seq.Store(int64(opts.Users*(opts.SessionsPerUser+1) + opts.Organizations + 10))
	for i := range max(opts.Organizations, 1) {
		name, slug := fakeidp.OrgName(i)
		at := fakeidp.Epoch.Add(time.Duration(i) * time.Hour)
		o := &Organization{ID: zitadelID(1, i), Name: name, Domain: slug + ".fakeidp.localhost",
			State: "ORGANIZATION_STATE_ACTIVE", Sequence: 1, CreatedAt: at, ChangedAt: at}
		f.orgs.Add(o)
		f.members[o.ID] = map[string][]string{}
	}
	for i := range opts.Users {
		p := fakeidp.NewPerson(opts.Seed, i)
		org := f.orgs.Rows[i%f.orgs.Len()]
		u := &User{ID: zitadelID(2, i), OrgID: org.ID, Username: p.Username, FirstName: p.First, LastName: p.Last,
			Email: p.Email, EmailVerified: true, State: "USER_STATE_ACTIVE", Sequence: 2, CreatedAt: p.Created, ChangedAt: p.Created}
		f.users.Add(u)
		for s := range opts.SessionsPerUser {
			n := i*opts.SessionsPerUser + s
			sess := &Session{ID: zitadelID(3, n), UserID: u.ID, Sequence: 1, CreatedAt: p.Created, ChangedAt: p.Created,
				ExpiresAt: p.Created.Add(24 * time.Hour)}
			f.sessions.Add(sess)
			f.byUser[u.ID] = append(f.byUser[u.ID], sess.ID)
		}
	}
	return f
}

// zitadelID returns an 18-digit id like Zitadel's snowflakes, increasing with i within a kind.
func zitadelID(kind, i int) string {
	return strconv.FormatUint(310000000000000000+uint64(kind)*1_000_000_000_000+uint64(i), 10)
}

func (f *Fake) newID() string { return zitadelID(9, int(f.seq.Add(1))) }

// Start serves the fake on a loopback port and returns its base URL (also the issuer).
func (f *Fake) Start() string {
	u := f.Serve(f.Handler())
	f.SetIssuer(u)
	return u
}

// SetIssuer sets the issuer the fake expects as the audience of JWT assertions (its external
// base URL). Start sets it; a server mounted elsewhere must call it.
func (f *Fake) SetIssuer(issuer string) {
	f.mu.Lock()
	f.issuer = strings.TrimSuffix(issuer, "/")
	f.mu.Unlock()
}

// PAT returns the personal access token the fake accepts.
func (f *Fake) PAT() string { return f.pat }

// ClientCredentials returns the client id and secret the fake accepts.
func (f *Fake) ClientCredentials() (id, secret string) { return f.clientID, f.clientSecret }

// KeyFile returns the JSON key file of the fake's service user, as Zitadel's console downloads it.
func (f *Fake) KeyFile() []byte {
	der := x509.MarshalPKCS1PrivateKey(f.key)
	b, _ := json.Marshal(map[string]string{
		"type": "serviceaccount", "keyId": f.keyID, "userId": f.serviceUserID,
		"key": string(pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: der})),
	})
	return b
}

// TokenRequests returns how many token requests the fake answered successfully.
func (f *Fake) TokenRequests() int {
	n := 0
	for _, r := range f.Requests() {
		if r.Path == "/oauth/v2/token" && r.Status == http.StatusOK {
			n++
		}
	}
	return n
}

// ExpireTokens makes every access token issued so far invalid (as after a key rotation).
func (f *Fake) ExpireTokens() {
	f.mu.Lock()
	clear(f.tokens)
	f.mu.Unlock()
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

// CreateUser adds a human (or machine) user and emits user.human.added (user.machine.added).
// An empty OrgID puts the user in the first organization.
func (f *Fake) CreateUser(u User) User {
	now := time.Now().UTC()
	f.mu.Lock()
	if u.ID == "" {
		u.ID = f.newID()
	}
	if u.OrgID == "" && f.orgs.Len() > 0 {
		u.OrgID = f.orgs.Rows[0].ID
	}
	if u.State == "" {
		u.State = "USER_STATE_ACTIVE"
	}
	if u.CreatedAt.IsZero() {
		u.CreatedAt = now
	}
	u.ChangedAt, u.Sequence = u.CreatedAt, 1
	f.users.Add(&u)
	f.mu.Unlock()
	if u.Machine {
		f.emitUser(&u, "user.machine.added", map[string]any{"userName": u.Username, "name": u.Username})
	} else {
		f.emitUser(&u, "user.human.added", map[string]any{"userName": u.Username, "firstName": u.FirstName,
			"lastName": u.LastName, "displayName": strings.TrimSpace(u.FirstName + " " + u.LastName),
			"preferredLanguage": "und", "email": u.Email})
	}
	return u
}

// UpdateUserProfile changes a human's names and emits user.human.profile.changed.
func (f *Fake) UpdateUserProfile(id, firstName, lastName string) (User, error) {
	return f.changeUser(id, "user.human.profile.changed", func(u *User) (map[string]any, error) {
		u.FirstName, u.LastName = firstName, lastName
		return map[string]any{"firstName": firstName, "lastName": lastName, "displayName": strings.TrimSpace(firstName + " " + lastName)}, nil
	})
}

// UpdateUserEmail changes a human's email and emits user.human.email.changed.
func (f *Fake) UpdateUserEmail(id, email string) (User, error) {
	return f.changeUser(id, "user.human.email.changed", func(u *User) (map[string]any, error) {
		u.Email = email
		return map[string]any{"email": email}, nil
	})
}

// SetUserState moves a user to USER_STATE_ACTIVE, _INACTIVE or _LOCKED and emits
// user.reactivated, user.deactivated, user.locked or user.unlocked, enforcing Zitadel's
// preconditions.
func (f *Fake) SetUserState(id, state string) (User, error) {
	return f.setUserState(id, state)
}

func (f *Fake) setUserState(id, state string) (User, error) {
	var eventType string
	u, err := f.changeUser(id, "", func(u *User) (map[string]any, error) {
		switch {
		case state == "USER_STATE_INACTIVE" && u.State == "USER_STATE_INACTIVE":
			return nil, errPrecondition{"Errors.User.AlreadyInactive", "COMMAND-5M0sf"}
		case state == "USER_STATE_INACTIVE":
			eventType = "user.deactivated"
		case state == "USER_STATE_LOCKED" && u.State == "USER_STATE_LOCKED":
			return nil, errPrecondition{"Errors.User.AlreadyLocked", "COMMAND-45n8s"}
		case state == "USER_STATE_LOCKED":
			eventType = "user.locked"
		case state == "USER_STATE_ACTIVE" && u.State == "USER_STATE_INACTIVE":
			eventType = "user.reactivated"
		case state == "USER_STATE_ACTIVE" && u.State == "USER_STATE_LOCKED":
			eventType = "user.unlocked"
		case state == "USER_STATE_ACTIVE":
			return nil, errPrecondition{"Errors.User.NotInactive", "COMMAND-6M0sf"}
		default:
			return nil, fmt.Errorf("zitadel fake: unsupported state %q", state)
		}
		u.State = state
		return nil, nil
	})
	if err != nil {
		return User{}, err
	}
	f.emitUser(&u, eventType, nil)
	return u, nil
}

type errPrecondition struct{ key, id string }

func (e errPrecondition) Error() string { return e.key + " (" + e.id + ")" }

func (f *Fake) changeUser(id, eventType string, change func(*User) (map[string]any, error)) (User, error) {
	f.mu.Lock()
	u, ok := f.users.Get(id)
	if !ok {
		f.mu.Unlock()
		return User{}, errNotFound{"Errors.User.NotFound", "QUERY-Dfbg2"}
	}
	payload, err := change(u)
	if err != nil {
		f.mu.Unlock()
		return User{}, err
	}
	u.Sequence++
	u.ChangedAt = fakeidp.LaterTime(u.ChangedAt)
	out := *u
	f.mu.Unlock()
	if eventType != "" {
		f.emitUser(&out, eventType, payload)
	}
	return out, nil
}

type errNotFound struct{ key, id string }

func (e errNotFound) Error() string { return e.key + " (" + e.id + ")" }

// DeleteUser removes a user with their sessions and memberships and emits user.removed.
func (f *Fake) DeleteUser(id string) error {
	f.mu.Lock()
	u, ok := f.users.Remove(id)
	if ok {
		for _, sid := range f.byUser[id] {
			f.sessions.Remove(sid)
		}
		delete(f.byUser, id)
		for _, m := range f.members {
			delete(m, id)
		}
	}
	f.mu.Unlock()
	if !ok {
		return errNotFound{"Errors.User.NotFound", "QUERY-Dfbg2"}
	}
	u.Sequence++
	f.emitUser(u, "user.removed", nil)
	return nil
}

// CreateOrganization adds an organization and emits org.added.
func (f *Fake) CreateOrganization(o Organization) Organization {
	now := time.Now().UTC()
	f.mu.Lock()
	if o.ID == "" {
		o.ID = f.newID()
	}
	if o.State == "" {
		o.State = "ORGANIZATION_STATE_ACTIVE"
	}
	if o.Domain == "" {
		o.Domain = strings.ToLower(strings.ReplaceAll(o.Name, " ", "-")) + ".fakeidp.localhost"
	}
	if o.CreatedAt.IsZero() {
		o.CreatedAt = now
	}
	o.ChangedAt, o.Sequence = o.CreatedAt, 1
	f.orgs.Add(&o)
	f.members[o.ID] = map[string][]string{}
	f.mu.Unlock()
	f.emitEvent("org", o.ID, o.ID, "v1", o.Sequence, "org.added", map[string]any{"name": o.Name})
	return o
}

// RenameOrganization changes an organization's name and emits org.changed.
func (f *Fake) RenameOrganization(id, name string) (Organization, error) {
	f.mu.Lock()
	o, ok := f.orgs.Get(id)
	if !ok {
		f.mu.Unlock()
		return Organization{}, errNotFound{"Errors.Org.NotFound", "QUERY-iTTGJ"}
	}
	o.Name = name
	o.Sequence++
	o.ChangedAt = fakeidp.LaterTime(o.ChangedAt)
	out := *o
	f.mu.Unlock()
	f.emitEvent("org", id, id, "v1", out.Sequence, "org.changed", map[string]any{"name": name})
	return out, nil
}

// DeleteOrganization removes an organization and emits org.removed.
func (f *Fake) DeleteOrganization(id string) error {
	f.mu.Lock()
	o, ok := f.orgs.Remove(id)
	delete(f.members, id)
	f.mu.Unlock()
	if !ok {
		return errNotFound{"Errors.Org.NotFound", "QUERY-iTTGJ"}
	}
	f.emitEvent("org", id, id, "v1", o.Sequence+1, "org.removed", nil)
	return nil
}

// AddMember makes a user an administrator of an organization with roles and emits
// org.member.added.
func (f *Fake) AddMember(orgID, userID string, roles ...string) error {
	f.mu.Lock()
	m, ok := f.members[orgID]
	o, _ := f.orgs.Get(orgID)
	if !ok || o == nil {
		f.mu.Unlock()
		return errNotFound{"Errors.Org.NotFound", "QUERY-iTTGJ"}
	}
	if len(roles) == 0 {
		roles = []string{"ORG_OWNER"}
	}
	m[userID] = roles
	o.Sequence++
	seq := o.Sequence
	f.mu.Unlock()
	f.emitEvent("org", orgID, orgID, "v1", seq, "org.member.added", map[string]any{"userId": userID, "roles": roles})
	return nil
}

// RemoveMember removes an organization administrator and emits org.member.removed.
func (f *Fake) RemoveMember(orgID, userID string) error {
	f.mu.Lock()
	m, ok := f.members[orgID]
	o, _ := f.orgs.Get(orgID)
	if !ok || o == nil || m[userID] == nil {
		f.mu.Unlock()
		return errNotFound{"Errors.Org.Member.NotFound", "Org-D8JxR"}
	}
	delete(m, userID)
	o.Sequence++
	seq := o.Sequence
	f.mu.Unlock()
	f.emitEvent("org", orgID, orgID, "v1", seq, "org.member.removed", map[string]any{"userId": userID})
	return nil
}

// SessionsOf returns copies of a user's sessions.
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

// CreateSession starts a session for a user and emits session.added.
func (f *Fake) CreateSession(userID string) (Session, error) {
	now := time.Now().UTC()
	f.mu.Lock()
	u, ok := f.users.Get(userID)
	if !ok {
		f.mu.Unlock()
		return Session{}, errNotFound{"Errors.User.NotFound", "QUERY-Dfbg2"}
	}
	s := &Session{ID: f.newID(), UserID: userID, Sequence: 1, CreatedAt: now, ChangedAt: now, ExpiresAt: now.Add(24 * time.Hour)}
	f.sessions.Add(s)
	f.byUser[userID] = append(f.byUser[userID], s.ID)
	org := u.OrgID
	out := *s
	f.mu.Unlock()
	f.emitEvent("session", s.ID, org, "v1", 1, "session.added", map[string]any{"userAgent": nil})
	return out, nil
}

// TerminateSession deletes a session and emits session.terminated.
func (f *Fake) TerminateSession(id string) error {
	f.mu.Lock()
	s, ok := f.sessions.Remove(id)
	var org string
	if ok {
		ids := f.byUser[s.UserID]
		for i, sid := range ids {
			if sid == id {
				f.byUser[s.UserID] = append(ids[:i:i], ids[i+1:]...)
				break
			}
		}
		if u, ok := f.users.Get(s.UserID); ok {
			org = u.OrgID
		}
	}
	f.mu.Unlock()
	if !ok {
		return errNotFound{"Errors.Session.NotFound", "QUERY-SJ4ej"}
	}
	f.emitEvent("session", id, org, "v1", s.Sequence+1, "session.terminated", nil)
	return nil
}

// ---- wire shapes --------------------------------------------------------------------------

func zitadelDetails(seq uint64, created, changed time.Time, owner string) map[string]any {
	return map[string]any{"sequence": strconv.FormatUint(seq, 10), "creationDate": created.Format(time.RFC3339Nano),
		"changeDate": changed.Format(time.RFC3339Nano), "resourceOwner": owner}
}

func (f *Fake) userWire(u *User) map[string]any {
	org, _ := f.orgs.Get(u.OrgID)
	domain := "fakeidp.localhost"
	if org != nil {
		domain = org.Domain
	}
	login := u.Username + "@" + domain
	w := map[string]any{
		"userId": u.ID, "details": zitadelDetails(u.Sequence, u.CreatedAt, u.ChangedAt, u.OrgID),
		"state": u.State, "username": u.Username, "loginNames": []string{login}, "preferredLoginName": login,
	}
	if u.Machine {
		w["machine"] = map[string]any{"name": u.Username, "description": ""}
	} else {
		w["human"] = map[string]any{
			"profile": map[string]any{"givenName": u.FirstName, "familyName": u.LastName,
				"displayName": strings.TrimSpace(u.FirstName + " " + u.LastName), "preferredLanguage": "en"},
			"email": map[string]any{"email": u.Email, "isVerified": u.EmailVerified},
			"phone": map[string]any{},
		}
	}
	return w
}

func orgWireZitadel(o *Organization) map[string]any {
	return map[string]any{"id": o.ID, "details": zitadelDetails(o.Sequence, o.CreatedAt, o.ChangedAt, o.ID),
		"state": o.State, "name": o.Name, "primaryDomain": o.Domain}
}

func (f *Fake) sessionWire(s *Session) map[string]any {
	w := map[string]any{"id": s.ID, "creationDate": s.CreatedAt.Format(time.RFC3339Nano),
		"changeDate": s.ChangedAt.Format(time.RFC3339Nano), "sequence": strconv.FormatUint(s.Sequence, 10),
		"metadata": map[string]string{}, "expirationDate": s.ExpiresAt.Format(time.RFC3339Nano)}
	if u, ok := f.users.Get(s.UserID); ok {
		w["factors"] = map[string]any{"user": map[string]any{"verifiedAt": s.CreatedAt.Format(time.RFC3339Nano),
			"id": u.ID, "loginName": u.Username, "displayName": strings.TrimSpace(u.FirstName + " " + u.LastName),
			"organizationId": u.OrgID}}
	}
	return w
}

func zitadelErrorBody(status int, msg string) (string, []byte) {
	code := map[int]int{400: 3, 401: 16, 403: 7, 404: 5, 409: 6, 412: 9, 429: 8, 500: 13, 501: 12, 503: 14}[status]
	if code == 0 {
		code = 2
	}
	return zitadelErrorJSON(code, msg, "FAKE-"+strconv.Itoa(status))
}

func zitadelErrorJSON(code int, key, id string) (string, []byte) {
	b, _ := json.Marshal(map[string]any{
		"code": code, "message": key + " (" + id + ")",
		"details": []any{map[string]any{"@type": "type.googleapis.com/zitadel.v1.ErrorDetail", "id": id, "message": key}},
	})
	return "application/json", b
}

// ---- HTTP --------------------------------------------------------------------------------

// Handler returns the fake's HTTP handler, with recording and failure injection.
func (f *Fake) Handler() http.Handler {
	api := http.NewServeMux()
	api.HandleFunc("POST /v2/users", f.listUsers)
	api.HandleFunc("GET /v2/users/{id}", f.getUser)
	api.HandleFunc("DELETE /v2/users/{id}", f.deleteUser)
	api.HandleFunc("POST /v2/users/{id}/{action}", f.userAction)
	api.HandleFunc("POST /v2/organizations/_search", f.listOrgs)
	api.HandleFunc("POST /v2/sessions/search", f.listSessions)
	api.HandleFunc("DELETE /v2/sessions/{id}", f.deleteSession)
	api.HandleFunc("POST /v2/actions/targets", f.createTarget)
	api.HandleFunc("POST /v2/actions/targets/search", f.listTargets)
	api.HandleFunc("DELETE /v2/actions/targets/{id}", f.deleteTarget)
	api.HandleFunc("PUT /v2/actions/executions", f.setExecution)
	api.HandleFunc("POST /v2/actions/executions/search", f.listExecutions)
	api.HandleFunc("/", func(w http.ResponseWriter, _ *http.Request) {
		f.fail(w, http.StatusNotFound, 5, "Not Found", "FAKE-404")
	})
	root := http.NewServeMux()
	root.HandleFunc("POST /oauth/v2/token", f.token)
	root.Handle("/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !f.authorized(r) {
			f.fail(w, http.StatusUnauthorized, 16, "Errors.Token.Invalid", "AUTH-7fs1e")
			return
		}
		api.ServeHTTP(w, r)
	}))
	return f.Wrap(root)
}

func (f *Fake) fail(w http.ResponseWriter, status, code int, key, id string) {
	ct, body := zitadelErrorJSON(code, key, id)
	w.Header().Set("Content-Type", ct)
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

func (f *Fake) failErr(w http.ResponseWriter, err error) {
	var nf errNotFound
	var pc errPrecondition
	switch {
	case errors.As(err, &nf):
		f.fail(w, http.StatusNotFound, 5, nf.key, nf.id)
	case errors.As(err, &pc):
		f.fail(w, http.StatusBadRequest, 9, pc.key, pc.id)
	default:
		f.fail(w, http.StatusInternalServerError, 13, err.Error(), "FAKE-500")
	}
}

func (f *Fake) authorized(r *http.Request) bool {
	token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || token == "" {
		return false
	}
	if subtle.ConstantTimeCompare([]byte(token), []byte(f.pat)) == 1 {
		return true
	}
	f.mu.RLock()
	exp, ok := f.tokens[token]
	f.mu.RUnlock()
	return ok && time.Now().Before(exp)
}

func (f *Fake) token(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		fakeidp.OAuthError(w, http.StatusBadRequest, "invalid_request", "malformed form body")
		return
	}
	scopes := strings.Fields(r.PostForm.Get("scope"))
	hasAud := false
	for _, s := range scopes {
		hasAud = hasAud || s == "urn:zitadel:iam:org:project:id:zitadel:aud"
	}
	switch r.PostForm.Get("grant_type") {
	case "client_credentials":
		id, secret, ok := r.BasicAuth()
		if ok {
			id, _ = url.QueryUnescape(id)
			secret, _ = url.QueryUnescape(secret)
		} else {
			id, secret = r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
		}
		if id != f.clientID || subtle.ConstantTimeCompare([]byte(secret), []byte(f.clientSecret)) != 1 {
			fakeidp.OAuthError(w, http.StatusUnauthorized, "invalid_client", "client authentication failed")
			return
		}
	case "urn:ietf:params:oauth:grant-type:jwt-bearer":
		if err := f.verifyAssertion(r.PostForm.Get("assertion")); err != nil {
			fakeidp.OAuthError(w, http.StatusBadRequest, "invalid_grant", err.Error())
			return
		}
	default:
		fakeidp.OAuthError(w, http.StatusBadRequest, "unsupported_grant_type", "grant_type is not supported")
		return
	}
	if !hasAud {
		// Zitadel issues the token, but its API rejects it: model that by issuing an unusable one.
		fakeidp.WriteJSON(w, http.StatusOK, map[string]any{"access_token": "no-zitadel-audience", "token_type": "Bearer", "expires_in": int(f.ttl.Seconds())})
		return
	}
	buf := make([]byte, 24)
	_, _ = rand.Read(buf)
	tok := base64.RawURLEncoding.EncodeToString(buf)
	f.mu.Lock()
	f.tokens[tok] = time.Now().Add(f.ttl)
	f.mu.Unlock()
	fakeidp.WriteJSON(w, http.StatusOK, map[string]any{"access_token": tok, "token_type": "Bearer", "expires_in": int(f.ttl.Seconds())})
}

// verifyAssertion checks a JWT profile assertion: RS256 by the service user's key, iss = sub =
// its user id, aud = the issuer, not expired.
func (f *Fake) verifyAssertion(jwt string) error {
	parts := strings.Split(jwt, ".")
	if len(parts) != 3 {
		return errors.New("assertion is not a JWT")
	}
	dec := base64.RawURLEncoding
	hb, err1 := dec.DecodeString(parts[0])
	cb, err2 := dec.DecodeString(parts[1])
	sig, err3 := dec.DecodeString(parts[2])
	if err1 != nil || err2 != nil || err3 != nil {
		return errors.New("assertion is not base64url")
	}
	var header struct{ Alg, Kid string }
	var claims struct {
		Iss, Sub string
		Aud      any
		Exp, Iat int64
	}
	if json.Unmarshal(hb, &header) != nil || json.Unmarshal(cb, &claims) != nil {
		return errors.New("assertion is not JSON")
	}
	if header.Alg != "RS256" || header.Kid != f.keyID {
		return errors.New("assertion key is unknown")
	}
	sum := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	if rsa.VerifyPKCS1v15(&f.key.PublicKey, crypto.SHA256, sum[:], sig) != nil {
		return errors.New("assertion signature is invalid")
	}
	f.mu.RLock()
	issuer := f.issuer
	f.mu.RUnlock()
	audOK := false
	switch a := claims.Aud.(type) {
	case string:
		audOK = a == issuer
	case []any:
		for _, v := range a {
			audOK = audOK || v == issuer
		}
	}
	now := time.Now().Unix()
	switch {
	case claims.Iss != f.serviceUserID || claims.Sub != f.serviceUserID:
		return errors.New("assertion issuer is not a known service user")
	case !audOK:
		return errors.New("assertion audience is not this issuer")
	case claims.Exp <= now:
		return errors.New("assertion expired")
	case claims.Iat > now+60 || claims.Iat < now-3600:
		return errors.New("assertion iat is out of range")
	}
	return nil
}

type zitadelListRequest struct {
	Query *struct {
		Offset json.Number `json:"offset"`
		Limit  json.Number `json:"limit"`
		Asc    bool        `json:"asc"`
	} `json:"query"`
	Queries []map[string]map[string]any `json:"queries"`
}

// readList decodes a list request and applies Zitadel's limits.
func (f *Fake) readList(w http.ResponseWriter, r *http.Request) (zitadelListRequest, int, int, bool, bool) {
	var req zitadelListRequest
	dec := json.NewDecoder(r.Body)
	dec.UseNumber()
	if err := dec.Decode(&req); err != nil {
		f.fail(w, http.StatusBadRequest, 3, "invalid request body", "FAKE-400")
		return req, 0, 0, false, false
	}
	offset, limit, asc := 0, DefaultLimit, false
	if req.Query != nil {
		asc = req.Query.Asc
		if s := req.Query.Offset.String(); s != "" {
			n, err := strconv.Atoi(s)
			if err != nil || n < 0 {
				f.fail(w, http.StatusBadRequest, 3, "invalid ListQuery.Offset", "FAKE-400")
				return req, 0, 0, false, false
			}
			offset = n
		}
		if s := req.Query.Limit.String(); s != "" && s != "0" {
			n, err := strconv.Atoi(s)
			if err != nil || n < 0 {
				f.fail(w, http.StatusBadRequest, 3, "invalid ListQuery.Limit", "FAKE-400")
				return req, 0, 0, false, false
			}
			if n > MaxLimit {
				f.fail(w, http.StatusBadRequest, 3, "Errors.Query.LimitExceeded", "QUERY-4M0fs")
				return req, 0, 0, false, false
			}
			limit = n
		}
	}
	return req, offset, limit, asc, true
}

func listBody(total int, items []map[string]any, key string) map[string]any {
	if items == nil {
		items = []map[string]any{}
	}
	return map[string]any{
		"details": map[string]any{"totalResult": strconv.Itoa(total), "processedSequence": strconv.Itoa(total),
			"timestamp": time.Now().UTC().Format(time.RFC3339Nano)},
		key: items,
	}
}

func (f *Fake) listUsers(w http.ResponseWriter, r *http.Request) {
	req, offset, limit, asc, ok := f.readList(w, r)
	if !ok {
		return
	}
	var orgFilter string
	for _, q := range req.Queries {
		if o, ok := q["organizationIdQuery"]; ok {
			orgFilter, _ = o["organizationId"].(string)
		}
	}
	f.mu.RLock()
	defer f.mu.RUnlock()
	var keep func(*User) bool
	if orgFilter != "" {
		keep = func(u *User) bool { return u.OrgID == orgFilter }
	}
	all := f.users.List(keep)
	if !asc {
		all = fakeidp.Ordered(all, "-created_at")
	}
	rows := fakeidp.Window(all, offset, limit)
	out := make([]map[string]any, len(rows))
	for i, u := range rows {
		out[i] = f.userWire(u)
	}
	fakeidp.WriteJSON(w, http.StatusOK, listBody(len(all), out, "result"))
}

func (f *Fake) getUser(w http.ResponseWriter, r *http.Request) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	u, ok := f.users.Get(r.PathValue("id"))
	if !ok {
		f.fail(w, http.StatusNotFound, 5, "Errors.User.NotFound", "QUERY-Dfbg2")
		return
	}
	fakeidp.WriteJSON(w, http.StatusOK, map[string]any{"details": zitadelDetails(u.Sequence, u.CreatedAt, u.ChangedAt, u.OrgID), "user": f.userWire(u)})
}

func (f *Fake) userAction(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	state := map[string]string{"deactivate": "USER_STATE_INACTIVE", "reactivate": "USER_STATE_ACTIVE",
		"lock": "USER_STATE_LOCKED", "unlock": "USER_STATE_ACTIVE"}[r.PathValue("action")]
	if state == "" {
		f.fail(w, http.StatusNotFound, 5, "Not Found", "FAKE-404")
		return
	}
	u, err := f.setUserState(id, state)
	if err != nil {
		f.failErr(w, err)
		return
	}
	f.RecordMutation("user."+r.PathValue("action"), id, nil)
	fakeidp.WriteJSON(w, http.StatusOK, map[string]any{"details": zitadelDetails(u.Sequence, u.CreatedAt, u.ChangedAt, u.OrgID)})
}

func (f *Fake) deleteUser(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	u, ok := f.User(id)
	if err := f.DeleteUser(id); err != nil || !ok {
		f.failErr(w, err)
		return
	}
	f.RecordMutation("user.delete", id, nil)
	fakeidp.WriteJSON(w, http.StatusOK, map[string]any{"details": zitadelDetails(u.Sequence+1, u.CreatedAt, time.Now().UTC(), u.OrgID)})
}

func (f *Fake) listOrgs(w http.ResponseWriter, r *http.Request) {
	req, offset, limit, asc, ok := f.readList(w, r)
	if !ok {
		return
	}
	var name, id string
	for _, q := range req.Queries {
		if n, ok := q["nameQuery"]; ok {
			name, _ = n["name"].(string)
		}
		if n, ok := q["idQuery"]; ok {
			id, _ = n["id"].(string)
		}
	}
	f.mu.RLock()
	defer f.mu.RUnlock()
	var keep func(*Organization) bool
	if name != "" || id != "" {
		keep = func(o *Organization) bool {
			return (name == "" || strings.Contains(strings.ToLower(o.Name), strings.ToLower(name))) && (id == "" || o.ID == id)
		}
	}
	all := f.orgs.List(keep)
	if !asc {
		all = fakeidp.Ordered(all, "-created_at")
	}
	rows := fakeidp.Window(all, offset, limit)
	out := make([]map[string]any, len(rows))
	for i, o := range rows {
		out[i] = orgWireZitadel(o)
	}
	fakeidp.WriteJSON(w, http.StatusOK, listBody(len(all), out, "result"))
}

func (f *Fake) listSessions(w http.ResponseWriter, r *http.Request) {
	req, offset, limit, asc, ok := f.readList(w, r)
	if !ok {
		return
	}
	var userID string
	for _, q := range req.Queries {
		if u, ok := q["userIdQuery"]; ok {
			userID, _ = u["id"].(string)
		}
	}
	f.mu.RLock()
	defer f.mu.RUnlock()
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
	if !asc {
		all = fakeidp.Ordered(all, "-created_at")
	}
	rows := fakeidp.Window(all, offset, limit)
	out := make([]map[string]any, len(rows))
	for i, s := range rows {
		out[i] = f.sessionWire(s)
	}
	fakeidp.WriteJSON(w, http.StatusOK, listBody(len(all), out, "sessions"))
}

func (f *Fake) deleteSession(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if err := f.TerminateSession(id); err != nil {
		f.failErr(w, err)
		return
	}
	f.RecordMutation("session.delete", id, nil)
	now := time.Now().UTC()
	fakeidp.WriteJSON(w, http.StatusOK, map[string]any{"details": zitadelDetails(2, now, now, "")})
}

// ---- webhooks ----------------------------------------------------------------------------

func (f *Fake) emitUser(u *User, eventType string, payload map[string]any) {
	f.emitEvent("user", u.ID, u.OrgID, "v2", u.Sequence, eventType, payload)
}

func (f *Fake) emitEvent(aggType, aggID, owner, version string, seq uint64, eventType string, payload map[string]any) {
	if !f.WebhooksEnabled() || !f.routes(eventType) {
		return
	}
	ev, err := f.event(aggType, aggID, owner, version, seq, eventType, payload)
	if err == nil {
		f.Enqueue(ev)
	}
}

// event builds the Actions v2 event JSON; event_payload is base64 JSON, absent for removals.
func (f *Fake) event(aggType, aggID, owner, version string, seq uint64, eventType string, payload map[string]any) (fakeidp.Event, error) {
	env := map[string]any{
		"aggregateID": aggID, "aggregateType": aggType, "resourceOwner": owner, "instanceID": f.instanceID,
		"version": version, "sequence": seq, "event_type": eventType,
		"created_at": time.Now().Format(time.RFC3339Nano), "userID": f.serviceUserID,
	}
	if payload != nil {
		b, err := json.Marshal(payload)
		if err != nil {
			return fakeidp.Event{}, err
		}
		env["event_payload"] = b // []byte marshals as base64, as Zitadel's does
	}
	body, err := json.Marshal(env)
	if err != nil {
		return fakeidp.Event{}, err
	}
	return fakeidp.Event{ID: fmt.Sprintf("%s:%s:%d", f.instanceID, aggID, seq), Type: eventType, Body: body}, nil
}

// SampleEvent returns one event of eventType built from the fake's first user or organization.
// Supported: user.human.added, user.human.profile.changed, user.deactivated, user.reactivated,
// user.locked, user.unlocked, user.removed, org.added, org.changed, org.removed,
// org.member.added, org.member.removed, session.terminated.
func (f *Fake) SampleEvent(eventType string) (fakeidp.Event, error) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	if f.users.Len() == 0 || f.orgs.Len() == 0 {
		return fakeidp.Event{}, errors.New("zitadel fake: no users or organizations to build a sample event from")
	}
	u, o := f.users.Rows[0], f.orgs.Rows[0]
	switch eventType {
	case "user.human.added":
		return f.event("user", u.ID, u.OrgID, "v2", 1, eventType, map[string]any{"userName": u.Username, "firstName": u.FirstName,
			"lastName": u.LastName, "displayName": u.FirstName + " " + u.LastName, "preferredLanguage": "und", "email": u.Email})
	case "user.human.profile.changed":
		return f.event("user", u.ID, u.OrgID, "v2", u.Sequence+1, eventType, map[string]any{"firstName": u.FirstName, "lastName": u.LastName})
	case "user.deactivated", "user.reactivated", "user.locked", "user.unlocked", "user.removed":
		return f.event("user", u.ID, u.OrgID, "v2", u.Sequence+1, eventType, nil)
	case "org.added", "org.changed":
		return f.event("org", o.ID, o.ID, "v1", o.Sequence, eventType, map[string]any{"name": o.Name})
	case "org.removed":
		return f.event("org", o.ID, o.ID, "v1", o.Sequence+1, eventType, nil)
	case "org.member.added":
		return f.event("org", o.ID, o.ID, "v1", o.Sequence+1, eventType, map[string]any{"userId": u.ID, "roles": []string{"ORG_OWNER"}})
	case "org.member.removed":
		return f.event("org", o.ID, o.ID, "v1", o.Sequence+1, eventType, map[string]any{"userId": u.ID})
	case "session.terminated":
		return f.event("session", zitadelID(3, 0), u.OrgID, "v1", 2, eventType, nil)
	}
	return fakeidp.Event{}, fmt.Errorf("zitadel fake: unsupported sample event type %q", eventType)
}

// SignEvent returns the headers Zitadel would send with ev for target.
func (f *Fake) SignEvent(t fakeidp.WebhookTarget, ev fakeidp.Event, at time.Time) (http.Header, error) {
	return f.signWebhook(t, ev, at)
}

// signWebhook signs as Zitadel's Actions v2 targets do.
func (f *Fake) signWebhook(t fakeidp.WebhookTarget, ev fakeidp.Event, _ time.Time) (http.Header, error) {
	h := http.Header{}
	h.Set(zitadel.SigningHeader, zitadel.Sign(time.Now(), ev.Body, t.Secret))
	return h, nil
}
