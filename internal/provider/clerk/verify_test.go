package clerk_test

import (
	"errors"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/idpsync/idpsync/internal/events"
	"github.com/idpsync/idpsync/internal/provider/clerk"
	"github.com/idpsync/idpsync/internal/webhook"
)

// Standard Webhooks test vectors (standard-webhooks/standard-webhooks libraries/*/webhook_test,
// svix-webhooks go/webhook_test.go), checked at now = the signed timestamp.
var vectors = []struct {
	name, secret, id string
	ts               int64
	payload, sig     string
}{
	{"A", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330,
		`{"test": 2432232314}`, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="},
	{"B", "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD", "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk", 1649367553,
		`{"email":"test@example.com","username":"test_user"}`, "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw="},
}

func svixHeaders(id string, ts int64, sig string) http.Header {
	h := http.Header{}
	h.Set("svix-id", id)
	h.Set("svix-timestamp", strconv.FormatInt(ts, 10))
	h.Set("svix-signature", sig)
	return h
}

func newSvix(t testing.TB, now int64, secrets ...string) *clerk.Svix {
	t.Helper()
	v, err := clerk.NewSvix(clerk.SvixConfig{
		Secrets:   secrets,
		Tolerance: 5 * time.Minute,
		NowFunc:   func() time.Time { return time.Unix(now, 0) },
	})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestSvixVectors(t *testing.T) {
	t.Parallel()
	for _, vec := range vectors {
		t.Run(vec.name, func(t *testing.T) {
			// Signing reproduces the vector.
			h, err := clerk.SignSvix(vec.id, time.Unix(vec.ts, 0), []byte(vec.payload), vec.secret)
			if err != nil {
				t.Fatal(err)
			}
			if got := h.Get("svix-signature"); got != vec.sig {
				t.Fatalf("SignSvix = %q, want %q", got, vec.sig)
			}
			v := newSvix(t, vec.ts, vec.secret)
			d, err := v.Verify([]byte(vec.payload), svixHeaders(vec.id, vec.ts, vec.sig))
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			if d.ID != vec.id || d.Timestamp.Unix() != vec.ts {
				t.Fatalf("delivery = %+v", d)
			}
		})
	}
}

func TestSvixRejects(t *testing.T) {
	t.Parallel()
	a := vectors[0]
	valid := a.sig
	cases := []struct {
		name    string
		payload string
		sig     string
		ts      int64
		want    error
	}{
		{"invalid signature", a.payload, "v1,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc=", a.ts, webhook.ErrSignatureInvalid},
		{"partial signature", a.payload, "v1,", a.ts, webhook.ErrSignatureInvalid},
		{"truncated signature", a.payload, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLawdd", a.ts, webhook.ErrSignatureInvalid},
		{"only a v2 entry", a.payload, "v2," + strings.TrimPrefix(valid, "v1,"), a.ts, webhook.ErrSignatureInvalid},
		// Re-serialised JSON (minified) must fail: verification is over the raw bytes.
		{"re-serialised payload", `{"test":2432232314}`, valid, a.ts, webhook.ErrSignatureInvalid},
		{"tampered payload", `{"test": 2432232315}`, valid, a.ts, webhook.ErrSignatureInvalid},
		// Derived vector: the same payload signed at ts+1 must not verify at ts.
		{"signature of another timestamp", a.payload, "v1,l6C9/1+N/lSU6+gfh+YEGqTK2aQ+k8nMEWDvvCgHh7U=", a.ts, webhook.ErrSignatureInvalid},
	}
	v := newSvix(t, a.ts, a.secret)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := v.Verify([]byte(c.payload), svixHeaders(a.id, c.ts, c.sig))
			if !errors.Is(err, c.want) {
				t.Fatalf("err = %v, want %v", err, c.want)
			}
		})
	}
}

