package authpi

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/idpsync/idpsync/internal/webhook"
)

// Bearer verifies a shared token sent as "Authorization: Bearer <token>" (AuthPI's "bearer" auth). It carries no timestamp and no delivery id: replays are
// absorbed by the event log's unique key.
type Bearer struct {
	tokens [][]byte
}

var _ webhook.Verifier = (*Bearer)(nil)

// NewBearer returns a verifier accepting any of tokens; at least one is required.
func NewBearer(tokens ...string) (*Bearer, error) {
	if len(tokens) == 0 {
		return nil, errors.New("at least one bearer token is required")
	}
	v := &Bearer{}
	for _, t := range tokens {
		v.tokens = append(v.tokens, []byte(t))
	}
	return v, nil
}

// Verify implements Verifier.
func (v *Bearer) Verify(_ []byte, h http.Header) (webhook.Delivery, error) {
	auth := h.Get("Authorization")
	if auth == "" {
		return webhook.Delivery{}, fmt.Errorf("%w: Authorization", webhook.ErrSignatureMissing)
	}
	scheme, token, ok := strings.Cut(auth, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || token == "" {
		return webhook.Delivery{}, fmt.Errorf("%w: Authorization is not a bearer token", webhook.ErrMalformedHeader)
	}
	got := []byte(strings.TrimSpace(token))
	match := 0
	for _, want := range v.tokens {
		// Compare against every token so the time taken does not reveal which one matched.
		match |= subtle.ConstantTimeCompare(got, want)
	}
	if match != 1 {
		return webhook.Delivery{}, webhook.ErrSignatureInvalid
	}
	return webhook.Delivery{}, nil
}

// HMACSignatureHeader is the header carrying an HMAC-SHA256 body signature (AuthPI "signature").
const HMACSignatureHeader = "X-Webhook-Signature"

// HMAC verifies "X-Webhook-Signature: <hex HMAC-SHA256 of the raw body>", optionally prefixed
// "sha256=", with several comma- or space-separated signatures allowed during a rotation.
type HMAC struct {
	secrets [][]byte
}

var _ webhook.Verifier = (*HMAC)(nil)

// NewHMAC returns a verifier accepting a signature made with any of secrets.
func NewHMAC(secrets ...string) (*HMAC, error) {
	if len(secrets) == 0 {
		return nil, errors.New("at least one signature secret is required")
	}
	v := &HMAC{}
	for _, s := range secrets {
		v.secrets = append(v.secrets, []byte(s))
	}
	return v, nil
}

// Verify implements Verifier.
func (v *HMAC) Verify(body []byte, h http.Header) (webhook.Delivery, error) {
	header := h.Get(HMACSignatureHeader)
	if header == "" {
		return webhook.Delivery{}, fmt.Errorf("%w: %s", webhook.ErrSignatureMissing, HMACSignatureHeader)
	}
	var sigs [][]byte
	for f := range strings.FieldsFuncSeq(header, func(r rune) bool { return r == ',' || r == ' ' }) {
		sig, err := hex.DecodeString(strings.TrimPrefix(f, "sha256="))
		if err == nil && len(sig) == sha256.Size {
			sigs = append(sigs, sig)
		}
	}
	if len(sigs) == 0 {
		return webhook.Delivery{}, fmt.Errorf("%w: %s is not a hex HMAC-SHA256", webhook.ErrMalformedHeader, HMACSignatureHeader)
	}
	for _, secret := range v.secrets {
		want := bodyMAC(secret, body)
		for _, sig := range sigs {
			if hmac.Equal(sig, want) {
				return webhook.Delivery{}, nil
			}
		}
	}
	return webhook.Delivery{}, webhook.ErrSignatureInvalid
}

func bodyMAC(secret, body []byte) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write(body)
	return m.Sum(nil)
}

// SignHMAC returns the X-Webhook-Signature value for body: "sha256=<hex>".
func SignHMAC(secret string, body []byte) string {
	return "sha256=" + hex.EncodeToString(bodyMAC([]byte(secret), body))
}
