// Package providertest holds the checks every provider's parsers and clients pass, for the
// providers' own tests.
package providertest

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/idpsync/idpsync/internal/events"
	"github.com/idpsync/idpsync/internal/provider"
)

// ReadFile returns the contents of a test file, failing the test when it cannot be read.
func ReadFile(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// FuzzParsers fuzzes a provider's webhook parsers from the payloads matching glob (and
// deliveryIDs, tried with each). Whatever the body, the parsers return an event or an error
// wrapping events.ErrMalformed, never panic, and agree: the cheap envelope read of the receiver
// equals the full parse's envelope. An accepted event has a usable id (events.CheckID), a source
// type, and the entity its canonical type names, with usable ids.
func FuzzParsers(f *testing.F, w *provider.Webhook, glob string, deliveryIDs ...string) {
	files, _ := filepath.Glob(glob)
	if len(files) == 0 {
		f.Fatalf("no seed payloads match %s", glob)
	}
	if len(deliveryIDs) == 0 {
		deliveryIDs = []string{""}
	}
	for _, p := range files {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		for _, id := range deliveryIDs {
			f.Add(id, b)
		}
	}
	f.Fuzz(func(t *testing.T, id string, body []byte) {
		ev, err := w.ParseFunc(id, body)
		if err != nil {
			if !errors.Is(err, events.ErrMalformed) {
				t.Fatalf("error does not wrap ErrMalformed: %v", err)
			}
			return
		}
		env, err := w.ParseEnvelopeFunc(id, body)
		if err != nil || env != ev.Envelope {
			t.Fatalf("ParseEnvelope = %+v, %v; Parse = %+v", env, err, ev.Envelope)
		}
		if err := events.CheckID(ev.ID); err != nil || ev.SourceType == "" {
			t.Fatalf("accepted an event without a usable id (%v) or without a type: %+v", err, ev.Envelope)
		}
		CheckEntityIDs(t, ev)
	})
}

// CheckEntityIDs fails t when the event lacks the entity its type names or an id of it is not
// usable (events.CheckID).
func CheckEntityIDs(t testing.TB, ev events.Event) {
	t.Helper()
	var ids []string
	switch ev.Type.Entity() {
	case events.EntityUser:
		if ev.User == nil {
			t.Fatalf("user event without a user")
		}
		ids = []string{ev.User.ID}
	case events.EntityOrganization:
		if ev.Organization == nil {
			t.Fatalf("organization event without an organization")
		}
		ids = []string{ev.Organization.ID}
	case events.EntityMembership:
		if ev.Membership == nil {
			t.Fatalf("membership event without a membership")
		}
		ids = []string{ev.Membership.OrganizationID, ev.Membership.UserID}
	case events.EntitySession:
		if ev.Session == nil {
			t.Fatalf("session event without a session")
		}
		ids = []string{ev.Session.ID}
	}
	for _, id := range ids {
		if err := events.CheckID(id); err != nil {
			t.Fatalf("%s event with an unusable entity id: %v", ev.Type, err)
		}
	}
}