// A header with several entries passes if any v1 entry matches; other versions are ignored.
func TestSvixMultipleSignatures(t *testing.T) {
	t.Parallel()
	a := vectors[0]
	bad := "v1,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc="
	v := newSvix(t, a.ts, a.secret)
	multi := strings.Join([]string{bad, "v2,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc=", a.sig, bad}, " ")
	if _, err := v.Verify([]byte(a.payload), svixHeaders(a.id, a.ts, multi)); err != nil {
		t.Fatalf("Go multi-signature vector: %v", err)
	}

	b := vectors[1]
	rust := []string{"v1,tFtCZ5RDCPxzWQRWXWPgrCgE2frDBe9gjpbWQxnVfsQ=", "v1,Mm7xgUVICxZfQ3bgf0h0Dof65L/IFx+PnZvnDWPCX6Q=",
		"v1,9DfC1c3eeOrXB6w/5dIDydLNQaEyww5KalE5jLBZucE="}
	vb := newSvix(t, b.ts, b.secret)
	with := strings.Join([]string{rust[0], rust[1], b.sig, rust[2]}, " ")
	if _, err := vb.Verify([]byte(b.payload), svixHeaders(b.id, b.ts, with)); err != nil {
		t.Fatalf("Rust multi-signature vector: %v", err)
	}
	without := strings.Join(rust, " ")
	if _, err := vb.Verify([]byte(b.payload), svixHeaders(b.id, b.ts, without)); !errors.Is(err, webhook.ErrSignatureInvalid) {
		t.Fatalf("without the valid entry: err = %v", err)
	}
}

// During a rotation the endpoint holds the new and the old secret, and deliveries signed with
// either verify; a third secret does not.
func TestSvixRotation(t *testing.T) {
	t.Parallel()
	a, b := vectors[0], vectors[1]
	v := newSvix(t, a.ts, b.secret, a.secret)
	if _, err := v.Verify([]byte(a.payload), svixHeaders(a.id, a.ts, a.sig)); err != nil {
		t.Fatalf("old secret: %v", err)
	}
	h, _ := clerk.SignSvix("msg_new", time.Unix(a.ts, 0), []byte(a.payload), b.secret)
	if _, err := v.Verify([]byte(a.payload), h); err != nil {
		t.Fatalf("new secret: %v", err)
	}
	other := newSvix(t, a.ts, "whsec_"+strings.Repeat("QUFB", 8))
	if _, err := other.Verify([]byte(a.payload), svixHeaders(a.id, a.ts, a.sig)); !errors.Is(err, webhook.ErrSignatureInvalid) {
		t.Fatalf("unrelated secret: err = %v", err)
	}
	// A sender signing with both secrets at once (Svix during its grace period) verifies too.
	both, _ := clerk.SignSvix("msg_both", time.Unix(a.ts, 0), []byte(a.payload), "whsec_"+strings.Repeat("QkJC", 8), a.secret)
	if _, err := newSvix(t, a.ts, a.secret).Verify([]byte(a.payload), both); err != nil {
		t.Fatalf("two signatures: %v", err)
	}
}

func TestSvixFreshness(t *testing.T) {
	t.Parallel()
	a := vectors[0]
	sign := func(ts int64) http.Header {
		h, err := clerk.SignSvix(a.id, time.Unix(ts, 0), []byte(a.payload), a.secret)
		if err != nil {
			t.Fatal(err)
		}
		return h
	}
	now := a.ts
	v := newSvix(t, now, a.secret)
	cases := []struct {
		name string
		ts   int64
		want error
	}{
		{"exactly 5 minutes old", now - 300, nil},
		{"5 minutes and 1 second old", now - 301, webhook.ErrTimestampTooOld},
		{"an hour old", now - 3600, webhook.ErrTimestampTooOld},
		{"5 minutes ahead", now + 300, nil},
		{"5 minutes and 1 second ahead", now + 301, webhook.ErrTimestampTooNew},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := v.Verify([]byte(a.payload), sign(c.ts))
			if !errors.Is(err, c.want) {
				t.Fatalf("err = %v, want %v", err, c.want)
			}
		})
	}
	// The tolerance is configurable, e.g. for IdPs whose retries re-sign slowly.
	wide, err := clerk.NewSvix(clerk.SvixConfig{Secrets: []string{a.secret}, Tolerance: time.Hour,
		NowFunc: func() time.Time { return time.Unix(now, 0) }})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := wide.Verify([]byte(a.payload), sign(now-3000)); err != nil {
		t.Fatalf("within a 1h tolerance: %v", err)
	}
}

