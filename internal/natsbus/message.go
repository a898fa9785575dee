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
const (
	HeaderSource      = "Idpsync-Source"
	HeaderKind        = "Idpsync-Kind"
	HeaderEventID     = "Idpsync-Event-Id"
	HeaderType        = "Idpsync-Type"        // canonical type; absent when there is none
	HeaderSourceType  = "Idpsync-Source-Type" // the IdP's own type name
	HeaderReceivedAt  = "Idpsync-Received-At" // RFC 3339 with nanoseconds
	HeaderOccurredAt  = "Idpsync-Occurred-At" // RFC 3339; absent when the payload does not say
	HeaderTraceparent = "traceparent"         // W3C trace context
)

// Event is a verified delivery as it travels on the stream: its body, verbatim, and what the
// receiver learned about it.
type Event struct {
	Source      string
	Kind        events.Kind
	EventID     string
	Type        events.Type
	SourceType  string
	ReceivedAt  time.Time
	OccurredAt  time.Time
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

// Publish stores ev in the stream and returns once JetStream acknowledged it. Any failure is
// ErrUnavailable (wrapping the cause).
func (b *Bus) Publish(ctx context.Context, ev *Event) (PubAck, error) {
	if !b.nc.IsConnected() {
		// Fail fast: a request queued while reconnecting would only time out.
		return PubAck{}, fmt.Errorf("%w: %s", ErrUnavailable, b.nc.Status())
	}
	msg := &nats.Msg{
		Subject: b.Subject(ev.Source, ev.Type, ev.SourceType),
		Header:  make(nats.Header, 9),
		Data:    ev.Body,
	}
	h := msg.Header
	h[HeaderSource] = []string{ev.Source}
	h[HeaderKind] = []string{string(ev.Kind)}
	h[HeaderEventID] = []string{ev.EventID}
	h[HeaderSourceType] = []string{ev.SourceType}
	h[HeaderReceivedAt] = []string{ev.ReceivedAt.UTC().Format(time.RFC3339Nano)}
	if ev.Type != "" {
		h[HeaderType] = []string{string(ev.Type)}
	}
	if !ev.OccurredAt.IsZero() {
		h[HeaderOccurredAt] = []string{ev.OccurredAt.UTC().Format(time.RFC3339Nano)}
	}
	if ev.Traceparent != "" {
		h[HeaderTraceparent] = []string{ev.Traceparent}
	}
	ack, err := b.js.PublishMsg(ctx, msg, jetstream.WithMsgID(MsgID(ev.Source, ev.EventID)), jetstream.WithExpectStream(b.stream.Name))
	if err != nil {
		return PubAck{}, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	return PubAck{Sequence: ack.Sequence, Duplicate: ack.Duplicate}, nil
}

// decodeEvent reads an Event back from a stream message.
func decodeEvent(subject string, h nats.Header, body []byte) (*Event, error) {
	ev := &Event{
		Source:      h.Get(HeaderSource),
		Kind:        events.Kind(h.Get(HeaderKind)),
		EventID:     h.Get(HeaderEventID),
		Type:        events.Type(h.Get(HeaderType)),
		SourceType:  h.Get(HeaderSourceType),
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
	if v := h.Get(HeaderOccurredAt); v != "" {
		if ev.OccurredAt, err = time.Parse(time.RFC3339Nano, v); err != nil {
			return nil, fmt.Errorf("message on %s: %s: %w", subject, HeaderOccurredAt, err)
		}
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
