package zeroidfake

import (
	"bytes"
	"encoding/json"
	"fmt"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/idpsync/idpsync/internal/fakeidp"
)

// The HTTP side, in ZeroID's order: the form-compat rewrite of /oauth2 bodies, the Content-Type
// gate (both before routing, so they answer even for unknown routes), then chi's routing (a route
// 404 is text/plain, a 405 is empty with Allow headers), then per operation Huma's schema
// validation (422), the tenant check (401) and the handler.

// oauthFormPaths are the /oauth2 endpoints whose form bodies ZeroID rewrites to JSON.
var oauthFormPaths = []string{"/oauth2/token", "/oauth2/token/introspect", "/oauth2/token/revoke", "/oauth2/bc-authorize"}

// Handler returns the fake's HTTP handler, with recording and failure injection.
func (f *Fake) Handler() http.Handler {
	rt := &router{}
	rt.handle("GET", "/health", f.health)
	rt.handle("GET", "/ready", func(w http.ResponseWriter, r *http.Request, _ []string) {
		writeHuma(w, r, http.StatusOK, "ReadyOutputBody", map[string]any{"ready": true})
	})
	rt.handle("GET", "/.well-known/jwks.json", f.jwks)
	rt.handle("POST", "/oauth2/token", f.token)
	rt.handle("POST", "/oauth2/token/introspect", f.introspect)
	rt.handle("POST", "/oauth2/token/revoke", f.revoke)

	// Admin routes, in ZeroID's registration order: literal segments before {id}.
	rt.handle("POST", "/api/v1/identities", f.createIdentity)
	rt.handle("GET", "/api/v1/identities", f.listIdentities)
	rt.handle("POST", "/api/v1/identities/offboard-by-owner", f.offboard)
	rt.handle("GET", "/api/v1/identities/{id}", f.getIdentity)
	rt.handle("PATCH", "/api/v1/identities/{id}", f.patchIdentity)
	rt.handle("DELETE", "/api/v1/identities/{id}", f.deleteIdentity)
	rt.handle("POST", "/api/v1/identities/{id}/expire", f.expireIdentity)
	rt.handle("POST", "/api/v1/api-keys", f.createAPIKey)
	rt.handle("GET", "/api/v1/api-keys/{id}", f.getAPIKey)
	rt.handle("POST", "/api/v1/agents/register", f.registerAgent)
	rt.handle("POST", "/api/v1/signals/ingest", f.ingest)
	rt.handle("GET", "/api/v1/signals", f.listSignals)
	rt.handle("GET", "/api/v1/signals/stream", f.stream)
	rt.handle("POST", "/api/v1/oauth/clients", f.createOAuthClient)
	return f.Wrap(formCompat(contentTypeGate(rt)))
}

// route is one operation; a "{id}" segment matches any one non-empty segment.
type route struct {
	method    string
	segs      []string
	serveFunc func(w http.ResponseWriter, r *http.Request, params []string)
}

// router matches paths segment by segment, exactly: unlike http.ServeMux it neither cleans
// "//api/v1/identities" nor redirects it, which ZeroID (chi) answers with a route 404.
type router struct{ routes []route }

func (rt *router) handle(method, pattern string, h func(http.ResponseWriter, *http.Request, []string)) {
	rt.routes = append(rt.routes, route{method: method, segs: strings.Split(pattern, "/"), serveFunc: h})
}

func (ro route) match(segs []string) ([]string, bool) {
	if len(segs) != len(ro.segs) {
		return nil, false
	}
	var params []string
	for i, s := range ro.segs {
		switch {
		case s == "{id}" && segs[i] != "":
			params = append(params, segs[i])
		case s != segs[i]:
			return nil, false
		}
	}
	return params, true
}

func (rt *router) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	segs := strings.Split(r.URL.Path, "/")
	var allow []string
	for _, ro := range rt.routes {
		params, ok := ro.match(segs)
		if !ok {
			continue
		}
		if ro.method == r.Method {
			ro.serveFunc(w, r, params)
			return
		}
		if !slices.Contains(allow, ro.method) {
			allow = append(allow, ro.method)
		}
	}
	if len(allow) > 0 {
		// chi: 405 with one Allow header per method, no body, no Content-Type.
		for _, m := range allow {
			w.Header().Add("Allow", m)
		}
		w.WriteHeader(http.StatusMethodNotAllowed)
		return
	}
	http.NotFound(w, r) // 404 text/plain "404 page not found"
}

