package ssf

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"
)

// Delivery methods (SSF 1.0 §6).
const (
	// MethodPush is push delivery, RFC 8935: the transmitter POSTs each SET to the receiver.
	MethodPush = "urn:ietf:rfc:8935"
	// MethodPoll is poll delivery, RFC 8936: the receiver POSTs to the transmitter for SETs.
	MethodPoll = "urn:ietf:rfc:8936"
)

// default_subjects values (SSF 1.0 §7.1).
const (
	// SubjectsAll: every subject is in a new stream; receivers remove those they do not want.
	SubjectsAll = "ALL"
	// SubjectsNone: no subject is in a new stream; receivers add those they want.
	SubjectsNone = "NONE"
)

// Config configures the transmitter. It is a plain struct with yaml tags, meant to sit under an
// `ssf:` key of idpsync's configuration; call ApplyDefaults, then Validate.
type Config struct {
	// Issuer is the transmitter's issuer identifier, the iss of every SET and the base of every
	// published endpoint URL: an https URL without query or fragment (http only for a loopback
	// host, for development). Required.
	Issuer string `yaml:"issuer"`
	// Addr is where the transmitter's own HTTP listener binds (discovery, JWKS, stream
	// management, poll). Default ":8443". Terminate TLS in front of it: SSF requires https.
	Addr string `yaml:"addr"`
	// Keys are the RSA signing keys (at least 2048 bits), as PEM files. All are published in the
	// JWKS; the first signs unless SigningKey names another. To rotate: add the new key, wait for
	// receivers' JWKS caches to expire, make it the signing key, later remove the old one.
	// At least one is required.
	Keys []KeyFile `yaml:"keys"`
	// SigningKey is the kid of the key that signs. Default: the first key's.
	SigningKey string `yaml:"signing_key"`
	// Receivers are the receivers allowed to manage streams, each with its bearer token.
	// At least one is required.
	Receivers []Receiver `yaml:"receivers"`
	// DefaultSubjects is "ALL" (default: a new stream carries events about every user, receivers
	// remove the subjects they do not want) or "NONE" (receivers add the subjects they want). A
	// stream keeps the value it was created with.
	DefaultSubjects string `yaml:"default_subjects"`
	// DeliveryMethods are the delivery methods offered. Default both: urn:ietf:rfc:8935 (push)
	// and urn:ietf:rfc:8936 (poll).
	DeliveryMethods []string `yaml:"delivery_methods"`
	// SubjectIssuers maps a source name to the OIDC issuer of its users' tokens, the iss of
	// iss_sub subjects (e.g. https://clerk.example.com). Default for a source not listed:
	// <issuer>/sources/<source>.
	SubjectIssuers map[string]string `yaml:"subject_issuers"`
	// Push configures push delivery.
	Push PushConfig `yaml:"push"`
	// Poll configures poll delivery.
	Poll PollConfig `yaml:"poll"`
	// Limits bound what receivers may send and hold.
	Limits Limits `yaml:"limits"`
	// Retention is how long settled SETs (delivered by push, acknowledged, failed) stay in the
	// outbox before the periodic prune deletes them; held SETs are never pruned. Default 168h.
	Retention time.Duration `yaml:"retention"`
}

// KeyFile is one signing key.
type KeyFile struct {
	// File is a PEM file holding an RSA private key, PKCS#1 or PKCS#8. Required.
	File string `yaml:"file"`
	// ID is the key's kid. Default: its RFC 7638 thumbprint.
	ID string `yaml:"id"`
}

// Receiver is one receiver allowed to manage streams.
type Receiver struct {
	// Name names the receiver in logs (its token never appears). Required; [a-z0-9_-].
	Name string `yaml:"name"`
	// Token is the bearer token the receiver presents: use ${ENV} references. Several entries
	// may share a name, with different tokens, during a rotation; but a stream belongs to the
	// token that created it. Required; at least 32 characters.
	Token string `yaml:"token"`
	// Audience is the aud of the SETs on the receiver's streams (its client id or URL).
	// Default: the name.
	Audience []string `yaml:"audience"`
}

// PushConfig configures push delivery (RFC 8935).
type PushConfig struct {
	// Timeout bounds one delivery, from connecting to reading the answer. Default 10s.
	Timeout time.Duration `yaml:"timeout"`
	// MaxAttempts is how many times a SET is tried before it is recorded failed; 5xx answers
	// and network errors retry with River's backoff (attempt⁴ seconds), about 4 h over 12
	// attempts. Default 12.
	MaxAttempts int `yaml:"max_attempts"`
	// PausedRecheck is how long a SET for a paused stream waits before looking again. Default 30s.
	PausedRecheck time.Duration `yaml:"paused_recheck"`
	// AllowHTTP accepts http:// endpoint URLs (development and tests only). Default false.
	AllowHTTP bool `yaml:"allow_http"`
}

// PollConfig configures poll delivery (RFC 8936).
type PollConfig struct {
	// MaxEvents caps the SETs one poll returns, whatever maxEvents asks. Default 100.
	MaxEvents int `yaml:"max_events"`
	// Wait bounds a long poll (returnImmediately false) that finds nothing. Default 25s.
	Wait time.Duration `yaml:"wait"`
	// Redeliver is how long a polled SET stays unacknowledged before a poll returns it again.
	// Default 1m.
	Redeliver time.Duration `yaml:"redeliver"`
}

