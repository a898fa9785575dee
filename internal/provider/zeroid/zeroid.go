package zeroid

import (
	"bytes"
	"cmp"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"iter"
	"log/slog"
	"maps"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/time/rate"

	"github.com/idpsync/idpsync/internal/idpclient"
)

const (
	// DefaultAdminPathPrefix is where ZeroID mounts its admin routes.
	DefaultAdminPathPrefix = "/api/v1"
	// MaxPageSize is the largest identities page ZeroID serves; it answers a larger limit with a
	// page of 20.
	MaxPageSize = 100
	// DefaultUserID is the audit actor sent as X-User-ID when Config.UserID is empty.
	DefaultUserID = "idpsync"
)

// Client authentication methods for token introspection and revocation (RFC 6749 §2.3.1).
const (
	// ClientSecretBasic sends the client id and secret in an HTTP Basic Authorization header,
	// each form-urlencoded.
	ClientSecretBasic = "client_secret_basic"
	// ClientSecretPost sends client_id and client_secret in the form body.
	ClientSecretPost = "client_secret_post"
)

// Config configures a Client.
type Config struct {
	// BaseURL is the ZeroID server, usually at a host root, e.g. "https://zeroid.internal:8899";
	// a path prefix (a gateway mounting ZeroID under /zeroid) works too. Required.
	BaseURL string
	// AdminPathPrefix is the prefix of admin routes. Defaults to DefaultAdminPathPrefix.
	AdminPathPrefix string
	// AccountID and ProjectID scope admin calls (X-Account-ID, X-Project-ID). Required.
	AccountID, ProjectID string
	// UserID is the audit actor sent as X-User-ID: ZeroID stamps it as created_by and modified_by
	// of what idpsync changes. It must not start with "system:", a prefix ZeroID reserves for its
	// own workers and drops silently. Defaults to DefaultUserID.
	UserID string
	// ClientID and ClientSecret are the OAuth client that authenticates token introspection and
	// revocation. ZeroID in production refuses those calls without client authentication; a
	// public client has an id and no secret. Defaults to none (anonymous calls, which only a
	// ZeroID with allow_unauthenticated_token_inspection serves).
	ClientID, ClientSecret string
	// ClientAuthMethod is ClientSecretBasic or ClientSecretPost; the client never uses both in
	// one request. Defaults to ClientSecretBasic.
	ClientAuthMethod string
	// AdminToken, when set, is sent as a bearer token on admin calls, for a gateway in front of
	// them; ZeroID itself authenticates no admin call and ignores it. Defaults to none.
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

// systemActor reports whether an actor is one ZeroID drops: "system:" in any case.
func systemActor(s string) bool { return strings.HasPrefix(strings.ToLower(s), "system:") }

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
	case systemActor(c.UserID):
		return errors.New("zeroid: UserID starts with \"system:\", which ZeroID reserves for its own workers and drops, leaving idpsync's changes unattributed; use another actor, e.g. \"idpsync\"")
	case c.ClientSecret != "" && c.ClientID == "":
		return errors.New("zeroid: ClientSecret is set without ClientID; set the OAuth client's id too")
	case c.ClientAuthMethod != "" && c.ClientAuthMethod != ClientSecretBasic && c.ClientAuthMethod != ClientSecretPost:
		return fmt.Errorf("zeroid: ClientAuthMethod %q is not supported; use %s or %s", c.ClientAuthMethod, ClientSecretBasic, ClientSecretPost)
	}
	return nil
}

// Client calls ZeroID. It is safe for concurrent use.
type Client struct {
	t            *idpclient.Transport
	prefix       string
	apiKey       string
	pageSize     int
	clientID     string
	clientSecret string
	authMethod   string
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
		apiKey: cfg.APIKey, pageSize: idpclient.ClampPageSize(cfg.PageSize, MaxPageSize), clientID: cfg.ClientID,
		clientSecret: cfg.ClientSecret, authMethod: cmp.Or(cfg.ClientAuthMethod, ClientSecretBasic)}, nil
}

// oauthErrorCodes are the RFC 6749 and RFC 7009 error codes ZeroID's OAuth routes answer with.
var oauthErrorCodes = []string{"invalid_request", "invalid_client", "invalid_grant", "unauthorized_client",
	"unsupported_grant_type", "invalid_scope", "invalid_token", "unsupported_token_type", "access_denied",
	"server_error", "temporarily_unavailable", "invalid_dpop_proof", "authorization_pending", "slow_down", "expired_token"}