// formCompat rewrites a form body on the /oauth2 endpoints into JSON, as ZeroID's
// oauthFormCompatMiddleware: a repeated parameter is refused, an empty one dropped.
func formCompat(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || !slices.Contains(oauthFormPaths, r.URL.Path) || !mediaTypeIs(r.Header.Get("Content-Type"), "application/x-www-form-urlencoded") {
			next.ServeHTTP(w, r)
			return
		}
		b, err := fakeidp.ReadBody(r)
		if err != nil {
			writeEnvelope(w, "malformed form body: "+err.Error())
			return
		}
		form, err := url.ParseQuery(string(b))
		if err != nil {
			writeEnvelope(w, "malformed form body: "+err.Error())
			return
		}
		flat := map[string]any{}
		for k, vs := range form {
			if len(vs) > 1 {
				writeEnvelope(w, "duplicate OAuth parameter: "+k)
				return
			}
			if len(vs) == 1 && vs[0] != "" {
				flat[k] = vs[0]
			}
		}
		body, _ := json.Marshal(flat)
		r.Body = readCloser{bytes.NewReader(body)}
		r.ContentLength = int64(len(body))
		r.Header.Set("Content-Type", "application/json")
		next.ServeHTTP(w, r)
	})
}

type readCloser struct{ *bytes.Reader }

func (readCloser) Close() error { return nil }

