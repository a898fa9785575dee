package handlers

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivertype"

	"github.com/idpsync/idpsync/internal/events"
	"github.com/idpsync/idpsync/internal/idpclient"
	"github.com/idpsync/idpsync/internal/provider"
	"github.com/idpsync/idpsync/internal/store"
)

// Revocation: when a change takes access away (a user deleted, banned or locked; an organization
// deleted or suspended), the source's policy turns it into calls back to the IdPs. Each call is
// its own job in the "revoke" queue:
//
//	idpsync.revoke.list_sessions     list a user's active sessions at the source   → one revoke_session each
//	idpsync.revoke.session           revoke one session
//	idpsync.revoke.offboard          ZeroID's offboard-by-owner, then a check that none is left (agent action offboard)
//	idpsync.revoke.list_agents       list the ZeroID identities a user owns        → one job each:
//	idpsync.revoke.deactivate_agent  deactivate one identity (agent action deactivate)
//	idpsync.revoke.signal_agent      send one identity a critical CAE signal (agent action signal)
//
// Jobs are unique per (target, subject) while pending, so concurrent triggers for one user make one
// call; a session, once revoked, is never revoked again. A 404 counts as already done only for a
// call about one resource that the IdP says it does not have (a session, an identity); a 404 from
// a listing, or any answer that is not the IdP's API's, fails the call loudly and marks the source
// misconfigured (SourceHealth). A 429 snoozes the job for the Retry-After (attempts are not spent),
// other transient failures retry with backoff, permanent ones cancel the job. Every call ends in
// the revocations table, with the time from the triggering webhook's receipt.

// QueueRevoke runs the calls back to the IdPs.
const QueueRevoke = "revoke"

// Policy is one source's revocation policy.
type Policy struct {
	// Triggers are the changes that revoke.
	Triggers map[events.Trigger]bool
	// Sessions revokes the user's sessions at the source's IdP.
	Sessions bool
	// ZeroID names the zeroid source whose identities owned by the user are revoked; "" for none.
	ZeroID string
	// AgentAction is what happens to those identities.
	AgentAction events.AgentAction
	// OwnerKey is what ZeroID knows the owner by: "id", "external_id" or "email".
	OwnerKey string
}

// RevocationPolicy turns changes into revocation jobs. Its React method is a ChangeHook.
type RevocationPolicy struct {
	policies map[string]Policy
	logger   *slog.Logger
}

// NewRevocationPolicy returns the policy of each source, by name.
func NewRevocationPolicy(policies map[string]Policy, logger *slog.Logger) *RevocationPolicy {
	return &RevocationPolicy{policies: policies, logger: logger}
}

// cascadeWindow is how long before an organization's deletion a membership may have ended and
// still count as removed by that deletion (IdPs may send the memberships' deletions first).
const cascadeWindow = time.Minute

// trigger names the revocation trigger of a change, and the users it is about.
func trigger(ctx context.Context, tx pgx.Tx, c Change) (events.Trigger, []string, error) {
	r := c.Result
	switch ev := c.Event; {
	case ev.User != nil:
		u := ev.User
		switch {
		case u.Deleted && !r.WasDeleted:
			return events.TriggerUserDeleted, []string{u.ID}, nil
		case u.Deleted:
		case u.Banned && !r.WasBanned:
			return events.TriggerUserBanned, []string{u.ID}, nil
		case u.Locked && !r.WasLocked:
			return events.TriggerUserLocked, []string{u.ID}, nil
		}
	case ev.Organization != nil:
		o := ev.Organization
		switch {
		case o.Deleted && !r.WasDeleted:
			// The members are those the deletion just removed, and those whose memberships the
			// IdP's own cascade removed moments before.
			at := ev.OccurredAt
			if at.IsZero() {
				at = c.ReceivedAt
			}
			members, err := store.MembersSince(ctx, tx, c.Source, o.ID, at.Add(-cascadeWindow))
			return events.TriggerOrganizationDeleted, members, err
		case o.Suspended && !r.WasSuspended && !o.Deleted:
			members, err := store.MembersSince(ctx, tx, c.Source, o.ID, time.Time{})
			return events.TriggerOrganizationSuspended, members, err
		}
	}
	return "", nil, nil
}

