package events

import "encoding/json"

// Clerk delivers webhooks through Svix. The envelope is
//
//	{"data": {...}, "object": "event", "type": "user.created", "timestamp": 1716883200,
//	 "instance_id": "ins_...", "event_attributes": {...}}
//
// The event id is the svix-id of the delivery, which Svix keeps across retries. Resource
// timestamps (created_at, updated_at) are Unix milliseconds; the envelope timestamp is documented
// in milliseconds but Clerk's published examples use seconds, so both are accepted.
//
// Versions: a user's, organization's or membership's version is its updated_at in milliseconds.
// A deletion carries no updated_at (users, organizations) or the last one before it (memberships),
// so its version is the later of that and the envelope timestamp.

var clerkTypes = map[string]Type{
	"user.created":                   UserCreated,
	"user.updated":                   UserUpdated,
	"user.deleted":                   UserDeleted,
	"organization.created":           OrganizationCreated,
	"organization.updated":           OrganizationUpdated,
	"organization.deleted":           OrganizationDeleted,
	"organizationMembership.created": MembershipCreated,
	"organizationMembership.updated": MembershipUpdated,
	"organizationMembership.deleted": MembershipDeleted,
	"session.created":                SessionCreated,
	"session.pending":                SessionPending,
	"session.ended":                  SessionEnded,
	"session.removed":                SessionRemoved,
	"session.revoked":                SessionRevoked,
}

type clerkEnvelope struct {
	Type      string `json:"type"`
	Timestamp int64  `json:"timestamp"`
}

type clerkEvent struct {
	clerkEnvelope
	Data json.RawMessage `json:"data"`
}

func parseClerkEnvelope(deliveryID string, body []byte) (Envelope, error) {
	var (
		env clerkEnvelope
		bad string
	)
	err := scanObject(body, func(key, value []byte) {
		switch {
		case isNull(value):
		case keyIs(key, "type"):
			s, ok := scanString(value)
			if !ok {
				bad = "type is not a string"
			}
			env.Type = s
		case keyIs(key, "timestamp"):
			n, ok := scanInt(value)
			if !ok {
				bad = "timestamp is not an integer"
			}
			env.Timestamp = n
		}
	})
	switch {
	case err != nil:
		return Envelope{}, malformed("clerk: the body is not a JSON object")
	case bad != "":
		return Envelope{}, malformed("clerk: %s", bad)
	}
	return clerkEnvelopeOf(deliveryID, env)
}

func clerkEnvelopeOf(deliveryID string, env clerkEnvelope) (Envelope, error) {
	if deliveryID == "" {
		return Envelope{}, malformed("clerk: the delivery has no svix-id")
	}
	if env.Type == "" {
		return Envelope{}, malformed("clerk: type is missing")
	}
	return Envelope{
		ID:         deliveryID,
		Type:       clerkTypes[env.Type],
		SourceType: env.Type,
		OccurredAt: unixSecondsOrMilli(env.Timestamp),
	}, nil
}

func parseClerk(deliveryID string, body []byte) (Event, error) {
	var raw clerkEvent
	if err := json.Unmarshal(body, &raw); err != nil {
		return Event{}, malformed("clerk: %v", err)
	}
	env, err := clerkEnvelopeOf(deliveryID, raw.clerkEnvelope)
	if err != nil {
		return Event{}, err
	}
	ev := Event{Envelope: env}
	if env.Type == "" {
		return ev, nil
	}
	if len(raw.Data) == 0 || raw.Data[0] != '{' {
		return Event{}, malformed("clerk %s: data is not an object", env.SourceType)
	}
	occurred := env.OccurredAt.UnixMilli()
	if env.OccurredAt.IsZero() {
		occurred = 0
	}
	switch env.Type {
	case UserCreated, UserUpdated:
		ev.User, err = ParseClerkUser(raw.Data)
	case UserDeleted:
		ev.User, err = parseClerkDeletedUser(raw.Data, occurred)
	case OrganizationCreated, OrganizationUpdated:
		ev.Organization, err = ParseClerkOrganization(raw.Data)
	case OrganizationDeleted:
		ev.Organization, err = parseClerkDeletedOrganization(raw.Data, occurred)
	case MembershipCreated, MembershipUpdated, MembershipDeleted:
		ev.Membership, err = ParseClerkMembership(raw.Data)
		if err == nil && env.Type == MembershipDeleted {
			ev.Membership.Deleted = true
			ev.Membership.Version = max(ev.Membership.Version, occurred)
		}
	default: // sessions
		ev.Session, err = parseClerkSession(raw.Data)
	}
	if err != nil {
		return Event{}, err
	}
	// An entity without updated_at is ordered by when the event happened.
	switch {
	case ev.User != nil && ev.User.Version == 0:
		ev.User.Version = occurred
	case ev.Organization != nil && ev.Organization.Version == 0:
		ev.Organization.Version = occurred
	case ev.Membership != nil && ev.Membership.Version == 0:
		ev.Membership.Version = occurred
	}
	return ev, nil
}

type clerkUser struct {
	ID                    string `json:"id"`
	ExternalID            string `json:"external_id"`
	PrimaryEmailAddressID string `json:"primary_email_address_id"`
	EmailAddresses        []struct {
		ID           string `json:"id"`
		EmailAddress string `json:"email_address"`
	} `json:"email_addresses"`
	Username  string `json:"username"`
	FirstName string `json:"first_name"`
	LastName  string `json:"last_name"`
	ImageURL  string `json:"image_url"`
	Banned    bool   `json:"banned"`
	Locked    bool   `json:"locked"`
	CreatedAt int64  `json:"created_at"`
	UpdatedAt int64  `json:"updated_at"`
}

