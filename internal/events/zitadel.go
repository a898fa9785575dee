package events

import (
	"encoding/base64"
	"encoding/json"
	"strconv"
	"strings"
	"time"
)

// Zitadel delivers Actions v2 events ("event" executions) as
//
//	{"aggregateID": "313014806065971608", "aggregateType": "user", "resourceOwner": "…",
//	 "instanceID": "…", "version": "v2", "sequence": 1, "event_type": "user.human.added",
//	 "created_at": "2025-03-27T10:22:43.262665+01:00", "userID": "…", "event_payload": "<base64>"}
//
// without a delivery id: the event id is "<instanceID>:<aggregateID>:<sequence>", unique and the
// same on every retry. event_payload is base64 JSON in most versions and inline JSON in some; both
// are read.
//
// Zitadel's events carry changes, not states: "user.human.profile.changed" holds the changed
// fields only, "user.deactivated" none, removals nothing at all. So user and organization events
// name the entity and are marked Partial: the worker reads its current state from Zitadel's API
// before writing it. Membership events ("org.member.*", Zitadel's organization administrators)
// carry the whole of the pair (user and roles) and are applied as they are.
//
// Versions: Zitadel's sequence of the aggregate (the user, the organization), which both its events
// and its API's details.sequence report. A membership's version is its organization's sequence.

var zitadelTypes = map[string]Type{
	"user.human.added":           UserCreated,
	"user.human.selfregistered":  UserCreated,
	"user.machine.added":         UserCreated,
	"user.human.profile.changed": UserUpdated,
	"user.human.email.changed":   UserUpdated,
	"user.human.email.verified":  UserUpdated,
	"user.human.phone.changed":   UserUpdated,
	"user.machine.changed":       UserUpdated,
	"user.username.changed":      UserUpdated,
	"user.deactivated":           UserUpdated,
	"user.reactivated":           UserUpdated,
	"user.locked":                UserUpdated,
	"user.unlocked":              UserUpdated,
	"user.removed":               UserDeleted,
	"org.added":                  OrganizationCreated,
	"org.changed":                OrganizationUpdated,
	"org.deactivated":            OrganizationUpdated,
	"org.reactivated":            OrganizationUpdated,
	"org.domain.primary.set":     OrganizationUpdated,
	"org.removed":                OrganizationDeleted,
	"org.member.added":           MembershipCreated,
	"org.member.changed":         MembershipUpdated,
	"org.member.removed":         MembershipDeleted,
	"org.member.cascade.removed": MembershipDeleted,
	"session.added":              SessionCreated,
	"session.terminated":         SessionEnded,
}

type zitadelEnvelope struct {
	AggregateID string `json:"aggregateID"`
	InstanceID  string `json:"instanceID"`
	Sequence    int64  `json:"sequence"`
	EventType   string `json:"event_type"`
	CreatedAt   string `json:"created_at"`
}

func parseZitadelEnvelope(body []byte) (Envelope, error) {
	var (
		env zitadelEnvelope
		bad string
	)
	err := scanObject(body, func(key, value []byte) {
		if isNull(value) {
			return
		}
		var ok bool
		switch {
		case keyIs(key, "aggregateID"):
			env.AggregateID, ok = scanString(value)
		case keyIs(key, "instanceID"):
			env.InstanceID, ok = scanString(value)
		case keyIs(key, "event_type"):
			env.EventType, ok = scanString(value)
		case keyIs(key, "created_at"):
			env.CreatedAt, ok = scanString(value)
		case keyIs(key, "sequence"):
			env.Sequence, ok = scanInt(value)
		default:
			return
		}
		if !ok {
			bad = "a field has the wrong type"
		}
	})
	switch {
	case err != nil:
		return Envelope{}, malformed("zitadel: the body is not a JSON object")
	case bad != "":
		return Envelope{}, malformed("zitadel: %s", bad)
	}
	return zitadelEnvelopeOf(env)
}

func zitadelEnvelopeOf(env zitadelEnvelope) (Envelope, error) {
	switch {
	case env.EventType == "":
		return Envelope{}, malformed("zitadel: event_type is missing")
	case env.AggregateID == "" || env.InstanceID == "":
		return Envelope{}, malformed("zitadel: aggregateID or instanceID is missing")
	case env.Sequence <= 0:
		return Envelope{}, malformed("zitadel: sequence is missing")
	}
	e := Envelope{
		ID:         env.InstanceID + ":" + env.AggregateID + ":" + strconv.FormatInt(env.Sequence, 10),
		Type:       zitadelTypes[env.EventType],
		SourceType: env.EventType,
	}
	if env.CreatedAt != "" {
		t, err := time.Parse(time.RFC3339Nano, env.CreatedAt)
		if err != nil {
			return Envelope{}, malformed("zitadel: created_at is not an RFC 3339 time")
		}
		e.OccurredAt = t.UTC()
	}
	return e, nil
}

type zitadelEvent struct {
	zitadelEnvelope
	Payload json.RawMessage `json:"event_payload"`
}

