package handlers

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"

	"github.com/idpsync/idpsync/internal/ssf"
	"github.com/idpsync/idpsync/internal/store"
)

// Store returns the ssf.Store of the transmitter's HTTP handler: streams and SETs in Postgres,
// verification SETs pushed through River (UseJobs must have been called).
func (s *SSF) Store() ssf.Store { return ssfStore{s} }

type ssfStore struct{ s *SSF }

var _ ssf.Store = ssfStore{}

// storeErr translates the store's sentinels into ssf's.
func storeErr(err error) error {
	switch {
	case errors.Is(err, store.ErrNotFound):
		return ssf.ErrNotFound
	case errors.Is(err, store.ErrLimit):
		return ssf.ErrLimit
	}
	return err
}

func (st ssfStore) CreateStream(ctx context.Context, s ssf.Stream, maxStreams int) error {
	row, err := streamRow(s.Config)
	if err != nil {
		return err
	}
	row.Owner, row.DefaultSubjects, row.Status, row.Reason = s.Owner, s.DefaultSubjects, s.Status, s.Reason
	return storeErr(pgx.BeginFunc(ctx, st.s.pool, func(tx pgx.Tx) error {
		return store.CreateSSFStream(ctx, tx, row, maxStreams)
	}))
}

func streamRow(c ssf.StreamConfig) (store.SSFStream, error) {
	b, err := json.Marshal(c)
	if err != nil {
		return store.SSFStream{}, fmt.Errorf("encoding stream configuration: %w", err)
	}
	return store.SSFStream{ID: c.StreamID, Config: b, Aud: c.Aud, EventsDelivered: c.EventsDelivered, Method: c.Delivery.Method}, nil
}

func (st ssfStore) Streams(ctx context.Context, owner, streamID string) ([]ssf.Stream, error) {
	rows, err := store.SSFStreams(ctx, st.s.pool, owner, streamID)
	if err != nil {
		return nil, err
	}
	streams := make([]ssf.Stream, 0, len(rows))
	for _, r := range rows {
		s := ssf.Stream{Owner: r.Owner, DefaultSubjects: r.DefaultSubjects, Status: r.Status, Reason: r.Reason}
		if err := json.Unmarshal(r.Config, &s.Config); err != nil {
			return nil, fmt.Errorf("stream %s has an unreadable configuration: %w", r.ID, err)
		}
		streams = append(streams, s)
	}
	return streams, nil
}

// maxRequeue bounds the pending SETs scheduled at once when a stream moves from poll to push;
// more wait for the next change (or a poll, had it stayed poll).
const maxRequeue = 10000

// ReplaceStream replaces the configuration; a stream moving from poll to push has its pending
// SETs scheduled for push.
func (st ssfStore) ReplaceStream(ctx context.Context, owner string, c ssf.StreamConfig) error {
	row, err := streamRow(c)
	if err != nil {
		return err
	}
	return storeErr(pgx.BeginFunc(ctx, st.s.pool, func(tx pgx.Tx) error {
		prev, err := store.ReplaceSSFStream(ctx, tx, owner, row)
		if err != nil || prev == ssf.MethodPush || c.Delivery.Method != ssf.MethodPush {
			return err
		}
		ids, err := store.PendingSSFSETs(ctx, tx, c.StreamID, maxRequeue)
		if err != nil || len(ids) == 0 {
			return err
		}
		jobs := make([]river.InsertManyParams, 0, len(ids))
		for _, id := range ids {
			jobs = append(jobs, st.s.pushJob(id, c.StreamID, ""))
		}
		return st.insert(ctx, tx, jobs)
	}))
}

func (st ssfStore) insert(ctx context.Context, tx pgx.Tx, jobs []river.InsertManyParams) error {
	ins, err := st.s.inserter(ctx, nil)
	if err != nil {
		return err
	}
	if _, err := ins.InsertManyTx(ctx, tx, jobs); err != nil {
		return fmt.Errorf("enqueueing SET pushes: %w", err)
	}
	return nil
}

func (st ssfStore) DeleteStream(ctx context.Context, owner, streamID string) error {
	return storeErr(store.DeleteSSFStream(ctx, st.s.pool, owner, streamID))
}

func (st ssfStore) SetStatus(ctx context.Context, owner, streamID, status, reason string) error {
	_, err := store.SetSSFStreamStatus(ctx, st.s.pool, owner, streamID, status, reason)
	return storeErr(err)
}

