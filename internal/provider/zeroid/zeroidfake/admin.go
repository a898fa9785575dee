package zeroidfake

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/idpsync/idpsync/internal/fakeidp"
)

// The admin routes under /api/v1: no authentication (Authorization is ignored), tenant headers.

var (
	identityTypes = []string{"agent", "application", "mcp_server", "service"}
	subTypes      = []string{"orchestrator", "autonomous", "tool_agent", "human_proxy", "evaluator", "chatbot", "assistant", "api_service", "custom", "code_agent"}
	trustLevels   = []string{"unverified", "verified_third_party", "first_party"}
	statuses      = []string{StatusPending, StatusDiscovered, StatusActive, StatusSuspended, StatusDeactivated, StatusExpired}
	signalTypes   = []string{"credential_change", "session_revoked", "ip_change", "anomalous_behavior", "policy_violation", "retirement", "owner_change", "identity_expired"}
)

func (f *Fake) health(w http.ResponseWriter, r *http.Request, _ []string) {
	writeHuma(w, r, http.StatusOK, "HealthOutputBody", map[string]any{"status": "healthy", "service": "zeroid",
		"timestamp": time.Now().UTC().Format(time.RFC3339Nano), "uptime_ms": time.Since(f.started).Milliseconds()})
}

func (f *Fake) jwks(w http.ResponseWriter, _ *http.Request, _ []string) {
	fakeidp.WriteJSON(w, http.StatusOK, map[string]any{"keys": []any{
		map[string]any{"alg": "ES256", "crv": "P-256", "kid": "k1", "kty": "EC", "use": "sig",
			"x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU", "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}}})
}

func (f *Fake) wimseURI(i *Identity) string {
	return "spiffe://" + f.domain + "/" + i.AccountID + "/" + i.ProjectID + "/" + i.IdentityType + "/" + i.ExternalID
}

// identityJSON is an identity as ZeroID's domain.Identity marshals it (without $schema).
func (f *Fake) identityJSON(i *Identity) map[string]any {
	m := map[string]any{"id": i.ID, "account_id": i.AccountID, "project_id": i.ProjectID, "external_id": i.ExternalID,
		"name": i.Name, "wimse_uri": f.wimseURI(i), "identity_type": i.IdentityType, "trust_level": i.TrustLevel,
		"status": i.Status, "origin": i.Origin, "owner_user_id": i.OwnerUserID,
		"credential_policy_id": fakeidp.UUID(f.seed, "policy/"+i.AccountID+"/"+i.ProjectID, 0),
		"allowed_scopes":       []string{}, "capabilities": []any{}, "labels": map[string]any{}, "metadata": map[string]any{},
		"created_at": i.CreatedAt.Format(time.RFC3339Nano), "updated_at": i.UpdatedAt.Format(time.RFC3339Nano)}
	if i.SubType != "" {
		m["sub_type"] = i.SubType
	}
	if i.CreatedBy != "" {
		m["created_by"] = i.CreatedBy
	}
	if i.ModifiedBy != "" {
		m["modified_by"] = i.ModifiedBy
	}
	return m
}

var createIdentitySchema = schema{fields: []field{
	{name: "external_id", kind: kString, required: true, minLength: 1},
	{name: "name", kind: kString},
	{name: "trust_level", kind: kString, enum: trustLevels},
	{name: "identity_type", kind: kString, enum: identityTypes},
	{name: "sub_type", kind: kString, enum: subTypes},
	{name: "owner_user_id", kind: kString, required: true, minLength: 1},
	{name: "allowed_scopes", kind: kStrings},
	{name: "credential_policy_id", kind: kString},
	{name: "public_key_pem", kind: kString},
	{name: "framework", kind: kString},
	{name: "version", kind: kString},
	{name: "publisher", kind: kString},
	{name: "description", kind: kString},
	{name: "capabilities", kind: kAny},
	{name: "labels", kind: kAny},
	{name: "capability_tier", kind: kString, enum: []string{"low", "high"}},
	{name: "risk_tier", kind: kString, enum: []string{"low", "high"}},
	{name: "ial", kind: kString, enum: []string{"ial1", "ial2", "ial3"}},
	{name: "expires_at", kind: kString},
}}

// checkExternalID is ZeroID's SPIFFE path-segment rule for external_id.
func checkExternalID(s string) string {
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '-' || c == '_') {
			return fmt.Sprintf("invalid identity field: external_id contains character '%c' not allowed in a SPIFFE path segment (allowed: a-z A-Z 0-9 . - _)", c)
		}
	}
	return ""
}

// createFromRequest registers an identity from a request and answers the failure when there is one.
func (f *Fake) createFromRequest(w http.ResponseWriter, r *http.Request, k tenantKey, in Identity) (*Identity, bool) {
	if msg := checkExternalID(in.ExternalID); msg != "" {
		problem(w, r, http.StatusBadRequest, msg)
		return nil, false
	}
	in.AccountID, in.ProjectID = k.account, k.project
	f.mu.Lock()
	id, err := f.createIdentityLocked(in)
	f.mu.Unlock()
	var deact *deactivatedConflict
	switch {
	case errors.As(err, &deact):
		problem(w, r, http.StatusConflict, deact.Error(), errDetail{
			Message:  "reactivate the deactivated identity (PUT /identities/{id} with status=active) or register with a different external_id",
			Location: "body.external_id", Value: deact.existing.ID})
		return nil, false
	case err != nil:
		problem(w, r, http.StatusConflict, err.Error())
		return nil, false
	}
	return id, true
}

func (f *Fake) createIdentity(w http.ResponseWriter, r *http.Request, _ []string) {
	body, ok := createIdentitySchema.body(w, r)
	if !ok {
		return
	}
	k, ok := tenantOr401(w, r)
	if !ok {
		return
	}
	id, ok := f.createFromRequest(w, r, k, Identity{ExternalID: str(body, "external_id"), Name: str(body, "name"),
		IdentityType: str(body, "identity_type"), SubType: str(body, "sub_type"), TrustLevel: str(body, "trust_level"),
		OwnerUserID: str(body, "owner_user_id"), CreatedBy: actor(r)})
	if !ok {
		return
	}
	f.mu.Lock()
	out := f.identityJSON(id)
	f.mu.Unlock()
	f.RecordMutation("identity.create", id.ID, nil)
	writeHuma(w, r, http.StatusCreated, "Identity", out)
}

// queryList reads a repeated or comma-separated query parameter, dropping empty items.
func queryList(q map[string][]string, name string) []string {
	var out []string
	for _, v := range q[name] {
		for s := range strings.SplitSeq(v, ",") {
			if s = strings.TrimSpace(s); s != "" {
				out = append(out, s)
			}
		}
	}
	return out
}

// queryInt reads an integer query parameter as Huma does: absent is def, malformed is a 422.
func queryInt(w http.ResponseWriter, r *http.Request, name string, def int) (int, bool) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return def, true
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		problem(w, r, http.StatusUnprocessableEntity, "validation failed", errDetail{Message: "invalid integer", Location: "query." + name, Value: v})
		return 0, false
	}
	return n, true
}

