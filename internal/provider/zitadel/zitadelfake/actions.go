package zitadelfake

import (
	"crypto/rand"
	"encoding/json"
	"fmt"
	"math/big"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/idpsync/idpsync/internal/fakeidp"
)

// Actions v2, as zitadel.action.v2.ActionService serves it over REST (proto
// zitadel/action/v2/action_service.proto and the command code behind it):
//
//   - POST /v2/actions/targets creates a target: a name, exactly one of restWebhook, restCall or
//     restAsync, a timeout (a protobuf Duration, required, at most 270s), an endpoint and a payload
//     type (default PAYLOAD_TYPE_JSON). The answer carries the id and the signing key.
//   - POST /v2/actions/targets/search lists targets (filters targetNameFilter, inTargetIdsFilter);
//     a target as listed carries its current signing key too.
//   - DELETE /v2/actions/targets/{id} deletes a target and takes it out of every execution; a
//     target that is gone already answers success.
//   - PUT /v2/actions/executions sets the ordered targets of a condition's execution: an event
//     condition names an event type, an event group ("user" calls on user.*) or all events, and
//     must exist; unknown targets are refused; the same list again changes nothing; an empty list
//     removes the execution.
//   - POST /v2/actions/executions/search lists the executions that have targets (filters
//     inConditionsFilter, executionTypeFilter, targetFilter).
//
// Lists take a filter.v2 PaginationRequest {offset, limit, asc}: the default limit is 100, more
// than 1000 is refused, and asc defaults to false (newest first).
//
// Deliveries follow the executions: once an event execution calls a target, the fake's webhooks
// go to that target's endpoint, signed with its key, for the events its executions' conditions
// match (the fake delivers to one target: the one of the oldest such execution). When no
// execution calls a target any more, it sends nothing. A webhook target set from Go applies as
// long as no execution was set through the API.

// Target is an Actions v2 target held by the fake.
type Target struct {
	ID, Name string
	// Type is restWebhook, restCall or restAsync.
	Type             string
	InterruptOnError bool
	Timeout          time.Duration
	Endpoint         string
	PayloadType      string
	// SigningKey signs the JSON payloads sent to the target.
	SigningKey string
	CreatedAt  time.Time
	ChangedAt  time.Time
}

// Execution is an Actions v2 execution held by the fake.
type Execution struct {
	// Condition is the condition as the API renders it, e.g. {"event":{"group":"user"}}.
	Condition map[string]any
	Targets   []string
	CreatedAt time.Time
	ChangedAt time.Time
}

// eventTypes are the event types the fake knows (and emits most of): an event condition must
// name one, or a group that some start with.
var eventTypes = []string{
	"user.human.added", "user.human.selfregistered", "user.machine.added", "user.human.profile.changed",
	"user.human.email.changed", "user.username.changed", "user.deactivated", "user.reactivated", "user.locked",
	"user.unlocked", "user.removed", "user.grant.added", "user.grant.removed",
	"org.added", "org.changed", "org.deactivated", "org.reactivated", "org.removed",
	"org.member.added", "org.member.changed", "org.member.removed",
	"session.added", "session.terminated",
}

const maxTargetTimeout = 270 * time.Second

// Targets returns copies of the targets, oldest first.
func (f *Fake) Targets() []Target {
	f.mu.RLock()
	defer f.mu.RUnlock()
	out := make([]Target, 0, len(f.targets))
	for _, t := range f.targets {
		out = append(out, *t)
	}
	return out
}

// Executions returns copies of the executions, oldest first.
func (f *Fake) Executions() []Execution {
	f.mu.RLock()
	defer f.mu.RUnlock()
	out := make([]Execution, 0, len(f.executions))
	for _, e := range f.executions {
		c := *e
		c.Targets = slices.Clone(e.Targets)
		out = append(out, c)
	}
	return out
}

func (f *Fake) targetByID(id string) (*Target, int) {
	for i, t := range f.targets {
		if t.ID == id {
			return t, i
		}
	}
	return nil, -1
}

