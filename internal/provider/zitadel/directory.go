package zitadel

import (
	"context"
	"fmt"
	"iter"

	"github.com/idpsync/idpsync/internal/events"
	"github.com/idpsync/idpsync/internal/idpclient"
	"github.com/idpsync/idpsync/internal/provider"
)

// zitadelDirectory lists a Zitadel instance's users and organizations, oldest first (so that
// entities created during a pass come after the position reached).
type zitadelDirectory struct{ c *Client }

var _ provider.Directory = (*zitadelDirectory)(nil)

func (d *zitadelDirectory) List(ctx context.Context, entity events.Entity, from provider.Checkpoint) iter.Seq2[provider.Item, error] {
	return func(yield func(provider.Item, error) bool) {
		cp, err := provider.ReadOffsetCheckpoint(from)
		if err != nil {
			yield(provider.Item{}, err)
			return
		}
		page := ListParams{Offset: cp.Offset}
		switch entity {
		case events.EntityUser:
			for u, err := range d.c.ListUsers(ctx, &ListUsersParams{ListParams: page}) {
				if err != nil {
					yield(provider.Item{}, err)
					return
				}
				cp.Offset++
				user, err := ParseUser(u.Raw)
				it := provider.Item{Key: u.UserID, Next: cp.Raw(), Err: err,
					Event: events.Event{Envelope: events.Envelope{Type: events.UserUpdated}, User: user}}
				if !yield(it, nil) {
					return
				}
			}
		case events.EntityOrganization:
			for o, err := range d.c.ListOrganizations(ctx, &ListOrganizationsParams{ListParams: page}) {
				if err != nil {
					yield(provider.Item{}, err)
					return
				}
				cp.Offset++
				org, err := ParseOrganization(o.Raw)
				it := provider.Item{Key: o.ID, Next: cp.Raw(), Err: err,
					Event: events.Event{Envelope: events.Envelope{Type: events.OrganizationUpdated}, Organization: org}}
				if !yield(it, nil) {
					return
				}
			}
		default:
			yield(provider.Item{}, fmt.Errorf("zitadel: cannot list %q", entity))
		}
	}
}

func (d *zitadelDirectory) Get(ctx context.Context, entity events.Entity, key string) (events.Event, error) {
	switch entity {
	case events.EntityUser:
		u, err := d.c.GetUser(ctx, key)
		if err != nil {
			return events.Event{}, err
		}
		user, err := ParseUser(u.Raw)
		return events.Event{Envelope: events.Envelope{Type: events.UserUpdated}, User: user}, err
	case events.EntityOrganization:
		o, err := d.c.GetOrganization(ctx, key)
		if err != nil {
			return events.Event{}, err
		}
		org, err := ParseOrganization(o.Raw)
		return events.Event{Envelope: events.Envelope{Type: events.OrganizationUpdated}, Organization: org}, err
	}
	return events.Event{}, fmt.Errorf("zitadel: cannot read %q", entity)
}

// zitadelSessions ends Zitadel sessions. A Zitadel session exists until it is terminated, so every
// listed session is active.
type zitadelSessions struct{ c *Client }

var _ provider.SessionRevoker = (*zitadelSessions)(nil)

func (s *zitadelSessions) ActiveSessions(ctx context.Context, userID string) iter.Seq2[string, error] {
	return func(yield func(string, error) bool) {
		for sess, err := range s.c.ListSessions(ctx, &ListSessionsParams{UserID: userID}) {
			if err != nil {
				yield("", err)
				return
			}
			if !yield(sess.ID, nil) {
				return
			}
		}
	}
}

func (s *zitadelSessions) RevokeSession(ctx context.Context, sessionID string) error {
	_, err := s.c.DeleteSession(ctx, sessionID)
	return err
}

// zitadelProbe searches a page of one user: what resyncs and each event's read need first. It
// also proves the credentials (a token from client credentials or a key file is fetched first).
type zitadelProbe struct{ c *Client }

func (p zitadelProbe) Probe(ctx context.Context) (string, error) {
	return "POST /v2/users (a search, limit 1)", idpclient.FirstErr(p.c.ListUsers(ctx, &ListUsersParams{ListParams: ListParams{Limit: 1}}))
}