func (f *Fake) listIdentities(w http.ResponseWriter, r *http.Request, _ []string) {
	limit, ok := queryInt(w, r, "limit", DefaultLimit)
	if !ok {
		return
	}
	offset, ok := queryInt(w, r, "offset", 0)
	if !ok {
		return
	}
	k, ok := tenantOr401(w, r)
	if !ok {
		return
	}
	if limit <= 0 || limit > MaxLimit {
		limit = DefaultLimit
	}
	offset = max(offset, 0)
	q := r.URL.Query()
	status, types, trust := queryList(q, "status"), queryList(q, "identity_type"), queryList(q, "trust_level")
	for _, s := range status {
		if !slices.Contains(statuses, s) {
			problem(w, r, http.StatusBadRequest, "invalid status filter")
			return
		}
	}
	for _, t := range trust {
		if !slices.Contains(trustLevels, t) {
			problem(w, r, http.StatusBadRequest, "invalid trust_level filter")
			return
		}
	}
	owner, search := q.Get("owner_user_id"), q.Get("search")
	keep := func(i *Identity) bool {
		return (owner == "" || i.OwnerUserID == owner) &&
			(len(types) == 0 || slices.Contains(types, i.IdentityType)) &&
			(len(trust) == 0 || slices.Contains(trust, i.TrustLevel)) &&
			(search == "" || strings.Contains(strings.ToLower(i.Name), strings.ToLower(search)) || strings.Contains(strings.ToLower(i.ExternalID), strings.ToLower(search))) &&
			// without a status filter, discovered identities are hidden
			(len(status) == 0 && i.Status != StatusDiscovered || slices.Contains(status, i.Status))
	}
	f.mu.Lock()
	var rows []*Identity
	if t := f.tenants[k]; t != nil {
		rows = t.Rows
	}
	// Newest first (created_at DESC): walk the creation order backwards.
	page, total := []map[string]any{}, 0
	for n := len(rows) - 1; n >= 0; n-- {
		if !keep(rows[n]) {
			continue
		}
		if total >= offset && len(page) < limit {
			page = append(page, f.identityJSON(rows[n]))
		}
		total++
	}
	f.mu.Unlock()
	writeHuma(w, r, http.StatusOK, "IdentityListOutputBody", map[string]any{"identities": page, "total": total, "limit": limit, "offset": offset})
}

