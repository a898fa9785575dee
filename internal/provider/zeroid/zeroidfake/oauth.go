package zeroidfake

import (
	"crypto/subtle"
	"encoding/base64"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/idpsync/idpsync/internal/fakeidp"
)

// The public OAuth routes: the token endpoint (api_key and client_credentials grants), and token
// introspection and revocation with ZeroID's client authentication in either mode.

var tokenSchema = schema{open: true, redact: true, fields: []field{
	{name: "grant_type", kind: kString, required: true, minLength: 1},
	{name: "api_key", kind: kString},
	{name: "scope", kind: kString},
	{name: "client_id", kind: kString},
	{name: "client_secret", kind: kString},
	{name: "account_id", kind: kString},
	{name: "project_id", kind: kString},
}}

func oauthError(w http.ResponseWriter, status int, code, desc string) {
	fakeidp.OAuthError(w, status, code, desc)
}

func (f *Fake) token(w http.ResponseWriter, r *http.Request, _ []string) {
	body, ok := tokenSchema.body(w, r)
	if !ok {
		return
	}
	switch grant := str(body, "grant_type"); grant {
	case "api_key":
		f.mu.Lock()
		t, err := f.mintLocked(str(body, "api_key"), str(body, "scope"))
		var out map[string]any
		if err == nil {
			i := f.byID[t.identityID]
			out = map[string]any{"access_token": t.value, "token_type": "Bearer", "expires_in": int(f.ttl.Seconds()), "jti": t.jti,
				"iat": t.iat.Unix(), "account_id": t.account, "project_id": t.project, "external_id": i.ExternalID}
			if t.actor != "" {
				out["user_id"] = t.actor
			}
			if t.scope != "" {
				out["scope"] = t.scope
			}
		}
		f.mu.Unlock()
		if err != nil {
			e := err.(*OAuthError)
			oauthError(w, e.Status, e.Code, e.Description)
			return
		}
		fakeidp.WriteJSON(w, http.StatusOK, out)
	case "client_credentials":
		f.clientCredentials(w, body)
	default:
		// The fake implements two grants; ZeroID names an unknown grant type in the description.
		oauthError(w, http.StatusBadRequest, "unsupported_grant_type", grant)
	}
}

// clientCredentials reads the client's credentials from the body only (ZeroID ignores Basic on the
// token endpoint) and mints for the identity whose external_id is the client_id in the tenant the
// body names.
func (f *Fake) clientCredentials(w http.ResponseWriter, body map[string]any) {
	acct, proj, id, secret := str(body, "account_id"), str(body, "project_id"), str(body, "client_id"), str(body, "client_secret")
	if acct == "" || proj == "" {
		oauthError(w, http.StatusBadRequest, "invalid_request", "account_id and project_id are required for client_credentials grant")
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	c := f.clients[id]
	if c == nil || c.secret == "" || subtle.ConstantTimeCompare([]byte(c.secret), []byte(secret)) != 1 {
		oauthError(w, http.StatusUnauthorized, "invalid_client", "invalid client credentials")
		return
	}
	if !slices.Contains(c.GrantTypes, "client_credentials") {
		oauthError(w, http.StatusBadRequest, "unauthorized_client", "client not authorized for client_credentials grant")
		return
	}
	if len(c.Scopes) == 0 {
		oauthError(w, http.StatusBadRequest, "invalid_scope", "client is registered with no scopes and cannot be granted any")
		return
	}
	scopes := c.Scopes
	if requested := strings.Fields(str(body, "scope")); len(requested) > 0 {
		scopes = slices.DeleteFunc(requested, func(s string) bool { return !slices.Contains(c.Scopes, s) })
	}
	var ident *Identity
	if t := f.tenants[tenantKey{acct, proj}]; t != nil {
		for _, i := range t.Rows {
			if i.ExternalID == id {
				ident = i
			}
		}
	}
	if ident == nil {
		oauthError(w, http.StatusUnauthorized, "invalid_client", "no identity found for client_id "+id)
		return
	}
	if ident.Status != StatusActive {
		oauthError(w, http.StatusBadRequest, "invalid_grant", "identity is suspended or deactivated")
		return
	}
	t := f.issueTokenLocked(ident, strings.Join(scopes, " "), "")
	fakeidp.WriteJSON(w, http.StatusOK, map[string]any{"access_token": t.value, "token_type": "Bearer", "expires_in": int(f.ttl.Seconds()),
		"scope": t.scope, "jti": t.jti, "iat": t.iat.Unix()})
}

var inspectSchema = schema{open: true, redact: true, fields: []field{
	{name: "token", kind: kString, required: true, minLength: 1},
	{name: "client_id", kind: kString},
	{name: "client_secret", kind: kString},
}}

// authError is a client-authentication failure of introspection or revocation.
type authError struct {
	status     int
	code, desc string
	challenge  bool // the attempt used Basic: echo the scheme in WWW-Authenticate
}

// clientAuth is ZeroID's resolveInspectionClientAuth and VerifyPresentedClientAuth: Basic or body
// credentials (never both), verified when presented; anonymous callers pass only in
// ModePermissive; a registered public client passes with its client_id alone. Authorization
// headers of another scheme are ignored.
func (f *Fake) clientAuth(r *http.Request, body map[string]any) *authError {
	id, secret := str(body, "client_id"), str(body, "client_secret")
	viaBasic := false
	if h := r.Header.Get("Authorization"); len(h) >= 6 && strings.EqualFold(h[:6], "Basic ") {
		viaBasic = true
		if id != "" || secret != "" {
			return &authError{status: http.StatusBadRequest, code: "invalid_request", desc: "only one client authentication method may be used per request (RFC 6749 §2.3)"}
		}
		raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(h[6:]))
		u, p, found := strings.Cut(string(raw), ":")
		var uerr, perr error
		if err == nil && found {
			u, uerr = url.QueryUnescape(u)
			p, perr = url.QueryUnescape(p)
		}
		if err != nil || !found || uerr != nil || perr != nil {
			return &authError{status: http.StatusBadRequest, code: "invalid_request", desc: "malformed Basic authorization header"}
		}
		id, secret = u, p
	}
	unauthorized := func(desc string) *authError {
		return &authError{status: http.StatusUnauthorized, code: "invalid_client", desc: desc, challenge: viaBasic}
	}
	switch {
	case id == "" && secret == "":
		if f.mode == ModePermissive {
			return nil
		}
		return unauthorized("client authentication is required for this endpoint")
	case id == "":
		return unauthorized("client_id is required when a client_secret is supplied")
	}
	f.mu.Lock()
	c := f.clients[id]
	f.mu.Unlock()
	switch {
	case secret == "" && c != nil && !c.Confidential:
		return nil
	case secret == "":
		return unauthorized("client authentication required")
	case c == nil || c.secret == "" || subtle.ConstantTimeCompare([]byte(c.secret), []byte(secret)) != 1:
		return unauthorized("invalid client credentials")
	}
	return nil
}

