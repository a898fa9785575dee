package authpi

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/idpsync/idpsync/internal/events"
	"github.com/idpsync/idpsync/internal/jsonscan"
)

// AuthPI wraps its events in CloudEvents 1.0:
//
//	{"id": "<uuid>", "specversion": "1.0", "source": "com.authpi.webhooks/v1/<webhook id>",
//	 "type": "event", "time": "2024-01-01T03:21:36Z",
//	 "data": {"id": "evt_…", "type": "user.created", "trace": "…", "source": "com.authpi/v1",
//	          "subject": {"user_id": "usr_…", "issuer_id": "i_…"}, "data": {…the entity…}}}
//
// The business type is data.type (the outer type is always "event") and the event id is data.id
// ("evt_…"), or the CloudEvent id when data.id is absent. The entity in data.data is whole, so it
// is applied as it is.
//
// Versions: an entity's updated_at in microseconds; a membership, which carries no time of its
// own, the event's time.
//
// AuthPI documents user.created, user.updated and user.deleted; the suspension and organization
// names below follow the same pattern and its documented statuses (AuthPI does not publish the
// full list).

var authpiTypes = map[string]events.Type{
	"user.created":                events.UserCreated,
	"user.updated":                events.UserUpdated,
	"user.suspended":              events.UserUpdated,
	"user.reactivated":            events.UserUpdated,
	"user.disabled":               events.UserUpdated,
	"user.deleted":                events.UserDeleted,
	"organization.created":        events.OrganizationCreated,
	"organization.updated":        events.OrganizationUpdated,
	"organization.suspended":      events.OrganizationUpdated,
	"organization.reactivated":    events.OrganizationUpdated,
	"organization.deleted":        events.OrganizationDeleted,
	"organization.member.added":   events.MembershipCreated,
	"organization.member.updated": events.MembershipUpdated,
	"organization.member.removed": events.MembershipDeleted,
	"session.created":             events.SessionCreated,
	"session.revoked":             events.SessionRevoked,
}

type authpiEnvelope struct {
	ID   string `json:"id"`
	Time string `json:"time"`
	Data struct {
		ID   string `json:"id"`
		Type string `json:"type"`
	} `json:"data"`
}

// ParseEnvelope reads the routing fields of a verified AuthPI CloudEvent. It scans the top level
// of the body and of its data object only.
func ParseEnvelope(_ string, body []byte) (events.Envelope, error) {
	var (
		env     authpiEnvelope
		bad     string
		rawData []byte
	)
	err := jsonscan.Object(body, func(key, value []byte) {
		if jsonscan.IsNull(value) {
			return
		}
		var ok bool
		switch {
		case jsonscan.KeyIs(key, "id"):
			env.ID, ok = jsonscan.String(value, authpiTypeNames)
		case jsonscan.KeyIs(key, "time"):
			env.Time, ok = jsonscan.String(value, authpiTypeNames)
		case jsonscan.KeyIs(key, "data"):
			rawData, ok = value, true
		default:
			return
		}
		if !ok {
			bad = "a field has the wrong type"
		}
	})
	if err == nil && rawData != nil {
		err = jsonscan.Object(rawData, func(key, value []byte) {
			if jsonscan.IsNull(value) {
				return
			}
			var ok bool
			switch {
			case jsonscan.KeyIs(key, "id"):
				env.Data.ID, ok = jsonscan.String(value, authpiTypeNames)
			case jsonscan.KeyIs(key, "type"):
				env.Data.Type, ok = jsonscan.String(value, authpiTypeNames)
			default:
				return
			}
			if !ok {
				bad = "a field of data has the wrong type"
			}
		})
	}
	switch {
	case err != nil:
		return events.Envelope{}, events.Malformed("authpi: the body is not a CloudEvent with a data object")
	case bad != "":
		return events.Envelope{}, events.Malformed("authpi: %s", bad)
	}
	return authpiEnvelopeOf(env)
}

func authpiEnvelopeOf(env authpiEnvelope) (events.Envelope, error) {
	id := env.Data.ID
	if id == "" {
		id = env.ID
	}
	switch {
	case env.Data.Type == "":
		return events.Envelope{}, events.Malformed("authpi: data.type is missing")
	case id == "":
		return events.Envelope{}, events.Malformed("authpi: the event has no id")
	case events.CheckID(id) != nil:
		return events.Envelope{}, events.MalformedID("authpi: the event id", events.CheckID(id))
	}
	e := events.Envelope{ID: id, Type: authpiTypes[env.Data.Type], SourceType: env.Data.Type}
	if env.Time != "" {
		t, err := time.Parse(time.RFC3339Nano, env.Time)
		if err != nil {
			return events.Envelope{}, events.Malformed("authpi: time is not an RFC 3339 time")
		}
		e.OccurredAt = t.UTC()
	}
	return e, nil
}

// Parse reads a verified AuthPI CloudEvent into an event; AuthPI sends no delivery id. An id
// that cannot be recorded (events.CheckID) makes the payload malformed.
func Parse(_ string, body []byte) (events.Event, error) {
	ev, err := parse(body)
	if err != nil {
		return events.Event{}, err
	}
	if err := events.CheckIDs(ev); err != nil {
		return events.Event{}, fmt.Errorf("authpi: %w", err)
	}
	return ev, nil
}

