package authpi_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/idpsync/idpsync/internal/events"
	"github.com/idpsync/idpsync/internal/provider"
	"github.com/idpsync/idpsync/internal/provider/authpi"
	"github.com/idpsync/idpsync/internal/provider/providertest"
)

func TestParseAuthPI(t *testing.T) {
	t.Parallel()
	ev, err := authpi.Parse("", providertest.ReadFile(t, "testdata/webhooks/user.updated.json"))
	if err != nil {
		t.Fatal(err)
	}
	u := ev.User
	if ev.ID != "evt_01HZX" || ev.Type != events.UserUpdated || u.ID != "usr_01" || !u.Banned ||
		u.PrimaryEmail != "ada@example.com" || u.Version != time.Date(2026, 11, 24, 9, 59, 59, 123456000, time.UTC).UnixMicro() {
		t.Fatalf("event = %+v, user = %+v", ev.Envelope, u)
	}
	ev, err = authpi.Parse("", providertest.ReadFile(t, "testdata/webhooks/organization.member.removed.json"))
	if err != nil {
		t.Fatal(err)
	}
	if m := ev.Membership; m.OrganizationID != "org_01" || m.UserID != "usr_01" || !m.Deleted ||
		m.Version != time.Date(2026, 11, 24, 10, 5, 0, 0, time.UTC).UnixMicro() {
		t.Fatalf("membership = %+v", m)
	}
}

// Payloads that verify but cannot be read are malformed, never an event.
func TestParseMalformed(t *testing.T) {
	t.Parallel()
	for _, body := range []string{
		`{"id":"1","type":"event","data":{"id":"evt","subject":{}}}`,
		`{"id":"1","type":"event","data":{"id":"evt","type":"user.created","data":"usr_1"}}`,
		`{"id":"1","type":"event","data":{"id":"evt","type":"organization.member.added","data":{"user_id":"u"}}}`,
	} {
		if _, err := authpi.Parse("", []byte(body)); !errors.Is(err, events.ErrMalformed) {
			t.Errorf("%s: err = %v", body, err)
		}
	}
}

// The parsers face the internet behind a signature, which only proves who sent the bytes.
func FuzzParseAuthPI(f *testing.F) {
	p, ok := provider.Lookup(authpi.Kind)
	if !ok {
		f.Fatal("authpi is not registered")
	}
	providertest.FuzzParsers(f, p.Webhook, "testdata/webhooks/*.json")
}

// An id that cannot be recorded (NUL, invalid UTF-8, too long) makes the payload malformed: the
// receiver refuses it with a 400 and, should one reach the worker, it is a dead letter.
func TestParseRefusesUnusableIDs(t *testing.T) {
	t.Parallel()
	for name, id := range map[string]string{"NUL": `nul\u0000id`, "too long": strings.Repeat("x", events.MaxIDLen+1)} {
		body := `{"id":"ce1","type":"event","time":"2024-01-01T03:21:36Z","data":{"id":"` + id + `","type":"user.created","data":{"id":"usr_1","status":"active","updated_at":"2024-01-01T03:21:36Z"}}}`
		if _, err := authpi.ParseEnvelope("", []byte(body)); !errors.Is(err, events.ErrMalformed) {
			t.Errorf("%s event id: ParseEnvelope err = %v", name, err)
		}
		if _, err := authpi.Parse("", []byte(body)); !errors.Is(err, events.ErrMalformed) {
			t.Errorf("%s event id: Parse err = %v", name, err)
		}
		body = `{"id":"ce1","type":"event","time":"2024-01-01T03:21:36Z","data":{"id":"evt_1","type":"user.created","data":{"id":"` + id + `","status":"active","updated_at":"2024-01-01T03:21:36Z"}}}`
		if _, err := authpi.Parse("", []byte(body)); !errors.Is(err, events.ErrMalformed) {
			t.Errorf("%s user id: Parse err = %v", name, err)
		}
	}
}
