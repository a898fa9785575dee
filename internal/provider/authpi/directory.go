package authpi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"iter"

	"github.com/idpsync/idpsync/internal/events"
	"github.com/idpsync/idpsync/internal/idpclient"
	"github.com/idpsync/idpsync/internal/provider"
)

// authpiDirectory lists the users and organizations of one AuthPI issuer through its documented
// cursor lists (users.list_all, organizations per issuer). A user list carries hashed usernames,
// so each listed user is read with users.get for the state the mirror keeps, exactly as its
// webhooks carry it.
type authpiDirectory struct {
	c      *Client
	issuer string
}

var _ provider.Directory = (*authpiDirectory)(nil)

// cursorCheckpoint is the position of a cursor listing: the cursor after the last entity written.
type cursorCheckpoint struct {
	Cursor string `json:"cursor,omitempty"`
}

func readCursor(raw provider.Checkpoint) (cursorCheckpoint, error) {
	var c cursorCheckpoint
	if len(raw) == 0 || string(raw) == "{}" || string(raw) == "null" {
		return c, nil
	}
	if err := json.Unmarshal(raw, &c); err != nil {
		return c, fmt.Errorf("resync checkpoint %s: %w", raw, err)
	}
	return c, nil
}

func (c cursorCheckpoint) raw() provider.Checkpoint {
	b, _ := json.Marshal(c)
	return b
}

func (d *authpiDirectory) List(ctx context.Context, entity events.Entity, from provider.Checkpoint) iter.Seq2[provider.Item, error] {
	return func(yield func(provider.Item, error) bool) {
		cp, err := readCursor(from)
		if err != nil {
			yield(provider.Item{}, err)
			return
		}
		switch entity {
		case events.EntityUser:
			d.users(ctx, cp, yield)
		case events.EntityOrganization:
			d.organizations(ctx, cp, yield)
		default:
			yield(provider.Item{}, fmt.Errorf("authpi: cannot list %s", entity.Plural()))
		}
	}
}

// A cursor names the last entity of a page; when that entity was deleted since the checkpoint was
// written, AuthPI refuses the cursor, and the listing starts over (writes are version-guarded, so
// rereading is harmless).
func restartable(cp cursorCheckpoint, n int, err error) bool {
	return cp.Cursor != "" && n == 0 && errors.Is(err, idpclient.ErrValidation)
}

func (d *authpiDirectory) users(ctx context.Context, cp cursorCheckpoint, yield func(provider.Item, error) bool) {
	n := 0
	for u, err := range d.c.ListUsers(ctx, &ListUsersParams{IssuerID: d.issuer, ListParams: ListParams{Cursor: cp.Cursor}}) {
		if restartable(cp, n, err) {
			d.users(ctx, cursorCheckpoint{}, yield)
			return
		}
		if err != nil {
			yield(provider.Item{}, err)
			return
		}
		n++
		it := provider.Item{Key: u.ID, Next: cursorCheckpoint{Cursor: u.ID}.raw()}
		full, err := d.c.GetUser(ctx, d.issuer, u.ID)
		switch {
		case errors.Is(err, idpclient.ErrNotFound):
			// Deleted between the page and the read: its deletion, at the listed state's version.
			listed, perr := ParseUser(u.Raw)
			it.Err = perr
			if perr == nil {
				it.Event = events.Event{Envelope: events.Envelope{Type: events.UserDeleted},
					User: &events.User{ID: u.ID, Deleted: true, Version: listed.Version, Raw: u.Raw}}
			}
		case err != nil:
			yield(provider.Item{}, err)
			return
		default:
			user, perr := ParseUser(full.Raw)
			it.Event, it.Err = events.Event{Envelope: events.Envelope{Type: events.UserUpdated}, User: user}, perr
		}
		if !yield(it, nil) {
			return
		}
	}
}

func (d *authpiDirectory) organizations(ctx context.Context, cp cursorCheckpoint, yield func(provider.Item, error) bool) {
	n := 0
	for o, err := range d.c.ListOrganizations(ctx, &ListOrganizationsParams{IssuerID: d.issuer, ListParams: ListParams{Cursor: cp.Cursor}}) {
		if restartable(cp, n, err) {
			d.organizations(ctx, cursorCheckpoint{}, yield)
			return
		}
		if err != nil {
			yield(provider.Item{}, err)
			return
		}
		n++
		org, perr := ParseOrganization(o.Raw)
		it := provider.Item{Key: o.ID, Next: cursorCheckpoint{Cursor: o.ID}.raw(), Err: perr,
			Event: events.Event{Envelope: events.Envelope{Type: events.OrganizationUpdated}, Organization: org}}
		if !yield(it, nil) {
			return
		}
	}
}

// Get reads a user with users.get. AuthPI documents no read of one organization, so an
// organization is looked for in the issuer's list: a complete listing without it confirms it gone
// (the sweep asks only for the few rows a pass did not see).
func (d *authpiDirectory) Get(ctx context.Context, entity events.Entity, key string) (events.Event, error) {
	switch entity {
	case events.EntityUser:
		u, err := d.c.GetUser(ctx, d.issuer, key)
		if err != nil {
			return events.Event{}, err
		}
		user, err := ParseUser(u.Raw)
		return events.Event{Envelope: events.Envelope{Type: events.UserUpdated}, User: user}, err
	case events.EntityOrganization:
		for o, err := range d.c.ListOrganizations(ctx, &ListOrganizationsParams{IssuerID: d.issuer}) {
			if err != nil {
				return events.Event{}, err
			}
			if o.ID == key {
				org, err := ParseOrganization(o.Raw)
				return events.Event{Envelope: events.Envelope{Type: events.OrganizationUpdated}, Organization: org}, err
			}
		}
		return events.Event{}, fmt.Errorf("organization %s is not in the issuer's complete list: %w", key, idpclient.ErrNotFound)
	}
	return events.Event{}, fmt.Errorf("authpi: cannot read %s", entity.Plural())
}

// authpiProbe resolves the account (GET /v1/me) and reads a page of one user of the issuer.
type authpiProbe struct {
	c      *Client
	issuer string
}

func (p authpiProbe) Probe(ctx context.Context) (string, error) {
	if p.issuer == "" {
		_, err := p.c.AccountID(ctx)
		return "GET /v1/me", err
	}
	return "GET /v1/me, then a page of one user of the issuer",
		idpclient.FirstErr(p.c.ListUsers(ctx, &ListUsersParams{ListParams: ListParams{Limit: 1}, IssuerID: p.issuer}))
}
