package fakeidp_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync/atomic"
	"testing"

	"github.com/idpsync/idpsync/internal/fakeidp"
	"github.com/idpsync/idpsync/internal/provider/clerk/clerkfake"
)

// A target with Drop loses that fraction of the webhooks, the same ones for the same seed and
// mutations: they are recorded as dropped, in their place, and never reach the endpoint.
func TestDroppedWebhooksAreSeededAndRecorded(t *testing.T) {
	t.Parallel()
	var received atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		received.Add(1)
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(srv.Close)

	// storm makes 400 mutations at a fresh fake whose target drops with seed, and returns the
	// positions of the dropped webhooks.
	storm := func(seed uint64) []int {
		t.Helper()
		f := clerkfake.New(clerkfake.Options{})
		f.SetWebhookTarget(fakeidp.WebhookTarget{URL: srv.URL, Secret: clerkSecret, Drop: 0.25, DropSeed: seed})
		t.Cleanup(f.Close)
		for i := range 200 {
			u := f.CreateUser(clerkfake.User{FirstName: fmt.Sprint("u", i)})
			if _, err := f.UpdateUser(u.ID, func(u *clerkfake.User) { u.LastName = "x" }); err != nil {
				t.Fatal(err)
			}
		}
		if err := f.FlushWebhooks(context.Background()); err != nil {
			t.Fatal(err)
		}
		var dropped []int
		for i, d := range f.Deliveries() {
			wantType := []string{"user.created", "user.updated"}[i%2]
			switch {
			case d.Type != wantType:
				t.Fatalf("delivery %d is a %s, want %s: deliveries out of order", i, d.Type, wantType)
			case d.Dropped && (d.Attempts != 0 || d.Status != 0):
				t.Fatalf("dropped delivery %d was tried: %+v", i, d)
			case !d.Dropped && d.Status != http.StatusNoContent:
				t.Fatalf("delivery %d: status %d", i, d.Status)
			case d.Dropped:
				dropped = append(dropped, i)
			}
		}
		return dropped
	}
	first := storm(42)
	if n := len(first); n < 60 || n > 140 {
		t.Fatalf("%d of 400 webhooks dropped, want about 100", n)
	}
	if got := received.Load(); got != int64(400-len(first)) {
		t.Fatalf("the endpoint received %d webhooks, want the %d not dropped", got, 400-len(first))
	}
	if again := storm(42); !slices.Equal(again, first) {
		t.Fatal("the same seed and mutations dropped other webhooks")
	}
	if other := storm(43); slices.Equal(other, first) {
		t.Fatal("another seed dropped the same webhooks")
	}
}
