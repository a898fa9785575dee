package handlers

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/riverqueue/river"

	"github.com/idpsync/idpsync/internal/events"
	"github.com/idpsync/idpsync/internal/ssf"
	"github.com/idpsync/idpsync/internal/store"
)

// SSF transmission: changes of the mirror, and sessions the revocation jobs revoked, become
// Security Event Tokens for the receivers' streams (internal/ssf has the protocol).
//
//	idpsync.ssf.push  queue "ssf"  push one SET to its stream's receiver (RFC 8935)
//
// Emit records one SET per stream in the transaction of the job that made the change, with its
// jti and iat fixed, and one push job per SET for push streams; poll streams wait for the
// receiver's poll. SETs are signed at delivery: an RS256 signature costs about a millisecond of
// CPU (ssf's BenchmarkSign), more than the rest of an emit, and the mirror's transactions must
// stay short. Since RS256 is deterministic, a retried push sends the same bytes.

// QueueSSF runs the SET deliveries.
const QueueSSF = "ssf"

var _ JobInserter = (*river.Client[pgx.Tx])(nil)

// SSF is the jobs' side of the SSF transmitter: Emit, the ChangeHook React, SessionRevoked, the
// push worker, and the ssf.Store that the transmitter's HTTP handler uses (Store).
type SSF struct {
	cfg     ssf.Config
	pool    *pgxpool.Pool
	signer  *ssf.Signer
	pusher  *ssf.Pusher
	jobs    JobInserter
	logger  *slog.Logger
	metrics *ssfMetrics
}

// NewSSF returns the transmitter's job side for cfg (defaults applied, valid), recording
// through pool and signing with signer. reg receives its metrics (nil: none).
func NewSSF(cfg ssf.Config, pool *pgxpool.Pool, signer *ssf.Signer, logger *slog.Logger, reg prometheus.Registerer) (*SSF, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	m, err := newSSFMetrics(reg)
	if err != nil {
		return nil, err
	}
	return &SSF{cfg: cfg, pool: pool, signer: signer, pusher: ssf.NewPusher(cfg.Push.Timeout), logger: logger, metrics: m}, nil
}

// UseJobs sets the client that enqueues push jobs outside River jobs (requests of the
// transmitter's HTTP API). Within a job, Emit uses the job's client.
func (s *SSF) UseJobs(jobs JobInserter) { s.jobs = jobs }

// Register adds the push and prune workers to workers. Their queue, QueueSSF, needs a
// QueueConfig; PrunePeriodicJob schedules the prune.
func (s *SSF) Register(workers *river.Workers) {
	river.AddWorker(workers, river.WorkFunc(s.push))
	river.AddWorker(workers, river.WorkFunc(s.prune))
}

// PruneSETsArgs deletes the settled SETs older than the configured retention.
type PruneSETsArgs struct{}

// Kind implements river.JobArgs.
func (PruneSETsArgs) Kind() string { return "idpsync.ssf.prune" }

// InsertOpts implements river.JobArgsWithInsertOpts.
func (PruneSETsArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: QueueSSF, MaxAttempts: 3, UniqueOpts: river.UniqueOpts{ByArgs: true, ByState: pendingStates}}
}

// PrunePeriodicJob runs PruneSETsArgs hourly (on River's leader).
func PrunePeriodicJob() *river.PeriodicJob {
	return river.NewPeriodicJob(river.PeriodicInterval(time.Hour),
		func() (river.JobArgs, *river.InsertOpts) { return PruneSETsArgs{}, nil },
		&river.PeriodicJobOpts{ID: "ssf:prune", RunOnStart: true})
}

func (s *SSF) prune(ctx context.Context, _ *river.Job[PruneSETsArgs]) error {
	n, err := store.PruneSSFSETs(ctx, s.pool, time.Now().Add(-s.cfg.Retention))
	if err != nil {
		return err
	}
	s.logger.Info("ssf SETs pruned", "deleted", n, "retention", s.cfg.Retention.String())
	return nil
}

