package clerk

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"iter"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"golang.org/x/time/rate"

	"github.com/idpsync/idpsync/internal/idpclient"
)

const (
	// DefaultBaseURL is Clerk's Backend API root.
	DefaultBaseURL = "https://api.clerk.com/v1"
	// MaxPageSize is the largest limit Clerk accepts on list endpoints.
	MaxPageSize = 500
	// APIVersion is the Clerk-API-Version this client speaks (the spec its types follow).
	APIVersion = "2025-11-10"
)

// Config configures a Client.
type Config struct {
	// SecretKey is the instance's secret key ("sk_live_…" or "sk_test_…"), sent as a bearer token.
	// Required. It never appears in errors or logs.
	SecretKey string
	// BaseURL overrides the API root. Defaults to DefaultBaseURL.
	BaseURL string
	// HTTPClient sends the requests. Defaults to a client with a 30 s timeout.
	HTTPClient *http.Client
	// UserAgent is sent on every request. Defaults to idpclient.DefaultUserAgent.
	UserAgent string
	// Limiter is a client-side rate limit shared by everything that talks to this instance.
	// Defaults to none; Clerk allows 1000 requests per 10 s on production instances and 100 per
	// 10 s on development instances.
	Limiter *rate.Limiter
	// Retry is the retry policy for reads. Defaults to idpclient.RetryPolicy's defaults.
	Retry idpclient.RetryPolicy
	// PageSize is the limit list iterators ask for. Defaults to MaxPageSize; values above it are
	// lowered to it.
	PageSize int
	// Logger receives debug records of retries. Defaults to discarding them.
	Logger *slog.Logger
}

func (c Config) validate() error {
	switch {
	case c.SecretKey == "":
		return errors.New("clerk: SecretKey is empty; set it to the instance's secret key (sk_live_… or sk_test_…) from the Clerk dashboard, API keys page")
	case strings.ContainsAny(c.SecretKey, " \t\r\n"):
		return errors.New("clerk: SecretKey contains whitespace; copy the key again without spaces or line breaks")
	case c.PageSize < 0:
		return errors.New("clerk: PageSize is negative; use 0 for the default of 500")
	}
	return nil
}

// Client calls Clerk's Backend API. It is safe for concurrent use.
type Client struct {
	t        *idpclient.Transport
	pageSize int
}

// New validates cfg and returns a Client.
func New(cfg Config) (*Client, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	h := http.Header{}
	h.Set("Clerk-API-Version", APIVersion)
	t, err := idpclient.NewTransport(idpclient.Config{
		Provider:         string(Kind),
		BaseURL:          cmp.Or(cfg.BaseURL, DefaultBaseURL),
		HTTPClient:       cfg.HTTPClient,
		UserAgent:        cfg.UserAgent,
		Auth:             idpclient.BearerToken(cfg.SecretKey),
		Header:           h,
		Limiter:          cfg.Limiter,
		Retry:            cfg.Retry,
		DecodeErrorFunc:  decodeError,
		RequestIDHeaders: []string{"Clerk-Trace-Id", "X-Request-Id"},
		Logger:           cfg.Logger,
	})
	if err != nil {
		return nil, fmt.Errorf("clerk: %w", err)
	}
	return &Client{t: t, pageSize: idpclient.ClampPageSize(cfg.PageSize, MaxPageSize)}, nil
}

// clerkErrors is Clerk's error body (BAPI schema ClerkErrors).
type clerkErrors struct {
	Errors []struct {
		Message     string         `json:"message"`
		LongMessage string         `json:"long_message"`
		Code        string         `json:"code"`
		Meta        map[string]any `json:"meta"`
	} `json:"errors"`
	ClerkTraceID string `json:"clerk_trace_id"`
}

