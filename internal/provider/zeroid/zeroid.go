package zeroid

import (
	"bytes"
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
	"time"

	"golang.org/x/time/rate"

	"github.com/idpsync/idpsync/internal/idpclient"
)

const (
	// DefaultAdminPathPrefix is where ZeroID mounts its admin routes.
	DefaultAdminPathPrefix = "/api/v1"
	// MaxPageSize is the largest identities page ZeroID serves.
	MaxPageSize = 100
	// DefaultUserID is sent as X-User-ID (ZeroID's audit actor) when Config.UserID is empty.
	DefaultUserID = "idpsync"
)

// Config configures a Client.
type Config struct {
	// BaseURL is the ZeroID server, e.g. "https://zeroid.internal:8899". Required.
	BaseURL string
	// AdminPathPrefix is the prefix of admin routes. Defaults to DefaultAdminPathPrefix.
	AdminPathPrefix string
	// AccountID and ProjectID scope admin calls (X-Account-ID, X-Project-ID). Required.
	AccountID, ProjectID string
	// UserID is the audit actor sent as X-User-ID. Defaults to DefaultUserID.
	UserID string
	// AdminToken, when set, is sent as a bearer token on admin calls (for an AdminAuth hook or a
	// gateway in front of them). Defaults to none.
	AdminToken string
	// APIKey is the "zid_sk_…" key IssueToken exchanges when its params carry none.
	APIKey string
	// HTTPClient sends the requests. Defaults to a client with a 30 s timeout.
	HTTPClient *http.Client
	// UserAgent is sent on every request. Defaults to idpclient.DefaultUserAgent.
	UserAgent string
	// Limiter is a client-side rate limit. Defaults to none; ZeroID has no rate limiting of its
	// own.
	Limiter *rate.Limiter
	// Retry is the retry policy for reads and idempotent calls. Defaults to
	// idpclient.RetryPolicy's defaults.
	Retry idpclient.RetryPolicy
	// PageSize is the limit the identities iterator asks for. Defaults to MaxPageSize.
	PageSize int
	// Logger receives debug records of retries. Defaults to discarding them.
	Logger *slog.Logger
}

func (c Config) validate() error {
	switch {
	case c.BaseURL == "":
		return errors.New("zeroid: BaseURL is empty; set it to the ZeroID server's URL")
	case c.AccountID == "" || c.ProjectID == "":
		return errors.New("zeroid: AccountID and ProjectID are required; they scope every admin call (X-Account-ID, X-Project-ID)")
	case c.AdminPathPrefix != "" && !strings.HasPrefix(c.AdminPathPrefix, "/"):
		return errors.New("zeroid: AdminPathPrefix must start with a slash, e.g. /api/v1")
	case c.PageSize < 0:
		return errors.New("zeroid: PageSize is negative; use 0 for the default of 100")
	}
	return nil
}

// Client calls ZeroID. It is safe for concurrent use.
type Client struct {
	t        *idpclient.Transport
	prefix   string
	apiKey   string
	pageSize int
}

// New validates cfg and returns a Client.
func New(cfg Config) (*Client, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	h := http.Header{}
	h.Set("X-Account-ID", cfg.AccountID)
	h.Set("X-Project-ID", cfg.ProjectID)
	h.Set("X-User-ID", cmp.Or(cfg.UserID, DefaultUserID))
	var auth idpclient.Authenticator
	if cfg.AdminToken != "" {
		auth = idpclient.BearerToken(cfg.AdminToken)
	}
	t, err := idpclient.NewTransport(idpclient.Config{
		Provider:         string(Kind),
		BaseURL:          cfg.BaseURL,
		HTTPClient:       cfg.HTTPClient,
		UserAgent:        cfg.UserAgent,
		Auth:             auth,
		Header:           h,
		Limiter:          cfg.Limiter,
		Retry:            cfg.Retry,
		DecodeErrorFunc:  decodeError,
		RequestIDHeaders: []string{"X-Request-Id"},
		Logger:           cfg.Logger,
	})
	if err != nil {
		return nil, fmt.Errorf("zeroid: %w", err)
	}
	return &Client{t: t, prefix: strings.TrimSuffix(cmp.Or(cfg.AdminPathPrefix, DefaultAdminPathPrefix), "/"),
		apiKey: cfg.APIKey, pageSize: idpclient.ClampPageSize(cfg.PageSize, MaxPageSize)}, nil
}