func TestSvixHeaders(t *testing.T) {
	t.Parallel()
	a := vectors[0]
	v := newSvix(t, a.ts, a.secret)

	// Standard Webhooks names are accepted when the svix-* ones are absent.
	std := http.Header{}
	std.Set("webhook-id", a.id)
	std.Set("webhook-timestamp", strconv.FormatInt(a.ts, 10))
	std.Set("webhook-signature", a.sig)
	if _, err := v.Verify([]byte(a.payload), std); err != nil {
		t.Fatalf("webhook-* headers: %v", err)
	}

	cases := []struct {
		name   string
		mutate func(h http.Header)
		want   error
		reason string
	}{
		{"no id", func(h http.Header) { h.Del("svix-id") }, webhook.ErrMissingHeader, "missing_header"},
		{"no timestamp", func(h http.Header) { h.Del("svix-timestamp") }, webhook.ErrMissingHeader, "missing_header"},
		{"no signature", func(h http.Header) { h.Del("svix-signature") }, webhook.ErrSignatureMissing, "missing_signature"},
		{"timestamp not an integer", func(h http.Header) { h.Set("svix-timestamp", "1614265330.0") }, webhook.ErrMalformedHeader, "malformed_header"},
		{"id too long", func(h http.Header) { h.Set("svix-id", strings.Repeat("x", events.MaxIDLen+1)) }, webhook.ErrMalformedHeader, "malformed_header"},
		{"id with NUL", func(h http.Header) { h.Set("svix-id", "msg_\x00") }, webhook.ErrMalformedHeader, "malformed_header"},
		{"id not UTF-8", func(h http.Header) { h.Set("svix-id", "msg_\xff\xfe") }, webhook.ErrMalformedHeader, "malformed_header"},
		{"stale", func(h http.Header) { h.Set("svix-timestamp", "1000") }, webhook.ErrTimestampTooOld, "timestamp_too_old"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h := svixHeaders(a.id, a.ts, a.sig)
			c.mutate(h)
			_, err := v.Verify([]byte(a.payload), h)
			if !errors.Is(err, c.want) {
				t.Fatalf("err = %v, want %v", err, c.want)
			}
			if got := webhook.Reason(err); got != c.reason {
				t.Fatalf("Reason = %q, want %q", got, c.reason)
			}
		})
	}
}

func TestNewSvixRejectsBadSecrets(t *testing.T) {
	t.Parallel()
	for _, secrets := range [][]string{nil, {""}, {"whsec_"}, {"whsec_not base64!"}} {
		if _, err := clerk.NewSvix(clerk.SvixConfig{Secrets: secrets, Tolerance: time.Minute}); err == nil {
			t.Errorf("NewSvix(%q) accepted", secrets)
		} else if len(secrets) > 0 && len(secrets[0]) > len("whsec_") && strings.Contains(err.Error(), secrets[0]) {
			t.Errorf("error %q contains the secret", err)
		}
	}
}

// Verification faces the internet before anything else. Whatever the headers and body, a verifier
// never panics, answers with a classified error, and never accepts what was not signed with its
// secret.
func FuzzVerifySvix(f *testing.F) {
	a := vectors[0]
	f.Add(a.id, strconv.FormatInt(a.ts, 10), a.sig, []byte(a.payload))
	f.Add("", "", "", []byte(nil))
	f.Add("msg", "-1", "v1,", []byte("{}"))
	f.Add("msg", "99999999999999999999", "v1,a v1,b", []byte("{}"))
	v := newSvix(f, a.ts, a.secret)
	f.Fuzz(func(t *testing.T, id, ts, sig string, body []byte) {
		h := http.Header{}
		h.Set("svix-id", id)
		h.Set("svix-timestamp", ts)
		h.Set("svix-signature", sig)
		d, err := v.Verify(body, h)
		if err != nil {
			if webhook.Reason(err) == "other" {
				t.Fatalf("unclassified error: %v", err)
			}
			return
		}
		// Accepted: it must really be signed with the secret.
		want, _ := clerk.SignSvix(d.ID, d.Timestamp, body, a.secret)
		if !strings.Contains(sig, strings.TrimPrefix(want.Get("svix-signature"), "v1,")) {
			t.Fatalf("accepted a delivery not signed with the secret: id=%q ts=%q sig=%q", id, ts, sig)
		}
	})
}
