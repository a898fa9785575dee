package webhook_test

import (
	"errors"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/idpsync/idpsync/internal/webhook"
)

type verifierFunc func([]byte, http.Header) (webhook.Delivery, error)

func (f verifierFunc) Verify(b []byte, h http.Header) (webhook.Delivery, error) { return f(b, h) }

func TestAllRequiresEveryVerifier(t *testing.T) {
	t.Parallel()
	ok := verifierFunc(func([]byte, http.Header) (webhook.Delivery, error) { return webhook.Delivery{ID: "d1"}, nil })
	no := verifierFunc(func([]byte, http.Header) (webhook.Delivery, error) {
		return webhook.Delivery{}, webhook.ErrSignatureInvalid
	})
	if d, err := (webhook.All{ok, ok}).Verify(nil, nil); err != nil || d.ID != "d1" {
		t.Fatalf("all pass: %+v, %v", d, err)
	}
	for _, a := range []webhook.All{{ok, no}, {no, ok}} {
		if _, err := a.Verify(nil, nil); !errors.Is(err, webhook.ErrSignatureInvalid) {
			t.Fatalf("one fails: err = %v", err)
		}
	}
}

func TestFreshnessAndReasons(t *testing.T) {
	t.Parallel()
	now := time.Unix(1_000_000, 0)
	for _, c := range []struct {
		ts   time.Time
		want error
	}{
		{now, nil}, {now.Add(-time.Minute), nil}, {now.Add(time.Minute), nil},
		{now.Add(-61 * time.Second), webhook.ErrTimestampTooOld}, {now.Add(61 * time.Second), webhook.ErrTimestampTooNew},
	} {
		if err := webhook.CheckFreshness(c.ts, now, time.Minute); !errors.Is(err, c.want) || (c.want == nil) != (err == nil) {
			t.Errorf("CheckFreshness(%v) = %v, want %v", c.ts.Sub(now), err, c.want)
		}
	}
	if got := webhook.Reason(fmt.Errorf("svix-id: %w", webhook.ErrMalformedHeader)); got != "malformed_header" {
		t.Errorf("Reason = %q", got)
	}
	if got := webhook.Reason(errors.New("surprise")); got != "other" {
		t.Errorf("Reason of an unknown error = %q", got)
	}
}