// lookupLocked finds an identity of the caller's tenant.
func (f *Fake) lookupLocked(k tenantKey, id string) (*Identity, bool) {
	i, ok := f.byID[id]
	if !ok || i.AccountID != k.account || i.ProjectID != k.project {
		return nil, false
	}
	return i, true
}

// isUUID reports whether s is a UUID in its canonical text form (Postgres refuses anything else
// in a uuid column, which ZeroID reports as an internal error on some routes).
func isUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i, c := range s {
		switch {
		case i == 8 || i == 13 || i == 18 || i == 23:
			if c != '-' {
				return false
			}
		case !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'):
			return false
		}
	}
	return true
}

func (f *Fake) getIdentity(w http.ResponseWriter, r *http.Request, p []string) {
	k, ok := tenantOr401(w, r)
	if !ok {
		return
	}
	f.mu.Lock()
	i, ok := f.lookupLocked(k, p[0])
	var out map[string]any
	if ok {
		out = f.identityJSON(i)
	}
	f.mu.Unlock()
	if !ok {
		problem(w, r, http.StatusNotFound, "identity not found")
		return
	}
	writeHuma(w, r, http.StatusOK, "Identity", out)
}

var patchIdentitySchema = schema{fields: []field{
	{name: "name", kind: kString},
	{name: "trust_level", kind: kString, enum: trustLevels},
	{name: "identity_type", kind: kString, enum: identityTypes},
	{name: "sub_type", kind: kString, enum: subTypes},
	{name: "owner_user_id", kind: kString},
	{name: "allowed_scopes", kind: kStrings},
	{name: "credential_policy_id", kind: kString},
	{name: "public_key_pem", kind: kString},
	{name: "framework", kind: kString},
	{name: "version", kind: kString},
	{name: "publisher", kind: kString},
	{name: "description", kind: kString},
	{name: "capabilities", kind: kAny},
	{name: "labels", kind: kAny},
	{name: "metadata", kind: kAny},
	{name: "status", kind: kString, enum: []string{StatusPending, StatusActive, StatusSuspended, StatusDeactivated}},
	{name: "capability_tier", kind: kString, enum: []string{"low", "high"}},
	{name: "risk_tier", kind: kString, enum: []string{"low", "high"}},
	{name: "ial", kind: kString, enum: []string{"ial1", "ial2", "ial3"}},
	{name: "expires_at", kind: kString},
}}

func (f *Fake) patchIdentity(w http.ResponseWriter, r *http.Request, p []string) {
	body, ok := patchIdentitySchema.body(w, r)
	if !ok {
		return
	}
	k, ok := tenantOr401(w, r)
	if !ok {
		return
	}
	f.mu.Lock()
	i, found := f.lookupLocked(k, p[0])
	var err error
	var out map[string]any
	if to := str(body, "status"); found && to != "" && to != i.Status && !slices.Contains(transitions[i.Status], to) {
		err = errInvalidTransition
	}
	if found && err == nil {
		for name, set := range map[string]*string{"name": &i.Name, "trust_level": &i.TrustLevel, "owner_user_id": &i.OwnerUserID,
			"identity_type": &i.IdentityType, "sub_type": &i.SubType} {
			if v := str(body, name); v != "" {
				*set = v
			}
		}
		if err = f.updateLocked(i, str(body, "status"), actor(r)); err == nil {
			out = f.identityJSON(i)
		}
	}
	f.mu.Unlock()
	if !found || err != nil {
		// ZeroID maps neither a missing identity nor a refused transition on this route: both are
		// "failed to update identity" (500).
		problem(w, r, http.StatusInternalServerError, "failed to update identity")
		return
	}
	f.RecordMutation("identity.update", p[0], nil)
	writeHuma(w, r, http.StatusOK, "Identity", out)
}

