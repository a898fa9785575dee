package handlers

import (
	"context"
	"errors"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/riverqueue/river/rivertype"

	"github.com/idpsync/idpsync/internal/idpclient"
)

func TestJudge(t *testing.T) {
	t.Parallel()
	live := context.Background()
	stopped, cancel := context.WithCancel(context.Background())
	cancel()
	api := func(status int, retryAfter time.Duration) error {
		return fmt.Errorf("revoking: %w", &idpclient.APIError{Provider: "clerk", Status: status, RetryAfter: retryAfter})
	}
	cases := []struct {
		name      string
		ctx       context.Context
		attempt   int
		err       error
		snooze    time.Duration
		wantFinal bool
	}{
		{"429 with Retry-After waits that long", live, 1, api(429, 7*time.Second), 7 * time.Second, false},
		{"429 without Retry-After waits the default", live, 1, api(429, 0), rateLimitSnooze, false},
		{"a rate limit waits even on the last attempt", live, 10, api(429, time.Second), time.Second, false},
		{"5xx retries while attempts remain", live, 3, api(503, 0), 0, false},
		{"5xx on the last attempt gives up", live, 10, api(502, 0), 0, true},
		{"a network error retries", live, 3, &idpclient.TransportError{Provider: "clerk", Err: io.ErrUnexpectedEOF}, 0, false},
		{"403 gives up at once", live, 1, api(403, 0), 0, true},
		{"422 gives up at once", live, 1, api(422, 0), 0, true},
		{"an error that is not the IdP's retries", live, 1, errors.New("postgres: connection refused"), 0, false},
		{"a shutdown is never final", stopped, 10, api(403, 0), 0, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			job := &rivertype.JobRow{Attempt: c.attempt, MaxAttempts: 10}
			snooze, final := judge(c.ctx, job, c.err)
			if snooze != c.snooze || final != c.wantFinal {
				t.Fatalf("judge = (%s, %v), want (%s, %v)", snooze, final, c.snooze, c.wantFinal)
			}
		})
	}
}
