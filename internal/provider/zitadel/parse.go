package zitadel

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/idpsync/idpsync/internal/events"
	"github.com/idpsync/idpsync/internal/jsonscan"
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

var zitadelTypes = map[string]events.Type{
	"user.human.added":           events.UserCreated,
	"user.human.selfregistered":  events.UserCreated,
	"user.machine.added":         events.UserCreated,
	"user.human.profile.changed": events.UserUpdated,
	"user.human.email.changed":   events.UserUpdated,
	"user.human.email.verified":  events.UserUpdated,
	"user.human.phone.changed":   events.UserUpdated,
	"user.machine.changed":       events.UserUpdated,
	"user.username.changed":      events.UserUpdated,
	"user.deactivated":           events.UserUpdated,
	"user.reactivated":           events.UserUpdated,
	"user.locked":                events.UserUpdated,
	"user.unlocked":              events.UserUpdated,
	"user.removed":               events.UserDeleted,
	"org.added":                  events.OrganizationCreated,
	"org.changed":                events.OrganizationUpdated,
	"org.deactivated":            events.OrganizationUpdated,
	"org.reactivated":            events.OrganizationUpdated,
	"org.domain.primary.set":     events.OrganizationUpdated,
	"org.removed":                events.OrganizationDeleted,
	"org.member.added":           events.MembershipCreated,
	"org.member.changed":         events.MembershipUpdated,
	"org.member.removed":         events.MembershipDeleted,
	"org.member.cascade.removed": events.MembershipDeleted,
	"session.added":              events.SessionCreated,
	"session.terminated":         events.SessionEnded,
}

type zitadelEnvelope struct {
	AggregateID string `json:"aggregateID"`
	InstanceID  string `json:"instanceID"`
	Sequence    int64  `json:"sequence"`
	EventType   string `json:"event_type"`
	CreatedAt   string `json:"created_at"`
}

// ParseEnvelope reads the routing fields of a verified Zitadel event; the event id is
// "<instanceID>:<aggregateID>:<sequence>". It scans the top level of the body only.
func ParseEnvelope(_ string, body []byte) (events.Envelope, error) {
	var (
		env zitadelEnvelope
		bad string
	)
	err := jsonscan.Object(body, func(key, value []byte) {
		if jsonscan.IsNull(value) {
			return
		}
		var ok bool
		switch {
		case jsonscan.KeyIs(key, "aggregateID"):
			env.AggregateID, ok = jsonscan.String(value, zitadelTypeNames)
		case jsonscan.KeyIs(key, "instanceID"):
			env.InstanceID, ok = jsonscan.String(value, zitadelTypeNames)
		case jsonscan.KeyIs(key, "event_type"):
			env.EventType, ok = jsonscan.String(value, zitadelTypeNames)
		case jsonscan.KeyIs(key, "created_at"):
			env.CreatedAt, ok = jsonscan.String(value, zitadelTypeNames)
		case jsonscan.KeyIs(key, "sequence"):
			env.Sequence, ok = jsonscan.Int(value)
		default:
			return
		}
		if !ok {
			bad = "a field has the wrong type"
		}
	})
	switch {
	case err != nil:
		return events.Envelope{}, events.Malformed("zitadel: the body is not a JSON object")
	case bad != "":
		return events.Envelope{}, events.Malformed("zitadel: %s", bad)
	}
	return zitadelEnvelopeOf(env)
}

func zitadelEnvelopeOf(env zitadelEnvelope) (events.Envelope, error) {
	switch {
	case env.EventType == "":
		return events.Envelope{}, events.Malformed("zitadel: event_type is missing")
	case env.AggregateID == "" || env.InstanceID == "":
		return events.Envelope{}, events.Malformed("zitadel: aggregateID or instanceID is missing")
	case env.Sequence <= 0:
		return events.Envelope{}, events.Malformed("zitadel: sequence is missing")
	}
	e := events.Envelope{
		ID:         env.InstanceID + ":" + env.AggregateID + ":" + strconv.FormatInt(env.Sequence, 10),
		Type:       zitadelTypes[env.EventType],
		SourceType: env.EventType,
	}
	if err := events.CheckID(e.ID); err != nil {
		return events.Envelope{}, events.MalformedID("zitadel: the event id (instance, aggregate, sequence)", err)
	}
	if env.CreatedAt != "" {
		t, err := time.Parse(time.RFC3339Nano, env.CreatedAt)
		if err != nil {
			return events.Envelope{}, events.Malformed("zitadel: created_at is not an RFC 3339 time")
		}
		e.OccurredAt = t.UTC()
	}
	return e, nil
}

