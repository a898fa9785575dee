package ssf

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"
)

// Paths of the transmitter's endpoints, below the issuer's path.
const (
	PathConfiguration = "/.well-known/ssf-configuration"
	PathJWKS          = "/jwks.json"
	PathStream        = "/ssf/stream"
	PathStatus        = "/ssf/status"
	PathAddSubject    = "/ssf/subjects:add"
	PathRemoveSubject = "/ssf/subjects:remove"
	PathVerify        = "/ssf/verify"
	PathPoll          = "/ssf/poll/" // + stream id
)

// Metadata is the transmitter configuration metadata (SSF 1.0 §7.1).
type Metadata struct {
	SpecVersion              string                `json:"spec_version"`
	Issuer                   string                `json:"issuer"`
	JWKSURI                  string                `json:"jwks_uri"`
	DeliveryMethodsSupported []string              `json:"delivery_methods_supported"`
	ConfigurationEndpoint    string                `json:"configuration_endpoint"`
	StatusEndpoint           string                `json:"status_endpoint"`
	AddSubjectEndpoint       string                `json:"add_subject_endpoint"`
	RemoveSubjectEndpoint    string                `json:"remove_subject_endpoint"`
	VerificationEndpoint     string                `json:"verification_endpoint"`
	CriticalSubjectMembers   []string              `json:"critical_subject_members,omitempty"`
	AuthorizationSchemes     []AuthorizationScheme `json:"authorization_schemes"`
	DefaultSubjects          string                `json:"default_subjects"`
}

// AuthorizationScheme is one entry of authorization_schemes.
type AuthorizationScheme struct {
	SpecURN string `json:"spec_urn"`
}

// Transmitter serves the transmitter's HTTP API on its own listener: discovery, the JWKS, stream
// management (SSF 1.0 §8) and poll delivery (RFC 8936). Everything but discovery and the JWKS
// needs a receiver's bearer token.
type Transmitter struct {
	cfg       Config
	signer    *Signer
	store     Store
	logger    *slog.Logger
	receivers []receiver
	base      string // the issuer without a trailing slash
	metadata  []byte
}

type receiver struct {
	name  string
	hash  [sha256.Size]byte
	owner string
	aud   Audience
}

