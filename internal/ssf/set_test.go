package ssf_test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/idpsync/idpsync/internal/ssf"
	"github.com/idpsync/idpsync/internal/ssf/ssftest"
)

var (
	keysOnce sync.Once
	keys     [3]*rsa.PrivateKey
)

// testKeys returns three 2048-bit keys, made once per test binary.
func testKeys(t testing.TB) [3]*rsa.PrivateKey {
	t.Helper()
	keysOnce.Do(func() {
		for i := range keys {
			k, err := rsa.GenerateKey(rand.Reader, 2048)
			if err != nil {
				panic(err)
			}
			keys[i] = k
		}
	})
	return keys
}

func newSigner(t testing.TB, active string, ks ...ssf.Key) *ssf.Signer {
	t.Helper()
	s, err := ssf.NewSigner(ks, active)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// jwksServer serves the JWKS of whichever signer is current, as a transmitter's jwks_uri does.
type jwksServer struct {
	*httptest.Server
	signer  atomic.Pointer[ssf.Signer]
	fetches atomic.Int32
}

func newJWKSServer(t *testing.T, s *ssf.Signer) *jwksServer {
	j := &jwksServer{}
	j.signer.Store(s)
	j.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		j.fetches.Add(1)
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(j.signer.Load().JWKS())
	}))
	t.Cleanup(j.Close)
	return j
}

const (
	iss = "https://idpsync.example.com"
	aud = "https://receiver.example.com"
)

func sign(t *testing.T, s *ssf.Signer, ev ssf.Event) string {
	t.Helper()
	claims, err := ev.Claims(iss, ssf.Audience{aud}, ssf.NewJTI(), time.Unix(1700000000, 0))
	if err != nil {
		t.Fatal(err)
	}
	set, err := s.Sign(claims)
	if err != nil {
		t.Fatal(err)
	}
	return set
}

