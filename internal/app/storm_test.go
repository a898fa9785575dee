package app_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/idpsync/idpsync/internal/events"
	"github.com/idpsync/idpsync/internal/fakeidp"
	"github.com/idpsync/idpsync/internal/provider/clerk/clerkfake"
	"github.com/idpsync/idpsync/internal/store"
)

// The sync-fidelity storm: thousands of random creates, updates and deletes of users,
// organizations and memberships at the Clerk fake, which loses 5% of its webhooks; then one resync
// (users, organizations, memberships, in that order). It checks that
//
//   - before the resync, the mirror holds exactly what the delivered webhooks say: for each
//     entity, the state of the last one delivered (a deletion deleting the memberships too);
//   - the resync counts as drift exactly what the lost webhooks left behind: per entity, that state
//     against the IdP's final one. A lost change that a later delivered webhook superseded is no
//     drift; a lost creation, update or deletion that nothing superseded is one;
//   - after the resync, no live row of the mirror differs from the IdP in any field it keeps.
//
// STORM_SEED=<n> replays a storm: the same changes and the same lost webhooks (the seed is printed
// when the test fails; the clock, which the versions come from, is not replayed). STORM_CHANGES
// sets its size (default 3000).
func TestSyncFidelityStorm(t *testing.T) {
	t.Parallel()
	seed := uint64(time.Now().UnixNano())
	if v := os.Getenv("STORM_SEED"); v != "" {
		var err error
		if seed, err = strconv.ParseUint(v, 10, 64); err != nil {
			t.Fatalf("STORM_SEED: %v", err)
		}
	}
	changes := 3000
	if v := os.Getenv("STORM_CHANGES"); v != "" {
		var err error
		if changes, err = strconv.Atoi(v); err != nil {
			t.Fatalf("STORM_CHANGES: %v", err)
		}
	}
	t.Logf("storm seed %d", seed)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("replay this storm with STORM_SEED=%d go test -run TestSyncFidelityStorm ./internal/app/ -count=1 -v", seed)
		}
	})
	ctx := context.Background()
	began := time.Now()

	f := startClerk(t, clerkfake.Options{Seed: seed, Users: 1000, Organizations: 40, MembersPerOrganization: 10})
	s := startStack(t, withSources("["+clerkSource(f, ", revocation: {triggers: []}")+"]"))

	// The mirror starts in step with the IdP (the comparison is not vacuous: it saw every row
	// missing before).
	if diff := s.stormDiff(f); len(diff) != 1000+40+400 {
		t.Fatalf("before the first resync %d rows differ, want every one of the IdP's 1440", len(diff))
	}
	for _, en := range events.MirroredEntities {
		if run := s.finished(s.resync(en)); run.Status != store.RunSucceeded {
			t.Fatalf("first resync of %s: %+v", en.Plural(), run)
		}
	}
	if diff := s.stormDiff(f); len(diff) != 0 {
		t.Fatalf("after the first resync %d rows differ from the IdP: %s", len(diff), firstFew(diff))
	}
	synced := s.mirrorStates()
	t.Logf("the stack started and the mirror was in step with the IdP after %s", time.Since(began).Round(time.Millisecond))
	began = time.Now()

	// The storm.
	f.SetWebhookTarget(fakeidp.WebhookTarget{URL: s.url, Secret: secret, Drop: 0.05, DropSeed: seed})
	rng := rand.New(rand.NewPCG(seed, seed^0x5707))
	former := map[string][]string{}
	for i := range changes {
		stormChange(t, f, rng, former, i)
	}
	flushCtx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	if err := f.FlushWebhooks(flushCtx); err != nil {
		t.Fatalf("the fake did not send its webhooks: %v", err)
	}
	deliveries := f.Deliveries()
	delivered, dropped := 0, 0
	for _, d := range deliveries {
		switch {
		case d.Dropped:
			dropped++
		case d.Status != http.StatusAccepted:
			t.Fatalf("delivery %s (%s): status %d, %s", d.ID, d.Type, d.Status, d.Err)
		default:
			delivered++
		}
	}
	if len(deliveries) != changes {
		t.Fatalf("%d webhooks for %d changes", len(deliveries), changes)
	}
	s.eventually("every delivered webhook to be recorded", func() bool {
		return s.consumerPending() == 0 && s.scalar(`SELECT count(*) FROM events`) == int64(delivered)
	})
	s.quiescent()
	t.Logf("the changes were made, their webhooks sent and recorded in %s", time.Since(began).Round(time.Millisecond))

	// What the delivered webhooks alone say, and that the mirror holds exactly that.
	m := stormModelOf(t, synced, deliveries)
	if diff := m.differences(s.mirrorStates()); len(diff) != 0 {
		t.Errorf("before the resync %d mirror rows differ from what the delivered webhooks say: %s", len(diff), firstFew(diff))
	}
	want := m.expectedDrift(f)

	// One resync.
	start := time.Now()
	runs := map[events.Entity]store.ResyncRun{}
	for _, en := range events.MirroredEntities {
		runs[en] = s.finishedWithin(s.resync(en), 60*time.Second)
	}
	took := time.Since(start)

	diff := s.stormDiff(f)
	for _, en := range events.MirroredEntities {
		r, w := runs[en], want[en]
		if r.Status != store.RunSucceeded || r.Skipped != 0 {
			t.Errorf("resync of %s: %+v", en.Plural(), r)
		}
		if got := [3]int64{r.Created, r.Updated, r.Deleted}; got != w {
			t.Errorf("resync of %s counted drift created %d, updated %d, deleted %d; the lost webhooks left created %d, updated %d, deleted %d",
				en.Plural(), got[0], got[1], got[2], w[0], w[1], w[2])
		}
	}
	if len(diff) != 0 {
		t.Errorf("after the resync %d mirror rows differ from the IdP: %s", len(diff), firstFew(diff))
	}
	t.Logf("%d changes (%d users, %d organizations, %d memberships at the end), %d webhooks dropped (%s)",
		changes, len(f.UserIDs()), len(f.OrganizationIDs()), len(idpMemberships(f)), dropped, droppedByType(deliveries))
	for _, en := range events.MirroredEntities {
		r := runs[en]
		t.Logf("resync of %s: seen %d, drift created %d, updated %d, deleted %d, in %s", en.Plural(), r.Seen, r.Created, r.Updated, r.Deleted,
			r.FinishedAt.Sub(r.StartedAt).Round(time.Millisecond))
	}
	t.Logf("rows differing from the IdP after the resync: %d; the resync took %s", len(diff), took.Round(time.Millisecond))
}

