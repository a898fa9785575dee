package ssf

import (
	"context"
	"errors"
	"time"
)

// Store is what the transmitter's HTTP handler needs of storage. Every method that names a stream
// takes the owner (the fingerprint of the bearer token that created it) and answers ErrNotFound
// for a stream that does not exist or belongs to another token, so that receivers cannot even
// learn of each other's streams. internal/handlers implements it over internal/store and River.
type Store interface {
	// CreateStream records a new stream, unless its owner already holds maxStreams (ErrLimit).
	CreateStream(ctx context.Context, s Stream, maxStreams int) error
	// Streams returns the owner's stream streamID, or all the owner's streams (oldest first)
	// when streamID is "".
	Streams(ctx context.Context, owner, streamID string) ([]Stream, error)
	// ReplaceStream replaces the configuration of the owner's stream c.StreamID.
	ReplaceStream(ctx context.Context, owner string, c StreamConfig) error
	// DeleteStream deletes the owner's stream, its subjects and its SETs.
	DeleteStream(ctx context.Context, owner, streamID string) error
	// SetStatus sets the stream's status and reason. Disabling drops the SETs it holds.
	SetStatus(ctx context.Context, owner, streamID, status, reason string) error
	// ListSubject records s as an exception to the stream's default_subjects (an added subject
	// under NONE, a removed one under ALL), unless the stream holds maxSubjects (ErrLimit).
	ListSubject(ctx context.Context, owner, streamID string, s Subject, verified bool, maxSubjects int) error
	// UnlistSubject removes the exception s, if the stream has it.
	UnlistSubject(ctx context.Context, owner, streamID string, s Subject) error
	// Verify records a verification SET for the stream and schedules its delivery, unless the
	// stream's last verification was less than minInterval ago (ErrTooSoon).
	Verify(ctx context.Context, owner, streamID string, ev Event, minInterval time.Duration) error
	// Poll settles the acknowledgements and errors of a poll request, then returns up to p.Max
	// SETs of the stream that are held for delivery, oldest first, signed with p.Sign.
	Poll(ctx context.Context, owner, streamID string, p Poll) (PollResult, error)
}

// Errors a Store returns.
var (
	// ErrNotFound: no such stream for this owner.
	ErrNotFound = errors.New("no such stream")
	// ErrLimit: the owner holds as many streams, or the stream as many subjects, as allowed.
	ErrLimit = errors.New("limit reached")
	// ErrTooSoon: a verification was requested less than min_verification_interval ago.
	ErrTooSoon = errors.New("too soon")
	// ErrNotPoll: a poll on a stream that delivers by push.
	ErrNotPoll = errors.New("the stream delivers by push, not poll")
)

// Stream is a stream as stored.
type Stream struct {
	// Config is the stream's configuration, as the management API returns it.
	Config StreamConfig
	// Owner is the SHA-256 fingerprint (hex) of the bearer token that created the stream.
	Owner string
	// DefaultSubjects is ALL or NONE, as configured when the stream was created.
	DefaultSubjects string
	// Status is enabled, paused or disabled; Reason says why, if anyone said.
	Status string
	Reason string
}

// Poll is one poll request (RFC 8936 §2.4), bounded by the handler.
type Poll struct {
	// Acks are jtis the receiver acknowledges.
	Acks []string
	// Errs are jtis the receiver could not process, with its error.
	Errs map[string]SETError
	// Max is how many SETs to return at most; 0 only settles Acks and Errs.
	Max int
	// Redeliver is how long a returned SET stays unacknowledged before it is returned again.
	Redeliver time.Duration
	// Sign signs the claims of a SET that was never delivered.
	Sign func(claims []byte) (string, error)
}

// SETError is a receiver's error about one SET (RFC 8935 §2.3, RFC 8936 §2.4.4).
type SETError struct {
	Err         string `json:"err"`
	Description string `json:"description"`
}

// PollResult is a poll's answer.
type PollResult struct {
	// SETs are the returned SETs, by jti.
	SETs map[string]string
	// More tells whether more SETs are held.
	More bool
}
