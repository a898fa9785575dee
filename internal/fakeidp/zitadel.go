package fakeidp

import (
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

	"github.com/idpsync/idpsync/internal/webhook"
)

// ZitadelMaxLimit is Zitadel's default MaxQueryLimit: larger limits are rejected (v4.20 and
// later). A request without a limit gets ZitadelDefaultLimit.
const (
	ZitadelMaxLimit     = 1000
	ZitadelDefaultLimit = 100
)

// ZitadelOptions configures a Zitadel fake.
type ZitadelOptions struct {
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

// ZitadelUser is a user held by the Zitadel fake.
type ZitadelUser struct {
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

// ZitadelOrganization is an organization held by the Zitadel fake.
type ZitadelOrganization struct {
	ID        string
	Name      string
	Domain    string
	State     string
	Sequence  uint64
	CreatedAt time.Time
	ChangedAt time.Time
}

// ZitadelSession is a session held by the Zitadel fake.
type ZitadelSession struct {
	ID        string
	UserID    string
	Sequence  uint64
	CreatedAt time.Time
	ChangedAt time.Time
	ExpiresAt time.Time
}

// Zitadel is an in-memory imitation of Zitadel's v2 REST API and token endpoint (PAT, client
// credentials and private key JWT), with Zitadel's limits and error bodies and Actions v2
// webhooks signed with ZITADEL-Signature.
type Zitadel struct {
	*Core
	pat, clientID, clientSecret string
	ttl                         time.Duration
	instanceID                  string
	key                         *rsa.PrivateKey
	keyID, serviceUserID        string
	seq                         atomic.Int64

	mu       sync.RWMutex
	issuer   string
	tokens   map[string]time.Time
	users    *table[ZitadelUser]
	orgs     *table[ZitadelOrganization]
	members  map[string]map[string][]string // org id → user id → roles
	sessions *table[ZitadelSession]
	byUser   map[string][]string
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

// NewZitadel returns a Zitadel fake holding the generated data set of opts.
func NewZitadel(opts ZitadelOptions) *Zitadel {
	f := &Zitadel{
		pat:          orStr(opts.PAT, "fakeidp-zitadel-pat"),
		clientID:     orStr(opts.ClientID, "fakeidp-client"),
		clientSecret: orStr(opts.ClientSecret, "fakeidp-client-secret"),
		ttl:          opts.TokenTTL,
		// A new instance id per process unless given: Zitadel's event ids (instance, aggregate,
		// sequence) must not repeat those of an earlier run.
		instanceID:    orStr(opts.InstanceID, strconv.FormatUint(3e17+mrand.Uint64N(1e17), 10)),
		key:           serviceUserKey(),
		keyID:         "300000000000000002",
		serviceUserID: "300000000000000003",
		tokens:        map[string]time.Time{},
		users:         newTable(func(u *ZitadelUser) string { return u.ID }, opts.Users),
		orgs:          newTable(func(o *ZitadelOrganization) string { return o.ID }, opts.Organizations),
		members:       map[string]map[string][]string{},
		sessions:      newTable(func(s *ZitadelSession) string { return s.ID }, opts.Users*opts.SessionsPerUser),
		byUser:        map[string][]string{},
	}
	if f.ttl <= 0 {
		f.ttl = 43199 * time.Second
	}
	f.Core = newCore("zitadel", zitadelErrorBody)
	f.hooks.sign = func(t WebhookTarget, ev Event, at time.Time) (http.Header, error) {
		h := http.Header{}
		h.Set(webhook.ZitadelSigningHeader, webhook.SignZitadel(at, ev.Body, t.Secret))
		return h, nil
	}
	f.seq.Store(int64(opts.Users*(opts.SessionsPerUser+1) + opts.Organizations + 10))
	for i := range max(opts.Organizations, 1) {
		name, slug := genOrgName(i)
		at := genEpoch.Add(time.Duration(i) * time.Hour)
		o := &ZitadelOrganization{ID: zitadelID(1, i), Name: name, Domain: slug + ".fakeidp.localhost",
			State: "ORGANIZATION_STATE_ACTIVE", Sequence: 1, CreatedAt: at, ChangedAt: at}
		f.orgs.add(o)
		f.members[o.ID] = map[string][]string{}
	}
	for i := range opts.Users {
		p := genPerson(opts.Seed, i)
		org := f.orgs.rows[i%f.orgs.len()]
		u := &ZitadelUser{ID: zitadelID(2, i), OrgID: org.ID, Username: p.Username, FirstName: p.First, LastName: p.Last,
			Email: p.Email, EmailVerified: true, State: "USER_STATE_ACTIVE", Sequence: 2, CreatedAt: p.Created, ChangedAt: p.Created}
		f.users.add(u)
		for s := range opts.SessionsPerUser {
			n := i*opts.SessionsPerUser + s
			sess := &ZitadelSession{ID: zitadelID(3, n), UserID: u.ID, Sequence: 1, CreatedAt: p.Created, ChangedAt: p.Created,
				ExpiresAt: p.Created.Add(24 * time.Hour)}
			f.sessions.add(sess)
			f.byUser[u.ID] = append(f.byUser[u.ID], sess.ID)
		}
	}
	return f
}

// zitadelID returns an 18-digit id like Zitadel's snowflakes, increasing with i within a kind.
func zitadelID(kind, i int) string {
	return strconv.FormatUint(310000000000000000+uint64(kind)*1_000_000_000_000+uint64(i), 10)
}

func (f *Zitadel) newID() string { return zitadelID(9, int(f.seq.Add(1))) }

// Start serves the fake on a loopback port and returns its base URL (also the issuer).
func (f *Zitadel) Start() string {
	u := f.start(f.Handler())
	f.SetIssuer(u)
	return u
}

// SetIssuer sets the issuer the fake expects as the audience of JWT assertions (its external
// base URL). Start sets it; a server mounted elsewhere must call it.
func (f *Zitadel) SetIssuer(issuer string) {
	f.mu.Lock()
	f.issuer = strings.TrimSuffix(issuer, "/")
	f.mu.Unlock()
}

// PAT returns the personal access token the fake accepts.
func (f *Zitadel) PAT() string { return f.pat }

// ClientCredentials returns the client id and secret the fake accepts.
func (f *Zitadel) ClientCredentials() (id, secret string) { return f.clientID, f.clientSecret }

// KeyFile returns the JSON key file of the fake's service user, as Zitadel's console downloads it.
func (f *Zitadel) KeyFile() []byte {
	der := x509.MarshalPKCS1PrivateKey(f.key)
	b, _ := json.Marshal(map[string]string{
		"type": "serviceaccount", "keyId": f.keyID, "userId": f.serviceUserID,
		"key": string(pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: der})),
	})
	return b
}

// TokenRequests returns how many token requests the fake answered successfully.
func (f *Zitadel) TokenRequests() int {
	n := 0
	for _, r := range f.Requests() {
		if r.Path == "/oauth/v2/token" && r.Status == http.StatusOK {
			n++
		}
	}
	return n
}

// ExpireTokens makes every access token issued so far invalid (as after a key rotation).
func (f *Zitadel) ExpireTokens() {
	f.mu.Lock()
	clear(f.tokens)
	f.mu.Unlock()
}

// ---- Go-side data access and mutation -------------------------------------------------------

// UserIDs returns the ids of all users in creation order.
func (f *Zitadel) UserIDs() []string {
	f.mu.RLock()
	defer f.mu.RUnlock()
	ids := make([]string, len(f.users.rows))
	for i, u := range f.users.rows {
		ids[i] = u.ID
	}
	return ids
}

// User returns a copy of one user.
func (f *Zitadel) User(id string) (ZitadelUser, bool) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	u, ok := f.users.get(id)
	if !ok {
		return ZitadelUser{}, false
	}
	return *u, true
}