// decodeError reads ZeroID's error shapes and recognizes only them:
//   - a Huma problem (application/problem+json with a title and the answer's status), from every
//     operation, a resource 404 included;
//   - the middleware envelope (application/json, {"error":{"code":<status>,"internalCode":…}}),
//     from the Content-Type gate and the raw routes;
//   - an OAuth error (application/json, {"error":<RFC 6749 code>,"error_description"}).
//
// Anything else — a route 404's "404 page not found" in text/plain, a 405 without body, a
// gateway's page — is not recognized, so a 404 is never taken for "already gone".
func decodeError(status int, header http.Header, body []byte) *idpclient.APIError {
	mt, _, _ := mime.ParseMediaType(header.Get("Content-Type"))
	switch mt {
	case "application/problem+json":
		var p struct {
			Title  string `json:"title"`
			Status int    `json:"status"`
			Detail string `json:"detail"`
			Errors []struct {
				Message  string `json:"message"`
				Location string `json:"location"`
			} `json:"errors"`
		}
		if json.Unmarshal(body, &p) != nil || p.Title == "" || p.Status != status {
			break
		}
		e := &idpclient.APIError{Recognized: true, Message: cmp.Or(p.Detail, p.Title)}
		for _, fe := range p.Errors {
			e.Fields = append(e.Fields, idpclient.FieldError{Field: fe.Location, Message: fe.Message})
		}
		return e
	case "application/json":
		var o struct {
			Error            json.RawMessage `json:"error"`
			ErrorDescription string          `json:"error_description"`
		}
		if json.Unmarshal(body, &o) != nil || len(o.Error) == 0 {
			break
		}
		var env struct {
			Code         int    `json:"code"`
			InternalCode string `json:"internalCode"`
			Message      string `json:"message"`
			RequestID    string `json:"requestId"`
		}
		if json.Unmarshal(o.Error, &env) == nil && env.Code == status && env.Message != "" {
			return &idpclient.APIError{Recognized: true, Code: env.InternalCode, Message: env.Message, RequestID: env.RequestID}
		}
		var code string
		if json.Unmarshal(o.Error, &code) == nil && slices.Contains(oauthErrorCodes, code) {
			return &idpclient.APIError{Recognized: true, Code: code, Message: cmp.Or(o.ErrorDescription, code)}
		}
	}
	return &idpclient.APIError{}
}

// AccessToken is an issued token. Never log AccessToken.
type AccessToken struct {
	AccessToken string `json:"access_token"`
	TokenType   string `json:"token_type"`
	ExpiresIn   int64  `json:"expires_in"`
	Scope       string `json:"scope,omitempty"`
	JTI         string `json:"jti,omitempty"`
	IssuedAt    int64  `json:"iat,omitempty"`
	AccountID   string `json:"account_id,omitempty"`
	ProjectID   string `json:"project_id,omitempty"`
	ExternalID  string `json:"external_id,omitempty"`
	// UserID is the audit actor that created the API key, when there was one.
	UserID string `json:"user_id,omitempty"`
}

// IssueTokenParams asks for a token with the api_key grant.
type IssueTokenParams struct {
	// APIKey is the "zid_sk_…" key. Defaults to Config.APIKey.
	APIKey string
	// Scope is the space-separated scopes to request; empty asks for the key's defaults.
	Scope string
}

// IssueToken exchanges an API key for an access token (POST /oauth2/token, grant api_key) for the
// key's identity. ZeroID refuses a revoked or unknown key, and the key of an identity that is not
// active, with invalid_grant (idpclient.ErrValidation). Each call issues a new credential, so it
// is not retried on 5xx.
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
	if out.AccessToken == "" {
		return nil, fmt.Errorf("issuing token: %w: the answer carries no access_token", idpclient.ErrUnexpected)
	}
	return &out, nil
}

