package clerk

import (
	"context"
	"fmt"
	"iter"
	"net/http"
	"net/url"

	"github.com/idpsync/idpsync/internal/idpclient"
)

// ListSessionsParams selects sessions. Clerk requires UserID or ClientID.
type ListSessionsParams struct {
	ListParams
	// UserID lists the sessions of one user.
	UserID string
	// ClientID lists the sessions of one client.
	ClientID string
	// Status keeps one status: active, revoked, ended, expired, removed, abandoned, replaced.
	Status string
}

// ListSessions iterates over the sessions of a user or client, newest first (Clerk's only
// order). It sends paginated=true, to which Clerk answers {data,total_count} (as its Go SDK
// expects), and also reads the bare array Clerk's published spec documents. Clerk purges old
// inactive sessions, so the list is not a history.
func (c *Client) ListSessions(ctx context.Context, params *ListSessionsParams) iter.Seq2[Session, error] {
	if params == nil || (params.UserID == "" && params.ClientID == "") {
		return refused[Session](fmt.Errorf("listing sessions: set UserID or ClientID: %w", idpclient.ErrValidation))
	}
	if err := params.check(); err != nil {
		return refused[Session](fmt.Errorf("listing sessions: %w", err))
	}
	q := url.Values{}
	q.Set("paginated", "true")
	if params.UserID != "" {
		q.Set("user_id", params.UserID)
	}
	if params.ClientID != "" {
		q.Set("client_id", params.ClientID)
	}
	if params.Status != "" {
		q.Set("status", params.Status)
	}
	return idpclient.Paginate(ctx, params.Offset, offsetPages[Session](c, "/sessions", q, c.limit(params.ListParams), false))
}

// RevokeSession revokes one session and returns it with status "revoked".
func (c *Client) RevokeSession(ctx context.Context, sessionID string) (*Session, error) {
	id, err := pathID("sessionID", sessionID)
	if err != nil {
		return nil, fmt.Errorf("revoking session: %w", err)
	}
	var s Session
	path := "/sessions/" + id + "/revoke"
	if err := c.t.Do(ctx, &idpclient.Request{Method: http.MethodPost, Path: path, NotFoundMeansGone: true}, &s); err != nil {
		return nil, fmt.Errorf("revoking session: %w", err)
	}
	return &s, nil
}