func targetWire(t *Target) map[string]any {
	w := map[string]any{"id": t.ID, "creationDate": t.CreatedAt.Format(time.RFC3339Nano), "changeDate": t.ChangedAt.Format(time.RFC3339Nano),
		"name": t.Name, "timeout": durationWire(t.Timeout), "endpoint": t.Endpoint, "signingKey": t.SigningKey, "payloadType": t.PayloadType}
	switch t.Type {
	case "restAsync":
		w["restAsync"] = map[string]any{}
	default:
		w[t.Type] = map[string]any{"interruptOnError": t.InterruptOnError}
	}
	return w
}

func executionWire(e *Execution) map[string]any {
	return map[string]any{"condition": e.Condition, "creationDate": e.CreatedAt.Format(time.RFC3339Nano),
		"changeDate": e.ChangedAt.Format(time.RFC3339Nano), "targets": e.Targets}
}

// durationWire renders a protobuf Duration as protojson does: seconds with an "s".
func durationWire(d time.Duration) string {
	return strconv.FormatFloat(d.Seconds(), 'f', -1, 64) + "s"
}

// parseDuration reads a protobuf Duration: decimal seconds with an "s".
func parseDuration(s string) (time.Duration, bool) {
	num, ok := strings.CutSuffix(s, "s")
	if !ok {
		return 0, false
	}
	secs, err := strconv.ParseFloat(num, 64)
	if err != nil || secs < 0 {
		return 0, false
	}
	return time.Duration(secs * float64(time.Second)), true
}

func newSigningKey() string {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
	b := make([]byte, 32)
	for i := range b {
		n, _ := rand.Int(rand.Reader, big.NewInt(int64(len(alphabet))))
		b[i] = alphabet[n.Int64()]
	}
	return string(b)
}

func (f *Fake) createTarget(w http.ResponseWriter, r *http.Request) {
	body, err := fakeidp.ReadBody(r)
	var req struct {
		Name        string          `json:"name"`
		RESTWebhook json.RawMessage `json:"restWebhook"`
		RESTCall    json.RawMessage `json:"restCall"`
		RESTAsync   json.RawMessage `json:"restAsync"`
		Timeout     *string         `json:"timeout"`
		Endpoint    string          `json:"endpoint"`
		PayloadType string          `json:"payloadType"`
	}
	if err == nil {
		err = json.Unmarshal(body, &req)
	}
	if err != nil {
		f.fail(w, http.StatusBadRequest, 3, "invalid request body", "FAKE-400")
		return
	}
	t := &Target{Name: req.Name, Endpoint: req.Endpoint, PayloadType: req.PayloadType}
	types := 0
	for name, raw := range map[string]json.RawMessage{"restWebhook": req.RESTWebhook, "restCall": req.RESTCall, "restAsync": req.RESTAsync} {
		if raw == nil || string(raw) == "null" {
			continue
		}
		types++
		t.Type = name
		var opts struct {
			InterruptOnError bool `json:"interruptOnError"`
		}
		if json.Unmarshal(raw, &opts) != nil {
			f.fail(w, http.StatusBadRequest, 3, "invalid "+name, "FAKE-400")
			return
		}
		t.InterruptOnError = opts.InterruptOnError
	}
	var ok bool
	if req.Timeout != nil {
		t.Timeout, ok = parseDuration(*req.Timeout)
	}
	u, urlErr := url.Parse(req.Endpoint)
	switch {
	case req.Name == "" || len(req.Name) > 1000:
		f.fail(w, http.StatusBadRequest, 3, "Errors.Target.Invalid", "COMMAND-ddqbm9us5p")
		return
	case types != 1:
		f.fail(w, http.StatusBadRequest, 3, "invalid CreateTargetRequest.TargetType: value is required", "FAKE-400")
		return
	case req.Timeout == nil || t.Timeout == 0:
		f.fail(w, http.StatusBadRequest, 3, "Errors.Target.NoTimeout", "COMMAND-39f35d8uri")
		return
	case !ok || t.Timeout > maxTargetTimeout:
		f.fail(w, http.StatusBadRequest, 3, "invalid CreateTargetRequest.Timeout: value must be less than or equal to 4m30s", "FAKE-400")
		return
	case req.Endpoint == "" || urlErr != nil || u.Scheme == "" || u.Host == "":
		f.fail(w, http.StatusBadRequest, 3, "Errors.Target.InvalidURL", "COMMAND-1r2k6qo6wg")
		return
	}
	switch t.PayloadType {
	case "", "PAYLOAD_TYPE_UNSPECIFIED":
		t.PayloadType = "PAYLOAD_TYPE_JSON"
	case "PAYLOAD_TYPE_JSON", "PAYLOAD_TYPE_JWT", "PAYLOAD_TYPE_JWE":
	default:
		f.fail(w, http.StatusBadRequest, 3, "invalid value for enum field payloadType", "FAKE-400")
		return
	}
	now := time.Now().UTC()
	t.CreatedAt, t.ChangedAt = now, now
	t.SigningKey = newSigningKey()
	f.mu.Lock()
	t.ID = f.newID()
	f.targets = append(f.targets, t)
	f.mu.Unlock()
	f.RecordMutation("target.create", t.ID, body)
	fakeidp.WriteJSON(w, http.StatusOK, map[string]any{"id": t.ID, "creationDate": now.Format(time.RFC3339Nano), "signingKey": t.SigningKey})
}

