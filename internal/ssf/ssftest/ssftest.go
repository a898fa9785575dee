// Package ssftest is an SSF receiver for tests: it verifies SETs independently of idpsync's
// signing code, with github.com/lestrrat-go/jwx/v3, against the JWKS the transmitter publishes
// at its jwks_uri, and checks every claim against SSF 1.0, CAEP 1.0 and RISC 1.0. Receiver
// accepts pushes exactly as RFC 8935 says: 202 on success, 400 with {"err","description"}
// otherwise.
package ssftest

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jws"

	"github.com/idpsync/idpsync/internal/ssf"
)

// RFC 8935 §2.4 error codes.
const (
	ErrInvalidRequest       = "invalid_request"
	ErrInvalidKey           = "invalid_key"
	ErrInvalidIssuer        = "invalid_issuer"
	ErrInvalidAudience      = "invalid_audience"
	ErrAuthenticationFailed = "authentication_failed"
	ErrAccessDenied         = "access_denied"
)

// Verifier verifies SETs from one transmitter for one audience.
type Verifier struct {
	// JWKSURI is the transmitter's jwks_uri. Keys are fetched on first use and again when a SET
	// names a kid the cached set lacks (a key rotation).
	JWKSURI string
	// Issuer is the expected iss.
	Issuer string
	// Audience is the expected aud (one of its values).
	Audience string

	mu   sync.Mutex
	keys jwk.Set
}

// SETError is a failed verification: an RFC 8935 error.
type SETError = ssf.SETError

func fail(code, format string, args ...any) *SETError {
	return &SETError{Err: code, Description: fmt.Sprintf(format, args...)}
}

func (v *Verifier) key(ctx context.Context, kid string) (jwk.Key, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.keys != nil {
		if k, ok := v.keys.LookupKeyID(kid); ok {
			return k, nil
		}
	}
	set, err := jwk.Fetch(ctx, v.JWKSURI)
	if err != nil {
		return nil, err
	}
	v.keys = set
	k, ok := set.LookupKeyID(kid)
	if !ok {
		return nil, fmt.Errorf("no key %q in the JWKS", kid)
	}
	return k, nil
}

// Verify checks the compact SET and returns its claims.
func (v *Verifier) Verify(ctx context.Context, compact string) (map[string]any, *SETError) {
	msg, err := jws.Parse([]byte(compact))
	if err != nil {
		return nil, fail(ErrInvalidRequest, "not a JWS: %v", err)
	}
	if len(msg.Signatures()) != 1 || !strings.Contains(compact, ".") || strings.Count(compact, ".") != 2 {
		return nil, fail(ErrInvalidRequest, "a SET is a compact JWS with one signature")
	}
	h := msg.Signatures()[0].ProtectedHeaders()
	if typ, _ := h.Type(); typ != ssf.MediaType {
		return nil, fail(ErrInvalidRequest, "typ is %q, want %q", typ, ssf.MediaType)
	}
	if alg, _ := h.Algorithm(); alg != jwa.RS256() {
		return nil, fail(ErrInvalidRequest, "alg is %v, want RS256", alg)
	}
	kid, _ := h.KeyID()
	if kid == "" {
		return nil, fail(ErrInvalidKey, "no kid")
	}
	key, err := v.key(ctx, kid)
	if err != nil {
		return nil, fail(ErrInvalidKey, "%v", err)
	}
	payload, err := jws.Verify([]byte(compact), jws.WithKey(jwa.RS256(), key))
	if err != nil {
		return nil, fail(ErrInvalidKey, "signature: %v", err)
	}
	var claims map[string]any
	dec := json.NewDecoder(strings.NewReader(string(payload)))
	dec.UseNumber()
	if err := dec.Decode(&claims); err != nil {
		return nil, fail(ErrInvalidRequest, "claims: %v", err)
	}
	if iss, _ := claims["iss"].(string); iss != v.Issuer {
		return nil, fail(ErrInvalidIssuer, "iss is %q, want %q", iss, v.Issuer)
	}
	if !audienceHas(claims["aud"], v.Audience) {
		return nil, fail(ErrInvalidAudience, "aud %v does not name %q", claims["aud"], v.Audience)
	}
	if e := CheckClaims(claims); e != nil {
		return nil, e
	}
	return claims, nil
}

func audienceHas(aud any, want string) bool {
	switch a := aud.(type) {
	case string:
		return a == want
	case []any:
		for _, v := range a {
			if v == want {
				return true
			}
		}
	}
	return false
}