// stormChange makes the i-th change of the storm at the fake: one mutation, one webhook. former
// holds the users removed from each organization, a third of whose additions add one again.
func stormChange(t *testing.T, f *clerkfake.Fake, rng *rand.Rand, former map[string][]string, i int) {
	t.Helper()
	pick := func(ids []string) string { return ids[rng.IntN(len(ids))] }
	users, orgs := f.UserIDs(), f.OrganizationIDs()
	name := fmt.Sprint("storm", i)
	var err error
	switch p := rng.IntN(100); {
	case p < 12 || len(users) < 50:
		f.CreateUser(clerkfake.User{FirstName: name, LastName: "Created", Username: name, Email: name + "@example.com"})
	case p < 40:
		_, err = f.UpdateUser(pick(users), func(u *clerkfake.User) {
			switch rng.IntN(7) {
			case 0:
				u.FirstName = name
			case 1:
				u.LastName = name
			case 2:
				u.Email = name + "@example.org"
			case 3:
				u.Username = name
			case 4:
				u.ExternalID = "ext_" + name
			case 5:
				u.Banned = !u.Banned
			default:
				u.Locked = !u.Locked
			}
		})
	case p < 46:
		err = f.DeleteUser(pick(users))
	case p < 49 || len(orgs) < 5:
		f.CreateOrganization(clerkfake.Organization{Name: "Org " + name})
	case p < 57:
		_, err = f.UpdateOrganization(pick(orgs), func(o *clerkfake.Organization) {
			o.Name = "Org " + name
			if rng.IntN(2) == 0 {
				o.Slug = "org-" + name
			}
		})
	case p < 59:
		err = f.DeleteOrganization(pick(orgs))
	default:
		org := pick(orgs)
		members := f.Memberships(org)
		switch q := rng.IntN(41); {
		case q < 15 || len(members) == 0:
			former[org] = slices.DeleteFunc(former[org], func(u string) bool { _, ok := f.User(u); return !ok })
			for {
				user := pick(users)
				if len(former[org]) > 0 && rng.IntN(3) == 0 {
					user = pick(former[org])
				}
				if !slices.ContainsFunc(members, func(m clerkfake.Membership) bool { return m.UserID == user }) {
					_, err = f.AddMembership(org, user, "")
					former[org] = slices.DeleteFunc(former[org], func(u string) bool { return u == user })
					break
				}
			}
		case q < 31:
			mem := members[rng.IntN(len(members))]
			_, err = f.UpdateMembership(org, mem.UserID, map[string]string{"org:admin": "org:member", "org:member": "org:admin"}[mem.Role])
		default:
			user := members[rng.IntN(len(members))].UserID
			err = f.RemoveMembership(org, user)
			former[org] = append(former[org], user)
		}
	}
	if err != nil {
		t.Fatalf("change %d: %v", i, err)
	}
}