// contentTypeGate is ZeroID's requestValidationMiddleware: POST, PUT and PATCH need a JSON body,
// whatever the route (it runs before routing).
func contentTypeGate(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if (r.Method == http.MethodPost || r.Method == http.MethodPut || r.Method == http.MethodPatch) && r.URL.Path != "/oauth2/authorize" {
			ct := r.Header.Get("Content-Type")
			if ct == "" {
				writeEnvelope(w, "Content-Type header is required for "+r.Method+" requests")
				return
			}
			if !mediaTypeIs(ct, "application/json") {
				writeEnvelope(w, "Content-Type must be application/json, got: "+ct)
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

func mediaTypeIs(header, want string) bool {
	mt, _, err := mime.ParseMediaType(header)
	return err == nil && strings.EqualFold(mt, want)
}

// writeEnvelope answers the middleware's ZEROID-40001 envelope.
func writeEnvelope(w http.ResponseWriter, msg string) {
	fakeidp.WriteJSON(w, http.StatusBadRequest, map[string]any{"error": map[string]any{"code": http.StatusBadRequest,
		"internalCode": "ZEROID-40001", "message": msg, "requestId": "fakeidp/" + fakeidp.TraceID()[:10],
		"status": "BAD_REQUEST", "timestamp": time.Now().UTC().Format(time.RFC3339)}})
}

// schemaURL is Huma's $schema link for a body type, built from the request's host.
func schemaURL(r *http.Request, name string) string {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host + "/schemas/" + name + ".json"
}

// writeHuma answers a Huma operation's body, which carries $schema.
func writeHuma(w http.ResponseWriter, r *http.Request, status int, schema string, body map[string]any) {
	body["$schema"] = schemaURL(r, schema)
	fakeidp.WriteJSON(w, status, body)
}

// errDetail is one entry of a Huma problem's errors.
type errDetail struct {
	Message  string `json:"message"`
	Location string `json:"location"`
	Value    any    `json:"value"`
}

// problem answers an RFC 9457 problem as Huma writes it.
func problem(w http.ResponseWriter, r *http.Request, status int, detail string, errs ...errDetail) {
	body := map[string]any{"$schema": schemaURL(r, "ErrorModel"), "title": http.StatusText(status), "status": status, "detail": detail}
	if len(errs) > 0 {
		body["errors"] = errs
	}
	b, _ := json.Marshal(body)
	w.Header().Set("Content-Type", "application/problem+json")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// problemBody is the shape of injected failures: a Huma problem (its $schema has no host here).
func (f *Fake) problemBody(status int, msg string) (string, []byte) {
	b, _ := json.Marshal(map[string]any{"title": http.StatusText(status), "status": status, "detail": msg})
	return "application/problem+json", b
}

// ---- Huma's request validation -------------------------------------------------------------

type kind int

const (
	kString kind = iota
	kInt
	kBool
	kObject
	kStrings
	kAny
)

type field struct {
	name      string
	kind      kind
	required  bool
	minLength int
	maxLength int
	enum      []string
}

// schema is an operation's request body as Huma validates it.
type schema struct {
	fields []field
	// open allows properties the schema does not name (the /oauth2 bodies); Huma otherwise
	// refuses them.
	open bool
	// redact replaces echoed values by "[redacted]", as on /oauth2.
	redact bool
}

// body reads and validates the request body. On failure it has answered and returns false.
func (s schema) body(w http.ResponseWriter, r *http.Request) (map[string]any, bool) {
	raw, err := fakeidp.ReadBody(r)
	if err != nil || len(bytes.TrimSpace(raw)) == 0 {
		problem(w, r, http.StatusBadRequest, "request body is required")
		return nil, false
	}
	echo := func(v any) any {
		if s.redact {
			return "[redacted]"
		}
		return v
	}
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		problem(w, r, http.StatusBadRequest, "validation failed", errDetail{Message: err.Error(), Location: "body", Value: echo(string(raw))})
		return nil, false
	}
	obj, ok := v.(map[string]any)
	if !ok {
		problem(w, r, http.StatusUnprocessableEntity, "validation failed", errDetail{Message: "expected object", Location: "body", Value: echo(v)})
		return nil, false
	}
	var errs []errDetail
	for _, fd := range s.fields {
		if _, ok := obj[fd.name]; !ok && fd.required {
			errs = append(errs, errDetail{Message: "expected required property " + fd.name + " to be present", Location: "body", Value: echo(obj)})
		}
	}
	for name, val := range obj {
		i := slices.IndexFunc(s.fields, func(fd field) bool { return fd.name == name })
		if i < 0 {
			if !s.open {
				errs = append(errs, errDetail{Message: "unexpected property", Location: "body." + name, Value: echo(obj)})
			}
			continue
		}
		if msg := s.fields[i].check(val); msg != "" {
			errs = append(errs, errDetail{Message: msg, Location: "body." + name, Value: echo(val)})
		}
	}
	if len(errs) > 0 {
		problem(w, r, http.StatusUnprocessableEntity, "validation failed", errs...)
		return nil, false
	}
	return obj, true
}

func (fd field) check(v any) string {
	switch fd.kind {
	case kString:
		s, ok := v.(string)
		switch {
		case !ok:
			return "expected string"
		case len(s) < fd.minLength:
			return fmt.Sprintf("expected length >= %d", fd.minLength)
		case fd.maxLength > 0 && len(s) > fd.maxLength:
			return fmt.Sprintf("expected length <= %d", fd.maxLength)
		case fd.enum != nil && !slices.Contains(fd.enum, s):
			return `expected value to be one of "` + strings.Join(fd.enum, ", ") + `"`
		}
	case kInt:
		if n, ok := v.(float64); !ok || n != float64(int64(n)) {
			return "expected integer"
		}
	case kBool:
		if _, ok := v.(bool); !ok {
			return "expected boolean"
		}
	case kObject:
		if _, ok := v.(map[string]any); !ok {
			return "expected object"
		}
	case kStrings:
		list, ok := v.([]any)
		if !ok {
			return "expected array"
		}
		for _, e := range list {
			if _, ok := e.(string); !ok {
				return "expected string"
			}
		}
	}
	return ""
}

// str reads a string property of a validated body.
func str(body map[string]any, name string) string {
	s, _ := body[name].(string)
	return s
}

func strs(body map[string]any, name string) []string {
	list, _ := body[name].([]any)
	out := make([]string, 0, len(list))
	for _, e := range list {
		if s, ok := e.(string); ok {
			out = append(out, s)
		}
	}
	return out
}

// tenant returns the caller's tenant: both headers non-empty, as TenantContextMiddleware.
func tenant(r *http.Request) (tenantKey, bool) {
	k := tenantKey{r.Header.Get("X-Account-ID"), r.Header.Get("X-Project-ID")}
	return k, k.account != "" && k.project != ""
}

// actor is the audit actor: X-User-ID unless it starts with "system:" in any case, which ZeroID
// drops silently.
func actor(r *http.Request) string {
	u := r.Header.Get("X-User-ID")
	if strings.HasPrefix(strings.ToLower(u), "system:") {
		return ""
	}
	return u
}

// tenantOr401 answers 401 "missing tenant context" when the tenant headers are incomplete.
func tenantOr401(w http.ResponseWriter, r *http.Request) (tenantKey, bool) {
	k, ok := tenant(r)
	if !ok {
		problem(w, r, http.StatusUnauthorized, "missing tenant context")
	}
	return k, ok
}
