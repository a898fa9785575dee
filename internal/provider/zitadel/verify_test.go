package zitadel_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/idpsync/idpsync/internal/provider/zitadel"
	"github.com/idpsync/idpsync/internal/webhook"
)

func TestZitadel(t *testing.T) {
	t.Parallel()
	now := time.Unix(1_750_000_000, 0)
	body := []byte(`{"aggregateID":"313014806065971608","event_type":"user.human.added","sequence":1}`)
	v, err := zitadel.NewVerifier(zitadel.VerifierConfig{SigningKeys: []string{"old-key", "new-key"}, Tolerance: 300 * time.Second, NowFunc: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	header := func(name, value string) http.Header {
		h := http.Header{}
		h.Set(name, value)
		return h
	}
	good := zitadel.Sign(now, body, "new-key")
	// Independently computed: HMAC-SHA256(key="new-key", "1750000000."+body), lowercase hex.
	if !strings.HasPrefix(good, "t=1750000000,v1=") || len(good) != len("t=1750000000,v1=")+64 {
		t.Fatalf("SignZitadel = %q", good)
	}
	cases := []struct {
		name string
		h    http.Header
		body []byte
		want error
	}{
		{"valid", header("ZITADEL-Signature", good), body, nil},
		{"X- prefixed header", header("X-ZITADEL-Signature", good), body, nil},
		{"second of two signatures", header("ZITADEL-Signature", zitadel.Sign(now, body, "unknown", "old-key")), body, nil},
		{"tampered body", header("ZITADEL-Signature", good), append([]byte(" "), body...), webhook.ErrSignatureInvalid},
		{"unknown key", header("ZITADEL-Signature", zitadel.Sign(now, body, "unknown")), body, webhook.ErrSignatureInvalid},
		{"stale", header("ZITADEL-Signature", zitadel.Sign(now.Add(-301*time.Second), body, "new-key")), body, webhook.ErrTimestampTooOld},
		{"future", header("ZITADEL-Signature", zitadel.Sign(now.Add(301*time.Second), body, "new-key")), body, webhook.ErrTimestampTooNew},
		{"missing", http.Header{}, body, webhook.ErrSignatureMissing},
		{"no timestamp", header("ZITADEL-Signature", "v1=00"), body, webhook.ErrMalformedHeader},
		{"no v1", header("ZITADEL-Signature", "t=1750000000"), body, webhook.ErrSignatureMissing},
		{"garbage", header("ZITADEL-Signature", "t=soon,v1=zz"), body, webhook.ErrMalformedHeader},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := v.Verify(c.body, c.h)
			if !errors.Is(err, c.want) {
				t.Fatalf("err = %v, want %v", err, c.want)
			}
		})
	}
}

func FuzzVerifyZitadel(f *testing.F) {
	now := time.Unix(1_750_000_000, 0)
	body := []byte(`{"sequence":1}`)
	f.Add(zitadel.Sign(now, body, "key"), body)
	f.Add("t=,v1=", []byte(nil))
	f.Add("t=1750000000,v1=,v1=zz,=,,", []byte("{}"))
	v, err := zitadel.NewVerifier(zitadel.VerifierConfig{SigningKeys: []string{"key"}, Tolerance: 300 * time.Second, NowFunc: func() time.Time { return now }})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, header string, body []byte) {
		h := http.Header{}
		h.Set("ZITADEL-Signature", header)
		_, err := v.Verify(body, h)
		if err != nil {
			if webhook.Reason(err) == "other" {
				t.Fatalf("unclassified error: %v", err)
			}
			return
		}
		// Accepted: one of its v1 signatures must be the HMAC of "<t>.<body>" with the key, for the
		// t= it carries (hex is compared as a value: Zitadel writes lowercase, any case verifies).
		var ts string
		for part := range strings.SplitSeq(header, ",") {
			if k, v, _ := strings.Cut(strings.TrimSpace(part), "="); k == "t" {
				ts = v
			}
		}
		mac := hmac.New(sha256.New, []byte("key"))
		mac.Write([]byte(ts + "."))
		mac.Write(body)
		want := hex.EncodeToString(mac.Sum(nil))
		if !strings.Contains(strings.ToLower(header), "v1="+want) {
			t.Fatalf("accepted a delivery not signed with the key: %q", header)
		}
	})
}

// Zitadel writes lowercase hex; the verifier compares values, so a correctly signed header in any
// case verifies (a regression once failed make fuzz).
func TestZitadelMixedCaseHex(t *testing.T) {
	t.Parallel()
	now := time.Unix(1_750_000_000, 0)
	body := []byte(`{"sequence":1}`)
	v, err := zitadel.NewVerifier(zitadel.VerifierConfig{SigningKeys: []string{"key"}, Tolerance: time.Minute, NowFunc: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	h := http.Header{}
	h.Set("ZITADEL-Signature", strings.ToUpper(zitadel.Sign(now, body, "key")[len("t=1750000000,v1="):]))
	h.Set("ZITADEL-Signature", "t=1750000000,v1="+h.Get("ZITADEL-Signature"))
	if _, err := v.Verify(body, h); err != nil {
		t.Fatalf("uppercase hex: %v", err)
	}
}