// deleteIdentity is the soft delete: deactivate (idempotent, without touching an identity already
// deactivated) and answer the identity.
func (f *Fake) deleteIdentity(w http.ResponseWriter, r *http.Request, p []string) {
	f.lifecycle(w, r, p[0], StatusDeactivated, "identity.deactivate")
}

func (f *Fake) expireIdentity(w http.ResponseWriter, r *http.Request, p []string) {
	f.lifecycle(w, r, p[0], StatusExpired, "identity.expire")
}

func (f *Fake) lifecycle(w http.ResponseWriter, r *http.Request, id, status, mutation string) {
	k, ok := tenantOr401(w, r)
	if !ok {
		return
	}
	if !isUUID(id) {
		problem(w, r, http.StatusInternalServerError, "internal server error")
		return
	}
	f.mu.Lock()
	i, found := f.lookupLocked(k, id)
	var err error
	var out map[string]any
	if found {
		if i.Status != status {
			err = f.updateLocked(i, status, actor(r))
		}
		out = f.identityJSON(i)
	}
	f.mu.Unlock()
	switch {
	case !found:
		problem(w, r, http.StatusNotFound, "resource not found")
	case err != nil:
		problem(w, r, http.StatusBadRequest, "invalid status transition")
	default:
		f.RecordMutation(mutation, id, nil)
		writeHuma(w, r, http.StatusOK, "Identity", out)
	}
}

var offboardSchema = schema{fields: []field{
	{name: "owner_user_id", kind: kString, required: true, minLength: 1},
	{name: "reason", kind: kString, maxLength: 256},
}}

// offboard deactivates every identity of an owner in the caller's account, across its projects,
// suspended ones included; then sweeps the owner's remaining active tokens.
func (f *Fake) offboard(w http.ResponseWriter, r *http.Request, _ []string) {
	raw, body, ok := readValidated(w, r, offboardSchema)
	if !ok {
		return
	}
	k, ok := tenantOr401(w, r)
	if !ok {
		return
	}
	owner := str(body, "owner_user_id")
	if strings.TrimSpace(owner) != owner || strings.TrimSpace(owner) == "" {
		problem(w, r, http.StatusBadRequest, fmt.Sprintf("invalid owner-scoped revocation argument: OffboardOwner requires trimmed, non-empty owner_user_id and account_id (got owner=%q account=%q): "+
			"an empty owner matches every ownerless identity in the account, and a padded one silently matches nothing", owner, k.account))
		return
	}
	who := actor(r)
	f.mu.Lock()
	var owned []*Identity
	for tk, t := range f.tenants {
		if tk.account != k.account {
			continue
		}
		for _, i := range t.Rows {
			if i.OwnerUserID == owner && i.Status != StatusDeactivated {
				owned = append(owned, i)
			}
		}
	}
	slices.SortStableFunc(owned, func(a, b *Identity) int { return a.CreatedAt.Compare(b.CreatedAt) })
	deactivated := 0
	for _, i := range owned {
		if f.updateLocked(i, StatusDeactivated, who) == nil {
			deactivated++
		}
	}
	swept := 0
	for _, t := range f.tokens {
		if i := f.byID[t.identityID]; i != nil && i.AccountID == k.account && i.OwnerUserID == owner && t.activeAt(time.Now()) {
			t.revoked, t.reason = true, "owner_deactivated"
			swept++
		}
	}
	f.mu.Unlock()
	f.RecordMutation("identity.offboard", owner, raw)
	writeHuma(w, r, http.StatusOK, "OffboardByOwnerOutputBody", map[string]any{"identities_deactivated": deactivated, "credentials_revoked": swept})
}