// React implements ChangeHook.
func (p *RevocationPolicy) React(ctx context.Context, tx pgx.Tx, inserter JobInserter, c Change) error {
	pol, ok := p.policies[c.Source]
	if !ok {
		return nil
	}
	trig, users, err := trigger(ctx, tx, c)
	if err != nil || trig == "" || !pol.Triggers[trig] || len(users) == 0 {
		return err
	}
	base := RevokeMeta{Source: c.Source, Trigger: trig, EventID: c.EventID, TriggeredAt: c.ReceivedAt, Txn: txnOf(c)}
	var jobs []river.InsertManyParams
	for _, uid := range users {
		m := base
		m.UserID = uid
		if pol.Sessions {
			jobs = append(jobs, river.InsertManyParams{Args: ListSessionsArgs{RevokeMeta: m}})
		}
		if pol.ZeroID == "" {
			continue
		}
		owner, err := ownerKey(ctx, tx, c.Source, uid, pol.OwnerKey)
		if err != nil {
			return err
		}
		if owner == "" {
			p.logger.Warn("no ZeroID owner key for user; its agents are not revoked", "source", c.Source, "user_id", uid, "owner_key", pol.OwnerKey)
			continue
		}
		if pol.AgentAction == events.AgentOffboard {
			jobs = append(jobs, river.InsertManyParams{Args: OffboardArgs{Target: pol.ZeroID, Owner: owner, RevokeMeta: m}})
		} else {
			jobs = append(jobs, river.InsertManyParams{Args: ListAgentsArgs{Target: pol.ZeroID, Owner: owner, Action: pol.AgentAction, RevokeMeta: m}})
		}
	}
	if len(jobs) == 0 {
		return nil
	}
	if _, err := inserter.InsertManyTx(ctx, tx, jobs); err != nil {
		return fmt.Errorf("enqueueing revocations: %w", err)
	}
	p.logger.Info("revocations enqueued", "source", c.Source, "trigger", trig, "users", len(users), "jobs", len(jobs))
	return nil
}

func ownerKey(ctx context.Context, tx pgx.Tx, source, userID, key string) (string, error) {
	if key == "" || key == "id" {
		return userID, nil
	}
	externalID, email, err := store.UserKeys(ctx, tx, source, userID)
	if errors.Is(err, store.ErrNotFound) {
		return "", nil
	}
	if key == "external_id" {
		return externalID, err
	}
	return email, err
}

// RevokeMeta is what every revocation job carries about why it runs.
type RevokeMeta struct {
	// Source is the source whose change triggered the revocation.
	Source string `json:"source" river:"unique"`
	// UserID is the user the revocation is about, at Source.
	UserID  string         `json:"user_id" river:"unique"`
	Trigger events.Trigger `json:"trigger"`
	// EventID is the triggering event's row in the log; 0 when a resync found the change.
	EventID     int64     `json:"event_id,omitempty"`
	TriggeredAt time.Time `json:"triggered_at"`
	// Txn names the triggering change for the security events it causes (SSF's txn); "" when a
	// resync found the change.
	Txn string `json:"txn,omitempty"`
}

// revokeInsertOpts: the revoke queue, and uniqueness among jobs not yet finished.
func revokeInsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: QueueRevoke, MaxAttempts: 12, UniqueOpts: river.UniqueOpts{ByArgs: true, ByState: pendingStates}}
}

// pendingStates are the states in which a unique job stands in for a new one. Finished jobs do
// not: a user banned, unbanned and banned again is revoked twice.
var pendingStates = []rivertype.JobState{rivertype.JobStateAvailable, rivertype.JobStatePending,
	rivertype.JobStateRunning, rivertype.JobStateRetryable, rivertype.JobStateScheduled}

// ListSessionsArgs lists a user's active sessions at the source, for revocation.
type ListSessionsArgs struct {
	RevokeMeta
}

// Kind implements river.JobArgs.
func (ListSessionsArgs) Kind() string { return "idpsync.revoke.list_sessions" }

// InsertOpts implements river.JobArgsWithInsertOpts.
func (ListSessionsArgs) InsertOpts() river.InsertOpts { return revokeInsertOpts() }

// RevokeSessionArgs revokes one session at the source.
type RevokeSessionArgs struct {
	RevokeMeta
	SessionID string `json:"session_id" river:"unique"`
}

// Kind implements river.JobArgs.
func (RevokeSessionArgs) Kind() string { return "idpsync.revoke.session" }

// InsertOpts implements river.JobArgsWithInsertOpts. A session is revoked once, ever: completed
// jobs count for uniqueness too.
func (RevokeSessionArgs) InsertOpts() river.InsertOpts {
	o := revokeInsertOpts()
	o.UniqueOpts.ByState = append(pendingStates[:len(pendingStates):len(pendingStates)], rivertype.JobStateCompleted)
	return o
}

// ListAgentsArgs lists the ZeroID identities owned by a user, for revocation, and enqueues Action
// (deactivate or signal) for each.
type ListAgentsArgs struct {
	RevokeMeta
	Target string             `json:"target" river:"unique"`
	Owner  string             `json:"owner" river:"unique"`
	Action events.AgentAction `json:"action"`
}