// TestSETsVerifyIndependently signs every event idpsync sends and verifies the SETs with jwx
// against the published JWKS, checking each claim against the specs.
func TestSETsVerifyIndependently(t *testing.T) {
	t.Parallel()
	k := testKeys(t)
	signer := newSigner(t, "", ssf.Key{ID: "k1", Private: k[0]})
	srv := newJWKSServer(t, signer)
	v := &ssftest.Verifier{JWKSURI: srv.URL, Issuer: iss, Audience: aud}
	user := ssf.User{Issuer: "https://clerk.example.com", ID: "user_1", Email: "Ada@Example.com"}
	at := time.Unix(1699999999, 0)

	cases := []struct {
		name   string
		ev     ssf.Event
		typ    string
		subID  string
		fields map[string]any
	}{
		{"session revoked", ssf.SessionRevoked(user, "sess_9", at, ssf.InitiatorPolicy, "user.banned at clerk-prod"), ssf.TypeSessionRevoked,
			`{"format":"complex","session":{"format":"opaque","id":"sess_9"},"user":{"format":"iss_sub","iss":"https://clerk.example.com","sub":"user_1"}}`,
			map[string]any{"event_timestamp": json.Number("1699999999"), "initiating_entity": "policy", "reason_admin": map[string]any{"en": "user.banned at clerk-prod"}}},
		{"credential change", ssf.CredentialChange(user, "password", "update", at, ssf.InitiatorUser, "password reset"), ssf.TypeCredentialChange,
			`{"format":"iss_sub","iss":"https://clerk.example.com","sub":"user_1"}`,
			map[string]any{"credential_type": "password", "change_type": "update", "initiating_entity": "user"}},
		{"token claims change", ssf.TokenClaimsChange(user, map[string]any{"org_role": "admin"}, at, "", "role changed"), ssf.TypeTokenClaimsChange,
			`{"format":"iss_sub","iss":"https://clerk.example.com","sub":"user_1"}`,
			map[string]any{"claims": map[string]any{"org_role": "admin"}}},
		{"account disabled", ssf.AccountDisabled(user, ""), ssf.TypeAccountDisabled,
			`{"format":"iss_sub","iss":"https://clerk.example.com","sub":"user_1"}`, map[string]any{}},
		{"account disabled with reason", ssf.AccountDisabled(user, ssf.ReasonHijacking), ssf.TypeAccountDisabled,
			`{"format":"iss_sub","iss":"https://clerk.example.com","sub":"user_1"}`, map[string]any{"reason": "hijacking"}},
		{"account enabled", ssf.AccountEnabled(user), ssf.TypeAccountEnabled, `{"format":"iss_sub","iss":"https://clerk.example.com","sub":"user_1"}`, map[string]any{}},
		{"account purged", ssf.AccountPurged(user), ssf.TypeAccountPurged, `{"format":"iss_sub","iss":"https://clerk.example.com","sub":"user_1"}`, map[string]any{}},
		{"identifier changed", ssf.IdentifierChanged(user, "ada@old.example", "ada@new.example"), ssf.TypeIdentifierChanged,
			`{"format":"email","email":"ada@old.example"}`, map[string]any{"new-value": "ada@new.example"}},
		{"verification", ssf.Verification("stream-1", "c3RhdGU="), ssf.TypeVerification, `{"format":"opaque","id":"stream-1"}`, map[string]any{"state": "c3RhdGU="}},
		{"stream updated", ssf.StreamUpdated("stream-1", ssf.StatusPaused, "maintenance"), ssf.TypeStreamUpdated, `{"format":"opaque","id":"stream-1"}`,
			map[string]any{"status": "paused", "reason": "maintenance"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			set := sign(t, signer, c.ev.WithTxn("clerk-prod:msg_1"))
			claims, e := v.Verify(context.Background(), set)
			if e != nil {
				t.Fatalf("jwx refused the SET: %s: %s", e.Err, e.Description)
			}
			if claims["iss"] != iss || claims["aud"] != aud || claims["txn"] != "clerk-prod:msg_1" || claims["iat"] != json.Number("1700000000") {
				t.Errorf("claims iss/aud/txn/iat = %v/%v/%v/%v", claims["iss"], claims["aud"], claims["txn"], claims["iat"])
			}
			sub, _ := json.Marshal(claims["sub_id"])
			if !jsonEqual(t, sub, []byte(c.subID)) {
				t.Errorf("sub_id = %s, want %s", sub, c.subID)
			}
			events := claims["events"].(map[string]any)
			body, ok := events[c.typ].(map[string]any)
			if !ok || len(events) != 1 {
				t.Fatalf("events = %v, want one %s", events, c.typ)
			}
			for k, want := range c.fields {
				got, _ := json.Marshal(body[k])
				wantJSON, _ := json.Marshal(want)
				if !jsonEqual(t, got, wantJSON) {
					t.Errorf("event %s = %s, want %s", k, got, wantJSON)
				}
			}
		})
	}
}

func jsonEqual(t *testing.T, a, b []byte) bool {
	t.Helper()
	var x, y any
	if err := json.Unmarshal(a, &x); err != nil {
		t.Fatalf("%s: %v", a, err)
	}
	if err := json.Unmarshal(b, &y); err != nil {
		t.Fatalf("%s: %v", b, err)
	}
	xa, _ := json.Marshal(x)
	ya, _ := json.Marshal(y)
	return string(xa) == string(ya)
}

func TestSETHeaderAndForbiddenClaims(t *testing.T) {
	t.Parallel()
	k := testKeys(t)
	signer := newSigner(t, "", ssf.Key{ID: "k1", Private: k[0]})
	set := sign(t, signer, ssf.AccountPurged(ssf.User{Issuer: iss, ID: "u"}))
	parts := strings.Split(set, ".")
	if len(parts) != 3 {
		t.Fatalf("not a compact JWS: %q", set)
	}
	var header map[string]any
	decodeSegment(t, parts[0], &header)
	if header["typ"] != "secevent+jwt" || header["alg"] != "RS256" || header["kid"] != "k1" || len(header) != 3 {
		t.Errorf("header = %v, want exactly typ secevent+jwt, alg RS256, kid k1", header)
	}
	var claims map[string]any
	decodeSegment(t, parts[1], &claims)
	for _, c := range []string{"sub", "exp", "nbf"} {
		if _, ok := claims[c]; ok {
			t.Errorf("claims hold %q", c)
		}
	}
	if _, ok := claims["txn"]; ok {
		t.Errorf("txn present without one given")
	}
}

