package zitadel

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/idpsync/idpsync/internal/idpclient"
	"github.com/idpsync/idpsync/internal/provider"
)

// What idpsync registers at Zitadel (Actions v2): a REST-webhook target for the receiver endpoint,
// with a JSON payload signed with ZITADEL-Signature, and that target in the executions of the
// event groups whose events idpsync maps. Zitadel returns the target's signing key in its answer
// to the creation.
const (
	// TargetTimeout is how long Zitadel waits for the receiver (at most 270s).
	TargetTimeout = "10s"
	// newTargetID stands for the id of the target a plan creates, in the bodies it prints.
	newTargetID = "<id of the new target>"
)

// EventGroups are the event groups the receiver's target is called for: users (user.*) and
// organizations with their members (org.*).
var EventGroups = []string{"user", "org"}

// TargetName is the name idpsync gives the target of a source.
func TargetName(source string) string {
	if source == "" {
		return "idpsync"
	}
	return "idpsync-" + source
}

// zitadelRegistrar registers the receiver endpoint as an Actions v2 target.
type zitadelRegistrar struct {
	c      *Client
	source string
}

var _ provider.Registrar = (*zitadelRegistrar)(nil)

// targetsAt lists the targets whose endpoint is endpoint.
func (r *zitadelRegistrar) targetsAt(ctx context.Context, endpoint string) ([]Target, error) {
	var out []Target
	for t, err := range r.c.ListTargets(ctx, nil) {
		if err != nil {
			return nil, fmt.Errorf("looking for targets at %s: %w", endpoint, err)
		}
		if t.Endpoint == endpoint {
			out = append(out, t)
		}
	}
	return out, nil
}

// groupExecutions returns the executions of EventGroups, by group.
func (r *zitadelRegistrar) groupExecutions(ctx context.Context) (map[string]Execution, error) {
	conds := make([]Condition, len(EventGroups))
	for i, g := range EventGroups {
		conds[i] = EventGroup(g)
	}
	out := map[string]Execution{}
	for e, err := range r.c.ListExecutions(ctx, &ListExecutionsParams{Conditions: conds}) {
		if err != nil {
			return nil, fmt.Errorf("looking for the executions of the event groups %s: %w", strings.Join(EventGroups, ", "), err)
		}
		if e.Condition.Event != nil && e.Condition.Event.Group != "" {
			out[strings.TrimSuffix(e.Condition.Event.Group, ".*")] = e
		}
	}
	return out, nil
}

func describeTarget(t Target) string {
	return fmt.Sprintf("target %s (%q): %s, payload %s, timeout %s", t.ID, t.Name, t.Type(), t.PayloadType, t.Timeout)
}

