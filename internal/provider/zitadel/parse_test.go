package zitadel_test

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/idpsync/idpsync/internal/events"
	"github.com/idpsync/idpsync/internal/provider"
	"github.com/idpsync/idpsync/internal/provider/providertest"
	"github.com/idpsync/idpsync/internal/provider/zitadel"
)

func TestParseZitadel(t *testing.T) {
	t.Parallel()
	parse := func(name string) events.Event {
		t.Helper()
		ev, err := zitadel.Parse("", providertest.ReadFile(t, "testdata/webhooks/"+name+".json"))
		if err != nil {
			t.Fatal(err)
		}
		return ev
	}

	added := parse("user.human.added")
	if added.ID != "312909075211878808:313014806065971608:1" || added.Type != events.UserCreated ||
		!added.OccurredAt.Equal(time.Date(2025, 3, 27, 9, 22, 43, 262665000, time.UTC)) {
		t.Fatalf("envelope = %+v", added.Envelope)
	}
	// Zitadel's events carry changes: the user is named, its state is read from the API.
	if u := added.User; u.ID != "313014806065971608" || !u.Partial || u.Version != 1 || u.Deleted {
		t.Fatalf("user = %+v", u)
	}
	if u := parse("user.removed").User; !u.Deleted || u.Partial || u.Version != 7 {
		t.Fatalf("removed user = %+v", u)
	}
	member := parse("org.member.added").Membership
	if member.OrganizationID != "312909075211944344" || member.UserID != "313014806065971608" ||
		!slices.Equal(member.Permissions, []string{"ORG_OWNER", "ORG_USER_MANAGER"}) || member.Version != 12 || member.Deleted {
		t.Fatalf("membership (inline payload) = %+v", member)
	}
	removed := parse("org.member.removed").Membership
	if removed.UserID != "313014806065971608" || !removed.Deleted || removed.Version != 13 {
		t.Fatalf("removed membership (base64 payload) = %+v", removed)
	}
}

func TestParseZitadelAPIEntities(t *testing.T) {
	t.Parallel()
	u, err := zitadel.ParseUser([]byte(`{"userId":"42","details":{"sequence":"9","creationDate":"2025-01-01T00:00:00Z",
		"changeDate":"2025-02-01T00:00:00Z","resourceOwner":"1"},"state":"USER_STATE_INACTIVE","username":"ada",
		"human":{"profile":{"givenName":"Ada","familyName":"Lovelace"},"email":{"email":"ada@example.com"}}}`))
	if err != nil {
		t.Fatal(err)
	}
	if u.ID != "42" || u.Version != 9 || !u.Banned || u.Locked || u.FirstName != "Ada" || u.PrimaryEmail != "ada@example.com" {
		t.Fatalf("user = %+v", u)
	}
	o, err := zitadel.ParseOrganization([]byte(`{"id":"1","details":{"sequence":3},"state":"ORGANIZATION_STATE_INACTIVE","name":"Acme","primaryDomain":"acme.example"}`))
	if err != nil || o.Version != 3 || !o.Suspended || o.Slug != "acme.example" {
		t.Fatalf("organization = %+v, %v", o, err)
	}
}

// Payloads that verify but cannot be read are malformed, never an event.
func TestParseMalformed(t *testing.T) {
	t.Parallel()
	for _, body := range []string{
		`{"aggregateID":"1","instanceID":"2","event_type":"user.removed"}`,
		`{"aggregateID":"1","instanceID":"2","sequence":1}`,
		`{"aggregateID":"1","instanceID":"2","sequence":1,"event_type":"org.member.added","event_payload":"bm90IGpzb24="}`,
		`{"aggregateID":"1","instanceID":"2","sequence":1,"event_type":"org.member.added","event_payload":{"roles":[]}}`,
		`{"aggregateID":"1","instanceID":"2","sequence":1,"event_type":"user.locked","created_at":"yesterday"}`,
	} {
		if _, err := zitadel.Parse("", []byte(body)); !errors.Is(err, events.ErrMalformed) {
			t.Errorf("%s: err = %v", body, err)
		}
	}
}

// The parsers face the internet behind a signature, which only proves who sent the bytes.
func FuzzParseZitadel(f *testing.F) {
	providertest.FuzzParsers(f, mustLookup(f).Webhook, "testdata/webhooks/*.json")
}

func mustLookup(f *testing.F) *provider.Provider {
	p, ok := provider.Lookup(zitadel.Kind)
	if !ok {
		f.Fatal("zitadel is not registered")
	}
	return p
}
