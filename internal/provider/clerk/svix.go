package clerk

import (
	"context"
	"fmt"
	"net/http"

	"github.com/idpsync/idpsync/internal/idpclient"
)

// Clerk keeps an instance's webhook endpoints in a Svix application. Its Backend API can create
// that application and make a login link to Svix's dashboard for it, and nothing more: endpoints
// are added, and their signing secrets read, in the dashboard.

// SvixURL is Clerk's answer with a link to the Svix dashboard of the instance (BAPI schema
// SvixURL). The link logs whoever opens it in to the instance's webhook settings, signing
// secrets included, for a short while: show it to the operator, never log it.
type SvixURL struct {
	SvixURL string `json:"svix_url"`
}

// CreateSvixApp creates the instance's Svix application (POST /webhooks/svix) and returns a
// dashboard link for it. Clerk's spec documents a 400 as its only error; an instance that has an
// application already is expected to answer one.
func (c *Client) CreateSvixApp(ctx context.Context) (*SvixURL, error) {
	var out SvixURL
	if err := c.t.Do(ctx, &idpclient.Request{Method: http.MethodPost, Path: "/webhooks/svix"}, &out); err != nil {
		return nil, fmt.Errorf("creating the Svix app: %w", err)
	}
	return checkSvixURL(&out)
}

// GenerateSvixAuthURL makes a new link to the Svix dashboard of the instance (POST
// /webhooks/svix_url). It changes no setting of the instance. Clerk's spec documents a 400 as its
// only error; an instance without a Svix application is expected to answer one.
func (c *Client) GenerateSvixAuthURL(ctx context.Context) (*SvixURL, error) {
	var out SvixURL
	if err := c.t.Do(ctx, &idpclient.Request{Method: http.MethodPost, Path: "/webhooks/svix_url", Idempotent: true}, &out); err != nil {
		return nil, fmt.Errorf("making a Svix dashboard link: %w", err)
	}
	return checkSvixURL(&out)
}

func checkSvixURL(u *SvixURL) (*SvixURL, error) {
	if u.SvixURL == "" {
		return nil, fmt.Errorf("clerk answered without svix_url: %w", idpclient.ErrUnexpected)
	}
	return u, nil
}
