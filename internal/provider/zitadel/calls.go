package zitadel

import (
	"context"
	"fmt"
	"iter"
	"net/http"

	"github.com/idpsync/idpsync/internal/idpclient"
)

// searchPages is the PageFunc of a POST search whose body carries the ListQuery.
func searchPages[T any](c *Client, path string, p ListParams, body func(listQuery) any) idpclient.PageFunc[T, int] {
	return func(ctx context.Context, offset int) ([]T, int, bool, error) {
		q, limit := c.query(p, offset)
		var out listResponse[T]
		req := &idpclient.Request{Method: http.MethodPost, Path: path, JSON: body(q), Idempotent: true}
		if err := c.t.Do(ctx, req, &out); err != nil {
			return nil, 0, false, fmt.Errorf("searching %s at offset %d: %w", path, offset, err)
		}
		items := out.Result
		if items == nil {
			items = out.Sessions
		}
		next := offset + len(items)
		more := len(items) == limit && uint64(next) < uint64(out.Details.TotalResult)
		return items, next, more, nil
	}
}

// ListUsersParams filters POST /v2/users.
type ListUsersParams struct {
	ListParams
	// OrganizationID keeps the users of one organization.
	OrganizationID string
}

// ListUsers iterates over users, oldest first, a page at a time.
func (c *Client) ListUsers(ctx context.Context, params *ListUsersParams) iter.Seq2[User, error] {
	if params == nil {
		params = &ListUsersParams{}
	}
	var queries []any
	if params.OrganizationID != "" {
		queries = append(queries, map[string]any{"organizationIdQuery": map[string]string{"organizationId": params.OrganizationID}})
	}
	return idpclient.Paginate(ctx, params.Offset, searchPages[User](c, "/v2/users", params.ListParams, func(q listQuery) any {
		return map[string]any{"query": q, "sortingColumn": "USER_FIELD_NAME_CREATION_DATE", "queries": queries}
	}))
}

// GetUser returns one user.
func (c *Client) GetUser(ctx context.Context, userID string) (*User, error) {
	var out struct {
		Details *Details `json:"details"`
		User    User     `json:"user"`
	}
	if err := c.t.Do(ctx, &idpclient.Request{Method: http.MethodGet, Path: "/v2/users/" + idpclient.PathEscape(userID), NotFoundMeansGone: true}, &out); err != nil {
		return nil, fmt.Errorf("getting user: %w", err)
	}
	return &out.User, nil
}

// DeactivateUser deactivates a user: they can no longer sign in. Zitadel answers
// ErrValidation (failed precondition) when the user is already inactive.
func (c *Client) DeactivateUser(ctx context.Context, userID string) (*Details, error) {
	return c.userAction(ctx, userID, "deactivate")
}

// ReactivateUser reactivates a deactivated user.
func (c *Client) ReactivateUser(ctx context.Context, userID string) (*Details, error) {
	return c.userAction(ctx, userID, "reactivate")
}

// LockUser locks a user.
func (c *Client) LockUser(ctx context.Context, userID string) (*Details, error) {
	return c.userAction(ctx, userID, "lock")
}

// UnlockUser unlocks a user.
func (c *Client) UnlockUser(ctx context.Context, userID string) (*Details, error) {
	return c.userAction(ctx, userID, "unlock")
}

func (c *Client) userAction(ctx context.Context, userID, action string) (*Details, error) {
	var out detailsResponse
	path := "/v2/users/" + idpclient.PathEscape(userID) + "/" + action
	if err := c.t.Do(ctx, &idpclient.Request{Method: http.MethodPost, Path: path, JSON: struct{}{}, NotFoundMeansGone: true}, &out); err != nil {
		return nil, fmt.Errorf("%s user: %w", action, err)
	}
	return &out.Details, nil
}

// DeleteUser deletes a user.
func (c *Client) DeleteUser(ctx context.Context, userID string) (*Details, error) {
	var out detailsResponse
	if err := c.t.Do(ctx, &idpclient.Request{Method: http.MethodDelete, Path: "/v2/users/" + idpclient.PathEscape(userID), NotFoundMeansGone: true}, &out); err != nil {
		return nil, fmt.Errorf("deleting user: %w", err)
	}
	return &out.Details, nil
}

// ListOrganizationsParams filters POST /v2/organizations/_search.
type ListOrganizationsParams struct {
	ListParams
	// Name keeps organizations whose name contains it (case-insensitive).
	Name string
	// ID keeps the organization with that id.
	ID string
}

// ListOrganizations iterates over organizations, oldest first.
func (c *Client) ListOrganizations(ctx context.Context, params *ListOrganizationsParams) iter.Seq2[Organization, error] {
	if params == nil {
		params = &ListOrganizationsParams{}
	}
	var queries []any
	if params.Name != "" {
		queries = append(queries, map[string]any{"nameQuery": map[string]string{"name": params.Name, "method": "TEXT_QUERY_METHOD_CONTAINS_IGNORE_CASE"}})
	}
	if params.ID != "" {
		queries = append(queries, map[string]any{"idQuery": map[string]string{"id": params.ID}})
	}
	return idpclient.Paginate(ctx, params.Offset, searchPages[Organization](c, "/v2/organizations/_search", params.ListParams, func(q listQuery) any {
		return map[string]any{"query": q, "sortingColumn": "ORGANIZATION_FIELD_NAME_CREATION_DATE", "queries": queries}
	}))
}

// GetOrganization reads one organization by id (a search with an idQuery: v2 has no get); the
// error wraps idpclient.ErrNotFound when there is none.
func (c *Client) GetOrganization(ctx context.Context, id string) (*Organization, error) {
	for o, err := range c.ListOrganizations(ctx, &ListOrganizationsParams{ID: id, ListParams: ListParams{Limit: 1}}) {
		if err != nil {
			return nil, err
		}
		return &o, nil
	}
	return nil, fmt.Errorf("organization %s: %w", id, idpclient.ErrNotFound)
}

// ListSessionsParams filters POST /v2/sessions/search.
type ListSessionsParams struct {
	ListParams
	// UserID keeps the sessions of one user. Required by this client: a resync or revocation
	// always works per user.
	UserID string
}

// ListSessions iterates over a user's sessions, oldest first.
func (c *Client) ListSessions(ctx context.Context, params *ListSessionsParams) iter.Seq2[Session, error] {
	if params == nil || params.UserID == "" {
		return func(yield func(Session, error) bool) {
			yield(Session{}, fmt.Errorf("listing sessions: UserID is empty: %w", idpclient.ErrValidation))
		}
	}
	queries := []any{map[string]any{"userIdQuery": map[string]string{"id": params.UserID}}}
	return idpclient.Paginate(ctx, params.Offset, searchPages[Session](c, "/v2/sessions/search", params.ListParams, func(q listQuery) any {
		return map[string]any{"query": q, "sortingColumn": "SESSION_FIELD_NAME_CREATION_DATE", "queries": queries}
	}))
}

// DeleteSession terminates a session. Deleting a session that no longer exists answers
// ErrNotFound.
func (c *Client) DeleteSession(ctx context.Context, sessionID string) (*Details, error) {
	var out detailsResponse
	req := &idpclient.Request{Method: http.MethodDelete, Path: "/v2/sessions/" + idpclient.PathEscape(sessionID), JSON: struct{}{}, NotFoundMeansGone: true}
	if err := c.t.Do(ctx, req, &out); err != nil {
		return nil, fmt.Errorf("deleting session: %w", err)
	}
	return &out.Details, nil
}