// PlanRegistration implements provider.Registrar: a target for endpoint unless one exists, and
// that target in the executions of EventGroups where it is missing. An execution's other
// targets are kept.
func (r *zitadelRegistrar) PlanRegistration(ctx context.Context, endpoint string) (*provider.RegistrationPlan, error) {
	found, err := r.targetsAt(ctx, endpoint)
	if err != nil {
		return nil, err
	}
	execs, err := r.groupExecutions(ctx)
	if err != nil {
		return nil, err
	}
	plan := &provider.RegistrationPlan{}
	var targetID string // "" until the create step ran
	if len(found) > 0 {
		t := found[0]
		targetID = t.ID
		for _, f := range found {
			plan.Found = append(plan.Found, describeTarget(f))
		}
		if len(found) > 1 {
			plan.Notes = append(plan.Notes, fmt.Sprintf("%d targets call the endpoint; idpsync uses the oldest, %s", len(found), t.ID))
		}
		if t.PayloadType != "" && t.PayloadType != PayloadTypeJSON {
			plan.Notes = append(plan.Notes, fmt.Sprintf("target %s sends %s, which the receiver cannot verify (it verifies %s with ZITADEL-Signature): unregister and register again",
				t.ID, t.PayloadType, PayloadTypeJSON))
		}
		if t.Type() == "restCall" {
			plan.Notes = append(plan.Notes, fmt.Sprintf("target %s is a restCall target, whose answer Zitadel reads back; idpsync registers restWebhook targets", t.ID))
		}
	} else {
		params := CreateTargetParams{Name: TargetName(r.source), RESTWebhook: &RESTTarget{InterruptOnError: false},
			Timeout: TargetTimeout, Endpoint: endpoint, PayloadType: PayloadTypeJSON}
		plan.Steps = append(plan.Steps, provider.RegistrationStep{
			Does:   "create the target (Zitadel shows its signing key in this answer)",
			Method: http.MethodPost, Path: r.c.path("/v2/actions/targets"), Body: provider.StepBody(params),
			ApplyFunc: func(ctx context.Context) (provider.RegistrationResult, error) {
				t, err := r.c.CreateTarget(ctx, &params)
				if err != nil {
					return provider.RegistrationResult{}, err
				}
				targetID = t.ID
				res := provider.RegistrationResult{Made: "created target " + t.ID}
				if t.SigningKey == "" {
					return res, fmt.Errorf("zitadel created target %s but its answer carries no signingKey: unregister and register again", t.ID)
				}
				res.Secrets.Secrets = []string{t.SigningKey}
				return res, nil
			},
		})
	}
	for _, g := range EventGroups {
		e, ok := execs[g]
		if ok {
			plan.Found = append(plan.Found, fmt.Sprintf("execution of the event group %s: targets %s", g, strings.Join(e.Targets, ", ")))
		}
		if targetID != "" && slices.Contains(e.Targets, targetID) {
			continue
		}
		shown := append(slices.Clone(e.Targets), targetID)
		if targetID == "" {
			shown[len(shown)-1] = newTargetID
		}
		cond := EventGroup(g)
		others := slices.Clone(e.Targets)
		plan.Steps = append(plan.Steps, provider.RegistrationStep{
			Does:   fmt.Sprintf("call the target on every %s.* event (the execution's other targets stay)", g),
			Method: http.MethodPut, Path: r.c.path("/v2/actions/executions"),
			Body: provider.StepBody(map[string]any{"condition": cond, "targets": shown}),
			ApplyFunc: func(ctx context.Context) (provider.RegistrationResult, error) {
				if targetID == "" {
					return provider.RegistrationResult{}, errors.New("no target to add to the execution: creating it failed")
				}
				if err := r.c.SetExecution(ctx, cond, append(others, targetID)); err != nil {
					return provider.RegistrationResult{}, err
				}
				return provider.RegistrationResult{Made: fmt.Sprintf("target %s is called on %s.* events", targetID, g)}, nil
			},
		})
	}
	return plan, nil
}

// PlanRemoval implements provider.Registrar: every target whose endpoint is endpoint leaves
// every execution that calls it (the others' targets stay), then is deleted.
func (r *zitadelRegistrar) PlanRemoval(ctx context.Context, endpoint string) (*provider.RegistrationPlan, error) {
	found, err := r.targetsAt(ctx, endpoint)
	if err != nil {
		return nil, err
	}
	plan := &provider.RegistrationPlan{}
	for _, t := range found {
		plan.Found = append(plan.Found, describeTarget(t))
		for e, err := range r.c.ListExecutions(ctx, &ListExecutionsParams{TargetID: t.ID}) {
			if err != nil {
				return nil, fmt.Errorf("looking for the executions that call target %s: %w", t.ID, err)
			}
			plan.Found = append(plan.Found, fmt.Sprintf("execution of %s: targets %s", e.Condition, strings.Join(e.Targets, ", ")))
			rest := slices.DeleteFunc(slices.Clone(e.Targets), func(id string) bool { return id == t.ID })
			does := fmt.Sprintf("stop calling target %s on %s", t.ID, e.Condition)
			if len(rest) == 0 {
				does += " (no target is left: Zitadel removes the execution)"
			}
			cond := e.Condition
			plan.Steps = append(plan.Steps, provider.RegistrationStep{
				Does:   does,
				Method: http.MethodPut, Path: r.c.path("/v2/actions/executions"),
				Body: provider.StepBody(map[string]any{"condition": cond, "targets": rest}),
				ApplyFunc: func(ctx context.Context) (provider.RegistrationResult, error) {
					if err := r.c.SetExecution(ctx, cond, rest); err != nil {
						return provider.RegistrationResult{}, err
					}
					return provider.RegistrationResult{Made: fmt.Sprintf("target %s is no longer called on %s", t.ID, cond)}, nil
				},
			})
		}
		plan.Steps = append(plan.Steps, provider.RegistrationStep{
			Does:   "delete target " + t.ID,
			Method: http.MethodDelete, Path: r.c.path("/v2/actions/targets/" + idpclient.PathEscape(t.ID)),
			ApplyFunc: func(ctx context.Context) (provider.RegistrationResult, error) {
				err := r.c.DeleteTarget(ctx, t.ID)
				switch {
				case errors.Is(err, idpclient.ErrNotFound):
					return provider.RegistrationResult{Made: "target " + t.ID + " was already gone"}, nil
				case err != nil:
					return provider.RegistrationResult{}, err
				}
				return provider.RegistrationResult{Made: "deleted target " + t.ID}, nil
			},
		})
	}
	return plan, nil
}
