package zeroidfake_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/idpsync/idpsync/internal/provider/zeroid/zeroidfake"
)

// The conformance suite: the exchanges reference/real-servers.md recorded from a real ZeroID
// (highflame-ai/zeroid f08f979), and a few more checked against it, as one table of requests and
// the status, Content-Type and body fields they get. The fake must pass it in both modes; so must
// a real ZeroID:
//
//	ZEROID_TEST_URL_P=http://127.0.0.1:25101 ZEROID_TEST_URL_S=http://127.0.0.1:25102 \
//	    go test -race -run TestConformance ./internal/provider/zeroid/zeroidfake
//
// ZEROID_TEST_URL_P names a ZeroID with allow_unauthenticated_token_inspection: true (mode P),
// ZEROID_TEST_URL_S one with false (mode S, production). Nothing else is needed: each run works
// in tenants of its own (acct_conf_<run>, and another project and account beside it) and creates
// its own OAuth clients, identities and keys, with fresh names, so it can run against a server
// any number of times. It leaves those behind.

type tenantSel int

const (
	noTenant     tenantSel = iota
	mainTenant             // the run's account and project
	accountOnly            // X-Account-ID alone
	otherProject           // the run's account, another project
	otherAccount           // another account
)

// exchange is one request of the table and what a real ZeroID answers.
type exchange struct {
	name   string
	method string
	path   string // templated with {{var}}
	tenant tenantSel
	user   string // X-User-ID
	ct     string // the request's Content-Type; "" sends none
	body   string // templated
	basic  string // "id:secret", templated: sent as client_secret_basic
	bearer string // sent as Authorization: Bearer
	want   expect
	wantS  *expect // mode S's answer where it differs from mode P's
	save   map[string]string
}

type expect struct {
	status int
	ct     string // the media type, or "-" for no Content-Type
	text   *string
	fields map[string]any // dotted JSON path → a literal or a matcher
	header map[string][]string
}

const (
	jsonCT    = "application/json"
	problemCT = "application/problem+json"
	formCT    = "application/x-www-form-urlencoded"
	textCT    = "text/plain"
	noCT      = "-"
)

type matcher func(v any, present bool) string

var absent matcher = func(v any, present bool) string {
	if present {
		return fmt.Sprintf("present (%v), want absent", v)
	}
	return ""
}

var present matcher = func(_ any, present bool) string {
	if !present {
		return "absent, want present"
	}
	return ""
}

func prefix(p string) matcher {
	return func(v any, present bool) string {
		if s, ok := v.(string); !present || !ok || !strings.HasPrefix(s, p) {
			return fmt.Sprintf("%v, want a string starting %q", v, p)
		}
		return ""
	}
}

func length(n int) matcher {
	return func(v any, present bool) string {
		if l, ok := v.([]any); !present || !ok || len(l) != n {
			return fmt.Sprintf("%v, want an array of %d", v, n)
		}
		return ""
	}
}

func ptr(s string) *string { return &s }

func e(status int, ct string, fields map[string]any) expect {
	return expect{status: status, ct: ct, fields: fields}
}

// problem is a Huma problem with its detail.
func problem(status int, detail string, more ...any) expect {
	f := map[string]any{"title": http.StatusText(status), "status": float64(status), "detail": detail, "$schema": prefix("http")}
	for i := 0; i+1 < len(more); i += 2 {
		f[more[i].(string)] = more[i+1]
	}
	return e(status, problemCT, f)
}

// oauth is an RFC 6749 error.
func oauth(status int, code, desc string) expect {
	return e(status, jsonCT, map[string]any{"error": code, "error_description": desc, "$schema": absent})
}

// envelope is the Content-Type gate's ZEROID-40001 answer.
func envelope(msg string) expect {
	return e(400, jsonCT, map[string]any{"error.code": 400.0, "error.internalCode": "ZEROID-40001", "error.message": msg, "error.status": "BAD_REQUEST"})
}

var routeNotFound = expect{status: 404, ct: textCT, text: ptr("404 page not found\n")}

func methodNotAllowed(allow ...string) expect {
	return expect{status: 405, ct: noCT, text: ptr(""), header: map[string][]string{"Allow": allow}}
}

func active(b bool) expect { return e(200, jsonCT, map[string]any{"active": b}) }

var basicChallenge = map[string][]string{"Www-Authenticate": {`Basic realm="zeroid", charset="UTF-8"`}}

func withHeader(x expect, h map[string][]string) expect { x.header = h; return x }

func save(kv ...string) map[string]string {
	m := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return m
}

func sPtr(x expect) *expect { return &x }

// Shorthands for rows.
func create(name, extID, owner, user string, save map[string]string) exchange {
	return exchange{name: name, method: "POST", path: "/api/v1/identities", tenant: mainTenant, user: user, ct: jsonCT,
		body: `{"external_id":"` + extID + `","name":"` + extID + `","owner_user_id":"` + owner + `"}`,
		want: e(201, jsonCT, map[string]any{"external_id": extID, "status": "active"}), save: save}
}

func createIn(ten tenantSel, extID, owner string, save map[string]string) exchange {
	x := create("create "+extID, extID, owner, "admin@example.com", save)
	x.tenant = ten
	return x
}

func keyFor(idVar, saveAs string) exchange {
	return exchange{name: "api key for " + idVar, method: "POST", path: "/api/v1/api-keys", tenant: mainTenant, user: "admin@example.com", ct: jsonCT,
		body: `{"name":"k","identity_id":"{{` + idVar + `}}"}`, want: e(201, jsonCT, map[string]any{"key": prefix("zid_sk_")}), save: save(saveAs, "key")}
}

func keyIn(ten tenantSel, idVar, saveAs string) exchange {
	x := keyFor(idVar, saveAs)
	x.tenant = ten
	return x
}

func mint(keyVar, saveAs string) exchange {
	return exchange{name: "mint with " + keyVar, method: "POST", path: "/oauth2/token", ct: jsonCT,
		body: `{"grant_type":"api_key","api_key":"{{` + keyVar + `}}"}`,
		want: e(200, jsonCT, map[string]any{"token_type": "Bearer", "access_token": present}), save: save(saveAs, "access_token")}
}