// Kind implements river.JobArgs.
func (ListAgentsArgs) Kind() string { return "idpsync.revoke.list_agents" }

// InsertOpts implements river.JobArgsWithInsertOpts.
func (ListAgentsArgs) InsertOpts() river.InsertOpts { return revokeInsertOpts() }

// SignalAgentArgs sends ZeroID the signal that revokes one identity's credentials.
type SignalAgentArgs struct {
	RevokeMeta
	Target     string `json:"target" river:"unique"`
	IdentityID string `json:"identity_id" river:"unique"`
	Owner      string `json:"owner"`
}

// Kind implements river.JobArgs.
func (SignalAgentArgs) Kind() string { return "idpsync.revoke.signal_agent" }

// InsertOpts implements river.JobArgsWithInsertOpts.
func (SignalAgentArgs) InsertOpts() river.InsertOpts { return revokeInsertOpts() }

// DeactivateAgentArgs deactivates one ZeroID identity: its tokens and keys are revoked for good.
type DeactivateAgentArgs struct {
	RevokeMeta
	Target     string `json:"target" river:"unique"`
	IdentityID string `json:"identity_id" river:"unique"`
	Owner      string `json:"owner"`
}

// Kind implements river.JobArgs.
func (DeactivateAgentArgs) Kind() string { return "idpsync.revoke.deactivate_agent" }

// InsertOpts implements river.JobArgsWithInsertOpts.
func (DeactivateAgentArgs) InsertOpts() river.InsertOpts { return revokeInsertOpts() }

// OffboardArgs offboards every identity of an owner at ZeroID.
type OffboardArgs struct {
	RevokeMeta
	Target string `json:"target" river:"unique"`
	Owner  string `json:"owner" river:"unique"`
}

// Kind implements river.JobArgs.
func (OffboardArgs) Kind() string { return "idpsync.revoke.offboard" }

// InsertOpts implements river.JobArgsWithInsertOpts.
func (OffboardArgs) InsertOpts() river.InsertOpts { return revokeInsertOpts() }

// signalFor maps a trigger to the ZeroID signal sent about the user's agents. Critical makes
// ZeroID revoke every credential of the identity.
func signalFor(m RevokeMeta, owner string) provider.Signal {
	typ := "policy_violation"
	if m.Trigger == events.TriggerUserDeleted {
		typ = "owner_change"
	}
	return provider.Signal{Type: typ, Severity: "critical", Source: "idpsync", Payload: map[string]any{
		"reason": string(m.Trigger) + " at " + m.Source, "owner_user_id": owner, "source": m.Source, "trigger": m.Trigger,
	}}
}

// RevokeWorkers works the revocation jobs.
type RevokeWorkers struct {
	pool    *pgxpool.Pool
	idps    IdPs
	logger  *slog.Logger
	metrics *Metrics
	// sessionRevokedFunc, when set, runs in the transaction that records a session's
	// revocation (SSF's session-revoked).
	sessionRevokedFunc SessionRevokedFunc
}

// SessionRevokedFunc reacts to a session idpsync revoked at an IdP, inside the transaction that
// records the revocation: (*SSF).SessionRevoked.
type SessionRevokedFunc func(ctx context.Context, tx pgx.Tx, m RevokeMeta, sessionID string, at time.Time) error

// OnSessionRevoked sets f to run for every session revoked.
func (r *RevokeWorkers) OnSessionRevoked(f SessionRevokedFunc) { r.sessionRevokedFunc = f }

// NewRevokeWorkers returns the workers of the revoke queue.
func NewRevokeWorkers(pool *pgxpool.Pool, idps IdPs, logger *slog.Logger, metrics *Metrics) *RevokeWorkers {
	return &RevokeWorkers{pool: pool, idps: idps, logger: logger, metrics: metrics}
}

// Register adds the workers to workers.
func (r *RevokeWorkers) Register(workers *river.Workers) {
	river.AddWorker(workers, river.WorkFunc(r.listSessions))
	river.AddWorker(workers, river.WorkFunc(r.revokeSession))
	river.AddWorker(workers, river.WorkFunc(r.listAgents))
	river.AddWorker(workers, river.WorkFunc(r.signalAgent))
	river.AddWorker(workers, river.WorkFunc(r.deactivateAgent))
	river.AddWorker(workers, river.WorkFunc(r.offboard))
}

// maxFanOut bounds the sessions or identities one listing turns into jobs; a user with more is
// listed again once those are revoked.
const maxFanOut = 1000

