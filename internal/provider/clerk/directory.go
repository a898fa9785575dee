package clerk

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"iter"
	"strings"

	"github.com/idpsync/idpsync/internal/events"
	"github.com/idpsync/idpsync/internal/idpclient"
	"github.com/idpsync/idpsync/internal/jsonscan"
	"github.com/idpsync/idpsync/internal/provider"
)

// clerkDirectory lists a Clerk instance in creation order (so that entities created during a pass
// come after the position reached, and offsets stay valid).
type clerkDirectory struct{ c *Client }

var _ provider.Directory = (*clerkDirectory)(nil)

const byCreation = "+created_at"

func (d *clerkDirectory) List(ctx context.Context, entity events.Entity, from provider.Checkpoint) iter.Seq2[provider.Item, error] {
	return func(yield func(provider.Item, error) bool) {
		cp, err := provider.ReadOffsetCheckpoint(from)
		if err != nil {
			yield(provider.Item{}, err)
			return
		}
		switch entity {
		case events.EntityUser:
			d.users(ctx, cp, yield)
		case events.EntityOrganization:
			d.organizations(ctx, cp, yield)
		case events.EntityMembership:
			d.memberships(ctx, cp, yield)
		default:
			yield(provider.Item{}, fmt.Errorf("clerk: cannot list %q", entity))
		}
	}
}

func (d *clerkDirectory) users(ctx context.Context, cp provider.OffsetCheckpoint, yield func(provider.Item, error) bool) {
	params := &ListUsersParams{ListParams: ListParams{Offset: cp.Offset, OrderBy: byCreation}}
	for raw, err := range d.c.listUsersRaw(ctx, params) {
		if err != nil {
			yield(provider.Item{}, err)
			return
		}
		cp.Offset++
		if !yield(clerkUserItem(raw, cp), nil) {
			return
		}
	}
}

// clerkUserItem maps a listed user's JSON once, with ParseUser, as a webhook's user is mapped.
func clerkUserItem(raw json.RawMessage, cp provider.OffsetCheckpoint) provider.Item {
	it := provider.Item{Next: cp.Raw()}
	user, err := ParseUser(raw)
	if err != nil {
		it.Key = idOf(raw)
	} else {
		it.Key = user.ID
	}
	it.Event, it.Err = events.Event{Envelope: events.Envelope{Type: events.UserUpdated}, User: user}, err
	return it
}

// idOf reads the id of a JSON object that does not map, for the resync's report of what it
// skipped; "" when it has none.
func idOf(raw []byte) string {
	var id string
	_ = jsonscan.Object(raw, func(key, value []byte) {
		if jsonscan.KeyIs(key, "id") {
			if s, ok := jsonscan.String(value, nil); ok {
				id = s
			}
		}
	})
	return id
}

func (d *clerkDirectory) organizations(ctx context.Context, cp provider.OffsetCheckpoint, yield func(provider.Item, error) bool) {
	params := &ListOrganizationsParams{ListParams: ListParams{Offset: cp.Offset, OrderBy: byCreation}}
	for o, err := range d.c.ListOrganizations(ctx, params) {
		if err != nil {
			yield(provider.Item{}, err)
			return
		}
		cp.Offset++
		it := provider.Item{Key: o.ID, Next: cp.Raw()}
		org, err := ParseOrganization(o.Raw)
		it.Event, it.Err = events.Event{Envelope: events.Envelope{Type: events.OrganizationUpdated}, Organization: org}, err
		if !yield(it, nil) {
			return
		}
	}
}

// memberships lists every organization's memberships: the checkpoint holds the organization's
// position and the offset within its memberships.
func (d *clerkDirectory) memberships(ctx context.Context, cp provider.OffsetCheckpoint, yield func(provider.Item, error) bool) {
	orgs := &ListOrganizationsParams{ListParams: ListParams{Offset: cp.Org, OrderBy: byCreation}}
	orgIndex := cp.Org
	for o, err := range d.c.ListOrganizations(ctx, orgs) {
		if err != nil {
			yield(provider.Item{}, err)
			return
		}
		offset := 0
		if orgIndex == cp.Org {
			offset = cp.Offset
		}
		params := &ListOrganizationMembershipsParams{OrganizationID: o.ID, ListParams: ListParams{Offset: offset, OrderBy: byCreation}}
		for m, err := range d.c.ListOrganizationMemberships(ctx, params) {
			if errors.Is(err, idpclient.ErrNotFound) {
				break // deleted since it was listed: the sweep confirms its memberships gone
			}
			if err != nil {
				yield(provider.Item{}, err)
				return
			}
			offset++
			if !yield(clerkMembershipItem(m, provider.OffsetCheckpoint{Org: orgIndex, Offset: offset}), nil) {
				return
			}
		}
		orgIndex++
	}
}

func clerkMembershipItem(m OrganizationMembership, cp provider.OffsetCheckpoint) provider.Item {
	it := provider.Item{Key: m.Organization.ID + "/" + m.UserID(), Next: cp.Raw()}
	mem, err := ParseMembership(m.Raw)
	it.Event, it.Err = events.Event{Envelope: events.Envelope{Type: events.MembershipUpdated}, Membership: mem}, err
	return it
}

func (d *clerkDirectory) Get(ctx context.Context, entity events.Entity, key string) (events.Event, error) {
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
	case events.EntityMembership:
		orgID, userID, _ := strings.Cut(key, "/")
		params := &ListOrganizationMembershipsParams{OrganizationID: orgID, UserIDs: []string{userID}}
		for m, err := range d.c.ListOrganizationMemberships(ctx, params) {
			if err != nil {
				return events.Event{}, err // a 404 for the organization means the membership is gone too
			}
			if m.UserID() == userID {
				mem, err := ParseMembership(m.Raw)
				return events.Event{Envelope: events.Envelope{Type: events.MembershipUpdated}, Membership: mem}, err
			}
		}
		return events.Event{}, fmt.Errorf("membership %s: %w", key, idpclient.ErrNotFound)
	}
	return events.Event{}, fmt.Errorf("clerk: cannot read %q", entity)
}

// clerkSessions revokes Clerk sessions.
type clerkSessions struct{ c *Client }

var _ provider.SessionRevoker = (*clerkSessions)(nil)

func (s *clerkSessions) ActiveSessions(ctx context.Context, userID string) iter.Seq2[string, error] {
	return func(yield func(string, error) bool) {
		for sess, err := range s.c.ListSessions(ctx, &ListSessionsParams{UserID: userID, Status: "active"}) {
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

// clerkProbe reads a page of one user: what resyncs and revocations need first.
type clerkProbe struct{ c *Client }

func (p clerkProbe) Probe(ctx context.Context) (string, error) {
	_, err := p.c.ListUsersPage(ctx, &ListUsersParams{ListParams: ListParams{Limit: 1}})
	return "GET /users?limit=1", err
}
