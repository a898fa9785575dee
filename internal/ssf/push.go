package ssf

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// maxPushAnswer bounds what is read of a receiver's answer.
const maxPushAnswer = 64 << 10

// PushError is a push that did not deliver: the receiver's refusal, or a failure to reach it.
// Its message never holds the SET, the authorization header or the endpoint's query.
type PushError struct {
	// Status is the receiver's HTTP status; 0 when it could not be reached.
	Status int
	// Err and Description are the receiver's RFC 8935 error, when it sent one.
	Err         string
	Description string
	// Permanent tells that sending the same SET again cannot succeed: a 4xx other than 408 and
	// 429, or a redirect (not followed).
	Permanent bool
	// RetryAfter is the receiver's Retry-After with a 429 or 503; 0 when absent.
	RetryAfter time.Duration
	cause      error
}

// Error implements error.
func (e *PushError) Error() string {
	switch {
	case e.Status == 0:
		return fmt.Sprintf("pushing the SET: %v", e.cause)
	case e.Err != "":
		return fmt.Sprintf("the receiver answered %d %s: %s", e.Status, e.Err, e.Description)
	}
	return fmt.Sprintf("the receiver answered %d", e.Status)
}

// Unwrap returns the transport error, if any.
func (e *PushError) Unwrap() error { return e.cause }

// Pusher delivers SETs by push (RFC 8935).
type Pusher struct {
	client *http.Client
}

// NewPusher returns a pusher whose requests take at most timeout and never follow redirects (a
// redirect would replay the SET and its authorization header to another URL).
func NewPusher(timeout time.Duration) *Pusher {
	return &Pusher{client: &http.Client{
		Timeout: timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
		Transport: &http.Transport{
			Proxy:                 http.ProxyFromEnvironment,
			MaxIdleConnsPerHost:   32,
			IdleConnTimeout:       90 * time.Second,
			TLSHandshakeTimeout:   10 * time.Second,
			ResponseHeaderTimeout: timeout,
			ForceAttemptHTTP2:     true,
		},
	}}
}

// Push POSTs the compact SET to d's endpoint with the stream's authorization header verbatim.
// It returns nil when the receiver accepted it (2xx; RFC 8935 says 202), else a *PushError.
func (p *Pusher) Push(ctx context.Context, d Delivery, set string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, d.EndpointURL, strings.NewReader(set))
	if err != nil {
		return &PushError{Permanent: true, cause: errors.New("the stream's endpoint_url is not usable")}
	}
	req.Header.Set("Content-Type", "application/"+MediaType)
	req.Header.Set("Accept", "application/json")
	if d.AuthorizationHeader != "" {
		req.Header.Set("Authorization", d.AuthorizationHeader)
	}
	res, err := p.client.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // url.Error repeats the URL, which may carry a secret in its query
		}
		return &PushError{cause: err}
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(res.Body, maxPushAnswer))
	return classifyPush(res, body)
}

func classifyPush(res *http.Response, body []byte) error {
	s := res.StatusCode
	if s >= 200 && s < 300 {
		return nil
	}
	e := &PushError{Status: s}
	switch {
	case s >= 300 && s < 400:
		e.Permanent = true
		e.Err, e.Description = "redirect", "the receiver redirected; redirects are not followed, so set endpoint_url to the final URL"
		return e
	case s == http.StatusRequestTimeout, s == http.StatusTooManyRequests, s >= 500:
		e.RetryAfter = retryAfter(res.Header.Get("Retry-After"))
	default:
		e.Permanent = true
	}
	var answer SETError
	if json.Unmarshal(body, &answer) == nil && answer.Err != "" {
		e.Err = truncate(strings.ToValidUTF8(answer.Err, "?"), maxErrCode)
		e.Description = truncate(strings.ToValidUTF8(answer.Description, "?"), maxErrDetail)
	}
	return e
}

// retryAfter reads a Retry-After of seconds (dates are rare from receivers and ignored),
// bounded to an hour.
func retryAfter(v string) time.Duration {
	n, err := strconv.Atoi(strings.TrimSpace(v))
	if err != nil || n <= 0 {
		return 0
	}
	return min(time.Duration(n)*time.Second, time.Hour)
}
