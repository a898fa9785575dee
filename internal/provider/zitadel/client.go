package zitadel

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"golang.org/x/time/rate"

	"github.com/idpsync/idpsync/internal/idpclient"
)

// MaxPageSize is Zitadel's default MaxQueryLimit; from v4.20 larger limits are rejected.
const MaxPageSize = 1000

// Config configures a Client. Set exactly one authentication method: PersonalAccessToken,
// ClientID with ClientSecret, or KeyFile.
type Config struct {
	// BaseURL is the instance's URL, e.g. "https://my-instance.zitadel.cloud". Required.
	BaseURL string
	// Issuer is the instance's OIDC issuer, used as the audience of private key JWT assertions.
	// Defaults to BaseURL.
	Issuer string
	// PersonalAccessToken is a service user's PAT, sent as a bearer token on every request.
	PersonalAccessToken string
	// ClientID and ClientSecret are a service user's client credentials, exchanged at
	// /oauth/v2/token for an access token.
	ClientID, ClientSecret string
	// KeyFile is the JSON key file of a service user (type "serviceaccount"), used for the JWT
	// profile grant at /oauth/v2/token.
	KeyFile []byte
	// Scopes are requested with token-endpoint methods. Defaults to "openid" plus
	// ScopeZitadelAPI, which Zitadel's API requires in the audience.
	Scopes []string
	// TokenRefreshBefore is how long before expiry a cached access token is replaced. Defaults to
	// one minute.
	TokenRefreshBefore time.Duration
	// OrganizationID, when set, is sent as x-zitadel-orgid (the organization context of the
	// calls). Defaults to none: the service user's own organization.
	OrganizationID string
	// HTTPClient sends the requests. Defaults to a client with a 30 s timeout.
	HTTPClient *http.Client
	// UserAgent is sent on every request. Defaults to idpclient.DefaultUserAgent.
	UserAgent string
	// Limiter is a client-side rate limit. Defaults to none; Zitadel Cloud limits by IP
	// (documented as 10 requests per second for the management APIs), self-hosted instances
	// have no limit unless configured.
	Limiter *rate.Limiter
	// Retry is the retry policy for reads. Defaults to idpclient.RetryPolicy's defaults.
	Retry idpclient.RetryPolicy
	// PageSize is the limit list iterators ask for. Defaults to MaxPageSize; values above it are
	// lowered to it.
	PageSize int
	// Logger receives debug records of retries. Defaults to discarding them.
	Logger *slog.Logger
	// NowFunc returns the current time, for token expiry and assertions. Defaults to time.Now.
	NowFunc func() time.Time
}

func (c Config) validate() error {
	methods := 0
	if c.PersonalAccessToken != "" {
		methods++
	}
	if c.ClientID != "" || c.ClientSecret != "" {
		methods++
		if c.ClientID == "" || c.ClientSecret == "" {
			return errors.New("zitadel: client credentials need both ClientID and ClientSecret; set the missing one from the service user's Actions > Generate Client Secret dialog")
		}
	}
	if len(c.KeyFile) > 0 {
		methods++
	}
	switch {
	case c.BaseURL == "":
		return errors.New("zitadel: BaseURL is empty; set it to the instance URL, e.g. https://my-instance.zitadel.cloud")
	case methods == 0:
		return errors.New("zitadel: no credentials; set PersonalAccessToken, ClientID and ClientSecret, or KeyFile")
	case methods > 1:
		return errors.New("zitadel: more than one authentication method is set; keep only one of PersonalAccessToken, ClientID/ClientSecret and KeyFile")
	case c.PageSize < 0:
		return errors.New("zitadel: PageSize is negative; use 0 for the default of 1000")
	}
	return nil
}

// Client calls Zitadel's v2 API. It is safe for concurrent use.
type Client struct {
	t        *idpclient.Transport
	tokens   *idpclient.TokenCache // nil with a PAT
	pageSize int
}

