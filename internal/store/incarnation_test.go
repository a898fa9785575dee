package store_test

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/idpsync/idpsync/internal/events"
	"github.com/idpsync/idpsync/internal/store"
	"github.com/idpsync/idpsync/internal/store/storetest"
)

// Clerk versions a membership by its updated_at in milliseconds, and its removal by the later of
// that and the event's time: a membership removed and added again within one millisecond comes
// back at the version of its removal (or of its last change, when the removal was lost), under a
// new membership id. The new membership wins that tie, whether written one at a time or in a
// batch; the same membership at the same version changes nothing, and an older one never wins.
// Nor does a membership of a deleted organization or user: nothing of theirs comes after their
// deletion, even within its millisecond.
func TestMembershipAddedAgainInTheSameMillisecond(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	for _, path := range []struct {
		name  string
		apply func(*testing.T, store.DBTX, *events.Membership) store.Change
	}{
		{"one at a time", func(t *testing.T, db store.DBTX, m *events.Membership) store.Change {
			c, err := store.ApplyMembership(ctx, db, "s", m, store.ApplyOptions{})
			if err != nil {
				t.Fatal(err)
			}
			return c
		}},
		{"batched", func(t *testing.T, db store.DBTX, m *events.Membership) store.Change {
			cs, err := store.ApplyBatch(ctx, db, []store.Write{{Source: "s", Event: events.Event{Membership: m}}})
			if err != nil {
				t.Fatal(err)
			}
			return cs[0]
		}},
	} {
		t.Run(path.name, func(t *testing.T) {
			t.Parallel()
			pool, _ := storetest.NewSchema(t)
			apply := func(id string, deleted bool, version int64) store.Change {
				t.Helper()
				return path.apply(t, pool, &events.Membership{ID: id, OrganizationID: "o1", UserID: "u1", Role: "org:member",
					Deleted: deleted, Version: version, Raw: json.RawMessage(`{}`)})
			}
			held := func() (id string, live bool) {
				t.Helper()
				if err := pool.QueryRow(ctx, `SELECT id, deleted_at IS NULL FROM memberships WHERE organization_id = 'o1' AND user_id = 'u1'`).Scan(&id, &live); err != nil {
					t.Fatal(err)
				}
				return id, live
			}

			apply("orgmem_1", false, 100)
			if c := apply("orgmem_1", true, 100); !c.Applied {
				t.Fatal("the removal did not apply")
			}
			if c := apply("orgmem_2", false, 100); !c.Applied || !c.WasDeleted {
				t.Fatalf("added again in the removal's millisecond: %+v, want it applied over the removal", c)
			}
			if id, live := held(); id != "orgmem_2" || !live {
				t.Fatalf("holds %s (live %v), want orgmem_2 live", id, live)
			}
			if c := apply("orgmem_2", false, 100); c.Applied {
				t.Fatal("the same membership at the same version applied again")
			}
			// The removal of orgmem_2 was lost; orgmem_3 comes in the millisecond of orgmem_2's state.
			if c := apply("orgmem_3", false, 100); !c.Applied || c.WasDeleted {
				t.Fatalf("added again over a lost removal: %+v", c)
			}
			if c := apply("orgmem_2", false, 90); c.Applied {
				t.Fatal("an older membership overwrote a newer one")
			}
			if id, live := held(); id != "orgmem_3" || !live {
				t.Fatalf("holds %s (live %v), want orgmem_3 live", id, live)
			}

			// The organization is deleted in the millisecond orgmem_4 is added (a batch writes the
			// addition, a repeat, after the deletion).
			deleted := &events.Organization{ID: "o1", Deleted: true, Version: 200, Raw: json.RawMessage(`{}`)}
			if _, err := store.ApplyOrganization(ctx, pool, "s", deleted, store.ApplyOptions{}); err != nil {
				t.Fatal(err)
			}
			if c := apply("orgmem_4", false, 200); c.Applied {
				t.Fatal("a membership of the deleted organization, as new as its deletion, revived it")
			}
			if _, live := held(); live {
				t.Fatal("a membership of a deleted organization is live")
			}
		})
	}
}
