package natsbus

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// ConsumerConfig configures the workers' durable pull consumer.
type ConsumerConfig struct {
	// Durable is the consumer's name; every worker process shares it, and JetStream spreads the
	// messages among them.
	Durable string
	// AckWait is how long JetStream waits for an ack before redelivering a message.
	AckWait time.Duration
	// MaxAckPending bounds the messages handed out and not yet acknowledged, across all workers.
	MaxAckPending int
}

// Delivery is one message of the stream. Deliveries handed out by a Consumer must be settled
// exactly once with Ack, Nak or Term; those built by NewDelivery (replays) cannot be settled.
type Delivery struct {
	// Event is the decoded event; nil when the message's headers are unreadable (DecodeErr).
	Event     *Event
	DecodeErr error
	Subject   string
	StreamSeq uint64
	// NumDelivered counts deliveries of this message, this one included.
	NumDelivered uint64
	body         []byte
	headers      nats.Header
	msg          jetstream.Msg
}

// ErrNotSettleable is returned when settling a Delivery that no consumer handed out.
var ErrNotSettleable = errors.New("delivery was not handed out by a consumer")

// NewDelivery builds a Delivery from a message kept elsewhere (a dead letter being replayed),
// stored in the stream at storedAt.
func NewDelivery(subject string, headers map[string]string, body []byte, streamSeq uint64, storedAt time.Time) *Delivery {
	h := make(nats.Header, len(headers))
	for k, v := range headers {
		h.Set(k, v)
	}
	d := &Delivery{Subject: subject, StreamSeq: streamSeq, body: body, headers: h}
	d.Event, d.DecodeErr = decodeEvent(subject, h, body, storedAt)
	return d
}

func newDelivery(m jetstream.Msg) *Delivery {
	d := &Delivery{Subject: m.Subject(), body: m.Data(), headers: m.Headers(), msg: m}
	var storedAt time.Time
	if md, err := m.Metadata(); err == nil {
		d.StreamSeq, d.NumDelivered, storedAt = md.Sequence.Stream, md.NumDelivered, md.Timestamp
	}
	d.Event, d.DecodeErr = decodeEvent(d.Subject, d.headers, d.body, storedAt)
	return d
}

// Ack confirms the message: JetStream will not deliver it again.
func (d *Delivery) Ack() error {
	if d.msg == nil {
		return ErrNotSettleable
	}
	return d.msg.Ack()
}

// Nak asks JetStream to deliver the message again after delay.
func (d *Delivery) Nak(delay time.Duration) error {
	if d.msg == nil {
		return ErrNotSettleable
	}
	return d.msg.NakWithDelay(delay)
}

// Term tells JetStream never to deliver the message again; it stays in the stream for replay.
func (d *Delivery) Term(reason string) error {
	if d.msg == nil {
		return ErrNotSettleable
	}
	return d.msg.TermWithReason(reason)
}

// Header returns the message's headers, one value each, for dead letters.
func (d *Delivery) Header() map[string]string {
	out := make(map[string]string, len(d.headers))
	for k, v := range d.headers {
		if len(v) > 0 {
			out[k] = v[0]
		}
	}
	return out
}

// Body returns the message's payload.
func (d *Delivery) Body() []byte { return d.body }

// Consumer hands out batches of deliveries from the durable consumer.
type Consumer struct {
	it jetstream.MessagesContext
}

// ErrClosed is returned by NextBatch once the consumer is stopped or drained.
var ErrClosed = errors.New("consumer closed")

// Consume creates or updates the durable consumer cfg over every event of the stream and starts
// pulling from it, keeping up to prefetch messages buffered.
func (b *Bus) Consume(ctx context.Context, cfg ConsumerConfig, prefetch int) (*Consumer, error) {
	cons, err := b.js.CreateOrUpdateConsumer(ctx, b.stream.Name, jetstream.ConsumerConfig{
		Durable:       cfg.Durable,
		Description:   "idpsync workers: record events in Postgres",
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       cfg.AckWait,
		MaxDeliver:    -1, // a message that cannot be recorded is dead-lettered by the worker, not dropped
		MaxAckPending: cfg.MaxAckPending,
		FilterSubject: b.SubjectFilter(""),
		DeliverPolicy: jetstream.DeliverAllPolicy,
	})
	if err != nil {
		return nil, fmt.Errorf("creating consumer %s: %w", cfg.Durable, err)
	}
	it, err := cons.Messages(jetstream.PullMaxMessages(prefetch), jetstream.PullHeartbeat(5*time.Second))
	if err != nil {
		return nil, fmt.Errorf("pulling from consumer %s: %w", cfg.Durable, err)
	}
	return &Consumer{it: it}, nil
}

// NextBatch blocks until a message is available (or ctx is done), then gathers up to max messages,
// waiting at most linger for more to arrive. After Drain it returns the buffered messages and then
// ErrClosed.
func (c *Consumer) NextBatch(ctx context.Context, max int, linger time.Duration) ([]*Delivery, error) {
	first, err := c.it.Next(jetstream.NextContext(ctx))
	if err != nil {
		if errors.Is(err, jetstream.ErrMsgIteratorClosed) {
			return nil, ErrClosed
		}
		return nil, err
	}
	batch := []*Delivery{newDelivery(first)}
	deadline := time.Now().Add(linger)
	for len(batch) < max {
		wait := time.Until(deadline)
		if wait <= 0 {
			break
		}
		m, err := c.it.Next(jetstream.NextMaxWait(wait))
		if err != nil {
			if errors.Is(err, nats.ErrTimeout) || errors.Is(err, jetstream.ErrMsgIteratorClosed) {
				break
			}
			return batch, nil // the batch in hand is still good; the error will recur on the next call
		}
		batch = append(batch, newDelivery(m))
	}
	return batch, nil
}

// Drain stops pulling new messages; NextBatch returns those already buffered, then ErrClosed.
func (c *Consumer) Drain() { c.it.Drain() }

// Stop stops at once; buffered messages are redelivered after AckWait.
func (c *Consumer) Stop() { c.it.Stop() }
