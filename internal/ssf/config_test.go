package ssf_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/idpsync/idpsync/internal/ssf"
)

func validConfig() ssf.Config {
	c := ssf.Config{
		Issuer:    "https://idpsync.example.com",
		Keys:      []ssf.KeyFile{{File: "ssf.pem"}},
		Receivers: []ssf.Receiver{{Name: "rp", Token: strings.Repeat("t", 32)}},
	}
	c.ApplyDefaults()
	return c
}

func TestConfigDefaults(t *testing.T) {
	t.Parallel()
	c := validConfig()
	if err := c.Validate(); err != nil {
		t.Fatalf("defaults do not validate: %v", err)
	}
	if c.Addr != ":8443" || c.DefaultSubjects != "ALL" || len(c.DeliveryMethods) != 2 || c.Push.MaxAttempts != 12 ||
		c.Poll.MaxEvents != 100 || c.Limits.MaxBodyBytes != 65536 || c.Receivers[0].Audience[0] != "rp" {
		t.Errorf("defaults = %+v", c)
	}
	if got := c.SubjectIssuer("clerk-prod"); got != "https://idpsync.example.com/sources/clerk-prod" {
		t.Errorf("SubjectIssuer default = %q", got)
	}
}

// TestConfigValidate: every problem is reported, as a sentence naming the field.
func TestConfigValidate(t *testing.T) {
	t.Parallel()
	cases := []struct {
		field  string
		change func(*ssf.Config)
	}{
		{"ssf.issuer", func(c *ssf.Config) { c.Issuer = "" }},
		{"ssf.issuer", func(c *ssf.Config) { c.Issuer = "http://idpsync.example.com" }},
		{"ssf.issuer", func(c *ssf.Config) { c.Issuer = "https://idpsync.example.com/?x=1" }},
		{"ssf.addr", func(c *ssf.Config) { c.Addr = "8443" }},
		{"ssf.keys", func(c *ssf.Config) { c.Keys = nil }},
		{"ssf.keys[0].file", func(c *ssf.Config) { c.Keys[0].File = "" }},
		{"ssf.signing_key", func(c *ssf.Config) { c.SigningKey = "nope" }},
		{"ssf.receivers", func(c *ssf.Config) { c.Receivers = nil }},
		{"ssf.receivers[0].token", func(c *ssf.Config) { c.Receivers[0].Token = "short" }},
		{"ssf.receivers[0].name", func(c *ssf.Config) { c.Receivers[0].Name = "Bad Name" }},
		{"ssf.receivers[1].token", func(c *ssf.Config) { c.Receivers = append(c.Receivers, c.Receivers[0]) }},
		{"ssf.default_subjects", func(c *ssf.Config) { c.DefaultSubjects = "SOME" }},
		{"ssf.delivery_methods[0]", func(c *ssf.Config) { c.DeliveryMethods = []string{"urn:example:webhook"} }},
		{"ssf.subject_issuers.clerk", func(c *ssf.Config) { c.SubjectIssuers = map[string]string{"clerk": "clerk"} }},
		{"ssf.push.timeout", func(c *ssf.Config) { c.Push.Timeout = time.Millisecond }},
		{"ssf.poll.max_events", func(c *ssf.Config) { c.Poll.MaxEvents = 5000 }},
		{"ssf.limits.max_body_bytes", func(c *ssf.Config) { c.Limits.MaxBodyBytes = 10 }},
	}
	for _, c := range cases {
		cfg := validConfig()
		c.change(&cfg)
		err := cfg.Validate()
		if err == nil || !strings.Contains(err.Error(), c.field+":") {
			t.Errorf("%s: Validate() = %v, want an error naming it", c.field, err)
		}
	}
	loopback := validConfig()
	loopback.Issuer = "http://127.0.0.1:8443"
	if err := loopback.Validate(); err != nil {
		t.Errorf("an http issuer on loopback is refused: %v", err)
	}
}