func decodeSegment(t *testing.T, seg string, v any) {
	t.Helper()
	b, err := base64URL(seg)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatal(err)
	}
}

// TestKeyRotation: a receiver that cached the JWKS before a new key was added verifies SETs
// signed with the new key (it refetches on an unknown kid), and SETs signed before the rotation
// still verify while the old key is published.
func TestKeyRotation(t *testing.T) {
	t.Parallel()
	k := testKeys(t)
	old := newSigner(t, "", ssf.Key{ID: "old", Private: k[0]})
	srv := newJWKSServer(t, old)
	v := &ssftest.Verifier{JWKSURI: srv.URL, Issuer: iss, Audience: aud}
	before := sign(t, old, ssf.AccountEnabled(ssf.User{Issuer: iss, ID: "u"}))
	if _, e := v.Verify(context.Background(), before); e != nil {
		t.Fatalf("before rotation: %v", e)
	}

	rotated := newSigner(t, "new", ssf.Key{ID: "old", Private: k[0]}, ssf.Key{ID: "new", Private: k[1]})
	if rotated.KeyID() != "new" {
		t.Fatalf("signing key = %q, want the configured one", rotated.KeyID())
	}
	srv.signer.Store(rotated)
	after := sign(t, rotated, ssf.AccountEnabled(ssf.User{Issuer: iss, ID: "u"}))
	if _, e := v.Verify(context.Background(), after); e != nil {
		t.Fatalf("after rotation: %s: %s", e.Err, e.Description)
	}
	if _, e := v.Verify(context.Background(), before); e != nil {
		t.Fatalf("a SET signed before the rotation: %s: %s", e.Err, e.Description)
	}
	if n := srv.fetches.Load(); n != 2 {
		t.Errorf("JWKS fetched %d times, want 2 (once, then on the new kid)", n)
	}

	// A SET signed by a key the transmitter does not publish is refused.
	rogue := newSigner(t, "", ssf.Key{ID: "new", Private: k[2]})
	if _, e := v.Verify(context.Background(), sign(t, rogue, ssf.AccountEnabled(ssf.User{Issuer: iss, ID: "u"}))); e == nil || e.Err != ssftest.ErrInvalidKey {
		t.Fatalf("a SET signed with an unpublished key: %v, want invalid_key", e)
	}
	// Wrong issuer and audience are told apart.
	vi := &ssftest.Verifier{JWKSURI: srv.URL, Issuer: "https://other.example.com", Audience: aud}
	if _, e := vi.Verify(context.Background(), after); e == nil || e.Err != ssftest.ErrInvalidIssuer {
		t.Errorf("wrong issuer: %v", e)
	}
	va := &ssftest.Verifier{JWKSURI: srv.URL, Issuer: iss, Audience: "someone-else"}
	if _, e := va.Verify(context.Background(), after); e == nil || e.Err != ssftest.ErrInvalidAudience {
		t.Errorf("wrong audience: %v", e)
	}
}

