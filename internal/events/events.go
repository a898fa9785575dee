// Package events is idpsync's domain: the canonical event and entity types every identity provider
// is translated into, and the vocabularies shared by configuration and logic (entities, revocation
// triggers, the rule for ids).
//
// It knows no engine (no NATS, no SQL, no HTTP) and no provider, and imports the standard library
// only. Each provider's parsers (internal/provider/<kind>) take the verified raw body of a delivery
// and return an Event of this package; they never panic on any input.
package events

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Kind is the kind of identity provider a source is ("clerk", "zitadel", …). The kinds idpsync
// understands are those registered in internal/provider.
type Kind string

// Entity names what an event is about.
type Entity string

// The entities of the mirror, plus sessions, which are recorded but not mirrored.
const (
	EntityUser         Entity = "user"
	EntityOrganization Entity = "organization"
	EntityMembership   Entity = "membership"
	EntitySession      Entity = "session"
)

// Type is a canonical event type, "<entity>.<action>". Every IdP's own type names are translated
// into these; an event whose IdP type has no canonical equivalent has an empty Type.
type Type string

// The canonical event types.
const (
	UserCreated         Type = "user.created"
	UserUpdated         Type = "user.updated"
	UserDeleted         Type = "user.deleted"
	OrganizationCreated Type = "organization.created"
	OrganizationUpdated Type = "organization.updated"
	OrganizationDeleted Type = "organization.deleted"
	MembershipCreated   Type = "membership.created"
	MembershipUpdated   Type = "membership.updated"
	MembershipDeleted   Type = "membership.deleted"
	SessionCreated      Type = "session.created"
	SessionPending      Type = "session.pending"
	SessionEnded        Type = "session.ended"
	SessionRemoved      Type = "session.removed"
	SessionRevoked      Type = "session.revoked"
)

// Entity returns the entity the type is about, or "" for an empty type.
func (t Type) Entity() Entity {
	switch t {
	case UserCreated, UserUpdated, UserDeleted:
		return EntityUser
	case OrganizationCreated, OrganizationUpdated, OrganizationDeleted:
		return EntityOrganization
	case MembershipCreated, MembershipUpdated, MembershipDeleted:
		return EntityMembership
	case SessionCreated, SessionPending, SessionEnded, SessionRemoved, SessionRevoked:
		return EntitySession
	}
	return ""
}

// ErrMalformed is wrapped by every parse error: the payload verified but cannot be understood. The
// worker keeps such payloads as dead letters instead of retrying them.
var ErrMalformed = errors.New("malformed payload")

// Malformed returns an error wrapping ErrMalformed, for parsers: the text says what is wrong with
// the payload (never the payload itself).
func Malformed(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrMalformed, fmt.Sprintf(format, args...))
}

// Envelope is what routing needs to know of an event: enough to name its subject and dedupe it,
// without decoding the entities.
type Envelope struct {
	// ID identifies the event within its source and is stable across the IdP's retries: the
	// delivery id when the IdP sends one (svix-id), else derived from the payload.
	ID string
	// Type is the canonical type, or "" when the IdP type has no canonical equivalent.
	Type Type
	// SourceType is the IdP's own name for the event type, e.g. "organizationMembership.created".
	SourceType string
	// OccurredAt is when the IdP says the event happened; zero when the payload does not say.
	OccurredAt time.Time
}

// Event is a parsed event. Exactly one of the entity pointers is set for a canonical type; none is
// set for an event without a canonical type.
type Event struct {
	Envelope
	User         *User
	Organization *Organization
	Membership   *Membership
	Session      *Session
}

// Version orders the states of one entity from one source: a larger version is newer. Each parser
// documents what its versions are made of (Clerk: updated_at in Unix milliseconds).
type Version = int64

// User is a person (or machine user) at an IdP, as the mirror keeps it.
type User struct {
	ID           string
	ExternalID   string
	PrimaryEmail string
	Emails       []string
	Username     string
	FirstName    string
	LastName     string
	ImageURL     string
	// Banned means the IdP forbids sign-in for good (Clerk banned, Zitadel deactivated, AuthPI
	// suspended or disabled). Locked means sign-in is forbidden for a while (too many attempts, or
	// an administrator's lock).
	Banned  bool
	Locked  bool
	Deleted bool
	// Partial means the event named the user but did not carry its state (Zitadel's events carry
	// changes): the worker reads the user from the IdP's management API before writing it.
	Partial bool
	// Credentials is what the IdP says of the user's credentials; nil when its payloads do not
	// say (only Clerk's do).
	Credentials *Credentials
	CreatedAt   time.Time
	UpdatedAt   time.Time
	Version     Version
	// Raw is the IdP's own JSON for the user, kept verbatim in the mirror.
	Raw json.RawMessage
}

// Credentials is what an IdP says of a user's credentials.
type Credentials struct {
	// Password is true when the user has a password.
	Password bool
	// PasswordChangedAt is when the password was last set; zero when the IdP does not say.
	PasswordChangedAt time.Time
	// TOTP is true when an authenticator app (TOTP) is enrolled.
	TOTP bool
}

// Organization is a tenant, team or workspace at an IdP.
type Organization struct {
	ID       string
	Name     string
	Slug     string
	ImageURL string
	// Suspended means the IdP disabled the organization without deleting it.
	Suspended bool
	Deleted   bool
	// Partial: as for User.
	Partial   bool
	CreatedAt time.Time
	UpdatedAt time.Time
	Version   Version
	Raw       json.RawMessage
}

// Membership places a user in an organization with a role. The mirror keys it by the pair
// (OrganizationID, UserID): a user removed and added again is the same membership, revived.
type Membership struct {
	// ID is the IdP's own id for the membership, when it has one.
	ID             string
	OrganizationID string
	UserID         string
	Role           string
	Permissions    []string
	Deleted        bool
	CreatedAt      time.Time
	UpdatedAt      time.Time
	Version        Version
	Raw            json.RawMessage
}

// Session is a sign-in session at an IdP. Sessions are recorded in the event log; the mirror does
// not keep them.
type Session struct {
	ID       string
	UserID   string
	ClientID string
	Status   string
	Raw      json.RawMessage
}
