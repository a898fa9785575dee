package authpi

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/idpsync/idpsync/internal/idpclient"
	"github.com/idpsync/idpsync/internal/provider"
)

// What idpsync registers at AuthPI: one webhook per receiver endpoint, subscribed to every event
// type the parser maps (EventTypes), authenticated with both a bearer token and an HMAC-SHA256
// signature of the body. AuthPI returns the token and the signature secret once, in its answer to
// the creation (bearer_token_plain, signature_secret_plain).
const (
	// WebhookAuthType is the auth type of the webhooks idpsync registers.
	WebhookAuthType = "bearer+signature"
	// WebhookSignatureAlgorithm is their signature algorithm.
	WebhookSignatureAlgorithm = "hmac-sha256"
)

// authpiRegistrar registers the receiver endpoint as an AuthPI webhook.
type authpiRegistrar struct {
	c      *Client
	source string
}

var _ provider.Registrar = (*authpiRegistrar)(nil)

// WebhookName is the name idpsync gives the webhook of a source, for AuthPI's console.
func WebhookName(source string) string {
	if source == "" {
		return "idpsync"
	}
	return "idpsync-" + source
}

// webhooksAt lists the account's webhooks whose URL is endpoint.
func (r *authpiRegistrar) webhooksAt(ctx context.Context, endpoint string) ([]Webhook, error) {
	var out []Webhook
	for w, err := range r.c.ListWebhooks(ctx, nil) {
		if err != nil {
			return nil, fmt.Errorf("looking for webhooks at %s: %w", endpoint, err)
		}
		if w.URL == endpoint {
			out = append(out, w)
		}
	}
	return out, nil
}

func describeWebhook(w Webhook) string {
	return fmt.Sprintf("webhook %s (%q): %d event types, auth %s, status %s", w.ID, w.Name, len(w.Events), w.Auth.Type, w.Status)
}

// PlanRegistration implements provider.Registrar: a webhook for endpoint, unless the account has
// one already.
func (r *authpiRegistrar) PlanRegistration(ctx context.Context, endpoint string) (*provider.RegistrationPlan, error) {
	found, err := r.webhooksAt(ctx, endpoint)
	if err != nil {
		return nil, err
	}
	plan := &provider.RegistrationPlan{}
	want := EventTypes()
	if len(found) > 0 {
		for _, w := range found {
			plan.Found = append(plan.Found, describeWebhook(w))
			if missing := without(want, w.Events); len(missing) > 0 {
				plan.Notes = append(plan.Notes, fmt.Sprintf("webhook %s does not subscribe to %s, which idpsync maps; AuthPI has no documented way to change a webhook's events: unregister and register again to replace it (with new secrets)",
					w.ID, strings.Join(missing, ", ")))
			}
			if w.Auth.Type != WebhookAuthType {
				plan.Notes = append(plan.Notes, fmt.Sprintf("webhook %s authenticates with %q, not %q; the source's webhook settings must match it", w.ID, w.Auth.Type, WebhookAuthType))
			}
		}
		return plan, nil
	}
	path, err := r.c.accountPath(ctx, "/webhooks")
	if err != nil {
		return nil, err
	}
	params := CreateWebhookParams{Name: WebhookName(r.source), URL: endpoint, Events: want,
		Auth: WebhookAuth{Type: WebhookAuthType, SignatureAlgorithm: WebhookSignatureAlgorithm}, IdempotencyKey: newIdempotencyKey()}
	plan.Steps = append(plan.Steps, provider.RegistrationStep{
		Does:   "create the webhook (AuthPI shows its bearer token and signature secret once)",
		Method: http.MethodPost, Path: path, Body: provider.StepBody(params),
		ApplyFunc: func(ctx context.Context) (provider.RegistrationResult, error) {
			w, err := r.c.CreateWebhook(ctx, &params)
			if err != nil {
				return provider.RegistrationResult{}, err
			}
			res := provider.RegistrationResult{Made: "created webhook " + w.ID}
			if w.BearerTokenPlain != "" {
				res.Secrets.BearerTokens = []string{w.BearerTokenPlain}
			}
			if w.SignatureSecretPlain != "" {
				res.Secrets.Secrets = []string{w.SignatureSecretPlain}
			}
			if w.BearerTokenPlain == "" || w.SignatureSecretPlain == "" {
				return res, fmt.Errorf("AuthPI created webhook %s but its answer lacks bearer_token_plain or signature_secret_plain, which it shows only then: unregister and register again", w.ID)
			}
			return res, nil
		},
	})
	return plan, nil
}

// PlanRemoval implements provider.Registrar: delete every webhook of the account whose URL is
// endpoint.
func (r *authpiRegistrar) PlanRemoval(ctx context.Context, endpoint string) (*provider.RegistrationPlan, error) {
	found, err := r.webhooksAt(ctx, endpoint)
	if err != nil {
		return nil, err
	}
	plan := &provider.RegistrationPlan{}
	for _, w := range found {
		plan.Found = append(plan.Found, describeWebhook(w))
		path, err := r.c.accountPath(ctx, "/webhooks/"+idpclient.PathEscape(w.ID))
		if err != nil {
			return nil, err
		}
		plan.Steps = append(plan.Steps, provider.RegistrationStep{
			Does:   "delete webhook " + w.ID,
			Method: http.MethodDelete, Path: path,
			ApplyFunc: func(ctx context.Context) (provider.RegistrationResult, error) {
				err := r.c.DeleteWebhook(ctx, w.ID)
				switch {
				case errors.Is(err, idpclient.ErrNotFound):
					return provider.RegistrationResult{Made: "webhook " + w.ID + " was already gone"}, nil
				case err != nil:
					return provider.RegistrationResult{}, err
				}
				return provider.RegistrationResult{Made: "deleted webhook " + w.ID}, nil
			},
		})
	}
	return plan, nil
}

// without returns the items of want that are not in have.
func without(want, have []string) []string {
	var out []string
	for _, w := range want {
		if !slices.Contains(have, w) {
			out = append(out, w)
		}
	}
	return out
}
