package app_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/idpsync/idpsync/internal/provider/clerk/clerkfake"
	"github.com/idpsync/idpsync/internal/ssf"
	"github.com/idpsync/idpsync/internal/ssf/ssftest"
)

// ssfStack is a pipeline with the SSF transmitter on, and a receiver's push stream to an RFC 8935
// endpoint that verifies every SET with another JOSE library than the one that signs.
type ssfStack struct {
	*stack
	clerk    *clerkfake.Fake
	receiver *ssftest.Receiver
	issuer   string
}

const ssfToken = "ssf-receiver-token-0123456789abcdef0123456789"

func startSSFStack(t testing.TB, workerYAML string, opts ...stackOption) *ssfStack {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(t.TempDir(), "ssf.pem")
	pemBytes := pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)})
	if err := os.WriteFile(keyFile, pemBytes, 0o600); err != nil {
		t.Fatal(err)
	}
	// The transmitter's issuer is its public URL: the address it will listen on.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	issuer := "http://" + addr

	c := startClerk(t, clerkfake.Options{Seed: 31})
	ssfYAML := fmt.Sprintf(`{issuer: %q, addr: %q, keys: [{file: %q}], receivers: [{name: rp, token: %q, audience: ["https://rp.example.com"]}], push: {allow_http: true}}`,
		issuer, addr, keyFile, ssfToken)
	opts = append([]stackOption{withSources("[" + clerkSource(c, "") + "]"), withSSF(ssfYAML), withWorker(workerYAML)}, opts...)
	s := startStack(t, opts...)
	v := &ssftest.Verifier{JWKSURI: issuer + "/jwks.json", Issuer: issuer, Audience: "https://rp.example.com"}
	r := ssftest.NewReceiver(t, v, "Bearer rp-push-secret")

	// The receiver creates its push stream through the management API.
	body, _ := json.Marshal(map[string]any{
		"delivery":         map[string]any{"method": ssf.MethodPush, "endpoint_url": r.URL + "/events", "authorization_header": "Bearer rp-push-secret"},
		"events_requested": ssf.EventTypes,
	})
	req, _ := http.NewRequest(http.MethodPost, issuer+"/ssf/stream", bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+ssfToken)
	req.Header.Set("Content-Type", "application/json")
	var resp *http.Response
	s.eventually("the transmitter to answer", func() bool {
		var err error
		resp, err = http.DefaultClient.Do(req.Clone(context.Background()))
		if err == nil && resp.StatusCode != http.StatusCreated {
			resp.Body.Close()
			t.Fatalf("creating the stream: %d", resp.StatusCode)
		}
		if req.Body, err = req.GetBody(); err != nil {
			t.Fatal(err)
		}
		return resp != nil && resp.StatusCode == http.StatusCreated
	})
	resp.Body.Close()
	return &ssfStack{stack: s, clerk: c, receiver: r, issuer: issuer}
}

// deleteUserWithSessions creates a user with two active sessions at the fake Clerk, brings it into
// the mirror, and sends Clerk's user.deleted for it. It returns the user id and the session ids.
func (s *ssfStack) deleteUserWithSessions(name string) (string, []string) {
	s.t.Helper()
	u := s.clerk.CreateUser(clerkfake.User{FirstName: name, Email: name + "@example.com"})
	var sessions []string
	for range 2 {
		sess, err := s.clerk.CreateSession(u.ID)
		if err != nil {
			s.t.Fatal(err)
		}
		sessions = append(sessions, sess.ID)
	}
	slices.Sort(sessions)
	s.send(clerkEvent("user.created", 1700000001, clerkUser(u.ID, name, 1700000001000, false)))
	s.send(clerkEvent("user.deleted", 1700000002, map[string]any{"object": "user", "id": u.ID, "deleted": true}))
	return u.ID, sessions
}

// distinct returns the accepted SETs once per jti (a push retried after a crash may arrive
// twice; receivers deduplicate by jti, RFC 8935 §2), checking that duplicates are the same bytes.
func distinct(t *testing.T, got []ssftest.Received) []ssftest.Received {
	t.Helper()
	seen := map[string]string{}
	var out []ssftest.Received
	for _, r := range got {
		if raw, ok := seen[r.JTI]; ok {
			if raw != r.Raw {
				t.Errorf("jti %s arrived twice with different bytes", r.JTI)
			}
			continue
		}
		seen[r.JTI] = r.Raw
		out = append(out, r)
	}
	return out
}

