package zitadel

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"iter"
	"net/http"
	"time"

	"github.com/idpsync/idpsync/internal/idpclient"
)

// Zitadel's Actions v2 (zitadel.action.v2.ActionService, REST transcoding; proto
// zitadel/action/v2/action_service.proto): a target is an endpoint Zitadel calls, an execution
// says which targets to call on a condition, e.g. every event of a group. Its lists take a
// zitadel.filter.v2 PaginationRequest {offset, limit, asc} (asc defaults to false: newest first)
// and answer a PaginationResponse {totalResult, appliedLimit}.

// Target types, payload types and execution types of Actions v2.
const (
	PayloadTypeJSON = "PAYLOAD_TYPE_JSON"
	PayloadTypeJWT  = "PAYLOAD_TYPE_JWT"
	PayloadTypeJWE  = "PAYLOAD_TYPE_JWE"

	ExecutionTypeEvent = "EXECUTION_TYPE_EVENT"
)

// RESTTarget holds the options of a REST target type: restWebhook (the status is checked, the
// body ignored) or restCall (the body is read back).
type RESTTarget struct {
	// InterruptOnError stops the execution when the target answers with an error.
	InterruptOnError bool `json:"interruptOnError"`
}

// Target is an Actions v2 target. Zitadel also returns the target's current signing key in it;
// the client does not keep it: idpsync shows a key once, when it creates the target.
type Target struct {
	ID           string      `json:"id"`
	Name         string      `json:"name"`
	CreationDate *time.Time  `json:"creationDate,omitempty"`
	ChangeDate   *time.Time  `json:"changeDate,omitempty"`
	RESTWebhook  *RESTTarget `json:"restWebhook,omitempty"`
	RESTCall     *RESTTarget `json:"restCall,omitempty"`
	RESTAsync    *struct{}   `json:"restAsync,omitempty"`
	// Timeout is a protobuf Duration: "10s".
	Timeout  string `json:"timeout,omitempty"`
	Endpoint string `json:"endpoint"`
	// PayloadType is PAYLOAD_TYPE_JSON (signed with ZITADEL-Signature), _JWT or _JWE; empty
	// means JSON on versions that predate payload types.
	PayloadType string `json:"payloadType,omitempty"`
}

// Type names the target's type: "restWebhook", "restCall", "restAsync" or "".
func (t *Target) Type() string {
	switch {
	case t.RESTWebhook != nil:
		return "restWebhook"
	case t.RESTCall != nil:
		return "restCall"
	case t.RESTAsync != nil:
		return "restAsync"
	}
	return ""
}

// CreateTargetParams is the body of POST /v2/actions/targets. Set exactly one of RESTWebhook,
// RESTCall and RESTAsync.
type CreateTargetParams struct {
	// Name labels the target; required.
	Name        string      `json:"name"`
	RESTWebhook *RESTTarget `json:"restWebhook,omitempty"`
	RESTCall    *RESTTarget `json:"restCall,omitempty"`
	RESTAsync   *struct{}   `json:"restAsync,omitempty"`
	// Timeout is how long Zitadel waits for the endpoint, as a protobuf Duration ("10s", at
	// most 270s); required.
	Timeout string `json:"timeout"`
	// Endpoint is the URL Zitadel POSTs to; required.
	Endpoint string `json:"endpoint"`
	// PayloadType defaults to PAYLOAD_TYPE_JSON.
	PayloadType string `json:"payloadType,omitempty"`
}

// CreatedTarget is Zitadel's answer to a target's creation.
type CreatedTarget struct {
	ID           string     `json:"id"`
	CreationDate *time.Time `json:"creationDate,omitempty"`
	// SigningKey is the key Zitadel signs the target's payloads with (ZITADEL-Signature). Put it
	// in the receiver's configuration; never log it.
	SigningKey string `json:"signingKey"`
}

// CreateTarget creates a target. It is sent once: a repeat would create a second target.
func (c *Client) CreateTarget(ctx context.Context, params *CreateTargetParams) (*CreatedTarget, error) {
	if params == nil || params.Name == "" || params.Endpoint == "" || params.Timeout == "" {
		return nil, fmt.Errorf("creating target: Name, Endpoint and Timeout are required: %w", idpclient.ErrValidation)
	}
	var out CreatedTarget
	if err := c.t.Do(ctx, &idpclient.Request{Method: http.MethodPost, Path: "/v2/actions/targets", JSON: params}, &out); err != nil {
		return nil, fmt.Errorf("creating target: %w", err)
	}
	if out.ID == "" {
		return nil, fmt.Errorf("creating target: the answer carries no target id: %w", idpclient.ErrUnexpected)
	}
	return &out, nil
}

// DeleteTarget deletes a target, which also takes it out of every execution. Zitadel answers a
// delete of a target that is gone with success; a 404 (older versions) is ErrNotFound.
func (c *Client) DeleteTarget(ctx context.Context, targetID string) error {
	if targetID == "" {
		return fmt.Errorf("deleting target: the id is empty: %w", idpclient.ErrValidation)
	}
	req := &idpclient.Request{Method: http.MethodDelete, Path: "/v2/actions/targets/" + idpclient.PathEscape(targetID), NotFoundMeansGone: true}
	if err := c.t.Do(ctx, req, nil); err != nil {
		return fmt.Errorf("deleting target: %w", err)
	}
	return nil
}

// ListTargetsParams filters POST /v2/actions/targets/search.
type ListTargetsParams struct {
	ListParams
	// IDs keeps the targets with these ids.
	IDs []string
}

