package store_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/idpsync/idpsync/internal/events"
	"github.com/idpsync/idpsync/internal/provider/clerk"
	"github.com/idpsync/idpsync/internal/store"
	"github.com/idpsync/idpsync/internal/store/storetest"
)

var discard = slog.New(slog.NewTextHandler(io.Discard, nil))

func TestMigrateIsIdempotentAndConcurrencySafe(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool, schema := storetest.NewSchema(t) // migrated once already

	// Again, twice at once: both wait for the lock, neither applies anything.
	var wg sync.WaitGroup
	results := make([][]store.Migration, 2)
	errs := make([]error, 2)
	for i := range 2 {
		wg.Go(func() { results[i], errs[i] = store.Migrate(ctx, pool, schema, discard) })
	}
	wg.Wait()
	for i := range 2 {
		if errs[i] != nil || len(results[i]) != 0 {
			t.Fatalf("second migrate %d: applied %v, err %v", i, results[i], errs[i])
		}
	}
	// Both lines are in the schema.
	for _, table := range []string{"events", "users", "organizations", "memberships", "dead_letters", "river_job", "river_migration"} {
		var ok bool
		if err := pool.QueryRow(ctx, `SELECT to_regclass($1) IS NOT NULL`, schema+"."+table).Scan(&ok); err != nil || !ok {
			t.Errorf("table %s.%s missing (%v)", schema, table, err)
		}
	}
}

func TestMigrateFreshSchemaConcurrently(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool, _ := storetest.NewSchema(t)
	schema := "t_fresh_" + time.Now().Format("150405000000")
	t.Cleanup(func() { _, _ = pool.Exec(context.Background(), `DROP SCHEMA IF EXISTS `+schema+` CASCADE`) })

	var wg sync.WaitGroup
	counts := make([]int, 3)
	errs := make([]error, 3)
	for i := range 3 {
		wg.Go(func() {
			applied, err := store.Migrate(ctx, pool, schema, discard)
			counts[i], errs[i] = len(applied), err
		})
	}
	wg.Wait()
	total := 0
	for i := range 3 {
		if errs[i] != nil {
			t.Fatalf("migrate %d: %v", i, errs[i])
		}
		total += counts[i]
	}
	if first := slices.Max(counts); first == 0 || total != first {
		t.Fatalf("exactly one migrator should apply everything; applied counts %v", counts)
	}
}

func newEvent(source, id string, typ events.Type, payload string) store.NewEvent {
	return store.NewEvent{Source: source, EventID: id, Kind: clerk.Kind, Type: typ, SourceType: string(typ),
		ReceivedAt: time.Now().UTC(), Payload: []byte(payload), Status: store.StatusPending}
}

func TestRecordEventsOncePerSourceAndID(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool, _ := storetest.NewSchema(t)

	occurred := time.Date(2024, 5, 28, 8, 0, 0, 0, time.UTC)
	a := newEvent("clerk-a", "msg_1", events.UserCreated, `{"type": "user.created", "n": 1}`)
	a.OccurredAt, a.StreamSeq, a.EntityID = occurred, 42, "user_1"
	b := newEvent("clerk-b", "msg_1", "", `{"type":"email.created"}`) // same id, other source
	b.SourceType, b.Status = "email.created", store.StatusIgnored

	ids, err := store.RecordEvents(ctx, pool, []store.NewEvent{a, b, a}) // a repeated within the batch
	if err != nil {
		t.Fatal(err)
	}
	if ids[0] == 0 || ids[1] == 0 || ids[2] != 0 || ids[0] == ids[1] {
		t.Fatalf("ids = %v, want two new rows and the repeat skipped", ids)
	}
	again, err := store.RecordEvents(ctx, pool, []store.NewEvent{b, a})
	if err != nil {
		t.Fatal(err)
	}
	if again[0] != 0 || again[1] != 0 {
		t.Fatalf("second recording gave new ids %v", again)
	}

	got, err := store.GetEvent(ctx, pool, ids[0])
	if err != nil {
		t.Fatal(err)
	}
	var payload map[string]any
	if err := json.Unmarshal(got.Payload, &payload); err != nil || payload["n"] != 1.0 {
		t.Fatalf("payload = %s (%v)", got.Payload, err)
	}
	if got.Source != "clerk-a" || got.Type != events.UserCreated || !got.OccurredAt.Equal(occurred) || got.Status != store.StatusPending {
		t.Fatalf("event = %+v", got)
	}
	gotB, err := store.GetEvent(ctx, pool, ids[1])
	if err != nil || gotB.Type != "" || !gotB.OccurredAt.IsZero() || gotB.Status != store.StatusIgnored {
		t.Fatalf("event b = %+v, %v", gotB, err)
	}

	if err := store.SetEventStatus(ctx, pool, ids[0], store.StatusApplied); err != nil {
		t.Fatal(err)
	}
	if _, err := store.GetEvent(ctx, pool, 999999); err == nil {
		t.Fatal("GetEvent of a missing id succeeded")
	}
}