// CheckClaims checks a SET's claims against the SSF 1.0 profile of RFC 8417 and the definitions
// of the event it carries (CAEP 1.0, RISC 1.0, SSF 1.0, the CAEP interoperability profile).
func CheckClaims(c map[string]any) *SETError {
	for _, forbidden := range []string{"sub", "exp"} {
		if _, ok := c[forbidden]; ok {
			return fail(ErrInvalidRequest, "a SET must not have %q", forbidden)
		}
	}
	if jti, _ := c["jti"].(string); jti == "" {
		return fail(ErrInvalidRequest, "jti is required")
	}
	if iat, ok := c["iat"].(json.Number); !ok {
		return fail(ErrInvalidRequest, "iat must be a number")
	} else if n, err := iat.Int64(); err != nil || n <= 0 {
		return fail(ErrInvalidRequest, "iat must be a positive integer")
	}
	if txn, ok := c["txn"]; ok {
		if s, _ := txn.(string); s == "" {
			return fail(ErrInvalidRequest, "txn, when present, is a non-empty string")
		}
	}
	events, _ := c["events"].(map[string]any)
	if len(events) != 1 {
		return fail(ErrInvalidRequest, "events must hold exactly one event, holds %d", len(events))
	}
	subID, _ := c["sub_id"].(map[string]any)
	if e := checkSubject(subID, true); e != nil {
		return e
	}
	for typ, body := range events {
		b, ok := body.(map[string]any)
		if !ok {
			return fail(ErrInvalidRequest, "the event must be an object")
		}
		return checkEvent(typ, b, subID)
	}
	return nil
}

func checkSubject(s map[string]any, complexAllowed bool) *SETError {
	str := func(k string) string { v, _ := s[k].(string); return v }
	switch f := str("format"); f {
	case "email":
		if !strings.Contains(str("email"), "@") {
			return fail(ErrInvalidRequest, "an email subject needs an email")
		}
	case "iss_sub":
		if str("iss") == "" || str("sub") == "" {
			return fail(ErrInvalidRequest, "an iss_sub subject needs iss and sub")
		}
	case "opaque":
		if str("id") == "" {
			return fail(ErrInvalidRequest, "an opaque subject needs an id")
		}
	case "phone_number":
		if str("phone_number") == "" {
			return fail(ErrInvalidRequest, "a phone_number subject needs phone_number")
		}
	case "complex":
		if !complexAllowed {
			return fail(ErrInvalidRequest, "complex subjects do not nest")
		}
		n := 0
		for k, v := range s {
			if k == "format" {
				continue
			}
			m, ok := v.(map[string]any)
			if !ok {
				return fail(ErrInvalidRequest, "complex member %q must be a subject", k)
			}
			if e := checkSubject(m, false); e != nil {
				return e
			}
			n++
		}
		if n == 0 {
			return fail(ErrInvalidRequest, "a complex subject needs members")
		}
	default:
		return fail(ErrInvalidRequest, "sub_id format %q is not one the CAEP interoperability profile names", f)
	}
	return nil
}

func checkEvent(typ string, b, subID map[string]any) *SETError {
	str := func(k string) string { v, _ := b[k].(string); return v }
	caep := strings.HasPrefix(typ, "https://schemas.openid.net/secevent/caep/event-type/")
	if caep {
		if ts, ok := b["event_timestamp"]; ok {
			if _, isNum := ts.(json.Number); !isNum {
				return fail(ErrInvalidRequest, "event_timestamp must be a number")
			}
		}
		if ie, ok := b["initiating_entity"]; ok && !slices.Contains([]any{"admin", "user", "policy", "system"}, ie) {
			return fail(ErrInvalidRequest, "initiating_entity %v is not one CAEP defines", ie)
		}
		if ra, ok := b["reason_admin"]; ok {
			if m, _ := ra.(map[string]any); len(m) == 0 {
				return fail(ErrInvalidRequest, "reason_admin must map language tags to messages")
			}
		}
	}
	reasonAdmin := func() *SETError {
		if m, _ := b["reason_admin"].(map[string]any); len(m) == 0 {
			return fail(ErrInvalidRequest, "%s needs reason_admin (CAEP interoperability profile)", typ)
		}
		return nil
	}
	switch typ {
	case ssf.TypeSessionRevoked:
		return reasonAdmin()
	case ssf.TypeCredentialChange:
		if str("credential_type") == "" || !slices.Contains(ssf.ChangeTypes, str("change_type")) {
			return fail(ErrInvalidRequest, "credential-change needs credential_type and change_type")
		}
		return reasonAdmin()
	case ssf.TypeTokenClaimsChange:
		if c, _ := b["claims"].(map[string]any); len(c) == 0 {
			return fail(ErrInvalidRequest, "token-claims-change needs claims")
		}
	case ssf.TypeAccountDisabled:
		if r, ok := b["reason"]; ok && r != "hijacking" && r != "bulk-account" {
			return fail(ErrInvalidRequest, "account-disabled reason %v is not one RISC defines", r)
		}
	case ssf.TypeAccountEnabled, ssf.TypeAccountPurged:
	case ssf.TypeIdentifierChanged:
		if f := subID["format"]; f != "email" && f != "phone_number" {
			return fail(ErrInvalidRequest, "identifier-changed needs the old email or phone number as subject")
		}
	case ssf.TypeVerification, ssf.TypeStreamUpdated:
		if subID["format"] != "opaque" {
			return fail(ErrInvalidRequest, "%s needs the stream id as an opaque subject", typ)
		}
		if typ == ssf.TypeStreamUpdated && !slices.Contains([]any{"enabled", "paused", "disabled"}, b["status"]) {
			return fail(ErrInvalidRequest, "stream-updated needs status")
		}
	default:
		return fail(ErrInvalidRequest, "unknown event type %s", typ)
	}
	return nil
}