func mintRefused(keyVar, desc string) exchange {
	return exchange{name: "mint with " + keyVar + " refused: " + desc, method: "POST", path: "/oauth2/token", ct: jsonCT,
		body: `{"grant_type":"api_key","api_key":"{{` + keyVar + `}}"}`, want: oauth(400, "invalid_grant", desc)}
}

// inspect introspects a token with the run's confidential client (client_secret_basic).
func inspect(tokVar string, want bool) exchange {
	return exchange{name: fmt.Sprintf("%s active %v", tokVar, want), method: "POST", path: "/oauth2/token/introspect", ct: formCT,
		body: "token={{" + tokVar + "}}", basic: "cc-{{run}}:{{ccsecret}}", want: active(want)}
}

func patch(idVar, user, body string, want expect) exchange {
	return exchange{name: "PATCH " + idVar + " " + body + " as " + user, method: "PATCH", path: "/api/v1/identities/{{" + idVar + "}}",
		tenant: mainTenant, user: user, ct: jsonCT, body: body, want: want}
}

func get(ten tenantSel, idVar string, want expect) exchange {
	return exchange{name: "GET " + idVar, method: "GET", path: "/api/v1/identities/{{" + idVar + "}}", tenant: ten, want: want}
}

func ingest(name string, ten tenantSel, body string, want expect) exchange {
	return exchange{name: name, method: "POST", path: "/api/v1/signals/ingest", tenant: ten, ct: jsonCT, body: body, want: want}
}

func list(query string, want expect) exchange {
	return exchange{name: "list ?" + query, method: "GET", path: "/api/v1/identities?" + query, tenant: mainTenant, want: want}
}

func offboard(name, user, body string, want expect) exchange {
	return exchange{name: name, method: "POST", path: "/api/v1/identities/offboard-by-owner", tenant: mainTenant, user: user, ct: jsonCT, body: body, want: want}
}

