package natsbus

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/idpsync/idpsync/internal/events"
)

// Headers every event carries besides Nats-Msg-Id. Subscribers of the stream may rely on them.
// Everything else is in the body (the IdP's own type name, when the event happened) or in the
// message's JetStream metadata: its timestamp is when the receiver stored the verified delivery.
// Headers are kept few on purpose: encoding and storing them is a measurable part of the cost of
// each delivery.
const (
	HeaderSource  = "Idpsync-Source"
	HeaderEventID = "Idpsync-Event-Id"
	HeaderType    = "Idpsync-Type" // canonical type; absent when there is none
	// HeaderTraceparent is W3C trace context: with tracing on, the receiver's publish span's;
	// off, the IdP's as it came, when it sent a well-formed one.
	HeaderTraceparent = "traceparent"
)

// Event is a verified delivery as it travels on the stream: its body, verbatim, and what the
// receiver learned about it.
type Event struct {
	Source  string
	EventID string
	Type    events.Type
	// SourceType is the IdP's own type name; it names the subject of an event without a
	// canonical type. It does not travel in a header: read it from the body.
	SourceType string
	// ReceivedAt is when the stream stored the event (read from JetStream's metadata); it is
	// not sent.
	ReceivedAt  time.Time
	Traceparent string
	Body        []byte
}

// MsgID is the JetStream deduplication id of an event: <source>:<event id>.
func MsgID(source, eventID string) string { return source + ":" + eventID }

// PubAck is JetStream's acknowledgement of a publish.
type PubAck struct {
	Sequence uint64
	// Duplicate is true when the stream already held the event (same Nats-Msg-Id within the
	// Duplicates window): nothing new was stored, and that is a success.
	Duplicate bool
}

// Publish stores ev in the stream and returns once JetStream acknowledged it, at most the Bus's
// publish timeout later. Any failure, including ctx ending first, is ErrUnavailable (wrapping the
// cause); the message may then still have been stored, and the sender's retry dedupes against it.
//
// Publishes are pipelined: each waits for its own acknowledgement, but many are in flight on the
// connection at once, with no timer or context of their own (JetStream times them out together).
func (b *Bus) Publish(ctx context.Context, ev *Event) (PubAck, error) {
	if !b.streamReady.Load() || !b.nc.IsConnected() {
		// Fail fast: a message queued while reconnecting, or sent before the stream exists, would
		// only time out.
		return PubAck{}, fmt.Errorf("%w: %s, stream ready: %t", ErrUnavailable, b.nc.Status(), b.streamReady.Load())
	}
	// One backing array for the header values: a header is a map of slices.
	vals := [4]string{ev.Source, ev.EventID, string(ev.Type), ev.Traceparent}
	h := make(nats.Header, 5)
	h[HeaderSource] = vals[0:1:1]
	h[HeaderEventID] = vals[1:2:2]
	if ev.Type != "" {
		h[HeaderType] = vals[2:3:3]
	}
	if ev.Traceparent != "" {
		h[HeaderTraceparent] = vals[3:4:4]
	}
	msg := &nats.Msg{Subject: b.Subject(ev.Source, ev.Type, ev.SourceType), Header: h, Data: ev.Body}
	f, err := b.js.PublishMsgAsync(msg, jetstream.WithMsgID(MsgID(ev.Source, ev.EventID)))
	if err != nil {
		return PubAck{}, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	select {
	case ack := <-f.Ok():
		return PubAck{Sequence: ack.Sequence, Duplicate: ack.Duplicate}, nil
	case err := <-f.Err():
		return PubAck{}, fmt.Errorf("%w: %w", ErrUnavailable, err)
	case <-ctx.Done():
		return PubAck{}, fmt.Errorf("%w: %w", ErrUnavailable, ctx.Err())
	}
}

// decodeEvent reads an Event back from a stream message stored at storedAt.
func decodeEvent(subject string, h nats.Header, body []byte, storedAt time.Time) (*Event, error) {
	ev := &Event{
		Source:      h.Get(HeaderSource),
		EventID:     h.Get(HeaderEventID),
		Type:        events.Type(h.Get(HeaderType)),
		ReceivedAt:  storedAt,
		Traceparent: h.Get(HeaderTraceparent),
		Body:        body,
	}
	if ev.Source == "" || ev.EventID == "" {
		return nil, fmt.Errorf("message on %s lacks the %s or %s header", subject, HeaderSource, HeaderEventID)
	}
	return ev, nil
}