func (e *authError) header(w http.ResponseWriter) {
	if e.challenge && e.status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Basic realm="zeroid", charset="UTF-8"`)
	}
}

func (f *Fake) introspect(w http.ResponseWriter, r *http.Request, _ []string) {
	body, ok := inspectSchema.body(w, r)
	if !ok {
		return
	}
	if e := f.clientAuth(r, body); e != nil {
		e.header(w)
		oauthError(w, e.status, e.code, e.desc)
		return
	}
	f.mu.Lock()
	t := f.tokens[str(body, "token")]
	var out map[string]any
	if t != nil && t.activeAt(time.Now()) {
		i := f.byID[t.identityID]
		out = map[string]any{"active": true, "sub": f.wimseURI(i), "iss": "http://" + r.Host, "jti": t.jti, "iat": t.iat.Unix(),
			"exp": t.exp.Unix(), "scope": t.scope, "account_id": t.account, "project_id": t.project, "external_id": i.ExternalID,
			"identity_type": i.IdentityType, "trust_level": i.TrustLevel}
		if t.actor != "" {
			out["act"] = map[string]any{"sub": t.actor}
		}
	}
	f.mu.Unlock()
	if out == nil {
		out = map[string]any{"active": false} // revoked, expired or unknown: nothing more
	}
	fakeidp.WriteJSON(w, http.StatusOK, out)
}

// revoke is RFC 7009: once client authentication passes it always answers {"revoked":true}, for
// unknown tokens and API key strings too. It never touches the identity's API keys.
func (f *Fake) revoke(w http.ResponseWriter, r *http.Request, _ []string) {
	body, ok := inspectSchema.body(w, r)
	if !ok {
		return
	}
	if e := f.clientAuth(r, body); e != nil {
		e.header(w)
		writeHuma(w, r, e.status, "OAuthRevokeOutputBody", map[string]any{"revoked": false, "error": e.code, "error_description": e.desc})
		return
	}
	value := str(body, "token")
	f.mu.Lock()
	if t := f.tokens[value]; t != nil && !t.revoked {
		t.revoked, t.reason = true, "oauth2_revocation"
	}
	f.mu.Unlock()
	f.RecordMutation("token.revoke", value, nil)
	writeHuma(w, r, http.StatusOK, "OAuthRevokeOutputBody", map[string]any{"revoked": true})
}
