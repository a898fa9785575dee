//go:build unix

package clerk_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"iter"
	"log/slog"
	"net/http"
	"net/url"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/idpsync/idpsync/internal/events"
	"github.com/idpsync/idpsync/internal/idpclient"
	"github.com/idpsync/idpsync/internal/provider"
	"github.com/idpsync/idpsync/internal/provider/clerk"
)

// contractOps are the operations of Clerk's spec that idpsync's Clerk client calls: the test
// fails unless it sent each of them, and each request validated.
var contractOps = []string{
	"GetUserList", "GetUsersCount", "GetUser", "BanUser", "UnbanUser", "LockUser", "UnlockUser", "DeleteUser",
	"ListOrganizations", "GetOrganization", "ListOrganizationMemberships",
	"GetSessionList", "RevokeSession",
	"CreateSvixApp", "GenerateSvixAuthURL",
}

// TestContract sends every request of the Clerk client, as idpsync configures and uses it, to
// Prism serving Clerk's published Backend API spec (testdata/openapi). A request that does not
// validate against the spec fails the test with Prism's account of it, and so does an answer
// that the client's types cannot decode. `make contract` installs Prism and runs it; without
// Prism the test skips.
func TestContract(t *testing.T) {
	m := startPrism(t)
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	seen := map[string]bool{}
	// expect takes the exchanges of the last call, reports every problem in them, and checks
	// that they were the operations ops, in that order.
	expect := func(t *testing.T, ops ...string) []exchange {
		t.Helper()
		got := m.take()
		var gotOps []string
		for _, e := range got {
			for _, p := range e.Problems {
				t.Errorf("%s: %s", e, p)
			}
			if e.Status < 200 || e.Status > 299 {
				t.Errorf("%s: Prism answered %d", e, e.Status)
			}
			gotOps = append(gotOps, e.Operation)
			seen[e.Operation] = true
		}
		if !slices.Equal(gotOps, ops) {
			t.Fatalf("the call sent %v, want %v:\n%s", gotOps, ops, exchangesText(got))
		}
		return got
	}
	newClient := func(t *testing.T, pageSize int) *clerk.Client {
		t.Helper()
		c, err := clerk.New(clerk.Config{SecretKey: "sk_test_contract", BaseURL: m.BaseURL, PageSize: pageSize,
			HTTPClient: &http.Client{Timeout: 30 * time.Second}, Retry: idpclient.RetryPolicy{MaxAttempts: 1}})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	// Pages of two, as Prism's pages have two items: every page is full, so the iterators go on
	// to the next one, and the test reads three items to see the second request.
	c := newClient(t, 2)

	t.Run("the default base URL is the spec's server", func(t *testing.T) {
		if clerk.DefaultBaseURL != m.ServerURL {
			t.Fatalf("clerk.DefaultBaseURL is %q, the spec's server is %q", clerk.DefaultBaseURL, m.ServerURL)
		}
	})

	t.Run("the harness reports requests that break the spec", func(t *testing.T) {
		send := func(method, path string) exchange {
			t.Helper()
			req, _ := http.NewRequestWithContext(ctx, method, strings.TrimSuffix(m.BaseURL, m.spec.basePath)+path, nil)
			req.Header.Set("Authorization", "Bearer sk_test_contract")
			resp, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
			if err != nil {
				t.Fatal(err)
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			got := m.take()
			if len(got) != 1 {
				t.Fatalf("recorded %d exchanges, want 1", len(got))
			}
			return got[0]
		}
		for _, tc := range []struct {
			method, path string
			status       int
			problem      string
		}{
			{"GET", "/v1/users?limit=501", 422, "Request query parameter limit must be <= 500"},
			{"GET", "/v1/sessions?user_id=user_1&status=pending", 422, "Request query parameter status must be equal to one of the allowed values"},
			{"GET", "/v1/users?limt=5", 200, `query parameter "limt" is not one of GetUserList's parameters`},
			{"PUT", "/v1/users/user_1/ban", 405, "the spec has no operation PUT /users/user_1/ban"},
			{"GET", "/users", 404, "the path is outside the spec's server https://api.clerk.com/v1"},
		} {
			e := send(tc.method, tc.path)
			if e.Status != tc.status || !strings.Contains(strings.Join(e.Problems, "\n"), tc.problem) {
				t.Errorf("%s %s: %d %q, want %d and a problem %q", tc.method, tc.path, e.Status, e.Problems, tc.status, tc.problem)
			}
		}
	})

	t.Run("GET /users: creation order from an offset, a page at a time", func(t *testing.T) {
		users := take(t, c.ListUsers(ctx, &clerk.ListUsersParams{ListParams: clerk.ListParams{Offset: 3}}), 3)
		got := expect(t, "GetUserList", "GetUserList")
		wantQuery(t, got[0], "limit=2&offset=3&order_by=%2Bcreated_at")
		wantQuery(t, got[1], "limit=2&offset=5&order_by=%2Bcreated_at")
		for _, u := range users {
			wantDecoded(t, "user", u.ID, u, u.Raw)
		}
	})

	t.Run("GET /users: every filter the client has", func(t *testing.T) {
		banned := false
		take(t, c.ListUsers(ctx, &clerk.ListUsersParams{
			ListParams: clerk.ListParams{Limit: 1, OrderBy: "-updated_at"},
			UserIDs:    []string{"user_1", "user_2"}, EmailAddresses: []string{"a@example.com"}, ExternalIDs: []string{"ext_1"},
			OrganizationIDs: []string{"org_1"}, Query: "ann", Banned: &banned,
		}), 1)
		got := expect(t, "GetUserList")
		wantQuery(t, got[0], "banned=false&email_address=a%40example.com&external_id=ext_1&limit=1&offset=0&order_by=-updated_at&organization_id=org_1&query=ann&user_id=user_1&user_id=user_2")
	})

	t.Run("GET /users: one page, the limit lowered to the spec's maximum", func(t *testing.T) {
		users, err := newClient(t, 0).ListUsersPage(ctx, &clerk.ListUsersParams{ListParams: clerk.ListParams{Limit: 1000, Offset: 10}})
		got := expect(t, "GetUserList")
		if err != nil {
			t.Fatal(err)
		}
		wantQuery(t, got[0], "limit=500&offset=10")
		if len(users) == 0 {
			t.Fatal("no users decoded")
		}
		wantDecoded(t, "user", users[0].ID, users[0], users[0].Raw)
	})

	t.Run("GET /users/count", func(t *testing.T) {
		n, err := c.CountUsers(ctx, &clerk.ListUsersParams{EmailAddresses: []string{"a@example.com"}, Query: "ann"})
		got := expect(t, "GetUsersCount")
		if err != nil {
			t.Fatal(err)
		}
		wantQuery(t, got[0], "email_address=a%40example.com&query=ann")
		if n == 0 {
			t.Error("CountUsers decoded no total_count")
		}
	})

	t.Run("GET /users/{user_id}", func(t *testing.T) {
		u, err := c.GetUser(ctx, "user_2g7np7Hrk0SN6kj5EDMLDaKNL0S")
		got := expect(t, "GetUser")
		if err != nil {
			t.Fatal(err)
		}
		wantPath(t, got[0], "/users/user_2g7np7Hrk0SN6kj5EDMLDaKNL0S")
		wantDecoded(t, "user", u.ID, *u, u.Raw)
	})

	for _, action := range []struct {
		op   string
		call func(context.Context, string) (*clerk.User, error)
		path string
	}{
		{"BanUser", c.BanUser, "ban"},
		{"UnbanUser", c.UnbanUser, "unban"},
		{"LockUser", c.LockUser, "lock"},
		{"UnlockUser", c.UnlockUser, "unlock"},
	} {
		t.Run("POST /users/{user_id}/"+action.path, func(t *testing.T) {
			u, err := action.call(ctx, "user_1")
			got := expect(t, action.op)
			if err != nil {
				t.Fatal(err)
			}
			wantPath(t, got[0], "/users/user_1/"+action.path)
			wantDecoded(t, "user", u.ID, *u, u.Raw)
		})
	}

	t.Run("DELETE /users/{user_id}", func(t *testing.T) {
		d, err := c.DeleteUser(ctx, "user_1")
		got := expect(t, "DeleteUser")
		if err != nil {
			t.Fatal(err)
		}
		wantPath(t, got[0], "/users/user_1")
		if d.Object == "" {
			t.Errorf("DeleteUser decoded %+v", d)
		}
	})

	t.Run("GET /organizations", func(t *testing.T) {
		orgs := take(t, c.ListOrganizations(ctx, &clerk.ListOrganizationsParams{Query: "acme", IncludeMembersCount: true}), 3)
		got := expect(t, "ListOrganizations", "ListOrganizations")
		wantQuery(t, got[0], "include_members_count=true&limit=2&offset=0&order_by=%2Bcreated_at&query=acme")
		wantQuery(t, got[1], "include_members_count=true&limit=2&offset=2&order_by=%2Bcreated_at&query=acme")
		for _, o := range orgs {
			wantDecoded(t, "organization", o.ID, o, o.Raw)
		}
	})

	t.Run("GET /organizations/{organization_id}", func(t *testing.T) {
		o, err := c.GetOrganization(ctx, "acme-corp")
		got := expect(t, "GetOrganization")
		if err != nil {
			t.Fatal(err)
		}
		wantPath(t, got[0], "/organizations/acme-corp")
		wantDecoded(t, "organization", o.ID, *o, o.Raw)
	})

	t.Run("GET /organizations/{organization_id}/memberships", func(t *testing.T) {
		// One page: whether Prism's total_count asks for a second depends on its generator; the
		// adapters' test below starts from an offset.
		ms := take(t, c.ListOrganizationMemberships(ctx, &clerk.ListOrganizationMembershipsParams{
			OrganizationID: "org_1", UserIDs: []string{"user_1"}, Roles: []string{"org:admin"}}), 2)
		got := expect(t, "ListOrganizationMemberships")
		wantPath(t, got[0], "/organizations/org_1/memberships")
		wantQuery(t, got[0], "limit=2&offset=0&order_by=%2Bcreated_at&role=org%3Aadmin&user_id=user_1")
		for _, m := range ms {
			wantDecoded(t, "membership", m.ID, m, m.Raw)
		}
	})

	t.Run("GET /sessions: the bare array the spec documents", func(t *testing.T) {
		// The client asks for paginated=true, to which Clerk answers {data,total_count} (as its
		// Go SDK expects; see TestListSessionsReadsBothPageShapes); the spec documents a bare
		// array, which is what Prism answers, and the client reads both.
		ss := take(t, c.ListSessions(ctx, &clerk.ListSessionsParams{UserID: "user_1", Status: "active"}), 3)
		got := expect(t, "GetSessionList", "GetSessionList")
		wantQuery(t, got[0], "limit=2&offset=0&paginated=true&status=active&user_id=user_1")
		wantQuery(t, got[1], "limit=2&offset=2&paginated=true&status=active&user_id=user_1")
		for _, s := range ss {
			wantDecoded(t, "session", s.ID, s, s.Raw)
		}
		take(t, c.ListSessions(ctx, &clerk.ListSessionsParams{ClientID: "client_1"}), 1)
		got = expect(t, "GetSessionList")
		wantQuery(t, got[0], "client_id=client_1&limit=2&offset=0&paginated=true")
	})

	t.Run("POST /sessions/{session_id}/revoke", func(t *testing.T) {
		s, err := c.RevokeSession(ctx, "sess_1")
		got := expect(t, "RevokeSession")
		if err != nil {
			t.Fatal(err)
		}
		wantPath(t, got[0], "/sessions/sess_1/revoke")
		wantDecoded(t, "session", s.ID, *s, s.Raw)
	})

	t.Run("POST /webhooks/svix and POST /webhooks/svix_url", func(t *testing.T) {
		created, err := c.CreateSvixApp(ctx)
		got := expect(t, "CreateSvixApp")
		if err != nil {
			t.Fatal(err)
		}
		wantPath(t, got[0], "/webhooks/svix")
		link, err := c.GenerateSvixAuthURL(ctx)
		got = expect(t, "GenerateSvixAuthURL")
		if err != nil {
			t.Fatal(err)
		}
		wantPath(t, got[0], "/webhooks/svix_url")
		if created.SvixURL == "" || link.SvixURL == "" {
			t.Errorf("no svix_url decoded: %+v, %+v", created, link)
		}
	})

	t.Run("arguments the spec forbids are refused before anything is sent", func(t *testing.T) {
		// Offsets below the spec's minimum of 0, and empty ids where its paths require one (an
		// empty user id would send GET /users/, or DELETE /users/, whose 404 reads as "gone").
		for name, call := range forbiddenCalls(ctx, c) {
			err := call()
			for _, e := range m.take() {
				t.Errorf("%s sent %s: %q", name, e, e.Problems)
			}
			if !errors.Is(err, idpclient.ErrValidation) {
				t.Errorf("%s: %v, want ErrValidation", name, err)
			}
		}
	})

	t.Run("the adapters the jobs use, as idpsync connects them", func(t *testing.T) {
		p, _ := provider.Lookup(clerk.Kind)
		conn, err := p.API.ConnectFunc(provider.APISettings{Source: "contract", BaseURL: m.BaseURL, SecretKey: "sk_test_contract",
			HTTPClient: &http.Client{Timeout: 30 * time.Second}, UserAgent: "idpsync-contract-test", Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			t.Fatal(err)
		}
		// list reads a whole listing; like take, it leaves stopping the test to the caller.
		list := func(entity events.Entity, from string) []provider.Item {
			t.Helper()
			var items []provider.Item
			for it, err := range conn.Directory.List(ctx, entity, provider.Checkpoint(from)) {
				if err != nil {
					t.Errorf("listing %s: %v", entity, err)
					return items
				}
				if it.Err != nil {
					t.Errorf("listing %s: %s: %v", entity, it.Key, it.Err)
				}
				items = append(items, it)
			}
			if len(items) == 0 {
				t.Errorf("listing %s yielded nothing", entity)
			}
			return items
		}

		users := list(events.EntityUser, `{"offset":7}`)
		got := expect(t, "GetUserList")
		wantQuery(t, got[0], "limit=500&offset=7&order_by=%2Bcreated_at")
		stopIf(t, len(users) == 0)
		if _, err := conn.Directory.Get(ctx, events.EntityUser, users[0].Key); err != nil {
			t.Errorf("reading user %s: %v", users[0].Key, err)
		}
		expect(t, "GetUser")

		orgs := list(events.EntityOrganization, "")
		got = expect(t, "ListOrganizations")
		wantQuery(t, got[0], "limit=500&offset=0&order_by=%2Bcreated_at")
		stopIf(t, len(orgs) == 0)
		if _, err := conn.Directory.Get(ctx, events.EntityOrganization, orgs[0].Key); err != nil {
			t.Errorf("reading organization %s: %v", orgs[0].Key, err)
		}
		expect(t, "GetOrganization")

		members := list(events.EntityMembership, `{"org":1,"offset":4}`)
		// From the second organization on (the checkpoint's org), its memberships from the
		// checkpoint's offset, then the next organization's from the start.
		got = expect(t, "ListOrganizations", "ListOrganizationMemberships", "ListOrganizationMemberships")
		wantQuery(t, got[0], "limit=500&offset=1&order_by=%2Bcreated_at")
		wantQuery(t, got[1], "limit=500&offset=4&order_by=%2Bcreated_at")
		wantQuery(t, got[2], "limit=500&offset=0&order_by=%2Bcreated_at")
		stopIf(t, len(members) == 0)
		// Prism answers every request for one schema alike, so the membership listed is found again.
		if _, err := conn.Directory.Get(ctx, events.EntityMembership, members[0].Key); err != nil {
			t.Errorf("reading membership %s: %v", members[0].Key, err)
		}
		got = expect(t, "ListOrganizationMemberships")
		orgID, userID, _ := strings.Cut(members[0].Key, "/")
		wantPath(t, got[0], "/organizations/"+url.PathEscape(orgID)+"/memberships")
		wantQuery(t, got[0], "limit=500&offset=0&order_by=%2Bcreated_at&user_id="+url.QueryEscape(userID))

		var sessions []string
		for id, err := range conn.Sessions.ActiveSessions(ctx, "user_1") {
			if err != nil {
				t.Error(err)
				break
			}
			sessions = append(sessions, id)
		}
		got = expect(t, "GetSessionList")
		wantQuery(t, got[0], "limit=500&offset=0&paginated=true&status=active&user_id=user_1")
		if len(sessions) == 0 {
			t.Fatal("no active session listed")
		}
		if err := conn.Sessions.RevokeSession(ctx, sessions[0]); err != nil {
			t.Error(err)
		}
		got = expect(t, "RevokeSession")
		wantPath(t, got[0], "/sessions/"+url.PathEscape(sessions[0])+"/revoke")

		// The registrar: Prism answers the dashboard link, so the instance has a Svix app and
		// the plan sends nothing, leaving the operator the steps with the link.
		for name, planFunc := range map[string]func(context.Context, string) (*provider.RegistrationPlan, error){
			"registration": conn.Registrar.PlanRegistration, "removal": conn.Registrar.PlanRemoval,
		} {
			plan, err := planFunc(ctx, "https://hooks.example.com/webhooks/clerk-prod")
			got = expect(t, "GenerateSvixAuthURL")
			wantPath(t, got[0], "/webhooks/svix_url")
			if err != nil {
				t.Fatalf("planning the %s: %v", name, err)
			}
			if len(plan.Steps) != 0 || len(plan.Found) != 1 || len(plan.Manual) == 0 {
				t.Errorf("%s plan = %+v", name, plan)
			}
		}
	})

	t.Run("every operation the client calls was exercised", func(t *testing.T) {
		for _, op := range contractOps {
			if !seen[op] {
				t.Errorf("no request of the client reached operation %s", op)
			}
		}
	})
}

// take reads n items of seq and stops it. It reports an error or a short list without stopping
// the test, so that expect, called next, shows what the mock made of the requests.
func take[T any](t *testing.T, seq iter.Seq2[T, error], n int) []T {
	t.Helper()
	var out []T
	for v, err := range seq {
		if err != nil {
			t.Errorf("after %d items: %v", len(out), err)
			return out
		}
		out = append(out, v)
		if len(out) == n {
			break
		}
	}
	if len(out) != n {
		t.Errorf("read %d items, want %d", len(out), n)
	}
	return out
}

// stopIf stops a test that already reported why, when it cannot go on.
func stopIf(t *testing.T, cond bool) {
	t.Helper()
	if cond {
		t.FailNow()
	}
}

func wantQuery(t *testing.T, e exchange, want string) {
	t.Helper()
	if got := e.Query.Encode(); got != want {
		t.Errorf("%s: query %s, want %s", e, got, want)
	}
}

func wantPath(t *testing.T, e exchange, want string) {
	t.Helper()
	if e.Path != want {
		t.Errorf("%s: path %s, want %s", e, e.Path, want)
	}
}

// wantDecoded checks an item the client decoded: it has an id, kept its raw JSON, and each field
// of the client's type (and of the types it nests) is a property of the answer. Prism generates
// every property a schema defines, so a field missing from the answer is one that the spec does
// not define: the client would read nothing there from Clerk either.
func wantDecoded(t *testing.T, what, id string, v any, raw json.RawMessage) {
	t.Helper()
	if id == "" || len(raw) == 0 {
		t.Errorf("%s decoded without id or raw JSON: %+v", what, v)
		return
	}
	var doc any
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	for _, missing := range fieldsNotIn(reflect.TypeOf(v), doc, what) {
		t.Errorf("the client reads %s, which the spec's answer does not have", missing)
	}
}

var rawMessageType = reflect.TypeFor[json.RawMessage]()

func fieldsNotIn(typ reflect.Type, doc any, at string) []string {
	for typ.Kind() == reflect.Pointer {
		typ = typ.Elem()
	}
	switch typ.Kind() {
	case reflect.Slice:
		if typ == rawMessageType {
			return nil
		}
		var out []string
		items, _ := doc.([]any)
		for i, item := range items {
			out = append(out, fieldsNotIn(typ.Elem(), item, at+"["+strconv.Itoa(i)+"]")...)
		}
		return out
	case reflect.Struct:
		obj, ok := doc.(map[string]any)
		if !ok {
			return nil // null where the schema allows it
		}
		var out []string
		for f := range typ.Fields() {
			name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			if !f.IsExported() || name == "-" || name == "" {
				continue
			}
			sub, ok := obj[name]
			if !ok {
				out = append(out, at+"."+name)
				continue
			}
			out = append(out, fieldsNotIn(f.Type, sub, at+"."+name)...)
		}
		return out
	}
	return nil
}

func exchangesText(es []exchange) string {
	var b strings.Builder
	for _, e := range es {
		b.WriteString("  " + e.String() + "\n")
	}
	return b.String()
}
