package clerkfake_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/idpsync/idpsync/internal/fakeidp"
	"github.com/idpsync/idpsync/internal/provider/clerk"
	"github.com/idpsync/idpsync/internal/provider/clerk/clerkfake"
)

const webhookSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

// webhooks receives the fake's deliveries and keeps those whose Svix signature verifies.
type webhooks struct {
	mu     sync.Mutex
	bodies [][]byte
}

func receiveWebhooks(t *testing.T, f *clerkfake.Fake) *webhooks {
	t.Helper()
	v, err := clerk.NewSvix(clerk.SvixConfig{Secrets: []string{webhookSecret}, Tolerance: 5 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	wh := &webhooks{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if _, err := v.Verify(body, r.Header); err != nil {
			t.Errorf("webhook does not verify: %v", err)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		wh.mu.Lock()
		wh.bodies = append(wh.bodies, body)
		wh.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(srv.Close)
	f.SetWebhookTarget(fakeidp.WebhookTarget{URL: srv.URL, Secret: webhookSecret})
	return wh
}

// events returns the type and data of every verified delivery, once the queue is drained.
func (wh *webhooks) events(t *testing.T, f *clerkfake.Fake) (types []string, data []map[string]any) {
	t.Helper()
	if err := f.FlushWebhooks(t.Context()); err != nil {
		t.Fatal(err)
	}
	wh.mu.Lock()
	defer wh.mu.Unlock()
	for _, b := range wh.bodies {
		var ev struct {
			Type string         `json:"type"`
			Data map[string]any `json:"data"`
		}
		if err := json.Unmarshal(b, &ev); err != nil {
			t.Fatal(err)
		}
		types, data = append(types, ev.Type), append(data, ev.Data)
	}
	return types, data
}

func call(t *testing.T, f *clerkfake.Fake, method, path, body string) (int, map[string]any) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, f.BaseURL()+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+f.SecretKey())
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatalf("%s %s: answer is not a JSON object: %v", method, path, err)
	}
	return resp.StatusCode, out
}

// firstError returns the code, message and param_name of a Clerk error body.
func firstError(t *testing.T, body map[string]any) (code, message, param string) {
	t.Helper()
	errs, _ := body["errors"].([]any)
	if len(errs) != 1 || body["clerk_trace_id"] == nil {
		t.Fatalf("not Clerk's error shape: %v", body)
	}
	e := errs[0].(map[string]any)
	if meta, ok := e["meta"].(map[string]any); ok {
		param, _ = meta["param_name"].(string)
	}
	return e["code"].(string), e["message"].(string), param
}

func TestCreateUserAnswersTheUserAndSendsUserCreated(t *testing.T) {
	t.Parallel()
	f := clerkfake.New(clerkfake.Options{Seed: 1, Users: 2})
	f.Start()
	t.Cleanup(f.Close)
	wh := receiveWebhooks(t, f)

	status, u := call(t, f, http.MethodPost, "/users",
		`{"email_address":["mary.jackson@example.com","mj@example.com"],"first_name":"Mary","last_name":"Jackson",
		  "username":"mjackson","external_id":"emp-1958","public_metadata":{"team":"aero"},"password":"not-stored-1958"}`)
	if status != http.StatusOK {
		t.Fatalf("POST /v1/users = %d %v, want 200 and the user (Clerk answers 200, not 201)", status, u)
	}
	id, _ := u["id"].(string)
	emails, _ := u["email_addresses"].([]any)
	if !strings.HasPrefix(id, "user_") || u["object"] != "user" || u["first_name"] != "Mary" || u["last_name"] != "Jackson" ||
		u["username"] != "mjackson" || u["external_id"] != "emp-1958" || len(emails) != 1 ||
		emails[0].(map[string]any)["email_address"] != "mary.jackson@example.com" ||
		u["primary_email_address_id"] != emails[0].(map[string]any)["id"] || u["public_metadata"].(map[string]any)["team"] != "aero" {
		t.Fatalf("created user %v", u)
	}
	if got, ok := f.User(id); !ok || got.Email != "mary.jackson@example.com" {
		t.Fatalf("the fake holds %+v, %v", got, ok)
	}
	status, got := call(t, f, http.MethodGet, "/users/"+id, "")
	if status != http.StatusOK || got["id"] != id {
		t.Fatalf("GET the new user = %d %v", status, got)
	}
	if m := f.MutationsOf("user.create"); len(m) != 1 || m[0].ID != id {
		t.Fatalf("recorded creations %+v", m)
	}

	types, data := wh.events(t, f)
	if len(types) != 1 || types[0] != "user.created" || data[0]["id"] != id || data[0]["first_name"] != "Mary" {
		t.Fatalf("webhooks %v %v, want one user.created for %s", types, data, id)
	}
}

func TestCreateUserRefusesAsClerkDoes(t *testing.T) {
	t.Parallel()
	f := clerkfake.New(clerkfake.Options{Seed: 1, Users: 1})
	f.Start()
	t.Cleanup(f.Close)
	existing, _ := f.User(f.UserIDs()[0])

	for _, tc := range []struct {
		name, body string
		status     int
		code       string
		param      string
	}{
		{"not JSON", `{"first_name":`, http.StatusBadRequest, "request_body_invalid", ""},
		{"not an object", `["x"]`, http.StatusBadRequest, "request_body_invalid", ""},
		{"unknown property", `{"first_name":"A","nickname":"a"}`, http.StatusUnprocessableEntity, "form_param_unknown", "nickname"},
		{"wrong type", `{"email_address":"a@example.com"}`, http.StatusUnprocessableEntity, "form_param_type_invalid", "email_address"},
		{"not an email address", `{"email_address":["nobody"]}`, http.StatusUnprocessableEntity, "form_param_format_invalid", "email_address"},
		{"bad created_at", `{"created_at":"yesterday"}`, http.StatusUnprocessableEntity, "form_param_invalid_time", "created_at"},
		{"email address taken", `{"email_address":["` + strings.ToUpper(existing.Email) + `"]}`, http.StatusUnprocessableEntity, "form_identifier_exists", "email_address"},
		{"username taken", `{"username":"` + existing.Username + `"}`, http.StatusUnprocessableEntity, "form_identifier_exists", "username"},
	} {
		status, body := call(t, f, http.MethodPost, "/users", tc.body)
		if status != tc.status {
			t.Errorf("%s: status %d, want %d (%v)", tc.name, status, tc.status, body)
			continue
		}
		if code, _, param := firstError(t, body); code != tc.code || param != tc.param {
			t.Errorf("%s: error %s (param %q), want %s (param %q)", tc.name, code, param, tc.code, tc.param)
		}
	}
	if _, msg, _ := firstError(t, mustCall(t, f, `{"email_address":["`+existing.Email+`"]}`)); msg != "That email address is taken. Please try another." {
		t.Errorf("identifier taken: message %q", msg)
	}
	if n := len(f.UserIDs()); n != 1 {
		t.Fatalf("%d users after refused creations, want 1", n)
	}
}

func mustCall(t *testing.T, f *clerkfake.Fake, body string) map[string]any {
	t.Helper()
	_, out := call(t, f, http.MethodPost, "/users", body)
	return out
}

func TestLockLeavesSessionsActive(t *testing.T) {
	t.Parallel()
	// Clerk revokes a banned user's sessions itself; a lock only stops new sign-ins until it
	// expires, and leaves the sessions to whoever revokes them.
	f := clerkfake.New(clerkfake.Options{Seed: 1, Users: 2, SessionsPerUser: 2})
	f.Start()
	t.Cleanup(f.Close)
	wh := receiveWebhooks(t, f)
	locked, banned := f.UserIDs()[0], f.UserIDs()[1]

	if status, u := call(t, f, http.MethodPost, "/users/"+locked+"/lock", ""); status != http.StatusOK || u["locked"] != true {
		t.Fatalf("lock = %d %v", status, u)
	}
	if status, u := call(t, f, http.MethodPost, "/users/"+banned+"/ban", ""); status != http.StatusOK || u["banned"] != true {
		t.Fatalf("ban = %d %v", status, u)
	}
	for _, s := range f.SessionsOf(locked) {
		if s.Status != "active" {
			t.Errorf("locked user's session %s is %s, want active", s.ID, s.Status)
		}
	}
	for _, s := range f.SessionsOf(banned) {
		if s.Status != "revoked" {
			t.Errorf("banned user's session %s is %s, want revoked", s.ID, s.Status)
		}
	}
	types, data := wh.events(t, f)
	if strings.Join(types, ",") != "user.updated,session.revoked,session.revoked,user.updated" ||
		data[0]["id"] != locked || data[0]["locked"] != true || data[3]["id"] != banned || data[3]["banned"] != true {
		t.Fatalf("webhooks %v, want the lock's user.updated, then the ban's revocations and user.updated", types)
	}
}
