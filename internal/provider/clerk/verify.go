package clerk

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	svix "github.com/svix/svix-webhooks/go"

	"github.com/idpsync/idpsync/internal/events"
	"github.com/idpsync/idpsync/internal/webhook"
)

// Svix verifies Svix / Standard Webhooks signatures (Clerk). It reads the svix-* headers, or the
// webhook-* names when any svix-* header is absent, exactly as the Svix library does.
type Svix struct {
	hooks     []*svix.Webhook
	tolerance time.Duration
	now       func() time.Time
}

var _ webhook.Verifier = (*Svix)(nil)

// SvixConfig configures a Svix verifier.
type SvixConfig struct {
	// Secrets are the endpoint's signing secrets ("whsec_<base64>"); each is tried in turn so that a
	// secret can be rotated. At least one is required.
	Secrets []string
	// Tolerance is how far the signed timestamp may be from now, in either direction. Required
	// (the Standard Webhooks default is 5 minutes; the configuration sets it).
	Tolerance time.Duration
	// NowFunc returns the current time. Defaults to time.Now.
	NowFunc func() time.Time
}

// NewSvix returns a verifier for cfg. The error names the secret's position, never its value.
func NewSvix(cfg SvixConfig) (*Svix, error) {
	secrets := cfg.Secrets
	switch {
	case len(secrets) == 0:
		return nil, errors.New("at least one signing secret is required")
	case cfg.Tolerance <= 0:
		return nil, errors.New("the timestamp tolerance must be positive")
	}
	v := &Svix{tolerance: cfg.Tolerance, now: cfg.NowFunc}
	if v.now == nil {
		v.now = time.Now
	}
	for i, s := range secrets {
		wh, err := svix.NewWebhook(s)
		if err != nil {
			return nil, fmt.Errorf("signing secret %d is not a valid whsec_<base64> secret", i+1)
		}
		v.hooks = append(v.hooks, wh)
	}
	return v, nil
}

// Verify implements Verifier.
func (v *Svix) Verify(body []byte, h http.Header) (webhook.Delivery, error) {
	id, ts, sig := svixHeaders(h)
	switch {
	case id == "":
		return webhook.Delivery{}, fmt.Errorf("%w: svix-id", webhook.ErrMissingHeader)
	case events.CheckID(id) != nil:
		// The svix-id is the event id: it must be usable as one.
		return webhook.Delivery{}, fmt.Errorf("%w: svix-id: %w", webhook.ErrMalformedHeader, events.CheckID(id))
	case ts == "":
		return webhook.Delivery{}, fmt.Errorf("%w: svix-timestamp", webhook.ErrMissingHeader)
	case sig == "":
		return webhook.Delivery{}, fmt.Errorf("%w: svix-signature", webhook.ErrSignatureMissing)
	}
	secs, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return webhook.Delivery{}, fmt.Errorf("%w: svix-timestamp is not an integer", webhook.ErrMalformedHeader)
	}
	signedAt := time.Unix(secs, 0)
	if err := webhook.CheckFreshness(signedAt, v.now(), v.tolerance); err != nil {
		return webhook.Delivery{}, err
	}
	// The library checks its own fixed tolerance in Verify; ours is configurable and was applied
	// above, so only the signature is left to it.
	for _, wh := range v.hooks {
		if wh.VerifyIgnoringTimestamp(body, h) == nil {
			return webhook.Delivery{ID: id, Timestamp: signedAt}, nil
		}
	}
	return webhook.Delivery{}, webhook.ErrSignatureInvalid
}

// svixHeaders picks the header family the Svix library will read: svix-* when all three are
// present, else webhook-*. When neither family is complete it returns the more complete one (svix-*
// on a tie), so that the caller can name what is missing.
func svixHeaders(h http.Header) (id, ts, sig string) {
	// Canonical keys and map lookups: Header.Get would canonicalize (and allocate) on every call.
	id, ts, sig = first(h["Svix-Id"]), first(h["Svix-Timestamp"]), first(h["Svix-Signature"])
	if id != "" && ts != "" && sig != "" {
		return id, ts, sig
	}
	wid, wts, wsig := first(h["Webhook-Id"]), first(h["Webhook-Timestamp"]), first(h["Webhook-Signature"])
	if count(wid, wts, wsig) > count(id, ts, sig) {
		return wid, wts, wsig
	}
	return id, ts, sig
}

func first(values []string) string {
	if len(values) == 0 {
		return ""
	}
	return values[0]
}

func count(values ...string) int {
	n := 0
	for _, v := range values {
		if v != "" {
			n++
		}
	}
	return n
}

// SignSvix signs body as Svix does for Clerk and returns the three svix-* headers to send with it.
// With several secrets, the signature header carries one "v1,<sig>" entry per secret, as during a
// rotation.
func SignSvix(id string, ts time.Time, body []byte, secrets ...string) (http.Header, error) {
	if len(secrets) == 0 {
		return nil, errors.New("at least one signing secret is required")
	}
	var sig string
	for i, s := range secrets {
		wh, err := svix.NewWebhook(s)
		if err != nil {
			return nil, fmt.Errorf("signing secret %d is not a valid whsec_<base64> secret", i+1)
		}
		one, err := wh.Sign(id, ts, body)
		if err != nil {
			return nil, fmt.Errorf("signing: %w", err)
		}
		if sig != "" {
			sig += " "
		}
		sig += one
	}
	h := http.Header{}
	h.Set("svix-id", id)
	h.Set("svix-timestamp", strconv.FormatInt(ts.Unix(), 10))
	h.Set("svix-signature", sig)
	return h, nil
}