// PushSETArgs pushes one recorded SET to its stream's receiver.
type PushSETArgs struct {
	SETID    int64  `json:"set_id"`
	StreamID string `json:"stream_id"`
	JTI      string `json:"jti"`
}

// Kind implements river.JobArgs.
func (PushSETArgs) Kind() string { return "idpsync.ssf.push" }

// InsertOpts implements river.JobArgsWithInsertOpts. MaxAttempts comes from the configuration.
func (PushSETArgs) InsertOpts() river.InsertOpts { return river.InsertOpts{Queue: QueueSSF} }

// inserter is jobs, else the River client of the job ctx belongs to, else UseJobs's.
func (s *SSF) inserter(ctx context.Context, jobs JobInserter) (JobInserter, error) {
	if jobs != nil {
		return jobs, nil
	}
	if c, err := river.ClientFromContextSafely[pgx.Tx](ctx); err == nil {
		return c, nil
	}
	if s.jobs == nil {
		return nil, errors.New("ssf: no River client to enqueue pushes with; call UseJobs")
	}
	return s.jobs, nil
}

// Emit records ev, with tx, for every stream that is enabled or paused, delivers ev's type and
// covers ev's subject, and enqueues one push job per SET of a push stream with jobs (nil: the
// River client of the job ctx belongs to). It returns how many SETs it recorded. An invalid event is a bug of its caller: it is logged and dropped rather
// than failing the caller's transaction, which would hold back the mirror.
func (s *SSF) Emit(ctx context.Context, tx pgx.Tx, jobs JobInserter, ev ssf.Event) (int, error) {
	if err := ev.Validate(); err != nil {
		s.logger.Error("ssf event dropped", "event_type", ev.Type, "error", err)
		return 0, nil
	}
	targets, err := store.SSFTargets(ctx, tx, ev.Type, ev.MatchKeys())
	if err != nil || len(targets) == 0 {
		return 0, err
	}
	var chosen []store.SSFTarget
	for _, t := range targets {
		if covers(ev, t) {
			chosen = append(chosen, t)
		}
	}
	return s.record(ctx, tx, jobs, ev, chosen)
}

// covers decides whether a stream receives ev: under NONE when one of its listed subjects
// covers ev, under ALL unless one does.
func covers(ev ssf.Event, t store.SSFTarget) bool {
	listed := false
	for _, raw := range t.Subjects {
		var sub ssf.Subject
		if json.Unmarshal(raw, &sub) == nil && ev.Covers(sub) {
			listed = true
			break
		}
	}
	if t.DefaultSubjects == ssf.SubjectsNone {
		return listed
	}
	return !listed
}

// record inserts one SET of ev per target and the push jobs of push targets.
func (s *SSF) record(ctx context.Context, tx pgx.Tx, inserter JobInserter, ev ssf.Event, targets []store.SSFTarget) (int, error) {
	if len(targets) == 0 {
		return 0, nil
	}
	now := time.Now()
	sets := make([]store.SSFSET, 0, len(targets))
	for _, t := range targets {
		jti := ssf.NewJTI()
		claims, err := ev.Claims(s.cfg.Issuer, t.Aud, jti, now)
		if err != nil {
			return 0, err
		}
		sets = append(sets, store.SSFSET{StreamID: t.StreamID, JTI: jti, EventType: ev.Type, Claims: claims})
	}
	ids, err := store.InsertSSFSETs(ctx, tx, sets)
	if err != nil {
		return 0, err
	}
	var jobs []river.InsertManyParams
	for i, t := range targets {
		if t.Method == ssf.MethodPush {
			jobs = append(jobs, s.pushJob(ids[sets[i].JTI], t.StreamID, sets[i].JTI))
		}
	}
	if len(jobs) > 0 {
		ins, err := s.inserter(ctx, inserter)
		if err != nil {
			return 0, err
		}
		if _, err := ins.InsertManyTx(ctx, tx, jobs); err != nil {
			return 0, fmt.Errorf("enqueueing SET pushes: %w", err)
		}
	}
	s.metrics.recorded.WithLabelValues(ev.Type).Add(float64(len(sets)))
	return len(sets), nil
}