func decodeError(_ int, _ http.Header, body []byte) *idpclient.APIError {
	var ce clerkErrors
	if json.Unmarshal(body, &ce) != nil || len(ce.Errors) == 0 {
		return &idpclient.APIError{}
	}
	first := ce.Errors[0]
	e := &idpclient.APIError{Code: first.Code, Message: cmp.Or(first.LongMessage, first.Message), RequestID: ce.ClerkTraceID, Recognized: true}
	for _, fe := range ce.Errors {
		name, _ := fe.Meta["param_name"].(string)
		if name == "" && len(ce.Errors) == 1 {
			continue
		}
		e.Fields = append(e.Fields, idpclient.FieldError{Field: name, Code: fe.Code, Message: cmp.Or(fe.LongMessage, fe.Message)})
	}
	return e
}

// ListParams are the offset pagination parameters shared by Clerk's lists.
type ListParams struct {
	// Limit is the page size, 1–500. Iterators default to the client's PageSize.
	Limit int
	// Offset skips that many items; it must not be negative.
	Offset int
	// OrderBy sorts the list, e.g. "+created_at" or "-updated_at". Empty uses Clerk's default.
	OrderBy string
}

// check refuses what Clerk's spec does not allow: a negative offset (its minimum is 0).
func (p ListParams) check() error {
	if p.Offset < 0 {
		return fmt.Errorf("offset %d is negative; Clerk's offsets start at 0: %w", p.Offset, idpclient.ErrValidation)
	}
	return nil
}

func (p ListParams) query(q url.Values, pageSize int) {
	q.Set("limit", strconv.Itoa(idpclient.ClampPageSize(p.Limit, pageSize)))
	if p.Offset > 0 {
		q.Set("offset", strconv.Itoa(p.Offset))
	}
	if p.OrderBy != "" {
		q.Set("order_by", p.OrderBy)
	}
}

// offsetPages is the PageFunc of an offset-paged list, answered as {data,total_count} or as a bare
// array (then the list ends at the first short page). scoped says the path names one resource
// whose list it is (an organization's memberships): a 404 then means that resource is gone.
func offsetPages[T any](c *Client, path string, q url.Values, limit int, scoped bool) idpclient.PageFunc[T, int] {
	return func(ctx context.Context, offset int) ([]T, int, bool, error) {
		page := cloneQuery(q)
		page.Set("limit", strconv.Itoa(limit))
		page.Set("offset", strconv.Itoa(offset))
		var out list[T]
		if err := c.t.Do(ctx, &idpclient.Request{Method: http.MethodGet, Path: path, Query: page, NotFoundMeansGone: scoped}, &out); err != nil {
			return nil, 0, false, fmt.Errorf("listing %s at offset %d: %w", path, offset, err)
		}
		next := offset + len(out.Data)
		more := len(out.Data) == limit && (!out.paged || int64(next) < out.TotalCount)
		return out.Data, next, more, nil
	}
}

// refused is the list of a call refused before it was sent: it yields err once.
func refused[T any](err error) iter.Seq2[T, error] {
	return func(yield func(T, error) bool) {
		var zero T
		yield(zero, err)
	}
}

// pathID escapes an id for a path. Every id in Clerk's paths is required: an empty one would
// make another request (GET /users/ lists users; DELETE /users/ is no route, whose 404 would read
// as "already gone"), so it is refused.
func pathID(name, id string) (string, error) {
	if id == "" {
		return "", fmt.Errorf("%s is empty: %w", name, idpclient.ErrValidation)
	}
	return idpclient.PathEscape(id), nil
}

func cloneQuery(q url.Values) url.Values {
	out := make(url.Values, len(q)+2)
	for k, v := range q {
		out[k] = v
	}
	return out
}

func (c *Client) limit(p ListParams) int { return idpclient.ClampPageSize(p.Limit, c.pageSize) }

// path returns the URL path of an API path, with the base URL's own path (/v1), as sent.
func (c *Client) path(p string) string {
	u, err := c.t.URL(p)
	if err != nil {
		return p
	}
	return u.EscapedPath()
}
