package ssf

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// SETs are signed JWTs (JWS compact serialization) with the explicit type secevent+jwt and
// RS256, as SSF 1.0 and the CAEP interoperability profile require.
//
// Signing uses github.com/go-jose/go-jose/v4: it is maintained (the go-jose organization took it
// over from Square; v4 removed the unsafe defaults of earlier versions and makes the caller name
// the algorithms it accepts), its API is small (a Signer made once, Sign, CompactSerialize, and a
// JSONWebKeySet that marshals to a JWKS), it depends on nothing beyond the standard library and
// x/crypto, and it is what Go's ecosystem signs JOSE with (Kubernetes, Dex, Vault, Caddy, the
// OpenTelemetry collector). The tests verify every SET with an independent implementation,
// lestrrat-go/jwx v3, so the two libraries check each other.

// Header values of every SET.
const (
	// MediaType is the JOSE typ of a SET (RFC 8417 §2.3) and, as application/secevent+jwt, the
	// Content-Type of a pushed SET (RFC 8935).
	MediaType = "secevent+jwt"
	// Algorithm is the only signing algorithm used.
	Algorithm = "RS256"
	// MinRSABits is the smallest RSA key accepted for signing (CAEP interoperability profile).
	MinRSABits = 2048
)

// Key is one signing key.
type Key struct {
	// ID is the key's kid, as published in the JWKS and sent in each SET's header.
	ID string
	// Private is the RSA private key.
	Private *rsa.PrivateKey
}

// Signer signs SETs with one key and publishes all keys, so that receivers verify SETs signed
// with a key being retired as well as with the new one.
//
// RS256 signing costs about a millisecond of CPU per SET with a 2048-bit key (see
// BenchmarkSign), which is why idpsync signs at delivery, not in the transaction that records the
// SET: the claims (jti and iat included) are fixed when the SET is recorded, and RSASSA-PKCS1-v1_5
// is deterministic, so signing again on a retry sends the same bytes unless the key rotated.
type Signer struct {
	active string
	signer jose.Signer
	jwks   []byte
}

// NewSigner returns a signer that signs with the key whose ID is activeID ("" for the first key)
// and publishes every key in its JWKS. Keys smaller than MinRSABits and duplicate ids are refused.
func NewSigner(keys []Key, activeID string) (*Signer, error) {
	if len(keys) == 0 {
		return nil, errors.New("no signing key")
	}
	set := jose.JSONWebKeySet{}
	seen := map[string]bool{}
	var active *Key
	for i := range keys {
		k := &keys[i]
		switch {
		case k.Private == nil:
			return nil, fmt.Errorf("key %d has no private key", i)
		case k.Private.N.BitLen() < MinRSABits:
			return nil, fmt.Errorf("key %q has %d bits; RS256 keys need at least %d", k.ID, k.Private.N.BitLen(), MinRSABits)
		case k.ID == "":
			return nil, fmt.Errorf("key %d has no id", i)
		case seen[k.ID]:
			return nil, fmt.Errorf("two keys have the id %q", k.ID)
		}
		seen[k.ID] = true
		if err := k.Private.Validate(); err != nil {
			return nil, fmt.Errorf("key %q is not a valid RSA key: %w", k.ID, err)
		}
		set.Keys = append(set.Keys, jose.JSONWebKey{Key: &k.Private.PublicKey, KeyID: k.ID, Algorithm: Algorithm, Use: "sig"})
		if active == nil && (activeID == "" || k.ID == activeID) {
			active = k
		}
	}
	if active == nil {
		return nil, fmt.Errorf("no key has the id %q", activeID)
	}
	signer, err := jose.NewSigner(
		jose.SigningKey{Algorithm: jose.RS256, Key: jose.JSONWebKey{Key: active.Private, KeyID: active.ID, Algorithm: Algorithm}},
		(&jose.SignerOptions{}).WithType(MediaType))
	if err != nil {
		return nil, fmt.Errorf("preparing the signer: %w", err)
	}
	jwks, err := json.Marshal(set)
	if err != nil {
		return nil, fmt.Errorf("encoding the JWKS: %w", err)
	}
	return &Signer{active: active.ID, signer: signer, jwks: jwks}, nil
}

// KeyID returns the kid of the key that signs.
func (s *Signer) KeyID() string { return s.active }

// JWKS returns the public keys as a JSON Web Key Set.
func (s *Signer) JWKS() []byte { return s.jwks }

