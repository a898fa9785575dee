package ssf

import (
	"fmt"
	"net/url"
	"slices"
	"strings"
	"unicode/utf8"
)

// Stream statuses (SSF 1.0 §8.1.2).
const (
	StatusEnabled  = "enabled"
	StatusPaused   = "paused"
	StatusDisabled = "disabled"
)

// Bounds of receiver-supplied values.
const (
	maxEventsRequested = 64
	maxEventTypeLen    = 256
	maxURLLen          = 2048
	maxAuthHeaderLen   = 4096
	maxDescriptionLen  = 256 // runes; longer descriptions are truncated, as SSF 1.0 allows
	maxReasonLen       = 512
	maxStateLen        = 1024
	maxStreamIDLen     = 64
)

// Delivery is a stream's delivery method and its parameters (SSF 1.0 §6.1).
type Delivery struct {
	Method string `json:"method"`
	// EndpointURL is the receiver's URL for push, the transmitter's for poll.
	EndpointURL string `json:"endpoint_url,omitempty"`
	// AuthorizationHeader is sent verbatim as the Authorization header of every push.
	AuthorizationHeader string `json:"authorization_header,omitempty"`
}

// StreamConfig is a stream's configuration as the management API reads and writes it
// (SSF 1.0 §8.1.1).
type StreamConfig struct {
	StreamID                string   `json:"stream_id"`
	Iss                     string   `json:"iss"`
	Aud                     Audience `json:"aud"`
	EventsSupported         []string `json:"events_supported"`
	EventsRequested         []string `json:"events_requested"`
	EventsDelivered         []string `json:"events_delivered"`
	Delivery                Delivery `json:"delivery"`
	MinVerificationInterval int64    `json:"min_verification_interval,omitempty"`
	Description             string   `json:"description,omitempty"`
}

// streamRequest is a create, update or replace request: absent and null members are nil.
type streamRequest struct {
	StreamID                *string   `json:"stream_id"`
	Iss                     *string   `json:"iss"`
	Aud                     *Audience `json:"aud"`
	EventsSupported         *[]string `json:"events_supported"`
	EventsRequested         *[]string `json:"events_requested"`
	EventsDelivered         *[]string `json:"events_delivered"`
	Delivery                *Delivery `json:"delivery"`
	MinVerificationInterval *int64    `json:"min_verification_interval"`
	InactivityTimeout       *int64    `json:"inactivity_timeout"`
	Description             *string   `json:"description"`
}

// errBadRequest marks a request error whose message is the answer's description.
type errBadRequest struct{ msg string }

func (e errBadRequest) Error() string { return e.msg }

func badRequest(format string, args ...any) error {
	return errBadRequest{fmt.Sprintf(format, args...)}
}

// checkTransmitterSupplied enforces SSF 1.0 §8.1.1.3: transmitter-supplied members other than
// stream_id may be present in an update, but must then hold their current values.
func checkTransmitterSupplied(req streamRequest, cur StreamConfig) error {
	if req.Iss != nil && *req.Iss != cur.Iss {
		return badRequest("iss is supplied by the transmitter and cannot change")
	}
	if req.Aud != nil && !slices.Equal(*req.Aud, cur.Aud) {
		return badRequest("aud is supplied by the transmitter and cannot change")
	}
	if req.EventsSupported != nil && !slices.Equal(*req.EventsSupported, cur.EventsSupported) {
		return badRequest("events_supported is supplied by the transmitter and cannot change")
	}
	if req.EventsDelivered != nil && !slices.Equal(*req.EventsDelivered, cur.EventsDelivered) {
		return badRequest("events_delivered, when present, must match the transmitter's current value")
	}
	if req.MinVerificationInterval != nil && *req.MinVerificationInterval != cur.MinVerificationInterval {
		return badRequest("min_verification_interval is supplied by the transmitter and cannot change")
	}
	if req.InactivityTimeout != nil {
		return badRequest("inactivity_timeout is supplied by the transmitter; this transmitter sets none")
	}
	return nil
}