// OrganizationIDs returns the ids of all organizations in creation order.
func (f *Zitadel) OrganizationIDs() []string {
	f.mu.RLock()
	defer f.mu.RUnlock()
	ids := make([]string, len(f.orgs.rows))
	for i, o := range f.orgs.rows {
		ids[i] = o.ID
	}
	return ids
}

// CreateUser adds a human (or machine) user and emits user.human.added (user.machine.added).
// An empty OrgID puts the user in the first organization.
func (f *Zitadel) CreateUser(u ZitadelUser) ZitadelUser {
	now := time.Now().UTC()
	f.mu.Lock()
	if u.ID == "" {
		u.ID = f.newID()
	}
	if u.OrgID == "" && f.orgs.len() > 0 {
		u.OrgID = f.orgs.rows[0].ID
	}
	if u.State == "" {
		u.State = "USER_STATE_ACTIVE"
	}
	if u.CreatedAt.IsZero() {
		u.CreatedAt = now
	}
	u.ChangedAt, u.Sequence = u.CreatedAt, 1
	f.users.add(&u)
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
func (f *Zitadel) UpdateUserProfile(id, firstName, lastName string) (ZitadelUser, error) {
	return f.changeUser(id, "user.human.profile.changed", func(u *ZitadelUser) (map[string]any, error) {
		u.FirstName, u.LastName = firstName, lastName
		return map[string]any{"firstName": firstName, "lastName": lastName, "displayName": strings.TrimSpace(firstName + " " + lastName)}, nil
	})
}

// UpdateUserEmail changes a human's email and emits user.human.email.changed.
func (f *Zitadel) UpdateUserEmail(id, email string) (ZitadelUser, error) {
	return f.changeUser(id, "user.human.email.changed", func(u *ZitadelUser) (map[string]any, error) {
		u.Email = email
		return map[string]any{"email": email}, nil
	})
}

// SetUserState moves a user to USER_STATE_ACTIVE, _INACTIVE or _LOCKED and emits
// user.reactivated, user.deactivated, user.locked or user.unlocked, enforcing Zitadel's
// preconditions.
func (f *Zitadel) SetUserState(id, state string) (ZitadelUser, error) {
	return f.setUserState(id, state)
}

func (f *Zitadel) setUserState(id, state string) (ZitadelUser, error) {
	var eventType string
	u, err := f.changeUser(id, "", func(u *ZitadelUser) (map[string]any, error) {
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
		return ZitadelUser{}, err
	}
	f.emitUser(&u, eventType, nil)
	return u, nil
}

type errPrecondition struct{ key, id string }

func (e errPrecondition) Error() string { return e.key + " (" + e.id + ")" }

func (f *Zitadel) changeUser(id, eventType string, change func(*ZitadelUser) (map[string]any, error)) (ZitadelUser, error) {
	f.mu.Lock()
	u, ok := f.users.get(id)
	if !ok {
		f.mu.Unlock()
		return ZitadelUser{}, errNotFound{"Errors.User.NotFound", "QUERY-Dfbg2"}
	}
	payload, err := change(u)
	if err != nil {
		f.mu.Unlock()
		return ZitadelUser{}, err
	}
	u.Sequence++
	u.ChangedAt = laterTime(u.ChangedAt)
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
func (f *Zitadel) DeleteUser(id string) error {
	f.mu.Lock()
	u, ok := f.users.remove(id)
	if ok {
		for _, sid := range f.byUser[id] {
			f.sessions.remove(sid)
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
func (f *Zitadel) CreateOrganization(o ZitadelOrganization) ZitadelOrganization {
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
	f.orgs.add(&o)
	f.members[o.ID] = map[string][]string{}
	f.mu.Unlock()
	f.emitEvent("org", o.ID, o.ID, "v1", o.Sequence, "org.added", map[string]any{"name": o.Name})
	return o
}

// RenameOrganization changes an organization's name and emits org.changed.
func (f *Zitadel) RenameOrganization(id, name string) (ZitadelOrganization, error) {
	f.mu.Lock()
	o, ok := f.orgs.get(id)
	if !ok {
		f.mu.Unlock()
		return ZitadelOrganization{}, errNotFound{"Errors.Org.NotFound", "QUERY-iTTGJ"}
	}
	o.Name = name
	o.Sequence++
	o.ChangedAt = laterTime(o.ChangedAt)
	out := *o
	f.mu.Unlock()
	f.emitEvent("org", id, id, "v1", out.Sequence, "org.changed", map[string]any{"name": name})
	return out, nil
}

// DeleteOrganization removes an organization and emits org.removed.
func (f *Zitadel) DeleteOrganization(id string) error {
	f.mu.Lock()
	o, ok := f.orgs.remove(id)
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
func (f *Zitadel) AddMember(orgID, userID string, roles ...string) error {
	f.mu.Lock()
	m, ok := f.members[orgID]
	o, _ := f.orgs.get(orgID)
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
func (f *Zitadel) RemoveMember(orgID, userID string) error {
	f.mu.Lock()
	m, ok := f.members[orgID]
	o, _ := f.orgs.get(orgID)
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
func (f *Zitadel) SessionsOf(userID string) []ZitadelSession {
	f.mu.RLock()
	defer f.mu.RUnlock()
	var out []ZitadelSession
	for _, id := range f.byUser[userID] {
		if s, ok := f.sessions.get(id); ok {
			out = append(out, *s)
		}
	}
	return out
}

// CreateSession starts a session for a user and emits session.added.
func (f *Zitadel) CreateSession(userID string) (ZitadelSession, error) {
	now := time.Now().UTC()
	f.mu.Lock()
	u, ok := f.users.get(userID)
	if !ok {
		f.mu.Unlock()
		return ZitadelSession{}, errNotFound{"Errors.User.NotFound", "QUERY-Dfbg2"}
	}
	s := &ZitadelSession{ID: f.newID(), UserID: userID, Sequence: 1, CreatedAt: now, ChangedAt: now, ExpiresAt: now.Add(24 * time.Hour)}
	f.sessions.add(s)
	f.byUser[userID] = append(f.byUser[userID], s.ID)
	org := u.OrgID
	out := *s
	f.mu.Unlock()
	f.emitEvent("session", s.ID, org, "v1", 1, "session.added", map[string]any{"userAgent": nil})
	return out, nil
}

// TerminateSession deletes a session and emits session.terminated.
func (f *Zitadel) TerminateSession(id string) error {
	f.mu.Lock()
	s, ok := f.sessions.remove(id)
	var org string
	if ok {
		ids := f.byUser[s.UserID]
		for i, sid := range ids {
			if sid == id {
				f.byUser[s.UserID] = append(ids[:i:i], ids[i+1:]...)
				break
			}
		}
		if u, ok := f.users.get(s.UserID); ok {
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

func laterTime(prev time.Time) time.Time {
	now := time.Now().UTC()
	if !now.After(prev) {
		return prev.Add(time.Microsecond)
	}
	return now
}

// ---- wire shapes --------------------------------------------------------------------------

func zitadelDetails(seq uint64, created, changed time.Time, owner string) map[string]any {
	return map[string]any{"sequence": strconv.FormatUint(seq, 10), "creationDate": created.Format(time.RFC3339Nano),
		"changeDate": changed.Format(time.RFC3339Nano), "resourceOwner": owner}
}

func (f *Zitadel) userWire(u *ZitadelUser) map[string]any {
	org, _ := f.orgs.get(u.OrgID)
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

func orgWireZitadel(o *ZitadelOrganization) map[string]any {
	return map[string]any{"id": o.ID, "details": zitadelDetails(o.Sequence, o.CreatedAt, o.ChangedAt, o.ID),
		"state": o.State, "name": o.Name, "primaryDomain": o.Domain}
}

func (f *Zitadel) sessionWire(s *ZitadelSession) map[string]any {
	w := map[string]any{"id": s.ID, "creationDate": s.CreatedAt.Format(time.RFC3339Nano),
		"changeDate": s.ChangedAt.Format(time.RFC3339Nano), "sequence": strconv.FormatUint(s.Sequence, 10),
		"metadata": map[string]string{}, "expirationDate": s.ExpiresAt.Format(time.RFC3339Nano)}
	if u, ok := f.users.get(s.UserID); ok {
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
func (f *Zitadel) Handler() http.Handler {
	api := http.NewServeMux()
	api.HandleFunc("POST /v2/users", f.listUsers)
	api.HandleFunc("GET /v2/users/{id}", f.getUser)
	api.HandleFunc("DELETE /v2/users/{id}", f.deleteUser)
	api.HandleFunc("POST /v2/users/{id}/{action}", f.userAction)
	api.HandleFunc("POST /v2/organizations/_search", f.listOrgs)
	api.HandleFunc("POST /v2/sessions/search", f.listSessions)
	api.HandleFunc("DELETE /v2/sessions/{id}", f.deleteSession)
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
	return f.wrap(root)
}

func (f *Zitadel) fail(w http.ResponseWriter, status, code int, key, id string) {
	ct, body := zitadelErrorJSON(code, key, id)
	w.Header().Set("Content-Type", ct)
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

func (f *Zitadel) failErr(w http.ResponseWriter, err error) {
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

func (f *Zitadel) authorized(r *http.Request) bool {
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

func oauthError(w http.ResponseWriter, status int, code, desc string) {
	writeJSON(w, status, map[string]string{"error": code, "error_description": desc})
}

func (f *Zitadel) token(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		oauthError(w, http.StatusBadRequest, "invalid_request", "malformed form body")
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
			oauthError(w, http.StatusUnauthorized, "invalid_client", "client authentication failed")
			return
		}
	case "urn:ietf:params:oauth:grant-type:jwt-bearer":
		if err := f.verifyAssertion(r.PostForm.Get("assertion")); err != nil {
			oauthError(w, http.StatusBadRequest, "invalid_grant", err.Error())
			return
		}
	default:
		oauthError(w, http.StatusBadRequest, "unsupported_grant_type", "grant_type is not supported")
		return
	}
	if !hasAud {
		// Zitadel issues the token, but its API rejects it: model that by issuing an unusable one.
		writeJSON(w, http.StatusOK, map[string]any{"access_token": "no-zitadel-audience", "token_type": "Bearer", "expires_in": int(f.ttl.Seconds())})
		return
	}
	buf := make([]byte, 24)
	_, _ = rand.Read(buf)
	tok := base64.RawURLEncoding.EncodeToString(buf)
	f.mu.Lock()
	f.tokens[tok] = time.Now().Add(f.ttl)
	f.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{"access_token": tok, "token_type": "Bearer", "expires_in": int(f.ttl.Seconds())})
}

// verifyAssertion checks a JWT profile assertion: RS256 by the service user's key, iss = sub =
// its user id, aud = the issuer, not expired.
func (f *Zitadel) verifyAssertion(jwt string) error {
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
func (f *Zitadel) readList(w http.ResponseWriter, r *http.Request) (zitadelListRequest, int, int, bool, bool) {
	var req zitadelListRequest
	dec := json.NewDecoder(r.Body)
	dec.UseNumber()
	if err := dec.Decode(&req); err != nil {
		f.fail(w, http.StatusBadRequest, 3, "invalid request body", "FAKE-400")
		return req, 0, 0, false, false
	}
	offset, limit, asc := 0, ZitadelDefaultLimit, false
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
			if n > ZitadelMaxLimit {
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

func (f *Zitadel) listUsers(w http.ResponseWriter, r *http.Request) {
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
	var keep func(*ZitadelUser) bool
	if orgFilter != "" {
		keep = func(u *ZitadelUser) bool { return u.OrgID == orgFilter }
	}
	all := f.users.list(keep)
	if !asc {
		all = ordered(all, "-created_at")
	}
	rows := window(all, offset, limit)
	out := make([]map[string]any, len(rows))
	for i, u := range rows {
		out[i] = f.userWire(u)
	}
	writeJSON(w, http.StatusOK, listBody(len(all), out, "result"))
}

func (f *Zitadel) getUser(w http.ResponseWriter, r *http.Request) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	u, ok := f.users.get(r.PathValue("id"))
	if !ok {
		f.fail(w, http.StatusNotFound, 5, "Errors.User.NotFound", "QUERY-Dfbg2")
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"details": zitadelDetails(u.Sequence, u.CreatedAt, u.ChangedAt, u.OrgID), "user": f.userWire(u)})
}

func (f *Zitadel) userAction(w http.ResponseWriter, r *http.Request) {
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
	f.recordMutation("user."+r.PathValue("action"), id, nil)
	writeJSON(w, http.StatusOK, map[string]any{"details": zitadelDetails(u.Sequence, u.CreatedAt, u.ChangedAt, u.OrgID)})
}

func (f *Zitadel) deleteUser(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	u, ok := f.User(id)
	if err := f.DeleteUser(id); err != nil || !ok {
		f.failErr(w, err)
		return
	}
	f.recordMutation("user.delete", id, nil)
	writeJSON(w, http.StatusOK, map[string]any{"details": zitadelDetails(u.Sequence+1, u.CreatedAt, time.Now().UTC(), u.OrgID)})
}

func (f *Zitadel) listOrgs(w http.ResponseWriter, r *http.Request) {
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
	var keep func(*ZitadelOrganization) bool
	if name != "" || id != "" {
		keep = func(o *ZitadelOrganization) bool {
			return (name == "" || strings.Contains(strings.ToLower(o.Name), strings.ToLower(name))) && (id == "" || o.ID == id)
		}
	}
	all := f.orgs.list(keep)
	if !asc {
		all = ordered(all, "-created_at")
	}
	rows := window(all, offset, limit)
	out := make([]map[string]any, len(rows))
	for i, o := range rows {
		out[i] = orgWireZitadel(o)
	}
	writeJSON(w, http.StatusOK, listBody(len(all), out, "result"))
}

func (f *Zitadel) listSessions(w http.ResponseWriter, r *http.Request) {
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
	var all []*ZitadelSession
	if userID != "" {
		for _, id := range f.byUser[userID] {
			if s, ok := f.sessions.get(id); ok {
				all = append(all, s)
			}
		}
	} else {
		all = f.sessions.rows
	}
	if !asc {
		all = ordered(all, "-created_at")
	}
	rows := window(all, offset, limit)
	out := make([]map[string]any, len(rows))
	for i, s := range rows {
		out[i] = f.sessionWire(s)
	}
	writeJSON(w, http.StatusOK, listBody(len(all), out, "sessions"))
}

func (f *Zitadel) deleteSession(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if err := f.TerminateSession(id); err != nil {
		f.failErr(w, err)
		return
	}
	f.recordMutation("session.delete", id, nil)
	now := time.Now().UTC()
	writeJSON(w, http.StatusOK, map[string]any{"details": zitadelDetails(2, now, now, "")})
}

// ---- webhooks ----------------------------------------------------------------------------

func (f *Zitadel) emitUser(u *ZitadelUser, eventType string, payload map[string]any) {
	f.emitEvent("user", u.ID, u.OrgID, "v2", u.Sequence, eventType, payload)
}

func (f *Zitadel) emitEvent(aggType, aggID, owner, version string, seq uint64, eventType string, payload map[string]any) {
	if !f.hooks.enabled() {
		return
	}
	ev, err := f.event(aggType, aggID, owner, version, seq, eventType, payload)
	if err == nil {
		f.hooks.enqueue(ev)
	}
}

// event builds the Actions v2 event JSON; event_payload is base64 JSON, absent for removals.
func (f *Zitadel) event(aggType, aggID, owner, version string, seq uint64, eventType string, payload map[string]any) (Event, error) {
	env := map[string]any{
		"aggregateID": aggID, "aggregateType": aggType, "resourceOwner": owner, "instanceID": f.instanceID,
		"version": version, "sequence": seq, "event_type": eventType,
		"created_at": time.Now().Format(time.RFC3339Nano), "userID": f.serviceUserID,
	}
	if payload != nil {
		b, err := json.Marshal(payload)
		if err != nil {
			return Event{}, err
		}
		env["event_payload"] = b // []byte marshals as base64, as Zitadel's does
	}
	body, err := json.Marshal(env)
	if err != nil {
		return Event{}, err
	}
	return Event{ID: fmt.Sprintf("%s:%s:%d", f.instanceID, aggID, seq), Type: eventType, Body: body}, nil
}

// SampleEvent returns one event of eventType built from the fake's first user or organization.
// Supported: user.human.added, user.human.profile.changed, user.deactivated, user.reactivated,
// user.locked, user.unlocked, user.removed, org.added, org.changed, org.removed,
// org.member.added, org.member.removed, session.terminated.
func (f *Zitadel) SampleEvent(eventType string) (Event, error) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	if f.users.len() == 0 || f.orgs.len() == 0 {
		return Event{}, errors.New("zitadel fake: no users or organizations to build a sample event from")
	}
	u, o := f.users.rows[0], f.orgs.rows[0]
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
	return Event{}, fmt.Errorf("zitadel fake: unsupported sample event type %q", eventType)
}

// SignEvent returns the headers Zitadel would send with ev for target.
func (f *Zitadel) SignEvent(t WebhookTarget, ev Event, at time.Time) (http.Header, error) {
	return f.hooks.sign(t, ev, at)
}
