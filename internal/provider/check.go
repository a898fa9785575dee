package provider

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/idpsync/idpsync/internal/idpclient"
)

// Prober makes a source's cheapest authenticated call, for `worker check` and the worker's
// start-up check: one read of what idpsync needs most (a page of one user; ZeroID: a token and a
// page of one identity).
type Prober interface {
	// Probe makes the call and returns it as "METHOD /path" for people, with its error.
	Probe(ctx context.Context) (call string, err error)
}

// Hints say, in a clause each, what a refused credential means at a provider and what to check:
// "the PAT is expired or revoked".
type Hints struct {
	// Unauthorized is for a 401: the credential is wrong, expired or revoked.
	Unauthorized string
	// Forbidden is for a 403: the permissions the credential lacks.
	Forbidden string
}

// Explain says in one sentence, for an operator, what err from a call to the management API at
// baseURL means and what to check: "401 from POST https://zitadel.example.com/v2/users: the PAT
// is expired or revoked (Errors.Token.Invalid)". It never repeats a credential: the parts come
// from the configuration's base URL and the IdP's answer.
func (p *Provider) Explain(baseURL string, err error) string {
	var hints Hints
	if p.API != nil {
		hints = p.API.Hints
	}
	var apiErr *idpclient.APIError
	if errors.As(err, &apiErr) {
		where := apiErr.Op
		if method, path, ok := strings.Cut(apiErr.Op, " "); ok {
			where = method + " " + strings.TrimSuffix(baseURL, "/") + path
		}
		var why string
		switch {
		case errors.Is(err, idpclient.ErrUnauthorized):
			why = cmp.Or(hints.Unauthorized, "the credentials are wrong, expired or revoked")
		case errors.Is(err, idpclient.ErrForbidden):
			why = cmp.Or(hints.Forbidden, "the credentials lack a permission idpsync needs")
		case errors.Is(err, idpclient.ErrUnexpected):
			why = fmt.Sprintf("%s does not answer like that: base_url should be the API's root", p.Name)
		case errors.Is(err, idpclient.ErrRateLimited):
			why = "rate limited; idpsync waits and retries"
		case errors.Is(err, idpclient.ErrServer):
			why = fmt.Sprintf("%s failed; idpsync retries", p.Name)
		default:
			why = "idpsync does not expect this answer"
		}
		detail := apiErr.Message
		if apiErr.Code != "" {
			detail = strings.TrimSpace(apiErr.Code + " " + detail)
		}
		if detail != "" && detail != http.StatusText(apiErr.Status) {
			why += " (" + detail + ")"
		}
		return fmt.Sprintf("%d from %s: %s", apiErr.Status, where, why)
	}
	switch {
	case errors.Is(err, idpclient.ErrUnexpected):
		return fmt.Sprintf("%s at %s: %v", p.Name, baseURL, err)
	case errors.Is(err, idpclient.ErrNetwork):
		return fmt.Sprintf("cannot reach %s: %v", baseURL, err)
	case errors.Is(err, context.DeadlineExceeded):
		return fmt.Sprintf("no answer from %s in time", baseURL)
	}
	return err.Error()
}

// Misconfigured reports whether err is a failure only an operator can fix: refused credentials,
// or answers that are not the IdP's (a wrong base_url). Outages and rate limits are not.
func Misconfigured(err error) bool {
	return errors.Is(err, idpclient.ErrUnauthorized) || errors.Is(err, idpclient.ErrForbidden) ||
		errors.Is(err, idpclient.ErrUnexpected)
}