// RecordNewEvents records a batch of new events as RecordEvents does, and refuses a batch holding
// an event already in the log, or twice, with ErrAlreadyRecorded and nothing recorded.
func TestRecordNewEventsRefusesRecordedEvents(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool, _ := storetest.NewSchema(t)
	a, b := newEvent("clerk", "msg_a", events.UserCreated, `{"n":1}`), newEvent("clerk", "msg_b", events.UserCreated, `{"n":2}`)
	ids, err := store.RecordNewEvents(ctx, pool, []store.NewEvent{a, b})
	if err != nil || ids[0] == 0 || ids[1] == 0 || ids[0] == ids[1] {
		t.Fatalf("ids = %v, %v; want two new rows", ids, err)
	}
	c := newEvent("clerk", "msg_c", events.UserCreated, `{"n":3}`)
	for name, batch := range map[string][]store.NewEvent{"already recorded": {c, a}, "twice in the batch": {c, c}} {
		if _, err := store.RecordNewEvents(ctx, pool, batch); !errors.Is(err, store.ErrAlreadyRecorded) {
			t.Errorf("%s: err = %v, want ErrAlreadyRecorded", name, err)
		}
	}
	var n int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM events`).Scan(&n); err != nil || n != 2 {
		t.Fatalf("%d events in the log (%v), want the first two only", n, err)
	}
}

// Postgres refuses NUL characters, invalid UTF-8 and lone surrogates that Go's JSON accepts: the
// event log keeps such a payload cleaned in payload and verbatim in payload_raw, which is what
// reads give back; the mirror keeps cleaned text. Dead letters take any id, header and reason.
func TestHostileBytesAreStored(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool, _ := storetest.NewSchema(t)
	body := "{\"name\":\"a\\u0000b\",\"bad\":\"\xff\",\"half\":\"\\ud800\"}"
	ids, err := store.RecordEvents(ctx, pool, []store.NewEvent{newEvent("s", "nul", events.UserCreated, body),
		newEvent("s", "plain", events.UserCreated, `{"name":"ok"}`)})
	if err != nil {
		t.Fatal(err)
	}
	got, err := store.GetEvent(ctx, pool, ids[0])
	if err != nil || string(got.Payload) != body {
		t.Fatalf("read back %q, %v; want the verbatim %q", got.Payload, err, body)
	}
	var name string
	var raw, rawPlain []byte
	if err := pool.QueryRow(ctx, `SELECT payload->>'name', payload_raw FROM events WHERE id = $1`, ids[0]).Scan(&name, &raw); err != nil || name != "a\uFFFDb" || string(raw) != body {
		t.Fatalf("stored %q / %q, %v", name, raw, err)
	}
	if err := pool.QueryRow(ctx, `SELECT payload_raw FROM events WHERE id = $1`, ids[1]).Scan(&rawPlain); err != nil || rawPlain != nil {
		t.Fatalf("a clean payload has payload_raw %q (%v)", rawPlain, err)
	}

	u := user("u\u00e9", 1)
	u.FirstName, u.Emails, u.Raw = "Ada\x00\xfe", []string{"a\x00@example.com"}, json.RawMessage("{\"first_name\":\"Ada\\u0000\"}")
	if c, err := store.ApplyUser(ctx, pool, "s", u, store.ApplyOptions{}); err != nil || !c.Applied {
		t.Fatalf("apply: %+v %v", c, err)
	}
	var first, email, rawName string
	if err := pool.QueryRow(ctx, `SELECT first_name, emails[1], raw->>'first_name' FROM users WHERE id = $1`, u.ID).Scan(&first, &email, &rawName); err != nil ||
		first != "Ada\uFFFD\uFFFD" || email != "a\uFFFD@example.com" || rawName != "Ada\uFFFD" {
		t.Fatalf("mirror row: %q %q %q %v", first, email, rawName, err)
	}

	for _, id := range []string{"nul\x00id", "msg_\xff\xfe", "msg_\xff\xfd"} {
		inserted, err := store.RecordDeadLetter(ctx, pool, store.DeadLetter{Source: "s\x00", EventID: id, Subject: "idpsync.events.s.invalid",
			Reason: "bad \x00 reason", Payload: []byte(body), Headers: map[string]string{"Idpsync-Event-Id": id}})
		if err != nil || !inserted {
			t.Fatalf("dead letter %q: %v %v", id, inserted, err)
		}
		var rawID []byte
		if err := pool.QueryRow(ctx, `SELECT event_id_raw FROM dead_letters WHERE event_id_raw = $1`, []byte(id)).Scan(&rawID); err != nil {
			t.Fatalf("dead letter %q is not findable by its exact bytes: %v", id, err)
		}
	}
	again, err := store.RecordDeadLetter(ctx, pool, store.DeadLetter{Source: "s\x00", EventID: "nul\x00id", Subject: "x", Reason: "x", Payload: []byte("x")})
	if err != nil || again {
		t.Fatalf("second dead letter of the same id: %v %v", again, err)
	}
}

func user(id string, version int64) *events.User {
	return &events.User{ID: id, FirstName: "v" + time.UnixMilli(version).Format("150405"), PrimaryEmail: id + "@example.com",
		Emails: []string{id + "@example.com"}, Version: version, UpdatedAt: time.UnixMilli(version), Raw: json.RawMessage(`{}`)}
}

type userRow struct {
	FirstName string
	Banned    bool
	Deleted   bool
	Version   int64
}

func readUser(t *testing.T, pool *pgxpool.Pool, id string) userRow {
	t.Helper()
	var r userRow
	err := pool.QueryRow(context.Background(), `SELECT coalesce(first_name, ''), banned, deleted_at IS NOT NULL, source_version
		FROM users WHERE source = 's' AND id = $1`, id).Scan(&r.FirstName, &r.Banned, &r.Deleted, &r.Version)
	if err != nil {
		t.Fatalf("reading user %s: %v", id, err)
	}
	return r
}

func TestApplyUserVersionGuardAndTombstone(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool, _ := storetest.NewSchema(t)
	apply := func(u *events.User) store.Change {
		t.Helper()
		c, err := store.ApplyUser(ctx, pool, "s", u, store.ApplyOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}

	if c := apply(user("u1", 100)); !c.Applied || c.Existed {
		t.Fatalf("create: %+v", c)
	}
	if c := apply(user("u1", 100)); c.Applied {
		t.Fatal("the same version applied twice")
	}
	if c := apply(user("u1", 50)); c.Applied || readUser(t, pool, "u1").Version != 100 {
		t.Fatal("an older state overwrote a newer one")
	}
	banned := user("u1", 200)
	banned.Banned = true
	if c := apply(banned); !c.Applied || !c.Existed || c.WasBanned {
		t.Fatalf("ban: %+v", c)
	}
	if c := apply(user("u1", 300)); !c.Applied || !c.WasBanned {
		t.Fatalf("unban: %+v, want WasBanned", c)
	}

	// A membership to check the cascade.
	m := &events.Membership{OrganizationID: "o1", UserID: "u1", Role: "admin", Version: 10, Raw: json.RawMessage(`{}`)}
	if _, err := store.ApplyMembership(ctx, pool, "s", m, store.ApplyOptions{}); err != nil {
		t.Fatal(err)
	}

	del := &events.User{ID: "u1", Deleted: true, Version: 250, Raw: json.RawMessage(`{"deleted":true}`)}
	c := apply(del)
	if !c.Applied || c.WasDeleted {
		t.Fatalf("delete: %+v (a deletion applies even when older than the row)", c)
	}
	var liveMemberships int
	_ = pool.QueryRow(ctx, `SELECT count(*) FROM memberships WHERE user_id = 'u1' AND deleted_at IS NULL`).Scan(&liveMemberships)
	if liveMemberships != 0 {
		t.Fatal("the user's deletion did not tombstone its memberships")
	}
	if r := readUser(t, pool, "u1"); !r.Deleted || r.Version != 300 || r.FirstName == "" {
		t.Fatalf("after delete: %+v (keeps the last state, version stays the highest)", r)
	}
	if c := apply(user("u1", 999)); c.Applied || !c.WasDeleted {
		t.Fatalf("update after delete: %+v; a tombstone must not be resurrected", c)
	}
	if c := apply(del); c.Applied {
		t.Fatal("a second deletion applied")
	}
	// An older membership event cannot revive a membership tombstoned by the user's deletion.
	m.Version = 200
	if c, _ := store.ApplyMembership(ctx, pool, "s", m, store.ApplyOptions{}); c.Applied {
		t.Fatal("an older membership event revived a cascaded tombstone")
	}

	// Deleting a user never seen leaves a tombstone that a late create cannot resurrect.
	if c := apply(&events.User{ID: "u2", Deleted: true, Version: 10, Raw: json.RawMessage(`{}`)}); !c.Applied || c.Existed {
		t.Fatalf("tombstone for an unknown user: %+v", c)
	}
	if c := apply(user("u2", 5)); c.Applied {
		t.Fatal("a create after a delete resurrected the user")
	}
}

func TestApplyMembershipRevives(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool, _ := storetest.NewSchema(t)
	apply := func(deleted bool, version int64, role string) store.Change {
		t.Helper()
		m := &events.Membership{OrganizationID: "o1", UserID: "u1", Role: role, Permissions: []string{"p"}, Deleted: deleted,
			Version: version, Raw: json.RawMessage(`{}`)}
		c, err := store.ApplyMembership(ctx, pool, "s", m, store.ApplyOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	live := func() (bool, string) {
		var deleted bool
		var role string
		if err := pool.QueryRow(ctx, `SELECT deleted_at IS NOT NULL, role FROM memberships WHERE source='s' AND organization_id='o1' AND user_id='u1'`).Scan(&deleted, &role); err != nil {
			t.Fatal(err)
		}
		return !deleted, role
	}

	apply(false, 100, "member")
	if c := apply(true, 90, "member"); c.Applied {
		t.Fatal("an older removal applied")
	}
	if c := apply(true, 100, "member"); !c.Applied {
		t.Fatal("a removal as new as the row did not apply")
	}
	if ok, _ := live(); ok {
		t.Fatal("removed membership is live")
	}
	if c := apply(false, 100, "member"); c.Applied {
		t.Fatal("a state as old as the removal revived the membership")
	}
	if c := apply(false, 150, "admin"); !c.Applied || !c.WasDeleted {
		t.Fatalf("re-add: %+v", c)
	}
	if ok, role := live(); !ok || role != "admin" {
		t.Fatalf("after re-add live=%v role=%s", ok, role)
	}
}

func TestApplyOrganizationDeletionCascades(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool, _ := storetest.NewSchema(t)
	org := &events.Organization{ID: "o1", Name: "Acme", Slug: "acme", Version: 10, Raw: json.RawMessage(`{}`)}
	if c, err := store.ApplyOrganization(ctx, pool, "s", org, store.ApplyOptions{}); err != nil || !c.Applied {
		t.Fatalf("%+v %v", c, err)
	}
	for _, uid := range []string{"u1", "u2", "u3"} {
		m := &events.Membership{OrganizationID: "o1", UserID: uid, Version: 10, Raw: json.RawMessage(`{}`)}
		if _, err := store.ApplyMembership(ctx, pool, "s", m, store.ApplyOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	other := &events.Membership{OrganizationID: "o2", UserID: "u1", Version: 10, Raw: json.RawMessage(`{}`)}
	if _, err := store.ApplyMembership(ctx, pool, "s", other, store.ApplyOptions{}); err != nil {
		t.Fatal(err)
	}
	at := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	// u3 left moments before the deletion (an IdP cascading membership deletions first).
	left := &events.Membership{OrganizationID: "o1", UserID: "u3", Deleted: true, Version: 15, Raw: json.RawMessage(`{}`)}
	if _, err := store.ApplyMembership(ctx, pool, "s", left, store.ApplyOptions{DeletedAt: at.Add(-10 * time.Second)}); err != nil {
		t.Fatal(err)
	}
	c, err := store.ApplyOrganization(ctx, pool, "s", &events.Organization{ID: "o1", Deleted: true, Version: 20, Raw: json.RawMessage(`{}`)}, store.ApplyOptions{DeletedAt: at})
	if err != nil || !c.Applied {
		t.Fatalf("delete: %+v %v", c, err)
	}
	members, err := store.MembersSince(ctx, pool, "s", "o1", at.Add(-time.Minute))
	if err != nil || !slices.Equal(members, []string{"u1", "u2", "u3"}) {
		t.Fatalf("members removed by the deletion: %v %v", members, err)
	}
	if live, _ := store.MembersSince(ctx, pool, "s", "o1", time.Time{}); len(live) != 0 {
		t.Fatalf("live members after the deletion: %v", live)
	}
	var live int
	var deletedAt time.Time
	_ = pool.QueryRow(ctx, `SELECT count(*) FILTER (WHERE deleted_at IS NULL) FROM memberships`).Scan(&live)
	_ = pool.QueryRow(ctx, `SELECT deleted_at FROM organizations WHERE id = 'o1'`).Scan(&deletedAt)
	if live != 1 || !deletedAt.Equal(at) {
		t.Fatalf("live memberships %d (want only o2's), deleted_at %v", live, deletedAt)
	}
}

// A replay after a mapping fix rewrites rows at the same version, but never revives a tombstone.
func TestReapplyRewritesEqualVersionsOnly(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool, _ := storetest.NewSchema(t)
	buggy := user("u1", 100)
	buggy.FirstName = "wrong"
	if _, err := store.ApplyUser(ctx, pool, "s", buggy, store.ApplyOptions{}); err != nil {
		t.Fatal(err)
	}
	fixed := user("u1", 100)
	fixed.FirstName = "right"
	if c, _ := store.ApplyUser(ctx, pool, "s", fixed, store.ApplyOptions{}); c.Applied {
		t.Fatal("a plain write rewrote an equal version")
	}
	if c, _ := store.ApplyUser(ctx, pool, "s", fixed, store.ApplyOptions{Reapply: true}); !c.Applied || readUser(t, pool, "u1").FirstName != "right" {
		t.Fatal("a reapply did not rewrite the equal version")
	}
	if c, _ := store.ApplyUser(ctx, pool, "s", user("u1", 90), store.ApplyOptions{Reapply: true}); c.Applied {
		t.Fatal("a reapply wrote an older version")
	}

	// Memberships: a removal and a re-add share a version; replaying the add keeps it removed.
	m := &events.Membership{OrganizationID: "o1", UserID: "u1", Version: 100, Raw: json.RawMessage(`{}`)}
	if _, err := store.ApplyMembership(ctx, pool, "s", m, store.ApplyOptions{}); err != nil {
		t.Fatal(err)
	}
	removed := *m
	removed.Deleted = true
	if c, _ := store.ApplyMembership(ctx, pool, "s", &removed, store.ApplyOptions{}); !c.Applied {
		t.Fatal("removal not applied")
	}
	if c, _ := store.ApplyMembership(ctx, pool, "s", m, store.ApplyOptions{Reapply: true}); c.Applied {
		t.Fatal("replaying an add at the removal's version revived the membership")
	}
}

func TestForgetSource(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool, _ := storetest.NewSchema(t)
	for _, source := range []string{"demo", "prod"} {
		if _, err := store.ApplyUser(ctx, pool, source, user("u1", 1), store.ApplyOptions{}); err != nil {
			t.Fatal(err)
		}
		if _, err := store.RecordEvents(ctx, pool, []store.NewEvent{newEvent(source, "e1", events.UserCreated, `{}`)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := store.ForgetSource(ctx, pool, "demo"); err != nil {
		t.Fatal(err)
	}
	var demo, prod int
	_ = pool.QueryRow(ctx, `SELECT count(*) FILTER (WHERE source = 'demo'), count(*) FILTER (WHERE source = 'prod') FROM (SELECT source FROM users UNION ALL SELECT source FROM events) t`).Scan(&demo, &prod)
	if demo != 0 || prod != 2 {
		t.Fatalf("after forgetting demo: %d demo rows, %d prod rows", demo, prod)
	}
}

// The set-based batch writes exactly what one statement per entity, in the same order, writes:
// the same rows and the same reported changes, whatever mix of users, organizations, memberships,
// deletions, repeats of an entity, stale versions and reapplies a batch holds.
func TestApplyBatchEqualsOneByOne(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	for seed := range uint64(8) {
		r := rand.New(rand.NewPCG(seed, 42))
		var writes []store.Write
		for range 150 {
			v := int64(r.IntN(6) + 1)
			id := fmt.Sprint(r.IntN(12))
			w := store.Write{Source: "s", Opts: store.ApplyOptions{Reapply: r.IntN(5) == 0, DeletedAt: time.UnixMilli(1700000000000)}}
			switch r.IntN(4) {
			case 0:
				u := user("u"+id, v)
				u.Banned, u.Locked, u.Deleted = r.IntN(3) == 0, r.IntN(4) == 0, r.IntN(8) == 0
				w.Event.User = u
			case 1:
				w.Event.Organization = &events.Organization{ID: "o" + id, Name: "n" + fmt.Sprint(v), Suspended: r.IntN(3) == 0,
					Deleted: r.IntN(8) == 0, Version: v, Raw: json.RawMessage(`{}`)}
			default:
				w.Event.Membership = &events.Membership{OrganizationID: "o" + fmt.Sprint(r.IntN(4)), UserID: "u" + fmt.Sprint(r.IntN(6)),
					Role: "r" + fmt.Sprint(v), Permissions: []string{"p"}, Deleted: r.IntN(4) == 0, Version: v, Raw: json.RawMessage(`{}`)}
			}
			writes = append(writes, w)
		}
		batchPool, _ := storetest.NewSchema(t)
		onePool, _ := storetest.NewSchema(t)
		// Split into batches of 40, as the intake does, so rows carry over between batches.
		var got []store.Change
		for off := 0; off < len(writes); off += 40 {
			cs, err := store.ApplyBatch(ctx, batchPool, writes[off:min(off+40, len(writes))])
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, cs...)
		}
		// One statement each, in the order ApplyBatch applies them: per batch, each entity's
		// writes in rounds, organizations, users, memberships, then deletions.
		want := make([]store.Change, len(writes))
		for off := 0; off < len(writes); off += 40 {
			for _, i := range store.BatchOrder(writes[off:min(off+40, len(writes))]) {
				w := writes[off+i]
				var c store.Change
				var err error
				switch {
				case w.Event.User != nil:
					c, err = store.ApplyUser(ctx, onePool, w.Source, w.Event.User, w.Opts)
				case w.Event.Organization != nil:
					c, err = store.ApplyOrganization(ctx, onePool, w.Source, w.Event.Organization, w.Opts)
				default:
					c, err = store.ApplyMembership(ctx, onePool, w.Source, w.Event.Membership, w.Opts)
				}
				if err != nil {
					t.Fatal(err)
				}
				want[off+i] = c
			}
		}
		for i := range writes {
			if got[i] != want[i] {
				t.Fatalf("seed %d, write %d (%+v): batch reported %+v, one by one %+v", seed, i, writes[i].Event, got[i], want[i])
			}
		}
		for _, q := range []string{
			`SELECT string_agg(id || banned::text || locked::text || source_version || (deleted_at IS NULL)::text, ',' ORDER BY id) FROM users`,
			`SELECT string_agg(id || coalesce(name, '') || suspended::text || source_version || (deleted_at IS NULL)::text, ',' ORDER BY id) FROM organizations`,
			`SELECT string_agg(organization_id || user_id || coalesce(role, '') || source_version || (deleted_at IS NULL)::text, ',' ORDER BY organization_id, user_id) FROM memberships`,
		} {
			var a, b *string
			if err := batchPool.QueryRow(ctx, q).Scan(&a); err != nil {
				t.Fatal(err)
			}
			if err := onePool.QueryRow(ctx, q).Scan(&b); err != nil {
				t.Fatal(err)
			}
			if (a == nil) != (b == nil) || a != nil && *a != *b {
				t.Fatalf("seed %d: rows differ:\nbatch  %v\none-by-one %v", seed, deref(a), deref(b))
			}
		}
	}
}

func deref(s *string) string {
	if s == nil {
		return "<nil>"
	}
	return *s
}
