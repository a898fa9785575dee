package chaos

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	svix "github.com/svix/svix-webhooks/go"
	"golang.org/x/time/rate"
)

// Sender delivers a Plan to a receiver the way Svix delivers Clerk's webhooks: concurrently, each
// delivery signed afresh at every attempt under its own svix-id, and retried with backoff until it
// gets a 2xx.
type Sender struct {
	// URL is the webhook endpoint, e.g. http://127.0.0.1:8080/webhooks/clerk-chaos.
	URL string
	// Secret is the endpoint's signing secret, whsec_….
	Secret string
	// Rate is how many new deliveries are dispatched per second.
	Rate float64
	// Concurrency bounds the deliveries in flight, retries included.
	Concurrency int
}

// Load is a send in progress, and its outcome once Done is closed.
type Load struct {
	total      int
	dispatched atomic.Int64
	acked      atomic.Int64
	done       chan struct{}
	// Started and Finished frame the send; Finished is when the last delivery was acknowledged
	// (or the send gave up).
	Started, Finished time.Time

	mu      sync.Mutex
	answers map[string]int
}

// Send starts delivering plan; it returns at once. Deliveries not acknowledged when ctx ends are
// abandoned.
func (s *Sender) Send(ctx context.Context, plan *Plan) (*Load, error) {
	wh, err := svix.NewWebhook(s.Secret)
	if err != nil {
		return nil, fmt.Errorf("signing secret: %w", err)
	}
	l := &Load{total: len(plan.Deliveries), done: make(chan struct{}), answers: map[string]int{}, Started: time.Now()}
	tr := &http.Transport{
		MaxIdleConnsPerHost: s.Concurrency, DisableCompression: true,
		DialContext: (&net.Dialer{Timeout: 2 * time.Second}).DialContext,
	}
	client := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	limiter := rate.NewLimiter(rate.Limit(s.Rate), 1)
	go func() {
		defer close(l.done)
		defer tr.CloseIdleConnections()
		sem := make(chan struct{}, s.Concurrency)
		var wg sync.WaitGroup
		for _, d := range plan.Deliveries {
			if limiter.Wait(ctx) != nil {
				break
			}
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
			}
			if ctx.Err() != nil {
				break
			}
			l.dispatched.Add(1)
			wg.Go(func() {
				defer func() { <-sem }()
				s.deliver(ctx, client, wh, d, l)
			})
		}
		wg.Wait()
		l.Finished = time.Now()
	}()
	return l, nil
}

// deliver retries d until a 2xx or the end of ctx.
func (s *Sender) deliver(ctx context.Context, client *http.Client, wh *svix.Webhook, d *Delivery, l *Load) {
	for attempt := 1; ctx.Err() == nil; attempt++ {
		d.Attempts.Add(1)
		answer, retryAfter := s.attempt(ctx, client, wh, d)
		l.count(answer)
		if strings.HasPrefix(answer, "2") {
			d.Acked.Store(true)
			l.acked.Add(1)
			return
		}
		wait := min(2*time.Second, 100*time.Millisecond<<min(attempt-1, 5))
		wait = wait/2 + rand.N(wait) // jitter: 0.5x to 1.5x
		wait = min(max(wait, retryAfter), 5*time.Second)
		select {
		case <-ctx.Done():
		case <-time.After(wait):
		}
	}
}

// attempt makes one request and returns its answer (a status code or a network failure) and the
// Retry-After it carried.
func (s *Sender) attempt(ctx context.Context, client *http.Client, wh *svix.Webhook, d *Delivery) (string, time.Duration) {
	now := time.Now()
	sig, err := wh.Sign(d.ID, now, d.Body)
	if err != nil {
		return "signing failed: " + err.Error(), 0
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.URL, bytes.NewReader(d.Body))
	if err != nil {
		return "bad request: " + err.Error(), 0
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("svix-id", d.ID)
	req.Header.Set("svix-timestamp", strconv.FormatInt(now.Unix(), 10))
	req.Header.Set("svix-signature", sig)
	resp, err := client.Do(req)
	if err != nil {
		return networkFailure(err), 0
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	var retryAfter time.Duration
	if secs, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil {
		retryAfter = time.Duration(secs) * time.Second
	}
	return strconv.Itoa(resp.StatusCode), retryAfter
}

func networkFailure(err error) string {
	var ne net.Error
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused"
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "connection reset"
	case errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return "abandoned"
	}
	return "network error"
}

func (l *Load) count(answer string) {
	l.mu.Lock()
	l.answers[answer]++
	l.mu.Unlock()
}

// Done is closed when every delivery was acknowledged or abandoned.
func (l *Load) Done() <-chan struct{} { return l.done }

// Total is the number of deliveries of the plan.
func (l *Load) Total() int { return l.total }

// Acked is the number of deliveries acknowledged so far.
func (l *Load) Acked() int { return int(l.acked.Load()) }

// WaitDispatched waits until frac of the deliveries have been dispatched (or the load is done).
func (l *Load) WaitDispatched(ctx context.Context, frac float64) error {
	want := int64(frac * float64(l.total))
	for l.dispatched.Load() < want {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-l.done:
			return nil
		case <-time.After(5 * time.Millisecond):
		}
	}
	return nil
}

// Answers summarizes the answers to every attempt, most frequent first: "202×1200, connection
// refused×30, 503×4".
func (l *Load) Answers() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	type kv struct {
		k string
		n int
	}
	var all []kv
	for k, n := range l.answers {
		all = append(all, kv{k, n})
	}
	slices.SortFunc(all, func(a, b kv) int { return b.n - a.n })
	parts := make([]string, len(all))
	for i, e := range all {
		parts[i] = fmt.Sprintf("%s×%d", e.k, e.n)
	}
	return strings.Join(parts, ", ")
}