// Limits bound what the network may send.
type Limits struct {
	// MaxBodyBytes bounds a request body; larger ones get 413. Default 65536.
	MaxBodyBytes int64 `yaml:"max_body_bytes"`
	// MaxStreams is how many streams one token may hold. Default 10.
	MaxStreams int `yaml:"max_streams"`
	// MaxSubjects is how many subjects one stream may hold. Default 100000.
	MaxSubjects int `yaml:"max_subjects"`
	// MinVerificationInterval is the min_verification_interval of every stream: verification
	// requests closer together get 429. Default 10s.
	MinVerificationInterval time.Duration `yaml:"min_verification_interval"`
}

// ApplyDefaults sets the documented default of every field left empty.
func (c *Config) ApplyDefaults() {
	c.Addr = cmpOr(c.Addr, ":8443")
	c.DefaultSubjects = cmpOr(c.DefaultSubjects, SubjectsAll)
	if len(c.DeliveryMethods) == 0 {
		c.DeliveryMethods = []string{MethodPush, MethodPoll}
	}
	for i := range c.Receivers {
		if len(c.Receivers[i].Audience) == 0 && c.Receivers[i].Name != "" {
			c.Receivers[i].Audience = []string{c.Receivers[i].Name}
		}
	}
	c.Push.Timeout = cmpOr(c.Push.Timeout, 10*time.Second)
	c.Push.MaxAttempts = cmpOr(c.Push.MaxAttempts, 12)
	c.Push.PausedRecheck = cmpOr(c.Push.PausedRecheck, 30*time.Second)
	c.Poll.MaxEvents = cmpOr(c.Poll.MaxEvents, 100)
	c.Poll.Wait = cmpOr(c.Poll.Wait, 25*time.Second)
	c.Poll.Redeliver = cmpOr(c.Poll.Redeliver, time.Minute)
	c.Limits.MaxBodyBytes = cmpOr(c.Limits.MaxBodyBytes, 64<<10)
	c.Limits.MaxStreams = cmpOr(c.Limits.MaxStreams, 10)
	c.Limits.MaxSubjects = cmpOr(c.Limits.MaxSubjects, 100000)
	c.Limits.MinVerificationInterval = cmpOr(c.Limits.MinVerificationInterval, 10*time.Second)
	c.Retention = cmpOr(c.Retention, 7*24*time.Hour)
}

func cmpOr[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}

// Validate reports every problem of the configuration at once, each a sentence naming the field
// (under ssf.) and the fix. It does not read the key files; NewSigner(c.LoadKeys()) does.
func (c Config) Validate() error { return c.validate() }