// readValidated is schema.body that also returns the raw body, for the mutation record.
func readValidated(w http.ResponseWriter, r *http.Request, s schema) ([]byte, map[string]any, bool) {
	raw, err := fakeidp.ReadBody(r)
	if err != nil {
		raw = nil
	}
	r.Body = readCloser{bytes.NewReader(raw)}
	body, ok := s.body(w, r)
	return raw, body, ok
}

var createKeySchema = schema{fields: []field{
	{name: "name", kind: kString, required: true, minLength: 1},
	{name: "description", kind: kString},
	{name: "identity_id", kind: kString},
	{name: "credential_policy_id", kind: kString},
	{name: "product", kind: kString},
	{name: "scopes", kind: kStrings},
	{name: "environment", kind: kString, enum: []string{"live", "test"}},
	{name: "expires_in_days", kind: kInt},
	{name: "metadata", kind: kAny},
}}

func keyJSON(k *apiKey) map[string]any {
	m := map[string]any{"id": k.id, "name": k.name, "description": "", "key_prefix": k.prefix, "key_version": 1,
		"account_id": k.account, "project_id": k.project, "identity_id": k.identityID, "created_by": k.createdBy,
		"scopes": []string{}, "product": "", "environment": "live", "state": k.state, "created_at": k.createdAt.Format(time.RFC3339Nano)}
	if k.state == "revoked" {
		m["revoked_by"], m["revoke_reason"] = k.revokedBy, k.reason
	}
	return m
}

// createAPIKey creates a key for an identity of the caller's tenant. ZeroID answers 500 "failed to
// create API key" for a missing or unknown identity_id; so does the fake.
func (f *Fake) createAPIKey(w http.ResponseWriter, r *http.Request, _ []string) {
	body, ok := createKeySchema.body(w, r)
	if !ok {
		return
	}
	k, ok := tenantOr401(w, r)
	if !ok {
		return
	}
	f.mu.Lock()
	i, found := f.lookupLocked(k, str(body, "identity_id"))
	var key *apiKey
	if found {
		key = f.issueKeyLocked(i, str(body, "name"), actor(r))
	}
	f.mu.Unlock()
	if !found {
		problem(w, r, http.StatusInternalServerError, "failed to create API key")
		return
	}
	f.RecordMutation("apikey.create", i.ID, nil)
	writeHuma(w, r, http.StatusCreated, "CreateAPIKeyResponse", map[string]any{"id": key.id, "name": key.name, "description": "",
		"key": key.key, "key_prefix": key.prefix, "environment": "live", "scopes": []string{}, "created_at": key.createdAt.Format(time.RFC3339Nano)})
}

func (f *Fake) getAPIKey(w http.ResponseWriter, r *http.Request, p []string) {
	k, ok := tenantOr401(w, r)
	if !ok {
		return
	}
	f.mu.Lock()
	var out map[string]any
	for _, key := range f.keys {
		if key.id == p[0] && key.account == k.account && key.project == k.project {
			out = keyJSON(key)
		}
	}
	f.mu.Unlock()
	if out == nil {
		problem(w, r, http.StatusNotFound, "API key not found")
		return
	}
	writeHuma(w, r, http.StatusOK, "APIKey", out)
}

var registerAgentSchema = schema{fields: []field{
	{name: "name", kind: kString, required: true, minLength: 1},
	{name: "external_id", kind: kString, required: true, minLength: 1},
	{name: "identity_type", kind: kString, enum: identityTypes},
	{name: "sub_type", kind: kString, enum: subTypes},
	{name: "trust_level", kind: kString, enum: trustLevels},
	{name: "framework", kind: kString},
	{name: "version", kind: kString},
	{name: "publisher", kind: kString},
	{name: "description", kind: kString},
	{name: "capabilities", kind: kAny},
	{name: "labels", kind: kAny},
	{name: "metadata", kind: kAny},
	{name: "allowed_scopes", kind: kStrings},
	{name: "created_by", kind: kString},
	{name: "public_key_pem", kind: kString},
	{name: "credential_policy_id", kind: kString},
	{name: "api_key_credential_policy_id", kind: kString},
	{name: "expires_at", kind: kString},
	{name: "account_id", kind: kString},
	{name: "project_id", kind: kString},
}}

