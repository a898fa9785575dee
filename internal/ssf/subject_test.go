package ssf_test

import (
	"encoding/base64"
	"strings"
	"testing"
	"time"

	"github.com/idpsync/idpsync/internal/ssf"
)

func base64URL(s string) ([]byte, error) { return base64.RawURLEncoding.DecodeString(s) }

func TestSubjectValidate(t *testing.T) {
	t.Parallel()
	ok := []ssf.Subject{
		{Format: "email", Email: "ada@example.com"},
		{Format: "iss_sub", Iss: "https://idp.example.com", Sub: "u1"},
		{Format: "opaque", ID: "x"},
		{Format: "phone_number", PhoneNumber: "+12065550100"},
		{Format: "account", URI: "acct:ada@example.com"},
		{Format: "complex", User: &ssf.Subject{Format: "email", Email: "ada@example.com"}, Tenant: &ssf.Subject{Format: "opaque", ID: "t"}},
	}
	for _, s := range ok {
		if err := s.Validate(); err != nil {
			t.Errorf("Validate(%s) = %v", s.Key(), err)
		}
	}
	bad := []ssf.Subject{
		{},
		{Format: "email"},
		{Format: "email", Email: "not an email"},
		{Format: "email", Email: "a@example.com", ID: "x"},
		{Format: "iss_sub", Iss: "https://idp.example.com"},
		{Format: "opaque", ID: strings.Repeat("x", 513)},
		{Format: "opaque", ID: "a\nb"},
		{Format: "account", URI: "mailto:a@example.com"},
		{Format: "did", URI: "did:example:1"},
		{Format: "complex"},
		{Format: "complex", ID: "x", User: &ssf.Subject{Format: "opaque", ID: "u"}},
		{Format: "complex", User: &ssf.Subject{Format: "complex", User: &ssf.Subject{Format: "opaque", ID: "u"}}},
		{Format: "opaque", ID: "x", User: &ssf.Subject{Format: "opaque", ID: "u"}},
	}
	for _, s := range bad {
		if err := s.Validate(); err == nil {
			t.Errorf("Validate(%s) accepted an invalid subject", s.Key())
		}
	}
}

// TestCovers: which subjects added to a stream concern which events.
func TestCovers(t *testing.T) {
	t.Parallel()
	user := ssf.User{Issuer: "https://idp.example.com", ID: "u1", Email: "Ada@Example.com"}
	email := func(e string) ssf.Subject { return ssf.Subject{Format: "email", Email: e} }
	issSub := func(sub string) ssf.Subject {
		return ssf.Subject{Format: "iss_sub", Iss: "https://idp.example.com", Sub: sub}
	}
	opaque := func(id string) ssf.Subject { return ssf.Subject{Format: "opaque", ID: id} }
	complexOf := func(u, s, tenant *ssf.Subject) ssf.Subject {
		return ssf.Subject{Format: "complex", User: u, Session: s, Tenant: tenant}
	}
	p := func(s ssf.Subject) *ssf.Subject { return &s }
	disabled := ssf.AccountDisabled(user, "")
	revoked := ssf.SessionRevoked(user, "sess_1", time.Now(), ssf.InitiatorPolicy, "r")
	renamed := ssf.IdentifierChanged(user, "ada@old.example", "ada@new.example")
	cases := []struct {
		name    string
		ev      ssf.Event
		subject ssf.Subject
		want    bool
	}{
		{"the user's iss_sub", disabled, issSub("u1"), true},
		{"the user's email, in another case", disabled, email("ada@example.COM"), true},
		{"another user", disabled, issSub("u2"), false},
		{"another issuer", disabled, ssf.Subject{Format: "iss_sub", Iss: "https://other.example.com", Sub: "u1"}, false},
		{"the user covers their sessions", revoked, email("ada@example.com"), true},
		{"the session itself", revoked, opaque("sess_1"), true},
		{"another session", revoked, opaque("sess_2"), false},
		{"complex: user and session", revoked, complexOf(p(issSub("u1")), p(opaque("sess_1")), nil), true},
		{"complex: the user, another session", revoked, complexOf(p(issSub("u1")), p(opaque("sess_2")), nil), false},
		{"complex: user only, less restrictive", revoked, complexOf(p(email("ada@example.com")), nil, nil), true},
		{"complex: user and a tenant the event does not name", disabled, complexOf(p(issSub("u1")), nil, p(opaque("t1"))), true},
		{"complex: a session against an account event", disabled, complexOf(nil, p(opaque("sess_1")), nil), false},
		{"identifier changed: the old email", renamed, email("ada@old.example"), true},
		{"identifier changed: the user", renamed, issSub("u1"), true},
		{"identifier changed: the new email is not the subject", renamed, email("ada@new.example"), false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := c.ev.Covers(c.subject); got != c.want {
				t.Fatalf("Covers = %v, want %v", got, c.want)
			}
			if c.want && !overlap(c.ev.MatchKeys(), c.subject.MatchKeys()) {
				t.Fatalf("a covering subject's match keys %v do not overlap the event's %v: the store's index would miss it", c.subject.MatchKeys(), c.ev.MatchKeys())
			}
		})
	}
}

func overlap(a, b []string) bool {
	for _, x := range a {
		for _, y := range b {
			if x == y {
				return true
			}
		}
	}
	return false
}
