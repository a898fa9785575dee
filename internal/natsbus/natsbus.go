// Package natsbus is idpsync's NATS JetStream adapter: the event stream and its subjects, the
// headers an event travels with, the receiver's publisher and the worker's durable consumer.
// It translates NATS errors at its boundary: a publish that did not get a PubAck is ErrUnavailable.
//
// Layout:
//
//	stream   IDPSYNC_EVENTS (configurable), subjects <prefix>.>, file storage, limits retention
//	subject  <prefix>.<source>.<type>, e.g. idpsync.events.clerk-prod.user.created
//	msg id   Nats-Msg-Id = <source>:<event id>, deduplicated within the stream's Duplicates window
package natsbus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/idpsync/idpsync/internal/events"
)

// StreamConfig describes the event stream.
type StreamConfig struct {
	// Name of the stream, e.g. "IDPSYNC_EVENTS".
	Name string
	// SubjectPrefix of every event subject, e.g. "idpsync.events".
	SubjectPrefix string
	// Replicas: 1 in development, 3 in a production cluster.
	Replicas int
	// MaxAge is the replay retention.
	MaxAge time.Duration
	// Duplicates is the Nats-Msg-Id deduplication window.
	Duplicates time.Duration
	// MaxBytes caps the stream; -1 for no cap.
	MaxBytes int64
}

// Bus is a connection to JetStream and the event stream.
type Bus struct {
	nc     *nats.Conn
	js     jetstream.JetStream
	stream StreamConfig

	// streamReady is true once the stream was created or updated on the current connection; the
	// publish path reads it without a lock.
	streamReady atomic.Bool
	mu          sync.Mutex
	readyCh     chan struct{} // closed while streamReady
	notReady    error         // why not, while not
}

// ErrUnavailable means JetStream did not take a message: the connection is down, the stream has no
// leader, or the acknowledgement did not come in time. The receiver answers 503 and the IdP retries.
var ErrUnavailable = errors.New("jetstream unavailable")

// Connect dials url (comma-separated servers) and returns at once, connected or not: while no
// server answers, including at start, the connection keeps trying with backoff (RetryDelay), and
// logs each failed attempt once with its number. It fails only on an unusable url or credentials
// file. name identifies the client in the server's monitoring. credsFile is optional.
//
// Until the connection is up, IsConnected is false, Publish fails fast with ErrUnavailable and
// Ready says why; KeepStream creates the stream once it is up.
func Connect(url, credsFile, name string, logger *slog.Logger) (*nats.Conn, error) {
	var (
		attempts atomic.Int64 // failed attempts since the connection was last up
		wasUp    atomic.Bool  // the connection was up once: attempts are reconnections
	)
	connected := func(what string) nats.ConnHandler {
		return func(c *nats.Conn) {
			wasUp.Store(true)
			logger.Info(what, "server", c.ConnectedUrlRedacted(), "after_attempts", attempts.Swap(0))
		}
	}
	opts := []nats.Option{
		nats.Name(name),
		nats.MaxReconnects(-1),
		nats.RetryOnFailedConnect(true),
		nats.CustomReconnectDelay(func(round int) time.Duration { return jitter(RetryDelay(round)) }),
		nats.ReconnectErrHandler(func(_ *nats.Conn, err error) {
			// The client waits RetryDelay(round) after each round of attempts; the first of an
			// initial connection is made at once, the first of a reconnection after a wait.
			n := attempts.Add(1)
			round := n
			if wasUp.Load() {
				round++
			}
			logger.Warn("cannot reach nats; retrying with backoff", "attempt", n, "retry_in", RetryDelay(int(round)).String(), "error", err)
		}),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				logger.Warn("nats disconnected", "error", err)
			}
		}),
		nats.ConnectHandler(connected("nats connected")),
		nats.ReconnectHandler(connected("nats reconnected")),
	}
	if credsFile != "" {
		opts = append(opts, nats.UserCredentials(credsFile))
	}
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		return nil, fmt.Errorf("connecting to nats: %w", err)
	}
	return nc, nil
}

