package events

import (
	"errors"
	"fmt"
	"unicode"
	"unicode/utf8"
)

// MaxIDLen bounds every id idpsync takes from the network: a delivery id (svix-id), an event id
// derived from a payload, an entity id. An event id becomes part of a primary key, of the
// JetStream message id (Nats-Msg-Id) and of a NATS header, so it must be short and printable.
const MaxIDLen = 256

// ErrInvalidID is wrapped by CheckID's errors.
var ErrInvalidID = errors.New("invalid id")

// CheckID reports whether id can identify an event or an entity: 1 to MaxIDLen bytes of valid
// UTF-8 without control characters (no NUL, no line breaks) or other unprintable runes. The error
// says what is wrong without repeating the id, which may be large or hostile.
func CheckID(id string) error {
	switch {
	case id == "":
		return fmt.Errorf("%w: empty", ErrInvalidID)
	case len(id) > MaxIDLen:
		return fmt.Errorf("%w: %d bytes, more than %d", ErrInvalidID, len(id), MaxIDLen)
	}
	for i, r := range id {
		switch {
		case r == utf8.RuneError && isBadRune(id[i:]):
			return fmt.Errorf("%w: not valid UTF-8 at byte %d", ErrInvalidID, i)
		case !unicode.IsPrint(r):
			return fmt.Errorf("%w: unprintable character U+%04X at byte %d", ErrInvalidID, r, i)
		}
	}
	return nil
}

// isBadRune reports whether s starts with an invalid UTF-8 sequence (rather than an encoded
// U+FFFD, which is valid).
func isBadRune(s string) bool {
	_, size := utf8.DecodeRuneInString(s)
	return size <= 1
}

// CheckIDs checks, with CheckID, the event's id and the ids of the entity it carries; the error
// wraps ErrMalformed and ErrInvalidID (a parser returns it: the payload cannot be recorded).
func CheckIDs(ev Event) error {
	check := func(what, id string) error {
		if err := CheckID(id); err != nil {
			return MalformedID(what, err)
		}
		return nil
	}
	errs := []error{check("event id", ev.ID)}
	switch {
	case ev.User != nil:
		errs = append(errs, check("user id", ev.User.ID))
	case ev.Organization != nil:
		errs = append(errs, check("organization id", ev.Organization.ID))
	case ev.Membership != nil:
		errs = append(errs, check("membership's organization id", ev.Membership.OrganizationID), check("membership's user id", ev.Membership.UserID))
	case ev.Session != nil:
		errs = append(errs, check("session id", ev.Session.ID))
	}
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// MalformedID is a parser's error for an id that cannot be recorded (err, from CheckID): it wraps
// ErrMalformed and ErrInvalidID, so that the receiver refuses the delivery (400) rather than
// keeping it as a dead letter.
func MalformedID(what string, err error) error {
	return fmt.Errorf("%w: %s: %w", ErrMalformed, what, err)
}
