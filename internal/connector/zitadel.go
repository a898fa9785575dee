package connector

import (
	"context"
	"fmt"
	"iter"

	"github.com/idpsync/idpsync/internal/events"
	"github.com/idpsync/idpsync/internal/handlers"
	"github.com/idpsync/idpsync/internal/idpclient/zitadel"
)

// zitadelDirectory lists a Zitadel instance's users and organizations, oldest first (so that
// entities created during a pass come after the position reached).
type zitadelDirectory struct{ c *zitadel.Client }

var _ handlers.Directory = (*zitadelDirectory)(nil)

func (d *zitadelDirectory) List(ctx context.Context, entity string, from handlers.Checkpoint) iter.Seq2[handlers.Item, error] {
	return func(yield func(handlers.Item, error) bool) {
		cp, err := readCheckpoint(from)
		if err != nil {
			yield(handlers.Item{}, err)
			return
		}
		page := zitadel.ListParams{Offset: cp.Offset}
		switch entity {
		case "users":
			for u, err := range d.c.ListUsers(ctx, &zitadel.ListUsersParams{ListParams: page}) {
				if err != nil {
					yield(handlers.Item{}, err)
					return
				}
				cp.Offset++
				user, err := events.ParseZitadelUser(u.Raw)
				it := handlers.Item{Key: u.UserID, Next: cp.raw(), Err: err,
					Event: events.Event{Envelope: events.Envelope{Type: events.UserUpdated}, User: user}}
				if !yield(it, nil) {
					return
				}
			}
		case "organizations":
			for o, err := range d.c.ListOrganizations(ctx, &zitadel.ListOrganizationsParams{ListParams: page}) {
				if err != nil {
					yield(handlers.Item{}, err)
					return
				}
				cp.Offset++
				org, err := events.ParseZitadelOrganization(o.Raw)
				it := handlers.Item{Key: o.ID, Next: cp.raw(), Err: err,
					Event: events.Event{Envelope: events.Envelope{Type: events.OrganizationUpdated}, Organization: org}}
				if !yield(it, nil) {
					return
				}
			}
		default:
			yield(handlers.Item{}, fmt.Errorf("zitadel: cannot list %q", entity))
		}
	}
}

func (d *zitadelDirectory) Get(ctx context.Context, entity, key string) (events.Event, error) {
	switch entity {
	case "users":
		u, err := d.c.GetUser(ctx, key)
		if err != nil {
			return events.Event{}, err
		}
		user, err := events.ParseZitadelUser(u.Raw)
		return events.Event{Envelope: events.Envelope{Type: events.UserUpdated}, User: user}, err
	case "organizations":
		o, err := d.c.GetOrganization(ctx, key)
		if err != nil {
			return events.Event{}, err
		}
		org, err := events.ParseZitadelOrganization(o.Raw)
		return events.Event{Envelope: events.Envelope{Type: events.OrganizationUpdated}, Organization: org}, err
	}
	return events.Event{}, fmt.Errorf("zitadel: cannot read %q", entity)
}

// zitadelSessions ends Zitadel sessions. A Zitadel session exists until it is terminated, so every
// listed session is active.
type zitadelSessions struct{ c *zitadel.Client }

var _ handlers.SessionRevoker = (*zitadelSessions)(nil)

func (s *zitadelSessions) ActiveSessions(ctx context.Context, userID string) iter.Seq2[string, error] {
	return func(yield func(string, error) bool) {
		for sess, err := range s.c.ListSessions(ctx, &zitadel.ListSessionsParams{UserID: userID}) {
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