func (s *SSF) pushJob(setID int64, streamID, jti string) river.InsertManyParams {
	return river.InsertManyParams{Args: PushSETArgs{SETID: setID, StreamID: streamID, JTI: jti},
		InsertOpts: &river.InsertOpts{MaxAttempts: s.cfg.Push.MaxAttempts}}
}

// user names a user of source for SSF, with the email the mirror holds when the change does not
// carry one.
func (s *SSF) user(ctx context.Context, tx pgx.Tx, source, id, email string) (ssf.User, error) {
	if email == "" {
		_, mirrored, err := store.UserKeys(ctx, tx, source, id)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return ssf.User{}, err
		}
		email = mirrored
	}
	return ssf.User{Issuer: s.cfg.SubjectIssuer(source), ID: id, Email: email}, nil
}

// React implements ChangeHook: it maps a change of the mirror to SSF events and emits them.
//
//	user deleted (newly)                     RISC account-purged
//	user banned or locked (was neither)      RISC account-disabled
//	user neither banned nor locked (was)     RISC account-enabled
//	user's primary email changed             RISC identifier-changed (subject: the old email)
//	user's password set, changed or removed  CAEP credential-change (password: create, update, delete)
//	user's authenticator app added, removed  CAEP credential-change (app: create, delete)
//	membership's role changed                CAEP token-claims-change (claims org_id, org_role)
func (s *SSF) React(ctx context.Context, tx pgx.Tx, jobs JobInserter, c Change) error {
	evs, err := s.changeEvents(ctx, tx, c)
	if err != nil {
		return err
	}
	for _, ev := range evs {
		if txn := txnOf(c); txn != "" {
			ev = ev.WithTxn(txn)
		}
		if _, err := s.Emit(ctx, tx, jobs, ev); err != nil {
			return err
		}
	}
	return nil
}

func (s *SSF) changeEvents(ctx context.Context, tx pgx.Tx, c Change) ([]ssf.Event, error) {
	r := c.Result
	at := c.Event.OccurredAt
	if at.IsZero() {
		at = c.ReceivedAt
	}
	switch {
	case c.Event.User != nil:
		u := c.Event.User
		if u.Deleted {
			if r.WasDeleted {
				return nil, nil
			}
			user, err := s.user(ctx, tx, c.Source, u.ID, cmp.Or(u.PrimaryEmail, r.WasPrimaryEmail))
			return []ssf.Event{ssf.AccountPurged(user)}, err
		}
		user, err := s.user(ctx, tx, c.Source, u.ID, u.PrimaryEmail)
		if err != nil {
			return nil, err
		}
		var evs []ssf.Event
		disabled, wasDisabled := u.Banned || u.Locked, r.WasBanned || r.WasLocked
		switch {
		case disabled && !wasDisabled:
			evs = append(evs, ssf.AccountDisabled(user, ""))
		case !disabled && wasDisabled && r.Existed:
			evs = append(evs, ssf.AccountEnabled(user))
		}
		if r.Existed && r.WasPrimaryEmail != "" && u.PrimaryEmail != "" && !strings.EqualFold(r.WasPrimaryEmail, u.PrimaryEmail) {
			evs = append(evs, ssf.IdentifierChanged(user, r.WasPrimaryEmail, u.PrimaryEmail))
		}
		if r.Existed && !r.WasDeleted {
			for _, cc := range credentialChanges(r.WasCredentials, u.Credentials) {
				evs = append(evs, ssf.CredentialChange(user, cc.credential, cc.change, at, "", cc.reason))
			}
		}
		return evs, nil
	case c.Event.Membership != nil:
		m := c.Event.Membership
		if !r.Existed || r.WasDeleted || m.Deleted || m.Role == "" || m.Role == r.WasRole {
			return nil, nil
		}
		user, err := s.user(ctx, tx, c.Source, m.UserID, "")
		if err != nil {
			return nil, err
		}
		reason := fmt.Sprintf("role in organization %s changed from %s to %s", m.OrganizationID, cmp.Or(r.WasRole, "none"), m.Role)
		return []ssf.Event{ssf.TokenClaimsChange(user, map[string]any{"org_id": m.OrganizationID, "org_role": m.Role}, at, "", reason)}, nil
	}
	return nil, nil
}