// zeroidError covers ZeroID's three error shapes: RFC 9457 problem details (Huma routes), the
// {"error":{…}} envelope (raw routes) and OAuth's {"error","error_description"}.
type zeroidError struct {
	Title  string `json:"title"`
	Detail string `json:"detail"`
	Errors []struct {
		Message  string `json:"message"`
		Location string `json:"location"`
	} `json:"errors"`
	Error            json.RawMessage `json:"error"`
	ErrorDescription string          `json:"error_description"`
}

func decodeError(_ int, _ http.Header, body []byte) *idpclient.APIError {
	var ze zeroidError
	if json.Unmarshal(body, &ze) != nil {
		return &idpclient.APIError{}
	}
	e := &idpclient.APIError{Recognized: ze.Title != "" || len(ze.Error) > 0}
	if len(ze.Error) > 0 && ze.Error[0] == '{' {
		var env struct {
			InternalCode string `json:"internalCode"`
			Message      string `json:"message"`
			RequestID    string `json:"requestId"`
		}
		_ = json.Unmarshal(ze.Error, &env)
		e.Code, e.Message, e.RequestID = env.InternalCode, env.Message, env.RequestID
		return e
	}
	if len(ze.Error) > 0 {
		var code string
		_ = json.Unmarshal(ze.Error, &code)
		e.Code, e.Message = code, cmp.Or(ze.ErrorDescription, code)
		return e
	}
	e.Message = cmp.Or(ze.Detail, ze.Title)
	for _, fe := range ze.Errors {
		e.Fields = append(e.Fields, idpclient.FieldError{Field: fe.Location, Message: fe.Message})
	}
	return e
}

// AccessToken is an issued token. Never log AccessToken.
type AccessToken struct {
	AccessToken string `json:"access_token"`
	TokenType   string `json:"token_type"`
	ExpiresIn   int64  `json:"expires_in"`
	Scope       string `json:"scope,omitempty"`
	JTI         string `json:"jti,omitempty"`
	AccountID   string `json:"account_id,omitempty"`
	ProjectID   string `json:"project_id,omitempty"`
	ExternalID  string `json:"external_id,omitempty"`
}

// IssueTokenParams asks for a token with the api_key grant.
type IssueTokenParams struct {
	// APIKey is the "zid_sk_…" key. Defaults to Config.APIKey.
	APIKey string
	// Scope is the space-separated scopes to request; empty asks for the key's defaults.
	Scope string
}

// IssueToken exchanges an API key for an access token (POST /oauth2/token, grant api_key). Each
// call issues a new credential, so it is not retried on 5xx.
func (c *Client) IssueToken(ctx context.Context, params *IssueTokenParams) (*AccessToken, error) {
	key := c.apiKey
	scope := ""
	if params != nil {
		key, scope = cmp.Or(params.APIKey, key), params.Scope
	}
	if key == "" {
		return nil, fmt.Errorf("issuing token: no API key; set Config.APIKey or IssueTokenParams.APIKey: %w", idpclient.ErrValidation)
	}
	body := map[string]string{"grant_type": "api_key", "api_key": key}
	if scope != "" {
		body["scope"] = scope
	}
	var out AccessToken
	if err := c.t.Do(ctx, &idpclient.Request{Method: http.MethodPost, Path: "/oauth2/token", JSON: body, NoAuth: true}, &out); err != nil {
		return nil, fmt.Errorf("issuing token: %w", err)
	}
	return &out, nil
}