// RetryDelay is the wait after the attempt-th failed attempt to reach NATS or to create the
// stream: 1s, 2s, 4s, 8s, then 10s, so that a long outage costs one log line and one dial every
// ten seconds and the recovery is noticed within ten.
func RetryDelay(attempt int) time.Duration {
	if attempt < 1 {
		attempt = 1
	}
	return min(time.Second<<min(attempt-1, 4), 10*time.Second)
}

// jitter adds up to a tenth of d, so that many processes that lost NATS together do not dial it
// again together.
func jitter(d time.Duration) time.Duration { return d + rand.N(d/10+1) }

// PublishTimeoutDefault bounds the wait for a publish acknowledgement.
const PublishTimeoutDefault = 5 * time.Second

// New returns a Bus over nc. It does not touch the server; call EnsureStream for that.
// publishTimeout bounds each publish's wait for JetStream's acknowledgement (0: the default).
func New(nc *nats.Conn, stream StreamConfig, publishTimeout time.Duration) (*Bus, error) {
	if publishTimeout <= 0 {
		publishTimeout = PublishTimeoutDefault
	}
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncTimeout(publishTimeout), jetstream.WithPublishAsyncMaxPending(4096))
	if err != nil {
		return nil, fmt.Errorf("jetstream: %w", err)
	}
	b := &Bus{nc: nc, js: js, stream: stream, readyCh: make(chan struct{})}
	b.notReady = errors.New("the stream was not created yet")
	return b, nil
}

// Conn returns the underlying connection.
func (b *Bus) Conn() *nats.Conn { return b.nc }

// JetStream returns the underlying JetStream context, for operator tools that read the stream.
func (b *Bus) JetStream() jetstream.JetStream { return b.js }

// EnsureStream creates the event stream or updates it to the configuration.
func (b *Bus) EnsureStream(ctx context.Context) error {
	s := b.stream
	_, err := b.js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:        s.Name,
		Description: "idpsync: verified webhook deliveries from identity providers",
		Subjects:    []string{s.SubjectPrefix + ".>"},
		Storage:     jetstream.FileStorage,
		Retention:   jetstream.LimitsPolicy,
		Discard:     jetstream.DiscardOld,
		MaxAge:      s.MaxAge,
		MaxBytes:    s.MaxBytes,
		Duplicates:  s.Duplicates,
		Replicas:    s.Replicas,
		AllowDirect: true,
	})
	if err != nil {
		err = fmt.Errorf("creating or updating stream %s: %w", s.Name, err)
		b.setReady(err)
		return err
	}
	b.setReady(nil)
	return nil
}

// IsRefusal reports whether err is JetStream's answer refusing a request (an invalid or
// conflicting configuration, a missing permission), as opposed to JetStream not answering or
// being temporarily unavailable: retrying a refusal does not help until someone changes something.
func IsRefusal(err error) bool {
	apiErr, ok := errors.AsType[*jetstream.APIError](err)
	return ok && apiErr.Code != 503 && apiErr.Code != 408
}

// Ready reports whether the connection is up and the stream exists.
func (b *Bus) Ready(ctx context.Context) error {
	if !b.nc.IsConnected() {
		return fmt.Errorf("%w: not connected (%s)", ErrUnavailable, b.nc.Status())
	}
	if !b.streamReady.Load() {
		b.mu.Lock()
		why := b.notReady
		b.mu.Unlock()
		return fmt.Errorf("%w: stream %s: %w", ErrUnavailable, b.stream.Name, why)
	}
	if _, err := b.js.Stream(ctx, b.stream.Name); err != nil {
		return fmt.Errorf("%w: stream %s: %w", ErrUnavailable, b.stream.Name, err)
	}
	return nil
}

