package app_test

import (
	"context"
	"io"
	"log/slog"
	"testing"

	"github.com/idpsync/idpsync/internal/natsbus"
	"github.com/idpsync/idpsync/internal/replay"
	"github.com/idpsync/idpsync/internal/store"
	"github.com/idpsync/idpsync/internal/worker"
)

func (s *stack) recorder() (replay.Recorder, func(context.Context, store.EventFilter) (replay.Counts, error)) {
	s.t.Helper()
	rec, err := worker.NewRecorder(s.cfg, s.pool, s.bus, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		s.t.Fatal(err)
	}
	logReplay := func(ctx context.Context, f store.EventFilter) (replay.Counts, error) {
		return replay.Log(ctx, s.pool, rec.Mirror, rec.River, f, false, nil)
	}
	return rec.Intake, logReplay
}

// After a bug wrote wrong rows, replaying the log rewrites them from the events.
func TestReplayFromLogRepairsRows(t *testing.T) {
	t.Parallel()
	s := startStack(t)
	ctx := context.Background()
	id := s.send(clerkEvent("user.created", 1700000001, clerkUser("user_r", "Right", 1700000001000, false)))
	s.settled(id)
	s.send(clerkEvent("organization.created", 1700000002, clerkOrg("org_r", "Other", 1700000002000)))
	if _, err := s.pool.Exec(ctx, `UPDATE users SET first_name = 'corrupted' WHERE id = 'user_r'`); err != nil {
		t.Fatal(err)
	}
	_, logReplay := s.recorder()

	dry, err := replay.Log(ctx, s.pool, nil, nil, store.EventFilter{Source: "clerk-e2e", Types: []string{"user.created"}}, true, nil)
	if err != nil || dry.Read != 1 || dry.Applied != 0 {
		t.Fatalf("dry run: %+v %v", dry, err)
	}
	if s.scalar(`SELECT first_name FROM users WHERE id = 'user_r'`) != "corrupted" {
		t.Fatal("the dry run changed the row")
	}
	c, err := logReplay(ctx, store.EventFilter{Source: "clerk-e2e", EntityID: "user_r"})
	if err != nil || c.Read != 1 || c.Applied != 1 {
		t.Fatalf("replay: %+v %v", c, err)
	}
	s.eventually("the row to be repaired", func() bool {
		return s.scalar(`SELECT first_name FROM users WHERE id = 'user_r'`) == "Right" && s.eventStatus(id) == "applied"
	})
}

// A payload dead-lettered by a parser bug is recorded once the parser handles it, and only once.
func TestReplayDeadLetters(t *testing.T) {
	t.Parallel()
	s := startStack(t)
	ctx := context.Background()
	body := clerkEvent("user.created", 1700000001, clerkUser("user_dl", "Kept", 1700000001000, false))
	headers := map[string]string{natsbus.HeaderSource: "clerk-e2e", natsbus.HeaderEventID: "msg_dl", natsbus.HeaderType: "user.created"}
	if _, err := store.RecordDeadLetter(ctx, s.pool, store.DeadLetter{Source: "clerk-e2e", EventID: "msg_dl",
		Subject: "idpsync.events.clerk-e2e.user.created", Reason: "a parser bug", Payload: body, Headers: headers}); err != nil {
		t.Fatal(err)
	}
	rec, _ := s.recorder()
	c, err := replay.DeadLetters(ctx, s.pool, rec, store.DeadLetterFilter{Source: "clerk-e2e"}, nil)
	if err != nil || c.Read != 1 || c.Recorded != 1 {
		t.Fatalf("replay: %+v %v", c, err)
	}
	if st := s.settled("msg_dl"); st != "applied" {
		t.Fatalf("status %s", st)
	}
	if s.scalar(`SELECT replayed_at IS NOT NULL FROM dead_letters WHERE event_id = 'msg_dl'`) != true {
		t.Fatal("dead letter not marked replayed")
	}
	again, err := replay.DeadLetters(ctx, s.pool, rec, store.DeadLetterFilter{Source: "clerk-e2e"}, nil)
	if err != nil || again.Read != 0 {
		t.Fatalf("second replay: %+v %v", again, err)
	}
}

// The database was restored from a backup older than some events: replaying the stream records
// the missing ones and leaves the others alone.
func TestReplayFromStreamRecordsWhatTheLogLacks(t *testing.T) {
	t.Parallel()
	s := startStack(t)
	ctx := context.Background()
	lost := s.send(clerkEvent("user.created", 1700000001, clerkUser("user_lost", "Lost", 1700000001000, false)))
	kept := s.send(clerkEvent("user.created", 1700000002, clerkUser("user_kept", "Kept", 1700000002000, false)))
	s.settled(lost)
	s.settled(kept)
	if _, err := s.pool.Exec(ctx, `DELETE FROM events WHERE event_id = $1`, lost); err != nil {
		t.Fatal(err)
	}
	if _, err := s.pool.Exec(ctx, `DELETE FROM users WHERE id = 'user_lost'`); err != nil {
		t.Fatal(err)
	}
	rec, _ := s.recorder()
	c, err := replay.Stream(ctx, s.bus, s.pool, rec, "clerk-e2e", natsbus.ReadFrom{}, nil)
	if err != nil || c.Read != 2 || c.Recorded != 1 || c.Duplicate != 1 {
		t.Fatalf("replay: %+v %v", c, err)
	}
	s.settled(lost)
	if s.scalar(`SELECT first_name FROM users WHERE id = 'user_lost'`) != "Lost" {
		t.Fatal("the lost user is not back")
	}
	again, err := replay.Stream(ctx, s.bus, s.pool, rec, "", natsbus.ReadFrom{}, nil)
	if err != nil || again.Recorded != 0 || again.Duplicate != 2 {
		t.Fatalf("second replay: %+v %v", again, err)
	}
}
