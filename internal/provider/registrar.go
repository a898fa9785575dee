package provider

import (
	"bytes"
	"context"
	"encoding/json"
)

// Registrar registers idpsync's receiver as a webhook endpoint at an IdP, and removes it again
// (`worker register` and `worker unregister`). A provider whose endpoints idpsync cannot manage
// leaves Connection.Registrar nil.
//
// Registering is planned, then applied: a plan is built from reads only (the IdP's existing
// registrations for the endpoint), so that a dry run can show it and a second run finds what the
// first one made and plans nothing.
type Registrar interface {
	// PlanRegistration reads what the IdP has for endpoint and returns the writes that register
	// it. It sends no write. A plan without steps means endpoint is registered already.
	PlanRegistration(ctx context.Context, endpoint string) (*RegistrationPlan, error)
	// PlanRemoval reads what the IdP has for endpoint and returns the writes that remove what
	// PlanRegistration's steps made. It sends no write. A plan without steps means nothing is
	// registered for endpoint.
	PlanRemoval(ctx context.Context, endpoint string) (*RegistrationPlan, error)
}

// RegistrationPlan is what registering (or removing) an endpoint takes at one IdP.
type RegistrationPlan struct {
	// Found says, for people, what the IdP already has for the endpoint (one line per thing:
	// "webhook wh_1: 16 events, auth bearer+signature"); empty when it has nothing. Never a
	// secret.
	Found []string
	// Steps are the writes to send, in order; a step may use what an earlier one made (the id of
	// a target just created). Empty when there is nothing to change.
	Steps []RegistrationStep
	// Manual are the steps left to an operator, in order, as sentences (Clerk: add the endpoint
	// in Svix's dashboard). A step's result may restate them with what it learned.
	Manual []string
	// Notes are remarks that change nothing: an existing registration that differs from what
	// idpsync would make, an assumption about the IdP.
	Notes []string
}

// RegistrationStep is one write of a plan.
type RegistrationStep struct {
	// Does says what the step does, for people: "create the webhook".
	Does string
	// Method and Path are the request the step sends, Path from the API root.
	Method, Path string
	// Body is the JSON body the step sends; nil for none. It never holds a secret: values that
	// are not known before an earlier step ran (an id) are shown as placeholders.
	Body json.RawMessage
	// ApplyFunc sends the request. Required.
	ApplyFunc func(ctx context.Context) (RegistrationResult, error)
}

// RegistrationResult is what a step made.
type RegistrationResult struct {
	// Made says what the step did, for people and logs: "created webhook wh_1".
	// Never a secret.
	Made string
	// Secrets are the webhook settings the IdP showed in its answer and will not show again.
	Secrets WebhookSecrets
	// Manual, when set, restates the plan's manual steps with what the step learned (a
	// dashboard link, which is a credential: printed for the operator, never logged).
	Manual []string
}

// WebhookSecrets are the values of a source's webhook settings that an IdP shows once, in the
// fields of WebhookSettings. Never log them, nor put them in an error.
type WebhookSecrets struct {
	// Secrets are signing secrets or keys (webhook.secrets).
	Secrets []string
	// BearerTokens are shared tokens (webhook.bearer_tokens).
	BearerTokens []string
}

// Empty reports whether s holds no value.
func (s WebhookSecrets) Empty() bool { return len(s.Secrets) == 0 && len(s.BearerTokens) == 0 }

// Add appends the values of o to s.
func (s *WebhookSecrets) Add(o WebhookSecrets) {
	s.Secrets = append(s.Secrets, o.Secrets...)
	s.BearerTokens = append(s.BearerTokens, o.BearerTokens...)
}

// StepBody encodes a registration step's JSON body, as people read it (<, > and & unescaped); it
// panics on a value encoding/json cannot encode, a programming error.
func StepBody(v any) json.RawMessage {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		panic("provider: encoding a registration step's body: " + err.Error())
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n"))
}