func (f *Fake) deleteTarget(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	f.mu.Lock()
	t, i := f.targetByID(id)
	if t != nil {
		f.targets = slices.Delete(f.targets, i, i+1)
		now := time.Now().UTC()
		for _, e := range f.executions {
			if slices.Contains(e.Targets, id) {
				e.Targets = slices.DeleteFunc(e.Targets, func(x string) bool { return x == id })
				e.ChangedAt = now
			}
		}
		f.executions = slices.DeleteFunc(f.executions, func(e *Execution) bool { return len(e.Targets) == 0 })
	}
	f.mu.Unlock()
	if t == nil {
		// The desired state holds already: Zitadel answers success without a deletion date.
		fakeidp.WriteJSON(w, http.StatusOK, map[string]any{})
		return
	}
	f.reroute()
	f.RecordMutation("target.delete", id, nil)
	fakeidp.WriteJSON(w, http.StatusOK, map[string]any{"deletionDate": time.Now().UTC().Format(time.RFC3339Nano)})
}

// readPagination decodes a request of the newer list endpoints: {pagination, filters}.
func (f *Fake) readPagination(w http.ResponseWriter, r *http.Request, filters any) (offset, limit int, asc, ok bool) {
	var req struct {
		Pagination *struct {
			Offset json.Number `json:"offset"`
			Limit  json.Number `json:"limit"`
			Asc    bool        `json:"asc"`
		} `json:"pagination"`
		Filters json.RawMessage `json:"filters"`
	}
	dec := json.NewDecoder(r.Body)
	dec.UseNumber()
	if err := dec.Decode(&req); err != nil {
		f.fail(w, http.StatusBadRequest, 3, "invalid request body", "FAKE-400")
		return 0, 0, false, false
	}
	if len(req.Filters) > 0 && json.Unmarshal(req.Filters, filters) != nil {
		f.fail(w, http.StatusBadRequest, 3, "invalid filters", "FAKE-400")
		return 0, 0, false, false
	}
	limit = DefaultLimit
	if p := req.Pagination; p != nil {
		asc = p.Asc
		if s := p.Offset.String(); s != "" {
			n, err := strconv.Atoi(s)
			if err != nil || n < 0 {
				f.fail(w, http.StatusBadRequest, 3, "invalid PaginationRequest.Offset", "FAKE-400")
				return 0, 0, false, false
			}
			offset = n
		}
		if s := p.Limit.String(); s != "" && s != "0" {
			n, err := strconv.Atoi(s)
			if err != nil || n < 0 {
				f.fail(w, http.StatusBadRequest, 3, "invalid PaginationRequest.Limit", "FAKE-400")
				return 0, 0, false, false
			}
			if n > MaxLimit {
				f.fail(w, http.StatusBadRequest, 3, "Errors.Query.LimitExceeded", "QUERY-4M0fs")
				return 0, 0, false, false
			}
			limit = n
		}
	}
	return offset, limit, asc, true
}