var exchanges = []exchange{
	// §1, §8: health, keys, and the shapes of routing errors.
	{name: "health", method: "GET", path: "/health", want: e(200, jsonCT, map[string]any{"status": "healthy", "service": "zeroid"})},
	{name: "jwks", method: "GET", path: "/.well-known/jwks.json", want: e(200, jsonCT, map[string]any{"keys.0.kty": present, "$schema": absent})},
	{name: "double slash is a route 404", method: "GET", path: "//api/v1/identities", tenant: mainTenant, want: routeNotFound},
	{name: "unknown route", method: "GET", path: "/api/v1/nope", tenant: mainTenant, want: routeNotFound},
	{name: "trailing slash is a route 404", method: "GET", path: "/api/v1/identities/", tenant: mainTenant, want: routeNotFound},
	{name: "gate before routing", method: "POST", path: "/api/v1/nope", tenant: mainTenant, ct: "text/plain", body: "x",
		want: envelope("Content-Type must be application/json, got: text/plain")},
	{name: "gate on the token endpoint", method: "POST", path: "/oauth2/token", ct: "text/plain", body: "x",
		want: envelope("Content-Type must be application/json, got: text/plain")},
	{name: "bodyless POST", method: "POST", path: "/api/v1/identities", tenant: mainTenant,
		want: envelope("Content-Type header is required for POST requests")},
	{name: "GET on the token endpoint", method: "GET", path: "/oauth2/token", want: methodNotAllowed("POST")},
	{name: "stream without tenant", method: "GET", path: "/api/v1/signals/stream",
		want: e(400, jsonCT, map[string]any{"error.internalCode": "ZEROID-40001", "error.message": "missing X-Account-ID or X-Project-ID header"})},

	// §2: identities, the tenant, the actor.
	{name: "one tenant header", method: "POST", path: "/api/v1/identities", tenant: accountOnly, ct: jsonCT,
		body: `{"external_id":"x-{{run}}","name":"x","owner_user_id":"u"}`, want: problem(401, "missing tenant context")},
	{name: "create, Authorization ignored", method: "POST", path: "/api/v1/identities", tenant: mainTenant, user: "admin@example.com",
		bearer: "whatever", ct: jsonCT, body: `{"external_id":"a1-{{run}}","name":"Agent A1","owner_user_id":"alice-{{run}}"}`,
		want: e(201, jsonCT, map[string]any{"$schema": prefix("http"), "id": present, "account_id": "{{acct}}", "project_id": "{{proj}}",
			"external_id": "a1-{{run}}", "identity_type": "agent", "sub_type": "tool_agent", "trust_level": "unverified", "status": "active",
			"origin": "native", "owner_user_id": "alice-{{run}}", "created_by": "admin@example.com", "modified_by": absent,
			"wimse_uri": prefix("spiffe://"), "allowed_scopes": length(0)}),
		save: save("a1", "id")},
	{name: "system: actor dropped", method: "POST", path: "/api/v1/identities", tenant: mainTenant, user: "System:cleanup-worker", ct: jsonCT,
		body: `{"external_id":"a2-{{run}}","name":"A2","owner_user_id":"alice-{{run}}"}`, want: e(201, jsonCT, map[string]any{"created_by": absent})},
	{name: "duplicate external_id", method: "POST", path: "/api/v1/identities", tenant: mainTenant, ct: jsonCT,
		body: `{"external_id":"a1-{{run}}","name":"dup","owner_user_id":"u"}`, want: problem(409, "identity with this external_id already exists")},
	{name: "owner required", method: "POST", path: "/api/v1/identities", tenant: mainTenant, ct: jsonCT, body: `{"external_id":"x-{{run}}","name":"x"}`,
		want: problem(422, "validation failed", "errors.0.message", "expected required property owner_user_id to be present", "errors.0.location", "body")},
	{name: "external_id not a SPIFFE segment", method: "POST", path: "/api/v1/identities", tenant: mainTenant, ct: jsonCT,
		body: `{"external_id":"a/b","name":"x","owner_user_id":"u"}`,
		want: problem(400, "invalid identity field: external_id contains character '/' not allowed in a SPIFFE path segment (allowed: a-z A-Z 0-9 . - _)")},
	{name: "malformed JSON", method: "POST", path: "/api/v1/identities", tenant: mainTenant, ct: jsonCT, body: `{"external_id":`,
		want: problem(400, "validation failed", "errors.0.location", "body")},
	{name: "empty body", method: "POST", path: "/api/v1/identities", tenant: mainTenant, ct: jsonCT, want: problem(400, "request body is required")},
	{name: "unknown property", method: "POST", path: "/api/v1/identities", tenant: mainTenant, ct: jsonCT,
		body: `{"external_id":"x-{{run}}","owner_user_id":"u","foo":1}`,
		want: problem(422, "validation failed", "errors.0.message", "unexpected property", "errors.0.location", "body.foo")},
	{name: "wrong type", method: "POST", path: "/api/v1/identities", tenant: mainTenant, ct: jsonCT, body: `{"external_id":5,"owner_user_id":"u"}`,
		want: problem(422, "validation failed", "errors.0.message", "expected string", "errors.0.location", "body.external_id")},
	get(mainTenant, "a1", e(200, jsonCT, map[string]any{"id": "{{a1}}", "status": "active"})),
	get(otherAccount, "a1", problem(404, "identity not found")),
	get(mainTenant, "nouuid", problem(404, "identity not found")),
	{name: "GET a non-UUID id", method: "GET", path: "/api/v1/identities/not-a-uuid", tenant: mainTenant, want: problem(404, "identity not found")},
	{name: "PUT an identity", method: "PUT", path: "/api/v1/identities/{{a1}}", tenant: mainTenant, ct: jsonCT, body: "{}", want: methodNotAllowed("GET", "PATCH", "DELETE")},
	{name: "PUT offboard-by-owner", method: "PUT", path: "/api/v1/identities/offboard-by-owner", tenant: mainTenant, ct: jsonCT, body: "{}",
		want: methodNotAllowed("POST", "GET", "PATCH", "DELETE")},
	{name: "GET offboard-by-owner is an identity lookup", method: "GET", path: "/api/v1/identities/offboard-by-owner", tenant: mainTenant,
		want: problem(404, "identity not found")},

	// §2: API keys and the api_key grant.
	{name: "api key", method: "POST", path: "/api/v1/api-keys", tenant: mainTenant, user: "admin@example.com", ct: jsonCT,
		body: `{"name":"a1 key","identity_id":"{{a1}}"}`,
		want: e(201, jsonCT, map[string]any{"key": prefix("zid_sk_"), "key_prefix": prefix("zid_sk_"), "environment": "live", "id": present}),
		save: save("k1", "key", "k1id", "id")},
	{name: "api key without identity", method: "POST", path: "/api/v1/api-keys", tenant: mainTenant, ct: jsonCT, body: `{"name":"k"}`,
		want: problem(500, "failed to create API key")},
	{name: "api key read back", method: "GET", path: "/api/v1/api-keys/{{k1id}}", tenant: mainTenant,
		want: e(200, jsonCT, map[string]any{"state": "active", "identity_id": "{{a1}}", "key": absent})},
	{name: "register agent", method: "POST", path: "/api/v1/agents/register", tenant: mainTenant, user: "alice-{{run}}", ct: jsonCT,
		body: `{"name":"Agent A3","external_id":"a3-{{run}}"}`,
		want: e(201, jsonCT, map[string]any{"identity.owner_user_id": "alice-{{run}}", "identity.created_by": "alice-{{run}}",
			"identity.status": "active", "identity.api_key_prefix": prefix("zid_sk_"), "api_key": prefix("zid_sk_")}),
		save: save("a3", "identity.id", "k3", "api_key")},
	{name: "register agent without owner", method: "POST", path: "/api/v1/agents/register", tenant: mainTenant, ct: jsonCT,
		body: `{"name":"AX","external_id":"ax-{{run}}"}`, want: problem(500, "failed to register agent")},
	{name: "api_key grant", method: "POST", path: "/oauth2/token", ct: jsonCT, body: `{"grant_type":"api_key","api_key":"{{k1}}"}`,
		want: e(200, jsonCT, map[string]any{"token_type": "Bearer", "expires_in": present, "jti": present, "iat": present, "external_id": "a1-{{run}}",
			"account_id": "{{acct}}", "project_id": "{{proj}}", "user_id": "admin@example.com", "$schema": absent}),
		save: save("t1", "access_token")},
	{name: "api_key grant, form, scope", method: "POST", path: "/oauth2/token", ct: formCT, body: "grant_type=api_key&api_key={{k1}}&scope=read+write",
		want: e(200, jsonCT, map[string]any{"scope": "read write"})},
	{name: "unknown key", method: "POST", path: "/oauth2/token", ct: jsonCT, body: `{"grant_type":"api_key","api_key":"zid_sk_nope"}`,
		want: oauth(400, "invalid_grant", "invalid api key")},
	{name: "no key", method: "POST", path: "/oauth2/token", ct: jsonCT, body: `{"grant_type":"api_key"}`,
		want: oauth(400, "invalid_request", "api_key is required for api_key grant")},
	{name: "empty form key is no key", method: "POST", path: "/oauth2/token", ct: formCT, body: "grant_type=api_key&api_key=",
		want: oauth(400, "invalid_request", "api_key is required for api_key grant")},
	{name: "unsupported grant", method: "POST", path: "/oauth2/token", ct: jsonCT, body: `{"grant_type":"password"}`,
		want: oauth(400, "unsupported_grant_type", "password")},
	{name: "no grant_type", method: "POST", path: "/oauth2/token", ct: jsonCT, body: `{}`,
		want: problem(422, "validation failed", "errors.0.message", "expected required property grant_type to be present", "errors.0.value", "[redacted]")},
	{name: "repeated form parameter", method: "POST", path: "/oauth2/token", ct: formCT, body: "grant_type=api_key&grant_type=api_key",
		want: envelope("duplicate OAuth parameter: grant_type")},

	// §2: OAuth clients and client_credentials.
	{name: "confidential client", method: "POST", path: "/api/v1/oauth/clients", ct: jsonCT,
		body: `{"client_id":"cc-{{run}}","name":"CC","confidential":true,"grant_types":["client_credentials"],"scopes":["identities:read"]}`,
		want: e(201, jsonCT, map[string]any{"client.client_type": "confidential", "client.token_endpoint_auth_method": "client_secret_basic",
			"client_secret": present}), save: save("ccsecret", "client_secret")},
	{name: "public client", method: "POST", path: "/api/v1/oauth/clients", ct: jsonCT, body: `{"client_id":"pub-{{run}}","name":"Pub"}`,
		want: e(201, jsonCT, map[string]any{"client.client_type": "public", "client.token_endpoint_auth_method": "none", "client_secret": ""})},
	{name: "duplicate client", method: "POST", path: "/api/v1/oauth/clients", ct: jsonCT, body: `{"client_id":"pub-{{run}}","name":"Pub"}`,
		want: problem(409, "oauth client with this client_id already exists")},
	{name: "client_credentials without identity", method: "POST", path: "/oauth2/token", ct: jsonCT,
		body: `{"grant_type":"client_credentials","client_id":"cc-{{run}}","client_secret":"{{ccsecret}}","account_id":"{{acct}}","project_id":"{{proj}}","scope":"identities:read"}`,
		want: oauth(401, "invalid_client", "no identity found for client_id cc-{{run}}")},
	{name: "the client's identity", method: "POST", path: "/api/v1/identities", tenant: mainTenant, ct: jsonCT,
		body: `{"external_id":"cc-{{run}}","name":"CC","owner_user_id":"admin-{{run}}","identity_type":"service"}`,
		want: e(201, jsonCT, map[string]any{"identity_type": "service", "sub_type": absent})},
	{name: "client_credentials", method: "POST", path: "/oauth2/token", ct: jsonCT,
		body: `{"grant_type":"client_credentials","client_id":"cc-{{run}}","client_secret":"{{ccsecret}}","account_id":"{{acct}}","project_id":"{{proj}}","scope":"identities:read"}`,
		want: e(200, jsonCT, map[string]any{"scope": "identities:read", "token_type": "Bearer", "access_token": present})},
	{name: "client_credentials without tenant", method: "POST", path: "/oauth2/token", ct: jsonCT,
		body: `{"grant_type":"client_credentials","client_id":"cc-{{run}}","client_secret":"{{ccsecret}}"}`,
		want: oauth(400, "invalid_request", "account_id and project_id are required for client_credentials grant")},
	{name: "client_credentials, wrong secret", method: "POST", path: "/oauth2/token", ct: jsonCT,
		body: `{"grant_type":"client_credentials","client_id":"cc-{{run}}","client_secret":"wrong","account_id":"{{acct}}","project_id":"{{proj}}"}`,
		want: oauth(401, "invalid_client", "invalid client credentials")},
	{name: "client_credentials ignores Basic", method: "POST", path: "/oauth2/token", ct: jsonCT, basic: "cc-{{run}}:{{ccsecret}}",
		body: `{"grant_type":"client_credentials","account_id":"{{acct}}","project_id":"{{proj}}"}`,
		want: oauth(401, "invalid_client", "invalid client credentials")},

	// §7: introspection's client authentication, by mode.
	{name: "introspect anonymously", method: "POST", path: "/oauth2/token/introspect", ct: formCT, body: "token={{t1}}", want: active(true),
		wantS: sPtr(withHeader(oauth(401, "invalid_client", "client authentication is required for this endpoint"), map[string][]string{"Www-Authenticate": nil}))},
	{name: "introspect, Basic", method: "POST", path: "/oauth2/token/introspect", ct: formCT, body: "token={{t1}}", basic: "cc-{{run}}:{{ccsecret}}",
		want: e(200, jsonCT, map[string]any{"active": true, "sub": prefix("spiffe://"), "external_id": "a1-{{run}}", "account_id": "{{acct}}",
			"act.sub": "admin@example.com", "scope": "", "jti": present, "exp": present, "iss": prefix("http"), "$schema": absent})},
	{name: "introspect, post", method: "POST", path: "/oauth2/token/introspect", ct: formCT,
		body: "token={{t1}}&client_id=cc-{{run}}&client_secret={{ccsecret}}", want: active(true)},
	{name: "introspect, post as JSON", method: "POST", path: "/oauth2/token/introspect", ct: jsonCT,
		body: `{"token":"{{t1}}","client_id":"cc-{{run}}","client_secret":"{{ccsecret}}"}`, want: active(true)},
	{name: "introspect, Basic wrong", method: "POST", path: "/oauth2/token/introspect", ct: formCT, body: "token={{t1}}", basic: "cc-{{run}}:wrong",
		want: withHeader(oauth(401, "invalid_client", "invalid client credentials"), basicChallenge)},
	{name: "introspect, post wrong", method: "POST", path: "/oauth2/token/introspect", ct: formCT, body: "token={{t1}}&client_id=cc-{{run}}&client_secret=wrong",
		want: withHeader(oauth(401, "invalid_client", "invalid client credentials"), map[string][]string{"Www-Authenticate": nil})},
	{name: "introspect, both methods", method: "POST", path: "/oauth2/token/introspect", ct: formCT, basic: "cc-{{run}}:{{ccsecret}}",
		body: "token={{t1}}&client_id=cc-{{run}}&client_secret={{ccsecret}}",
		want: oauth(400, "invalid_request", "only one client authentication method may be used per request (RFC 6749 §2.3)")},
	{name: "introspect, public client id", method: "POST", path: "/oauth2/token/introspect", ct: formCT, body: "token={{t1}}&client_id=pub-{{run}}", want: active(true)},
	{name: "introspect, confidential client id alone", method: "POST", path: "/oauth2/token/introspect", ct: formCT, body: "token={{t1}}&client_id=cc-{{run}}",
		want: oauth(401, "invalid_client", "client authentication required")},
	{name: "introspect, unknown client id", method: "POST", path: "/oauth2/token/introspect", ct: formCT, body: "token={{t1}}&client_id=nobody-{{run}}",
		want: oauth(401, "invalid_client", "client authentication required")},
	{name: "introspect, secret alone", method: "POST", path: "/oauth2/token/introspect", ct: formCT, body: "token={{t1}}&client_secret={{ccsecret}}",
		want: oauth(401, "invalid_client", "client_id is required when a client_secret is supplied")},
	{name: "introspect, Bearer is no client auth", method: "POST", path: "/oauth2/token/introspect", ct: formCT, body: "token={{t1}}", bearer: "{{t1}}",
		want: active(true), wantS: sPtr(oauth(401, "invalid_client", "client authentication is required for this endpoint"))},
	{name: "introspect garbage", method: "POST", path: "/oauth2/token/introspect", ct: formCT, body: "token=garbage", basic: "cc-{{run}}:{{ccsecret}}",
		want: e(200, jsonCT, map[string]any{"active": false, "sub": absent, "jti": absent})},
	{name: "introspect without token", method: "POST", path: "/oauth2/token/introspect", ct: jsonCT, body: `{}`, basic: "cc-{{run}}:{{ccsecret}}",
		want: problem(422, "validation failed", "errors.0.value", "[redacted]")},

	// §7: revocation, by mode; it never touches the key.
	mint("k1", "t2"),
	{name: "revoke anonymously", method: "POST", path: "/oauth2/token/revoke", ct: formCT, body: "token={{t2}}",
		want:  e(200, jsonCT, map[string]any{"revoked": true, "$schema": prefix("http")}),
		wantS: sPtr(e(401, jsonCT, map[string]any{"revoked": false, "error": "invalid_client", "error_description": "client authentication is required for this endpoint"}))},
	{name: "t2 after the anonymous revoke", method: "POST", path: "/oauth2/token/introspect", ct: formCT, body: "token={{t2}}", basic: "cc-{{run}}:{{ccsecret}}",
		want: active(false), wantS: sPtr(active(true))},
	{name: "revoke, Basic wrong", method: "POST", path: "/oauth2/token/revoke", ct: formCT, body: "token={{t2}}", basic: "cc-{{run}}:wrong",
		want: withHeader(e(401, jsonCT, map[string]any{"revoked": false, "error": "invalid_client", "error_description": "invalid client credentials"}), basicChallenge)},
	{name: "revoke, both methods", method: "POST", path: "/oauth2/token/revoke", ct: formCT, basic: "cc-{{run}}:{{ccsecret}}",
		body: "token={{t2}}&client_id=cc-{{run}}&client_secret={{ccsecret}}", want: e(400, jsonCT, map[string]any{"revoked": false, "error": "invalid_request"})},
	{name: "revoke, Basic", method: "POST", path: "/oauth2/token/revoke", ct: formCT, body: "token={{t2}}", basic: "cc-{{run}}:{{ccsecret}}",
		want: e(200, jsonCT, map[string]any{"revoked": true})},
	inspect("t2", false),
	{name: "revoke again", method: "POST", path: "/oauth2/token/revoke", ct: formCT, body: "token={{t2}}", basic: "cc-{{run}}:{{ccsecret}}",
		want: e(200, jsonCT, map[string]any{"revoked": true})},
	{name: "revoke garbage", method: "POST", path: "/oauth2/token/revoke", ct: formCT, body: "token=garbage", basic: "cc-{{run}}:{{ccsecret}}",
		want: e(200, jsonCT, map[string]any{"revoked": true})},
	{name: "revoke an API key string", method: "POST", path: "/oauth2/token/revoke", ct: formCT, body: "token={{k1}}", basic: "cc-{{run}}:{{ccsecret}}",
		want: e(200, jsonCT, map[string]any{"revoked": true})},
	mint("k1", "t3"),
	inspect("t3", true),
	{name: "revoke, public client id", method: "POST", path: "/oauth2/token/revoke", ct: formCT, body: "token={{t3}}&client_id=pub-{{run}}",
		want: e(200, jsonCT, map[string]any{"revoked": true})},
	inspect("t3", false),
	inspect("t1", true),

	// §3: listing by owner, pages, the limit quirk.
	create("l1", "l1-{{run}}", "lister-{{run}}", "", nil),
	create("l2", "l2-{{run}}", "lister-{{run}}", "", nil),
	create("l3", "l3-{{run}}", "lister-{{run}}", "", nil),
	create("l4", "l4-{{run}}", "lister-{{run}}", "", nil),
	create("l5", "l5-{{run}}", "lister-{{run}}", "", save("l5", "id")),
	patch("l5", "admin@example.com", `{"status":"suspended"}`, e(200, jsonCT, map[string]any{"status": "suspended", "modified_by": "admin@example.com"})),
	list("owner_user_id=lister-{{run}}&status=active&limit=2&offset=0", e(200, jsonCT, map[string]any{"identities": length(2), "total": 4.0, "limit": 2.0,
		"offset": 0.0, "identities.0.external_id": "l4-{{run}}", "identities.1.external_id": "l3-{{run}}", "$schema": prefix("http")})),
	list("owner_user_id=lister-{{run}}&status=active&limit=2&offset=2", e(200, jsonCT, map[string]any{"identities": length(2), "total": 4.0,
		"identities.0.external_id": "l2-{{run}}", "identities.1.external_id": "l1-{{run}}"})),
	list("owner_user_id=lister-{{run}}&status=active&limit=2&offset=4", e(200, jsonCT, map[string]any{"identities": length(0), "total": 4.0, "offset": 4.0})),
	list("owner_user_id=lister-{{run}}&status=active,suspended", e(200, jsonCT, map[string]any{"total": 5.0, "identities.0.external_id": "l5-{{run}}"})),
	list("owner_user_id=lister-{{run}}&status=active&status=suspended", e(200, jsonCT, map[string]any{"total": 5.0})),
	list("owner_user_id=lister-{{run}}", e(200, jsonCT, map[string]any{"total": 5.0, "limit": 20.0})),
	list("owner_user_id=lister-{{run}}&limit=101", e(200, jsonCT, map[string]any{"limit": 20.0})),
	list("owner_user_id=lister-{{run}}&limit=100", e(200, jsonCT, map[string]any{"limit": 100.0})),
	list("owner_user_id=lister-{{run}}&limit=0", e(200, jsonCT, map[string]any{"limit": 20.0})),
	list("owner_user_id=lister-{{run}}&offset=-5", e(200, jsonCT, map[string]any{"offset": 0.0, "total": 5.0})),
	list("owner_user_id=lister-{{run}}&limit=abc", problem(422, "validation failed", "errors.0.location", "query.limit", "errors.0.message", "invalid integer")),
	list("owner_user_id=lister-{{run}}&status=gone", problem(400, "invalid status filter")),
	list("owner_user_id=nobody-{{run}}", e(200, jsonCT, map[string]any{"identities": length(0), "total": 0.0, "limit": 20.0, "offset": 0.0})),
	{name: "list, another account", method: "GET", path: "/api/v1/identities?owner_user_id=lister-{{run}}", tenant: otherAccount,
		want: e(200, jsonCT, map[string]any{"total": 0.0})},
	{name: "list without tenant", method: "GET", path: "/api/v1/identities", want: problem(401, "missing tenant context")},

	// §4, §9: the status machine, what each step revokes, the actor on updates.
	create("g1", "g1-{{run}}", "gina-{{run}}", "admin@example.com", save("g1", "id")),
	keyFor("g1", "kg"),
	mint("kg", "tg"),
	patch("g1", "admin@example.com", `{"status":"suspended"}`, e(200, jsonCT, map[string]any{"status": "suspended"})),
	inspect("tg", true),
	mintRefused("kg", "identity is suspended or deactivated"),
	patch("g1", "admin@example.com", `{"status":"expired"}`, problem(422, "validation failed", "errors.0.location", "body.status")),
	patch("g1", "", `{"name":"G"}`, e(200, jsonCT, map[string]any{"name": "G", "modified_by": absent})),
	patch("g1", "alice@corp.example", `{"name":"G"}`, e(200, jsonCT, map[string]any{"modified_by": "alice@corp.example"})),
	patch("g1", "SYSTEM:sweeper", `{"name":"G"}`, e(200, jsonCT, map[string]any{"modified_by": absent})),
	patch("g1", "systemd-operator", `{"name":"G"}`, e(200, jsonCT, map[string]any{"modified_by": "systemd-operator"})),
	patch("g1", "admin@example.com", `{"status":"active"}`, e(200, jsonCT, map[string]any{"status": "active"})),
	mint("kg", "tg2"),
	{name: "DELETE deactivates", method: "DELETE", path: "/api/v1/identities/{{g1}}", tenant: mainTenant, user: "scim",
		want: e(200, jsonCT, map[string]any{"id": "{{g1}}", "status": "deactivated", "modified_by": "scim", "$schema": prefix("http")})},
	{name: "DELETE again changes nothing", method: "DELETE", path: "/api/v1/identities/{{g1}}", tenant: mainTenant,
		want: e(200, jsonCT, map[string]any{"status": "deactivated", "modified_by": "scim"})},
	inspect("tg", false),
	inspect("tg2", false),
	mintRefused("kg", "invalid api key"),
	{name: "the retirement signal", method: "GET", path: "/api/v1/signals?limit=1", tenant: mainTenant,
		want: e(200, jsonCT, map[string]any{"total": 1.0, "signals.0.identity_id": "{{g1}}", "signals.0.signal_type": "retirement",
			"signals.0.severity": "high", "signals.0.source": "identity_lifecycle", "signals.0.payload.reason": "identity_deactivated"})},
	patch("g1", "admin@example.com", `{"status":"suspended"}`, problem(500, "failed to update identity")),
	patch("g1", "admin@example.com", `{"status":"active"}`, e(200, jsonCT, map[string]any{"status": "active"})),
	mintRefused("kg", "invalid api key"),
	{name: "expire", method: "POST", path: "/api/v1/identities/{{g1}}/expire", tenant: mainTenant, ct: jsonCT, body: "{}",
		want: e(200, jsonCT, map[string]any{"status": "expired"})},
	{name: "the expiry signal", method: "GET", path: "/api/v1/signals?limit=1", tenant: mainTenant,
		want: e(200, jsonCT, map[string]any{"signals.0.signal_type": "identity_expired", "signals.0.severity": "high", "signals.0.payload.reason": "expired"})},
	{name: "expire without Content-Type", method: "POST", path: "/api/v1/identities/{{g1}}/expire", tenant: mainTenant,
		want: envelope("Content-Type header is required for POST requests")},
	patch("nouuid", "", `{"name":"x"}`, problem(500, "failed to update identity")),
	{name: "DELETE an unknown identity", method: "DELETE", path: "/api/v1/identities/{{nouuid}}", tenant: mainTenant, want: problem(404, "resource not found")},
	{name: "DELETE another tenant's identity", method: "DELETE", path: "/api/v1/identities/{{a1}}", tenant: otherAccount, want: problem(404, "resource not found")},
	{name: "DELETE a non-UUID", method: "DELETE", path: "/api/v1/identities/not-a-uuid", tenant: mainTenant, want: problem(500, "internal server error")},
	{name: "DELETE without tenant", method: "DELETE", path: "/api/v1/identities/{{a1}}", want: problem(401, "missing tenant context")},
	{name: "DELETE l5", method: "DELETE", path: "/api/v1/identities/{{l5}}", tenant: mainTenant, want: e(200, jsonCT, map[string]any{"status": "deactivated"})},
	{name: "re-create a deactivated external_id", method: "POST", path: "/api/v1/identities", tenant: mainTenant, ct: jsonCT,
		body: `{"external_id":"l5-{{run}}","name":"again","owner_user_id":"u"}`,
		want: e(409, problemCT, map[string]any{"detail": prefix(`an identity with external_id "l5-`), "errors.0.location": "body.external_id", "errors.0.value": "{{l5}}"})},

	// §5: CAE signals.
	create("c1", "c1-{{run}}", "carol-{{run}}", "admin@example.com", save("c1", "id")),
	keyFor("c1", "kc"),
	mint("kc", "tc"),
	ingest("low signal", mainTenant, `{"identity_id":"{{c1}}","signal_type":"ip_change","severity":"low","source":"idp-sync","payload":{"ip":"203.0.113.7"}}`,
		e(201, jsonCT, map[string]any{"id": present, "identity_id": "{{c1}}", "signal_type": "ip_change", "severity": "low", "source": "idp-sync",
			"payload.ip": "203.0.113.7", "account_id": "{{acct}}", "processed_at": absent, "$schema": prefix("http")})),
	inspect("tc", true),
	ingest("high signal", mainTenant, `{"identity_id":"{{c1}}","signal_type":"session_revoked","severity":"high","source":"idp-sync"}`,
		e(201, jsonCT, map[string]any{"severity": "high", "payload": absent})),
	inspect("tc", false),
	get(mainTenant, "c1", e(200, jsonCT, map[string]any{"status": "active"})),
	mint("kc", "tc2"),
	inspect("tc2", true),
	ingest("critical from another account", otherAccount, `{"identity_id":"{{c1}}","signal_type":"anomalous_behavior","severity":"critical","source":"x"}`,
		e(201, jsonCT, map[string]any{"account_id": "{{acct}}-other"})),
	inspect("tc2", true),
	ingest("critical from another project", otherProject, `{"identity_id":"{{c1}}","signal_type":"anomalous_behavior","severity":"critical","source":"x"}`,
		e(201, jsonCT, map[string]any{"project_id": "{{proj}}-two"})),
	inspect("tc2", true),
	ingest("unknown signal type", mainTenant, `{"identity_id":"{{c1}}","signal_type":"user_deleted","source":"x"}`, problem(400, "invalid signal_type")),
	ingest("unknown severity", mainTenant, `{"identity_id":"{{c1}}","signal_type":"ip_change","severity":"severe","source":"x"}`,
		problem(422, "validation failed", "errors.0.location", "body.severity")),
	ingest("no source", mainTenant, `{"identity_id":"{{c1}}","signal_type":"ip_change"}`,
		problem(422, "validation failed", "errors.0.message", "expected required property source to be present")),
	ingest("unknown property", mainTenant, `{"identity_id":"{{c1}}","signal_type":"ip_change","source":"x","extra":1}`,
		problem(422, "validation failed", "errors.0.message", "unexpected property", "errors.0.location", "body.extra")),
	ingest("payload not an object", mainTenant, `{"identity_id":"{{c1}}","signal_type":"ip_change","source":"x","payload":"s"}`,
		problem(422, "validation failed", "errors.0.location", "body.payload")),
	ingest("no identity", mainTenant, `{"signal_type":"ip_change","source":"x"}`, problem(500, "failed to ingest signal")),
	ingest("identity not a UUID", mainTenant, `{"identity_id":"user_carol","signal_type":"ip_change","source":"x"}`, problem(500, "failed to ingest signal")),
	ingest("unknown identity", mainTenant, `{"identity_id":"{{nouuid}}","signal_type":"ip_change","source":"x"}`, problem(500, "failed to ingest signal")),
	ingest("default severity", mainTenant, `{"identity_id":"{{c1}}","signal_type":"ip_change","source":"x"}`, e(201, jsonCT, map[string]any{"severity": "low"})),
	ingest("no tenant", noTenant, `{"identity_id":"{{c1}}","signal_type":"ip_change","source":"x"}`, problem(401, "missing tenant context")),
	{name: "signals limit above 500", method: "GET", path: "/api/v1/signals?limit=501", tenant: mainTenant, want: problem(422, "validation failed", "errors.0.location", "query.limit")},
	{name: "signals limit 0", method: "GET", path: "/api/v1/signals?limit=0", tenant: mainTenant, want: problem(422, "validation failed", "errors.0.location", "query.limit")},

	// §6: offboard-by-owner.
	create("d1", "d1-{{run}}", "dave-{{run}}", "admin@example.com", save("d1", "id")),
	keyFor("d1", "kd1"),
	mint("kd1", "td1"),
	create("d2", "d2-{{run}}", "dave-{{run}}", "admin@example.com", save("d2", "id")),
	keyFor("d2", "kd2"),
	mint("kd2", "td2"),
	patch("d2", "admin@example.com", `{"status":"suspended"}`, e(200, jsonCT, map[string]any{"status": "suspended"})),
	createIn(otherProject, "d3-{{run}}", "dave-{{run}}", save("d3", "id")),
	keyIn(otherProject, "d3", "kd3"),
	mint("kd3", "td3"),
	createIn(otherAccount, "d4-{{run}}", "dave-{{run}}", save("d4", "id")),
	keyIn(otherAccount, "d4", "kd4"),
	mint("kd4", "td4"),
	offboard("offboard", "scim-worker", `{"owner_user_id":"dave-{{run}}","reason":"scim_user_deactivated"}`,
		e(200, jsonCT, map[string]any{"identities_deactivated": 3.0, "credentials_revoked": 0.0, "$schema": prefix("http")})),
	inspect("td1", false),
	inspect("td2", false),
	inspect("td3", false),
	inspect("td4", true),
	get(mainTenant, "d1", e(200, jsonCT, map[string]any{"status": "deactivated", "modified_by": "scim-worker"})),
	get(mainTenant, "d2", e(200, jsonCT, map[string]any{"status": "deactivated"})),
	get(otherProject, "d3", e(200, jsonCT, map[string]any{"status": "deactivated"})),
	get(otherAccount, "d4", e(200, jsonCT, map[string]any{"status": "active", "modified_by": absent})),
	mintRefused("kd1", "invalid api key"),
	mintRefused("kd2", "invalid api key"),
	mint("kd4", "td4b"),
	offboard("offboard again", "scim-worker", `{"owner_user_id":"dave-{{run}}"}`, e(200, jsonCT, map[string]any{"identities_deactivated": 0.0, "credentials_revoked": 0.0})),
	offboard("offboard an unknown owner", "", `{"owner_user_id":"nobody-{{run}}"}`, e(200, jsonCT, map[string]any{"identities_deactivated": 0.0})),
	offboard("padded owner", "", `{"owner_user_id":" dave-{{run}}"}`, problem(400, "", "detail", prefix("invalid owner-scoped revocation argument: OffboardOwner requires trimmed, non-empty owner_user_id"))),
	offboard("empty owner", "", `{"owner_user_id":""}`, problem(422, "validation failed", "errors.0.message", "expected length >= 1", "errors.0.location", "body.owner_user_id")),
	offboard("no owner", "", `{}`, problem(422, "validation failed", "errors.0.message", "expected required property owner_user_id to be present")),
	{name: "offboard without tenant", method: "POST", path: "/api/v1/identities/offboard-by-owner", ct: jsonCT, body: `{"owner_user_id":"dave-{{run}}"}`,
		want: problem(401, "missing tenant context")},
}

