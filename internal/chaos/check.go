package chaos

import (
	"context"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// activeJobStates are River's states of a job that still has to run.
const activeJobStates = `('available', 'running', 'retryable', 'scheduled', 'pending')`

// quiesce waits, once the load is done, until nothing is left in flight: the consumer holds no
// pending or unacknowledged message, no event is pending, no job is left to run. It returns the
// time that took and whether it happened within the run's QuiesceTimeout.
func (r *Run) quiesce(ctx context.Context) (time.Duration, bool) {
	t0 := time.Now()
	deadline := t0.Add(r.opts.QuiesceTimeout)
	var (
		quietSince, noted time.Time
		lastNoted         string
	)
	for {
		busy := r.busy(ctx)
		switch {
		case busy != "":
			quietSince = time.Time{}
			// What is still busy, every 10 seconds while it changes and every minute otherwise.
			if since := time.Since(noted); since >= time.Minute || since >= 10*time.Second && busy != lastNoted {
				r.Note("busy: %s", busy)
				noted, lastNoted = time.Now(), busy
			}
		case quietSince.IsZero():
			quietSince = time.Now()
		case time.Since(quietSince) >= time.Second:
			d := quietSince.Sub(t0)
			r.Note("quiesced %s after the load finished", d.Round(10*time.Millisecond))
			return d, true
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			r.Note("not quiesced %s after the load finished: %s", r.opts.QuiesceTimeout, busy)
			r.fail("quiesce", "the system did not settle within %s of the load's end; still busy: %s", r.opts.QuiesceTimeout, busy)
			return time.Since(t0), false
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// busy describes what is still in flight, or returns "".
func (r *Run) busy(ctx context.Context) string {
	qctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	var parts []string
	c, err := r.js.Consumer(qctx, StreamName, ConsumerName)
	if err == nil {
		var info *jetstream.ConsumerInfo
		if info, err = c.Info(qctx); err == nil && (info.NumPending > 0 || info.NumAckPending > 0) {
			parts = append(parts, fmt.Sprintf("consumer %s: %d messages not yet delivered, %d unacknowledged", ConsumerName, info.NumPending, info.NumAckPending))
		}
	}
	if err != nil {
		parts = append(parts, "consumer info: "+err.Error())
	}
	var pending int
	var jobs []string
	err = r.db.QueryRow(qctx, `SELECT (SELECT count(*) FROM `+Schema+`.events WHERE status = 'pending'),
		coalesce((SELECT array_agg(state || ': ' || n ORDER BY state) FROM (
			SELECT state::text, count(*) AS n FROM `+Schema+`.river_job WHERE state IN `+activeJobStates+` GROUP BY state) s), '{}')`).
		Scan(&pending, &jobs)
	switch {
	case err != nil:
		parts = append(parts, "postgres: "+err.Error())
	default:
		if pending > 0 {
			parts = append(parts, fmt.Sprintf("%d events pending", pending))
		}
		if len(jobs) > 0 {
			parts = append(parts, "jobs "+strings.Join(jobs, ", "))
		}
	}
	return strings.Join(parts, "; ")
}

// eventRow is what the event log holds for one event id.
type eventRow struct {
	count    int
	statuses []string
}

// verify checks the promises against the event log, the jobs, the dead letters and the mirror,
// and fills rep's figures.
func (r *Run) verify(ctx context.Context, rep *Report) {
	var attempts int
	for _, d := range r.Plan.Deliveries {
		attempts += int(d.Attempts.Load())
	}
	rep.Attempts = attempts

	// Every delivery got its 2xx in the end.
	var unacked []string
	for _, d := range r.Plan.Deliveries {
		if !d.Acked.Load() {
			unacked = append(unacked, fmt.Sprintf("%s (%s of %s, %d attempts)", d.ID, d.Type, d.UserID, d.Attempts.Load()))
		}
	}
	if len(unacked) > 0 {
		r.fail("acknowledged", "%d of %d deliveries never got a 2xx before the sender gave up; answers: %s; e.g. %s",
			len(unacked), len(r.Plan.Deliveries), rep.Answers, sample(unacked, 5))
	}

	// The event log: exactly one row per acknowledged delivery, nothing else.
	events := map[string]*eventRow{}
	rows, err := r.db.Query(ctx, `SELECT event_id, count(*), array_agg(status ORDER BY id) FROM `+Schema+`.events WHERE source = $1 GROUP BY event_id`, SourceName)
	if err != nil {
		r.fail("event log", "reading events: %v", err)
		return
	}
	for rows.Next() {
		var id string
		e := &eventRow{}
		if err := rows.Scan(&id, &e.count, &e.statuses); err != nil {
			rows.Close()
			r.fail("event log", "reading events: %v", err)
			return
		}
		events[id] = e
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		r.fail("event log", "reading events: %v", err)
		return
	}
	var lost, doubled, pending, odd []string
	known := map[string]bool{}
	for _, d := range r.Plan.Deliveries {
		known[d.ID] = true
		e := events[d.ID]
		switch {
		case e == nil && d.Acked.Load():
			lost = append(lost, d.ID+" ("+d.Type+" of "+d.UserID+")")
		case e == nil:
		case e.count > 1:
			doubled = append(doubled, fmt.Sprintf("%s ×%d", d.ID, e.count))
		}
		if e == nil {
			continue
		}
		for _, st := range e.statuses {
			switch st {
			case "applied", "stale":
			case "pending":
				pending = append(pending, d.ID+" ("+d.Type+" of "+d.UserID+")")
			default:
				odd = append(odd, d.ID+": "+st)
			}
		}
	}
	var unknown []string
	for id := range events {
		if !known[id] {
			unknown = append(unknown, id)
		}
	}
	rep.Doubled = len(doubled)
	switch {
	case len(lost) > 0 && rep.Quiesced:
		rep.Lost = len(lost)
		r.fail("lost", "%d acknowledged deliveries have no row in events: %s%s", len(lost), sample(lost, 10), r.inStream(ctx, lost))
	case len(lost) > 0: // the stream may still redeliver them
		r.fail("recorded", "%d acknowledged deliveries had no row in events yet when the wait ended: %s%s", len(lost), sample(lost, 10), r.inStream(ctx, lost))
	}
	if len(doubled) > 0 {
		r.fail("doubled", "%d deliveries have more than one row in events: %s", len(doubled), sample(doubled, 10))
	}
	if len(unknown) > 0 {
		r.fail("event log", "%d rows in events for deliveries never sent: %s", len(unknown), sample(unknown, 10))
	}
	if len(pending) > 0 {
		r.fail("events applied", "%d events are still pending (their apply job never completed): %s", len(pending), sample(pending, 10))
	}
	if len(odd) > 0 {
		r.fail("events applied", "%d user events have a status other than applied or stale: %s", len(odd), sample(odd, 10))
	}
	if info, err := r.streamInfo(ctx); err == nil {
		rep.StreamMsgs = info.State.Msgs
	}

	r.checkJobs(ctx)
	r.checkDeadLetters(ctx)
	r.checkMirror(ctx, events)
}

// inStream tells, for lost deliveries, whether the stream holds them: it separates a loss at the
// receiver or NATS from one at the worker.
func (r *Run) inStream(ctx context.Context, lost []string) string {
	info, err := r.streamInfo(ctx)
	if err != nil {
		return fmt.Sprintf(" (stream not readable: %v)", err)
	}
	st, err := r.js.Stream(ctx, StreamName)
	if err != nil {
		return ""
	}
	ids := map[string]bool{}
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && seq > 0; seq++ {
		msg, err := st.GetMsg(ctx, seq)
		if err != nil {
			continue
		}
		ids[msg.Header.Get("Nats-Msg-Id")] = true
	}
	var in, out int
	for _, l := range lost {
		id, _, _ := strings.Cut(l, " ")
		if ids[SourceName+":"+id] {
			in++
		} else {
			out++
		}
	}
	return fmt.Sprintf("; of these, %d are in the stream (lost between the stream and the event log) and %d are not (lost before the stream, though acknowledged)", in, out)
}

func (r *Run) streamInfo(ctx context.Context) (*jetstream.StreamInfo, error) {
	st, err := r.js.Stream(ctx, StreamName)
	if err != nil {
		return nil, err
	}
	return st.Info(ctx)
}

// checkJobs requires every River job to have completed.
func (r *Run) checkJobs(ctx context.Context) {
	rows, err := r.db.Query(ctx, `SELECT id, kind, state::text, attempt, max_attempts,
		coalesce(to_char(attempted_at AT TIME ZONE 'UTC', 'HH24:MI:SS.MS'), '-'), coalesce(array_to_string(attempted_by, ','), '-'),
		coalesce((errors[array_length(errors, 1)])->>'error', ''), args::text
		FROM `+Schema+`.river_job WHERE state <> 'completed' ORDER BY id`)
	if err != nil {
		r.fail("jobs", "reading river_job: %v", err)
		return
	}
	defer rows.Close()
	var stuck, failed []string
	for rows.Next() {
		var (
			id                                 int64
			kind, state, at, by, lastErr, args string
			attempt, maxAttempts               int
		)
		if err := rows.Scan(&id, &kind, &state, &attempt, &maxAttempts, &at, &by, &lastErr, &args); err != nil {
			r.fail("jobs", "reading river_job: %v", err)
			return
		}
		line := fmt.Sprintf("job %d %s %s attempt %d/%d attempted_at %s UTC by %s args %s", id, kind, state, attempt, maxAttempts, at, by, args)
		if lastErr != "" {
			line += " last error: " + lastErr
		}
		if strings.Contains(activeJobStates, "'"+state+"'") {
			stuck = append(stuck, line)
		} else {
			failed = append(failed, line)
		}
	}
	if err := rows.Err(); err != nil {
		r.fail("jobs", "reading river_job: %v", err)
		return
	}
	if len(stuck) > 0 {
		r.fail("no job stuck", "%d River jobs are still to run after the wait (a job a killed worker left running stays so until River's rescuer takes it back, RescueStuckJobsAfter after it started; River's default is JobTimeout + 1h):\n    %s",
			len(stuck), strings.Join(head(stuck, 10), "\n    "))
	}
	if len(failed) > 0 {
		r.fail("no job failed", "%d River jobs were discarded or cancelled:\n    %s", len(failed), strings.Join(head(failed, 10), "\n    "))
	}
}

// checkDeadLetters requires dead_letters to be empty: every delivery verified and parsed.
func (r *Run) checkDeadLetters(ctx context.Context) {
	rows, err := r.db.Query(ctx, `SELECT event_id, reason FROM `+Schema+`.dead_letters ORDER BY id`)
	if err != nil {
		r.fail("no dead letter", "reading dead_letters: %v", err)
		return
	}
	defer rows.Close()
	var dead []string
	for rows.Next() {
		var id, reason string
		if err := rows.Scan(&id, &reason); err != nil {
			r.fail("no dead letter", "reading dead_letters: %v", err)
			return
		}
		dead = append(dead, id+": "+reason)
	}
	if len(dead) > 0 {
		r.fail("no dead letter", "%d dead letters:\n    %s", len(dead), strings.Join(head(dead, 10), "\n    "))
	}
}

// checkMirror requires the users mirror to equal the IdP's final state, computed from the
// deliveries that were acknowledged or recorded.
func (r *Run) checkMirror(ctx context.Context, events map[string]*eventRow) {
	want := r.Plan.Expected(func(d *Delivery) bool { return d.Acked.Load() || events[d.ID] != nil })
	got := map[string]UserState{}
	rows, err := r.db.Query(ctx, `SELECT id, deleted_at IS NOT NULL, coalesce(first_name, ''), coalesce(last_name, ''),
		coalesce(username, ''), coalesce(primary_email, ''), banned, source_version FROM `+Schema+`.users WHERE source = $1`, SourceName)
	if err != nil {
		r.fail("mirror", "reading users: %v", err)
		return
	}
	for rows.Next() {
		var (
			id string
			s  UserState
		)
		if err := rows.Scan(&id, &s.Deleted, &s.FirstName, &s.LastName, &s.Username, &s.PrimaryEmail, &s.Banned, &s.Version); err != nil {
			rows.Close()
			r.fail("mirror", "reading users: %v", err)
			return
		}
		if s.Deleted { // a tombstone keeps whatever fields it had; only its version matters
			s = UserState{Deleted: true, Version: s.Version}
		}
		got[id] = s
	}
	rows.Close()
	var diffs, users []string
	for id, w := range want {
		g, ok := got[id]
		switch {
		case !ok:
			diffs = append(diffs, fmt.Sprintf("%s: missing; want %s", id, w))
			users = append(users, id)
		case g != w:
			diffs = append(diffs, fmt.Sprintf("%s: got %s; want %s", id, g, w))
			users = append(users, id)
		}
	}
	for id := range got {
		if _, ok := want[id]; !ok {
			diffs = append(diffs, id+": in the mirror, but no delivery of it was acknowledged or recorded")
		}
	}
	if len(diffs) == 0 {
		return
	}
	slices.Sort(diffs)
	slices.Sort(users)
	detail := fmt.Sprintf("%d of %d users differ from the IdP's final state:\n    %s", len(diffs), len(want), strings.Join(head(diffs, 10), "\n    "))
	for _, id := range head(users, 3) {
		detail += "\n  events of " + id + ":" + r.userEvents(ctx, id)
	}
	r.fail("mirror", "%s", detail)
}

// userEvents lists the event log rows of a user, for a mirror difference's evidence.
func (r *Run) userEvents(ctx context.Context, userID string) string {
	rows, err := r.db.Query(ctx, `SELECT e.event_id, e.source_type, e.status, coalesce(
			(SELECT j.state::text || ' (job ' || j.id || ')' FROM `+Schema+`.river_job j
			 WHERE j.kind = 'idpsync.apply_event' AND (j.args->>'event_id')::bigint = e.id ORDER BY j.id DESC LIMIT 1), 'no job')
		FROM `+Schema+`.events e WHERE e.source = $1 AND e.entity_id = $2 ORDER BY e.id`, SourceName, userID)
	if err != nil {
		return " " + err.Error()
	}
	defer rows.Close()
	var b strings.Builder
	for rows.Next() {
		var id, typ, status, job string
		if err := rows.Scan(&id, &typ, &status, &job); err != nil {
			return " " + err.Error()
		}
		fmt.Fprintf(&b, "\n    %s %s status %s, job %s", id, typ, status, job)
	}
	return b.String()
}

// panicRE matches a Go panic or fatal error, and a job that panicked (River recovers those).
var panicRE = regexp.MustCompile(`^panic: |^fatal error: |"msg":"job panicked"`)

// checkProcesses requires no panic in any process's output and no process exiting on its own.
func (r *Run) checkProcesses() {
	for _, p := range r.Sys.Processes() {
		if lines := p.Grep(panicRE); len(lines) > 0 {
			r.fail("no panic", "%s:\n    %s", p.Name, strings.Join(head(lines, 5), "\n    "))
		}
		if crashes := p.Crashes(); len(crashes) > 0 {
			var last string
			if inc := p.crashedIncarnation(); inc != nil {
				last = "\n    last lines: " + strings.Join(readLines(inc.stderr, 3), "\n                ")
			}
			r.fail("no crash", "%d exits: %s%s", len(crashes), strings.Join(head(crashes, 5), "; "), last)
		}
	}
}

// crashedIncarnation is the first incarnation that exited on its own.
func (p *Process) crashedIncarnation() *incarnation {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, inc := range p.incs {
		if inc.exited() && !inc.expected.Load() {
			return inc
		}
	}
	return nil
}

// logTails is the end of every process's output.
func (r *Run) logTails() string {
	var b strings.Builder
	for _, p := range r.Sys.Processes() {
		n := 15
		if p == r.Sys.Postgres.Process() || strings.HasPrefix(p.Name, "nats") {
			n = 8
		}
		b.WriteString(p.Tail(n))
	}
	return b.String()
}

func head(s []string, n int) []string {
	if len(s) > n {
		return append(s[:n:n], fmt.Sprintf("… and %d more", len(s)-n))
	}
	return s
}

func sample(s []string, n int) string { return strings.Join(head(s, n), ", ") }
