package clerk_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"

	"github.com/idpsync/idpsync/internal/idpclient"
	"github.com/idpsync/idpsync/internal/provider/clerk"
	"github.com/idpsync/idpsync/internal/provider/clerk/clerkfake"
)

func fixture(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// specServer answers each route with its fixture and checks the secret key.
func specServer(t *testing.T, routes map[string]string) string {
	t.Helper()
	mux := http.NewServeMux()
	for pattern, file := range routes {
		body := fixture(t, file)
		mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
			if r.Header.Get("Authorization") != "Bearer sk_test_spec" {
				t.Errorf("%s: Authorization header is %q", pattern, r.Header.Get("Authorization"))
			}
			status := http.StatusOK
			switch file {
			case "error_not_found.json":
				status = http.StatusNotFound
			case "error_validation.json":
				status = http.StatusUnprocessableEntity
			}
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(status)
			_, _ = w.Write(body)
		})
	}
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv.URL + "/v1"
}

func sameJSON(t *testing.T, what string, got, want []byte) {
	t.Helper()
	var g, w any
	if err := json.Unmarshal(got, &g); err != nil {
		t.Fatalf("%s: Raw is not JSON: %v", what, err)
	}
	_ = json.Unmarshal(want, &w)
	gb, _ := json.Marshal(g)
	wb, _ := json.Marshal(w)
	if !bytes.Equal(gb, wb) {
		t.Fatalf("%s: Raw differs from the item sent\n got %s\nwant %s", what, gb, wb)
	}
}

func compact(b []byte) string {
	var out bytes.Buffer
	if err := json.Compact(&out, b); err != nil {
		return string(b)
	}
	return out.String()
}

func item(t *testing.T, file string, path ...any) []byte {
	t.Helper()
	var v any
	if err := json.Unmarshal(fixture(t, file), &v); err != nil {
		t.Fatal(err)
	}
	for _, p := range path {
		switch k := p.(type) {
		case string:
			v = v.(map[string]any)[k]
		case int:
			v = v.([]any)[k]
		}
	}
	b, _ := json.Marshal(v)
	return b
}

// TestDecodesSpecExamples runs every call of the client against the examples of Clerk's spec.
func TestDecodesSpecExamples(t *testing.T) {
	t.Parallel()
	base := specServer(t, map[string]string{
		"GET /v1/users":                             "users.json",
		"GET /v1/users/count":                       "users_count.json",
		"GET /v1/users/{id}":                        "user.json",
		"POST /v1/users/{id}/ban":                   "user.json",
		"DELETE /v1/users/{id}":                     "deleted_user.json",
		"GET /v1/organizations":                     "organizations.json",
		"GET /v1/organizations/{id}/memberships":    "organization_memberships.json",
		"GET /v1/sessions":                          "sessions_paginated.json",
		"POST /v1/sessions/{id}/revoke":             "session.json",
		"GET /v1/organizations/org_missing":         "error_not_found.json",
		"GET /v1/organizations/org_bad/memberships": "error_validation.json",
	})
	c, err := clerk.New(clerk.Config{SecretKey: "sk_test_spec", BaseURL: base, Retry: fastRetry})
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()

	var users []clerk.User
	for u, err := range c.ListUsers(ctx, nil) {
		if err != nil {
			t.Fatal(err)
		}
		users = append(users, u)
	}
	if len(users) != 1 {
		t.Fatalf("listed %d users, want 1", len(users))
	}
	u := users[0]
	if u.ID != "user_2g7np7Hrk0SN6kj5EDMLDaKNL0S" || *u.FirstName != "John" || *u.LastName != "Doe" || u.Username != nil ||
		u.CreatedAt != 1716883200000 || !u.PasswordEnabled || u.Banned || u.ExternalID != nil {
		t.Fatalf("user decoded wrongly: %+v", u)
	}
	sameJSON(t, "listed user", u.Raw, item(t, "users.json", 0))

	if n, err := c.CountUsers(ctx, nil); err != nil || n != 2 {
		t.Fatalf("CountUsers = %d, %v; want 2", n, err)
	}
	got, err := c.GetUser(ctx, u.ID)
	if err != nil {
		t.Fatal(err)
	}
	if *got.Username != "johndoe" || *got.LastName != "Doe Updated" || compact(got.PublicMetadata) != `{"department":"engineering"}` {
		t.Fatalf("GetUser decoded wrongly: %+v", got)
	}
	sameJSON(t, "user", got.Raw, fixture(t, "user.json"))
	if banned, err := c.BanUser(ctx, u.ID); err != nil || banned.ID != u.ID {
		t.Fatalf("BanUser = %+v, %v", banned, err)
	}
	del, err := c.DeleteUser(ctx, u.ID)
	if err != nil || !del.Deleted || del.Object != "user" || del.ID != u.ID || del.ExternalID == nil || *del.ExternalID != "ex_123456789" {
		t.Fatalf("DeleteUser = %+v, %v", del, err)
	}

	for o, err := range c.ListOrganizations(ctx, nil) {
		if err != nil {
			t.Fatal(err)
		}
		if o.ID != "org_2g7np7Hrk0SN6kj5EDMLDaKNL0S" || o.Slug != "acme-corp" || o.MembersCount == nil || *o.MembersCount != 1 || o.MaxAllowedMemberships != 5 {
			t.Fatalf("organization decoded wrongly: %+v", o)
		}
		sameJSON(t, "organization", o.Raw, item(t, "organizations.json", "data", 0))
	}
	for m, err := range c.ListOrganizationMemberships(ctx, &clerk.ListOrganizationMembershipsParams{OrganizationID: "org_2g7np7Hrk0SN6kj5EDMLDaKNL0S"}) {
		if err != nil {
			t.Fatal(err)
		}
		if m.Role != "org:member" || m.UserID() != "user_2h8op3Isl1QR7tKu5FGNfaLKEoU" || m.Organization.ID != "org_2g7np7Hrk0SN6kj5EDMLDaKNL0S" ||
			len(m.Permissions) != 2 || len(m.Organization.Raw) == 0 {
			t.Fatalf("membership decoded wrongly: %+v", m)
		}
		sameJSON(t, "membership", m.Raw, item(t, "organization_memberships.json", "data", 0))
	}
	for s, err := range c.ListSessions(ctx, &clerk.ListSessionsParams{UserID: "user_2g7np7Hrk0SN6kj5EDMLDaKNL0S"}) {
		if err != nil {
			t.Fatal(err)
		}
		if s.ID != "sess_2g7np7Hrk0SN6kj5EDMLDaKNL0S" || s.Status != "revoked" || s.ExpireAt != 1716969600000 {
			t.Fatalf("session decoded wrongly: %+v", s)
		}
		sameJSON(t, "session", s.Raw, item(t, "sessions_paginated.json", "data", 0))
	}
	if s, err := c.RevokeSession(ctx, "sess_2g7np7Hrk0SN6kj5EDMLDaKNL0S"); err != nil || s.Status != "revoked" {
		t.Fatalf("RevokeSession = %+v, %v", s, err)
	}

	_, err = c.GetOrganization(ctx, "org_missing")
	var apiErr *idpclient.APIError
	if !errors.Is(err, idpclient.ErrNotFound) || !errors.As(err, &apiErr) || apiErr.Code != "resource_not_found" ||
		apiErr.RequestID != "e5b6c6a5a9b5f1e2d3c4b5a697887766" || apiErr.Message != "Resource not found" {
		t.Fatalf("404: %#v", err)
	}
	for _, err := range c.ListOrganizationMemberships(ctx, &clerk.ListOrganizationMembershipsParams{OrganizationID: "org_bad"}) {
		if !errors.Is(err, idpclient.ErrValidation) || !errors.As(err, &apiErr) || len(apiErr.Fields) != 2 ||
			apiErr.Fields[0].Field != "limit" || apiErr.Fields[1].Field != "offset" {
			t.Fatalf("422: %#v", err)
		}
	}
}