// checkUserDeletedSETs checks that the SETs are exactly one account-purged for user and one
// session-revoked per session, each verified and about the right subject.
func (s *ssfStack) checkUserDeletedSETs(t *testing.T, got []ssftest.Received, user string, sessions []string) {
	t.Helper()
	var purged int
	var revoked []string
	for _, r := range got {
		sub := r.Claims["sub_id"].(map[string]any)
		switch r.Type {
		case ssf.TypeAccountPurged:
			purged++
			if sub["format"] != "iss_sub" || sub["sub"] != user {
				t.Errorf("account-purged about %v, want %s", sub, user)
			}
		case ssf.TypeSessionRevoked:
			u, _ := sub["user"].(map[string]any)
			sess, _ := sub["session"].(map[string]any)
			if sub["format"] != "complex" || u["sub"] != user || sess == nil {
				t.Errorf("session-revoked about %v", sub)
				continue
			}
			revoked = append(revoked, sess["id"].(string))
		default:
			t.Errorf("unexpected SET %s", r.Type)
		}
		if r.Claims["iss"] != s.issuer || r.Claims["txn"] == nil {
			t.Errorf("SET claims %v", r.Claims)
		}
	}
	slices.Sort(revoked)
	if purged != 1 || !slices.Equal(revoked, sessions) {
		t.Fatalf("got %d account-purged and session-revoked for %v; want 1 and %v", purged, revoked, sessions)
	}
}

// A Clerk user.deleted webhook becomes, at an SSF receiver's push endpoint, one RISC account-purged
// SET and one CAEP session-revoked SET per session idpsync revoked at Clerk: verified against the
// published JWKS with an independent JOSE library, each exactly once.
func TestSSFUserDeletedEndToEnd(t *testing.T) {
	t.Parallel()
	s := startSSFStack(t, `{admin_addr: "-", ack_wait: 5s}`)
	user, sessions := s.deleteUserWithSessions("ssf-alice")
	got := s.receiver.WaitAccepted(t, 3, 30*time.Second)
	s.quiescent()
	time.Sleep(300 * time.Millisecond) // room for a duplicate to show
	if all := s.receiver.Accepted(); len(all) != 3 {
		t.Fatalf("the receiver accepted %d SETs, want exactly 3", len(all))
	}
	s.checkUserDeletedSETs(t, got, user, sessions)
	for _, id := range sessions {
		if sess, _ := s.clerk.Session(id); sess.Status != "revoked" {
			t.Errorf("session %s is %s at Clerk", id, sess.Status)
		}
	}
}

// The same across a worker crash: the worker dies while a push is in flight (the receiver got the
// SET but its answer never reached the worker). A new worker pushes it again, with the same jti
// and bytes; every event reaches the receiver, none under two jtis.
func TestSSFExactlyOnceAcrossAWorkerCrash(t *testing.T) {
	t.Parallel()
	s := startSSFStack(t, `{admin_addr: "-", ack_wait: 5s, shutdown_timeout: 1s}`)
	var (
		once    sync.Once
		holding = make(chan struct{})
		release = make(chan struct{})
	)
	s.receiver.Respond(func(r ssftest.Received) (int, *ssftest.SETError) {
		if r.Type == ssf.TypeSessionRevoked {
			first := false
			once.Do(func() { first = true })
			if first {
				close(holding)
				<-release // the worker dies meanwhile
			}
		}
		return http.StatusAccepted, nil
	})
	user, sessions := s.deleteUserWithSessions("ssf-bob")
	select {
	case <-holding:
	case <-time.After(30 * time.Second):
		t.Fatal("no session-revoked push arrived")
	}
	s.stopWorkerAndWait() // its jobs are cancelled at the shutdown timeout, mid-push
	close(release)
	s.startWorker()
	s.eventually("every event at the receiver", func() bool { return len(distinct(t, s.receiver.Accepted())) >= 3 })
	s.quiescent()
	got := distinct(t, s.receiver.Accepted())
	s.checkUserDeletedSETs(t, got, user, sessions)
	if n := s.scalar(`SELECT count(*) FROM ssf_sets`); n != int64(3) {
		t.Errorf("the outbox holds %v SETs, want 3", n)
	}
	if n := s.scalar(`SELECT count(*) FROM ssf_sets WHERE state <> 'delivered'`); n != int64(0) {
		t.Errorf("%v SETs are not delivered", n)
	}
	// The held push was sent again by the new worker: the crash did happen mid-push.
	if all := s.receiver.Accepted(); len(all) != len(got)+1 {
		t.Errorf("the receiver got %d pushes for %d SETs, want one repeated", len(all), len(got))
	}
}
