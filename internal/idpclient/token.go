package idpclient

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"
	"time"
)

// TokenRefreshBeforeDefault is how long before its expiry a cached token is replaced.
const TokenRefreshBeforeDefault = time.Minute

// Token is an access token and when it stops working.
type Token struct {
	// AccessToken is the bearer value. Never log it.
	AccessToken string
	// Expiry is when the provider stops accepting the token; zero means it does not say.
	Expiry time.Time
}

// TokenFetchFunc obtains a new token from the provider (a token endpoint call).
type TokenFetchFunc func(ctx context.Context) (Token, error)

// TokenCache is an Authenticator and Refresher that sends a cached bearer token, fetches a new one
// shortly before the old one expires, and fetches exactly once however many goroutines need a
// token at the same time. After a 401 it drops the token that was rejected and fetches another.
type TokenCache struct {
	fetch         TokenFetchFunc
	refreshBefore time.Duration
	now           func() time.Time

	sem chan struct{} // held while fetching, so concurrent callers wait for one fetch

	mu  sync.Mutex
	tok Token
}

var (
	_ Authenticator = (*TokenCache)(nil)
	_ Refresher     = (*TokenCache)(nil)
)

// NewTokenCache returns a cache over fetch. refreshBefore defaults to TokenRefreshBeforeDefault;
// now defaults to time.Now.
func NewTokenCache(fetch TokenFetchFunc, refreshBefore time.Duration, now func() time.Time) *TokenCache {
	if refreshBefore <= 0 {
		refreshBefore = TokenRefreshBeforeDefault
	}
	if now == nil {
		now = time.Now
	}
	return &TokenCache{fetch: fetch, refreshBefore: refreshBefore, now: now, sem: make(chan struct{}, 1)}
}

func (c *TokenCache) cached() (string, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.tok.AccessToken == "" {
		return "", false
	}
	if !c.tok.Expiry.IsZero() && !c.now().Before(c.tok.Expiry.Add(-c.refreshBefore)) {
		return "", false
	}
	return c.tok.AccessToken, true
}

// Token returns a valid access token, fetching one if none is cached or the cached one is about
// to expire.
func (c *TokenCache) Token(ctx context.Context) (string, error) {
	if tok, ok := c.cached(); ok {
		return tok, nil
	}
	select {
	case c.sem <- struct{}{}:
	case <-ctx.Done():
		return "", ctx.Err()
	}
	defer func() { <-c.sem }()
	// Another caller may have fetched while we waited.
	if tok, ok := c.cached(); ok {
		return tok, nil
	}
	tok, err := c.fetch(WithOperation(ctx, OperationFetchToken))
	if err != nil {
		return "", err
	}
	if tok.AccessToken == "" {
		return "", errors.New("token endpoint returned an empty access token")
	}
	c.mu.Lock()
	c.tok = tok
	c.mu.Unlock()
	return tok.AccessToken, nil
}

// Authorize implements Authenticator.
func (c *TokenCache) Authorize(ctx context.Context, req *http.Request) error {
	tok, err := c.Token(ctx)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	return nil
}

// Refresh implements Refresher: it forgets the token req was sent with, if it is still the cached
// one, and asks for a retry.
func (c *TokenCache) Refresh(_ context.Context, req *http.Request) (bool, error) {
	used := strings.TrimPrefix(req.Header.Get("Authorization"), "Bearer ")
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.tok.AccessToken == used {
		c.tok = Token{}
	}
	return true, nil
}

// Invalidate forgets the cached token.
func (c *TokenCache) Invalidate() {
	c.mu.Lock()
	c.tok = Token{}
	c.mu.Unlock()
}