// credentialChange is one CAEP credential-change: the credential_type, the change_type and an
// administrative reason.
type credentialChange struct{ credential, change, reason string }

// credentialChanges compares a user's credentials before and after a change, both as the IdP
// said them (nil: it said nothing, so nothing is known to have changed).
func credentialChanges(was, now *events.Credentials) []credentialChange {
	if was == nil || now == nil {
		return nil
	}
	var out []credentialChange
	switch {
	case !was.Password && now.Password:
		out = append(out, credentialChange{"password", "create", "password set"})
	case was.Password && !now.Password:
		out = append(out, credentialChange{"password", "delete", "password removed"})
	case now.Password && now.PasswordChangedAt.After(was.PasswordChangedAt):
		out = append(out, credentialChange{"password", "update", "password changed"})
	}
	switch {
	case !was.TOTP && now.TOTP:
		out = append(out, credentialChange{"app", "create", "authenticator app enrolled"})
	case was.TOTP && !now.TOTP:
		out = append(out, credentialChange{"app", "delete", "authenticator app removed"})
	}
	return out
}

// SessionRevoked emits CAEP session-revoked for a session that idpsync's revocation policy
// revoked at the IdP, with tx (the revocation job's transaction): its administrative reason is the
// trigger ("user.banned at clerk-prod") and its txn the triggering change's, shared with the
// change's own SETs.
func (s *SSF) SessionRevoked(ctx context.Context, tx pgx.Tx, m RevokeMeta, sessionID string, at time.Time) error {
	user, err := s.user(ctx, tx, m.Source, m.UserID, "")
	if err != nil {
		return err
	}
	reason := "session revoked by idpsync's revocation policy"
	if m.Trigger != "" {
		reason = string(m.Trigger) + " at " + m.Source
	}
	ev := ssf.SessionRevoked(user, sessionID, at, ssf.InitiatorPolicy, reason)
	if m.Txn != "" {
		ev = ev.WithTxn(m.Txn)
	}
	_, err = s.Emit(ctx, tx, nil, ev)
	return err
}

// txnOf names change c for the security events it causes: "<source>:<event id>", the same for
// every SET of the change (RFC 8417's txn); "" for a change a resync found.
func txnOf(c Change) string {
	if c.EventID == 0 || c.Event.ID == "" {
		return ""
	}
	return c.Source + ":" + c.Event.ID
}

