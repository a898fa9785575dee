package clerk

import (
	"context"
	"fmt"
	"iter"
	"net/http"
	"net/url"

	"github.com/idpsync/idpsync/internal/idpclient"
)

// ListOrganizationsParams filters GET /organizations.
type ListOrganizationsParams struct {
	ListParams
	// Query is Clerk's free-text search over name and slug.
	Query string
	// IncludeMembersCount asks Clerk to fill Organization.MembersCount.
	IncludeMembersCount bool
}

// ListOrganizations iterates over every organization, oldest first unless params.OrderBy says
// otherwise.
func (c *Client) ListOrganizations(ctx context.Context, params *ListOrganizationsParams) iter.Seq2[Organization, error] {
	if params == nil {
		params = &ListOrganizationsParams{}
	}
	if err := params.check(); err != nil {
		return refused[Organization](fmt.Errorf("listing organizations: %w", err))
	}
	q := url.Values{}
	q.Set("order_by", orDefault(params.OrderBy, "+created_at"))
	if params.Query != "" {
		q.Set("query", params.Query)
	}
	if params.IncludeMembersCount {
		q.Set("include_members_count", "true")
	}
	return idpclient.Paginate(ctx, params.Offset, offsetPages[Organization](c, "/organizations", q, c.limit(params.ListParams), false))
}

// GetOrganization returns one organization by id or slug.
func (c *Client) GetOrganization(ctx context.Context, idOrSlug string) (*Organization, error) {
	id, err := pathID("idOrSlug", idOrSlug)
	if err != nil {
		return nil, fmt.Errorf("getting organization: %w", err)
	}
	var o Organization
	if err := c.t.Do(ctx, &idpclient.Request{Method: http.MethodGet, Path: "/organizations/" + id, NotFoundMeansGone: true}, &o); err != nil {
		return nil, fmt.Errorf("getting organization: %w", err)
	}
	return &o, nil
}

// ListOrganizationMembershipsParams selects the memberships of one organization.
type ListOrganizationMembershipsParams struct {
	ListParams
	// OrganizationID is the organization. Required.
	OrganizationID string
	// Roles and UserIDs restrict the list.
	Roles, UserIDs []string
}

// ListOrganizationMemberships iterates over the memberships of one organization.
func (c *Client) ListOrganizationMemberships(ctx context.Context, params *ListOrganizationMembershipsParams) iter.Seq2[OrganizationMembership, error] {
	if params == nil {
		params = &ListOrganizationMembershipsParams{}
	}
	orgID, err := pathID("OrganizationID", params.OrganizationID)
	if err == nil {
		err = params.check()
	}
	if err != nil {
		return refused[OrganizationMembership](fmt.Errorf("listing organization memberships: %w", err))
	}
	q := url.Values{}
	q.Set("order_by", orDefault(params.OrderBy, "+created_at"))
	for _, r := range params.Roles {
		q.Add("role", r)
	}
	for _, u := range params.UserIDs {
		q.Add("user_id", u)
	}
	path := "/organizations/" + orgID + "/memberships"
	return idpclient.Paginate(ctx, params.Offset, offsetPages[OrganizationMembership](c, path, q, c.limit(params.ListParams), true))
}
