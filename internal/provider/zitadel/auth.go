package zitadel

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/idpsync/idpsync/internal/idpclient"
)

// ScopeZitadelAPI is the scope that puts Zitadel's own API project in a token's audience; without
// it the management API answers 401.
const ScopeZitadelAPI = "urn:zitadel:iam:org:project:id:zitadel:aud"

// JWTBearerGrant is the OAuth grant type of the private key JWT method (RFC 7523).
const JWTBearerGrant = "urn:ietf:params:oauth:grant-type:jwt-bearer"

// assertionLifetime is how long a signed assertion is valid; Zitadel accepts up to one hour.
const assertionLifetime = time.Hour

// KeyFile is a service user's key file as Zitadel's console downloads it:
// {"type":"serviceaccount","keyId":"…","key":"-----BEGIN RSA PRIVATE KEY-----…","userId":"…"}.
type KeyFile struct {
	Type           string `json:"type"`
	KeyID          string `json:"keyId"`
	Key            string `json:"key"`
	UserID         string `json:"userId"`
	ExpirationDate string `json:"expirationDate,omitempty"`

	private *rsa.PrivateKey
}

// ParseKeyFile decodes and checks a key file. Errors never quote the key.
func ParseKeyFile(data []byte) (*KeyFile, error) {
	var kf KeyFile
	if err := json.Unmarshal(data, &kf); err != nil {
		return nil, errors.New("zitadel: the key file is not valid JSON; pass the file downloaded from the service user's Keys tab")
	}
	switch {
	case kf.Type != "serviceaccount":
		return nil, fmt.Errorf("zitadel: the key file has type %q; only service user keys (type \"serviceaccount\") are supported", kf.Type)
	case kf.KeyID == "":
		return nil, errors.New("zitadel: the key file has no keyId")
	case kf.UserID == "":
		return nil, errors.New("zitadel: the key file has no userId")
	}
	block, _ := pem.Decode([]byte(kf.Key))
	if block == nil {
		return nil, errors.New("zitadel: the key file's key is not a PEM block")
	}
	var key any
	var err error
	switch block.Type {
	case "RSA PRIVATE KEY":
		key, err = x509.ParsePKCS1PrivateKey(block.Bytes)
	case "PRIVATE KEY":
		key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	default:
		return nil, fmt.Errorf("zitadel: the key file's key is a %q PEM block, want an RSA private key", block.Type)
	}
	if err != nil {
		return nil, errors.New("zitadel: the key file's key does not parse as an RSA private key")
	}
	rk, ok := key.(*rsa.PrivateKey)
	if !ok {
		return nil, errors.New("zitadel: the key file's key is not an RSA key")
	}
	kf.private = rk
	return &kf, nil
}

// SignAssertion returns an RS256 JWT asserting the key's user for audience, as the JWT profile
// grant expects: header {alg, kid}, claims iss = sub = userId, aud, iat, exp.
func (kf *KeyFile) SignAssertion(audience string, now time.Time) (string, error) {
	header, _ := json.Marshal(map[string]string{"alg": "RS256", "kid": kf.KeyID, "typ": "JWT"})
	claims, _ := json.Marshal(map[string]any{
		"iss": kf.UserID, "sub": kf.UserID, "aud": audience,
		"iat": now.Unix(), "exp": now.Add(assertionLifetime).Unix(),
	})
	enc := base64.RawURLEncoding
	signing := enc.EncodeToString(header) + "." + enc.EncodeToString(claims)
	sum := sha256.Sum256([]byte(signing))
	sig, err := rsa.SignPKCS1v15(rand.Reader, kf.private, crypto.SHA256, sum[:])
	if err != nil {
		return "", fmt.Errorf("zitadel: signing the assertion: %w", err)
	}
	return signing + "." + enc.EncodeToString(sig), nil
}

type tokenResponse struct {
	AccessToken string `json:"access_token"`
	TokenType   string `json:"token_type"`
	ExpiresIn   int64  `json:"expires_in"`
}

// tokenFetcher returns the TokenFetchFunc of a token-endpoint method.
func tokenFetcher(t *idpclient.Transport, form func(now time.Time) (url.Values, http.Header, error), now func() time.Time) idpclient.TokenFetchFunc {
	return func(ctx context.Context) (idpclient.Token, error) {
		at := now()
		f, h, err := form(at)
		if err != nil {
			return idpclient.Token{}, err
		}
		var out tokenResponse
		req := &idpclient.Request{Method: http.MethodPost, Path: "/oauth/v2/token", Form: f, Header: h, Idempotent: true, NoAuth: true}
		if err := t.Do(ctx, req, &out); err != nil {
			return idpclient.Token{}, fmt.Errorf("fetching an access token: %w", err)
		}
		if !strings.EqualFold(out.TokenType, "Bearer") && out.TokenType != "" {
			return idpclient.Token{}, fmt.Errorf("fetching an access token: token type %q is not Bearer", out.TokenType)
		}
		tok := idpclient.Token{AccessToken: out.AccessToken}
		if out.ExpiresIn > 0 {
			tok.Expiry = at.Add(time.Duration(out.ExpiresIn) * time.Second)
		}
		return tok, nil
	}
}