// ListTargets iterates over the instance's targets, oldest first.
func (c *Client) ListTargets(ctx context.Context, params *ListTargetsParams) iter.Seq2[Target, error] {
	if params == nil {
		params = &ListTargetsParams{}
	}
	var filters []any
	if len(params.IDs) > 0 {
		filters = append(filters, map[string]any{"inTargetIdsFilter": map[string]any{"targetIds": params.IDs}})
	}
	return idpclient.Paginate(ctx, params.Offset, filterPages[Target](c, "/v2/actions/targets/search", params.ListParams, filters))
}

// EventCondition is the condition of an event execution: one event type, an event group (every
// event whose type starts with the group and a dot: "user" for user.human.added and the rest), or
// all events. Set exactly one.
type EventCondition struct {
	Event string `json:"event,omitempty"`
	Group string `json:"group,omitempty"`
	All   bool   `json:"all,omitempty"`
}

// Condition says when an execution runs. idpsync sets event conditions; the other kinds are kept
// as received.
type Condition struct {
	Request  json.RawMessage `json:"request,omitempty"`
	Response json.RawMessage `json:"response,omitempty"`
	Function json.RawMessage `json:"function,omitempty"`
	Event    *EventCondition `json:"event,omitempty"`
}

// EventGroup returns the condition of an execution for every event of group.
func EventGroup(group string) Condition { return Condition{Event: &EventCondition{Group: group}} }

// Same reports whether c and o are the same condition.
func (c Condition) Same(o Condition) bool {
	a, _ := json.Marshal(c)
	b, _ := json.Marshal(o)
	return bytes.Equal(a, b)
}

// String renders the condition as JSON, for messages.
func (c Condition) String() string {
	b, _ := json.Marshal(c)
	return string(b)
}

// Execution is an Actions v2 execution: the targets called, in order, when its condition holds.
type Execution struct {
	Condition    Condition  `json:"condition"`
	CreationDate *time.Time `json:"creationDate,omitempty"`
	ChangeDate   *time.Time `json:"changeDate,omitempty"`
	Targets      []string   `json:"targets"`
}

// SetExecution sets the targets of the execution of cond, replacing its list; an empty list
// removes the execution. Setting the same list again changes nothing, so the call is retried
// like a read.
func (c *Client) SetExecution(ctx context.Context, cond Condition, targets []string) error {
	if targets == nil {
		targets = []string{}
	}
	body := struct {
		Condition Condition `json:"condition"`
		Targets   []string  `json:"targets"`
	}{cond, targets}
	req := &idpclient.Request{Method: http.MethodPut, Path: "/v2/actions/executions", JSON: body, Idempotent: true}
	if err := c.t.Do(ctx, req, nil); err != nil {
		return fmt.Errorf("setting the execution of %s: %w", cond, err)
	}
	return nil
}

// ListExecutionsParams filters POST /v2/actions/executions/search. Zitadel lists only the
// executions that have at least one target.
type ListExecutionsParams struct {
	ListParams
	// Conditions keeps the executions of these conditions.
	Conditions []Condition
	// TargetID keeps the executions that call this target.
	TargetID string
}

// ListExecutions iterates over the instance's executions, oldest first.
func (c *Client) ListExecutions(ctx context.Context, params *ListExecutionsParams) iter.Seq2[Execution, error] {
	if params == nil {
		params = &ListExecutionsParams{}
	}
	var filters []any
	if len(params.Conditions) > 0 {
		filters = append(filters, map[string]any{"inConditionsFilter": map[string]any{"conditions": params.Conditions}})
	}
	if params.TargetID != "" {
		filters = append(filters, map[string]any{"targetFilter": map[string]any{"targetId": params.TargetID}})
	}
	return idpclient.Paginate(ctx, params.Offset, filterPages[Execution](c, "/v2/actions/executions/search", params.ListParams, filters))
}

// paginationRequest is zitadel.filter.v2.PaginationRequest.
type paginationRequest struct {
	Offset Uint64 `json:"offset"`
	Limit  uint32 `json:"limit"`
	Asc    bool   `json:"asc"`
}

// filterListResponse is the answer of a list of the newer services: a PaginationResponse and the
// items under their own name.
type filterListResponse[T any] struct {
	Pagination struct {
		TotalResult  Uint64 `json:"totalResult"`
		AppliedLimit Uint64 `json:"appliedLimit"`
	} `json:"pagination"`
	Targets    []T `json:"targets"`
	Executions []T `json:"executions"`
}

// filterPages is the PageFunc of a POST search of the newer services: {pagination, filters}.
func filterPages[T any](c *Client, path string, p ListParams, filters []any) idpclient.PageFunc[T, int] {
	return func(ctx context.Context, offset int) ([]T, int, bool, error) {
		q, limit := c.query(p, offset)
		body := map[string]any{"pagination": paginationRequest(q)}
		if len(filters) > 0 {
			body["filters"] = filters
		}
		var out filterListResponse[T]
		req := &idpclient.Request{Method: http.MethodPost, Path: path, JSON: body, Idempotent: true}
		if err := c.t.Do(ctx, req, &out); err != nil {
			return nil, 0, false, fmt.Errorf("searching %s at offset %d: %w", path, offset, err)
		}
		items := out.Targets
		if items == nil {
			items = out.Executions
		}
		next := offset + len(items)
		more := len(items) == limit && uint64(next) < uint64(out.Pagination.TotalResult)
		return items, next, more, nil
	}
}