func droppedByType(ds []fakeidp.Delivery) string {
	n := map[string]int{}
	for _, d := range ds {
		if d.Dropped {
			n[d.Type]++
		}
	}
	var parts []string
	for typ, c := range n {
		parts = append(parts, fmt.Sprintf("%s %d", typ, c))
	}
	slices.Sort(parts)
	return strings.Join(parts, ", ")
}

func firstFew(diff []string) string {
	slices.Sort(diff)
	if len(diff) > 10 {
		return strings.Join(diff[:10], "; ") + "; …"
	}
	return strings.Join(diff, "; ")
}

// ---- the IdP against the mirror ------------------------------------------------------------

// The fields the mirror keeps of each entity, as the IdP holds them (raw, the IdP's JSON as last
// written, is left out: Clerk changes an organization's members_count and a membership's
// public_user_data without a new version, so that a resync does not rewrite them).
type (
	stormUser struct {
		ExternalID, PrimaryEmail, Emails, Username, FirstName, LastName, ImageURL string
		Banned, Locked                                                            bool
		CreatedAt, UpdatedAt, Version                                             int64
	}
	stormOrganization struct {
		Name, Slug, ImageURL          string
		Suspended                     bool
		CreatedAt, UpdatedAt, Version int64
	}
	stormMembership struct {
		ID, Role, Permissions         string
		CreatedAt, UpdatedAt, Version int64
	}
)

// clerkFakeImage is the image every entity of the Clerk fake has.
const clerkFakeImage = "https://img.clerk.com/fakeidp"

