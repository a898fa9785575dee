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
	"strings"
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
}

// ErrUnavailable means JetStream did not take a message: the connection is down, the stream has no
// leader, or the acknowledgement did not come in time. The receiver answers 503 and the IdP retries.
var ErrUnavailable = errors.New("jetstream unavailable")

// Connect dials url (comma-separated servers) with reconnects that never give up. name identifies
// the client in the server's monitoring. credsFile is optional.
func Connect(url, credsFile, name string, logger *slog.Logger) (*nats.Conn, error) {
	opts := []nats.Option{
		nats.Name(name),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(time.Second),
		nats.RetryOnFailedConnect(false),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				logger.Warn("nats disconnected", "error", err)
			}
		}),
		nats.ReconnectHandler(func(c *nats.Conn) { logger.Info("nats reconnected", "server", c.ConnectedUrlRedacted()) }),
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
	return &Bus{nc: nc, js: js, stream: stream}, nil
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
		return fmt.Errorf("creating or updating stream %s: %w", s.Name, err)
	}
	return nil
}

// Ready reports whether the connection is up and the stream exists.
func (b *Bus) Ready(ctx context.Context) error {
	if !b.nc.IsConnected() {
		return fmt.Errorf("%w: not connected (%s)", ErrUnavailable, b.nc.Status())
	}
	if _, err := b.js.Stream(ctx, b.stream.Name); err != nil {
		return fmt.Errorf("%w: stream %s: %w", ErrUnavailable, b.stream.Name, err)
	}
	return nil
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