// eventsRequested validates the requested event types and returns them with the delivered ones:
// unknown URIs are kept in events_requested but ignored, as SSF 1.0 requires.
func eventsRequested(req []string) (requested, delivered []string, err error) {
	if len(req) > maxEventsRequested {
		return nil, nil, badRequest("events_requested lists %d event types; at most %d are accepted", len(req), maxEventsRequested)
	}
	requested = []string{}
	for i, uri := range req {
		if uri == "" || len(uri) > maxEventTypeLen || !utf8.ValidString(uri) {
			return nil, nil, badRequest("events_requested[%d] must be an event type URI of at most %d bytes", i, maxEventTypeLen)
		}
		if !slices.Contains(requested, uri) {
			requested = append(requested, uri)
		}
	}
	delivered = []string{}
	for _, t := range EventTypes {
		if slices.Contains(requested, t) {
			delivered = append(delivered, t)
		}
	}
	return requested, delivered, nil
}

// delivery validates a receiver's delivery object; pollURL is the transmitter's poll endpoint for
// the stream. A missing delivery means poll (SSF 1.0 §8.1.1.1).
func (c Config) delivery(d *Delivery, pollURL string) (Delivery, error) {
	if d == nil {
		d = &Delivery{Method: MethodPoll}
	}
	if !slices.Contains(c.DeliveryMethods, d.Method) {
		return Delivery{}, badRequest("delivery.method %q is not supported; use one of %s", truncate(d.Method, 64), strings.Join(c.DeliveryMethods, ", "))
	}
	switch d.Method {
	case MethodPoll:
		if d.EndpointURL != "" && d.EndpointURL != pollURL {
			return Delivery{}, badRequest("delivery.endpoint_url of a poll stream is supplied by the transmitter; omit it")
		}
		if d.AuthorizationHeader != "" {
			return Delivery{}, badRequest("delivery.authorization_header applies to push delivery only")
		}
		return Delivery{Method: MethodPoll, EndpointURL: pollURL}, nil
	default:
		if err := c.checkEndpoint(d.EndpointURL); err != nil {
			return Delivery{}, err
		}
		if len(d.AuthorizationHeader) > maxAuthHeaderLen || strings.ContainsFunc(d.AuthorizationHeader, func(r rune) bool {
			return r < 0x20 && r != '\t' || r == 0x7f
		}) || !utf8.ValidString(d.AuthorizationHeader) {
			return Delivery{}, badRequest("delivery.authorization_header must be a header value of at most %d bytes, without control characters", maxAuthHeaderLen)
		}
		return Delivery{Method: MethodPush, EndpointURL: d.EndpointURL, AuthorizationHeader: d.AuthorizationHeader}, nil
	}
}

func (c Config) checkEndpoint(endpoint string) error {
	if endpoint == "" {
		return badRequest("delivery.endpoint_url is required for push delivery")
	}
	if len(endpoint) > maxURLLen {
		return badRequest("delivery.endpoint_url is longer than %d bytes", maxURLLen)
	}
	u, err := url.Parse(endpoint)
	if err != nil || u.Host == "" || !utf8.ValidString(endpoint) {
		return badRequest("delivery.endpoint_url must be an absolute URL")
	}
	if u.User != nil || u.Fragment != "" {
		return badRequest("delivery.endpoint_url must not carry credentials or a fragment; send credentials in delivery.authorization_header")
	}
	if u.Scheme != "https" && !(u.Scheme == "http" && c.Push.AllowHTTP) {
		return badRequest("delivery.endpoint_url must use https")
	}
	return nil
}

func truncate(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	return string([]rune(s)[:n])
}

// description bounds a receiver's description: SSF 1.0 lets the transmitter truncate it.
func description(s string) string {
	return truncate(strings.ToValidUTF8(s, "\uFFFD"), maxDescriptionLen)
}

// checkStreamID bounds a stream id taken from the network.
func checkStreamID(id string) error {
	if id == "" {
		return badRequest("stream_id is required")
	}
	if len(id) > maxStreamIDLen || strings.ContainsFunc(id, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.' || r == '~')
	}) {
		return badRequest("stream_id is not the id of a stream of this transmitter")
	}
	return nil
}