// stormDiff compares the live rows of the mirror with the IdP's entities, field by field, and
// returns one line per row that differs (missing, extra, or with other values).
func (s *stack) stormDiff(f *clerkfake.Fake) []string {
	s.t.Helper()
	var diff []string
	compare := func(table string, idp, mirror map[string]any) {
		for k, want := range idp {
			if got, ok := mirror[k]; !ok {
				diff = append(diff, fmt.Sprintf("%s %s missing", table, k))
			} else if got != want {
				diff = append(diff, fmt.Sprintf("%s %s is %+v, the IdP has %+v", table, k, got, want))
			}
		}
		for k := range mirror {
			if _, ok := idp[k]; !ok {
				diff = append(diff, fmt.Sprintf("%s %s is live, the IdP has none", table, k))
			}
		}
	}

	idpUsers := map[string]any{}
	for _, id := range f.UserIDs() {
		u, _ := f.User(id)
		idpUsers[id] = stormUser{ExternalID: u.ExternalID, PrimaryEmail: u.Email, Emails: u.Email, Username: u.Username,
			FirstName: u.FirstName, LastName: u.LastName, ImageURL: clerkFakeImage, Banned: u.Banned, Locked: u.Locked,
			CreatedAt: u.CreatedAt.UnixMilli(), UpdatedAt: u.UpdatedAt.UnixMilli(), Version: u.UpdatedAt.UnixMilli()}
	}
	mirrorUsers := map[string]any{}
	s.rows(`SELECT id, coalesce(external_id, ''), coalesce(primary_email, ''), array_to_string(emails, ','), coalesce(username, ''),
		coalesce(first_name, ''), coalesce(last_name, ''), coalesce(image_url, ''), banned, locked,
		(extract(epoch FROM created_at) * 1000)::bigint, (extract(epoch FROM updated_at) * 1000)::bigint, source_version
		FROM users WHERE source = 'clerk-e2e' AND deleted_at IS NULL`, func(scan func(...any)) {
		var (
			id string
			u  stormUser
		)
		scan(&id, &u.ExternalID, &u.PrimaryEmail, &u.Emails, &u.Username, &u.FirstName, &u.LastName, &u.ImageURL, &u.Banned, &u.Locked,
			&u.CreatedAt, &u.UpdatedAt, &u.Version)
		mirrorUsers[id] = u
	})
	compare("user", idpUsers, mirrorUsers)

	idpOrgs := map[string]any{}
	for _, id := range f.OrganizationIDs() {
		o, _ := f.Organization(id)
		idpOrgs[id] = stormOrganization{Name: o.Name, Slug: o.Slug, ImageURL: clerkFakeImage,
			CreatedAt: o.CreatedAt.UnixMilli(), UpdatedAt: o.UpdatedAt.UnixMilli(), Version: o.UpdatedAt.UnixMilli()}
	}
	mirrorOrgs := map[string]any{}
	s.rows(`SELECT id, coalesce(name, ''), coalesce(slug, ''), coalesce(image_url, ''), suspended,
		(extract(epoch FROM created_at) * 1000)::bigint, (extract(epoch FROM updated_at) * 1000)::bigint, source_version
		FROM organizations WHERE source = 'clerk-e2e' AND deleted_at IS NULL`, func(scan func(...any)) {
		var (
			id string
			o  stormOrganization
		)
		scan(&id, &o.Name, &o.Slug, &o.ImageURL, &o.Suspended, &o.CreatedAt, &o.UpdatedAt, &o.Version)
		mirrorOrgs[id] = o
	})
	compare("organization", idpOrgs, mirrorOrgs)

	idpMems := map[string]any{}
	for _, org := range f.OrganizationIDs() {
		for _, m := range f.Memberships(org) {
			idpMems[org+"/"+m.UserID] = stormMembership{ID: m.ID, Role: m.Role, Permissions: strings.Join(clerkFakePermissions(m.Role), ","),
				CreatedAt: m.CreatedAt.UnixMilli(), UpdatedAt: m.UpdatedAt.UnixMilli(), Version: m.UpdatedAt.UnixMilli()}
		}
	}
	mirrorMems := map[string]any{}
	s.rows(`SELECT organization_id || '/' || user_id, coalesce(id, ''), coalesce(role, ''), array_to_string(permissions, ','),
		(extract(epoch FROM created_at) * 1000)::bigint, (extract(epoch FROM updated_at) * 1000)::bigint, source_version
		FROM memberships WHERE source = 'clerk-e2e' AND deleted_at IS NULL`, func(scan func(...any)) {
		var (
			key string
			m   stormMembership
		)
		scan(&key, &m.ID, &m.Role, &m.Permissions, &m.CreatedAt, &m.UpdatedAt, &m.Version)
		mirrorMems[key] = m
	})
	compare("membership", idpMems, mirrorMems)
	return diff
}

// clerkFakePermissions are the permissions the Clerk fake gives a role, as Clerk's default roles
// have them.
func clerkFakePermissions(role string) []string {
	perms := []string{"org:sys_profile:read", "org:sys_memberships:read"}
	if role == "org:admin" {
		perms = append(perms, "org:sys_profile:manage", "org:sys_memberships:manage")
	}
	return perms
}

// rows runs query and calls each with a scanner of the current row.
func (s *stack) rows(query string, each func(scan func(...any))) {
	s.t.Helper()
	rows, err := s.pool.Query(context.Background(), query)
	if err != nil {
		s.t.Fatalf("%s: %v", query, err)
	}
	defer rows.Close()
	for rows.Next() {
		each(func(dest ...any) {
			if err := rows.Scan(dest...); err != nil {
				s.t.Fatal(err)
			}
		})
	}
	if err := rows.Err(); err != nil {
		s.t.Fatal(err)
	}
}