// ParseClerkUser maps a Clerk User object, as found in webhooks and returned by the Backend API,
// to a User. Webhooks and resyncs both go through it, so they produce identical mirror rows.
func ParseClerkUser(data []byte) (*User, error) {
	var cu clerkUser
	if err := json.Unmarshal(data, &cu); err != nil {
		return nil, malformed("clerk user: %v", err)
	}
	if cu.ID == "" {
		return nil, malformed("clerk user: id is missing")
	}
	u := &User{
		ID:         cu.ID,
		ExternalID: cu.ExternalID,
		Username:   cu.Username,
		FirstName:  cu.FirstName,
		LastName:   cu.LastName,
		ImageURL:   cu.ImageURL,
		Banned:     cu.Banned,
		Locked:     cu.Locked,
		CreatedAt:  unixMilli(cu.CreatedAt),
		UpdatedAt:  unixMilli(cu.UpdatedAt),
		Version:    cu.UpdatedAt,
		Raw:        json.RawMessage(data),
	}
	for _, e := range cu.EmailAddresses {
		if e.EmailAddress == "" {
			continue
		}
		u.Emails = append(u.Emails, e.EmailAddress)
		if e.ID == cu.PrimaryEmailAddressID {
			u.PrimaryEmail = e.EmailAddress
		}
	}
	return u, nil
}

type clerkDeleted struct {
	ID         string `json:"id"`
	Slug       string `json:"slug"`
	ExternalID string `json:"external_id"`
	Deleted    bool   `json:"deleted"`
}

func parseClerkDeleted(what string, data []byte, occurred int64) (clerkDeleted, error) {
	var d clerkDeleted
	if err := json.Unmarshal(data, &d); err != nil {
		return d, malformed("clerk deleted %s: %v", what, err)
	}
	if d.ID == "" {
		return d, malformed("clerk deleted %s: id is missing", what)
	}
	if occurred == 0 {
		return d, malformed("clerk deleted %s: the event has no timestamp to order the deletion by", what)
	}
	return d, nil
}

func parseClerkDeletedUser(data []byte, occurred int64) (*User, error) {
	d, err := parseClerkDeleted("user", data, occurred)
	if err != nil {
		return nil, err
	}
	return &User{ID: d.ID, ExternalID: d.ExternalID, Deleted: true, Version: occurred, Raw: json.RawMessage(data)}, nil
}

func parseClerkDeletedOrganization(data []byte, occurred int64) (*Organization, error) {
	d, err := parseClerkDeleted("organization", data, occurred)
	if err != nil {
		return nil, err
	}
	return &Organization{ID: d.ID, Slug: d.Slug, Deleted: true, Version: occurred, Raw: json.RawMessage(data)}, nil
}

type clerkOrganization struct {
	ID        string `json:"id"`
	Name      string `json:"name"`
	Slug      string `json:"slug"`
	ImageURL  string `json:"image_url"`
	CreatedAt int64  `json:"created_at"`
	UpdatedAt int64  `json:"updated_at"`
}

// ParseClerkOrganization maps a Clerk Organization object to an Organization.
func ParseClerkOrganization(data []byte) (*Organization, error) {
	var co clerkOrganization
	if err := json.Unmarshal(data, &co); err != nil {
		return nil, malformed("clerk organization: %v", err)
	}
	if co.ID == "" {
		return nil, malformed("clerk organization: id is missing")
	}
	return &Organization{
		ID:        co.ID,
		Name:      co.Name,
		Slug:      co.Slug,
		ImageURL:  co.ImageURL,
		CreatedAt: unixMilli(co.CreatedAt),
		UpdatedAt: unixMilli(co.UpdatedAt),
		Version:   co.UpdatedAt,
		Raw:       json.RawMessage(data),
	}, nil
}

type clerkMembership struct {
	ID           string   `json:"id"`
	Role         string   `json:"role"`
	Permissions  []string `json:"permissions"`
	Organization struct {
		ID string `json:"id"`
	} `json:"organization"`
	PublicUserData struct {
		UserID string `json:"user_id"`
	} `json:"public_user_data"`
	CreatedAt int64 `json:"created_at"`
	UpdatedAt int64 `json:"updated_at"`
}

// ParseClerkMembership maps a Clerk OrganizationMembership object to a Membership.
func ParseClerkMembership(data []byte) (*Membership, error) {
	var cm clerkMembership
	if err := json.Unmarshal(data, &cm); err != nil {
		return nil, malformed("clerk membership: %v", err)
	}
	switch {
	case cm.Organization.ID == "":
		return nil, malformed("clerk membership: organization.id is missing")
	case cm.PublicUserData.UserID == "":
		return nil, malformed("clerk membership: public_user_data.user_id is missing")
	}
	return &Membership{
		ID:             cm.ID,
		OrganizationID: cm.Organization.ID,
		UserID:         cm.PublicUserData.UserID,
		Role:           cm.Role,
		Permissions:    cm.Permissions,
		CreatedAt:      unixMilli(cm.CreatedAt),
		UpdatedAt:      unixMilli(cm.UpdatedAt),
		Version:        cm.UpdatedAt,
		Raw:            json.RawMessage(data),
	}, nil
}

type clerkSession struct {
	ID       string `json:"id"`
	UserID   string `json:"user_id"`
	ClientID string `json:"client_id"`
	Status   string `json:"status"`
}

func parseClerkSession(data []byte) (*Session, error) {
	var cs clerkSession
	if err := json.Unmarshal(data, &cs); err != nil {
		return nil, malformed("clerk session: %v", err)
	}
	if cs.ID == "" {
		return nil, malformed("clerk session: id is missing")
	}
	return &Session{ID: cs.ID, UserID: cs.UserID, ClientID: cs.ClientID, Status: cs.Status, Raw: json.RawMessage(data)}, nil
}
