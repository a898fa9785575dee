package clerk

import (
	"bytes"
	"encoding/json"
	"errors"
)

// User is a Clerk user (BAPI schema User). Timestamps are Unix milliseconds. Raw holds the item's
// JSON exactly as the API returned it; the sync layer maps users from Raw so that webhooks and
// resyncs produce identical rows.
type User struct {
	ID                      string          `json:"id"`
	Object                  string          `json:"object"`
	ExternalID              *string         `json:"external_id"`
	PrimaryEmailAddressID   *string         `json:"primary_email_address_id"`
	PrimaryPhoneNumberID    *string         `json:"primary_phone_number_id"`
	Username                *string         `json:"username"`
	FirstName               *string         `json:"first_name"`
	LastName                *string         `json:"last_name"`
	ImageURL                string          `json:"image_url"`
	HasImage                bool            `json:"has_image"`
	EmailAddresses          []EmailAddress  `json:"email_addresses"`
	PhoneNumbers            []PhoneNumber   `json:"phone_numbers"`
	PublicMetadata          json.RawMessage `json:"public_metadata"`
	PrivateMetadata         json.RawMessage `json:"private_metadata"`
	UnsafeMetadata          json.RawMessage `json:"unsafe_metadata"`
	PasswordEnabled         bool            `json:"password_enabled"`
	TwoFactorEnabled        bool            `json:"two_factor_enabled"`
	Banned                  bool            `json:"banned"`
	Locked                  bool            `json:"locked"`
	LockoutExpiresInSeconds *int64          `json:"lockout_expires_in_seconds"`
	LastSignInAt            *int64          `json:"last_sign_in_at"`
	LastActiveAt            *int64          `json:"last_active_at"`
	CreatedAt               int64           `json:"created_at"`
	UpdatedAt               int64           `json:"updated_at"`

	// Raw is the user's JSON as received.
	Raw json.RawMessage `json:"-"`
}

// UnmarshalJSON decodes a user and keeps its raw JSON.
func (u *User) UnmarshalJSON(b []byte) error {
	type plain User
	if err := json.Unmarshal(b, (*plain)(u)); err != nil {
		return err
	}
	u.Raw = bytes.Clone(b)
	return nil
}

// PrimaryEmail returns the address of the primary email, or "" when the user has none.
func (u *User) PrimaryEmail() string {
	if u.PrimaryEmailAddressID == nil {
		return ""
	}
	for _, e := range u.EmailAddresses {
		if e.ID == *u.PrimaryEmailAddressID {
			return e.EmailAddress
		}
	}
	return ""
}

// EmailAddress is one of a user's email addresses.
type EmailAddress struct {
	ID           string        `json:"id"`
	Object       string        `json:"object"`
	EmailAddress string        `json:"email_address"`
	Reserved     bool          `json:"reserved"`
	Verification *Verification `json:"verification"`
}

// PhoneNumber is one of a user's phone numbers.
type PhoneNumber struct {
	ID           string        `json:"id"`
	Object       string        `json:"object"`
	PhoneNumber  string        `json:"phone_number"`
	Verification *Verification `json:"verification"`
}

// Verification is the verification state of an identification.
type Verification struct {
	Status   string `json:"status"`
	Strategy string `json:"strategy"`
}

// Organization is a Clerk organization (BAPI schema Organization).
type Organization struct {
	ID                    string          `json:"id"`
	Object                string          `json:"object"`
	Name                  string          `json:"name"`
	Slug                  string          `json:"slug"`
	ImageURL              string          `json:"image_url"`
	HasImage              bool            `json:"has_image"`
	MembersCount          *int            `json:"members_count"`
	MaxAllowedMemberships int             `json:"max_allowed_memberships"`
	AdminDeleteEnabled    bool            `json:"admin_delete_enabled"`
	PublicMetadata        json.RawMessage `json:"public_metadata"`
	PrivateMetadata       json.RawMessage `json:"private_metadata"`
	CreatedBy             string          `json:"created_by"`
	CreatedAt             int64           `json:"created_at"`
	UpdatedAt             int64           `json:"updated_at"`

	// Raw is the organization's JSON as received.
	Raw json.RawMessage `json:"-"`
}

// UnmarshalJSON decodes an organization and keeps its raw JSON.
func (o *Organization) UnmarshalJSON(b []byte) error {
	type plain Organization
	if err := json.Unmarshal(b, (*plain)(o)); err != nil {
		return err
	}
	o.Raw = bytes.Clone(b)
	return nil
}

