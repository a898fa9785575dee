package clerk_test

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/idpsync/idpsync/internal/events"
	"github.com/idpsync/idpsync/internal/provider"
	"github.com/idpsync/idpsync/internal/provider/clerk"
	"github.com/idpsync/idpsync/internal/provider/providertest"
)

// Every example of Clerk's published webhook spec parses: known types into their entity, the rest
// into an envelope without a canonical type.
func TestParseClerkSpecExamples(t *testing.T) {
	t.Parallel()
	files, err := filepath.Glob("testdata/webhooks/*.json")
	if err != nil || len(files) != 45 {
		t.Fatalf("want the 45 examples of webhooks-2025-04-15.yml, got %d (%v)", len(files), err)
	}
	for _, f := range files {
		sourceType := strings.TrimSuffix(filepath.Base(f), ".json")
		t.Run(sourceType, func(t *testing.T) {
			body := providertest.ReadFile(t, f)
			ev, err := clerk.Parse("msg_1", body)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if ev.SourceType != sourceType || ev.ID != "msg_1" {
				t.Fatalf("envelope = %+v", ev.Envelope)
			}
			if want := time.Unix(1716883200, 0).UTC(); !ev.OccurredAt.Equal(want) {
				t.Errorf("OccurredAt = %v, want %v (the examples' seconds timestamp)", ev.OccurredAt, want)
			}
			set := 0
			for _, p := range []bool{ev.User != nil, ev.Organization != nil, ev.Membership != nil, ev.Session != nil} {
				if p {
					set++
				}
			}
			wantSet := 1
			if ev.Type == "" {
				wantSet = 0
			}
			if set != wantSet {
				t.Fatalf("type %q has %d entities set, want %d", ev.Type, set, wantSet)
			}
			env, err := clerk.ParseEnvelope("msg_1", body)
			if err != nil || env != ev.Envelope {
				t.Fatalf("ParseEnvelope = %+v, %v; Parse gave %+v", env, err, ev.Envelope)
			}
		})
	}
}

func TestParseClerkEntities(t *testing.T) {
	t.Parallel()
	parse := func(t *testing.T, name string) events.Event {
		t.Helper()
		ev, err := clerk.Parse("msg_1", providertest.ReadFile(t, "testdata/webhooks/"+name+".json"))
		if err != nil {
			t.Fatal(err)
		}
		return ev
	}

	t.Run("user.updated", func(t *testing.T) {
		ev := parse(t, "user.updated")
		u := ev.User
		if ev.Type != events.UserUpdated || u.ID != "user_2g7np7Hrk0SN6kj5EDMLDaKNL0S" || u.Deleted {
			t.Fatalf("got %+v %+v", ev.Envelope, u)
		}
		if u.Version != 1716883500000 || !u.UpdatedAt.Equal(time.UnixMilli(1716883500000)) {
			t.Errorf("version %d, updated_at %v; want updated_at in ms", u.Version, u.UpdatedAt)
		}
		if len(u.Raw) == 0 || u.Raw[0] != '{' {
			t.Errorf("raw = %q", u.Raw)
		}
	})
	t.Run("user.deleted is versioned by the event time", func(t *testing.T) {
		u := parse(t, "user.deleted").User
		if !u.Deleted || u.ID != "user_2g7np7Hrk0SN6kj5EDMLDaKNL0S" || u.Version != 1716883200000 {
			t.Fatalf("got %+v", u)
		}
	})
	t.Run("organization.deleted", func(t *testing.T) {
		o := parse(t, "organization.deleted").Organization
		if !o.Deleted || o.ID != "org_2g7np7Hrk0SN6kj5EDMLDaKNL0S" || o.Slug != "acme-corp" {
			t.Fatalf("got %+v", o)
		}
	})
	t.Run("organizationMembership.created", func(t *testing.T) {
		ev := parse(t, "organizationMembership.created")
		m := ev.Membership
		if ev.Type != events.MembershipCreated || m.OrganizationID != "org_2g7np7Hrk0SN6kj5EDMLDaKNL0S" ||
			m.UserID != "user_2h8op3Isl1QR7tKu5FGNfaLKEoU" || m.Role != "org:member" || len(m.Permissions) != 2 || m.Deleted {
			t.Fatalf("got %+v", m)
		}
	})
	t.Run("organizationMembership.deleted", func(t *testing.T) {
		m := parse(t, "organizationMembership.deleted").Membership
		if !m.Deleted || m.UserID != "user_2h8op3Isl1QR7tKu5FGNfaLKEoU" {
			t.Fatalf("got %+v", m)
		}
	})
	t.Run("session.revoked", func(t *testing.T) {
		ev := parse(t, "session.revoked")
		if ev.Type != events.SessionRevoked || ev.Session.UserID != "user_2g7np7Hrk0SN6kj5EDMLDaKNL0S" || ev.Session.Status != "revoked" {
			t.Fatalf("got %+v", ev.Session)
		}
	})
	t.Run("unknown types are not errors", func(t *testing.T) {
		ev := parse(t, "email.created")
		if ev.Type != "" || ev.SourceType != "email.created" {
			t.Fatalf("got %+v", ev.Envelope)
		}
	})
}

