package provider

import (
	"context"
	"encoding/json"
	"fmt"
	"iter"

	"github.com/idpsync/idpsync/internal/events"
)

// What the jobs need of a provider's management API. Errors are idpclient's:
// idpclient.ErrNotFound means the IdP no longer has the thing, idpclient.Classify and
// idpclient.RetryAfter tell retry, snooze and cancel apart.

// Checkpoint is a position in a listing, opaque to the resync: each directory defines it. An
// empty checkpoint is the start.
type Checkpoint = json.RawMessage

// Item is one entity of a listing, as an event carrying it (UserUpdated with User set, and so on),
// and the checkpoint that resumes the listing right after it.
type Item struct {
	// Key identifies the entity even when it could not be read: its id, or
	// "<organization id>/<user id>" for a membership.
	Key   string
	Event events.Event
	// Err is set when the IdP's entity could not be mapped (events.ErrMalformed); the resync
	// counts it as skipped and keeps the mirror row as it is.
	Err  error
	Next Checkpoint
}

// Directory lists an IdP's entities for a resync.
type Directory interface {
	// List yields the entities of kind entity from the checkpoint on, in an order that is stable
	// while the IdP's data does not change.
	List(ctx context.Context, entity events.Entity, from Checkpoint) iter.Seq2[Item, error]
	// Get reads one entity by its Item key now; idpclient.ErrNotFound when the IdP no longer has it.
	Get(ctx context.Context, entity events.Entity, key string) (events.Event, error)
}

// SessionRevoker revokes a user's sessions at an IdP.
type SessionRevoker interface {
	// ActiveSessions yields the ids of the user's sessions that are still active.
	ActiveSessions(ctx context.Context, userID string) iter.Seq2[string, error]
	// RevokeSession ends one session; idpclient.ErrNotFound when it is already gone.
	RevokeSession(ctx context.Context, sessionID string) error
}

// AgentRevoker takes access away from the agent identities a user owns (ZeroID).
type AgentRevoker interface {
	// OwnedAgents yields the ids of the identities whose owner is owner and that can still act or
	// be resumed by an administrator: active and suspended ones.
	OwnedAgents(ctx context.Context, owner string) iter.Seq2[string, error]
	// SignalAgent sends a CAE signal about one identity. A high or critical one makes the IdP
	// revoke the tokens the identity holds now; the identity and its keys stay usable.
	SignalAgent(ctx context.Context, identityID string, s Signal) error
	// DeactivateAgent deactivates one identity: its tokens and keys are revoked and it can obtain
	// no new token. It fails unless the IdP confirms the identity deactivated;
	// idpclient.ErrNotFound when the IdP has no such identity.
	DeactivateAgent(ctx context.Context, identityID string) error
	// Offboard deactivates every identity of owner and revokes their credentials, in one call; it
	// returns a summary for the audit.
	Offboard(ctx context.Context, owner, reason string) (string, error)
}

// Signal is a continuous-access-evaluation signal.
type Signal struct {
	Type     string
	Severity string
	Source   string
	Payload  map[string]any
}

// OffsetCheckpoint is the position of an offset-paged listing: how many entities were written,
// and for a listing nested in organizations, which organization it was in.
type OffsetCheckpoint struct {
	Org    int `json:"org,omitempty"`
	Offset int `json:"offset"`
}

// ReadOffsetCheckpoint reads an OffsetCheckpoint; empty is the start.
func ReadOffsetCheckpoint(raw Checkpoint) (OffsetCheckpoint, error) {
	var c OffsetCheckpoint
	if len(raw) == 0 || string(raw) == "{}" || string(raw) == "null" {
		return c, nil
	}
	if err := json.Unmarshal(raw, &c); err != nil {
		return c, fmt.Errorf("resync checkpoint %s: %w", raw, err)
	}
	return c, nil
}

// Raw encodes the checkpoint.
func (c OffsetCheckpoint) Raw() Checkpoint {
	b, _ := json.Marshal(c)
	return b
}
