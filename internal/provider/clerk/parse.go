package clerk

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/idpsync/idpsync/internal/events"
	"github.com/idpsync/idpsync/internal/jsonscan"
)

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

var clerkTypes = map[string]events.Type{
	"user.created":                   events.UserCreated,
	"user.updated":                   events.UserUpdated,
	"user.deleted":                   events.UserDeleted,
	"organization.created":           events.OrganizationCreated,
	"organization.updated":           events.OrganizationUpdated,
	"organization.deleted":           events.OrganizationDeleted,
	"organizationMembership.created": events.MembershipCreated,
	"organizationMembership.updated": events.MembershipUpdated,
	"organizationMembership.deleted": events.MembershipDeleted,
	"session.created":                events.SessionCreated,
	"session.pending":                events.SessionPending,
	"session.ended":                  events.SessionEnded,
	"session.removed":                events.SessionRemoved,
	"session.revoked":                events.SessionRevoked,
}

// EventGroups returns the groups of the event types idpsync maps ("user" for user.*), sorted:
// mirrored are those whose events change the mirror, logged those that only reach the event log.
// A Svix endpoint for idpsync subscribes to the mirrored groups, and to the logged ones when
// they are wanted in the event log.
func EventGroups() (mirrored, logged []string) {
	seen := map[string]bool{}
	for name, t := range clerkTypes {
		group, _, _ := strings.Cut(name, ".")
		if seen[group] {
			continue
		}
		seen[group] = true
		if slices.Contains(events.MirroredEntities, t.Entity()) {
			mirrored = append(mirrored, group)
		} else {
			logged = append(logged, group)
		}
	}
	slices.Sort(mirrored)
	slices.Sort(logged)
	return mirrored, logged
}

type clerkEnvelope struct {
	Type      string `json:"type"`
	Timestamp int64  `json:"timestamp"`
}

type clerkEvent struct {
	clerkEnvelope
	Data json.RawMessage `json:"data"`
}

// ParseEnvelope reads the routing fields of a verified Clerk delivery: the event id is the svix-id
// (deliveryID), the type and time come from the envelope. It scans the top level of the body
// only; it is the receiver's hot path.
func ParseEnvelope(deliveryID string, body []byte) (events.Envelope, error) {
	var (
		env clerkEnvelope
		bad string
	)
	err := jsonscan.Object(body, func(key, value []byte) {
		switch {
		case jsonscan.IsNull(value):
		case jsonscan.KeyIs(key, "type"):
			s, ok := jsonscan.String(value, clerkTypeNames)
			if !ok {
				bad = "type is not a string"
			}
			env.Type = s
		case jsonscan.KeyIs(key, "timestamp"):
			n, ok := jsonscan.Int(value)
			if !ok {
				bad = "timestamp is not an integer"
			}
			env.Timestamp = n
		}
	})
	switch {
	case err != nil:
		return events.Envelope{}, events.Malformed("clerk: the body is not a JSON object")
	case bad != "":
		return events.Envelope{}, events.Malformed("clerk: %s", bad)
	}
	return clerkEnvelopeOf(deliveryID, env)
}

func clerkEnvelopeOf(deliveryID string, env clerkEnvelope) (events.Envelope, error) {
	if deliveryID == "" {
		return events.Envelope{}, events.Malformed("clerk: the delivery has no svix-id")
	}
	if env.Type == "" {
		return events.Envelope{}, events.Malformed("clerk: type is missing")
	}
	if err := events.CheckID(deliveryID); err != nil {
		return events.Envelope{}, events.MalformedID("clerk: the svix-id", err)
	}
	return events.Envelope{
		ID:         deliveryID,
		Type:       clerkTypes[env.Type],
		SourceType: env.Type,
		OccurredAt: unixSecondsOrMilli(env.Timestamp),
	}, nil
}

// Parse reads a verified Clerk delivery into an event. An id that cannot be recorded
// (events.CheckID) makes the payload malformed.
func Parse(deliveryID string, body []byte) (events.Event, error) {
	ev, err := parse(deliveryID, body)
	if err != nil {
		return events.Event{}, err
	}
	if err := events.CheckIDs(ev); err != nil {
		return events.Event{}, fmt.Errorf("clerk: %w", err)
	}
	return ev, nil
}