func paginationBody(total, limit int, key string, items []map[string]any) map[string]any {
	if items == nil {
		items = []map[string]any{}
	}
	return map[string]any{"pagination": map[string]any{"totalResult": strconv.Itoa(total), "appliedLimit": strconv.Itoa(limit)}, key: items}
}

// page orders rows (oldest first unless !asc) and cuts the page.
func page[T any](rows []T, offset, limit int, asc bool) []T {
	rows = slices.Clone(rows)
	if !asc {
		slices.Reverse(rows)
	}
	if offset >= len(rows) {
		return nil
	}
	return rows[offset:min(offset+limit, len(rows))]
}

func textMatches(method, have, want string) bool {
	if strings.HasSuffix(method, "_IGNORE_CASE") {
		have, want = strings.ToLower(have), strings.ToLower(want)
	}
	switch strings.TrimSuffix(method, "_IGNORE_CASE") {
	case "TEXT_FILTER_METHOD_STARTS_WITH":
		return strings.HasPrefix(have, want)
	case "TEXT_FILTER_METHOD_CONTAINS":
		return strings.Contains(have, want)
	case "TEXT_FILTER_METHOD_ENDS_WITH":
		return strings.HasSuffix(have, want)
	}
	return have == want
}

func (f *Fake) listTargets(w http.ResponseWriter, r *http.Request) {
	var filters []struct {
		TargetNameFilter *struct {
			TargetName string `json:"targetName"`
			Method     string `json:"method"`
		} `json:"targetNameFilter"`
		InTargetIDsFilter *struct {
			TargetIDs []string `json:"targetIds"`
		} `json:"inTargetIdsFilter"`
	}
	offset, limit, asc, ok := f.readPagination(w, r, &filters)
	if !ok {
		return
	}
	f.mu.RLock()
	var keep []*Target
	for _, t := range f.targets {
		match := true
		for _, fl := range filters {
			if n := fl.TargetNameFilter; n != nil && !textMatches(n.Method, t.Name, n.TargetName) {
				match = false
			}
			if in := fl.InTargetIDsFilter; in != nil && !slices.Contains(in.TargetIDs, t.ID) {
				match = false
			}
		}
		if match {
			keep = append(keep, t)
		}
	}
	rows := page(keep, offset, limit, asc)
	out := make([]map[string]any, len(rows))
	for i, t := range rows {
		out[i] = targetWire(t)
	}
	f.mu.RUnlock()
	fakeidp.WriteJSON(w, http.StatusOK, paginationBody(len(keep), limit, "targets", out))
}

// condition is an execution condition as sent: exactly one kind, and for an event exactly one of
// event, group and all.
type condition struct {
	Request  map[string]any `json:"request,omitempty"`
	Response map[string]any `json:"response,omitempty"`
	Function map[string]any `json:"function,omitempty"`
	Event    *struct {
		Event string `json:"event,omitempty"`
		Group string `json:"group,omitempty"`
		All   bool   `json:"all,omitempty"`
	} `json:"event,omitempty"`
}