// New validates cfg and returns a Client. A token method fetches its first token on first use.
func New(cfg Config) (*Client, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	now := cfg.NowFunc
	if now == nil {
		now = time.Now
	}
	scopes := cfg.Scopes
	if len(scopes) == 0 {
		scopes = []string{"openid", ScopeZitadelAPI}
	}
	h := http.Header{}
	if cfg.OrganizationID != "" {
		h.Set("x-zitadel-orgid", cfg.OrganizationID)
	}
	base := idpclient.Config{
		Provider:         string(Kind),
		BaseURL:          cfg.BaseURL,
		HTTPClient:       cfg.HTTPClient,
		UserAgent:        cfg.UserAgent,
		Header:           h,
		Limiter:          cfg.Limiter,
		Retry:            cfg.Retry,
		DecodeErrorFunc:  decodeError,
		RequestIDHeaders: []string{"X-Request-Id", "X-Zitadel-Request-Id"},
		Logger:           cfg.Logger,
	}
	c := &Client{pageSize: idpclient.ClampPageSize(cfg.PageSize, MaxPageSize)}
	var form func(time.Time) (url.Values, http.Header, error)
	switch {
	case cfg.PersonalAccessToken != "":
		base.Auth = idpclient.BearerToken(cfg.PersonalAccessToken)
	case cfg.ClientID != "":
		id, secret := cfg.ClientID, cfg.ClientSecret
		form = func(time.Time) (url.Values, http.Header, error) {
			h := http.Header{}
			// RFC 6749 §2.3.1: form-encode the id and secret before Basic encoding.
			r := &http.Request{Header: h}
			r.SetBasicAuth(url.QueryEscape(id), url.QueryEscape(secret))
			return url.Values{"grant_type": {"client_credentials"}, "scope": {strings.Join(scopes, " ")}}, h, nil
		}
	default:
		kf, err := ParseKeyFile(cfg.KeyFile)
		if err != nil {
			return nil, err
		}
		aud := cmp.Or(cfg.Issuer, strings.TrimSuffix(cfg.BaseURL, "/"))
		form = func(at time.Time) (url.Values, http.Header, error) {
			assertion, err := kf.SignAssertion(aud, at)
			if err != nil {
				return nil, nil, err
			}
			return url.Values{"grant_type": {JWTBearerGrant}, "scope": {strings.Join(scopes, " ")}, "assertion": {assertion}}, nil, nil
		}
	}
	t, err := idpclient.NewTransport(base)
	if err != nil {
		return nil, fmt.Errorf("zitadel: %w", err)
	}
	if form != nil {
		// The cache fetches through the transport itself (without auth), so token requests get
		// the same retries, rate limit and error decoding as API calls.
		c.tokens = idpclient.NewTokenCache(tokenFetcher(t, form, now), cfg.TokenRefreshBefore, now)
		base.Auth = c.tokens
		if t, err = idpclient.NewTransport(base); err != nil {
			return nil, fmt.Errorf("zitadel: %w", err)
		}
	}
	c.t = t
	return c, nil
}

// zitadelError is the REST gateway's error body (a google.rpc.Status with ErrorDetail), or an
// OAuth error from the token endpoint.
type zitadelError struct {
	Code    json.RawMessage `json:"code"`
	Message string          `json:"message"`
	Details []struct {
		Type    string `json:"@type"`
		ID      string `json:"id"`
		Message string `json:"message"`
	} `json:"details"`
	Error            string `json:"error"`
	ErrorDescription string `json:"error_description"`
}

var grpcCodes = map[string]string{
	"1": "canceled", "2": "unknown", "3": "invalid_argument", "4": "deadline_exceeded", "5": "not_found",
	"6": "already_exists", "7": "permission_denied", "8": "resource_exhausted", "9": "failed_precondition",
	"10": "aborted", "11": "out_of_range", "12": "unimplemented", "13": "internal", "14": "unavailable",
	"15": "data_loss", "16": "unauthenticated",
}

func decodeError(_ int, _ http.Header, body []byte) *idpclient.APIError {
	var ze zitadelError
	if json.Unmarshal(body, &ze) != nil {
		return &idpclient.APIError{}
	}
	if ze.Error != "" {
		return &idpclient.APIError{Code: ze.Error, Message: cmp.Or(ze.ErrorDescription, ze.Error), Recognized: true}
	}
	e := &idpclient.APIError{Message: ze.Message}
	code := strings.Trim(string(ze.Code), `"`)
	if name, ok := grpcCodes[code]; ok {
		e.Code, e.Recognized = name, true
	} else if code != "" && code != "null" {
		e.Code, e.Recognized = code, true
	}
	for _, d := range ze.Details {
		if d.ID != "" {
			// The ErrorDetail id ("COMMAND-2M0fs") pinpoints the failure; prefer it.
			e.Code = d.ID
			break
		}
	}
	return e
}

// ListParams are the pagination parameters of Zitadel's lists.
type ListParams struct {
	// Limit is the page size, 1–1000. Iterators default to the client's PageSize.
	Limit int
	// Offset skips that many items.
	Offset int
	// Descending sorts newest first; the default is oldest first, which keeps offsets stable
	// while items are created during a walk.
	Descending bool
}

func (c *Client) query(p ListParams, offset int) (listQuery, int) {
	limit := idpclient.ClampPageSize(p.Limit, c.pageSize)
	return listQuery{Offset: Uint64(offset), Limit: uint32(limit), Asc: !p.Descending}, limit
}

// path returns the URL path of an API path, with the base URL's own path, as sent.
func (c *Client) path(p string) string {
	u, err := c.t.URL(p)
	if err != nil {
		return p
	}
	return u.EscapedPath()
}