// ---- what the delivered webhooks say -------------------------------------------------------

// held is what the mirror holds of an entity: a live row at a version (and, for a membership, of
// a membership id), or a tombstone.
type held struct {
	live    bool
	version int64
	id      string
}

func (h held) String() string {
	switch {
	case !h.live:
		return "deleted"
	case h.id != "":
		return fmt.Sprintf("%s live at version %d", h.id, h.version)
	}
	return fmt.Sprintf("live at version %d", h.version)
}

// stormModel is the mirror the delivered webhooks make, by the mirror's rules: the webhooks of an
// entity arrive in the order they were sent and the last one delivered holds; a deleted user or
// organization stays deleted, and its deletion deletes its memberships; a membership removed and
// added again (under a new id) lives again. Memberships are keyed "<organization>/<user>".
type stormModel struct {
	users, orgs, memberships map[string]held
	// history lists each entity's webhooks, delivered or not, to explain a difference.
	history map[string][]string
}

// stormModelOf is the mirror that the deliveries make of the mirror m (which it changes).
func stormModelOf(t *testing.T, m *stormModel, deliveries []fakeidp.Delivery) *stormModel {
	t.Helper()
	m.history = map[string][]string{}
	for _, d := range deliveries {
		var ev struct {
			Type      string `json:"type"`
			Timestamp int64  `json:"timestamp"`
			Data      struct {
				ID           string `json:"id"`
				UpdatedAt    int64  `json:"updated_at"`
				Organization struct {
					ID string `json:"id"`
				} `json:"organization"`
				PublicUserData struct {
					UserID string `json:"user_id"`
				} `json:"public_user_data"`
			} `json:"data"`
		}
		if err := json.Unmarshal(d.Body, &ev); err != nil {
			t.Fatalf("delivery %s: %v", d.ID, err)
		}
		data := ev.Data
		key := data.ID
		if strings.HasPrefix(ev.Type, "organizationMembership.") {
			key = data.Organization.ID + "/" + data.PublicUserData.UserID
		}
		note := fmt.Sprintf("%s at %d (updated_at %d)", ev.Type, ev.Timestamp, data.UpdatedAt)
		if d.Dropped {
			note += " dropped"
		}
		m.history[key] = append(m.history[key], note)
		if d.Dropped {
			continue
		}
		switch ev.Type {
		case "user.created", "user.updated":
			if h, ok := m.users[data.ID]; !ok || h.live {
				m.users[data.ID] = held{live: true, version: data.UpdatedAt}
			}
		case "user.deleted":
			m.deleteUser(data.ID)
		case "organization.created", "organization.updated":
			if h, ok := m.orgs[data.ID]; !ok || h.live {
				m.orgs[data.ID] = held{live: true, version: data.UpdatedAt}
			}
		case "organization.deleted":
			m.deleteOrganization(data.ID)
		case "organizationMembership.created", "organizationMembership.updated":
			m.memberships[key] = held{live: true, version: data.UpdatedAt, id: data.ID}
		case "organizationMembership.deleted":
			m.memberships[key] = held{}
		default:
			t.Fatalf("delivery %s: unexpected %s", d.ID, ev.Type)
		}
	}
	return m
}

func (m *stormModel) deleteUser(id string) {
	m.users[id] = held{}
	for k, h := range m.memberships {
		if h.live && strings.HasSuffix(k, "/"+id) {
			m.memberships[k] = held{}
		}
	}
}

func (m *stormModel) deleteOrganization(id string) {
	m.orgs[id] = held{}
	for k, h := range m.memberships {
		if h.live && strings.HasPrefix(k, id+"/") {
			m.memberships[k] = held{}
		}
	}
}

