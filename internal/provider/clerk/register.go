package clerk

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/idpsync/idpsync/internal/idpclient"
	"github.com/idpsync/idpsync/internal/provider"
)

// clerkRegistrar prepares Clerk for the receiver: the endpoint itself lives in the instance's
// Svix application, which the Backend API can create but not configure, so the registrar makes
// sure the application exists and leaves the operator the steps in Svix's dashboard, with a
// login link to it.
//
// Whether the application exists is found out by asking for a dashboard link (POST
// /webhooks/svix_url, which changes no setting): BAPI has no read of it. Clerk is expected to
// refuse the link with a 400 when there is no application [not confirmed against a live
// instance]; registering then creates it (POST /webhooks/svix), whose answer carries a link too.
type clerkRegistrar struct {
	c *Client
}

var _ provider.Registrar = (*clerkRegistrar)(nil)

// dashboardLink asks for a link to the Svix dashboard; ok is false when Clerk refuses it as it
// does for an instance without a Svix application.
func (r *clerkRegistrar) dashboardLink(ctx context.Context) (link string, ok bool, err error) {
	u, err := r.c.GenerateSvixAuthURL(ctx)
	switch {
	case errors.Is(err, idpclient.ErrValidation):
		return "", false, nil
	case err != nil:
		return "", false, err
	}
	return u.SvixURL, true, nil
}

// linkNote explains the one POST of a plan.
const linkNote = "POST /webhooks/svix_url changes no setting: it makes a dashboard login link, and is how idpsync finds out whether the instance has a Svix app (the Backend API has no read of it)"

// opening is the first manual step: the dashboard, through link when there is one.
func opening(link string) string {
	if link == "" {
		return "Open the instance's webhooks: Clerk dashboard → Configure → Webhooks (register prints a direct login link to Svix's dashboard when it runs without -dry-run)."
	}
	return "Open Svix's dashboard for the instance: " + link + " (a login link Clerk made for this run: it expires soon and opens the instance's webhook settings, secrets included; do not share it). Or: Clerk dashboard → Configure → Webhooks."
}

func registerSteps(link, endpoint string) []string {
	mirrored, logged := EventGroups()
	groups := func(gs []string) string { return strings.Join(gs, ".*, ") + ".*" }
	return []string{
		opening(link),
		"Add Endpoint, with the URL " + endpoint + " (if an endpoint with this URL is listed already, open it instead and go on with step 4).",
		"Subscribe it to " + groups(mirrored) + ", and to " + groups(logged) + " if you want those events in the event log; other types are recorded but change nothing.",
		"Copy the endpoint's Signing Secret (whsec_…) into the source's settings, best through the environment: webhook: {secrets: [\"${CLERK_WEBHOOK_SECRET}\"]}.",
	}
}

func removeSteps(link, endpoint string) []string {
	return []string{
		opening(link),
		"Open the endpoint with the URL " + endpoint + " and delete it; leave the other endpoints and the Svix app, which other consumers of the instance's webhooks may use.",
		"Remove its signing secret from the source's webhook.secrets.",
	}
}

// PlanRegistration implements provider.Registrar: create the instance's Svix application when it
// has none; the endpoint is the operator's to add.
func (r *clerkRegistrar) PlanRegistration(ctx context.Context, endpoint string) (*provider.RegistrationPlan, error) {
	link, ok, err := r.dashboardLink(ctx)
	if err != nil {
		return nil, fmt.Errorf("asking Clerk for a Svix dashboard link: %w", err)
	}
	plan := &provider.RegistrationPlan{Manual: registerSteps(link, endpoint),
		Notes: []string{linkNote, "Clerk's Backend API cannot list, add or remove the endpoints of its Svix app: the endpoint is added in Svix's dashboard, and its signing secret copied from there"}}
	if ok {
		plan.Found = []string{"the instance's Svix app, which holds its webhook endpoints"}
		return plan, nil
	}
	plan.Notes = append(plan.Notes, "Clerk refused a Svix dashboard link (400): the instance has no Svix app yet")
	plan.Steps = []provider.RegistrationStep{{
		Does:   "create the instance's Svix app, which holds its webhook endpoints",
		Method: http.MethodPost, Path: r.c.path("/webhooks/svix"),
		ApplyFunc: func(ctx context.Context) (provider.RegistrationResult, error) {
			u, err := r.c.CreateSvixApp(ctx)
			if err != nil {
				return provider.RegistrationResult{}, err
			}
			return provider.RegistrationResult{Made: "created the instance's Svix app", Manual: registerSteps(u.SvixURL, endpoint)}, nil
		},
	}}
	return plan, nil
}

// PlanRemoval implements provider.Registrar: nothing for idpsync to send (the Svix app stays:
// deleting it would delete every endpoint of the instance); the endpoint is the operator's to
// delete.
func (r *clerkRegistrar) PlanRemoval(ctx context.Context, endpoint string) (*provider.RegistrationPlan, error) {
	link, ok, err := r.dashboardLink(ctx)
	if err != nil {
		return nil, fmt.Errorf("asking Clerk for a Svix dashboard link: %w", err)
	}
	if !ok {
		return &provider.RegistrationPlan{Notes: []string{linkNote, "Clerk refused a Svix dashboard link (400): the instance has no Svix app, so no endpoint"}}, nil
	}
	return &provider.RegistrationPlan{Found: []string{"the instance's Svix app, which holds its webhook endpoints"},
		Notes: []string{linkNote}, Manual: removeSteps(link, endpoint)}, nil
}
