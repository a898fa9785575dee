package handlers

import (
	"context"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/idpsync/idpsync/internal/events"
	"github.com/idpsync/idpsync/internal/store"
	"github.com/idpsync/idpsync/internal/telemetry"
)

// JobInserter enqueues jobs in the caller's transaction (a *river.Client[pgx.Tx]).
type JobInserter interface {
	InsertManyTx(ctx context.Context, tx pgx.Tx, params []river.InsertManyParams) ([]*rivertype.JobInsertResult, error)
}

// Change is a change of the mirror, made by an event or found by a resync.
type Change struct {
	Source string
	// Event carries the entity as written (a resync's finding is an event too: a deletion it
	// confirmed is a UserDeleted, and so on).
	Event  events.Event
	Result store.Change
	// EventID is the event log row that made the change; 0 for a resync.
	EventID int64
	// ReceivedAt is when the webhook was received, or when the resync found the change.
	ReceivedAt time.Time
	// Trace is the span of the work that made the change when that is not the span of the
	// context React is given (the intake records many events, of many traces, in one
	// transaction): the jobs the hooks insert continue its trace. Zero: the context's.
	Trace trace.SpanContext
}

// ChangeHook reacts to a change inside the transaction that wrote it: the jobs it inserts with
// jobs and tx commit atomically with the change. (The revocation policy hooks in here.)
type ChangeHook func(ctx context.Context, tx pgx.Tx, jobs JobInserter, c Change) error

// Mirror writes entities to the mirror and lets the hooks react to what changed, in the writer's
// transaction. The intake, the apply job, resyncs and replays all write through it, so that a
// webhook, a resync and a replay produce the same rows and the same reactions.
type Mirror struct {
	hooks []ChangeHook
}

// NewMirror returns a Mirror whose changes the hooks see, in order.
func NewMirror(hooks ...ChangeHook) *Mirror { return &Mirror{hooks: hooks} }

// Write applies each write's entity (a user, an organization or a membership) in one round trip
// and returns what each did, in input order. Writes of the same entity are applied in the order of
// their versions, whatever their order in writes, so that transitions (a user banned, then
// unbanned) are seen as they happened; entities keep the order of their first write.
//
// When ctx carries a recording span (a job's), the write is a child span of it, MirrorWriteSpanName.
func (m *Mirror) Write(ctx context.Context, tx pgx.Tx, writes []store.Write) (changes []store.Change, err error) {
	if parent := trace.SpanFromContext(ctx); parent.IsRecording() {
		var span trace.Span
		ctx, span = parent.TracerProvider().Tracer(tracerName).Start(ctx, MirrorWriteSpanName,
			trace.WithAttributes(telemetry.AttrWrites.Int(len(writes))))
		if len(writes) == 1 {
			span.SetAttributes(telemetry.AttrEntity.String(string(entityOf(writes[0].Event))))
		}
		defer func() {
			endMirrorWrite(span, changes, err)
		}()
	}
	order := versionOrder(writes)
	sorted := make([]store.Write, len(writes))
	for i, j := range order {
		sorted[i] = writes[j]
	}
	applied, err := store.ApplyBatch(ctx, tx, sorted)
	if err != nil {
		return nil, err
	}
	out := make([]store.Change, len(writes))
	for i, j := range order {
		out[j] = applied[i]
	}
	return out, nil
}

// MirrorWriteSpanName names the span of a write of the mirror.
const MirrorWriteSpanName = "mirror.write"

// tracerName names the instrumentation scope of the handlers' spans.
const tracerName = "github.com/idpsync/idpsync/internal/handlers"

// endMirrorWrite ends the span of a mirror write with what it did.
func endMirrorWrite(span trace.Span, changes []store.Change, err error) {
	defer span.End()
	if err != nil {
		span.SetStatus(codes.Error, "writing the mirror failed")
		return
	}
	if len(changes) == 1 {
		span.SetAttributes(telemetry.AttrApplied.Bool(changes[0].Applied))
		return
	}
	n := 0
	for _, c := range changes {
		if c.Applied {
			n++
		}
	}
	span.SetAttributes(attribute.Int("idpsync.applied_writes", n))
}

// entityOf is the entity an event carries, or "" for none.
func entityOf(ev events.Event) events.Entity {
	switch {
	case ev.User != nil:
		return events.EntityUser
	case ev.Organization != nil:
		return events.EntityOrganization
	case ev.Membership != nil:
		return events.EntityMembership
	}
	return ""
}

// React lets the hooks react to each applied change, in order. Changes that did not apply are
// skipped.
func (m *Mirror) React(ctx context.Context, tx pgx.Tx, jobs JobInserter, changes []Change) error {
	for _, c := range changes {
		if !c.Result.Applied {
			continue
		}
		hctx := ctx
		if c.Trace.IsValid() {
			hctx = trace.ContextWithSpanContext(ctx, c.Trace)
		}
		for _, hook := range m.hooks {
			if err := hook(hctx, tx, jobs, c); err != nil {
				return err
			}
		}
	}
	return nil
}

// versionOrder returns the indexes of writes in the order they are applied: grouped by entity in
// the order of each entity's first write, by version within an entity (stable).
func versionOrder(writes []store.Write) []int {
	first := make(map[string]int, len(writes))
	group := make([]int, len(writes))
	for i, w := range writes {
		k := w.Source + "\x00" + entityKey(w.Event)
		g, ok := first[k]
		if !ok {
			g = i
			first[k] = g
		}
		group[i] = g
	}
	order := make([]int, len(writes))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int {
		if group[a] != group[b] {
			return group[a] - group[b]
		}
		va, vb := entityVersion(writes[a].Event), entityVersion(writes[b].Event)
		switch {
		case va < vb:
			return -1
		case va > vb:
			return 1
		}
		return 0
	})
	return order
}

func entityKey(ev events.Event) string {
	switch {
	case ev.User != nil:
		return "u\x00" + ev.User.ID
	case ev.Organization != nil:
		return "o\x00" + ev.Organization.ID
	case ev.Membership != nil:
		return "m\x00" + ev.Membership.OrganizationID + "\x00" + ev.Membership.UserID
	}
	return ""
}

func entityVersion(ev events.Event) events.Version {
	switch {
	case ev.User != nil:
		return ev.User.Version
	case ev.Organization != nil:
		return ev.Organization.Version
	case ev.Membership != nil:
		return ev.Membership.Version
	}
	return 0
}

// HasEntity reports whether the event carries an entity the mirror keeps, with its state (not a
// partial one, which must be read from the IdP first).
func HasEntity(ev events.Event) bool {
	return ev.User != nil && !ev.User.Partial || ev.Organization != nil && !ev.Organization.Partial || ev.Membership != nil
}

// IsPartial reports whether the event names an entity without its state (Zitadel's changes):
// an apply job reads it from the IdP.
func IsPartial(ev events.Event) bool {
	return ev.User != nil && ev.User.Partial || ev.Organization != nil && ev.Organization.Partial
}

// StatusOf is the event log status of an event: applied or stale after its write (c), pending
// for a partial one (an apply job reads it), recorded for sessions, ignored without a canonical
// type.
func StatusOf(ev events.Event, c *store.Change) string {
	switch {
	case c != nil && c.Applied:
		return store.StatusApplied
	case c != nil:
		return store.StatusStale
	case ev.Type.Entity() == "":
		return store.StatusIgnored
	case IsPartial(ev):
		return store.StatusPending
	}
	return store.StatusRecorded
}
