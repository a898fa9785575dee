package handlers

import (
	"context"
	"errors"
	"time"

	"github.com/riverqueue/river/rivertype"

	"github.com/idpsync/idpsync/internal/idpclient"
	"github.com/idpsync/idpsync/internal/provider"
)

// IdPs gives the jobs each source's management API, by source name, as the providers built it
// (internal/provider). A source missing from a map cannot do that: resync, revoke sessions, or
// revoke agents.
type IdPs struct {
	Directories map[string]provider.Directory
	Sessions    map[string]provider.SessionRevoker
	Agents      map[string]provider.AgentRevoker
	// Health records the calls that show a source misconfigured; nil records nothing.
	Health *SourceHealth
}

// judge sorts out what a job does after a call to an IdP failed: wait for a rate limit (snooze >
// 0, which does not spend an attempt), stop for good (final: the IdP answered with a permanent
// error such as 401, 403 or 422, or an answer that means idpsync is misconfigured, or the
// attempts are used up), or else let River retry it with
// backoff. A job interrupted by a shutdown or its timeout is retried; so is an error that is not
// the IdP's (Postgres unavailable).
func judge(ctx context.Context, job *rivertype.JobRow, err error) (snooze time.Duration, final bool) {
	if ctx.Err() != nil {
		return 0, false
	}
	class := idpclient.Classify(err)
	if d, ok := idpclient.RetryAfter(err); ok || class == idpclient.ClassDeferred {
		if !ok {
			d = rateLimitSnooze
		}
		return d, false
	}
	_, fromIdP := errors.AsType[*idpclient.APIError](err)
	fromIdP = fromIdP || errors.Is(err, idpclient.ErrUnexpected)
	return 0, fromIdP && class == idpclient.ClassPermanent || job.Attempt >= job.MaxAttempts
}

// rateLimitSnooze is how long a job waits after a 429 that named no Retry-After.
const rateLimitSnooze = 30 * time.Second
