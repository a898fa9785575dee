package authpi

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"iter"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/time/rate"

	"github.com/idpsync/idpsync/internal/idpclient"
)

const (
	// DefaultBaseURL is AuthPI's Core API root.
	DefaultBaseURL = "https://api.authpi.com"
	// MaxPageSize is the largest limit AuthPI accepts on list endpoints.
	MaxPageSize = 100
)

// Config configures a Client. Set either APIKeyID with APIKeySecret, or AccessToken.
type Config struct {
	// APIKeyID and APIKeySecret are an organization API key ("key_…" and its secret), sent as
	// HTTP Basic credentials.
	APIKeyID, APIKeySecret string
	// AccessToken is a JWT access token sent as a bearer token, for calls on behalf of a user
	// session.
	AccessToken string
	// OnTokenExpiredFunc is called when AuthPI answers 401 to a request made with AccessToken; it
	// returns a fresh token, and the request is sent once more with it. Defaults to none: a 401
	// is returned as ErrUnauthorized.
	OnTokenExpiredFunc func(ctx context.Context) (string, error)
	// AccountID is the account ("acc_…"). Defaults to the account of the credentials, resolved
	// once through GET /v1/me.
	AccountID string
	// BaseURL overrides the API root. Defaults to DefaultBaseURL.
	BaseURL string
	// HTTPClient sends the requests. Defaults to a client with a 30 s timeout.
	HTTPClient *http.Client
	// UserAgent is sent on every request. Defaults to idpclient.DefaultUserAgent.
	UserAgent string
	// Limiter is a client-side rate limit. Defaults to none; AuthPI limits at its edge per client
	// IP without contractual thresholds and answers 429 with Retry-After when it can.
	Limiter *rate.Limiter
	// Retry is the retry policy for reads (and writes sent with an Idempotency-Key). Defaults to
	// idpclient.RetryPolicy's defaults.
	Retry idpclient.RetryPolicy
	// PageSize is the limit list iterators ask for. Defaults to MaxPageSize; values above it are
	// lowered to it.
	PageSize int
	// Logger receives debug records of retries. Defaults to discarding them.
	Logger *slog.Logger
}

func (c Config) validate() error {
	key := c.APIKeyID != "" || c.APIKeySecret != ""
	switch {
	case key && c.AccessToken != "":
		return errors.New("authpi: both an API key and an AccessToken are set; keep one")
	case key && (c.APIKeyID == "" || c.APIKeySecret == ""):
		return errors.New("authpi: an API key needs both APIKeyID and APIKeySecret; the secret is shown once when the key is created")
	case !key && c.AccessToken == "":
		return errors.New("authpi: no credentials; set APIKeyID and APIKeySecret (an organization API key) or AccessToken")
	case c.OnTokenExpiredFunc != nil && c.AccessToken == "":
		return errors.New("authpi: OnTokenExpiredFunc is set without an AccessToken; it only applies to access tokens")
	case c.PageSize < 0:
		return errors.New("authpi: PageSize is negative; use 0 for the default of 100")
	}
	return nil
}

// Client calls AuthPI's Core API. It is safe for concurrent use.
type Client struct {
	t        *idpclient.Transport
	pageSize int

	accountMu sync.Mutex
	accountID string
}

// New validates cfg and returns a Client.
func New(cfg Config) (*Client, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	var auth idpclient.Authenticator
	if cfg.AccessToken != "" {
		auth = &accessToken{token: cfg.AccessToken, onExpired: cfg.OnTokenExpiredFunc}
	} else {
		auth = idpclient.BasicAuth(cfg.APIKeyID, cfg.APIKeySecret)
	}
	t, err := idpclient.NewTransport(idpclient.Config{
		Provider:         string(Kind),
		BaseURL:          cmp.Or(cfg.BaseURL, DefaultBaseURL),
		HTTPClient:       cfg.HTTPClient,
		UserAgent:        cfg.UserAgent,
		Auth:             auth,
		Limiter:          cfg.Limiter,
		Retry:            cfg.Retry,
		DecodeErrorFunc:  decodeError,
		RequestIDHeaders: []string{"X-Request-Id", "Cf-Ray"},
		Logger:           cfg.Logger,
	})
	if err != nil {
		return nil, fmt.Errorf("authpi: %w", err)
	}
	return &Client{t: t, pageSize: idpclient.ClampPageSize(cfg.PageSize, MaxPageSize), accountID: cfg.AccountID}, nil
}

// accessToken sends a bearer token and renews it through the callback after a 401. Renewals are
// serialized: callers whose request carried an old token just retry with the current one.
type accessToken struct {
	mu        sync.Mutex
	token     string
	onExpired func(ctx context.Context) (string, error)
}

var (
	_ idpclient.Authenticator = (*accessToken)(nil)
	_ idpclient.Refresher     = (*accessToken)(nil)
)