func (r *RevokeWorkers) listSessions(ctx context.Context, job *river.Job[ListSessionsArgs]) error {
	m := job.Args.RevokeMeta
	sess, ok := r.idps.Sessions[m.Source]
	if !ok {
		return river.JobCancel(fmt.Errorf("source %s cannot revoke sessions (no api credentials)", m.Source))
	}
	var jobs []river.InsertManyParams
	for id, err := range sess.ActiveSessions(idpclient.WithOperation(ctx, "list_sessions"), m.UserID) {
		if err != nil {
			return settle(ctx, r, job, store.Revocation{Target: m.Source, Action: "list_sessions", Subject: m.UserID}, m, err, nil)
		}
		jobs = append(jobs, river.InsertManyParams{Args: RevokeSessionArgs{RevokeMeta: m, SessionID: id}})
		if len(jobs) == maxFanOut {
			break
		}
	}
	rev := store.Revocation{Target: m.Source, Action: "list_sessions", Subject: m.UserID, Detail: fmt.Sprintf("%d active sessions", len(jobs))}
	return settle(ctx, r, job, rev, m, nil, jobs)
}

func (r *RevokeWorkers) revokeSession(ctx context.Context, job *river.Job[RevokeSessionArgs]) error {
	m := job.Args.RevokeMeta
	sess, ok := r.idps.Sessions[m.Source]
	if !ok {
		return river.JobCancel(fmt.Errorf("source %s cannot revoke sessions (no api credentials)", m.Source))
	}
	err := sess.RevokeSession(idpclient.WithOperation(ctx, "revoke_session"), job.Args.SessionID)
	return settle(ctx, r, job, store.Revocation{Target: m.Source, Action: "revoke_session", Subject: job.Args.SessionID}, m, err, nil)
}

func (r *RevokeWorkers) listAgents(ctx context.Context, job *river.Job[ListAgentsArgs]) error {
	m, a := job.Args.RevokeMeta, job.Args
	agents, ok := r.idps.Agents[a.Target]
	if !ok {
		return river.JobCancel(fmt.Errorf("source %s is not a zeroid source with api credentials", a.Target))
	}
	var jobs []river.InsertManyParams
	for id, err := range agents.OwnedAgents(idpclient.WithOperation(ctx, "list_agents"), a.Owner) {
		if err != nil {
			return settle(ctx, r, job, store.Revocation{Target: a.Target, Action: "list_agents", Subject: a.Owner}, m, err, nil)
		}
		var args river.JobArgs = SignalAgentArgs{RevokeMeta: m, Target: a.Target, IdentityID: id, Owner: a.Owner}
		if a.Action == events.AgentDeactivate {
			args = DeactivateAgentArgs{RevokeMeta: m, Target: a.Target, IdentityID: id, Owner: a.Owner}
		}
		jobs = append(jobs, river.InsertManyParams{Args: args})
		if len(jobs) == maxFanOut {
			break
		}
	}
	rev := store.Revocation{Target: a.Target, Action: "list_agents", Subject: a.Owner, Detail: fmt.Sprintf("%d identities", len(jobs))}
	return settle(ctx, r, job, rev, m, nil, jobs)
}

func (r *RevokeWorkers) signalAgent(ctx context.Context, job *river.Job[SignalAgentArgs]) error {
	m, a := job.Args.RevokeMeta, job.Args
	agents, ok := r.idps.Agents[a.Target]
	if !ok {
		return river.JobCancel(fmt.Errorf("source %s is not a zeroid source with api credentials", a.Target))
	}
	s := signalFor(m, a.Owner)
	err := agents.SignalAgent(idpclient.WithOperation(ctx, "signal_agent"), a.IdentityID, s)
	rev := store.Revocation{Target: a.Target, Action: "signal_agent", Subject: a.IdentityID, Detail: s.Type + " " + s.Severity}
	return settle(ctx, r, job, rev, m, err, nil)
}

func (r *RevokeWorkers) deactivateAgent(ctx context.Context, job *river.Job[DeactivateAgentArgs]) error {
	m, a := job.Args.RevokeMeta, job.Args
	agents, ok := r.idps.Agents[a.Target]
	if !ok {
		return river.JobCancel(fmt.Errorf("source %s is not a zeroid source with api credentials", a.Target))
	}
	err := agents.DeactivateAgent(idpclient.WithOperation(ctx, "deactivate_agent"), a.IdentityID)
	rev := store.Revocation{Target: a.Target, Action: "deactivate_agent", Subject: a.IdentityID, Detail: "deactivated: its tokens and keys are revoked"}
	return settle(ctx, r, job, rev, m, err, nil)
}