func (c Config) validate() error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, &FieldError{Field: field, Msg: fmt.Sprintf(format, args...)})
	}
	if err := checkIssuer(c.Issuer); err != nil {
		bad("issuer", "%v", err)
	}
	if _, _, err := net.SplitHostPort(c.Addr); err != nil {
		bad("addr", "%q is not a listen address; use host:port or :port (default \":8443\")", c.Addr)
	}
	if len(c.Keys) == 0 {
		bad("keys", "at least one signing key is required; generate one with `openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out ssf.pem` and list {file: ssf.pem}")
	}
	ids := map[string]bool{}
	for i, k := range c.Keys {
		if k.File == "" {
			bad(fmt.Sprintf("keys[%d].file", i), "is required; name a PEM file holding an RSA private key")
		}
		if k.ID != "" {
			if ids[k.ID] {
				bad(fmt.Sprintf("keys[%d].id", i), "%q is already the id of another key; key ids must be unique", k.ID)
			}
			ids[k.ID] = true
		}
	}
	if c.SigningKey != "" && !ids[c.SigningKey] {
		bad("signing_key", "%q is not the id of any key in ssf.keys; give that key this id, or leave signing_key empty to sign with the first key", c.SigningKey)
	}
	if len(c.Receivers) == 0 {
		bad("receivers", "at least one receiver is required; add {name, token} so that a receiver can create its stream")
	}
	tokens := map[string]bool{}
	for i, r := range c.Receivers {
		field := fmt.Sprintf("receivers[%d]", i)
		if !validName(r.Name) {
			bad(field+".name", "%q is not a valid name; use 1 to 64 lowercase letters, digits, '-' and '_'", r.Name)
		}
		switch {
		case len(r.Token) < 32:
			bad(field+".token", "is shorter than 32 characters; use a random token, e.g. `openssl rand -hex 32`, through a ${ENV} reference")
		case len(r.Token) > 4096:
			bad(field+".token", "is longer than 4096 characters; use a shorter random token")
		case tokens[r.Token]:
			bad(field+".token", "is the token of another receiver; every receiver needs its own")
		}
		tokens[r.Token] = true
		for j, a := range r.Audience {
			if a == "" || len(a) > 512 {
				bad(fmt.Sprintf("%s.audience[%d]", field, j), "must be 1 to 512 characters, naming the receiver (its client id or URL)")
			}
		}
	}
	if c.DefaultSubjects != SubjectsAll && c.DefaultSubjects != SubjectsNone {
		bad("default_subjects", "%q is not ALL or NONE; use ALL to send events about every user unless a receiver removes them, NONE to send only those receivers add", c.DefaultSubjects)
	}
	if len(c.DeliveryMethods) == 0 {
		bad("delivery_methods", "is empty; list %s (push), %s (poll) or both", MethodPush, MethodPoll)
	}
	for i, m := range c.DeliveryMethods {
		if m != MethodPush && m != MethodPoll {
			bad(fmt.Sprintf("delivery_methods[%d]", i), "%q is not supported; use %s (push) or %s (poll)", m, MethodPush, MethodPoll)
		}
	}
	for source, iss := range c.SubjectIssuers {
		if u, err := url.Parse(iss); err != nil || u.Scheme == "" || u.Host == "" {
			bad("subject_issuers."+source, "%q is not an absolute URL; use the issuer of the source's tokens, e.g. https://clerk.example.com", iss)
		}
	}
	if c.Push.Timeout < time.Second || c.Push.Timeout > 5*time.Minute {
		bad("push.timeout", "%s is out of range; use 1s to 5m (default 10s)", c.Push.Timeout)
	}
	if c.Push.MaxAttempts < 1 || c.Push.MaxAttempts > 25 {
		bad("push.max_attempts", "%d is out of range; use 1 to 25 (default 12)", c.Push.MaxAttempts)
	}
	if c.Push.PausedRecheck < 10*time.Millisecond || c.Push.PausedRecheck > time.Hour {
		bad("push.paused_recheck", "%s is out of range; use 10ms to 1h (default 30s)", c.Push.PausedRecheck)
	}
	if c.Poll.MaxEvents < 1 || c.Poll.MaxEvents > 1000 {
		bad("poll.max_events", "%d is out of range; use 1 to 1000 (default 100)", c.Poll.MaxEvents)
	}
	if c.Poll.Wait < 0 || c.Poll.Wait > 5*time.Minute {
		bad("poll.wait", "%s is out of range; use 0 to 5m (default 25s)", c.Poll.Wait)
	}
	if c.Poll.Redeliver < time.Second {
		bad("poll.redeliver", "%s is too short; use at least 1s (default 1m)", c.Poll.Redeliver)
	}
	if c.Limits.MaxBodyBytes < 1024 || c.Limits.MaxBodyBytes > 10<<20 {
		bad("limits.max_body_bytes", "%d is out of range; use 1024 to 10485760 (default 65536)", c.Limits.MaxBodyBytes)
	}
	if c.Limits.MaxStreams < 1 {
		bad("limits.max_streams", "must be at least 1 (default 10)")
	}
	if c.Limits.MaxSubjects < 1 {
		bad("limits.max_subjects", "must be at least 1 (default 100000)")
	}
	if c.Retention < time.Hour {
		bad("retention", "%s is too short; keep settled SETs at least 1h, for audit (default 168h)", c.Retention)
	}
	if c.Limits.MinVerificationInterval < 0 {
		bad("limits.min_verification_interval", "must not be negative (default 10s)")
	}
	return errors.Join(errs...)
}

// FieldError is one problem of the configuration: the field (relative to the ssf section, e.g.
// "receivers[0].token") and a sentence that never repeats a secret.
type FieldError struct {
	Field, Msg string
}

func (e *FieldError) Error() string { return "ssf." + e.Field + ": " + e.Msg }

// LoadKeys reads the configured key files.
func (c Config) LoadKeys() ([]Key, error) {
	keys := make([]Key, 0, len(c.Keys))
	for i, k := range c.Keys {
		key, err := LoadKey(k.File, k.ID)
		if err != nil {
			return nil, fmt.Errorf("ssf.keys[%d] (%s): %w", i, k.File, err)
		}
		keys = append(keys, key)
	}
	return keys, nil
}

// SubjectIssuer returns the iss of the iss_sub subjects of source's users.
func (c Config) SubjectIssuer(source string) string {
	if iss, ok := c.SubjectIssuers[source]; ok {
		return iss
	}
	return strings.TrimSuffix(c.Issuer, "/") + "/sources/" + source
}

func validName(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	return !strings.ContainsFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' || r == '_')
	})
}

// checkIssuer enforces SSF 1.0's issuer: an https URL without query or fragment; http is allowed
// on loopback hosts only, for development.
func checkIssuer(iss string) error {
	u, err := url.Parse(iss)
	if iss == "" || err != nil || u.Host == "" {
		return fmt.Errorf("%q is not an absolute URL; set the https URL receivers reach the transmitter at, e.g. https://idpsync.example.com", iss)
	}
	if u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return fmt.Errorf("%q has a query, a fragment or credentials; an issuer is scheme, host and an optional path only", iss)
	}
	if u.Scheme != "https" && !(u.Scheme == "http" && isLoopback(u.Hostname())) {
		return fmt.Errorf("%q must use https (http is accepted only for a loopback host, in development)", iss)
	}
	return nil
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
