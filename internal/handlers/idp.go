package handlers

import (
	"context"
	"encoding/json"
	"errors"
	"iter"
	"time"

	"github.com/riverqueue/river/rivertype"

	"github.com/idpsync/idpsync/internal/events"
	"github.com/idpsync/idpsync/internal/idpclient"
)

// What the jobs need of each IdP's management API, declared here and implemented by the
// connectors (internal/connector) over the idpclient packages. Errors are the idpclient ones:
// idpclient.ErrNotFound means the IdP no longer has the thing, idpclient.Classify and
// idpclient.RetryAfter tell retry, snooze and cancel apart.

// Checkpoint is a position in an IdP listing, opaque to the resync: each directory defines it.
// An empty checkpoint is the start.
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
	// List yields the entities of kind entity ("users", "organizations", "memberships") from the
	// checkpoint on, in an order that is stable while the IdP's data does not change.
	List(ctx context.Context, entity string, from Checkpoint) iter.Seq2[Item, error]
	// Get reads one entity by its Item key now; idpclient.ErrNotFound when the IdP no longer has it.
	Get(ctx context.Context, entity, key string) (events.Event, error)
}

// SessionRevoker revokes a user's sessions at an IdP.
type SessionRevoker interface {
	// ActiveSessions yields the ids of the user's sessions that are still active.
	ActiveSessions(ctx context.Context, userID string) iter.Seq2[string, error]
	// RevokeSession ends one session; idpclient.ErrNotFound when it is already gone.
	RevokeSession(ctx context.Context, sessionID string) error
}

// AgentRevoker revokes the credentials of the agent identities a user owns (ZeroID).
type AgentRevoker interface {
	// OwnedAgents yields the ids of the active identities whose owner is owner.
	OwnedAgents(ctx context.Context, owner string) iter.Seq2[string, error]
	// SignalAgent sends a CAE signal about one identity; a high or critical severity makes the
	// IdP revoke its credentials.
	SignalAgent(ctx context.Context, identityID string, s Signal) error
	// Offboard deactivates every identity of owner and revokes their credentials; it returns a
	// summary for the audit.
	Offboard(ctx context.Context, owner, reason string) (string, error)
}

// Signal is a continuous-access-evaluation signal.
type Signal struct {
	Type     string
	Severity string
	Source   string
	Payload  map[string]any
}

// IdPs gives the jobs each source's management API, by source name. A source missing from a map
// cannot do that: resync, revoke sessions, or revoke agents.
type IdPs struct {
	Directories map[string]Directory
	Sessions    map[string]SessionRevoker
	Agents      map[string]AgentRevoker
}

// judge sorts out what a job does after a call to an IdP failed: wait for a rate limit (snooze >
// 0, which does not spend an attempt), stop for good (final: the IdP answered with a permanent
// error such as 401, 403 or 422, or the attempts are used up), or else let River retry it with
// backoff. A job interrupted by a shutdown or its timeout is retried; so is an error that is not
// the IdP's (Postgres unavailable).
func judge(ctx context.Context, job *rivertype.JobRow, err error) (snooze time.Duration, final bool) {
	if ctx.Err() != nil {
		return 0, false
	}
	class := idpclient.Classify(err)
	if d, ok := idpclient.RetryAfter(err); ok || class == idpclient.ClassDeferred {
		if !ok {
			d = rateLimitSnooze
		}
		return d, false
	}
	_, fromIdP := errors.AsType[*idpclient.APIError](err)
	return 0, fromIdP && class == idpclient.ClassPermanent || job.Attempt >= job.MaxAttempts
}

// rateLimitSnooze is how long a job waits after a 429 that named no Retry-After.
const rateLimitSnooze = 30 * time.Second