// Introspection is RFC 7662's answer. Active is false for revoked, expired or unknown tokens.
type Introspection struct {
	Active    bool   `json:"active"`
	Sub       string `json:"sub,omitempty"`
	ClientID  string `json:"client_id,omitempty"`
	Scope     string `json:"scope,omitempty"`
	Exp       int64  `json:"exp,omitempty"`
	Iat       int64  `json:"iat,omitempty"`
	JTI       string `json:"jti,omitempty"`
	TokenType string `json:"token_type,omitempty"`
	AccountID string `json:"account_id,omitempty"`
	ProjectID string `json:"project_id,omitempty"`

	// Raw is the answer's JSON as received.
	Raw json.RawMessage `json:"-"`
}

// UnmarshalJSON decodes an introspection answer and keeps its raw JSON.
func (i *Introspection) UnmarshalJSON(b []byte) error {
	type plain Introspection
	if err := json.Unmarshal(b, (*plain)(i)); err != nil {
		return err
	}
	i.Raw = bytes.Clone(b)
	return nil
}

// IntrospectToken asks whether a token is still active (POST /oauth2/token/introspect).
func (c *Client) IntrospectToken(ctx context.Context, token string) (*Introspection, error) {
	var out Introspection
	req := &idpclient.Request{Method: http.MethodPost, Path: "/oauth2/token/introspect", JSON: map[string]string{"token": token}, Idempotent: true, NoAuth: true}
	if err := c.t.Do(ctx, req, &out); err != nil {
		return nil, fmt.Errorf("introspecting token: %w", err)
	}
	return &out, nil
}

// RevokeToken revokes a token (RFC 7009, POST /oauth2/token/revoke). Revocation is idempotent, so
// the call is retried like a read; unknown tokens succeed too.
func (c *Client) RevokeToken(ctx context.Context, token string) error {
	var out struct {
		Revoked bool `json:"revoked"`
	}
	req := &idpclient.Request{Method: http.MethodPost, Path: "/oauth2/token/revoke", JSON: map[string]string{"token": token}, Idempotent: true, NoAuth: true}
	if err := c.t.Do(ctx, req, &out); err != nil {
		return fmt.Errorf("revoking token: %w", err)
	}
	return nil
}

// Signal types of CAE signals.
const (
	SignalCredentialChange  = "credential_change"
	SignalSessionRevoked    = "session_revoked"
	SignalIPChange          = "ip_change"
	SignalAnomalousBehavior = "anomalous_behavior"
	SignalPolicyViolation   = "policy_violation"
	SignalRetirement        = "retirement"
	SignalOwnerChange       = "owner_change"
	SignalIdentityExpired   = "identity_expired"
)

// Signal severities. High and critical revoke every active credential of the identity.
const (
	SeverityLow      = "low"
	SeverityMedium   = "medium"
	SeverityHigh     = "high"
	SeverityCritical = "critical"
)

// IngestSignalParams is a CAE signal.
type IngestSignalParams struct {
	// IdentityID is the identity the signal is about (a UUID); empty for tenant-wide signals.
	IdentityID string `json:"identity_id,omitempty"`
	// SignalType is one of the Signal* constants. Required.
	SignalType string `json:"signal_type"`
	// Severity is one of the Severity* constants. Defaults to low (ZeroID's default).
	Severity string `json:"severity,omitempty"`
	// Source names the sender. Defaults to "idpsync".
	Source string `json:"source"`
	// Payload is free-form context, e.g. {"reason": "user banned in clerk"}.
	Payload map[string]any `json:"payload,omitempty"`
}