// push works PushSETArgs: it signs the SET and POSTs it (RFC 8935). The outcome is recorded on
// the SET in the transaction that completes the job:
//
//	2xx                   delivered
//	4xx (not 408/429), 3xx  failed with the receiver's error; the job is cancelled (permanent)
//	5xx, 408, 429, network  retried with River's backoff; failed once attempts run out
//	stream paused         snoozed for push.paused_recheck: held, delivered after resume
//	stream disabled       failed ("dropped"), not sent
//	stream deleted        nothing to do
//
// A paused stream holds its SETs for as long as it stays paused; stream-updated events go out
// whatever the status, since SSF requires them before a stream stops.
func (s *SSF) push(ctx context.Context, job *river.Job[PushSETArgs]) error {
	set, st, err := store.GetSSFSET(ctx, s.pool, job.Args.SETID)
	if errors.Is(err, store.ErrNotFound) {
		return nil // the stream was deleted, and its SETs with it
	}
	if err != nil {
		return err
	}
	if set.State != store.SETPending {
		return nil // settled by an earlier attempt, a poll, or a disable
	}
	var cfg ssf.StreamConfig
	if err := json.Unmarshal(st.Config, &cfg); err != nil {
		return river.JobCancel(fmt.Errorf("stream %s has an unreadable configuration: %w", st.ID, err))
	}
	if cfg.Delivery.Method != ssf.MethodPush {
		return nil // the stream moved to poll: the SET waits for the receiver's poll
	}
	always := set.EventType == ssf.TypeStreamUpdated
	switch {
	case st.Status == ssf.StatusPaused && !always:
		return river.JobSnooze(s.cfg.Push.PausedRecheck)
	case st.Status == ssf.StatusDisabled && !always:
		return s.settle(ctx, set, store.SETFailed, "", "dropped: the stream is disabled", nil)
	}
	jwt, err := s.signer.Sign(set.Claims)
	if err != nil {
		return river.JobCancel(err)
	}
	start := time.Now()
	err = s.pusher.Push(ctx, cfg.Delivery, jwt)
	s.metrics.pushSeconds.Observe(time.Since(start).Seconds())
	if err == nil {
		return s.settle(ctx, set, store.SETDelivered, jwt, "", nil)
	}
	var pe *ssf.PushError
	permanent := errors.As(err, &pe) && pe.Permanent
	switch {
	case ctx.Err() != nil:
		return ctx.Err() // shutting down or timed out: River retries
	case permanent:
		return s.settle(ctx, set, store.SETFailed, jwt, err.Error(), river.JobCancel(err))
	case job.Attempt >= job.MaxAttempts:
		return s.settle(ctx, set, store.SETFailed, jwt, fmt.Sprintf("gave up after %d attempts: %v", job.Attempt, err), err)
	}
	s.logger.Warn("ssf push failed; retrying", "stream_id", set.StreamID, "jti", set.JTI, "attempt", job.Attempt, "error", err)
	s.metrics.pushed.WithLabelValues("retried").Inc()
	return err
}

// settle records the SET's outcome and returns final. The job completes through River (not in
// a transaction with the record): a crash between the two runs the job again, which finds the
// SET settled and does nothing, and River's batched completion saves a transaction per SET.
func (s *SSF) settle(ctx context.Context, set store.SSFSET, state, jwt, detail string, final error) error {
	if _, err := store.SettleSSFSET(ctx, s.pool, set.ID, state, jwt, detail); err != nil {
		return err
	}
	outcome := state
	if strings.HasPrefix(detail, "dropped") {
		outcome = "dropped"
	}
	s.metrics.pushed.WithLabelValues(outcome).Inc()
	level := slog.LevelDebug
	if state == store.SETFailed {
		level = slog.LevelWarn
	}
	s.logger.Log(ctx, level, "ssf push", "stream_id", set.StreamID, "jti", set.JTI, "event_type", set.EventType, "outcome", outcome, "detail", detail)
	return final
}

type ssfMetrics struct {
	recorded    *prometheus.CounterVec
	pushed      *prometheus.CounterVec
	pushSeconds prometheus.Histogram
}

func newSSFMetrics(reg prometheus.Registerer) (*ssfMetrics, error) {
	m := &ssfMetrics{
		recorded: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "idpsync_ssf_sets_recorded_total",
			Help: "SETs recorded for the receivers' streams, by event type.",
		}, []string{"event_type"}),
		pushed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "idpsync_ssf_pushes_total",
			Help: "SET pushes, by outcome (delivered, failed, dropped, retried).",
		}, []string{"outcome"}),
		pushSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "idpsync_ssf_push_seconds",
			Help:    "Time a receiver took to answer a push.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}),
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.recorded, m.pushed, m.pushSeconds} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("registering ssf metrics: %w", err)
		}
	}
	return m, nil
}