// offboard offboards the owner, then checks that the IdP holds no identity of the owner that can
// still act: only then is the revocation done.
func (r *RevokeWorkers) offboard(ctx context.Context, job *river.Job[OffboardArgs]) error {
	m, a := job.Args.RevokeMeta, job.Args
	agents, ok := r.idps.Agents[a.Target]
	if !ok {
		return river.JobCancel(fmt.Errorf("source %s is not a zeroid source with api credentials", a.Target))
	}
	summary, err := agents.Offboard(idpclient.WithOperation(ctx, "offboard"), a.Owner, string(m.Trigger)+" at "+m.Source)
	if err == nil {
		err = noneLeft(ctx, agents, a.Owner)
	}
	return settle(ctx, r, job, store.Revocation{Target: a.Target, Action: "offboard", Subject: a.Owner, Detail: summary}, m, err, nil)
}

// noneLeft fails unless the owner has no active or suspended identity left.
func noneLeft(ctx context.Context, agents provider.AgentRevoker, owner string) error {
	var left []string
	for id, err := range agents.OwnedAgents(idpclient.WithOperation(ctx, "list_agents"), owner) {
		if err != nil {
			return fmt.Errorf("checking the offboarding: %w", err)
		}
		if len(left) < 5 {
			left = append(left, id)
		}
	}
	if len(left) > 0 {
		// Retried: ZeroID's offboarding is idempotent, and a partial one asks to be repeated.
		return fmt.Errorf("offboarding reported success but identities of the owner are still active or suspended (%s)", strings.Join(left, ", "))
	}
	return nil
}

// settle ends a revocation job after its call: on success (or "already done") it records the
// call, enqueues the follow-up jobs and completes the job in one transaction; on failure it snoozes
// for a Retry-After, retries a transient error, or records the failure and cancels the job.
func settle[T river.JobArgs](ctx context.Context, r *RevokeWorkers, job *river.Job[T], rev store.Revocation, m RevokeMeta, callErr error, followUps []river.InsertManyParams) error {
	rev.JobID, rev.Source, rev.UserID, rev.Trigger, rev.EventID, rev.TriggeredAt = job.ID, m.Source, m.UserID, m.Trigger, m.EventID, m.TriggeredAt
	r.idps.Health.Observe(rev.Target, callErr)
	var final error
	switch {
	case callErr == nil:
		rev.Outcome = store.RevocationDone
	case errors.Is(callErr, idpclient.ErrNotFound):
		rev.Outcome, rev.Detail = store.RevocationAlreadyDone, "not found at the IdP"
	default:
		snooze, gaveUp := judge(ctx, job.JobRow, callErr)
		if snooze > 0 {
			r.logger.Warn("revocation deferred by the IdP's rate limit", "job_kind", job.Kind, "job_id", job.ID, "retry_in", snooze.String())
			return river.JobSnooze(snooze)
		}
		if !gaveUp {
			return callErr // River retries with backoff
		}
		rev.Outcome, rev.Detail = store.RevocationFailed, callErr.Error()
		final = river.JobCancel(callErr)
	}
	err := pgx.BeginFunc(ctx, r.pool, func(tx pgx.Tx) error {
		if err := store.RecordRevocation(ctx, tx, rev); err != nil {
			return err
		}
		if r.sessionRevokedFunc != nil && rev.Action == "revoke_session" && rev.Outcome == store.RevocationDone {
			if err := r.sessionRevokedFunc(ctx, tx, m, rev.Subject, time.Now()); err != nil {
				return err
			}
		}
		if len(followUps) > 0 {
			if _, err := river.ClientFromContext[pgx.Tx](ctx).InsertManyTx(ctx, tx, followUps); err != nil {
				return fmt.Errorf("enqueueing revocations: %w", err)
			}
		}
		if final == nil {
			_, err := river.JobCompleteTx[*riverpgxv5.Driver](ctx, tx, job)
			return err
		}
		return nil
	})
	if err != nil {
		return err
	}
	r.metrics.revocations.WithLabelValues(rev.Target, rev.Action, rev.Outcome).Inc()
	r.metrics.revocationSeconds.WithLabelValues(rev.Action).Observe(time.Since(m.TriggeredAt).Seconds())
	level := slog.LevelInfo
	if rev.Outcome == store.RevocationFailed {
		level = slog.LevelError
	}
	r.logger.Log(ctx, level, "revocation", "source", m.Source, "target", rev.Target, "action", rev.Action, "subject", rev.Subject,
		"user_id", m.UserID, "trigger", m.Trigger, "outcome", rev.Outcome, "detail", rev.Detail)
	return final
}
