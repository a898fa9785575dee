package natsbus

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/idpsync/idpsync/internal/events"
)

// Headers every event carries besides Nats-Msg-Id. Subscribers of the stream may rely on them.
// Everything else (the IdP's own type name, when the event happened) is in the body.
const (
	HeaderSource      = "Idpsync-Source"
	HeaderKind        = "Idpsync-Kind"
	HeaderEventID     = "Idpsync-Event-Id"
	HeaderType        = "Idpsync-Type"        // canonical type; absent when there is none
	HeaderReceivedAt  = "Idpsync-Received-At" // RFC 3339 with nanoseconds
	HeaderTraceparent = "traceparent"         // W3C trace context
)

// Event is a verified delivery as it travels on the stream: its body, verbatim, and what the
// receiver learned about it.
type Event struct {
	Source  string
	Kind    events.Kind
	EventID string
	Type    events.Type
	// SourceType is the IdP's own type name; it names the subject of an event without a
	// canonical type. It does not travel in a header: read it from the body.
	SourceType  string
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
	if !b.nc.IsConnected() {
		// Fail fast: a message queued while reconnecting would only time out.
		return PubAck{}, fmt.Errorf("%w: %s", ErrUnavailable, b.nc.Status())
	}
	// One backing array for the header values: a header is a map of slices.
	vals := [6]string{ev.Source, string(ev.Kind), ev.EventID, ev.ReceivedAt.UTC().Format(time.RFC3339Nano), string(ev.Type), ev.Traceparent}
	h := make(nats.Header, 7)
	h[HeaderSource] = vals[0:1:1]
	h[HeaderKind] = vals[1:2:2]
	h[HeaderEventID] = vals[2:3:3]
	h[HeaderReceivedAt] = vals[3:4:4]
	if ev.Type != "" {
		h[HeaderType] = vals[4:5:5]
	}
	if ev.Traceparent != "" {
		h[HeaderTraceparent] = vals[5:6:6]
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

// decodeEvent reads an Event back from a stream message.
func decodeEvent(subject string, h nats.Header, body []byte) (*Event, error) {
	ev := &Event{
		Source:      h.Get(HeaderSource),
		Kind:        events.Kind(h.Get(HeaderKind)),
		EventID:     h.Get(HeaderEventID),
		Type:        events.Type(h.Get(HeaderType)),
		Traceparent: h.Get(HeaderTraceparent),
		Body:        body,
	}
	if ev.Source == "" || ev.EventID == "" || ev.Kind == "" {
		return nil, fmt.Errorf("message on %s lacks the %s, %s or %s header", subject, HeaderSource, HeaderEventID, HeaderKind)
	}
	var err error
	if ev.ReceivedAt, err = time.Parse(time.RFC3339Nano, h.Get(HeaderReceivedAt)); err != nil {
		return nil, fmt.Errorf("message on %s: %s: %w", subject, HeaderReceivedAt, err)
	}
	return ev, nil
}

// GetEvent reads the event stored at stream sequence seq.
func (b *Bus) GetEvent(ctx context.Context, seq uint64) (*Event, error) {
	st, err := b.js.Stream(ctx, b.stream.Name)
	if err != nil {
		return nil, fmt.Errorf("stream %s: %w", b.stream.Name, err)
	}
	raw, err := st.GetMsg(ctx, seq)
	if err != nil {
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			return nil, fmt.Errorf("stream %s has no message %d (expired or never stored): %w", b.stream.Name, seq, err)
		}
		return nil, err
	}
	return decodeEvent(raw.Subject, raw.Header, raw.Data)
}
