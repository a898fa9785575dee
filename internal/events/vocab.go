package events

import (
	"fmt"
	"strings"
)

// MirroredEntities are the entities the mirror keeps, in the order a full resync reads them.
var MirroredEntities = []Entity{EntityUser, EntityOrganization, EntityMembership}

// Plural is the entity's name where a set of them is meant: in configuration (resync.entities),
// commands (resync -entity users), the resync_runs table and metric labels.
func (e Entity) Plural() string { return string(e) + "s" }

// ParseEntity reads a mirrored entity's name, plural ("users") or singular ("user").
func ParseEntity(s string) (Entity, error) {
	for _, e := range MirroredEntities {
		if s == string(e) || s == e.Plural() {
			return e, nil
		}
	}
	return "", fmt.Errorf("%q is not an entity; use %s", s, pluralList(MirroredEntities))
}

func pluralList(es []Entity) string {
	names := make([]string, len(es))
	for i, e := range es {
		names[i] = e.Plural()
	}
	return strings.Join(names, ", ")
}

// Trigger is a change that takes access away, and may start revocations (and security events)
// according to a source's policy.
type Trigger string

// The triggers.
const (
	// TriggerUserDeleted: the user was deleted at the IdP.
	TriggerUserDeleted Trigger = "user.deleted"
	// TriggerUserBanned: the user may no longer sign in (Clerk ban, Zitadel deactivation, AuthPI
	// suspension).
	TriggerUserBanned Trigger = "user.banned"
	// TriggerUserLocked: the user is locked out for a while.
	TriggerUserLocked Trigger = "user.locked"
	// TriggerOrganizationDeleted: the organization was deleted; it concerns its members.
	TriggerOrganizationDeleted Trigger = "organization.deleted"
	// TriggerOrganizationSuspended: the organization was deactivated; it concerns its members.
	TriggerOrganizationSuspended Trigger = "organization.suspended"
)

// Triggers lists every trigger, in the order documentation shows them.
var Triggers = []Trigger{TriggerUserDeleted, TriggerUserBanned, TriggerUserLocked, TriggerOrganizationDeleted,
	TriggerOrganizationSuspended}

// Valid reports whether t is one of Triggers.
func (t Trigger) Valid() bool {
	for _, k := range Triggers {
		if t == k {
			return true
		}
	}
	return false
}

// AgentAction is what a revocation does to the agent identities a user owns at an agent IdP
// (ZeroID), when the user loses access.
type AgentAction string

// The agent actions.
const (
	// AgentOffboard deactivates every identity the owner has, across the IdP's projects, in one
	// call: tokens and keys are revoked and no new token can be minted. The default.
	AgentOffboard AgentAction = "offboard"
	// AgentDeactivate lists the owner's identities in the configured project and deactivates each:
	// the same effect, confined to that project, one audited call per identity.
	AgentDeactivate AgentAction = "deactivate"
	// AgentSignal sends each identity a critical CAE signal: the tokens it holds now are revoked,
	// but the identity stays active and its keys mint new tokens. For deployments that act on the
	// signals themselves.
	AgentSignal AgentAction = "signal"
)

// AgentActions lists every agent action, the default first.
var AgentActions = []AgentAction{AgentOffboard, AgentDeactivate, AgentSignal}

// Valid reports whether a is one of AgentActions.
func (a AgentAction) Valid() bool {
	for _, k := range AgentActions {
		if a == k {
			return true
		}
	}
	return false
}
