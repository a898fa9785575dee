package events_test

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/idpsync/idpsync/internal/events"
)

func TestParseZitadel(t *testing.T) {
	t.Parallel()
	parse := func(name string) events.Event {
		t.Helper()
		ev, err := events.Parse(events.KindZitadel, "", readFile(t, "testdata/zitadel/"+name+".json"))
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
	u, err := events.ParseZitadelUser([]byte(`{"userId":"42","details":{"sequence":"9","creationDate":"2025-01-01T00:00:00Z",
		"changeDate":"2025-02-01T00:00:00Z","resourceOwner":"1"},"state":"USER_STATE_INACTIVE","username":"ada",
		"human":{"profile":{"givenName":"Ada","familyName":"Lovelace"},"email":{"email":"ada@example.com"}}}`))
	if err != nil {
		t.Fatal(err)
	}
	if u.ID != "42" || u.Version != 9 || !u.Banned || u.Locked || u.FirstName != "Ada" || u.PrimaryEmail != "ada@example.com" {
		t.Fatalf("user = %+v", u)
	}
	o, err := events.ParseZitadelOrganization([]byte(`{"id":"1","details":{"sequence":3},"state":"ORGANIZATION_STATE_INACTIVE","name":"Acme","primaryDomain":"acme.example"}`))
	if err != nil || o.Version != 3 || !o.Suspended || o.Slug != "acme.example" {
		t.Fatalf("organization = %+v, %v", o, err)
	}
}

func TestParseAuthPI(t *testing.T) {
	t.Parallel()
	ev, err := events.Parse(events.KindAuthPI, "", readFile(t, "testdata/authpi/user.updated.json"))
	if err != nil {
		t.Fatal(err)
	}
	u := ev.User
	if ev.ID != "evt_01HZX" || ev.Type != events.UserUpdated || u.ID != "usr_01" || !u.Banned ||
		u.PrimaryEmail != "ada@example.com" || u.Version != time.Date(2026, 11, 24, 9, 59, 59, 123456000, time.UTC).UnixMicro() {
		t.Fatalf("event = %+v, user = %+v", ev.Envelope, u)
	}
	ev, err = events.Parse(events.KindAuthPI, "", readFile(t, "testdata/authpi/organization.member.removed.json"))
	if err != nil {
		t.Fatal(err)
	}
	if m := ev.Membership; m.OrganizationID != "org_01" || m.UserID != "usr_01" || !m.Deleted ||
		m.Version != time.Date(2026, 11, 24, 10, 5, 0, 0, time.UTC).UnixMicro() {
		t.Fatalf("membership = %+v", m)
	}
}

func TestParseOthersMalformed(t *testing.T) {
	t.Parallel()
	cases := []struct {
		kind events.Kind
		body string
	}{
		{events.KindZitadel, `{"aggregateID":"1","instanceID":"2","event_type":"user.removed"}`},
		{events.KindZitadel, `{"aggregateID":"1","instanceID":"2","sequence":1}`},
		{events.KindZitadel, `{"aggregateID":"1","instanceID":"2","sequence":1,"event_type":"org.member.added","event_payload":"bm90IGpzb24="}`},
		{events.KindZitadel, `{"aggregateID":"1","instanceID":"2","sequence":1,"event_type":"org.member.added","event_payload":{"roles":[]}}`},
		{events.KindZitadel, `{"aggregateID":"1","instanceID":"2","sequence":1,"event_type":"user.locked","created_at":"yesterday"}`},
		{events.KindAuthPI, `{"id":"1","type":"event","data":{"id":"evt","subject":{}}}`},
		{events.KindAuthPI, `{"id":"1","type":"event","data":{"id":"evt","type":"user.created","data":"usr_1"}}`},
		{events.KindAuthPI, `{"id":"1","type":"event","data":{"id":"evt","type":"organization.member.added","data":{"user_id":"u"}}}`},
	}
	for _, c := range cases {
		if _, err := events.Parse(c.kind, "", []byte(c.body)); !errors.Is(err, events.ErrMalformed) {
			t.Errorf("%s %s: err = %v", c.kind, c.body, err)
		}
	}
}

func FuzzParseZitadel(f *testing.F) { fuzzKind(f, events.KindZitadel, "testdata/zitadel/*.json") }

func FuzzParseAuthPI(f *testing.F) { fuzzKind(f, events.KindAuthPI, "testdata/authpi/*.json") }

// fuzzKind checks, for any body, that the parsers of kind return an event or ErrMalformed, and
// that the receiver's envelope scan agrees with the full parse whenever the full parse succeeds.
func fuzzKind(f *testing.F, kind events.Kind, glob string) {
	files, _ := filepath.Glob(glob)
	for _, p := range files {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		ev, err := events.Parse(kind, "", body)
		if err != nil {
			if !errors.Is(err, events.ErrMalformed) {
				t.Fatalf("error does not wrap ErrMalformed: %v", err)
			}
			return
		}
		env, err := events.ParseEnvelope(kind, "", body)
		if err != nil || env != ev.Envelope {
			t.Fatalf("ParseEnvelope = %+v, %v; Parse = %+v", env, err, ev.Envelope)
		}
		if ev.ID == "" || ev.SourceType == "" {
			t.Fatalf("accepted an event without id or type: %+v", ev.Envelope)
		}
	})
}