// canonical validates c and returns it as the API renders it (an event group without its ".*").
func (c condition) canonical() (map[string]any, *zitadelErr) {
	kinds := 0
	for _, set := range []bool{c.Request != nil, c.Response != nil, c.Function != nil, c.Event != nil} {
		if set {
			kinds++
		}
	}
	if kinds != 1 {
		return nil, &zitadelErr{http.StatusBadRequest, 3, "invalid SetExecutionRequest.Condition: value is required", "FAKE-400"}
	}
	switch {
	case c.Request != nil:
		return map[string]any{"request": c.Request}, nil
	case c.Response != nil:
		return map[string]any{"response": c.Response}, nil
	case c.Function != nil:
		return map[string]any{"function": c.Function}, nil
	}
	e := c.Event
	set := 0
	for _, b := range []bool{e.Event != "", e.Group != "", e.All} {
		if b {
			set++
		}
	}
	if set != 1 {
		return nil, &zitadelErr{http.StatusBadRequest, 3, "Errors.Execution.Invalid", "COMMAND-hdm4zl1hmd"}
	}
	switch {
	case e.Event != "":
		if !slices.Contains(eventTypes, e.Event) {
			return nil, &zitadelErr{http.StatusNotFound, 5, "Errors.Execution.ConditionInvalid", "COMMAND-74aaqj8fv9"}
		}
		return map[string]any{"event": map[string]any{"event": e.Event}}, nil
	case e.Group != "":
		g := strings.TrimSuffix(e.Group, ".*")
		if !slices.ContainsFunc(eventTypes, func(t string) bool { return strings.HasPrefix(t, g+".") }) {
			return nil, &zitadelErr{http.StatusNotFound, 5, "Errors.Execution.ConditionInvalid", "COMMAND-er5oneb5lz"}
		}
		return map[string]any{"event": map[string]any{"group": g}}, nil
	}
	return map[string]any{"event": map[string]any{"all": true}}, nil
}

type zitadelErr struct {
	status, code int
	key, id      string
}

func sameCondition(a, b map[string]any) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return string(x) == string(y)
}

func (f *Fake) setExecution(w http.ResponseWriter, r *http.Request) {
	body, err := fakeidp.ReadBody(r)
	var req struct {
		Condition *condition `json:"condition"`
		Targets   []string   `json:"targets"`
	}
	if err == nil {
		err = json.Unmarshal(body, &req)
	}
	if err != nil || req.Condition == nil {
		f.fail(w, http.StatusBadRequest, 3, "invalid SetExecutionRequest", "FAKE-400")
		return
	}
	cond, zerr := req.Condition.canonical()
	if zerr != nil {
		f.fail(w, zerr.status, zerr.code, zerr.key, zerr.id)
		return
	}
	now := time.Now().UTC()
	f.mu.Lock()
	for _, id := range req.Targets {
		if t, _ := f.targetByID(id); t == nil {
			f.mu.Unlock()
			f.fail(w, http.StatusNotFound, 5, "Errors.Target.NotFound", "COMMAND-17e8fq1ggk")
			return
		}
	}
	i := slices.IndexFunc(f.executions, func(e *Execution) bool { return sameCondition(e.Condition, cond) })
	var current []string
	if i >= 0 {
		current = f.executions[i].Targets
	}
	if slices.Equal(current, req.Targets) {
		// Zitadel pushes no event when the targets are those already set.
		f.mu.Unlock()
		fakeidp.WriteJSON(w, http.StatusOK, map[string]any{"setDate": now.Format(time.RFC3339Nano)})
		return
	}
	switch {
	case len(req.Targets) == 0:
		f.executions = slices.Delete(f.executions, i, i+1)
	case i >= 0:
		f.executions[i].Targets, f.executions[i].ChangedAt = slices.Clone(req.Targets), now
	default:
		f.executions = append(f.executions, &Execution{Condition: cond, Targets: slices.Clone(req.Targets), CreatedAt: now, ChangedAt: now})
	}
	f.mu.Unlock()
	f.reroute()
	b, _ := json.Marshal(cond)
	f.RecordMutation("execution.set", string(b), body)
	fakeidp.WriteJSON(w, http.StatusOK, map[string]any{"setDate": now.Format(time.RFC3339Nano)})
}