func TestSignerKeys(t *testing.T) {
	t.Parallel()
	k := testKeys(t)
	small, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ssf.NewSigner([]ssf.Key{{ID: "s", Private: small}}, ""); err == nil || !strings.Contains(err.Error(), "2048") {
		t.Errorf("NewSigner with a 1024-bit key: %v, want a refusal naming 2048", err)
	}
	pkcs1 := pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(small)})
	if _, err := ssf.ParseKey(pkcs1, ""); err == nil {
		t.Error("ParseKey accepted a 1024-bit key")
	}
	if _, err := ssf.NewSigner([]ssf.Key{{ID: "a", Private: k[0]}, {ID: "a", Private: k[1]}}, ""); err == nil {
		t.Error("NewSigner accepted two keys with one id")
	}
	if _, err := ssf.NewSigner([]ssf.Key{{ID: "a", Private: k[0]}}, "b"); err == nil {
		t.Error("NewSigner accepted an unknown signing key id")
	}

	der8, err := x509.MarshalPKCS8PrivateKey(k[0])
	if err != nil {
		t.Fatal(err)
	}
	p8, err := ssf.ParseKey(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der8}), "")
	if err != nil {
		t.Fatal(err)
	}
	p1, err := ssf.ParseKey(pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(k[0])}), "")
	if err != nil {
		t.Fatal(err)
	}
	if p1.ID == "" || p1.ID != p8.ID || !p1.Private.Equal(p8.Private) {
		t.Errorf("PKCS#1 and PKCS#8 of one key differ: kids %q, %q", p1.ID, p8.ID)
	}
	named, err := ssf.ParseKey(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der8}), "2026-11")
	if err != nil || named.ID != "2026-11" {
		t.Errorf("ParseKey with an id: %v, %q", err, named.ID)
	}
	if _, err := ssf.ParseKey([]byte("not pem"), ""); err == nil {
		t.Error("ParseKey accepted garbage")
	}

	s := newSigner(t, "", ssf.Key{ID: "a", Private: k[0]}, ssf.Key{ID: "b", Private: k[1]})
	var set struct {
		Keys []map[string]any `json:"keys"`
	}
	if err := json.Unmarshal(s.JWKS(), &set); err != nil {
		t.Fatal(err)
	}
	if len(set.Keys) != 2 || s.KeyID() != "a" {
		t.Fatalf("JWKS has %d keys and signs with %q; want 2 keys, the first signing", len(set.Keys), s.KeyID())
	}
	for _, key := range set.Keys {
		if key["kty"] != "RSA" || key["alg"] != "RS256" || key["use"] != "sig" || key["kid"] == "" {
			t.Errorf("JWK %v lacks kty/alg/use/kid", key)
		}
		for _, private := range []string{"d", "p", "q", "dp", "dq", "qi"} {
			if _, ok := key[private]; ok {
				t.Errorf("the JWKS publishes the private member %q", private)
			}
		}
	}
}

func TestEventValidate(t *testing.T) {
	t.Parallel()
	u := ssf.User{Issuer: iss, ID: "u"}
	bad := []ssf.Event{
		ssf.SessionRevoked(u, "s", time.Now(), ssf.InitiatorPolicy, ""),
		ssf.CredentialChange(u, "", "update", time.Now(), "", "r"),
		ssf.CredentialChange(u, "password", "rotate", time.Now(), "", "r"),
		ssf.TokenClaimsChange(u, nil, time.Now(), "", "r"),
		ssf.AccountDisabled(u, "banned"),
		ssf.AccountPurged(ssf.User{ID: "u"}),
		ssf.StreamUpdated("s", "stopped", ""),
		{Type: "https://example.com/other", Subject: ssf.Subject{Format: "opaque", ID: "x"}},
	}
	for _, ev := range bad {
		if err := ev.Validate(); !errors.Is(err, ssf.ErrInvalidEvent) {
			t.Errorf("Validate(%s %v) = %v, want ErrInvalidEvent", ev.Type, ev.Body, err)
		}
		if _, err := ev.Claims(iss, ssf.Audience{aud}, "j", time.Now()); err == nil {
			t.Errorf("Claims of an invalid %s succeeded", ev.Type)
		}
	}
}

func BenchmarkSign(b *testing.B) {
	k := testKeys(b)
	s := newSigner(b, "", ssf.Key{ID: "k", Private: k[0]})
	claims, err := ssf.AccountDisabled(ssf.User{Issuer: iss, ID: "user_1", Email: "a@example.com"}, "").
		Claims(iss, ssf.Audience{aud}, ssf.NewJTI(), time.Now())
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.Sign(claims); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkClaims(b *testing.B) {
	ev := ssf.AccountDisabled(ssf.User{Issuer: iss, ID: "user_1", Email: "a@example.com"}, "")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ev.Claims(iss, ssf.Audience{aud}, ssf.NewJTI(), time.Now()); err != nil {
			b.Fatal(err)
		}
	}
}