func (st ssfStore) ListSubject(ctx context.Context, owner, streamID string, sub ssf.Subject, verified bool, maxSubjects int) error {
	b, err := json.Marshal(sub)
	if err != nil {
		return err
	}
	return storeErr(store.ListSSFSubject(ctx, st.s.pool, owner, streamID, sub.Key(), b, sub.MatchKeys(), verified, maxSubjects))
}

func (st ssfStore) UnlistSubject(ctx context.Context, owner, streamID string, sub ssf.Subject) error {
	return storeErr(store.UnlistSSFSubject(ctx, st.s.pool, owner, streamID, sub.Key()))
}

// Verify records the verification SET for the stream, unless the stream is disabled (a disabled
// stream transmits and holds nothing).
func (st ssfStore) Verify(ctx context.Context, owner, streamID string, ev ssf.Event, minInterval time.Duration) error {
	return storeErr(pgx.BeginFunc(ctx, st.s.pool, func(tx pgx.Tx) error {
		ok, err := store.TouchSSFVerification(ctx, tx, owner, streamID, minInterval)
		if err != nil {
			return err
		}
		if !ok {
			return ssf.ErrTooSoon
		}
		return st.s.emitTo(ctx, tx, streamID, ev)
	}))
}

// emitTo records ev for one stream, whatever it requested: verification and stream-updated
// events.
func (s *SSF) emitTo(ctx context.Context, tx pgx.Tx, streamID string, ev ssf.Event) error {
	row, err := store.SSFStreamByID(ctx, tx, streamID)
	if err != nil || row.Status == ssf.StatusDisabled && ev.Type != ssf.TypeStreamUpdated {
		return err
	}
	_, err = s.record(ctx, tx, nil, ev, []store.SSFTarget{{StreamID: row.ID, Aud: row.Aud, Method: row.Method, DefaultSubjects: row.DefaultSubjects}})
	return err
}

// ChangeStatus is a status change decided by the transmitter (an operator's, say), not by the
// receiver: the stream-updated event SSF requires is sent on the stream in the same transaction.
func (s *SSF) ChangeStatus(ctx context.Context, streamID, status, reason string) error {
	return storeErr(pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := store.SetSSFStreamStatus(ctx, tx, "", streamID, status, reason); err != nil {
			return err
		}
		return s.emitTo(ctx, tx, streamID, ssf.StreamUpdated(streamID, status, reason))
	}))
}

// Poll settles the receiver's acknowledgements and errors, then returns the SETs held for it,
// signing those never delivered. A paused or disabled stream returns none.
func (st ssfStore) Poll(ctx context.Context, owner, streamID string, p ssf.Poll) (ssf.PollResult, error) {
	var res ssf.PollResult
	err := pgx.BeginFunc(ctx, st.s.pool, func(tx pgx.Tx) error {
		streams, err := store.SSFStreams(ctx, tx, owner, streamID)
		if err != nil {
			return err
		}
		if len(streams) == 0 {
			return ssf.ErrNotFound
		}
		stream := streams[0]
		if stream.Method != ssf.MethodPoll {
			return ssf.ErrNotPoll
		}
		errs := make(map[string]string, len(p.Errs))
		for jti, e := range p.Errs {
			errs[jti] = "receiver error " + e.Err + ": " + e.Description
		}
		if err := store.AckSSFSETs(ctx, tx, streamID, p.Acks, errs); err != nil {
			return err
		}
		if p.Max == 0 || stream.Status != ssf.StatusEnabled {
			return nil
		}
		sets, err := store.NextSSFSETs(ctx, tx, streamID, p.Max+1, p.Redeliver)
		if err != nil {
			return err
		}
		if len(sets) > p.Max {
			sets, res.More = sets[:p.Max], true
		}
		ids, jwts := make([]int64, len(sets)), make([]string, len(sets))
		res.SETs = make(map[string]string, len(sets))
		for i, set := range sets {
			jwt := set.JWT
			if jwt == "" {
				if jwt, err = p.Sign(set.Claims); err != nil {
					return err
				}
			}
			ids[i], jwts[i], res.SETs[set.JTI] = set.ID, jwt, jwt
		}
		return store.MarkSSFSETsPolled(ctx, tx, ids, jwts)
	})
	return res, storeErr(err)
}
