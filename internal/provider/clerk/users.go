package clerk

import (
	"context"
	"encoding/json"
	"fmt"
	"iter"
	"net/http"
	"net/url"
	"strconv"

	"github.com/idpsync/idpsync/internal/idpclient"
)

// ListUsersParams filters GET /users (and /users/count).
type ListUsersParams struct {
	ListParams
	// UserIDs, EmailAddresses, ExternalIDs and OrganizationIDs restrict the list to those values.
	UserIDs, EmailAddresses, ExternalIDs, OrganizationIDs []string
	// Query is Clerk's free-text search.
	Query string
	// Banned, when non-nil, keeps only banned (true) or not banned (false) users.
	Banned *bool
}

func (p *ListUsersParams) filters() url.Values {
	q := url.Values{}
	if p == nil {
		return q
	}
	for _, v := range p.UserIDs {
		q.Add("user_id", v)
	}
	for _, v := range p.EmailAddresses {
		q.Add("email_address", v)
	}
	for _, v := range p.ExternalIDs {
		q.Add("external_id", v)
	}
	for _, v := range p.OrganizationIDs {
		q.Add("organization_id", v)
	}
	if p.Query != "" {
		q.Set("query", p.Query)
	}
	if p.Banned != nil {
		q.Set("banned", strconv.FormatBool(*p.Banned))
	}
	return q
}

// ListUsersPage fetches one page of GET /users: a bare array, without a total.
func (c *Client) ListUsersPage(ctx context.Context, params *ListUsersParams) ([]User, error) {
	if params == nil {
		params = &ListUsersParams{}
	}
	if err := params.check(); err != nil {
		return nil, fmt.Errorf("listing users: %w", err)
	}
	q := params.filters()
	params.ListParams.query(q, c.pageSize)
	var users []User
	if err := c.t.Do(ctx, &idpclient.Request{Method: http.MethodGet, Path: "/users", Query: q}, &users); err != nil {
		return nil, fmt.Errorf("listing users: %w", err)
	}
	return users, nil
}

// ListUsers iterates over every user matching params, oldest first unless params.OrderBy says
// otherwise, fetching one page at a time from params.Offset on. It stops after the first page
// shorter than the limit.
func (c *Client) ListUsers(ctx context.Context, params *ListUsersParams) iter.Seq2[User, error] {
	return listUsers[User](ctx, c, params)
}

// listUsersRaw is ListUsers yielding each user's JSON as received: a resync maps it once
// (ParseUser) instead of decoding it into a User first.
func (c *Client) listUsersRaw(ctx context.Context, params *ListUsersParams) iter.Seq2[json.RawMessage, error] {
	return listUsers[json.RawMessage](ctx, c, params)
}

// listUsers is ListUsers decoding each user into T.
func listUsers[T any](ctx context.Context, c *Client, params *ListUsersParams) iter.Seq2[T, error] {
	if params == nil {
		params = &ListUsersParams{}
	}
	if err := params.check(); err != nil {
		return refused[T](fmt.Errorf("listing users: %w", err))
	}
	q := params.filters()
	limit := c.limit(params.ListParams)
	// A stable order keeps offsets meaningful while users are created during the walk.
	q.Set("order_by", orDefault(params.OrderBy, "+created_at"))
	return idpclient.Paginate(ctx, params.Offset, func(ctx context.Context, offset int) ([]T, int, bool, error) {
		page := cloneQuery(q)
		page.Set("limit", strconv.Itoa(limit))
		page.Set("offset", strconv.Itoa(offset))
		var users []T
		if err := c.t.Do(ctx, &idpclient.Request{Method: http.MethodGet, Path: "/users", Query: page}, &users); err != nil {
			return nil, 0, false, fmt.Errorf("listing users at offset %d: %w", offset, err)
		}
		return users, offset + len(users), len(users) == limit, nil
	})
}

// CountUsers returns the number of users matching params' filters (GET /users/count).
func (c *Client) CountUsers(ctx context.Context, params *ListUsersParams) (int64, error) {
	var out totalCount
	if err := c.t.Do(ctx, &idpclient.Request{Method: http.MethodGet, Path: "/users/count", Query: params.filters()}, &out); err != nil {
		return 0, fmt.Errorf("counting users: %w", err)
	}
	return out.TotalCount, nil
}

// GetUser returns one user.
func (c *Client) GetUser(ctx context.Context, userID string) (*User, error) {
	id, err := pathID("userID", userID)
	if err != nil {
		return nil, fmt.Errorf("getting user: %w", err)
	}
	var u User
	if err := c.t.Do(ctx, &idpclient.Request{Method: http.MethodGet, Path: "/users/" + id, NotFoundMeansGone: true}, &u); err != nil {
		return nil, fmt.Errorf("getting user: %w", err)
	}
	return &u, nil
}

// BanUser bans a user: Clerk revokes all their sessions and refuses new sign-ins. It is not
// retried on 5xx; repeat it from the job if Classify says so (banning twice is harmless).
func (c *Client) BanUser(ctx context.Context, userID string) (*User, error) {
	return c.userAction(ctx, userID, "ban")
}

// UnbanUser lifts a ban.
func (c *Client) UnbanUser(ctx context.Context, userID string) (*User, error) {
	return c.userAction(ctx, userID, "unban")
}

// LockUser locks a user until the instance's lockout expires or UnlockUser is called.
func (c *Client) LockUser(ctx context.Context, userID string) (*User, error) {
	return c.userAction(ctx, userID, "lock")
}

// UnlockUser lifts a lock.
func (c *Client) UnlockUser(ctx context.Context, userID string) (*User, error) {
	return c.userAction(ctx, userID, "unlock")
}

func (c *Client) userAction(ctx context.Context, userID, action string) (*User, error) {
	id, err := pathID("userID", userID)
	if err != nil {
		return nil, fmt.Errorf("%s user: %w", action, err)
	}
	var u User
	path := "/users/" + id + "/" + action
	if err := c.t.Do(ctx, &idpclient.Request{Method: http.MethodPost, Path: path, NotFoundMeansGone: true}, &u); err != nil {
		return nil, fmt.Errorf("%s user: %w", action, err)
	}
	return &u, nil
}

// DeleteUser deletes a user. A second delete answers ErrNotFound.
func (c *Client) DeleteUser(ctx context.Context, userID string) (*DeletedObject, error) {
	id, err := pathID("userID", userID)
	if err != nil {
		return nil, fmt.Errorf("deleting user: %w", err)
	}
	var d DeletedObject
	if err := c.t.Do(ctx, &idpclient.Request{Method: http.MethodDelete, Path: "/users/" + id, NotFoundMeansGone: true}, &d); err != nil {
		return nil, fmt.Errorf("deleting user: %w", err)
	}
	return &d, nil
}

func orDefault(v, def string) string {
	if v == "" {
		return def
	}
	return v
}