func (a *accessToken) Authorize(_ context.Context, req *http.Request) error {
	a.mu.Lock()
	tok := a.token
	a.mu.Unlock()
	req.Header.Set("Authorization", "Bearer "+tok)
	return nil
}

func (a *accessToken) Refresh(ctx context.Context, req *http.Request) (bool, error) {
	if a.onExpired == nil {
		return false, nil
	}
	used := strings.TrimPrefix(req.Header.Get("Authorization"), "Bearer ")
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.token != used {
		return true, nil // someone else already renewed it
	}
	tok, err := a.onExpired(ctx)
	if err != nil {
		return false, fmt.Errorf("OnTokenExpiredFunc: %w", err)
	}
	if tok == "" || tok == used {
		return false, nil
	}
	a.token = tok
	return true, nil
}

// authpiError is AuthPI's error body, {"error", "error_description"}, with per-field details on
// validation errors when AuthPI gives them.
type authpiError struct {
	Error            string          `json:"error"`
	ErrorDescription string          `json:"error_description"`
	RequestID        string          `json:"request_id"`
	Fields           json.RawMessage `json:"fields"`
}

func decodeError(_ int, _ http.Header, body []byte) *idpclient.APIError {
	var ae authpiError
	// The edge answers some 429s and 5xxs with HTML: keep the status text then.
	if json.Unmarshal(body, &ae) != nil || ae.Error == "" {
		return &idpclient.APIError{}
	}
	e := &idpclient.APIError{Code: ae.Error, Message: cmp.Or(ae.ErrorDescription, ae.Error), RequestID: ae.RequestID, Recognized: true}
	// Fields come as a list [{field, code, message}] or a map {field: message}.
	var list []struct{ Field, Code, Message string }
	var byName map[string]string
	if json.Unmarshal(ae.Fields, &list) == nil {
		for _, f := range list {
			e.Fields = append(e.Fields, idpclient.FieldError{Field: f.Field, Code: f.Code, Message: f.Message})
		}
	} else if json.Unmarshal(ae.Fields, &byName) == nil {
		for k, v := range byName {
			e.Fields = append(e.Fields, idpclient.FieldError{Field: k, Message: v})
		}
	}
	return e
}

// AccountID returns the account the client works in, resolving it through GET /v1/me on first
// use. Concurrent callers share one lookup; a failed lookup is retried on the next call.
func (c *Client) AccountID(ctx context.Context) (string, error) {
	c.accountMu.Lock()
	defer c.accountMu.Unlock()
	if c.accountID != "" {
		return c.accountID, nil
	}
	var me struct {
		AccountID string `json:"account_id"`
		Account   *struct {
			ID string `json:"id"`
		} `json:"account"`
	}
	if err := c.t.Do(ctx, &idpclient.Request{Method: http.MethodGet, Path: "/v1/me"}, &me); err != nil {
		return "", fmt.Errorf("resolving the account id: %w", err)
	}
	id := me.AccountID
	if id == "" && me.Account != nil {
		id = me.Account.ID
	}
	if id == "" {
		return "", errors.New("resolving the account id: GET /v1/me answered without an account id")
	}
	c.accountID = id
	return id, nil
}

func (c *Client) accountPath(ctx context.Context, rest string) (string, error) {
	acc, err := c.AccountID(ctx)
	if err != nil {
		return "", err
	}
	return "/v1/accounts/" + idpclient.PathEscape(acc) + rest, nil
}

// ListParams are AuthPI's cursor pagination parameters.
type ListParams struct {
	// Limit is the page size, 1–100. Iterators default to the client's PageSize.
	Limit int
	// Cursor starts after the item with this id (a previous page's next_cursor).
	Cursor string
}

// cursorList iterates over a cursor-paginated list at the account path rest.
func cursorList[T any](ctx context.Context, c *Client, rest string, p ListParams, filters url.Values) iter.Seq2[T, error] {
	limit := idpclient.ClampPageSize(p.Limit, c.pageSize)
	return idpclient.Paginate(ctx, p.Cursor, func(ctx context.Context, cursor string) ([]T, string, bool, error) {
		path, err := c.accountPath(ctx, rest)
		if err != nil {
			return nil, "", false, err
		}
		q := url.Values{}
		for k, v := range filters {
			q[k] = v
		}
		q.Set("limit", strconv.Itoa(limit))
		if cursor != "" {
			q.Set("cursor", cursor)
		}
		var out page[T]
		if err := c.t.Do(ctx, &idpclient.Request{Method: http.MethodGet, Path: path, Query: q}, &out); err != nil {
			return nil, "", false, fmt.Errorf("listing %s: %w", rest, err)
		}
		more := out.HasMore && out.NextCursor != "" && out.NextCursor != cursor
		return out.Data, out.NextCursor, more, nil
	})
}

func newIdempotencyKey() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