// OrganizationMembership is a user's membership in an organization (BAPI schema
// OrganizationMembership). The pair is identified by Organization.ID and PublicUserData.UserID.
type OrganizationMembership struct {
	ID              string          `json:"id"`
	Object          string          `json:"object"`
	Role            string          `json:"role"`
	RoleName        string          `json:"role_name"`
	Permissions     []string        `json:"permissions"`
	PublicMetadata  json.RawMessage `json:"public_metadata"`
	PrivateMetadata json.RawMessage `json:"private_metadata"`
	Organization    Organization    `json:"organization"`
	PublicUserData  *PublicUserData `json:"public_user_data"`
	CreatedAt       int64           `json:"created_at"`
	UpdatedAt       int64           `json:"updated_at"`

	// Raw is the membership's JSON as received.
	Raw json.RawMessage `json:"-"`
}

// UnmarshalJSON decodes a membership and keeps its raw JSON.
func (m *OrganizationMembership) UnmarshalJSON(b []byte) error {
	type plain OrganizationMembership
	if err := json.Unmarshal(b, (*plain)(m)); err != nil {
		return err
	}
	m.Raw = bytes.Clone(b)
	return nil
}

// UserID returns the member's user id, or "" when the API sent no public user data.
func (m *OrganizationMembership) UserID() string {
	if m.PublicUserData == nil {
		return ""
	}
	return m.PublicUserData.UserID
}

// PublicUserData is the public part of a member's user.
type PublicUserData struct {
	UserID     string  `json:"user_id"`
	FirstName  *string `json:"first_name"`
	LastName   *string `json:"last_name"`
	ImageURL   string  `json:"image_url"`
	HasImage   bool    `json:"has_image"`
	Identifier *string `json:"identifier"`
	Username   *string `json:"username"`
}

// Session is a Clerk session (BAPI schema Session). Status is one of active, revoked, ended,
// expired, removed, abandoned, replaced, pending.
type Session struct {
	ID                       string  `json:"id"`
	Object                   string  `json:"object"`
	UserID                   string  `json:"user_id"`
	ClientID                 string  `json:"client_id"`
	Status                   string  `json:"status"`
	LastActiveOrganizationID *string `json:"last_active_organization_id"`
	LastActiveAt             int64   `json:"last_active_at"`
	ExpireAt                 int64   `json:"expire_at"`
	AbandonAt                int64   `json:"abandon_at"`
	CreatedAt                int64   `json:"created_at"`
	UpdatedAt                int64   `json:"updated_at"`

	// Raw is the session's JSON as received.
	Raw json.RawMessage `json:"-"`
}

// UnmarshalJSON decodes a session and keeps its raw JSON.
func (s *Session) UnmarshalJSON(b []byte) error {
	type plain Session
	if err := json.Unmarshal(b, (*plain)(s)); err != nil {
		return err
	}
	s.Raw = bytes.Clone(b)
	return nil
}

// DeletedObject is Clerk's answer to a delete (BAPI schema DeletedObject).
type DeletedObject struct {
	Object     string  `json:"object"`
	ID         string  `json:"id"`
	Slug       string  `json:"slug,omitempty"`
	Deleted    bool    `json:"deleted"`
	ExternalID *string `json:"external_id,omitempty"`
}

// list is the {data, total_count} envelope of Clerk's paginated lists.
type list[T any] struct {
	Data       []T   `json:"data"`
	TotalCount int64 `json:"total_count"`
	// paged is false when the answer was a bare array (no total).
	paged bool
}

// UnmarshalJSON reads a page in either of the shapes Clerk uses: {data,total_count}, or a bare
// array without a total (GET /sessions as Clerk's published spec documents it; GET /users).
func (l *list[T]) UnmarshalJSON(b []byte) error {
	b = bytes.TrimLeft(b, " \t\r\n")
	if len(b) > 0 && b[0] == '[' {
		l.paged = false
		return json.Unmarshal(b, &l.Data)
	}
	var page struct {
		Data       *[]T   `json:"data"`
		TotalCount *int64 `json:"total_count"`
	}
	if err := json.Unmarshal(b, &page); err != nil {
		return err
	}
	if page.Data == nil || page.TotalCount == nil {
		return errors.New("the page has neither the shape {data, total_count} nor that of an array")
	}
	l.Data, l.TotalCount, l.paged = *page.Data, *page.TotalCount, true
	return nil
}

// totalCount is the answer of GET /users/count.
type totalCount struct {
	Object     string `json:"object"`
	TotalCount int64  `json:"total_count"`
}