// Signal is an ingested CAE signal.
type Signal struct {
	ID          string          `json:"id"`
	AccountID   string          `json:"account_id"`
	ProjectID   string          `json:"project_id"`
	IdentityID  string          `json:"identity_id,omitempty"`
	SignalType  string          `json:"signal_type"`
	Severity    string          `json:"severity"`
	Source      string          `json:"source"`
	Payload     json.RawMessage `json:"payload,omitempty"`
	ProcessedAt *time.Time      `json:"processed_at,omitempty"`
	CreatedAt   time.Time       `json:"created_at"`

	// Raw is the signal's JSON as received.
	Raw json.RawMessage `json:"-"`
}

// UnmarshalJSON decodes a signal and keeps its raw JSON.
func (s *Signal) UnmarshalJSON(b []byte) error {
	type plain Signal
	if err := json.Unmarshal(b, (*plain)(s)); err != nil {
		return err
	}
	s.Raw = bytes.Clone(b)
	return nil
}

// IngestSignal records a CAE signal (POST {prefix}/signals/ingest). Every call stores a new
// signal, so it is not retried on 5xx.
func (c *Client) IngestSignal(ctx context.Context, params *IngestSignalParams) (*Signal, error) {
	if params == nil || params.SignalType == "" {
		return nil, fmt.Errorf("ingesting signal: SignalType is required: %w", idpclient.ErrValidation)
	}
	body := *params
	body.Source = cmp.Or(body.Source, "idpsync")
	var out Signal
	if err := c.t.Do(ctx, &idpclient.Request{Method: http.MethodPost, Path: c.prefix + "/signals/ingest", JSON: body}, &out); err != nil {
		return nil, fmt.Errorf("ingesting signal: %w", err)
	}
	return &out, nil
}

// Identity is a ZeroID identity (an agent, application, MCP server or service).
type Identity struct {
	ID           string    `json:"id"`
	AccountID    string    `json:"account_id"`
	ProjectID    string    `json:"project_id"`
	ExternalID   string    `json:"external_id"`
	Name         string    `json:"name"`
	WIMSEURI     string    `json:"wimse_uri"`
	IdentityType string    `json:"identity_type"`
	SubType      string    `json:"sub_type,omitempty"`
	TrustLevel   string    `json:"trust_level"`
	Status       string    `json:"status"`
	OwnerUserID  string    `json:"owner_user_id"`
	CreatedAt    time.Time `json:"created_at"`
	UpdatedAt    time.Time `json:"updated_at"`

	// Raw is the identity's JSON as received.
	Raw json.RawMessage `json:"-"`
}

// UnmarshalJSON decodes an identity and keeps its raw JSON.
func (i *Identity) UnmarshalJSON(b []byte) error {
	type plain Identity
	if err := json.Unmarshal(b, (*plain)(i)); err != nil {
		return err
	}
	i.Raw = bytes.Clone(b)
	return nil
}

// ListIdentitiesParams filters GET {prefix}/identities.
type ListIdentitiesParams struct {
	// Limit is the page size, 1–100. Defaults to the client's PageSize.
	Limit int
	// Offset skips that many identities.
	Offset int
	// OwnerUserID keeps the identities owned by one human user (the IdP user id).
	OwnerUserID string
	// IdentityType keeps one type: agent, application, mcp_server or service.
	IdentityType string
	// Status keeps one status: pending, active, suspended or deactivated.
	Status string
	// Search matches name or external id.
	Search string
}

// ListIdentities iterates over identities, a page at a time.
func (c *Client) ListIdentities(ctx context.Context, params *ListIdentitiesParams) iter.Seq2[Identity, error] {
	if params == nil {
		params = &ListIdentitiesParams{}
	}
	limit := idpclient.ClampPageSize(params.Limit, c.pageSize)
	q := url.Values{}
	for k, v := range map[string]string{"owner_user_id": params.OwnerUserID, "identity_type": params.IdentityType,
		"status": params.Status, "search": params.Search} {
		if v != "" {
			q.Set(k, v)
		}
	}
	return idpclient.Paginate(ctx, params.Offset, func(ctx context.Context, offset int) ([]Identity, int, bool, error) {
		page := url.Values{}
		for k, v := range q {
			page[k] = v
		}
		page.Set("limit", strconv.Itoa(limit))
		page.Set("offset", strconv.Itoa(offset))
		var out struct {
			Identities []Identity `json:"identities"`
			Total      int        `json:"total"`
		}
		if err := c.t.Do(ctx, &idpclient.Request{Method: http.MethodGet, Path: c.prefix + "/identities", Query: page}, &out); err != nil {
			return nil, 0, false, fmt.Errorf("listing identities at offset %d: %w", offset, err)
		}
		next := offset + len(out.Identities)
		return out.Identities, next, len(out.Identities) > 0 && next < out.Total, nil
	})
}

