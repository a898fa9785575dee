package authpi

import (
	"context"
	"fmt"
	"iter"
	"net/http"
	"net/url"

	"github.com/idpsync/idpsync/internal/idpclient"
)

// ListIssuers iterates over the account's issuers.
func (c *Client) ListIssuers(ctx context.Context, params *ListParams) iter.Seq2[Issuer, error] {
	if params == nil {
		params = &ListParams{}
	}
	return cursorList[Issuer](ctx, c, "/issuers", *params, nil)
}

// ListUsersParams selects the users of one issuer.
type ListUsersParams struct {
	ListParams
	// IssuerID is the issuer ("i_…"). Required.
	IssuerID string
	// Status keeps one status: active, suspended, disabled or deleted.
	Status string
}

// ListUsers iterates over the users of an issuer, following cursors.
func (c *Client) ListUsers(ctx context.Context, params *ListUsersParams) iter.Seq2[User, error] {
	if params == nil || params.IssuerID == "" {
		return errSeq[User]("listing users: IssuerID is empty")
	}
	f := url.Values{}
	if params.Status != "" {
		f.Set("status", params.Status)
	}
	return cursorList[User](ctx, c, "/issuers/"+idpclient.PathEscape(params.IssuerID)+"/users", params.ListParams, f)
}

// GetUser returns one user of an issuer with its details.
func (c *Client) GetUser(ctx context.Context, issuerID, userID string) (*User, error) {
	path, err := c.accountPath(ctx, "/issuers/"+idpclient.PathEscape(issuerID)+"/users/"+idpclient.PathEscape(userID))
	if err != nil {
		return nil, err
	}
	var u User
	if err := c.t.Do(ctx, &idpclient.Request{Method: http.MethodGet, Path: path, NotFoundMeansGone: true}, &u); err != nil {
		return nil, fmt.Errorf("getting user: %w", err)
	}
	return &u, nil
}

// ListOrganizationsParams selects the organizations of one issuer.
type ListOrganizationsParams struct {
	ListParams
	// IssuerID is the issuer. Required.
	IssuerID string
	// Status keeps one status: active, suspended or deleted.
	Status string
}

// ListOrganizations iterates over the organizations of an issuer.
func (c *Client) ListOrganizations(ctx context.Context, params *ListOrganizationsParams) iter.Seq2[Organization, error] {
	if params == nil || params.IssuerID == "" {
		return errSeq[Organization]("listing organizations: IssuerID is empty")
	}
	f := url.Values{}
	if params.Status != "" {
		f.Set("status", params.Status)
	}
	return cursorList[Organization](ctx, c, "/issuers/"+idpclient.PathEscape(params.IssuerID)+"/organizations", params.ListParams, f)
}

// CreateWebhookParams describes a webhook subscription.
type CreateWebhookParams struct {
	// Name labels the webhook in AuthPI's console.
	Name string `json:"name,omitempty"`
	// URL receives the deliveries. Required.
	URL string `json:"url"`
	// Events are the event types to deliver, e.g. "user.created". Required.
	Events []string `json:"events"`
	// Auth chooses how deliveries are authenticated; Type defaults to "bearer".
	Auth WebhookAuth `json:"auth"`
	// IdempotencyKey deduplicates retries of this creation. Defaults to a random key per call,
	// which makes the call safe to retry on 429 and 5xx.
	IdempotencyKey string `json:"-"`
}

// CreateWebhook subscribes a URL to events. The answer carries the bearer token or signature
// secret once (BearerTokenPlain, SignatureSecretPlain).
func (c *Client) CreateWebhook(ctx context.Context, params *CreateWebhookParams) (*Webhook, error) {
	if params == nil || params.URL == "" || len(params.Events) == 0 {
		return nil, fmt.Errorf("creating webhook: URL and Events are required: %w", idpclient.ErrValidation)
	}
	body := *params
	if body.Auth.Type == "" {
		body.Auth.Type = "bearer"
	}
	if (body.Auth.Type == "signature" || body.Auth.Type == "bearer+signature") && body.Auth.SignatureAlgorithm == "" {
		body.Auth.SignatureAlgorithm = "hmac-sha256"
	}
	key := params.IdempotencyKey
	if key == "" {
		key = newIdempotencyKey()
	}
	path, err := c.accountPath(ctx, "/webhooks")
	if err != nil {
		return nil, err
	}
	var w Webhook
	if err := c.t.Do(ctx, &idpclient.Request{Method: http.MethodPost, Path: path, JSON: body, IdempotencyKey: key}, &w); err != nil {
		return nil, fmt.Errorf("creating webhook: %w", err)
	}
	return &w, nil
}

// ListWebhooks iterates over the account's webhooks.
func (c *Client) ListWebhooks(ctx context.Context, params *ListParams) iter.Seq2[Webhook, error] {
	if params == nil {
		params = &ListParams{}
	}
	return cursorList[Webhook](ctx, c, "/webhooks", *params, nil)
}

// DeleteWebhook removes a webhook. It is not retried on 5xx: a second delete would answer
// ErrNotFound.
func (c *Client) DeleteWebhook(ctx context.Context, webhookID string) error {
	path, err := c.accountPath(ctx, "/webhooks/"+idpclient.PathEscape(webhookID))
	if err != nil {
		return err
	}
	if err := c.t.Do(ctx, &idpclient.Request{Method: http.MethodDelete, Path: path, NotFoundMeansGone: true}, nil); err != nil {
		return fmt.Errorf("deleting webhook: %w", err)
	}
	return nil
}

func errSeq[T any](msg string) iter.Seq2[T, error] {
	return func(yield func(T, error) bool) {
		var zero T
		yield(zero, fmt.Errorf("%s: %w", msg, idpclient.ErrValidation))
	}
}
