package ssf

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/mail"
	"strings"
	"unicode/utf8"
)

// Subject identifier formats (RFC 9493) this transmitter sends or accepts from receivers.
const (
	FormatEmail       = "email"
	FormatIssSub      = "iss_sub"
	FormatOpaque      = "opaque"
	FormatPhoneNumber = "phone_number"
	FormatAccount     = "account"
	FormatComplex     = "complex"
)

// maxIdentifierLen bounds every string of a subject taken from the network.
const maxIdentifierLen = 512

// Subject is a subject identifier (RFC 9493), simple or complex (SSF 1.0 §3.3). A simple subject
// has a format and that format's members; a complex one has format "complex" and simple subjects
// as members.
type Subject struct {
	Format      string `json:"format"`
	Email       string `json:"email,omitempty"`
	Iss         string `json:"iss,omitempty"`
	Sub         string `json:"sub,omitempty"`
	ID          string `json:"id,omitempty"`
	PhoneNumber string `json:"phone_number,omitempty"`
	URI         string `json:"uri,omitempty"`

	User        *Subject `json:"user,omitempty"`
	Device      *Subject `json:"device,omitempty"`
	Session     *Subject `json:"session,omitempty"`
	Application *Subject `json:"application,omitempty"`
	Tenant      *Subject `json:"tenant,omitempty"`
	OrgUnit     *Subject `json:"org_unit,omitempty"`
	Group       *Subject `json:"group,omitempty"`
}

// complexMembers returns the members of a complex subject by name.
func (s Subject) complexMembers() map[string]*Subject {
	m := map[string]*Subject{}
	for name, v := range map[string]*Subject{"user": s.User, "device": s.Device, "session": s.Session,
		"application": s.Application, "tenant": s.Tenant, "org_unit": s.OrgUnit, "group": s.Group} {
		if v != nil {
			m[name] = v
		}
	}
	return m
}

func boundedString(name, v string) error {
	switch {
	case v == "":
		return fmt.Errorf("%s is required", name)
	case len(v) > maxIdentifierLen:
		return fmt.Errorf("%s is longer than %d bytes", name, maxIdentifierLen)
	case !utf8.ValidString(v) || strings.ContainsFunc(v, func(r rune) bool { return r < 0x20 || r == 0x7f }):
		return fmt.Errorf("%s must be printable UTF-8", name)
	}
	return nil
}

// Validate reports whether s is a subject this transmitter understands: a simple subject of a
// supported format with exactly that format's members, or a complex subject whose members are
// such simple subjects.
func (s Subject) Validate() error {
	if s.Format == FormatComplex {
		if s.Email != "" || s.Iss != "" || s.Sub != "" || s.ID != "" || s.PhoneNumber != "" || s.URI != "" {
			return errors.New("a complex subject holds only subjects (user, session, tenant, …)")
		}
		members := s.complexMembers()
		if len(members) == 0 {
			return errors.New("a complex subject needs at least one member")
		}
		for name, m := range members {
			if m.Format == FormatComplex {
				return fmt.Errorf("%s: a complex subject's members must be simple subjects", name)
			}
			if err := m.Validate(); err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
		}
		return nil
	}
	if len(s.complexMembers()) > 0 {
		return fmt.Errorf("a %q subject cannot have members; use format \"complex\"", s.Format)
	}
	var err error
	switch s.Format {
	case FormatEmail:
		if err = boundedString("email", s.Email); err == nil {
			if _, perr := mail.ParseAddress(s.Email); perr != nil || strings.ContainsAny(s.Email, "<> ") {
				err = errors.New("email is not an email address")
			}
		}
		err = errors.Join(err, none(s.Iss, s.Sub, s.ID, s.PhoneNumber, s.URI))
	case FormatIssSub:
		err = errors.Join(boundedString("iss", s.Iss), boundedString("sub", s.Sub), none(s.Email, s.ID, s.PhoneNumber, s.URI))
	case FormatOpaque:
		err = errors.Join(boundedString("id", s.ID), none(s.Email, s.Iss, s.Sub, s.PhoneNumber, s.URI))
	case FormatPhoneNumber:
		err = errors.Join(boundedString("phone_number", s.PhoneNumber), none(s.Email, s.Iss, s.Sub, s.ID, s.URI))
	case FormatAccount:
		err = boundedString("uri", s.URI)
		if err == nil && !strings.HasPrefix(s.URI, "acct:") {
			err = errors.New(`uri must be an "acct:" URI`)
		}
		err = errors.Join(err, none(s.Email, s.Iss, s.Sub, s.ID, s.PhoneNumber))
	case "":
		return errors.New("format is required")
	default:
		if len(s.Format) > 64 {
			return errors.New("format is not supported")
		}
		return fmt.Errorf("format %q is not supported; use email, iss_sub, opaque, phone_number, account or complex", s.Format)
	}
	return err
}

