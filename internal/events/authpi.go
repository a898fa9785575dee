package events

import (
	"encoding/json"
	"time"
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

var authpiTypes = map[string]Type{
	"user.created":                UserCreated,
	"user.updated":                UserUpdated,
	"user.suspended":              UserUpdated,
	"user.reactivated":            UserUpdated,
	"user.disabled":               UserUpdated,
	"user.deleted":                UserDeleted,
	"organization.created":        OrganizationCreated,
	"organization.updated":        OrganizationUpdated,
	"organization.suspended":      OrganizationUpdated,
	"organization.reactivated":    OrganizationUpdated,
	"organization.deleted":        OrganizationDeleted,
	"organization.member.added":   MembershipCreated,
	"organization.member.updated": MembershipUpdated,
	"organization.member.removed": MembershipDeleted,
	"session.created":             SessionCreated,
	"session.revoked":             SessionRevoked,
}

type authpiEnvelope struct {
	ID   string `json:"id"`
	Time string `json:"time"`
	Data struct {
		ID   string `json:"id"`
		Type string `json:"type"`
	} `json:"data"`
}

func parseAuthPIEnvelope(body []byte) (Envelope, error) {
	var (
		env     authpiEnvelope
		bad     string
		rawData []byte
	)
	err := scanObject(body, func(key, value []byte) {
		if isNull(value) {
			return
		}
		var ok bool
		switch {
		case keyIs(key, "id"):
			env.ID, ok = scanString(value)
		case keyIs(key, "time"):
			env.Time, ok = scanString(value)
		case keyIs(key, "data"):
			rawData, ok = value, true
		default:
			return
		}
		if !ok {
			bad = "a field has the wrong type"
		}
	})
	if err == nil && rawData != nil {
		err = scanObject(rawData, func(key, value []byte) {
			if isNull(value) {
				return
			}
			var ok bool
			switch {
			case keyIs(key, "id"):
				env.Data.ID, ok = scanString(value)
			case keyIs(key, "type"):
				env.Data.Type, ok = scanString(value)
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
		return Envelope{}, malformed("authpi: the body is not a CloudEvent with a data object")
	case bad != "":
		return Envelope{}, malformed("authpi: %s", bad)
	}
	return authpiEnvelopeOf(env)
}

func authpiEnvelopeOf(env authpiEnvelope) (Envelope, error) {
	id := env.Data.ID
	if id == "" {
		id = env.ID
	}
	switch {
	case env.Data.Type == "":
		return Envelope{}, malformed("authpi: data.type is missing")
	case id == "":
		return Envelope{}, malformed("authpi: the event has no id")
	}
	e := Envelope{ID: id, Type: authpiTypes[env.Data.Type], SourceType: env.Data.Type}
	if env.Time != "" {
		t, err := time.Parse(time.RFC3339Nano, env.Time)
		if err != nil {
			return Envelope{}, malformed("authpi: time is not an RFC 3339 time")
		}
		e.OccurredAt = t.UTC()
	}
	return e, nil
}

func parseAuthPI(body []byte) (Event, error) {
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
		return Event{}, malformed("authpi: %v", err)
	}
	raw.authpiEnvelope.Data.ID, raw.authpiEnvelope.Data.Type = raw.Data.ID, raw.Data.Type
	env, err := authpiEnvelopeOf(raw.authpiEnvelope)
	if err != nil {
		return Event{}, err
	}
	ev := Event{Envelope: env}
	if env.Type == "" {
		return ev, nil
	}
	data := raw.Data.Data
	if len(data) == 0 || data[0] != '{' {
		return Event{}, malformed("authpi %s: data.data is not an object", env.SourceType)
	}
	switch env.Type.Entity() {
	case EntityUser:
		ev.User, err = ParseAuthPIUser(data)
		if err == nil && env.Type == UserDeleted {
			ev.User.Deleted = true
		}
	case EntityOrganization:
		ev.Organization, err = ParseAuthPIOrganization(data)
		if err == nil && env.Type == OrganizationDeleted {
			ev.Organization.Deleted = true
		}
	case EntityMembership:
		var m struct {
			OrganizationID string `json:"organization_id"`
			UserID         string `json:"user_id"`
			Role           string `json:"role"`
		}
		if err := json.Unmarshal(data, &m); err != nil || m.OrganizationID == "" || m.UserID == "" {
			return Event{}, malformed("authpi %s: data needs organization_id and user_id", env.SourceType)
		}
		ev.Membership = &Membership{OrganizationID: m.OrganizationID, UserID: m.UserID, Role: m.Role,
			Deleted: env.Type == MembershipDeleted, CreatedAt: env.OccurredAt, UpdatedAt: env.OccurredAt,
			Version: env.OccurredAt.UnixMicro(), Raw: data}
		if env.OccurredAt.IsZero() {
			return Event{}, malformed("authpi %s: the event has no time to order it by", env.SourceType)
		}
	case EntitySession:
		var s struct {
			ID     string `json:"id"`
			UserID string `json:"user_id"`
			Status string `json:"status"`
		}
		if err := json.Unmarshal(data, &s); err != nil || s.ID == "" {
			return Event{}, malformed("authpi %s: data has no session id", env.SourceType)
		}
		ev.Session = &Session{ID: s.ID, UserID: s.UserID, Status: s.Status, Raw: data}
	}
	if err != nil {
		return Event{}, err
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

// ParseAuthPIUser maps an AuthPI user to a User: suspended or disabled is banned.
func ParseAuthPIUser(data []byte) (*User, error) {
	var a authpiEntity
	if err := json.Unmarshal(data, &a); err != nil {
		return nil, malformed("authpi user: %v", err)
	}
	if a.ID == "" {
		return nil, malformed("authpi user: id is missing")
	}
	u := &User{ID: a.ID, Username: a.Username, Banned: a.Status == "suspended" || a.Status == "disabled",
		Deleted: a.Status == "deleted", CreatedAt: a.CreatedAt.UTC(), UpdatedAt: a.UpdatedAt.UTC(),
		Version: a.UpdatedAt.UnixMicro(), Raw: json.RawMessage(data)}
	if a.Email != "" {
		u.PrimaryEmail, u.Emails = a.Email, []string{a.Email}
	}
	return u, nil
}

// ParseAuthPIOrganization maps an AuthPI organization to an Organization.
func ParseAuthPIOrganization(data []byte) (*Organization, error) {
	var a authpiEntity
	if err := json.Unmarshal(data, &a); err != nil {
		return nil, malformed("authpi organization: %v", err)
	}
	if a.ID == "" {
		return nil, malformed("authpi organization: id is missing")
	}
	return &Organization{ID: a.ID, Name: a.Name, Slug: a.Slug, Suspended: a.Status == "suspended",
		Deleted: a.Status == "deleted", CreatedAt: a.CreatedAt.UTC(), UpdatedAt: a.UpdatedAt.UTC(),
		Version: a.UpdatedAt.UnixMicro(), Raw: json.RawMessage(data)}, nil
}