func parse(body []byte) (events.Event, error) {
	var raw struct {
		authpiEnvelope
		Data struct {
			ID      string          `json:"id"`
			Type    string          `json:"type"`
			Subject json.RawMessage `json:"subject"`
			Data    json.RawMessage `json:"data"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &raw); err != nil {
		return events.Event{}, events.Malformed("authpi: %v", err)
	}
	raw.authpiEnvelope.Data.ID, raw.authpiEnvelope.Data.Type = raw.Data.ID, raw.Data.Type
	env, err := authpiEnvelopeOf(raw.authpiEnvelope)
	if err != nil {
		return events.Event{}, err
	}
	ev := events.Event{Envelope: env}
	if env.Type == "" {
		return ev, nil
	}
	data := raw.Data.Data
	if len(data) == 0 || data[0] != '{' {
		return events.Event{}, events.Malformed("authpi %s: data.data is not an object", env.SourceType)
	}
	switch env.Type.Entity() {
	case events.EntityUser:
		ev.User, err = ParseUser(data)
		if err == nil && env.Type == events.UserDeleted {
			ev.User.Deleted = true
		}
	case events.EntityOrganization:
		ev.Organization, err = ParseOrganization(data)
		if err == nil && env.Type == events.OrganizationDeleted {
			ev.Organization.Deleted = true
		}
	case events.EntityMembership:
		var m struct {
			OrganizationID string `json:"organization_id"`
			UserID         string `json:"user_id"`
			Role           string `json:"role"`
		}
		if err := json.Unmarshal(data, &m); err != nil || m.OrganizationID == "" || m.UserID == "" {
			return events.Event{}, events.Malformed("authpi %s: data needs organization_id and user_id", env.SourceType)
		}
		ev.Membership = &events.Membership{OrganizationID: m.OrganizationID, UserID: m.UserID, Role: m.Role,
			Deleted: env.Type == events.MembershipDeleted, CreatedAt: env.OccurredAt, UpdatedAt: env.OccurredAt,
			Version: env.OccurredAt.UnixMicro(), Raw: data}
		if env.OccurredAt.IsZero() {
			return events.Event{}, events.Malformed("authpi %s: the event has no time to order it by", env.SourceType)
		}
	case events.EntitySession:
		var s struct {
			ID     string `json:"id"`
			UserID string `json:"user_id"`
			Status string `json:"status"`
		}
		if err := json.Unmarshal(data, &s); err != nil || s.ID == "" {
			return events.Event{}, events.Malformed("authpi %s: data has no session id", env.SourceType)
		}
		ev.Session = &events.Session{ID: s.ID, UserID: s.UserID, Status: s.Status, Raw: data}
	}
	if err != nil {
		return events.Event{}, err
	}
	return ev, nil
}

type authpiEntity struct {
	ID          string    `json:"id"`
	Status      string    `json:"status"`
	Username    string    `json:"username"`
	Email       string    `json:"email"`
	DisplayName string    `json:"display_name"`
	Name        string    `json:"name"`
	Slug        string    `json:"slug"`
	CreatedAt   time.Time `json:"created_at"`
	UpdatedAt   time.Time `json:"updated_at"`
}

// ParseUser maps an AuthPI user to a User: suspended or disabled is banned.
func ParseUser(data []byte) (*events.User, error) {
	var a authpiEntity
	if err := json.Unmarshal(data, &a); err != nil {
		return nil, events.Malformed("authpi user: %v", err)
	}
	if err := events.CheckID(a.ID); err != nil {
		return nil, events.MalformedID("authpi user: id", err)
	}
	u := &events.User{ID: a.ID, Username: a.Username, Banned: a.Status == "suspended" || a.Status == "disabled",
		Deleted: a.Status == "deleted", CreatedAt: a.CreatedAt.UTC(), UpdatedAt: a.UpdatedAt.UTC(),
		Version: a.UpdatedAt.UnixMicro(), Raw: json.RawMessage(data)}
	if a.Email != "" {
		u.PrimaryEmail, u.Emails = a.Email, []string{a.Email}
	}
	return u, nil
}

// ParseOrganization maps an AuthPI organization to an Organization.
func ParseOrganization(data []byte) (*events.Organization, error) {
	var a authpiEntity
	if err := json.Unmarshal(data, &a); err != nil {
		return nil, events.Malformed("authpi organization: %v", err)
	}
	if err := events.CheckID(a.ID); err != nil {
		return nil, events.MalformedID("authpi organization: id", err)
	}
	return &events.Organization{ID: a.ID, Name: a.Name, Slug: a.Slug, Suspended: a.Status == "suspended",
		Deleted: a.Status == "deleted", CreatedAt: a.CreatedAt.UTC(), UpdatedAt: a.UpdatedAt.UTC(),
		Version: a.UpdatedAt.UnixMicro(), Raw: json.RawMessage(data)}, nil
}

// EventTypes returns the AuthPI event types idpsync maps to canonical events, sorted: what a
// webhook registered for idpsync subscribes to.
func EventTypes() []string {
	return slices.Sorted(maps.Keys(authpiTypes))
}

// authpiTypeNames interns the type names the scanner expects.
var authpiTypeNames = func() map[string]string {
	m := make(map[string]string, len(authpiTypes))
	for name := range authpiTypes {
		m[name] = name
	}
	return m
}()