// mirrorStates reads what the mirror holds of each entity (live at a version, or a tombstone).
func (s *stack) mirrorStates() *stormModel {
	s.t.Helper()
	m := &stormModel{users: map[string]held{}, orgs: map[string]held{}, memberships: map[string]held{}}
	for table, into := range map[string]map[string]held{"users": m.users, "organizations": m.orgs, "memberships": m.memberships} {
		key, id := "id", "''"
		if table == "memberships" {
			key, id = "organization_id || '/' || user_id", "coalesce(id, '')"
		}
		s.rows(`SELECT `+key+`, deleted_at IS NULL, source_version, `+id+` FROM `+table+` WHERE source = 'clerk-e2e'`, func(scan func(...any)) {
			var (
				k string
				h held
			)
			scan(&k, &h.live, &h.version, &h.id)
			if !h.live {
				h = held{} // what a tombstone keeps is the mirror's business
			}
			into[k] = h
		})
	}
	return m
}

// differences lists the entities whose state in mirror is not the model's.
func (m *stormModel) differences(mirror *stormModel) []string {
	var diff []string
	for _, c := range []struct {
		what         string
		want, actual map[string]held
	}{{"user", m.users, mirror.users}, {"organization", m.orgs, mirror.orgs}, {"membership", m.memberships, mirror.memberships}} {
		for k, want := range c.want {
			if got, ok := c.actual[k]; !ok {
				diff = append(diff, fmt.Sprintf("%s %s: no row, the delivered webhooks say %s", c.what, k, want))
			} else if got != want {
				diff = append(diff, fmt.Sprintf("%s %s: %s, the delivered webhooks say %s (webhooks: %s)", c.what, k, got, want, m.explain(k)))
			}
		}
		for k, got := range c.actual {
			if _, ok := c.want[k]; !ok {
				diff = append(diff, fmt.Sprintf("%s %s: %s, no webhook delivered", c.what, k, got))
			}
		}
	}
	return diff
}

// explain lists the webhooks of the entity k, and of its organization and user for a membership.
func (m *stormModel) explain(k string) string {
	parts := []string{strings.Join(m.history[k], ", ")}
	if org, user, ok := strings.Cut(k, "/"); ok {
		parts = append(parts, "organization: "+strings.Join(m.history[org], ", "), "user: "+strings.Join(m.history[user], ", "))
	}
	return strings.Join(parts, "; ")
}

// idpMemberships are the IdP's memberships as the mirror would hold them.
func idpMemberships(f *clerkfake.Fake) map[string]held {
	out := map[string]held{}
	for _, org := range f.OrganizationIDs() {
		for _, mem := range f.Memberships(org) {
			out[org+"/"+mem.UserID] = held{live: true, version: mem.UpdatedAt.UnixMilli(), id: mem.ID}
		}
	}
	return out
}

// expectedDrift is what each pass of a resync (users, organizations, memberships, in that order)
// must heal, as {created, updated, deleted}: per entity, the state the delivered webhooks left
// against the IdP's. An entity the IdP has is created when the mirror has no live row of it and
// updated when its row is at another version (or of another membership id); a live row the IdP no
// longer has is deleted. A user or organization a pass deletes takes its memberships with it,
// which the memberships' pass then does not count. It changes m into the mirror the resync leaves.
func (m *stormModel) expectedDrift(f *clerkfake.Fake) map[events.Entity][3]int64 {
	drift := map[events.Entity][3]int64{}
	pass := func(entity events.Entity, idp map[string]held, mirror map[string]held, remove func(string)) {
		var d [3]int64
		for k, v := range idp {
			switch h, ok := mirror[k]; {
			case !ok || !h.live:
				d[0]++
			case h != v:
				d[1]++
			}
		}
		for k, h := range mirror {
			if _, ok := idp[k]; !ok && h.live {
				d[2]++
				remove(k)
			}
		}
		drift[entity] = d
	}
	users := map[string]held{}
	for _, id := range f.UserIDs() {
		u, _ := f.User(id)
		users[id] = held{live: true, version: u.UpdatedAt.UnixMilli()}
	}
	pass(events.EntityUser, users, m.users, m.deleteUser)
	orgs := map[string]held{}
	for _, id := range f.OrganizationIDs() {
		o, _ := f.Organization(id)
		orgs[id] = held{live: true, version: o.UpdatedAt.UnixMilli()}
	}
	pass(events.EntityOrganization, orgs, m.orgs, m.deleteOrganization)
	pass(events.EntityMembership, idpMemberships(f), m.memberships, func(k string) { m.memberships[k] = held{} })
	return drift
}