// target is a ZeroID the table runs against.
type target struct {
	name string
	base string
	mode zeroidfake.Mode
}

func targets(t *testing.T) []target {
	var out []target
	for _, m := range []zeroidfake.Mode{zeroidfake.ModePermissive, zeroidfake.ModeStrict} {
		f := zeroidfake.New(zeroidfake.Options{Mode: m, Seed: 3, Identities: 5})
		t.Cleanup(f.Close)
		out = append(out, target{name: "fake" + string(m), base: f.Start(), mode: m})
	}
	if u := os.Getenv("ZEROID_TEST_URL_P"); u != "" {
		out = append(out, target{name: "realP", base: u, mode: zeroidfake.ModePermissive})
	}
	if u := os.Getenv("ZEROID_TEST_URL_S"); u != "" {
		out = append(out, target{name: "realS", base: u, mode: zeroidfake.ModeStrict})
	}
	return out
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func randomUUID() string {
	h := randomHex(16)
	return h[:8] + "-" + h[8:12] + "-4" + h[13:16] + "-8" + h[17:20] + "-" + h[20:]
}

func TestConformance(t *testing.T) {
	t.Parallel()
	for _, tg := range targets(t) {
		t.Run(tg.name, func(t *testing.T) {
			t.Parallel()
			run := randomHex(4)
			vars := map[string]string{"run": run, "acct": "acct_conf_" + run, "proj": "proj_conf", "nouuid": randomUUID()}
			for i, x := range exchanges {
				if failure := exchangeOnce(t.Context(), tg, x, vars); failure != "" {
					t.Fatalf("exchange %d %q: %s", i, x.name, failure)
				}
			}
		})
	}
}

var noRedirects = &http.Client{Timeout: 20 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

// exchangeOnce sends one request of the table and checks the answer; it returns what differs.
func exchangeOnce(ctx context.Context, tg target, x exchange, vars map[string]string) string {
	pairs := make([]string, 0, 2*len(vars))
	for k, v := range vars {
		pairs = append(pairs, "{{"+k+"}}", v)
	}
	tpl := strings.NewReplacer(pairs...)
	body := tpl.Replace(x.body)
	if x.ct == formCT {
		// Form values are escaped as a form: "read+write" stays a space, secrets are sent intact.
		q, err := url.ParseQuery(body)
		if err != nil {
			return "bad form in the table: " + err.Error()
		}
		keys := make([]string, 0, len(q))
		for k := range q {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		var parts []string
		for _, k := range keys {
			for _, v := range q[k] {
				parts = append(parts, url.QueryEscape(k)+"="+url.QueryEscape(v))
			}
		}
		body = strings.Join(parts, "&")
	}
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, x.method, strings.TrimSuffix(tg.base, "/")+tpl.Replace(x.path), rd)
	if err != nil {
		return err.Error()
	}
	if x.ct != "" {
		req.Header.Set("Content-Type", x.ct)
	}
	acct, proj := vars["acct"], vars["proj"]
	switch x.tenant {
	case mainTenant:
		req.Header.Set("X-Account-ID", acct)
		req.Header.Set("X-Project-ID", proj)
	case accountOnly:
		req.Header.Set("X-Account-ID", acct)
	case otherProject:
		req.Header.Set("X-Account-ID", acct)
		req.Header.Set("X-Project-ID", proj+"-two")
	case otherAccount:
		req.Header.Set("X-Account-ID", acct+"-other")
		req.Header.Set("X-Project-ID", proj)
	}
	if x.user != "" {
		req.Header.Set("X-User-ID", tpl.Replace(x.user))
	}
	if x.basic != "" {
		id, secret, _ := strings.Cut(tpl.Replace(x.basic), ":")
		req.Header.Set("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte(url.QueryEscape(id)+":"+url.QueryEscape(secret))))
	}
	if x.bearer != "" {
		req.Header.Set("Authorization", "Bearer "+tpl.Replace(x.bearer))
	}
	resp, err := noRedirects.Do(req)
	if err != nil {
		return err.Error()
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	want := x.want
	if tg.mode == zeroidfake.ModeStrict && x.wantS != nil {
		want = *x.wantS
	}
	show := func(msg string) string {
		return fmt.Sprintf("%s\n  got %d %q %.600s", msg, resp.StatusCode, resp.Header.Get("Content-Type"), raw)
	}
	if resp.StatusCode != want.status {
		return show(fmt.Sprintf("status %d, want %d", resp.StatusCode, want.status))
	}
	mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	switch {
	case want.ct == noCT && resp.Header.Get("Content-Type") != "":
		return show("a Content-Type, want none")
	case want.ct != noCT && mt != want.ct:
		return show("Content-Type " + mt + ", want " + want.ct)
	case want.ct == textCT && resp.Header.Get("Content-Type") != "text/plain; charset=utf-8":
		return show("want text/plain; charset=utf-8")
	}
	if want.text != nil && string(raw) != *want.text {
		return show(fmt.Sprintf("body %q, want %q", raw, *want.text))
	}
	for h, vals := range want.header {
		got := resp.Header.Values(h)
		if vals == nil && len(got) > 0 {
			return show(fmt.Sprintf("header %s %q, want none", h, got))
		}
		a, b := slices.Clone(got), slices.Clone(vals)
		slices.Sort(a)
		slices.Sort(b)
		if vals != nil && !slices.Equal(a, b) {
			return show(fmt.Sprintf("header %s %q, want %q", h, got, vals))
		}
	}
	var doc any
	if len(want.fields) > 0 || len(x.save) > 0 {
		dec := json.NewDecoder(bytes.NewReader(raw))
		if err := dec.Decode(&doc); err != nil {
			return show("body is not JSON: " + err.Error())
		}
	}
	for path, w := range want.fields {
		v, ok := lookup(doc, path)
		if m, isMatcher := w.(matcher); isMatcher {
			if msg := m(v, ok); msg != "" {
				return show(path + ": " + msg)
			}
			continue
		}
		if s, isString := w.(string); isString {
			w = tpl.Replace(s)
		}
		if !ok || fmt.Sprint(v) != fmt.Sprint(w) || fmt.Sprintf("%T", v) != fmt.Sprintf("%T", w) {
			return show(fmt.Sprintf("%s = %#v, want %#v", path, v, w))
		}
	}
	for name, path := range x.save {
		v, ok := lookup(doc, path)
		s, isString := v.(string)
		if !ok || !isString {
			return show("nothing to save as " + name + " at " + path)
		}
		vars[name] = s
	}
	return ""
}

// lookup follows a dotted path through decoded JSON; numeric parts index arrays.
func lookup(doc any, path string) (any, bool) {
	cur := doc
	for part := range strings.SplitSeq(path, ".") {
		switch c := cur.(type) {
		case map[string]any:
			v, ok := c[part]
			if !ok {
				return nil, false
			}
			cur = v
		case []any:
			i, err := strconv.Atoi(part)
			if err != nil || i < 0 || i >= len(c) {
				return nil, false
			}
			cur = c[i]
		default:
			return nil, false
		}
	}
	return cur, true
}
