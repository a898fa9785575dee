package authpi_test

import (
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/idpsync/idpsync/internal/provider/authpi"
	"github.com/idpsync/idpsync/internal/webhook"
)

func TestBearerAndHMAC(t *testing.T) {
	t.Parallel()
	body := []byte(`{"id":"1"}`)
	bearer, err := authpi.NewBearer("tok-old", "tok-new")
	if err != nil {
		t.Fatal(err)
	}
	mac, err := authpi.NewHMAC("whs_secret")
	if err != nil {
		t.Fatal(err)
	}
	h := func(kv ...string) http.Header {
		out := http.Header{}
		for i := 0; i < len(kv); i += 2 {
			out.Set(kv[i], kv[i+1])
		}
		return out
	}
	sig := authpi.SignHMAC("whs_secret", body)
	cases := []struct {
		name string
		v    webhook.Verifier
		h    http.Header
		want error
	}{
		{"bearer new", bearer, h("Authorization", "Bearer tok-new"), nil},
		{"bearer old", bearer, h("Authorization", "bearer tok-old"), nil},
		{"bearer wrong", bearer, h("Authorization", "Bearer tok"), webhook.ErrSignatureInvalid},
		{"bearer missing", bearer, h(), webhook.ErrSignatureMissing},
		{"basic instead of bearer", bearer, h("Authorization", "Basic dG9rLW5ldw=="), webhook.ErrMalformedHeader},
		{"hmac", mac, h("X-Webhook-Signature", sig), nil},
		{"hmac without prefix", mac, h("X-Webhook-Signature", strings.TrimPrefix(sig, "sha256=")), nil},
		{"hmac wrong", mac, h("X-Webhook-Signature", authpi.SignHMAC("other", body)), webhook.ErrSignatureInvalid},
		{"hmac missing", mac, h(), webhook.ErrSignatureMissing},
		{"hmac not hex", mac, h("X-Webhook-Signature", "sha256=xyz"), webhook.ErrMalformedHeader},
		{"both", webhook.All{bearer, mac}, h("Authorization", "Bearer tok-new", "X-Webhook-Signature", sig), nil},
		{"both without signature", webhook.All{bearer, mac}, h("Authorization", "Bearer tok-new"), webhook.ErrSignatureMissing},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := c.v.Verify(body, c.h)
			if !errors.Is(err, c.want) {
				t.Fatalf("err = %v, want %v", err, c.want)
			}
		})
	}
}