// TestFixturesAndFakeCarryRequiredFields checks the fixtures, and what the fake serves, against
// the required properties of the BAPI schemas.
func TestFixturesAndFakeCarryRequiredFields(t *testing.T) {
	t.Parallel()
	var required map[string][]string
	if err := json.Unmarshal(fixture(t, "bapi_required.json"), &required); err != nil {
		t.Fatal(err)
	}
	check := func(what, schema string, raw []byte) {
		t.Helper()
		var obj map[string]json.RawMessage
		if err := json.Unmarshal(raw, &obj); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		for _, k := range required[schema] {
			if _, ok := obj[k]; !ok {
				t.Errorf("%s lacks %s.%s, required by the BAPI spec", what, schema, k)
			}
		}
	}
	check("users.json", "User", item(t, "users.json", 0))
	check("user.json", "User", fixture(t, "user.json"))
	check("organizations.json", "Organization", item(t, "organizations.json", "data", 0))
	check("organization_memberships.json", "OrganizationMembership", item(t, "organization_memberships.json", "data", 0))
	check("session.json", "Session", fixture(t, "session.json"))
	check("deleted_user.json", "DeletedObject", fixture(t, "deleted_user.json"))
	check("users_count.json", "TotalCount", fixture(t, "users_count.json"))
	check("error_not_found.json", "ClerkErrors", fixture(t, "error_not_found.json"))

	f, base := startFake(t, clerkfake.Options{Users: 3, Organizations: 1, MembersPerOrganization: 2, SessionsPerUser: 1})
	c := newClient(t, base, f.SecretKey())
	ctx := t.Context()
	for u, err := range c.ListUsers(ctx, nil) {
		if err != nil {
			t.Fatal(err)
		}
		check("fake user", "User", u.Raw)
		for s, err := range c.ListSessions(ctx, &clerk.ListSessionsParams{UserID: u.ID}) {
			if err != nil {
				t.Fatal(err)
			}
			check("fake session", "Session", s.Raw)
		}
	}
	for o, err := range c.ListOrganizations(ctx, nil) {
		if err != nil {
			t.Fatal(err)
		}
		check("fake organization", "Organization", o.Raw)
		for m, err := range c.ListOrganizationMemberships(ctx, &clerk.ListOrganizationMembershipsParams{OrganizationID: o.ID}) {
			if err != nil {
				t.Fatal(err)
			}
			check("fake membership", "OrganizationMembership", m.Raw)
		}
	}
	_, err := c.GetUser(ctx, "user_missing")
	var apiErr *idpclient.APIError
	if !errors.As(err, &apiErr) || apiErr.Code != "resource_not_found" || apiErr.RequestID == "" {
		t.Fatalf("fake 404 = %#v, want Clerk's error shape with a trace id", err)
	}
}