// The example from Clerk's webhook overview uses a millisecond envelope timestamp and has a primary
// email address.
func TestParseClerkMillisecondTimestampAndPrimaryEmail(t *testing.T) {
	t.Parallel()
	body := `{"data":{"id":"user_29w83sxmDNGwOuEthce5gg56FcC","object":"user","created_at":1654012591514,
	"updated_at":1654012591835,"first_name":"Example","last_name":"Example","external_id":"567772",
	"username":null,"primary_email_address_id":"idn_2",
	"email_addresses":[{"id":"idn_1","email_address":"old@example.org"},{"id":"idn_2","email_address":"example@example.org"}]},
	"instance_id":"ins_29w83yT7CwllvXylYLxcslj88O9","object":"event","timestamp":1654012591835,"type":"user.created"}`
	ev, err := clerk.Parse("msg_2", []byte(body))
	if err != nil {
		t.Fatal(err)
	}
	if want := time.UnixMilli(1654012591835).UTC(); !ev.OccurredAt.Equal(want) {
		t.Errorf("OccurredAt = %v, want %v", ev.OccurredAt, want)
	}
	u := ev.User
	if u.PrimaryEmail != "example@example.org" || len(u.Emails) != 2 || u.ExternalID != "567772" || u.Username != "" {
		t.Errorf("user = %+v", u)
	}
}

// A user's credentials are read when the payload says them, and left unknown when it does not.
func TestParseClerkCredentials(t *testing.T) {
	t.Parallel()
	u, err := clerk.ParseUser([]byte(`{"id":"user_1","updated_at":2,"password_enabled":true,"password_last_updated_at":1716883200000,"totp_enabled":true}`))
	if err != nil {
		t.Fatal(err)
	}
	want := events.Credentials{Password: true, PasswordChangedAt: time.UnixMilli(1716883200000).UTC(), TOTP: true}
	if u.Credentials == nil || *u.Credentials != want {
		t.Errorf("credentials = %+v, want %+v", u.Credentials, want)
	}
	if u, err := clerk.ParseUser([]byte(`{"id":"user_1","updated_at":2,"password_enabled":false,"password_last_updated_at":null}`)); err != nil ||
		u.Credentials == nil || *u.Credentials != (events.Credentials{}) {
		t.Errorf("no password: %+v %v", u.Credentials, err)
	}
	if u, err := clerk.ParseUser([]byte(`{"id":"user_1","updated_at":2}`)); err != nil || u.Credentials != nil {
		t.Errorf("a payload without them: %+v %v", u.Credentials, err)
	}
}

func TestParseClerkMalformed(t *testing.T) {
	t.Parallel()
	cases := map[string]struct{ id, body string }{
		"not json":                    {"msg", `{"type":`},
		"not an object":               {"msg", `[1,2]`},
		"no type":                     {"msg", `{"data":{"id":"user_1"},"timestamp":1}`},
		"no delivery id":              {"", `{"type":"user.created","data":{"id":"user_1"},"timestamp":1}`},
		"data not an object":          {"msg", `{"type":"user.created","data":"user_1","timestamp":1}`},
		"data missing":                {"msg", `{"type":"user.updated","timestamp":1}`},
		"user without id":             {"msg", `{"type":"user.created","data":{"first_name":"A"},"timestamp":1}`},
		"wrong field type":            {"msg", `{"type":"user.created","data":{"id":"user_1","updated_at":"yesterday"},"timestamp":1}`},
		"membership without org":      {"msg", `{"type":"organizationMembership.created","data":{"public_user_data":{"user_id":"u"}},"timestamp":1}`},
		"membership without user":     {"msg", `{"type":"organizationMembership.created","data":{"organization":{"id":"o"}},"timestamp":1}`},
		"deletion without timestamp":  {"msg", `{"type":"user.deleted","data":{"id":"user_1","deleted":true}}`},
		"deletion without id":         {"msg", `{"type":"organization.deleted","data":{"deleted":true},"timestamp":1}`},
		"session without id":          {"msg", `{"type":"session.created","data":{"user_id":"u"},"timestamp":1}`},
		"timestamp not an integer":    {"msg", `{"type":"user.created","data":{"id":"u"},"timestamp":"now"}`},
		"type of the wrong json kind": {"msg", `{"type":7,"data":{"id":"u"},"timestamp":1}`},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := clerk.Parse(c.id, []byte(c.body))
			if !errors.Is(err, events.ErrMalformed) {
				t.Fatalf("err = %v, want ErrMalformed", err)
			}
		})
	}
}

// The parsers face the internet behind a signature, which only proves who sent the bytes.
func FuzzParseClerk(f *testing.F) {
	p, ok := provider.Lookup(clerk.Kind)
	if !ok {
		f.Fatal("clerk is not registered")
	}
	f.Add("", []byte(`{"type":"user.deleted","data":{"id":"u","deleted":true},"timestamp":1e400}`))
	providertest.FuzzParsers(f, p.Webhook, "testdata/webhooks/*.json", "msg_1")
}
