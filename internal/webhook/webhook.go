// Package webhook is the contract of inbound webhook verification: a Verifier checks a delivery
// against its raw bytes and says what the delivery is, and its errors fall into a few classes
// (the sentinels below) that the receiver maps to HTTP statuses and metrics.
//
// The schemes themselves live with their providers (internal/provider/<kind>): Svix / Standard
// Webhooks for Clerk, ZITADEL-Signature for Zitadel, bearer tokens and body HMACs for AuthPI. Every
// scheme accepts several secrets at once so that secrets can be rotated without downtime, compares
// in constant time, and never puts a secret or a signature in an error.
package webhook

import (
	"errors"
	"net/http"
	"time"
)

// Verifier checks one delivery against the signature scheme of its source.
type Verifier interface {
	// Verify checks body, exactly as received, against the signature carried in h and returns the
	// delivery it describes. Errors wrap one of the sentinels below.
	Verify(body []byte, h http.Header) (Delivery, error)
}

// Delivery is what a verified request says about itself.
type Delivery struct {
	// ID is the sender's delivery id, stable across retries of the same message (svix-id). Empty
	// when the scheme carries none; the payload parser then derives the event id.
	ID string
	// Timestamp is when the sender signed this attempt. Zero when the scheme carries none.
	Timestamp time.Time
}

// The sentinel errors of verification. Each maps to one HTTP status in the receiver: the first two
// mean the request is malformed (400), the others that it is not authentic or not fresh (401).
var (
	ErrMissingHeader    = errors.New("required header missing")
	ErrMalformedHeader  = errors.New("malformed header")
	ErrSignatureMissing = errors.New("signature missing")
	ErrSignatureInvalid = errors.New("no matching signature")
	ErrTimestampTooOld  = errors.New("timestamp too old")
	ErrTimestampTooNew  = errors.New("timestamp too new")
)

// Reason names the failure class of a verification error, for logs and the
// idpsync_webhook_verification_failures_total metric. It never contains request data.
func Reason(err error) string {
	for _, r := range reasons {
		if errors.Is(err, r.err) {
			return r.name
		}
	}
	return "other"
}

var reasons = []struct {
	err  error
	name string
}{
	{ErrMissingHeader, "missing_header"},
	{ErrMalformedHeader, "malformed_header"},
	{ErrSignatureMissing, "missing_signature"},
	{ErrSignatureInvalid, "invalid_signature"},
	{ErrTimestampTooOld, "timestamp_too_old"},
	{ErrTimestampTooNew, "timestamp_too_new"},
}

// CheckFreshness applies a symmetric tolerance around now: ErrTimestampTooOld or
// ErrTimestampTooNew when ts is further than tolerance from now.
func CheckFreshness(ts, now time.Time, tolerance time.Duration) error {
	switch {
	case now.Sub(ts) > tolerance:
		return ErrTimestampTooOld
	case ts.Sub(now) > tolerance:
		return ErrTimestampTooNew
	}
	return nil
}

// All requires every verifier to accept the delivery (e.g. AuthPI's "bearer+signature"). The
// delivery returned is the first one that carries an id or a timestamp.
type All []Verifier

var _ Verifier = All(nil)

// Verify implements Verifier.
func (a All) Verify(body []byte, h http.Header) (Delivery, error) {
	var d Delivery
	for _, v := range a {
		got, err := v.Verify(body, h)
		if err != nil {
			return Delivery{}, err
		}
		if d == (Delivery{}) {
			d = got
		}
	}
	return d, nil
}