// TestPush: the request RFC 8935 describes, and how answers are judged.
func TestPush(t *testing.T) {
	t.Parallel()
	var redirected atomic.Bool
	target := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { redirected.Store(true) }))
	defer target.Close()
	var lastReq atomic.Pointer[http.Request]
	var lastBody atomic.Value
	answers := map[string]func(http.ResponseWriter){
		"/ok": func(w http.ResponseWriter) { w.WriteHeader(202) },
		"/refused": func(w http.ResponseWriter) {
			w.WriteHeader(400)
			_, _ = io.WriteString(w, `{"err":"invalid_key","description":"unknown kid"}`)
		},
		"/gone":     func(w http.ResponseWriter) { w.WriteHeader(404) },
		"/down":     func(w http.ResponseWriter) { w.WriteHeader(503) },
		"/limited":  func(w http.ResponseWriter) { w.Header().Set("Retry-After", "7"); w.WriteHeader(429) },
		"/redirect": func(w http.ResponseWriter) { w.Header().Set("Location", target.URL); w.WriteHeader(302) },
		"/slow":     func(w http.ResponseWriter) { time.Sleep(300 * time.Millisecond); w.WriteHeader(202) },
		"/huge": func(w http.ResponseWriter) {
			w.WriteHeader(400)
			_, _ = io.WriteString(w, `{"err":"`+strings.Repeat("x", 200)+`","description":"`+strings.Repeat("y", 5000)+`"}`)
		},
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		lastBody.Store(string(b))
		lastReq.Store(r)
		answers[r.URL.Path](w)
	}))
	defer srv.Close()
	p := ssf.NewPusher(200 * time.Millisecond)
	push := func(path string) error {
		return p.Push(context.Background(), ssf.Delivery{Method: ssf.MethodPush, EndpointURL: srv.URL + path, AuthorizationHeader: "Bearer rcv-secret"}, "a.b.c")
	}

	if err := push("/ok"); err != nil {
		t.Fatalf("202: %v", err)
	}
	r := lastReq.Load()
	if r.Method != "POST" || r.Header.Get("Content-Type") != "application/secevent+jwt" || r.Header.Get("Accept") != "application/json" ||
		r.Header.Get("Authorization") != "Bearer rcv-secret" || lastBody.Load() != "a.b.c" {
		t.Errorf("request = %s %v %q", r.Method, r.Header, lastBody.Load())
	}

	cases := []struct {
		path      string
		permanent bool
		errCode   string
		retry     time.Duration
	}{
		{"/refused", true, "invalid_key", 0},
		{"/gone", true, "", 0},
		{"/down", false, "", 0},
		{"/limited", false, "", 7 * time.Second},
		{"/redirect", true, "redirect", 0},
		{"/slow", false, "", 0},
	}
	for _, c := range cases {
		err := push(c.path)
		var pe *ssf.PushError
		if !errors.As(err, &pe) {
			t.Fatalf("%s: %v, want a PushError", c.path, err)
		}
		if pe.Permanent != c.permanent || pe.Err != c.errCode || pe.RetryAfter != c.retry {
			t.Errorf("%s: permanent %v err %q retry %s; want %v %q %s", c.path, pe.Permanent, pe.Err, pe.RetryAfter, c.permanent, c.errCode, c.retry)
		}
		if strings.Contains(err.Error(), "rcv-secret") || strings.Contains(err.Error(), "a.b.c") {
			t.Errorf("%s: the error leaks the authorization header or the SET: %v", c.path, err)
		}
	}
	if redirected.Load() {
		t.Error("the pusher followed a redirect")
	}
	var pe *ssf.PushError
	if err := push("/huge"); !errors.As(err, &pe) || len(pe.Err) > 64 || len(pe.Description) > 1024 {
		t.Errorf("a huge error answer is not bounded: %d, %d bytes", len(pe.Err), len(pe.Description))
	}
}

// noStore is a Store for tests that never reach storage (discovery and the JWKS do not).
type noStore struct{ ssf.Store }

// TestDiscoveryWithIssuerPath: an issuer with a path publishes its metadata at
// /.well-known/ssf-configuration/<path> (SSF 1.0 §7.2) and its endpoints under the path.
func TestDiscoveryWithIssuerPath(t *testing.T) {
	t.Parallel()
	cfg := validConfig()
	cfg.Issuer = "https://idpsync.example.com/tenant1"
	signer := newSigner(t, "", ssf.Key{ID: "k1", Private: testKeys(t)[0]})
	tr, err := ssf.NewTransmitter(cfg, signer, noStore{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(tr.Handler())
	defer srv.Close()
	res, err := http.Get(srv.URL + "/.well-known/ssf-configuration/tenant1")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var md ssf.Metadata
	if err := json.NewDecoder(res.Body).Decode(&md); err != nil || res.StatusCode != 200 || res.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("discovery: %d %v", res.StatusCode, err)
	}
	if md.Issuer != cfg.Issuer || md.JWKSURI != cfg.Issuer+"/jwks.json" || md.ConfigurationEndpoint != cfg.Issuer+"/ssf/stream" || md.SpecVersion != "1_0" {
		t.Errorf("metadata = %+v", md)
	}
	if res, err := http.Get(srv.URL + "/tenant1/jwks.json"); err != nil || res.StatusCode != 200 {
		t.Errorf("the JWKS under the issuer's path: %v %v", res, err)
	} else {
		res.Body.Close()
	}
	if res, err := http.Post(srv.URL+"/tenant1/ssf/stream", "application/json", strings.NewReader("{}")); err != nil || res.StatusCode != 401 {
		t.Errorf("management without a token: %v %v, want 401", res, err)
	} else {
		res.Body.Close()
	}
}
