package connector

import (
	"context"
	"fmt"
	"iter"
	"strings"

	"github.com/idpsync/idpsync/internal/events"
	"github.com/idpsync/idpsync/internal/handlers"
	"github.com/idpsync/idpsync/internal/idpclient"
	"github.com/idpsync/idpsync/internal/idpclient/clerk"
)

// clerkDirectory lists a Clerk instance in creation order (so that entities created during a pass
// come after the position reached, and offsets stay valid).
type clerkDirectory struct{ c *clerk.Client }

var _ handlers.Directory = (*clerkDirectory)(nil)

const byCreation = "+created_at"

func (d *clerkDirectory) List(ctx context.Context, entity string, from handlers.Checkpoint) iter.Seq2[handlers.Item, error] {
	return func(yield func(handlers.Item, error) bool) {
		cp, err := readCheckpoint(from)
		if err != nil {
			yield(handlers.Item{}, err)
			return
		}
		switch entity {
		case "users":
			d.users(ctx, cp, yield)
		case "organizations":
			d.organizations(ctx, cp, yield)
		case "memberships":
			d.memberships(ctx, cp, yield)
		default:
			yield(handlers.Item{}, fmt.Errorf("clerk: cannot list %q", entity))
		}
	}
}

func (d *clerkDirectory) users(ctx context.Context, cp offsetCheckpoint, yield func(handlers.Item, error) bool) {
	params := &clerk.ListUsersParams{ListParams: clerk.ListParams{Offset: cp.Offset, OrderBy: byCreation}}
	for u, err := range d.c.ListUsers(ctx, params) {
		if err != nil {
			yield(handlers.Item{}, err)
			return
		}
		cp.Offset++
		if !yield(clerkUserItem(u, cp), nil) {
			return
		}
	}
}

func clerkUserItem(u clerk.User, cp offsetCheckpoint) handlers.Item {
	it := handlers.Item{Key: u.ID, Next: cp.raw()}
	user, err := events.ParseClerkUser(u.Raw)
	it.Event, it.Err = events.Event{Envelope: events.Envelope{Type: events.UserUpdated}, User: user}, err
	return it
}

func (d *clerkDirectory) organizations(ctx context.Context, cp offsetCheckpoint, yield func(handlers.Item, error) bool) {
	params := &clerk.ListOrganizationsParams{ListParams: clerk.ListParams{Offset: cp.Offset, OrderBy: byCreation}}
	for o, err := range d.c.ListOrganizations(ctx, params) {
		if err != nil {
			yield(handlers.Item{}, err)
			return
		}
		cp.Offset++
		it := handlers.Item{Key: o.ID, Next: cp.raw()}
		org, err := events.ParseClerkOrganization(o.Raw)
		it.Event, it.Err = events.Event{Envelope: events.Envelope{Type: events.OrganizationUpdated}, Organization: org}, err
		if !yield(it, nil) {
			return
		}
	}
}

// memberships lists every organization's memberships: the checkpoint holds the organization's
// position and the offset within its memberships.
func (d *clerkDirectory) memberships(ctx context.Context, cp offsetCheckpoint, yield func(handlers.Item, error) bool) {
	orgs := &clerk.ListOrganizationsParams{ListParams: clerk.ListParams{Offset: cp.Org, OrderBy: byCreation}}
	orgIndex := cp.Org
	for o, err := range d.c.ListOrganizations(ctx, orgs) {
		if err != nil {
			yield(handlers.Item{}, err)
			return
		}
		offset := 0
		if orgIndex == cp.Org {
			offset = cp.Offset
		}
		params := &clerk.ListOrganizationMembershipsParams{OrganizationID: o.ID, ListParams: clerk.ListParams{Offset: offset, OrderBy: byCreation}}
		for m, err := range d.c.ListOrganizationMemberships(ctx, params) {
			if err != nil {
				yield(handlers.Item{}, err)
				return
			}
			offset++
			if !yield(clerkMembershipItem(m, offsetCheckpoint{Org: orgIndex, Offset: offset}), nil) {
				return
			}
		}
		orgIndex++
	}
}

func clerkMembershipItem(m clerk.OrganizationMembership, cp offsetCheckpoint) handlers.Item {
	it := handlers.Item{Key: m.Organization.ID + "/" + m.UserID(), Next: cp.raw()}
	mem, err := events.ParseClerkMembership(m.Raw)
	it.Event, it.Err = events.Event{Envelope: events.Envelope{Type: events.MembershipUpdated}, Membership: mem}, err
	return it
}

func (d *clerkDirectory) Get(ctx context.Context, entity, key string) (events.Event, error) {
	switch entity {
	case "users":
		u, err := d.c.GetUser(ctx, key)
		if err != nil {
			return events.Event{}, err
		}
		user, err := events.ParseClerkUser(u.Raw)
		return events.Event{Envelope: events.Envelope{Type: events.UserUpdated}, User: user}, err
	case "organizations":
		o, err := d.c.GetOrganization(ctx, key)
		if err != nil {
			return events.Event{}, err
		}
		org, err := events.ParseClerkOrganization(o.Raw)
		return events.Event{Envelope: events.Envelope{Type: events.OrganizationUpdated}, Organization: org}, err
	case "memberships":
		orgID, userID, _ := strings.Cut(key, "/")
		params := &clerk.ListOrganizationMembershipsParams{OrganizationID: orgID, UserIDs: []string{userID}}
		for m, err := range d.c.ListOrganizationMemberships(ctx, params) {
			if err != nil {
				return events.Event{}, err // a 404 for the organization means the membership is gone too
			}
			if m.UserID() == userID {
				mem, err := events.ParseClerkMembership(m.Raw)
				return events.Event{Envelope: events.Envelope{Type: events.MembershipUpdated}, Membership: mem}, err
			}
		}
		return events.Event{}, fmt.Errorf("membership %s: %w", key, idpclient.ErrNotFound)
	}
	return events.Event{}, fmt.Errorf("clerk: cannot read %q", entity)
}

// clerkSessions revokes Clerk sessions.
type clerkSessions struct{ c *clerk.Client }

var _ handlers.SessionRevoker = (*clerkSessions)(nil)

func (s *clerkSessions) ActiveSessions(ctx context.Context, userID string) iter.Seq2[string, error] {
	return func(yield func(string, error) bool) {
		for sess, err := range s.c.ListSessions(ctx, &clerk.ListSessionsParams{UserID: userID, Status: "active"}) {
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

func (s *clerkSessions) RevokeSession(ctx context.Context, sessionID string) error {
	_, err := s.c.RevokeSession(ctx, sessionID)
	return err
}