// registerAgent creates an identity and its key at once. The owner and creator are body created_by
// (not filtered for system:, as in ZeroID), else the X-User-ID actor; with neither ZeroID answers
// 500 "failed to register agent".
func (f *Fake) registerAgent(w http.ResponseWriter, r *http.Request, _ []string) {
	body, ok := registerAgentSchema.body(w, r)
	if !ok {
		return
	}
	k, ok := tenantOr401(w, r)
	if !ok {
		return
	}
	owner := str(body, "created_by")
	if owner == "" {
		owner = actor(r)
	}
	if owner == "" {
		problem(w, r, http.StatusInternalServerError, "failed to register agent")
		return
	}
	id, ok := f.createFromRequest(w, r, k, Identity{ExternalID: str(body, "external_id"), Name: str(body, "name"),
		IdentityType: str(body, "identity_type"), SubType: str(body, "sub_type"), TrustLevel: str(body, "trust_level"),
		OwnerUserID: owner, CreatedBy: owner})
	if !ok {
		return
	}
	f.mu.Lock()
	key := f.issueKeyLocked(id, id.Name+" key", owner)
	agent := f.identityJSON(id)
	f.mu.Unlock()
	agent["api_key_prefix"] = key.prefix
	f.RecordMutation("identity.create", id.ID, nil)
	writeHuma(w, r, http.StatusCreated, "AgentRegistrationResponse", map[string]any{"identity": agent, "api_key": key.key})
}

var ingestSchema = schema{fields: []field{
	{name: "identity_id", kind: kString},
	{name: "signal_type", kind: kString, required: true, minLength: 1},
	{name: "severity", kind: kString, enum: []string{"low", "medium", "high", "critical"}},
	{name: "source", kind: kString, required: true, minLength: 1},
	{name: "payload", kind: kObject},
}}

func signalMap(s *Signal) map[string]any {
	m := map[string]any{"id": s.ID, "account_id": s.AccountID, "project_id": s.ProjectID, "signal_type": s.SignalType,
		"severity": s.Severity, "source": s.Source, "created_at": s.CreatedAt.Format(time.RFC3339Nano)}
	if s.IdentityID != "" {
		m["identity_id"] = s.IdentityID
	}
	if s.Payload != nil {
		m["payload"] = s.Payload
	}
	return m
}

func signalJSON(s *Signal) []byte {
	b, _ := json.Marshal(signalMap(s))
	return b
}

// ingest stores a CAE signal in the caller's tenant. The signal's identity must exist in some
// tenant (ZeroID's foreign key; otherwise 500 "failed to ingest signal"); a high or critical one
// revokes the tokens that identity holds now, but only when it belongs to the caller's tenant. The
// identity, its status and its API keys are untouched.
func (f *Fake) ingest(w http.ResponseWriter, r *http.Request, _ []string) {
	raw, body, ok := readValidated(w, r, ingestSchema)
	if !ok {
		return
	}
	k, ok := tenantOr401(w, r)
	if !ok {
		return
	}
	signalType, severity, identityID := str(body, "signal_type"), str(body, "severity"), str(body, "identity_id")
	if severity == "" {
		severity = "low"
	}
	if !slices.Contains(signalTypes, signalType) {
		problem(w, r, http.StatusBadRequest, "invalid signal_type")
		return
	}
	f.mu.Lock()
	if _, exists := f.byID[identityID]; !exists {
		f.mu.Unlock()
		problem(w, r, http.StatusInternalServerError, "failed to ingest signal")
		return
	}
	payload, _ := body["payload"].(map[string]any)
	s := &Signal{AccountID: k.account, ProjectID: k.project, IdentityID: identityID, SignalType: signalType, Severity: severity,
		Source: str(body, "source"), Payload: payload}
	f.addSignalLocked(s)
	if severity == "high" || severity == "critical" {
		if _, same := f.lookupLocked(k, identityID); same {
			f.revokeTokensLocked(identityID, fmt.Sprintf("auto-revoked by CAE signal %s (severity: %s)", s.ID, severity))
		}
	}
	out := signalMap(s)
	f.mu.Unlock()
	f.RecordMutation("signal.ingest", identityID, raw)
	writeHuma(w, r, http.StatusCreated, "CAESignal", out)
}