// DeactivateIdentity deactivates an identity (DELETE {prefix}/identities/{id}, a soft delete):
// ZeroID revokes its API keys and tokens, so it can mint no new token, and answers the identity,
// now "deactivated"; a second call answers the same. An identity ZeroID does not have is
// idpclient.ErrNotFound.
func (c *Client) DeactivateIdentity(ctx context.Context, id string) (*Identity, error) {
	var out Identity
	req := &idpclient.Request{Method: http.MethodDelete, Path: c.prefix + "/identities/" + idpclient.PathEscape(id), Idempotent: true,
		NotFoundMeansGone: true}
	if err := c.t.Do(ctx, req, &out); err != nil {
		return nil, fmt.Errorf("deactivating identity %s: %w", id, err)
	}
	if out.Status != "deactivated" {
		return nil, fmt.Errorf("deactivating identity %s: %w: ZeroID answered status %q", id, idpclient.ErrUnexpected, out.Status)
	}
	return &out, nil
}

// OffboardResult says what an offboarding changed.
type OffboardResult struct {
	IdentitiesDeactivated int `json:"identities_deactivated"`
	CredentialsRevoked    int `json:"credentials_revoked"`
}

// OffboardByOwner deactivates every identity owned by a human user and revokes their credentials
// (POST {prefix}/identities/offboard-by-owner). ZeroID makes it idempotent, so it is retried like
// a read; a second call reports zero changes.
func (c *Client) OffboardByOwner(ctx context.Context, ownerUserID, reason string) (*OffboardResult, error) {
	if ownerUserID == "" {
		return nil, fmt.Errorf("offboarding: ownerUserID is empty: %w", idpclient.ErrValidation)
	}
	body := map[string]string{"owner_user_id": ownerUserID}
	if reason != "" {
		body["reason"] = reason
	}
	var out OffboardResult
	req := &idpclient.Request{Method: http.MethodPost, Path: c.prefix + "/identities/offboard-by-owner", JSON: body, Idempotent: true}
	if err := c.t.Do(ctx, req, &out); err != nil {
		return nil, fmt.Errorf("offboarding owner: %w", err)
	}
	return &out, nil
}

// Health is ZeroID's health answer.
type Health struct {
	Status  string `json:"status"`
	Version string `json:"version,omitempty"`
}

// Health reports the server's health (GET /health).
func (c *Client) Health(ctx context.Context) (*Health, error) {
	var out Health
	if err := c.t.Do(ctx, &idpclient.Request{Method: http.MethodGet, Path: "/health", NoAuth: true}, &out); err != nil {
		return nil, fmt.Errorf("checking health: %w", err)
	}
	return &out, nil
}

// JWKS is a JSON Web Key Set; the keys are kept raw for a JOSE library to parse.
type JWKS struct {
	Keys []json.RawMessage `json:"keys"`
}

// JWKS returns the keys ZeroID signs tokens with (GET /.well-known/jwks.json).
func (c *Client) JWKS(ctx context.Context) (*JWKS, error) {
	var out JWKS
	if err := c.t.Do(ctx, &idpclient.Request{Method: http.MethodGet, Path: "/.well-known/jwks.json", NoAuth: true}, &out); err != nil {
		return nil, fmt.Errorf("fetching JWKS: %w", err)
	}
	return &out, nil
}