// WaitReady waits until the stream was created or updated on the current connection (by
// EnsureStream or KeepStream), or ctx is done.
func (b *Bus) WaitReady(ctx context.Context) error {
	b.mu.Lock()
	ch := b.readyCh
	b.mu.Unlock()
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// setReady records whether the stream is usable: nil when it is, else why not.
func (b *Bus) setReady(why error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	wasReady := b.streamReady.Load()
	b.streamReady.Store(why == nil)
	b.notReady = why
	switch {
	case why == nil && !wasReady:
		close(b.readyCh)
	case why != nil && wasReady:
		b.readyCh = make(chan struct{})
	}
}

// ensureTimeout bounds one attempt to create or update the stream.
const ensureTimeout = 10 * time.Second

// KeepStream keeps the stream usable until ctx is done or the connection is closed: whenever the
// connection comes up (at start, or after an outage, possibly to a server that lost the stream) it
// creates or updates the stream, retrying with backoff (RetryDelay, each failure logged once with
// its attempt number) for as long as JetStream does not take it. While the connection is down or
// the stream not ensured, Ready reports why and Publish fails fast with ErrUnavailable.
func (b *Bus) KeepStream(ctx context.Context, logger *slog.Logger) {
	changes := b.nc.StatusChanged(nats.CONNECTED, nats.RECONNECTING, nats.DISCONNECTED, nats.CLOSED)
	defer b.nc.RemoveStatusListener(changes)
	var (
		attempt int
		retry   <-chan time.Time
	)
	for {
		if retry == nil && b.nc.IsConnected() && !b.streamReady.Load() {
			attempt++
			actx, cancel := context.WithTimeout(ctx, ensureTimeout)
			err := b.EnsureStream(actx)
			cancel()
			switch {
			case err == nil:
				logger.Info("stream ready", "stream", b.stream.Name, "attempt", attempt)
				attempt = 0
			case ctx.Err() != nil:
				return
			default:
				delay := RetryDelay(attempt)
				level := slog.LevelWarn
				if IsRefusal(err) {
					level = slog.LevelError // it needs someone to act
				}
				logger.Log(ctx, level, "stream not ready; retrying with backoff", "stream", b.stream.Name,
					"attempt", attempt, "retry_in", delay.String(), "error", err)
				retry = time.After(jitter(delay))
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-retry:
			retry = nil
		case st := <-changes:
			if st == nats.CLOSED {
				b.setReady(errors.New("the connection is closed"))
				return
			}
			// Down, or up again (perhaps to a server that lost the stream): ensure it anew.
			if st == nats.CONNECTED {
				b.setReady(errors.New("reconnected to nats; the stream is being checked"))
			} else {
				b.setReady(fmt.Errorf("the connection to nats is down (%s)", st))
			}
			retry, attempt = nil, 0
		}
	}
}

// Subject is the subject of an event of source: <prefix>.<source>.<type>, where type is the
// canonical type, else the IdP's own type made subject-safe, else "invalid" for a payload that
// could not be read.
func (b *Bus) Subject(source string, typ events.Type, sourceType string) string {
	t := string(typ)
	if t == "" {
		t = subjectTokens(sourceType)
	}
	return b.stream.SubjectPrefix + "." + source + "." + t
}

// SubjectFilter matches every event of the stream, or of one source when source is not empty.
func (b *Bus) SubjectFilter(source string) string {
	if source == "" {
		return b.stream.SubjectPrefix + ".>"
	}
	return b.stream.SubjectPrefix + "." + source + ".>"
}

// TypeInvalid is the subject type token of a payload that verified but could not be read.
const TypeInvalid = "invalid"

// Bounds of the subject tokens made from an IdP's type name (which comes from the payload): a
// subject longer than the NATS server's control line (4 KiB by default) makes the server close the
// connection, and the client does not reconnect.
const (
	maxTypeTokens   = 8
	maxTypeTokenLen = 64
)

// subjectTokens turns an IdP's type name into one or more valid subject tokens: at most
// maxTypeTokens of them, each cut to maxTypeTokenLen bytes.
func subjectTokens(s string) string {
	var tokens []string
	for tok := range strings.SplitSeq(s, ".") {
		if len(tokens) == maxTypeTokens {
			break
		}
		tok = tok[:min(len(tok), maxTypeTokenLen)]
		tok = strings.Map(func(r rune) rune {
			switch {
			case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '_', r == '-':
				return r
			}
			return '_'
		}, tok)
		if tok != "" {
			tokens = append(tokens, tok)
		}
	}
	if len(tokens) == 0 {
		return TypeInvalid
	}
	return strings.Join(tokens, ".")
}
