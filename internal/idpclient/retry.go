package idpclient

import (
	"context"
	"errors"
	"math/rand/v2"
	"time"
)

// Retry policy defaults.
const (
	// RetryMaxAttemptsDefault is the number of attempts of an idempotent call, the first included.
	RetryMaxAttemptsDefault = 4
	// RetryBaseDelayDefault is the first backoff delay.
	RetryBaseDelayDefault = 500 * time.Millisecond
	// RetryMaxDelayDefault caps one backoff delay.
	RetryMaxDelayDefault = 30 * time.Second
	// RetryMaxRetryAfterDefault is the longest Retry-After the transport sleeps through itself.
	RetryMaxRetryAfterDefault = time.Minute
)

// RetryPolicy says how the transport retries idempotent calls that failed with 429, 5xx or a
// network error. Writes that are not idempotent are never retried: their errors go back to the
// caller (a River job) with Classify telling how to react.
type RetryPolicy struct {
	// MaxAttempts is the number of attempts, the first included. Defaults to
	// RetryMaxAttemptsDefault; 1 disables retries.
	MaxAttempts int
	// BaseDelay is the backoff before the second attempt; each further attempt doubles it, with
	// full jitter. Defaults to RetryBaseDelayDefault.
	BaseDelay time.Duration
	// MaxDelay caps one backoff delay. Defaults to RetryMaxDelayDefault.
	MaxDelay time.Duration
	// MaxRetryAfter is the longest Retry-After the transport waits for itself; a longer one is
	// returned to the caller at once as ErrRateLimited (to snooze the job). A Retry-After that
	// would pass the context deadline is likewise returned at once. Defaults to
	// RetryMaxRetryAfterDefault.
	MaxRetryAfter time.Duration
	// SleepFunc waits d or until ctx is done. Defaults to a timer; tests may shorten it.
	SleepFunc func(ctx context.Context, d time.Duration) error
	// JitterFunc returns a uniformly random duration in [0, d). Defaults to math/rand/v2.
	JitterFunc func(d time.Duration) time.Duration
}

func (p RetryPolicy) validate() error {
	switch {
	case p.MaxAttempts < 0:
		return errors.New("retry policy: MaxAttempts is negative; use 1 to disable retries or 0 for the default")
	case p.BaseDelay < 0, p.MaxDelay < 0, p.MaxRetryAfter < 0:
		return errors.New("retry policy: delays must not be negative; use 0 for the defaults")
	case p.MaxDelay > 0 && p.BaseDelay > p.MaxDelay:
		return errors.New("retry policy: BaseDelay is larger than MaxDelay; lower BaseDelay or raise MaxDelay")
	}
	return nil
}

func (p RetryPolicy) withDefaults() RetryPolicy {
	if p.MaxAttempts == 0 {
		p.MaxAttempts = RetryMaxAttemptsDefault
	}
	if p.BaseDelay == 0 {
		p.BaseDelay = RetryBaseDelayDefault
	}
	if p.MaxDelay == 0 {
		p.MaxDelay = max(RetryMaxDelayDefault, p.BaseDelay)
	}
	if p.MaxRetryAfter == 0 {
		p.MaxRetryAfter = RetryMaxRetryAfterDefault
	}
	if p.SleepFunc == nil {
		p.SleepFunc = Sleep
	}
	if p.JitterFunc == nil {
		p.JitterFunc = func(d time.Duration) time.Duration {
			if d <= 0 {
				return 0
			}
			return rand.N(d)
		}
	}
	return p
}

// wait returns the delay before attempt+1, or false when the provider asked for a longer wait than
// the policy allows.
func (p RetryPolicy) wait(attempt int, err error) (time.Duration, bool) {
	if ra, ok := RetryAfter(err); ok {
		if ra > p.MaxRetryAfter {
			return 0, false
		}
		// Honour the provider's wait, then spread clients out by up to a tenth more.
		return ra + p.JitterFunc(ra/10+1), true
	}
	backoff := p.BaseDelay << (attempt - 1)
	if backoff > p.MaxDelay || backoff <= 0 {
		backoff = p.MaxDelay
	}
	// Full jitter, but never less than half the backoff so retries do not bunch at zero.
	return backoff/2 + p.JitterFunc(backoff/2+1), true
}

// Sleep waits d or until ctx is done, returning ctx.Err() in the latter case.
func Sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-timer.C:
		return nil
	}
}