// Introspection is ZeroID's RFC 7662 answer. For a revoked, expired or unknown token only Active
// (false) is set.
type Introspection struct {
	Active       bool   `json:"active"`
	Sub          string `json:"sub,omitempty"`
	Iss          string `json:"iss,omitempty"`
	JTI          string `json:"jti,omitempty"`
	Iat          int64  `json:"iat,omitempty"`
	Exp          int64  `json:"exp,omitempty"`
	Scope        string `json:"scope,omitempty"`
	AccountID    string `json:"account_id,omitempty"`
	ProjectID    string `json:"project_id,omitempty"`
	ExternalID   string `json:"external_id,omitempty"`
	IdentityType string `json:"identity_type,omitempty"`
	TrustLevel   string `json:"trust_level,omitempty"`
	// Act is the actor the token acts for (the API key's creator), when there is one.
	Act *struct {
		Sub string `json:"sub"`
	} `json:"act,omitempty"`

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

// inspection builds an introspection or revocation request (RFC 7662, RFC 7009: a form body)
// with the client's authentication: HTTP Basic (client_secret_basic) or body credentials
// (client_secret_post), never both; a public client sends its client_id alone; without a client
// the call is anonymous.
func (c *Client) inspection(path, token string) *idpclient.Request {
	form := url.Values{"token": {token}}
	req := &idpclient.Request{Method: http.MethodPost, Path: path, Form: form, Idempotent: true, NoAuth: true}
	switch {
	case c.clientID == "":
	case c.clientSecret == "":
		form.Set("client_id", c.clientID)
	case c.authMethod == ClientSecretPost:
		form.Set("client_id", c.clientID)
		form.Set("client_secret", c.clientSecret)
	default:
		creds := url.QueryEscape(c.clientID) + ":" + url.QueryEscape(c.clientSecret)
		req.Header = http.Header{"Authorization": {"Basic " + base64.StdEncoding.EncodeToString([]byte(creds))}}
	}
	return req
}

// IntrospectToken asks whether a token is still active (POST /oauth2/token/introspect), with the
// client authentication of Config. A ZeroID that requires client authentication answers an
// anonymous or wrongly authenticated call with idpclient.ErrUnauthorized.
func (c *Client) IntrospectToken(ctx context.Context, token string) (*Introspection, error) {
	var out Introspection
	if err := c.t.Do(ctx, c.inspection("/oauth2/token/introspect", token), &out); err != nil {
		return nil, fmt.Errorf("introspecting token: %w", err)
	}
	return &out, nil
}

// RevokeToken revokes an access token (RFC 7009, POST /oauth2/token/revoke), with the client
// authentication of Config. Revocation is idempotent, so the call is retried like a read; an
// unknown token succeeds too. It revokes that token only: the identity's API key goes on minting.
func (c *Client) RevokeToken(ctx context.Context, token string) error {
	var out struct {
		Revoked bool `json:"revoked"`
	}
	if err := c.t.Do(ctx, c.inspection("/oauth2/token/revoke", token), &out); err != nil {
		return fmt.Errorf("revoking token: %w", err)
	}
	if !out.Revoked {
		return fmt.Errorf("revoking token: %w: ZeroID answered revoked false", idpclient.ErrUnexpected)
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

// Signal severities. High and critical make ZeroID revoke the tokens the identity holds at that
// moment; nothing else.
const (
	SeverityLow      = "low"
	SeverityMedium   = "medium"
	SeverityHigh     = "high"
	SeverityCritical = "critical"
)

// IngestSignalParams is a CAE signal.
type IngestSignalParams struct {
	// IdentityID is the identity the signal is about (a UUID). Required: ZeroID stores signals
	// only for identities it has, and answers 500 for any other.
	IdentityID string `json:"identity_id"`
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
	ID         string          `json:"id"`
	AccountID  string          `json:"account_id"`
	ProjectID  string          `json:"project_id"`
	IdentityID string          `json:"identity_id,omitempty"`
	SignalType string          `json:"signal_type"`
	Severity   string          `json:"severity"`
	Source     string          `json:"source"`
	Payload    json.RawMessage `json:"payload,omitempty"`
	CreatedAt  time.Time       `json:"created_at"`

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

// IngestSignal records a CAE signal about one identity (POST {prefix}/signals/ingest). A high or
// critical one makes ZeroID revoke the tokens the identity holds now, when the identity is in the
// client's tenant; the identity stays active and its API keys go on minting new tokens. Every
// call stores a new signal, so it is not retried on 5xx.
func (c *Client) IngestSignal(ctx context.Context, params *IngestSignalParams) (*Signal, error) {
	switch {
	case params == nil || params.SignalType == "":
		return nil, fmt.Errorf("ingesting signal: SignalType is required: %w", idpclient.ErrValidation)
	case !isUUID(params.IdentityID):
		return nil, fmt.Errorf("ingesting signal: IdentityID %q is not a UUID: %w", params.IdentityID, idpclient.ErrValidation)
	}
	body := *params
	body.Source = cmp.Or(body.Source, "idpsync")
	var out Signal
	if err := c.t.Do(ctx, &idpclient.Request{Method: http.MethodPost, Path: c.prefix + "/signals/ingest", JSON: body}, &out); err != nil {
		return nil, fmt.Errorf("ingesting signal: %w", err)
	}
	return &out, nil
}

// isUUID reports whether s is a UUID in canonical text form, as ZeroID's identity ids are.
func isUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i, r := range s {
		switch {
		case i == 8 || i == 13 || i == 18 || i == 23:
			if r != '-' {
				return false
			}
		case !(r >= '0' && r <= '9' || r >= 'a' && r <= 'f' || r >= 'A' && r <= 'F'):
			return false
		}
	}
	return true
}

// Identity is a ZeroID identity (an agent, application, MCP server or service).
type Identity struct {
	ID           string `json:"id"`
	AccountID    string `json:"account_id"`
	ProjectID    string `json:"project_id"`
	ExternalID   string `json:"external_id"`
	Name         string `json:"name"`
	WIMSEURI     string `json:"wimse_uri"`
	IdentityType string `json:"identity_type"`
	SubType      string `json:"sub_type,omitempty"`
	TrustLevel   string `json:"trust_level"`
	// Status is pending, discovered, active, suspended, deactivated or expired.
	Status      string `json:"status"`
	Origin      string `json:"origin,omitempty"`
	OwnerUserID string `json:"owner_user_id"`
	// CreatedBy and ModifiedBy are the audit actors of the creation and of the last change; empty
	// when the change had none.
	CreatedBy  string    `json:"created_by,omitempty"`
	ModifiedBy string    `json:"modified_by,omitempty"`
	CreatedAt  time.Time `json:"created_at"`
	UpdatedAt  time.Time `json:"updated_at"`

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
	// Status keeps the identities in one status or in a comma-separated list of them
	// ("active,suspended"). Without it ZeroID lists every status but discovered.
	Status string
}

// ListIdentities iterates over the tenant's identities, newest first, a page at a time.
func (c *Client) ListIdentities(ctx context.Context, params *ListIdentitiesParams) iter.Seq2[Identity, error] {
	if params == nil {
		params = &ListIdentitiesParams{}
	}
	limit := idpclient.ClampPageSize(params.Limit, c.pageSize)
	q := url.Values{}
	if params.OwnerUserID != "" {
		q.Set("owner_user_id", params.OwnerUserID)
	}
	if params.Status != "" {
		q.Set("status", params.Status)
	}
	return idpclient.Paginate(ctx, params.Offset, func(ctx context.Context, offset int) ([]Identity, int, bool, error) {
		page := maps.Clone(q)
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

// DeactivateIdentity deactivates one identity (DELETE {prefix}/identities/{id}, ZeroID's soft
// delete): ZeroID revokes its API keys and active tokens, so it can mint no new token, emits a
// high "retirement" signal, and answers the identity, now "deactivated"; a second call answers
// the same and changes nothing. An identity the tenant does not have is idpclient.ErrNotFound;
// an id that is not a UUID is refused before any call (ZeroID would answer 500).
func (c *Client) DeactivateIdentity(ctx context.Context, id string) (*Identity, error) {
	if !isUUID(id) {
		return nil, fmt.Errorf("deactivating identity %q: not a UUID: %w", id, idpclient.ErrValidation)
	}
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
	// IdentitiesDeactivated counts the identities this call deactivated (0 when a previous call
	// already did).
	IdentitiesDeactivated int `json:"identities_deactivated"`
	// CredentialsRevoked counts only the tokens ZeroID's final owner sweep caught; the
	// deactivations revoke the rest, so it is about 0.
	CredentialsRevoked int `json:"credentials_revoked"`
}

// OffboardByOwner deactivates every identity a human owns in the client's account, across all its
// projects and suspended ones included, which revokes their API keys and tokens (POST
// {prefix}/identities/offboard-by-owner). reason is recorded on the revocations. ZeroID makes it
// idempotent, so it is retried like a read; a second call reports zero changes. An owner with
// leading or trailing spaces is refused (ZeroID would answer 400), an empty one too.
func (c *Client) OffboardByOwner(ctx context.Context, ownerUserID, reason string) (*OffboardResult, error) {
	if ownerUserID == "" || strings.TrimSpace(ownerUserID) != ownerUserID {
		return nil, fmt.Errorf("offboarding: owner %q is empty or padded with spaces: %w", ownerUserID, idpclient.ErrValidation)
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
