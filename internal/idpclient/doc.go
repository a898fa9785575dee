// Package idpclient is the shared layer under idpsync's management-API clients for identity
// providers: each provider's client (internal/provider/<kind>) is built on one [Transport], the
// only seam between a client and HTTP. The background workers use these clients to page through an
// IdP during a resync and to call it back for revocations.
//
// # Transport
//
// A [Transport] owns the base URL, the User-Agent, authentication (an [Authenticator]; a
// [Refresher] renews credentials after a 401 and the request is sent once more), JSON encoding,
// an optional client-side rate limiter (golang.org/x/time/rate, shared per source), retries, and
// the decoding of every non-2xx answer into an [*APIError] in the provider's own error shape. The
// *http.Client is injectable; the default has a 30 s per-attempt timeout. Credentials are only
// ever put in request headers: they never appear in URLs, errors or logs.
//
// # Errors
//
// Three tiers, as everywhere in idpsync:
//
//   - sentinels for the failure class, matched with errors.Is: [ErrUnauthorized] (401),
//     [ErrForbidden] (403), [ErrNotFound] (404), [ErrValidation] (400, 422), [ErrConflict] (409),
//     [ErrRateLimited] (429), [ErrServer] (5xx) and [ErrNetwork] (no answer). The status table is
//     [StatusSentinel].
//   - typed errors carrying data, matched with errors.As: [*APIError] (Provider, Op, Status,
//     provider Code, Message, RequestID, RetryAfter, per-field Fields) and [*TransportError].
//   - context added by the clients with fmt.Errorf("listing users at offset 500: %w", err).
//
// [Classify] tells a caller what to do: [ClassDeferred] for rate limits (snooze for
// [RetryAfter]), [ClassRetryable] for server and network errors and expired deadlines (retry
// with backoff), [ClassPermanent] for everything else (cancel the job). [Retryable] is the
// boolean short form. A River worker maps them to a returned error, river.JobSnooze and
// river.JobCancel.
//
// # Retry policy
//
// Only idempotent requests are retried inside the transport: GET and HEAD, reads sent as POST
// (Zitadel's searches) and calls the provider deduplicates (an AuthPI Idempotency-Key, RFC 7009
// token revocation, ZeroID's offboarding). They are retried on 429, 5xx and network errors, up to
// [RetryPolicy].MaxAttempts (default 4), with exponential backoff from 500 ms capped at 30 s and
// jitter. A Retry-After is honoured as sent (plus up to a tenth of jitter); when it is longer than
// MaxRetryAfter (default one minute) or would pass the context's deadline, the transport does not
// sleep but returns the ErrRateLimited error at once, so the caller can defer the work. Writes that
// are not idempotent (a ban, a session revocation, a signal ingest) are sent once; their errors
// are classified and the caller decides. Nothing retries forever.
//
// # Pagination
//
// Lists are lazy iter.Seq2[T, error] iterators built with [Paginate] over each provider's native
// scheme: offset (Clerk, Zitadel's ListQuery in a POST body, ZeroID) or cursor (AuthPI). A page
// is fetched only when the previous one is used up, so a walk over 100,000 users holds one page in
// memory. The context is checked before every page and item; the first error is yielded once and
// ends the iteration; breaking out of the loop stops fetching. Page sizes default to, and are
// bounded by, each provider's maximum (Clerk 500, Zitadel 1000, AuthPI 100, ZeroID 100). Each
// client also exposes single calls for callers that manage positions themselves.
//
// # Raw JSON
//
// Every entity a client returns keeps the item's JSON exactly as received in a Raw field (tagged
// json:"-"), so that the sync layer maps API entities to mirror rows from the same bytes a webhook
// would carry.
//
// The conformance suite every client passes lives in idpclienttest; the fakes the tests run
// against live beside each provider (internal/provider/<kind>/<kind>fake).
package idpclient