// Received is a SET a receiver accepted (or refused, by a Respond function).
type Received struct {
	JTI    string
	Type   string
	Claims map[string]any
	Raw    string
	At     time.Time
}

// Receiver is an RFC 8935 push endpoint.
type Receiver struct {
	*httptest.Server
	// Verifier checks each SET.
	Verifier *Verifier
	// Authorization is the Authorization header the transmitter must send.
	Authorization string

	mu       sync.Mutex
	accepted []Received
	requests int
	respond  func(Received) (int, *SETError)
	notify   chan struct{}
}

// NewReceiver starts a receiver that t closes.
func NewReceiver(t testing.TB, v *Verifier, authorization string) *Receiver {
	r := &Receiver{Verifier: v, Authorization: authorization, notify: make(chan struct{}, 1)}
	r.Server = httptest.NewServer(http.HandlerFunc(r.serve))
	t.Cleanup(r.Close)
	return r
}

// Respond makes the receiver answer verified SETs with f's status and error (nil: none) instead
// of 202; f nil restores the default.
func (r *Receiver) Respond(f func(Received) (status int, err *SETError)) {
	r.mu.Lock()
	r.respond = f
	r.mu.Unlock()
}

func (r *Receiver) serve(w http.ResponseWriter, req *http.Request) {
	r.mu.Lock()
	r.requests++
	r.mu.Unlock()
	refuse := func(e *SETError) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusBadRequest)
		_ = json.NewEncoder(w).Encode(e)
	}
	if req.Method != http.MethodPost {
		w.WriteHeader(http.StatusMethodNotAllowed)
		return
	}
	if req.Header.Get("Content-Type") != "application/secevent+jwt" {
		refuse(fail(ErrInvalidRequest, "Content-Type must be application/secevent+jwt"))
		return
	}
	if req.Header.Get("Accept") != "application/json" {
		refuse(fail(ErrInvalidRequest, "Accept must be application/json"))
		return
	}
	if req.Header.Get("Authorization") != r.Authorization {
		refuse(fail(ErrAuthenticationFailed, "wrong or missing Authorization"))
		return
	}
	body, err := io.ReadAll(io.LimitReader(req.Body, 1<<20))
	if err != nil {
		refuse(fail(ErrInvalidRequest, "reading the body: %v", err))
		return
	}
	claims, e := r.Verifier.Verify(req.Context(), string(body))
	if e != nil {
		refuse(e)
		return
	}
	rec := Received{JTI: claims["jti"].(string), Claims: claims, Raw: string(body), At: time.Now()}
	for typ := range claims["events"].(map[string]any) {
		rec.Type = typ
	}
	r.mu.Lock()
	respond := r.respond
	r.mu.Unlock()
	if respond != nil {
		if status, e := respond(rec); status != http.StatusAccepted {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(status)
			if e != nil {
				_ = json.NewEncoder(w).Encode(e)
			}
			return
		}
	}
	r.mu.Lock()
	r.accepted = append(r.accepted, rec)
	r.mu.Unlock()
	select {
	case r.notify <- struct{}{}:
	default:
	}
	w.WriteHeader(http.StatusAccepted)
}

// Accepted returns the SETs accepted so far, in order of arrival (duplicates included).
func (r *Receiver) Accepted() []Received {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.accepted)
}

// Requests returns how many requests the receiver answered.
func (r *Receiver) Requests() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.requests
}

// WaitAccepted waits until n SETs were accepted, or fails t after timeout.
func (r *Receiver) WaitAccepted(t testing.TB, n int, timeout time.Duration) []Received {
	t.Helper()
	deadline := time.After(timeout)
	for {
		if got := r.Accepted(); len(got) >= n {
			return got
		}
		select {
		case <-r.notify:
		case <-time.After(20 * time.Millisecond):
		case <-deadline:
			t.Fatalf("receiver accepted %d SETs in %s, want %d", len(r.Accepted()), timeout, n)
		}
	}
}