func parseZitadel(body []byte) (Event, error) {
	var raw zitadelEvent
	if err := json.Unmarshal(body, &raw); err != nil {
		return Event{}, malformed("zitadel: %v", err)
	}
	env, err := zitadelEnvelopeOf(raw.zitadelEnvelope)
	if err != nil {
		return Event{}, err
	}
	ev := Event{Envelope: env}
	id, seq := raw.AggregateID, raw.Sequence
	switch env.Type {
	case UserCreated, UserUpdated:
		ev.User = &User{ID: id, Version: seq, Partial: true, Raw: json.RawMessage(`{}`)}
	case UserDeleted:
		ev.User = &User{ID: id, Version: seq, Deleted: true, Raw: json.RawMessage(`{}`)}
	case OrganizationCreated, OrganizationUpdated:
		ev.Organization = &Organization{ID: id, Version: seq, Partial: true, Raw: json.RawMessage(`{}`)}
	case OrganizationDeleted:
		ev.Organization = &Organization{ID: id, Version: seq, Deleted: true, Raw: json.RawMessage(`{}`)}
	case MembershipCreated, MembershipUpdated, MembershipDeleted:
		payload, err := zitadelPayload(raw.Payload)
		if err != nil {
			return Event{}, err
		}
		var m struct {
			UserID string   `json:"userId"`
			Roles  []string `json:"roles"`
		}
		if err := json.Unmarshal(payload, &m); err != nil || m.UserID == "" {
			return Event{}, malformed("zitadel %s: the payload has no userId", env.SourceType)
		}
		ev.Membership = &Membership{OrganizationID: id, UserID: m.UserID, Role: strings.Join(m.Roles, " "), Permissions: m.Roles,
			Deleted: env.Type == MembershipDeleted, CreatedAt: env.OccurredAt, UpdatedAt: env.OccurredAt, Version: seq, Raw: payload}
	case SessionCreated, SessionEnded:
		ev.Session = &Session{ID: id, Status: strings.TrimPrefix(env.SourceType, "session."), Raw: json.RawMessage(`{}`)}
	}
	return ev, nil
}

// zitadelPayload reads event_payload: base64 JSON, inline JSON, or absent (an empty object).
func zitadelPayload(raw json.RawMessage) (json.RawMessage, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return json.RawMessage(`{}`), nil
	}
	if raw[0] == '{' {
		return raw, nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return nil, malformed("zitadel: event_payload is neither base64 nor an object")
	}
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil || !json.Valid(b) {
		return nil, malformed("zitadel: event_payload is not base64 JSON")
	}
	return b, nil
}

// zitadelUint reads the 64-bit integers protojson writes as strings, or as numbers.
type zitadelUint int64

func (u *zitadelUint) UnmarshalJSON(b []byte) error {
	s := strings.Trim(string(b), `"`)
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return err
	}
	*u = zitadelUint(n)
	return nil
}

type zitadelDetails struct {
	Sequence     zitadelUint `json:"sequence"`
	CreationDate time.Time   `json:"creationDate"`
	ChangeDate   time.Time   `json:"changeDate"`
}

type zitadelUser struct {
	UserID   string         `json:"userId"`
	Details  zitadelDetails `json:"details"`
	State    string         `json:"state"`
	Username string         `json:"username"`
	Human    *struct {
		Profile struct {
			GivenName   string `json:"givenName"`
			FamilyName  string `json:"familyName"`
			DisplayName string `json:"displayName"`
		} `json:"profile"`
		Email struct {
			Email string `json:"email"`
		} `json:"email"`
	} `json:"human"`
}

// ParseZitadelUser maps a Zitadel v2 API user (zitadel.user.v2.User) to a User: deactivated is
// banned, locked is locked.
func ParseZitadelUser(data []byte) (*User, error) {
	var zu zitadelUser
	if err := json.Unmarshal(data, &zu); err != nil {
		return nil, malformed("zitadel user: %v", err)
	}
	if zu.UserID == "" {
		return nil, malformed("zitadel user: userId is missing")
	}
	u := &User{
		ID:        zu.UserID,
		Username:  zu.Username,
		Banned:    zu.State == "USER_STATE_INACTIVE",
		Locked:    zu.State == "USER_STATE_LOCKED",
		Deleted:   zu.State == "USER_STATE_DELETED",
		CreatedAt: zu.Details.CreationDate.UTC(),
		UpdatedAt: zu.Details.ChangeDate.UTC(),
		Version:   int64(zu.Details.Sequence),
		Raw:       json.RawMessage(data),
	}
	if h := zu.Human; h != nil {
		u.FirstName, u.LastName = h.Profile.GivenName, h.Profile.FamilyName
		if h.Email.Email != "" {
			u.PrimaryEmail, u.Emails = h.Email.Email, []string{h.Email.Email}
		}
	}
	return u, nil
}

// ParseZitadelOrganization maps a Zitadel v2 API organization to an Organization: its primary
// domain is its slug, deactivated is suspended.
func ParseZitadelOrganization(data []byte) (*Organization, error) {
	var zo struct {
		ID            string         `json:"id"`
		Details       zitadelDetails `json:"details"`
		State         string         `json:"state"`
		Name          string         `json:"name"`
		PrimaryDomain string         `json:"primaryDomain"`
	}
	if err := json.Unmarshal(data, &zo); err != nil {
		return nil, malformed("zitadel organization: %v", err)
	}
	if zo.ID == "" {
		return nil, malformed("zitadel organization: id is missing")
	}
	return &Organization{
		ID:        zo.ID,
		Name:      zo.Name,
		Slug:      zo.PrimaryDomain,
		Suspended: zo.State == "ORGANIZATION_STATE_INACTIVE",
		Deleted:   zo.State == "ORGANIZATION_STATE_REMOVED",
		CreatedAt: zo.Details.CreationDate.UTC(),
		UpdatedAt: zo.Details.ChangeDate.UTC(),
		Version:   int64(zo.Details.Sequence),
		Raw:       json.RawMessage(data),
	}, nil
}
