package authpi

import (
	"bytes"
	"encoding/json"
	"time"
)

// Issuer is an AuthPI issuer (an OIDC tenant of the account).
type Issuer struct {
	ID        string    `json:"id"`
	Name      string    `json:"name"`
	URL       string    `json:"url,omitempty"`
	Status    string    `json:"status,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`

	// Raw is the issuer's JSON as received.
	Raw json.RawMessage `json:"-"`
}

// UnmarshalJSON decodes an issuer and keeps its raw JSON.
func (i *Issuer) UnmarshalJSON(b []byte) error {
	type plain Issuer
	if err := json.Unmarshal(b, (*plain)(i)); err != nil {
		return err
	}
	i.Raw = bytes.Clone(b)
	return nil
}

// User statuses.
const (
	UserStatusActive    = "active"
	UserStatusSuspended = "suspended"
	UserStatusDisabled  = "disabled"
	UserStatusDeleted   = "deleted"
)

// User is a user of an issuer. List answers carry hashed usernames; GetUser returns the details.
type User struct {
	ID            string          `json:"id"`
	IssuerID      string          `json:"issuer_id"`
	Username      string          `json:"username,omitempty"`
	Email         string          `json:"email,omitempty"`
	EmailVerified bool            `json:"email_verified"`
	DisplayName   string          `json:"display_name,omitempty"`
	Status        string          `json:"status"`
	Region        string          `json:"region,omitempty"`
	Metadata      json.RawMessage `json:"metadata,omitempty"`
	CreatedAt     time.Time       `json:"created_at"`
	UpdatedAt     time.Time       `json:"updated_at"`

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

// Organization is an organization of an issuer.
type Organization struct {
	ID        string          `json:"id"`
	IssuerID  string          `json:"issuer_id"`
	Name      string          `json:"name"`
	Slug      string          `json:"slug,omitempty"`
	Status    string          `json:"status"`
	Metadata  json.RawMessage `json:"metadata,omitempty"`
	CreatedAt time.Time       `json:"created_at"`
	UpdatedAt time.Time       `json:"updated_at"`

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

// WebhookAuth is how AuthPI authenticates its deliveries to a webhook.
type WebhookAuth struct {
	// Type is "none", "bearer", "signature" or "bearer+signature".
	Type string `json:"type"`
	// SignatureAlgorithm is "hmac-sha256" for the signature types.
	SignatureAlgorithm string `json:"signature_algorithm,omitempty"`
	// SignatureSecretHint and BearerTokenHint are the last characters of the secrets.
	SignatureSecretHint string `json:"signature_secret_hint,omitempty"`
	BearerTokenHint     string `json:"bearer_token_hint,omitempty"`
}

// Webhook is a webhook subscription of the account.
type Webhook struct {
	ID     string      `json:"id"`
	Name   string      `json:"name,omitempty"`
	URL    string      `json:"url"`
	Events []string    `json:"events"`
	Status string      `json:"status"`
	Auth   WebhookAuth `json:"auth"`
	// SignatureSecretPlain and BearerTokenPlain are returned once, by CreateWebhook. Store them
	// in the receiver's configuration; never log them.
	SignatureSecretPlain string    `json:"signature_secret_plain,omitempty"`
	BearerTokenPlain     string    `json:"bearer_token_plain,omitempty"`
	CreatedAt            time.Time `json:"created_at"`

	// Raw is the webhook's JSON as received.
	Raw json.RawMessage `json:"-"`
}

// UnmarshalJSON decodes a webhook and keeps its raw JSON.
func (w *Webhook) UnmarshalJSON(b []byte) error {
	type plain Webhook
	if err := json.Unmarshal(b, (*plain)(w)); err != nil {
		return err
	}
	w.Raw = bytes.Clone(b)
	return nil
}

// page is AuthPI's cursor page: {data, has_more, next_cursor}.
type page[T any] struct {
	Data       []T    `json:"data"`
	HasMore    bool   `json:"has_more"`
	NextCursor string `json:"next_cursor"`
}