func none(values ...string) error {
	for _, v := range values {
		if v != "" {
			return errors.New("members of another format are present")
		}
	}
	return nil
}

// canonical returns the simple subject s in the form used to compare subjects: emails are
// compared without regard to case (RFC 9493 leaves it to the parties; mailbox providers treat
// them so).
func (s Subject) canonical() Subject {
	if s.Format == FormatEmail {
		s.Email = strings.ToLower(s.Email)
	}
	return s
}

// Key is the canonical form of s as a string: two subjects are identical when their keys are.
func (s Subject) Key() string {
	c := s.canonical()
	if s.Format == FormatComplex {
		c = Subject{Format: FormatComplex}
		for name, m := range s.complexMembers() {
			mc := m.canonical()
			c.setMember(name, &mc)
		}
	}
	b, _ := json.Marshal(c) // a struct of strings: cannot fail; field order is fixed
	return string(b)
}

func (s *Subject) setMember(name string, m *Subject) {
	switch name {
	case "user":
		s.User = m
	case "device":
		s.Device = m
	case "session":
		s.Session = m
	case "application":
		s.Application = m
	case "tenant":
		s.Tenant = m
	case "org_unit":
		s.OrgUnit = m
	case "group":
		s.Group = m
	}
}

// MatchKeys are the keys under which a subject a receiver added is indexed (the store keeps them
// in an array with a GIN index): a simple subject's own key; for a complex one, "<member>=<key>"
// of each member. An event's MatchKeys overlap them whenever the event may concern the subject;
// Covers decides.
func (s Subject) MatchKeys() []string {
	if s.Format != FormatComplex {
		return []string{s.Key()}
	}
	var keys []string
	for name, m := range s.complexMembers() {
		keys = append(keys, name+"="+m.Key())
	}
	return keys
}

// MatchKeys are the keys of every identifier of e's subject principal, plain and by member name;
// a subject a receiver added may concern e only if its MatchKeys share one with these.
func (e Event) MatchKeys() []string {
	var keys []string
	for name, ids := range e.members {
		for _, id := range ids {
			keys = append(keys, id.Key(), name+"="+id.Key())
		}
	}
	if len(e.members) == 0 {
		keys = append(keys, e.Subject.Key())
	}
	return keys
}

// Covers reports whether a subject a receiver added to its stream concerns e, by SSF 1.0's
// subject matching (§8.1.3.1) extended to every identifier idpsync knows of the principal:
//
//   - a simple subject covers e when it is identical to any identifier of e's principal (the
//     user's iss_sub or email, the session's id): a receiver that added a user's email receives
//     that user's session-revoked events;
//   - a complex subject covers e when, for every member both define, the subject's member is
//     identical to one of e's identifiers for that member, and they share at least one member.
//
// The last condition departs from the letter of SSF 1.0, under which two complex subjects with
// no member in common match: a subject naming only a tenant would then cover every event.
func (e Event) Covers(s Subject) bool {
	members := e.members
	if len(members) == 0 {
		members = map[string][]Subject{"": {e.Subject}}
	}
	same := func(a Subject, ids []Subject) bool {
		k := a.Key()
		for _, id := range ids {
			if id.Key() == k {
				return true
			}
		}
		return false
	}
	if s.Format != FormatComplex {
		for _, ids := range members {
			if same(s, ids) {
				return true
			}
		}
		return false
	}
	shared := 0
	for name, m := range s.complexMembers() {
		ids, ok := members[name]
		if !ok {
			continue
		}
		if !same(*m, ids) {
			return false
		}
		shared++
	}
	return shared > 0
}
