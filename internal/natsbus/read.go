package natsbus

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// ReadFrom says where a read of the stream starts: at a sequence, at a time, or (both zero) at
// the first message the stream still holds.
type ReadFrom struct {
	Seq  uint64
	Time time.Time
}

// ReadStream reads the events of source (every source when empty) from the stream, starting at
// from and ending with the last message the stream held when the read began, and hands them to fn
// in batches of up to batch. The deliveries cannot be settled: the read uses an ordered consumer,
// which is ephemeral and leaves the workers' durable consumer alone.
func (b *Bus) ReadStream(ctx context.Context, source string, from ReadFrom, batch int, fn func([]*Delivery) error) error {
	st, err := b.js.Stream(ctx, b.stream.Name)
	if err != nil {
		return fmt.Errorf("stream %s: %w", b.stream.Name, err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		return fmt.Errorf("stream %s: %w", b.stream.Name, err)
	}
	last := info.State.LastSeq
	if info.State.Msgs == 0 || (from.Seq > last) {
		return nil
	}
	cfg := jetstream.OrderedConsumerConfig{FilterSubjects: []string{b.SubjectFilter(source)}, DeliverPolicy: jetstream.DeliverAllPolicy}
	switch {
	case from.Seq > 0:
		cfg.DeliverPolicy, cfg.OptStartSeq = jetstream.DeliverByStartSequencePolicy, from.Seq
	case !from.Time.IsZero():
		cfg.DeliverPolicy, cfg.OptStartTime = jetstream.DeliverByStartTimePolicy, &from.Time
	}
	oc, err := b.js.OrderedConsumer(ctx, b.stream.Name, cfg)
	if err != nil {
		return fmt.Errorf("reading stream %s: %w", b.stream.Name, err)
	}
	for {
		msgs, err := oc.Fetch(batch, jetstream.FetchMaxWait(2*time.Second))
		if err != nil {
			return fmt.Errorf("reading stream %s: %w", b.stream.Name, err)
		}
		var (
			out  []*Delivery
			done bool
		)
		for m := range msgs.Messages() {
			d := newDelivery(m)
			if d.StreamSeq > last {
				done = true
				break
			}
			out = append(out, d)
			if md, err := m.Metadata(); err == nil && (md.NumPending == 0 || d.StreamSeq == last) {
				done = true
			}
		}
		if err := msgs.Error(); err != nil && !errors.Is(err, nats.ErrTimeout) {
			return fmt.Errorf("reading stream %s: %w", b.stream.Name, err)
		}
		if len(out) > 0 {
			if err := fn(out); err != nil {
				return err
			}
		}
		if done || len(out) == 0 {
			return ctx.Err()
		}
	}
}
