package chaos_test

import (
	"encoding/json"
	"math/rand/v2"
	"os"
	"slices"
	"testing"

	"github.com/idpsync/idpsync/internal/chaos"
	"github.com/idpsync/idpsync/internal/provider/clerk"
)

// The load must look like Clerk's: each payload has exactly the fields of Clerk's published example
// of its type, and idpsync's parser reads from it the state the suite expects in the mirror.
func TestPayloadsHaveClerksShape(t *testing.T) {
	t.Parallel()
	plan := chaos.NewPlan(rand.New(rand.NewPCG(1, 2)), "shape", 40)
	seen := map[string]bool{}
	for _, d := range plan.Deliveries {
		if seen[d.Type] {
			continue
		}
		seen[d.Type] = true
		fixture, err := os.ReadFile("../provider/clerk/testdata/webhooks/" + d.Type + ".json")
		if err != nil {
			t.Fatal(err)
		}
		for _, path := range [][]string{nil, {"data"}, {"event_attributes"}, {"event_attributes", "http_request"}} {
			if got, want := keysAt(t, d.Body, path), keysAt(t, fixture, path); !slices.Equal(got, want) {
				t.Errorf("%s: keys at %v are %v; Clerk's example has %v", d.Type, path, got, want)
			}
		}
	}
	for _, typ := range []string{"user.created", "user.updated", "user.deleted"} {
		if !seen[typ] {
			t.Errorf("the plan has no %s", typ)
		}
	}
}

func keysAt(t *testing.T, body []byte, path []string) []string {
	t.Helper()
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(body, &obj); err != nil {
		t.Fatal(err)
	}
	for _, k := range path {
		if err := json.Unmarshal(obj[k], &obj); err != nil {
			t.Fatalf("%v: %v", path, err)
		}
	}
	keys := make([]string, 0, len(obj))
	for k := range obj {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func TestParserReadsThePlannedStates(t *testing.T) {
	t.Parallel()
	plan := chaos.NewPlan(rand.New(rand.NewPCG(3, 4)), "parse", 50)
	for _, d := range plan.Deliveries {
		ev, err := clerk.Parse(d.ID, d.Body)
		if err != nil {
			t.Fatalf("%s (%s): %v", d.ID, d.Type, err)
		}
		u := ev.User
		if u == nil || u.ID != d.UserID {
			t.Fatalf("%s (%s): parsed user %+v", d.ID, d.Type, u)
		}
		got := chaos.UserState{Deleted: u.Deleted, Version: u.Version}
		if !u.Deleted {
			got = chaos.UserState{FirstName: u.FirstName, LastName: u.LastName, Username: u.Username,
				PrimaryEmail: u.PrimaryEmail, Banned: u.Banned, Version: u.Version}
		}
		if got != d.State {
			t.Errorf("%s (%s): the parser reads %s; the plan expects %s", d.ID, d.Type, got, d.State)
		}
	}
}

// Each user's events come in order, with increasing versions; a deletion is the last of them.
func TestPlanSequences(t *testing.T) {
	t.Parallel()
	plan := chaos.NewPlan(rand.New(rand.NewPCG(5, 6)), "seq", 200)
	ids := map[string]bool{}
	last := map[string]chaos.UserState{}
	var deleted int
	for _, d := range plan.Deliveries {
		if ids[d.ID] {
			t.Fatalf("delivery id %s twice", d.ID)
		}
		ids[d.ID] = true
		prev, ok := last[d.UserID]
		switch {
		case !ok && d.Type != "user.created":
			t.Fatalf("%s: first event of %s is %s", d.ID, d.UserID, d.Type)
		case ok && prev.Deleted:
			t.Fatalf("%s: %s of %s after its deletion", d.ID, d.Type, d.UserID)
		case ok && d.State.Version <= prev.Version:
			t.Fatalf("%s: version %d of %s does not increase (%d before)", d.ID, d.State.Version, d.UserID, prev.Version)
		}
		if d.State.Deleted {
			deleted++
		}
		last[d.UserID] = d.State
	}
	if len(last) != plan.Users || deleted == 0 || deleted == plan.Users {
		t.Fatalf("%d users, %d deleted", len(last), deleted)
	}
}

// The expected state is the newest state in effect, or a tombstone once a deletion is.
func TestExpectedState(t *testing.T) {
	t.Parallel()
	plan := chaos.NewPlan(rand.New(rand.NewPCG(7, 8)), "exp", 100)
	all := plan.Expected(func(*chaos.Delivery) bool { return true })
	lastOf := map[string]*chaos.Delivery{}
	for _, d := range plan.Deliveries {
		lastOf[d.UserID] = d
	}
	for id, d := range lastOf {
		if all[id] != d.State {
			t.Errorf("%s: expected %s, want the last state %s", id, all[id], d.State)
		}
	}
	// Without each user's last delivery (not acknowledged), the state before it is expected,
	// whatever order the rest came in.
	partial := plan.Expected(func(d *chaos.Delivery) bool { return lastOf[d.UserID] != d })
	for _, d := range plan.Deliveries {
		if lastOf[d.UserID] == d {
			continue
		}
		if w := partial[d.UserID]; w.Version < d.State.Version {
			t.Errorf("%s: expected version %d is older than delivered %d", d.UserID, w.Version, d.State.Version)
		}
	}
	for id, d := range lastOf {
		if partial[id] == d.State {
			t.Errorf("%s: expected the state of a delivery not in effect", id)
		}
	}
}