func (f *Fake) listExecutions(w http.ResponseWriter, r *http.Request) {
	var filters []struct {
		InConditionsFilter *struct {
			Conditions []condition `json:"conditions"`
		} `json:"inConditionsFilter"`
		ExecutionTypeFilter *struct {
			ExecutionType string `json:"executionType"`
		} `json:"executionTypeFilter"`
		TargetFilter *struct {
			TargetID string `json:"targetId"`
		} `json:"targetFilter"`
	}
	offset, limit, asc, ok := f.readPagination(w, r, &filters)
	if !ok {
		return
	}
	var wanted [][]map[string]any // per inConditionsFilter
	for _, fl := range filters {
		if in := fl.InConditionsFilter; in != nil {
			var conds []map[string]any
			for _, c := range in.Conditions {
				canon, zerr := c.canonical()
				if zerr != nil && zerr.status == http.StatusBadRequest {
					f.fail(w, zerr.status, zerr.code, zerr.key, zerr.id)
					return
				}
				conds = append(conds, canon)
			}
			wanted = append(wanted, conds)
		}
	}
	f.mu.RLock()
	var keep []*Execution
	for _, e := range f.executions {
		match := true
		for _, conds := range wanted {
			match = match && slices.ContainsFunc(conds, func(c map[string]any) bool { return c != nil && sameCondition(c, e.Condition) })
		}
		for _, fl := range filters {
			if tf := fl.TargetFilter; tf != nil && !slices.Contains(e.Targets, tf.TargetID) {
				match = false
			}
			if et := fl.ExecutionTypeFilter; et != nil && et.ExecutionType != executionType(e.Condition) {
				match = false
			}
		}
		if match {
			keep = append(keep, e)
		}
	}
	rows := page(keep, offset, limit, asc)
	out := make([]map[string]any, len(rows))
	for i, e := range rows {
		out[i] = executionWire(e)
	}
	f.mu.RUnlock()
	fakeidp.WriteJSON(w, http.StatusOK, paginationBody(len(keep), limit, "executions", out))
}

func executionType(cond map[string]any) string {
	for k := range cond {
		return map[string]string{"request": "EXECUTION_TYPE_REQUEST", "response": "EXECUTION_TYPE_RESPONSE",
			"event": "EXECUTION_TYPE_EVENT", "function": "EXECUTION_TYPE_FUNCTION"}[k]
	}
	return ""
}

// route is where the API's executions send the fake's webhooks.
type route struct {
	target string
	conds  []map[string]any // the event conditions of the executions that call it
}

// matches reports whether an event of type eventType triggers one of the route's conditions.
func (rt *route) matches(eventType string) bool {
	for _, c := range rt.conds {
		ev, _ := c["event"].(map[string]any)
		switch {
		case ev == nil:
		case ev["all"] == true, ev["event"] == eventType:
			return true
		case ev["group"] != nil && strings.HasPrefix(eventType, fmt.Sprint(ev["group"])+"."):
			return true
		}
	}
	return false
}

// reroute points the fake's webhooks at the target of the oldest event execution, or turns them
// off when the API's executions call no target any more.
func (f *Fake) reroute() {
	f.mu.Lock()
	var (
		rt     *route
		target *Target
	)
	for _, e := range f.executions {
		if executionType(e.Condition) != "EXECUTION_TYPE_EVENT" {
			continue
		}
		if rt == nil {
			for _, id := range e.Targets {
				if t, _ := f.targetByID(id); t != nil {
					rt, target = &route{target: id}, t
					break
				}
			}
		}
		if rt != nil && slices.Contains(e.Targets, rt.target) {
			rt.conds = append(rt.conds, e.Condition)
		}
	}
	was := f.routed != nil
	f.routed = rt
	f.mu.Unlock()
	switch {
	case target != nil:
		f.SetWebhookTarget(fakeidp.WebhookTarget{URL: target.Endpoint, Secret: target.SigningKey})
	case was:
		f.SetWebhookTarget(fakeidp.WebhookTarget{})
	}
}

// routes reports whether an event of type eventType is sent: always with a target set from Go,
// only when an execution's condition matches it once the API set executions.
func (f *Fake) routes(eventType string) bool {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.routed == nil || f.routed.matches(eventType)
}