type zitadelEvent struct {
	zitadelEnvelope
	Payload json.RawMessage `json:"event_payload"`
}

// Parse reads a verified Zitadel event into an event; Zitadel sends no delivery id. An id that
// cannot be recorded (events.CheckID) makes the payload malformed.
func Parse(_ string, body []byte) (events.Event, error) {
	ev, err := parse(body)
	if err != nil {
		return events.Event{}, err
	}
	if err := events.CheckIDs(ev); err != nil {
		return events.Event{}, fmt.Errorf("zitadel: %w", err)
	}
	return ev, nil
}

func parse(body []byte) (events.Event, error) {
	var raw zitadelEvent
	if err := json.Unmarshal(body, &raw); err != nil {
		return events.Event{}, events.Malformed("zitadel: %v", err)
	}
	env, err := zitadelEnvelopeOf(raw.zitadelEnvelope)
	if err != nil {
		return events.Event{}, err
	}
	ev := events.Event{Envelope: env}
	id, seq := raw.AggregateID, raw.Sequence
	switch env.Type {
	case events.UserCreated, events.UserUpdated:
		ev.User = &events.User{ID: id, Version: seq, Partial: true, Raw: json.RawMessage(`{}`)}
	case events.UserDeleted:
		ev.User = &events.User{ID: id, Version: seq, Deleted: true, Raw: json.RawMessage(`{}`)}
	case events.OrganizationCreated, events.OrganizationUpdated:
		ev.Organization = &events.Organization{ID: id, Version: seq, Partial: true, Raw: json.RawMessage(`{}`)}
	case events.OrganizationDeleted:
		ev.Organization = &events.Organization{ID: id, Version: seq, Deleted: true, Raw: json.RawMessage(`{}`)}
	case events.MembershipCreated, events.MembershipUpdated, events.MembershipDeleted:
		payload, err := zitadelPayload(raw.Payload)
		if err != nil {
			return events.Event{}, err
		}
		var m struct {
			UserID string   `json:"userId"`
			Roles  []string `json:"roles"`
		}
		if err := json.Unmarshal(payload, &m); err != nil || m.UserID == "" {
			return events.Event{}, events.Malformed("zitadel %s: the payload has no userId", env.SourceType)
		}
		ev.Membership = &events.Membership{OrganizationID: id, UserID: m.UserID, Role: strings.Join(m.Roles, " "), Permissions: m.Roles,
			Deleted: env.Type == events.MembershipDeleted, CreatedAt: env.OccurredAt, UpdatedAt: env.OccurredAt, Version: seq, Raw: payload}
	case events.SessionCreated, events.SessionEnded:
		ev.Session = &events.Session{ID: id, Status: strings.TrimPrefix(env.SourceType, "session."), Raw: json.RawMessage(`{}`)}
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
		return nil, events.Malformed("zitadel: event_payload is neither base64 nor an object")
	}
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil || !json.Valid(b) {
		return nil, events.Malformed("zitadel: event_payload is not base64 JSON")
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

// ParseUser maps a Zitadel v2 API user (zitadel.user.v2.User) to a User: deactivated is
// banned, locked is locked.
func ParseUser(data []byte) (*events.User, error) {
	var zu zitadelUser
	if err := json.Unmarshal(data, &zu); err != nil {
		return nil, events.Malformed("zitadel user: %v", err)
	}
	if err := events.CheckID(zu.UserID); err != nil {
		return nil, events.MalformedID("zitadel user: userId", err)
	}
	u := &events.User{
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

// ParseOrganization maps a Zitadel v2 API organization to an Organization: its primary
// domain is its slug, deactivated is suspended.
func ParseOrganization(data []byte) (*events.Organization, error) {
	var zo struct {
		ID            string         `json:"id"`
		Details       zitadelDetails `json:"details"`
		State         string         `json:"state"`
		Name          string         `json:"name"`
		PrimaryDomain string         `json:"primaryDomain"`
	}
	if err := json.Unmarshal(data, &zo); err != nil {
		return nil, events.Malformed("zitadel organization: %v", err)
	}
	if err := events.CheckID(zo.ID); err != nil {
		return nil, events.MalformedID("zitadel organization: id", err)
	}
	return &events.Organization{
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

// zitadelTypeNames interns the type names the scanner expects.
var zitadelTypeNames = func() map[string]string {
	m := make(map[string]string, len(zitadelTypes))
	for name := range zitadelTypes {
		m[name] = name
	}
	return m
}()
