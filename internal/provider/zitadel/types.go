package zitadel

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"time"
)

// Uint64 is a 64-bit number that Zitadel's JSON (protojson) sends as a string ("42"); it also
// accepts a bare number and encodes as a string.
type Uint64 uint64

// UnmarshalJSON accepts "42" and 42.
func (n *Uint64) UnmarshalJSON(b []byte) error {
	s := string(bytes.Trim(b, `"`))
	if s == "" || s == "null" {
		*n = 0
		return nil
	}
	v, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return fmt.Errorf("zitadel: %s is not an unsigned 64-bit number", b)
	}
	*n = Uint64(v)
	return nil
}

// MarshalJSON encodes n as a string, as protojson does.
func (n Uint64) MarshalJSON() ([]byte, error) {
	return []byte(`"` + strconv.FormatUint(uint64(n), 10) + `"`), nil
}

// Details is Zitadel's object details: the sequence and time of the last change and the owning
// organization.
type Details struct {
	Sequence      Uint64     `json:"sequence"`
	CreationDate  *time.Time `json:"creationDate,omitempty"`
	ChangeDate    *time.Time `json:"changeDate,omitempty"`
	ResourceOwner string     `json:"resourceOwner"`
}

// ListDetails describes a list answer.
type ListDetails struct {
	TotalResult       Uint64     `json:"totalResult"`
	ProcessedSequence Uint64     `json:"processedSequence"`
	Timestamp         *time.Time `json:"timestamp,omitempty"`
}

// User states.
const (
	UserStateActive   = "USER_STATE_ACTIVE"
	UserStateInactive = "USER_STATE_INACTIVE"
	UserStateLocked   = "USER_STATE_LOCKED"
	UserStateInitial  = "USER_STATE_INITIAL"
	UserStateDeleted  = "USER_STATE_DELETED"
)

// User is a Zitadel v2 user (zitadel.user.v2.User): a human or a machine. Raw holds the item's
// JSON as received.
type User struct {
	UserID             string   `json:"userId"`
	Details            *Details `json:"details"`
	State              string   `json:"state"`
	Username           string   `json:"username"`
	LoginNames         []string `json:"loginNames"`
	PreferredLoginName string   `json:"preferredLoginName"`
	Human              *Human   `json:"human,omitempty"`
	Machine            *Machine `json:"machine,omitempty"`

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

// Human is the human part of a user.
type Human struct {
	Profile *Profile `json:"profile,omitempty"`
	Email   *Email   `json:"email,omitempty"`
	Phone   *Phone   `json:"phone,omitempty"`
}

// Profile is a human's profile.
type Profile struct {
	GivenName         string `json:"givenName"`
	FamilyName        string `json:"familyName"`
	NickName          string `json:"nickName,omitempty"`
	DisplayName       string `json:"displayName"`
	PreferredLanguage string `json:"preferredLanguage,omitempty"`
	Gender            string `json:"gender,omitempty"`
}

// Email is a human's email.
type Email struct {
	Email      string `json:"email"`
	IsVerified bool   `json:"isVerified"`
}

// Phone is a human's phone.
type Phone struct {
	Phone      string `json:"phone"`
	IsVerified bool   `json:"isVerified"`
}

// Machine is the machine (service user) part of a user.
type Machine struct {
	Name        string `json:"name"`
	Description string `json:"description,omitempty"`
}

// Organization states.
const (
	OrganizationStateActive   = "ORGANIZATION_STATE_ACTIVE"
	OrganizationStateInactive = "ORGANIZATION_STATE_INACTIVE"
	OrganizationStateRemoved  = "ORGANIZATION_STATE_REMOVED"
)

// Organization is a Zitadel v2 organization.
type Organization struct {
	ID            string   `json:"id"`
	Details       *Details `json:"details"`
	State         string   `json:"state"`
	Name          string   `json:"name"`
	PrimaryDomain string   `json:"primaryDomain"`

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

// Session is a Zitadel v2 session.
type Session struct {
	ID             string            `json:"id"`
	CreationDate   *time.Time        `json:"creationDate,omitempty"`
	ChangeDate     *time.Time        `json:"changeDate,omitempty"`
	Sequence       Uint64            `json:"sequence"`
	Factors        *Factors          `json:"factors,omitempty"`
	Metadata       map[string]string `json:"metadata,omitempty"`
	ExpirationDate *time.Time        `json:"expirationDate,omitempty"`

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

// UserID returns the id of the session's user, or "" before the user factor was checked.
func (s *Session) UserID() string {
	if s.Factors == nil || s.Factors.User == nil {
		return ""
	}
	return s.Factors.User.ID
}

// Factors are the checked factors of a session.
type Factors struct {
	User *UserFactor `json:"user,omitempty"`
}

// UserFactor identifies the session's user.
type UserFactor struct {
	VerifiedAt     *time.Time `json:"verifiedAt,omitempty"`
	ID             string     `json:"id"`
	LoginName      string     `json:"loginName"`
	DisplayName    string     `json:"displayName"`
	OrganizationID string     `json:"organizationId"`
}

// listQuery is zitadel.object.v2.ListQuery.
type listQuery struct {
	Offset Uint64 `json:"offset"`
	Limit  uint32 `json:"limit"`
	Asc    bool   `json:"asc"`
}

type listResponse[T any] struct {
	Details  ListDetails `json:"details"`
	Result   []T         `json:"result"`
	Sessions []T         `json:"sessions"`
}

type detailsResponse struct {
	Details Details `json:"details"`
}
