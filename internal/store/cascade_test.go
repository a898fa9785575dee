package store_test

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/idpsync/idpsync/internal/events"
	"github.com/idpsync/idpsync/internal/store"
	"github.com/idpsync/idpsync/internal/store/storetest"
)

// A membership removed and added again, then its user or organization deleted: the deletion
// leaves it deleted, whether the three come in one batch (which writes an entity's repeats in
// later rounds than the deletion) or one by one with the re-addition late. A deletion tombstones
// its memberships at its own version, those removed before included, so that no membership event
// older than the deletion revives one.
func TestDeletionCascadeCoversMembershipsRemovedBefore(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	membership := func(org, user string, deleted bool, version int64) store.Write {
		return store.Write{Source: "s", Event: events.Event{Membership: &events.Membership{OrganizationID: org, UserID: user,
			Role: "member", Deleted: deleted, Version: version, Raw: json.RawMessage(`{}`)}}}
	}
	deleteUser := store.Write{Source: "s", Event: events.Event{User: &events.User{ID: "u1", Deleted: true, Version: 30, Raw: json.RawMessage(`{}`)}}}
	deleteOrg := store.Write{Source: "s", Event: events.Event{Organization: &events.Organization{ID: "o2", Deleted: true, Version: 30, Raw: json.RawMessage(`{}`)}}}

	for _, c := range []struct {
		name     string
		batches  [][]store.Write
		org, usr string
	}{
		{"user deleted, one batch", [][]store.Write{{membership("o1", "u1", true, 10), membership("o1", "u1", false, 20), deleteUser}}, "o1", "u1"},
		{"organization deleted, one batch", [][]store.Write{{membership("o2", "u2", true, 10), membership("o2", "u2", false, 20), deleteOrg}}, "o2", "u2"},
		{"user deleted, the re-addition late", [][]store.Write{{membership("o1", "u1", true, 10)}, {deleteUser}, {membership("o1", "u1", false, 20)}}, "o1", "u1"},
		{"organization deleted, the re-addition late", [][]store.Write{{membership("o2", "u2", true, 10)}, {deleteOrg}, {membership("o2", "u2", false, 20)}}, "o2", "u2"},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			pool, _ := storetest.NewSchema(t)
			for _, b := range c.batches {
				if _, err := store.ApplyBatch(ctx, pool, b); err != nil {
					t.Fatal(err)
				}
			}
			var live bool
			var version int64
			err := pool.QueryRow(ctx, `SELECT deleted_at IS NULL, source_version FROM memberships WHERE organization_id = $1 AND user_id = $2`,
				c.org, c.usr).Scan(&live, &version)
			if err != nil {
				t.Fatal(err)
			}
			if live || version != 30 {
				t.Fatalf("membership live %v at version %d; want deleted at the deletion's version 30", live, version)
			}
		})
	}
}