func parse(deliveryID string, body []byte) (events.Event, error) {
	var raw clerkEvent
	if err := json.Unmarshal(body, &raw); err != nil {
		return events.Event{}, events.Malformed("clerk: %v", err)
	}
	env, err := clerkEnvelopeOf(deliveryID, raw.clerkEnvelope)
	if err != nil {
		return events.Event{}, err
	}
	ev := events.Event{Envelope: env}
	if env.Type == "" {
		return ev, nil
	}
	if len(raw.Data) == 0 || raw.Data[0] != '{' {
		return events.Event{}, events.Malformed("clerk %s: data is not an object", env.SourceType)
	}
	occurred := env.OccurredAt.UnixMilli()
	if env.OccurredAt.IsZero() {
		occurred = 0
	}
	switch env.Type {
	case events.UserCreated, events.UserUpdated:
		ev.User, err = ParseUser(raw.Data)
	case events.UserDeleted:
		ev.User, err = parseClerkDeletedUser(raw.Data, occurred)
	case events.OrganizationCreated, events.OrganizationUpdated:
		ev.Organization, err = ParseOrganization(raw.Data)
	case events.OrganizationDeleted:
		ev.Organization, err = parseClerkDeletedOrganization(raw.Data, occurred)
	case events.MembershipCreated, events.MembershipUpdated, events.MembershipDeleted:
		ev.Membership, err = ParseMembership(raw.Data)
		if err == nil && env.Type == events.MembershipDeleted {
			ev.Membership.Deleted = true
			ev.Membership.Version = max(ev.Membership.Version, occurred)
		}
	default: // sessions
		ev.Session, err = parseClerkSession(raw.Data)
	}
	if err != nil {
		return events.Event{}, err
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
	// The credentials' state; a payload without password_enabled says nothing of them.
	PasswordEnabled       *bool  `json:"password_enabled"`
	PasswordLastUpdatedAt *int64 `json:"password_last_updated_at"`
	TOTPEnabled           bool   `json:"totp_enabled"`
}

// ParseUser maps a Clerk User object, as found in webhooks and returned by the Backend API,
// to a User. Webhooks and resyncs both go through it, so they produce identical mirror rows.
func ParseUser(data []byte) (*events.User, error) {
	var cu clerkUser
	if err := json.Unmarshal(data, &cu); err != nil {
		return nil, events.Malformed("clerk user: %v", err)
	}
	if err := events.CheckID(cu.ID); err != nil {
		return nil, events.MalformedID("clerk user: id", err)
	}
	u := &events.User{
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
	if cu.PasswordEnabled != nil {
		u.Credentials = &events.Credentials{Password: *cu.PasswordEnabled, TOTP: cu.TOTPEnabled}
		if cu.PasswordLastUpdatedAt != nil {
			u.Credentials.PasswordChangedAt = unixMilli(*cu.PasswordLastUpdatedAt)
		}
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
		return d, events.Malformed("clerk deleted %s: %v", what, err)
	}
	if d.ID == "" {
		return d, events.Malformed("clerk deleted %s: id is missing", what)
	}
	if occurred == 0 {
		return d, events.Malformed("clerk deleted %s: the event has no timestamp to order the deletion by", what)
	}
	return d, nil
}

func parseClerkDeletedUser(data []byte, occurred int64) (*events.User, error) {
	d, err := parseClerkDeleted("user", data, occurred)
	if err != nil {
		return nil, err
	}
	return &events.User{ID: d.ID, ExternalID: d.ExternalID, Deleted: true, Version: occurred, Raw: json.RawMessage(data)}, nil
}

func parseClerkDeletedOrganization(data []byte, occurred int64) (*events.Organization, error) {
	d, err := parseClerkDeleted("organization", data, occurred)
	if err != nil {
		return nil, err
	}
	return &events.Organization{ID: d.ID, Slug: d.Slug, Deleted: true, Version: occurred, Raw: json.RawMessage(data)}, nil
}

type clerkOrganization struct {
	ID        string `json:"id"`
	Name      string `json:"name"`
	Slug      string `json:"slug"`
	ImageURL  string `json:"image_url"`
	CreatedAt int64  `json:"created_at"`
	UpdatedAt int64  `json:"updated_at"`
}

// ParseOrganization maps a Clerk Organization object to an Organization.
func ParseOrganization(data []byte) (*events.Organization, error) {
	var co clerkOrganization
	if err := json.Unmarshal(data, &co); err != nil {
		return nil, events.Malformed("clerk organization: %v", err)
	}
	if err := events.CheckID(co.ID); err != nil {
		return nil, events.MalformedID("clerk organization: id", err)
	}
	return &events.Organization{
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

// ParseMembership maps a Clerk OrganizationMembership object to a Membership.
func ParseMembership(data []byte) (*events.Membership, error) {
	var cm clerkMembership
	if err := json.Unmarshal(data, &cm); err != nil {
		return nil, events.Malformed("clerk membership: %v", err)
	}
	switch {
	case events.CheckID(cm.Organization.ID) != nil:
		return nil, events.MalformedID("clerk membership: organization.id", events.CheckID(cm.Organization.ID))
	case cm.PublicUserData.UserID == "":
		return nil, events.Malformed("clerk membership: public_user_data.user_id is missing")
	}
	return &events.Membership{
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

func parseClerkSession(data []byte) (*events.Session, error) {
	var cs clerkSession
	if err := json.Unmarshal(data, &cs); err != nil {
		return nil, events.Malformed("clerk session: %v", err)
	}
	if cs.ID == "" {
		return nil, events.Malformed("clerk session: id is missing")
	}
	return &events.Session{ID: cs.ID, UserID: cs.UserID, ClientID: cs.ClientID, Status: cs.Status, Raw: json.RawMessage(data)}, nil
}

// clerkTypeNames interns the type names the scanner expects, so reading them allocates nothing.
var clerkTypeNames = func() map[string]string {
	m := make(map[string]string, len(clerkTypes))
	for name := range clerkTypes {
		m[name] = name
	}
	return m
}()

// unixMilli turns a Unix timestamp in milliseconds into a time, zero for 0.
func unixMilli(ms int64) time.Time {
	if ms == 0 {
		return time.Time{}
	}
	return time.UnixMilli(ms).UTC()
}

// unixSecondsOrMilli reads a timestamp whose unit varies (Clerk's envelope timestamp is documented
// in milliseconds but published examples use seconds): values above 10^12 are milliseconds.
func unixSecondsOrMilli(v int64) time.Time {
	switch {
	case v <= 0:
		return time.Time{}
	case v > 1e12:
		return time.UnixMilli(v).UTC()
	}
	return time.Unix(v, 0).UTC()
}