// Sign returns the SET with claims as its payload, in compact serialization.
func (s *Signer) Sign(claims []byte) (string, error) {
	obj, err := s.signer.Sign(claims)
	if err != nil {
		return "", fmt.Errorf("signing a SET: %w", err)
	}
	return obj.CompactSerialize()
}

// LoadKey reads an RSA private key from a PEM file (PKCS#1 "RSA PRIVATE KEY" or PKCS#8
// "PRIVATE KEY"). An empty id is replaced by the key's RFC 7638 thumbprint.
func LoadKey(path, id string) (Key, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Key{}, fmt.Errorf("reading signing key: %w", err)
	}
	return ParseKey(data, id)
}

// ParseKey reads an RSA private key from PEM data; see LoadKey.
func ParseKey(data []byte, id string) (Key, error) {
	block, _ := pem.Decode(data)
	if block == nil {
		return Key{}, errors.New("no PEM block found; the key must be a PEM file")
	}
	var priv *rsa.PrivateKey
	switch block.Type {
	case "RSA PRIVATE KEY":
		k, err := x509.ParsePKCS1PrivateKey(block.Bytes)
		if err != nil {
			return Key{}, fmt.Errorf("parsing a PKCS#1 key: %w", err)
		}
		priv = k
	case "PRIVATE KEY":
		k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
		if err != nil {
			return Key{}, fmt.Errorf("parsing a PKCS#8 key: %w", err)
		}
		rk, ok := k.(*rsa.PrivateKey)
		if !ok {
			return Key{}, fmt.Errorf("the key is a %T; SETs are signed with RS256, which needs an RSA key", k)
		}
		priv = rk
	default:
		return Key{}, fmt.Errorf("PEM block %q is not a private key; use PKCS#1 (RSA PRIVATE KEY) or PKCS#8 (PRIVATE KEY)", block.Type)
	}
	if priv.N.BitLen() < MinRSABits {
		return Key{}, fmt.Errorf("the key has %d bits; RS256 keys need at least %d", priv.N.BitLen(), MinRSABits)
	}
	if id == "" {
		tp, err := (&jose.JSONWebKey{Key: &priv.PublicKey}).Thumbprint(crypto.SHA256)
		if err != nil {
			return Key{}, fmt.Errorf("computing the key's thumbprint: %w", err)
		}
		id = base64.RawURLEncoding.EncodeToString(tp)
	}
	return Key{ID: id, Private: priv}, nil
}

// NewJTI returns a fresh SET identifier: 128 random bits in hex.
func NewJTI() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b) // crypto/rand.Read never fails
	return hex.EncodeToString(b)
}

// Audience is a JWT aud: one value marshals as a string, several as an array.
type Audience []string

// MarshalJSON implements json.Marshaler.
func (a Audience) MarshalJSON() ([]byte, error) {
	if len(a) == 1 {
		return json.Marshal(a[0])
	}
	return json.Marshal([]string(a))
}

// UnmarshalJSON implements json.Unmarshaler.
func (a *Audience) UnmarshalJSON(b []byte) error {
	var one string
	if err := json.Unmarshal(b, &one); err == nil {
		*a = Audience{one}
		return nil
	}
	var many []string
	if err := json.Unmarshal(b, &many); err != nil {
		return errors.New("aud must be a string or an array of strings")
	}
	*a = many
	return nil
}

// Claims is the payload of a SET (RFC 8417, profiled by SSF 1.0 §4.1): never sub, never exp,
// exactly one event.
type Claims struct {
	Iss    string                    `json:"iss"`
	Aud    Audience                  `json:"aud"`
	Jti    string                    `json:"jti"`
	Iat    int64                     `json:"iat"`
	Txn    string                    `json:"txn,omitempty"`
	SubID  Subject                   `json:"sub_id"`
	Events map[string]map[string]any `json:"events"`
}

// Claims returns the payload of the SET that carries e from issuer iss to aud.
func (e Event) Claims(iss string, aud Audience, jti string, iat time.Time) ([]byte, error) {
	if err := e.Validate(); err != nil {
		return nil, err
	}
	body := e.Body
	if body == nil {
		body = map[string]any{}
	}
	return json.Marshal(Claims{Iss: iss, Aud: aud, Jti: jti, Iat: iat.Unix(), Txn: e.Txn, SubID: e.Subject,
		Events: map[string]map[string]any{e.Type: body}})
}