// listSignals answers the caller tenant's newest signals; total is the number returned.
func (f *Fake) listSignals(w http.ResponseWriter, r *http.Request, _ []string) {
	limit, ok := queryInt(w, r, "limit", 50)
	if !ok {
		return
	}
	if limit < 1 || limit > 500 {
		msg := "expected number >= 1"
		if limit > 500 {
			msg = "expected number <= 500"
		}
		problem(w, r, http.StatusUnprocessableEntity, "validation failed", errDetail{Message: msg, Location: "query.limit", Value: limit})
		return
	}
	k, ok := tenantOr401(w, r)
	if !ok {
		return
	}
	f.mu.Lock()
	out := []map[string]any{}
	for n := len(f.signals) - 1; n >= 0 && len(out) < limit; n-- {
		if s := f.signals[n]; s.AccountID == k.account && s.ProjectID == k.project {
			out = append(out, signalMap(s))
		}
	}
	f.mu.Unlock()
	writeHuma(w, r, http.StatusOK, "SignalListOutputBody", map[string]any{"signals": out, "total": len(out)})
}

// stream is the SSE signal stream: "connected", then one "signal" event per signal of the tenant,
// no ids, no replay, no heartbeat; a subscriber whose buffer of 100 is full misses events.
func (f *Fake) stream(w http.ResponseWriter, r *http.Request, _ []string) {
	k, ok := tenant(r)
	if !ok {
		fakeidp.WriteJSON(w, http.StatusBadRequest, map[string]any{"error": map[string]any{"code": 400, "internalCode": "ZEROID-40001",
			"message": "missing X-Account-ID or X-Project-ID header", "status": "Bad Request", "timestamp": time.Now().UTC().Format(time.RFC3339)}})
		return
	}
	ch := make(chan []byte, 100)
	f.mu.Lock()
	f.subs[ch] = k
	f.mu.Unlock()
	defer func() {
		f.mu.Lock()
		delete(f.subs, ch)
		f.mu.Unlock()
	}()
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.Header().Set("Connection", "keep-alive")
	w.Header().Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	_, _ = fmt.Fprint(w, "event: connected\ndata: {}\n\n")
	_ = rc.Flush()
	for {
		select {
		case <-r.Context().Done():
			return
		case <-f.done:
			return
		case b := <-ch:
			_, _ = fmt.Fprintf(w, "event: signal\ndata: %s\n\n", b)
			_ = rc.Flush()
		}
	}
}

var createClientSchema = schema{fields: []field{
	{name: "client_id", kind: kString, required: true, minLength: 1},
	{name: "name", kind: kString, required: true, minLength: 1},
	{name: "description", kind: kString},
	{name: "confidential", kind: kBool},
	{name: "token_endpoint_auth_method", kind: kString},
	{name: "grant_types", kind: kStrings},
	{name: "scopes", kind: kStrings},
	{name: "redirect_uris", kind: kStrings},
	{name: "access_token_ttl", kind: kInt},
	{name: "refresh_token_ttl", kind: kInt},
}}

// createOAuthClient registers a global OAuth client (no tenant headers needed).
func (f *Fake) createOAuthClient(w http.ResponseWriter, r *http.Request, _ []string) {
	body, ok := createClientSchema.body(w, r)
	if !ok {
		return
	}
	confidential, _ := body["confidential"].(bool)
	f.mu.Lock()
	c, err := f.createClientLocked(Client{ClientID: str(body, "client_id"), Confidential: confidential,
		GrantTypes: strs(body, "grant_types"), Scopes: strs(body, "scopes")}, str(body, "name"))
	f.mu.Unlock()
	if err != nil {
		problem(w, r, http.StatusConflict, err.Error())
		return
	}
	typ, method, note := "public", "none", "Public PKCE client registered — no client_secret (use PKCE code_challenge instead)."
	if c.Confidential {
		typ, method, note = "confidential", "client_secret_basic", "Save client_secret now — it will not be shown again."
	}
	writeHuma(w, r, http.StatusCreated, "OAuthClientCreatedOutputBody", map[string]any{
		"client": map[string]any{"id": c.id, "client_id": c.ClientID, "name": c.name, "client_type": typ,
			"token_endpoint_auth_method": method, "grant_types": c.GrantTypes, "redirect_uris": []string{}, "scopes": c.Scopes,
			"is_active": true, "created_at": c.createdAt.Format(time.RFC3339Nano), "updated_at": c.createdAt.Format(time.RFC3339Nano)},
		"client_secret": c.secret, "note": note})
}
