package ssf

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Event type URIs, as CAEP 1.0, RISC 1.0 and SSF 1.0 define them.
const (
	caepBase = "https://schemas.openid.net/secevent/caep/event-type/"
	riscBase = "https://schemas.openid.net/secevent/risc/event-type/"
	ssfBase  = "https://schemas.openid.net/secevent/ssf/event-type/"

	// TypeSessionRevoked (CAEP): the session identified by the subject was revoked.
	TypeSessionRevoked = caepBase + "session-revoked"
	// TypeCredentialChange (CAEP): a credential was created, changed, revoked or deleted.
	TypeCredentialChange = caepBase + "credential-change"
	// TypeTokenClaimsChange (CAEP): a claim in the subject's tokens changed.
	TypeTokenClaimsChange = caepBase + "token-claims-change"
	// TypeAccountDisabled (RISC): the account was disabled; it may be enabled again.
	TypeAccountDisabled = riscBase + "account-disabled"
	// TypeAccountEnabled (RISC): the account was enabled.
	TypeAccountEnabled = riscBase + "account-enabled"
	// TypeAccountPurged (RISC): the account was permanently deleted.
	TypeAccountPurged = riscBase + "account-purged"
	// TypeIdentifierChanged (RISC): the identifier in the subject (an email) changed.
	TypeIdentifierChanged = riscBase + "identifier-changed"
	// TypeVerification (SSF): a verification event a receiver asked for, on its stream.
	TypeVerification = ssfBase + "verification"
	// TypeStreamUpdated (SSF): the transmitter changed the stream's status.
	TypeStreamUpdated = ssfBase + "stream-updated"
)

// EventTypes are the event types idpsync transmits about users and sessions, the
// events_supported of every stream. Verification and stream-updated events are sent on every
// stream whatever it requested, as SSF 1.0 allows.
var EventTypes = []string{
	TypeSessionRevoked, TypeCredentialChange, TypeTokenClaimsChange,
	TypeAccountDisabled, TypeAccountEnabled, TypeAccountPurged, TypeIdentifierChanged,
}

// Initiator is CAEP's initiating_entity: who or what caused the event.
type Initiator string

// The initiating entities CAEP 1.0 defines.
const (
	InitiatorAdmin  Initiator = "admin"
	InitiatorUser   Initiator = "user"
	InitiatorPolicy Initiator = "policy"
	InitiatorSystem Initiator = "system"
)

// CAEP credential-change vocabulary (CAEP 1.0 §3.3.1).
var (
	// CredentialTypes are the credential_type values CAEP defines.
	CredentialTypes = []string{"password", "pin", "x509", "fido2-platform", "fido2-roaming", "fido-u2f",
		"verifiable-credential", "phone-voice", "phone-sms", "app"}
	// ChangeTypes are the change_type values CAEP defines.
	ChangeTypes = []string{"create", "revoke", "update", "delete"}
)

// ErrInvalidEvent is returned for an event that lacks what its type requires.
var ErrInvalidEvent = errors.New("invalid ssf event")

// User names a user as receivers know them: by the issuer and subject of the user's tokens
// (an iss_sub subject), and by email when idpsync knows it.
type User struct {
	// Issuer is the OIDC issuer of the user's tokens (the IdP's).
	Issuer string
	// ID is the user's id at the IdP: the sub of its tokens.
	ID string
	// Email is the user's primary email; "" when unknown.
	Email string
}

func (u User) issSub() Subject { return Subject{Format: FormatIssSub, Iss: u.Issuer, Sub: u.ID} }

// identifiers are the simple subjects that name u, the primary (iss_sub) first.
func (u User) identifiers() []Subject {
	ids := []Subject{u.issSub()}
	if u.Email != "" {
		ids = append(ids, Subject{Format: FormatEmail, Email: u.Email})
	}
	return ids
}

// Event is one SSF event about one subject: what a SET carries in its sub_id and events claims.
// Build it with the constructors below; Validate tells whether it carries what its type requires.
type Event struct {
	// Type is the event type URI.
	Type string
	// Subject is the SET's sub_id.
	Subject Subject
	// Body is the event object (the value of Type in the events claim).
	Body map[string]any
	// Txn, when set, is the SET's txn: the same for every SET that one change caused.
	Txn string

	// members are the identifiers of the event's subject principal by complex-subject member name
	// ("user", "session"), used to match the subjects receivers added to their streams. They are
	// not transmitted.
	members map[string][]Subject
}

// WithTxn returns e with txn set.
func (e Event) WithTxn(txn string) Event {
	e.Txn = txn
	return e
}

// caepBody is the body of a CAEP event: event_timestamp, initiating_entity and reason_admin
// (the CAEP interoperability profile requires a non-empty reason_admin for session-revoked and
// credential-change).
func caepBody(at time.Time, by Initiator, reason string) map[string]any {
	b := map[string]any{}
	if !at.IsZero() {
		b["event_timestamp"] = at.Unix()
	}
	if by != "" {
		b["initiating_entity"] = string(by)
	}
	if reason != "" {
		b["reason_admin"] = map[string]string{"en": reason}
	}
	return b
}

func userEvent(typ string, u User, body map[string]any) Event {
	return Event{Type: typ, Subject: u.issSub(), Body: body, members: map[string][]Subject{"user": u.identifiers()}}
}