// NewTransmitter returns the handler of cfg's transmitter; cfg must have its defaults applied
// and be valid.
func NewTransmitter(cfg Config, signer *Signer, store Store, logger *slog.Logger) (*Transmitter, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if signer == nil || store == nil {
		return nil, errors.New("ssf: a signer and a store are required")
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	t := &Transmitter{cfg: cfg, signer: signer, store: store, logger: logger, base: strings.TrimSuffix(cfg.Issuer, "/")}
	for _, r := range cfg.Receivers {
		h := sha256.Sum256([]byte(r.Token))
		t.receivers = append(t.receivers, receiver{name: r.Name, hash: h, owner: hex.EncodeToString(h[:]), aud: Audience(r.Audience)})
	}
	md := Metadata{
		SpecVersion:              "1_0",
		Issuer:                   cfg.Issuer,
		JWKSURI:                  t.base + PathJWKS,
		DeliveryMethodsSupported: cfg.DeliveryMethods,
		ConfigurationEndpoint:    t.base + PathStream,
		StatusEndpoint:           t.base + PathStatus,
		AddSubjectEndpoint:       t.base + PathAddSubject,
		RemoveSubjectEndpoint:    t.base + PathRemoveSubject,
		VerificationEndpoint:     t.base + PathVerify,
		// Bearer tokens (RFC 6750) configured per receiver.
		AuthorizationSchemes: []AuthorizationScheme{{SpecURN: "urn:ietf:rfc:6750"}},
		DefaultSubjects:      cfg.DefaultSubjects,
	}
	var err error
	if t.metadata, err = json.Marshal(md); err != nil {
		return nil, err
	}
	return t, nil
}

// Owner returns the owner fingerprint of a bearer token: the hex SHA-256 of the token, what the
// store keeps instead of the token.
func Owner(token string) string {
	h := sha256.Sum256([]byte(token))
	return hex.EncodeToString(h[:])
}

// Handler returns the transmitter's routes.
func (t *Transmitter) Handler() http.Handler {
	mux := http.NewServeMux()
	path := ""
	if u, err := url.Parse(t.base); err == nil {
		path = u.Path
	}
	mux.HandleFunc("GET "+PathConfiguration+path, t.serveMetadata)
	if path != "" {
		mux.HandleFunc("GET "+PathConfiguration, t.serveMetadata)
	}
	mux.HandleFunc("GET "+path+PathJWKS, t.serveJWKS)
	mux.HandleFunc("POST "+path+PathStream, t.auth((*call).createStream))
	mux.HandleFunc("GET "+path+PathStream, t.auth((*call).readStreams))
	mux.HandleFunc("PATCH "+path+PathStream, t.auth((*call).updateStream))
	mux.HandleFunc("PUT "+path+PathStream, t.auth((*call).replaceStream))
	mux.HandleFunc("DELETE "+path+PathStream, t.auth((*call).deleteStream))
	mux.HandleFunc("GET "+path+PathStatus, t.auth((*call).readStatus))
	mux.HandleFunc("POST "+path+PathStatus, t.auth((*call).updateStatus))
	mux.HandleFunc("POST "+path+PathAddSubject, t.auth((*call).addSubject))
	mux.HandleFunc("POST "+path+PathRemoveSubject, t.auth((*call).removeSubject))
	mux.HandleFunc("POST "+path+PathVerify, t.auth((*call).verify))
	mux.HandleFunc("POST "+path+PathPoll+"{stream_id}", t.auth((*call).poll))
	return mux
}

// NewServer returns an http.Server for the transmitter on cfg.Addr, with timeouts that bound
// slow clients (a long poll may take Poll.Wait).
func (t *Transmitter) NewServer() *http.Server {
	return &http.Server{
		Addr:              t.cfg.Addr,
		Handler:           t.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      t.cfg.Poll.Wait + 30*time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    16 << 10,
	}
}

func (t *Transmitter) serveMetadata(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(t.metadata)
}

func (t *Transmitter) serveJWKS(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/jwk-set+json")
	w.Header().Set("Cache-Control", "public, max-age=300")
	_, _ = w.Write(t.signer.JWKS())
}

// call is one authenticated request.
type call struct {
	w    http.ResponseWriter
	r    *http.Request
	t    *Transmitter
	recv receiver
}

// auth authenticates the bearer token against every configured token, in constant time.
func (t *Transmitter) auth(h func(*call)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		scheme, token, _ := strings.Cut(r.Header.Get("Authorization"), " ")
		token = strings.TrimSpace(token)
		var (
			found receiver
			match int
		)
		if strings.EqualFold(scheme, "Bearer") && token != "" {
			sum := sha256.Sum256([]byte(token))
			for _, rc := range t.receivers {
				if subtle.ConstantTimeCompare(sum[:], rc.hash[:]) == 1 {
					found, match = rc, 1
				}
			}
		}
		if match == 0 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="ssf"`)
			t.fail(w, r, "", http.StatusUnauthorized, "authentication_failed", "a valid bearer token is required")
			return
		}
		h(&call{w: w, r: r, t: t, recv: found})
	}
}

// fail answers an error in the shape of RFC 8935 §2.3 and logs it, without the token.
func (t *Transmitter) fail(w http.ResponseWriter, r *http.Request, receiverName string, status int, code, description string) {
	level := slog.LevelInfo
	if status >= 500 {
		level = slog.LevelError
	}
	t.logger.Log(r.Context(), level, "ssf request refused", "method", r.Method, "path", r.URL.Path, "receiver", receiverName,
		"status", status, "err", code, "reason", description)
	writeJSON(w, status, SETError{Err: code, Description: description})
}

func (c *call) fail(status int, code, description string) {
	c.t.fail(c.w, c.r, c.recv.name, status, code, description)
}

// failErr answers err: a request error, a store's sentinel, or an internal failure.
func (c *call) failErr(err error) {
	var br errBadRequest
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &br):
		c.fail(http.StatusBadRequest, "invalid_request", br.msg)
	case errors.As(err, &mbe):
		c.fail(http.StatusRequestEntityTooLarge, "invalid_request", fmt.Sprintf("the body is larger than %d bytes", c.t.cfg.Limits.MaxBodyBytes))
	case errors.Is(err, ErrNotPoll):
		c.fail(http.StatusBadRequest, "invalid_request", "this stream delivers by push (urn:ietf:rfc:8935); it cannot be polled")
	case errors.Is(err, ErrNotFound):
		c.fail(http.StatusNotFound, "not_found", "there is no such stream for this receiver")
	case errors.Is(err, ErrLimit):
		c.fail(http.StatusForbidden, "access_denied", err.Error())
	case errors.Is(err, ErrTooSoon):
		c.w.Header().Set("Retry-After", fmt.Sprint(int(c.t.cfg.Limits.MinVerificationInterval.Seconds()+0.999)))
		c.fail(http.StatusTooManyRequests, "too_many_requests", "verification requests are limited to one per min_verification_interval")
	case errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded):
		c.fail(http.StatusServiceUnavailable, "temporarily_unavailable", "the request was cancelled")
	default:
		c.t.logger.Error("ssf request failed", "method", c.r.Method, "path", c.r.URL.Path, "receiver", c.recv.name, "error", err)
		c.fail(http.StatusInternalServerError, "internal_error", "the transmitter failed; try again later")
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, "encoding the answer failed", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// decode reads a bounded JSON body into v: one JSON object, nothing after it.
func (c *call) decode(v any) error {
	body := http.MaxBytesReader(c.w, c.r.Body, c.t.cfg.Limits.MaxBodyBytes)
	dec := json.NewDecoder(body)
	if err := dec.Decode(v); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return err
		}
		if errors.Is(err, io.EOF) {
			return badRequest("the body must be a JSON object")
		}
		return badRequest("the body is not valid JSON for this endpoint: %s", truncate(err.Error(), 200))
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return err
		}
		return badRequest("the body must hold one JSON object only")
	}
	return nil
}

// pollURL is the poll endpoint of a stream.
func (t *Transmitter) pollURL(streamID string) string { return t.base + PathPoll + streamID }

func (c *call) createStream() {
	var req streamRequest
	if err := c.decode(&req); err != nil {
		c.failErr(err)
		return
	}
	if req.StreamID != nil {
		c.failErr(badRequest("stream_id is supplied by the transmitter; omit it when creating a stream"))
		return
	}
	id := NewJTI()
	cfg := StreamConfig{StreamID: id, Iss: c.t.cfg.Issuer, Aud: c.recv.aud, EventsSupported: EventTypes,
		MinVerificationInterval: int64(c.t.cfg.Limits.MinVerificationInterval.Seconds())}
	if err := checkTransmitterSupplied(req, cfg); err != nil {
		c.failErr(err)
		return
	}
	if err := c.t.applyReceiverSupplied(&cfg, req, true); err != nil {
		c.failErr(err)
		return
	}
	s := Stream{Config: cfg, Owner: c.recv.owner, DefaultSubjects: c.t.cfg.DefaultSubjects, Status: StatusEnabled}
	if err := c.t.store.CreateStream(c.r.Context(), s, c.t.cfg.Limits.MaxStreams); err != nil {
		if errors.Is(err, ErrLimit) {
			err = fmt.Errorf("%w: this receiver already has %d streams; delete one first", ErrLimit, c.t.cfg.Limits.MaxStreams)
		}
		c.failErr(err)
		return
	}
	c.t.logger.Info("ssf stream created", "receiver", c.recv.name, "stream_id", id, "method", cfg.Delivery.Method, "events", len(cfg.EventsDelivered))
	writeJSON(c.w, http.StatusCreated, cfg)
}

// applyReceiverSupplied sets the receiver-supplied members of cfg from req: those present, or
// all of them when replace is set (absent ones are then deleted).
func (t *Transmitter) applyReceiverSupplied(cfg *StreamConfig, req streamRequest, replace bool) error {
	if req.EventsRequested != nil || replace {
		var in []string
		if req.EventsRequested != nil {
			in = *req.EventsRequested
		}
		var err error
		if cfg.EventsRequested, cfg.EventsDelivered, err = eventsRequested(in); err != nil {
			return err
		}
	}
	if req.Delivery != nil || replace {
		d, err := t.cfg.delivery(req.Delivery, t.pollURL(cfg.StreamID))
		if err != nil {
			return err
		}
		cfg.Delivery = d
	}
	if req.Description != nil || replace {
		cfg.Description = ""
		if req.Description != nil {
			cfg.Description = description(*req.Description)
		}
	}
	return nil
}

func (c *call) streamID() (string, error) {
	id := c.r.URL.Query().Get("stream_id")
	return id, checkStreamID(id)
}

func (c *call) readStreams() {
	id := c.r.URL.Query().Get("stream_id")
	if id != "" {
		if err := checkStreamID(id); err != nil {
			c.failErr(ErrNotFound)
			return
		}
	}
	streams, err := c.t.store.Streams(c.r.Context(), c.recv.owner, id)
	if err != nil {
		c.failErr(err)
		return
	}
	if id != "" {
		if len(streams) == 0 {
			c.failErr(ErrNotFound)
			return
		}
		writeJSON(c.w, http.StatusOK, streams[0].Config)
		return
	}
	configs := make([]StreamConfig, 0, len(streams))
	for _, s := range streams {
		configs = append(configs, s.Config)
	}
	writeJSON(c.w, http.StatusOK, configs)
}

func (c *call) updateStream()  { c.changeStream(false) }
func (c *call) replaceStream() { c.changeStream(true) }

// changeStream is PATCH (replace false: members absent stay) and PUT (replace true: absent
// receiver-supplied members are deleted).
func (c *call) changeStream(replace bool) {
	var req streamRequest
	if err := c.decode(&req); err != nil {
		c.failErr(err)
		return
	}
	if req.StreamID == nil {
		c.failErr(badRequest("stream_id is required"))
		return
	}
	if err := checkStreamID(*req.StreamID); err != nil {
		c.failErr(ErrNotFound)
		return
	}
	streams, err := c.t.store.Streams(c.r.Context(), c.recv.owner, *req.StreamID)
	if err != nil || len(streams) == 0 {
		c.failErr(cmpOr(err, ErrNotFound))
		return
	}
	cfg := streams[0].Config
	if err := checkTransmitterSupplied(req, cfg); err != nil {
		c.failErr(err)
		return
	}
	if err := c.t.applyReceiverSupplied(&cfg, req, replace); err != nil {
		c.failErr(err)
		return
	}
	if err := c.t.store.ReplaceStream(c.r.Context(), c.recv.owner, cfg); err != nil {
		c.failErr(err)
		return
	}
	c.t.logger.Info("ssf stream updated", "receiver", c.recv.name, "stream_id", cfg.StreamID, "method", cfg.Delivery.Method, "events", len(cfg.EventsDelivered))
	writeJSON(c.w, http.StatusOK, cfg)
}

func (c *call) deleteStream() {
	id, err := c.streamID()
	if err != nil {
		c.failErr(notFoundIfSet(id, err))
		return
	}
	if err := c.t.store.DeleteStream(c.r.Context(), c.recv.owner, id); err != nil {
		c.failErr(err)
		return
	}
	c.t.logger.Info("ssf stream deleted", "receiver", c.recv.name, "stream_id", id)
	c.w.WriteHeader(http.StatusNoContent)
}

// notFoundIfSet turns an invalid but present stream id into "not found" (no stream has it).
func notFoundIfSet(id string, err error) error {
	if id != "" {
		return ErrNotFound
	}
	return err
}

// Status is a stream's status as the status endpoint reads and writes it.
type Status struct {
	StreamID string `json:"stream_id"`
	Status   string `json:"status"`
	Reason   string `json:"reason,omitempty"`
}

func (c *call) readStatus() {
	id, err := c.streamID()
	if err != nil {
		c.failErr(notFoundIfSet(id, err))
		return
	}
	streams, err := c.t.store.Streams(c.r.Context(), c.recv.owner, id)
	if err != nil || len(streams) == 0 {
		c.failErr(cmpOr(err, ErrNotFound))
		return
	}
	s := streams[0]
	writeJSON(c.w, http.StatusOK, Status{StreamID: id, Status: s.Status, Reason: s.Reason})
}

func (c *call) updateStatus() {
	var req Status
	if err := c.decode(&req); err != nil {
		c.failErr(err)
		return
	}
	if err := checkStreamID(req.StreamID); err != nil {
		c.failErr(notFoundIfSet(req.StreamID, err))
		return
	}
	switch req.Status {
	case StatusEnabled, StatusPaused, StatusDisabled:
	default:
		c.failErr(badRequest("status must be enabled, paused or disabled"))
		return
	}
	if len(req.Reason) > maxReasonLen || !utf8Printable(req.Reason) {
		c.failErr(badRequest("reason must be printable text of at most %d bytes", maxReasonLen))
		return
	}
	if err := c.t.store.SetStatus(c.r.Context(), c.recv.owner, req.StreamID, req.Status, req.Reason); err != nil {
		c.failErr(err)
		return
	}
	c.t.logger.Info("ssf stream status set", "receiver", c.recv.name, "stream_id", req.StreamID, "status", req.Status)
	writeJSON(c.w, http.StatusOK, req)
}

type subjectRequest struct {
	StreamID string   `json:"stream_id"`
	Subject  *Subject `json:"subject"`
	Verified *bool    `json:"verified"`
}

func (c *call) subjectRequest() (subjectRequest, Stream, error) {
	var req subjectRequest
	if err := c.decode(&req); err != nil {
		return req, Stream{}, err
	}
	if err := checkStreamID(req.StreamID); err != nil {
		return req, Stream{}, notFoundIfSet(req.StreamID, err)
	}
	if req.Subject == nil {
		return req, Stream{}, badRequest("subject is required")
	}
	if err := req.Subject.Validate(); err != nil {
		return req, Stream{}, badRequest("subject: %v", err)
	}
	if req.Subject.Format == FormatComplex && req.Subject.User == nil && req.Subject.Session == nil {
		return req, Stream{}, badRequest("subject: idpsync's events are about users and sessions; a complex subject must name a user or a session")
	}
	streams, err := c.t.store.Streams(c.r.Context(), c.recv.owner, req.StreamID)
	if err != nil || len(streams) == 0 {
		return req, Stream{}, cmpOr(err, ErrNotFound)
	}
	return req, streams[0], nil
}

// addSubject adds a subject: under NONE the subject becomes listed; under ALL an earlier removal
// is undone. Unverified subjects are accepted like verified ones (the receiver vouches for them).
func (c *call) addSubject() {
	req, s, err := c.subjectRequest()
	if err == nil {
		verified := req.Verified == nil || *req.Verified
		if s.DefaultSubjects == SubjectsNone {
			err = c.t.store.ListSubject(c.r.Context(), c.recv.owner, s.Config.StreamID, *req.Subject, verified, c.t.cfg.Limits.MaxSubjects)
		} else {
			err = c.t.store.UnlistSubject(c.r.Context(), c.recv.owner, s.Config.StreamID, *req.Subject)
		}
	}
	if err != nil {
		if errors.Is(err, ErrLimit) {
			err = fmt.Errorf("%w: the stream already holds %d subjects", ErrLimit, c.t.cfg.Limits.MaxSubjects)
		}
		c.failErr(err)
		return
	}
	c.w.WriteHeader(http.StatusOK)
}

// removeSubject removes a subject: under NONE the subject is unlisted; under ALL it becomes
// listed, as excluded.
func (c *call) removeSubject() {
	req, s, err := c.subjectRequest()
	if err == nil {
		if s.DefaultSubjects == SubjectsNone {
			err = c.t.store.UnlistSubject(c.r.Context(), c.recv.owner, s.Config.StreamID, *req.Subject)
		} else {
			err = c.t.store.ListSubject(c.r.Context(), c.recv.owner, s.Config.StreamID, *req.Subject, true, c.t.cfg.Limits.MaxSubjects)
		}
	}
	if err != nil {
		if errors.Is(err, ErrLimit) {
			err = fmt.Errorf("%w: the stream already excludes %d subjects", ErrLimit, c.t.cfg.Limits.MaxSubjects)
		}
		c.failErr(err)
		return
	}
	c.w.WriteHeader(http.StatusNoContent)
}

func (c *call) verify() {
	var req struct {
		StreamID string  `json:"stream_id"`
		State    *string `json:"state"`
	}
	if err := c.decode(&req); err != nil {
		c.failErr(err)
		return
	}
	if err := checkStreamID(req.StreamID); err != nil {
		c.failErr(notFoundIfSet(req.StreamID, err))
		return
	}
	state := ""
	if req.State != nil {
		state = *req.State
	}
	if len(state) > maxStateLen || !utf8Printable(state) {
		c.failErr(badRequest("state must be printable text of at most %d bytes", maxStateLen))
		return
	}
	err := c.t.store.Verify(c.r.Context(), c.recv.owner, req.StreamID, Verification(req.StreamID, state), c.t.cfg.Limits.MinVerificationInterval)
	if err != nil {
		c.failErr(err)
		return
	}
	c.w.WriteHeader(http.StatusNoContent)
}

func utf8Printable(s string) bool {
	return strings.ToValidUTF8(s, "") == s && !strings.ContainsFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7f })
}

// pollRequest is an RFC 8936 §2.4 poll request.
type pollRequest struct {
	MaxEvents         *int                `json:"maxEvents"`
	ReturnImmediately bool                `json:"returnImmediately"`
	Ack               []string            `json:"ack"`
	SetErrs           map[string]SETError `json:"setErrs"`
}

// pollResponse is an RFC 8936 §2.5 poll response.
type pollResponse struct {
	Sets          map[string]string `json:"sets"`
	MoreAvailable bool              `json:"moreAvailable"`
}

const (
	maxAcks      = 1000
	maxJTILen    = 256
	maxErrCode   = 64
	maxErrDetail = 1024
)

func (c *call) poll() {
	id := c.r.PathValue("stream_id")
	if err := checkStreamID(id); err != nil {
		c.failErr(ErrNotFound)
		return
	}
	var req pollRequest
	if err := c.decode(&req); err != nil {
		c.failErr(err)
		return
	}
	max := c.t.cfg.Poll.MaxEvents
	if req.MaxEvents != nil {
		if *req.MaxEvents < 0 {
			c.failErr(badRequest("maxEvents must not be negative"))
			return
		}
		max = min(*req.MaxEvents, max)
	}
	if len(req.Ack)+len(req.SetErrs) > maxAcks {
		c.failErr(badRequest("ack and setErrs hold %d jtis together; at most %d are accepted per poll", len(req.Ack)+len(req.SetErrs), maxAcks))
		return
	}
	for _, jti := range req.Ack {
		if jti == "" || len(jti) > maxJTILen {
			c.failErr(badRequest("ack holds a jti that is empty or longer than %d bytes", maxJTILen))
			return
		}
	}
	for jti, e := range req.SetErrs {
		if jti == "" || len(jti) > maxJTILen {
			c.failErr(badRequest("setErrs holds a jti that is empty or longer than %d bytes", maxJTILen))
			return
		}
		if e.Err == "" || len(e.Err) > maxErrCode || !utf8Printable(e.Err) {
			c.failErr(badRequest("setErrs[%q].err must be an error code of at most %d bytes", truncate(jti, 64), maxErrCode))
			return
		}
		if !utf8.ValidString(e.Description) {
			c.failErr(badRequest("setErrs[%q].description must be UTF-8", truncate(jti, 64)))
			return
		}
		e.Description = truncate(e.Description, maxErrDetail)
		req.SetErrs[jti] = e
	}
	p := Poll{Acks: req.Ack, Errs: req.SetErrs, Max: max, Redeliver: c.t.cfg.Poll.Redeliver, Sign: c.t.signer.Sign}
	ctx := c.r.Context()
	deadline := time.Now().Add(c.t.cfg.Poll.Wait)
	wait := 50 * time.Millisecond
	for {
		res, err := c.t.store.Poll(ctx, c.recv.owner, id, p)
		if err != nil {
			c.failErr(err)
			return
		}
		remaining := time.Until(deadline)
		if len(res.SETs) > 0 || req.ReturnImmediately || max == 0 || remaining <= 0 {
			if res.SETs == nil {
				res.SETs = map[string]string{}
			}
			writeJSON(c.w, http.StatusOK, pollResponse{Sets: res.SETs, MoreAvailable: res.More})
			return
		}
		p.Acks, p.Errs = nil, nil // settled by the first round
		select {
		case <-ctx.Done():
			return
		case <-time.After(min(wait, remaining)):
		}
		wait = min(2*wait, time.Second)
	}
}
