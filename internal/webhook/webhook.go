// Package webhook verifies inbound webhook deliveries against their raw bytes, one Verifier per
// signature scheme, and signs deliveries the same way the identity providers do (for tests, the fake
// IdPs and the demo sender).
//
// Schemes:
//   - Svix / Standard Webhooks (Clerk): svix-id, svix-timestamp, svix-signature, or the webhook-*
//     names; HMAC-SHA256, verified with github.com/svix/svix-webhooks/go.
//   - Zitadel Actions v2: ZITADEL-Signature: t=<unix>,v1=<hex HMAC-SHA256 of "<t>.<body>">.
//   - Bearer: a shared token in the Authorization header (AuthPI "bearer", ZeroID relays).
//   - HMAC: X-Webhook-Signature: <hex HMAC-SHA256 of the body> (AuthPI "signature").
//
// Every scheme accepts several secrets at once so that secrets can be rotated without downtime,
// compares in constant time, and never puts a secret or a signature in an error.
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

// MaxDeliveryIDLen bounds the delivery id a sender may give us: it becomes part of a primary key
// and of the JetStream message id.
const MaxDeliveryIDLen = 256

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

// checkFreshness applies a symmetric tolerance around now.
func checkFreshness(ts, now time.Time, tolerance time.Duration) error {
	switch {
	case now.Sub(ts) > tolerance:
		return ErrTimestampTooOld
	case ts.Sub(now) > tolerance:
		return ErrTimestampTooNew
	}
	return nil
}

func nonEmpty(secrets []string) []string {
	out := make([]string, 0, len(secrets))
	for _, s := range secrets {
		if s != "" {
			out = append(out, s)
		}
	}
	return out
}