// SessionRevoked is CAEP session-revoked for one session of u: a complex subject of the user
// (iss_sub) and the session (opaque, the IdP's session id). at is when the session was revoked.
func SessionRevoked(u User, sessionID string, at time.Time, by Initiator, reason string) Event {
	session := Subject{Format: FormatOpaque, ID: sessionID}
	user := u.issSub()
	return Event{
		Type:    TypeSessionRevoked,
		Subject: Subject{Format: FormatComplex, User: &user, Session: &session},
		Body:    caepBody(at, by, reason),
		members: map[string][]Subject{"user": u.identifiers(), "session": {session}},
	}
}

// CredentialChange is CAEP credential-change: credentialType is one of CredentialTypes (or one
// agreed with the receiver) and changeType one of ChangeTypes.
func CredentialChange(u User, credentialType, changeType string, at time.Time, by Initiator, reason string) Event {
	b := caepBody(at, by, reason)
	b["credential_type"] = credentialType
	b["change_type"] = changeType
	return userEvent(TypeCredentialChange, u, b)
}

// TokenClaimsChange is CAEP token-claims-change: claims are the changed claims of u's tokens
// with their new values.
func TokenClaimsChange(u User, claims map[string]any, at time.Time, by Initiator, reason string) Event {
	b := caepBody(at, by, reason)
	b["claims"] = claims
	return userEvent(TypeTokenClaimsChange, u, b)
}

// RISC account-disabled reasons.
const (
	ReasonHijacking   = "hijacking"
	ReasonBulkAccount = "bulk-account"
)

// AccountDisabled is RISC account-disabled. reason is "", ReasonHijacking or ReasonBulkAccount,
// the only values RISC defines.
func AccountDisabled(u User, reason string) Event {
	b := map[string]any{}
	if reason != "" {
		b["reason"] = reason
	}
	return userEvent(TypeAccountDisabled, u, b)
}

// AccountEnabled is RISC account-enabled.
func AccountEnabled(u User) Event { return userEvent(TypeAccountEnabled, u, map[string]any{}) }

// AccountPurged is RISC account-purged: the account was permanently deleted.
func AccountPurged(u User) Event { return userEvent(TypeAccountPurged, u, map[string]any{}) }

// IdentifierChanged is RISC identifier-changed for an email: the subject is the old email (RISC
// requires it), new-value the new one. u names the user for matching only.
func IdentifierChanged(u User, oldEmail, newEmail string) Event {
	old := Subject{Format: FormatEmail, Email: oldEmail}
	b := map[string]any{}
	if newEmail != "" {
		b["new-value"] = newEmail
	}
	return Event{Type: TypeIdentifierChanged, Subject: old, Body: b,
		members: map[string][]Subject{"user": {old, u.issSub()}}}
}

// Verification is the SSF verification event of a stream; state echoes the receiver's request.
func Verification(streamID, state string) Event {
	b := map[string]any{}
	if state != "" {
		b["state"] = state
	}
	return Event{Type: TypeVerification, Subject: Subject{Format: FormatOpaque, ID: streamID}, Body: b}
}

// StreamUpdated is the SSF stream-updated event: the transmitter changed the stream's status.
func StreamUpdated(streamID, status, reason string) Event {
	b := map[string]any{"status": status}
	if reason != "" {
		b["reason"] = reason
	}
	return Event{Type: TypeStreamUpdated, Subject: Subject{Format: FormatOpaque, ID: streamID}, Body: b}
}

// Validate reports whether e carries what its type requires (CAEP 1.0, RISC 1.0, SSF 1.0 and the
// CAEP interoperability profile).
func (e Event) Validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s: %s", ErrInvalidEvent, e.Type, fmt.Sprintf(format, args...))
	}
	if err := e.Subject.Validate(); err != nil {
		return bad("sub_id: %v", err)
	}
	str := func(k string) string { s, _ := e.Body[k].(string); return s }
	switch e.Type {
	case TypeSessionRevoked:
		if r, _ := e.Body["reason_admin"].(map[string]string); r["en"] == "" {
			return bad("reason_admin is required by the CAEP interoperability profile")
		}
	case TypeCredentialChange:
		if str("credential_type") == "" || !slices.Contains(ChangeTypes, str("change_type")) {
			return bad("credential_type and change_type (%s) are required", strings.Join(ChangeTypes, ", "))
		}
		if r, _ := e.Body["reason_admin"].(map[string]string); r["en"] == "" {
			return bad("reason_admin is required by the CAEP interoperability profile")
		}
	case TypeTokenClaimsChange:
		if c, _ := e.Body["claims"].(map[string]any); len(c) == 0 {
			return bad("claims must name at least one claim")
		}
	case TypeAccountDisabled:
		if r, ok := e.Body["reason"]; ok && r != ReasonHijacking && r != ReasonBulkAccount {
			return bad("reason must be %s or %s", ReasonHijacking, ReasonBulkAccount)
		}
	case TypeAccountEnabled, TypeAccountPurged:
	case TypeIdentifierChanged:
		if e.Subject.Format != FormatEmail && e.Subject.Format != FormatPhoneNumber {
			return bad("the subject must be the old email or phone number")
		}
	case TypeVerification, TypeStreamUpdated:
		if e.Subject.Format != FormatOpaque {
			return bad("the subject must be the stream id, as an opaque subject")
		}
		if e.Type == TypeStreamUpdated && !slices.Contains([]string{StatusEnabled, StatusPaused, StatusDisabled}, str("status")) {
			return bad("status must be enabled, paused or disabled")
		}
	default:
		return bad("not an event type idpsync transmits")
	}
	return nil
}
