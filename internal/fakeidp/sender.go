package fakeidp

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"
)

// Delivery is one webhook a fake sent (or tried to send).
type Delivery struct {
	// ID is the delivery id (svix-id for Clerk, the CloudEvent id for AuthPI, the
	// instance/aggregate/sequence triple for Zitadel).
	ID string
	// Type is the event type, e.g. "user.created" or "user.human.added".
	Type string
	// Body is the exact bytes that were signed and sent.
	Body []byte
	// Header holds the signature headers that were sent.
	Header http.Header
	// Status is the receiver's last answer, 0 if it never answered.
	Status int
	// Attempts is how often the delivery was tried.
	Attempts int
	// Err is the last transport error, if any.
	Err string
	// Dropped is set for a webhook the fake chose never to send (WebhookTarget.Drop); it was not
	// tried, and Status and Attempts are zero.
	Dropped bool
}

// Event is one webhook waiting to be sent.
type Event struct {
	// ID is the delivery id.
	ID string
	// Type is the event type.
	Type string
	// Body is the JSON envelope.
	Body []byte
}

// SignFunc returns the headers that authenticate a webhook for its target.
type SignFunc func(t WebhookTarget, ev Event, at time.Time) (http.Header, error)

type sender struct {
	provider string
	sign     SignFunc

	mu         sync.Mutex
	target     WebhookTarget
	queue      []queued
	queued     uint64 // webhooks enqueued since the target was set
	busy       bool
	deliveries []Delivery
	closed     bool
	idle       chan struct{} // closed and replaced whenever the queue drains
}

func newSender(provider string) *sender {
	return &sender{provider: provider, idle: closedChan()}
}

func closedChan() chan struct{} {
	c := make(chan struct{})
	close(c)
	return c
}

func (s *sender) setTarget(t WebhookTarget) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if t.HTTPClient == nil {
		t.HTTPClient = &http.Client{Timeout: 10 * time.Second}
	}
	if t.MaxAttempts <= 0 {
		t.MaxAttempts = 3
	}
	if t.RetryDelay <= 0 {
		t.RetryDelay = 100 * time.Millisecond
	}
	s.target = t
	s.queued = 0
}

// queued is a webhook waiting in the queue, and whether it is to be dropped instead of sent.
type queued struct {
	ev   Event
	drop bool
}

// drops reports whether the webhook at position n of the queue of t is to be dropped.
func drops(t WebhookTarget, n uint64) bool {
	if t.Drop <= 0 {
		return false
	}
	return float64(Mix(t.DropSeed^n*0x9e3779b97f4a7c15)>>11)/(1<<53) < t.Drop
}

func (s *sender) enabled() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.target.URL != "" && !s.closed
}

// enqueue adds ev to the ordered queue; one goroutine sends the queue in order, as IdPs do per
// endpoint.
func (s *sender) enqueue(ev Event) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.target.URL == "" || s.closed {
		return
	}
	s.queue = append(s.queue, queued{ev: ev, drop: drops(s.target, s.queued)})
	s.queued++
	if !s.busy {
		s.busy = true
		s.idle = make(chan struct{})
		go s.run()
	}
}

func (s *sender) run() {
	for {
		s.mu.Lock()
		if len(s.queue) == 0 || s.closed {
			s.queue = nil
			s.busy = false
			close(s.idle)
			s.mu.Unlock()
			return
		}
		q := s.queue[0]
		s.queue = s.queue[1:]
		t := s.target
		s.mu.Unlock()
		d := Delivery{ID: q.ev.ID, Type: q.ev.Type, Body: q.ev.Body, Dropped: true}
		if !q.drop {
			d = s.deliver(t, q.ev)
		}
		s.mu.Lock()
		s.deliveries = append(s.deliveries, d)
		if len(s.deliveries) > maxRecorded {
			s.deliveries = s.deliveries[1:]
		}
		s.mu.Unlock()
	}
}

func (s *sender) deliver(t WebhookTarget, ev Event) Delivery {
	d := Delivery{ID: ev.ID, Type: ev.Type, Body: ev.Body}
	for d.Attempts < t.MaxAttempts {
		if d.Attempts > 0 {
			time.Sleep(t.RetryDelay)
		}
		d.Attempts++
		status, h, err := send(context.Background(), t, ev, s.sign)
		d.Header = h
		d.Status = status
		if err != nil {
			d.Err = err.Error()
			continue
		}
		d.Err = ""
		if status >= 200 && status <= 299 {
			break
		}
	}
	return d
}

// send signs ev for t and POSTs it once.
func send(ctx context.Context, t WebhookTarget, ev Event, sign SignFunc) (int, http.Header, error) {
	h, err := sign(t, ev, time.Now())
	if err != nil {
		return 0, nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, t.URL, bytes.NewReader(ev.Body))
	if err != nil {
		return 0, h, fmt.Errorf("building webhook request: %w", err)
	}
	for k, v := range h {
		req.Header[k] = v
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "fakeidp-webhooks/1")
	client := t.HTTPClient
	if client == nil {
		client = &http.Client{Timeout: 10 * time.Second}
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, h, err
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	resp.Body.Close()
	return resp.StatusCode, h, nil
}

func (s *sender) deliveriesCopy() []Delivery {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Delivery(nil), s.deliveries...)
}

func (s *sender) flush(ctx context.Context) error {
	s.mu.Lock()
	idle := s.idle
	s.mu.Unlock()
	select {
	case <-idle:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (s *sender) close() {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
}

// Send signs ev with sign for target and POSTs it once, returning the receiver's status.
func Send(ctx context.Context, target WebhookTarget, ev Event, sign func(WebhookTarget, Event, time.Time) (http.Header, error)) (int, error) {
	status, _, err := send(ctx, target, ev, sign)
	return status, err
}
