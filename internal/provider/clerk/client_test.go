package clerk_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"iter"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"sync"
	"testing"

	"github.com/idpsync/idpsync/internal/idpclient"
	"github.com/idpsync/idpsync/internal/provider/clerk"
	"github.com/idpsync/idpsync/internal/provider/clerk/clerkfake"
)

// forbiddenCalls are calls whose arguments Clerk's spec does not allow: offsets below its minimum
// of 0, and empty ids where its paths require one. The client refuses each before sending
// anything (TestRefusesWhatTheSpecForbids, and TestContract against the spec itself).
func forbiddenCalls(ctx context.Context, c *clerk.Client) map[string]func() error {
	negative := clerk.ListParams{Offset: -1}
	return map[string]func() error{
		"ListUsers offset -1": func() error {
			return firstErr(c.ListUsers(ctx, &clerk.ListUsersParams{ListParams: negative}))
		},
		"ListUsersPage offset -1": func() error {
			_, err := c.ListUsersPage(ctx, &clerk.ListUsersParams{ListParams: negative})
			return err
		},
		"ListOrganizations offset -1": func() error {
			return firstErr(c.ListOrganizations(ctx, &clerk.ListOrganizationsParams{ListParams: negative}))
		},
		"ListOrganizationMemberships offset -1": func() error {
			return firstErr(c.ListOrganizationMemberships(ctx, &clerk.ListOrganizationMembershipsParams{OrganizationID: "org_1", ListParams: negative}))
		},
		"ListOrganizationMemberships empty organization": func() error {
			return firstErr(c.ListOrganizationMemberships(ctx, &clerk.ListOrganizationMembershipsParams{}))
		},
		"ListSessions offset -1": func() error {
			return firstErr(c.ListSessions(ctx, &clerk.ListSessionsParams{UserID: "user_1", ListParams: negative}))
		},
		"ListSessions without user or client": func() error {
			return firstErr(c.ListSessions(ctx, &clerk.ListSessionsParams{Status: "active"}))
		},
		"GetUser empty id":         func() error { _, err := c.GetUser(ctx, ""); return err },
		"BanUser empty id":         func() error { _, err := c.BanUser(ctx, ""); return err },
		"UnbanUser empty id":       func() error { _, err := c.UnbanUser(ctx, ""); return err },
		"LockUser empty id":        func() error { _, err := c.LockUser(ctx, ""); return err },
		"UnlockUser empty id":      func() error { _, err := c.UnlockUser(ctx, ""); return err },
		"DeleteUser empty id":      func() error { _, err := c.DeleteUser(ctx, ""); return err },
		"GetOrganization empty id": func() error { _, err := c.GetOrganization(ctx, ""); return err },
		"RevokeSession empty id":   func() error { _, err := c.RevokeSession(ctx, ""); return err },
	}
}

// firstErr returns the first error of seq, or an error saying there was none.
func firstErr[T any](seq iter.Seq2[T, error]) error {
	for _, err := range seq {
		if err != nil {
			return err
		}
	}
	return errors.New("the list yielded no error")
}

func TestRefusesWhatTheSpecForbids(t *testing.T) {
	t.Parallel()
	f, base := startFake(t, clerkfake.Options{Users: 3, Organizations: 1, MembersPerOrganization: 1, SessionsPerUser: 1})
	c := newClient(t, base, f.SecretKey())
	for name, call := range forbiddenCalls(t.Context(), c) {
		if err := call(); !errors.Is(err, idpclient.ErrValidation) || errors.Is(err, idpclient.ErrNotFound) {
			t.Errorf("%s: %v, want ErrValidation", name, err)
		}
	}
	if reqs := f.Requests(); len(reqs) != 0 {
		t.Fatalf("the refused calls sent %d requests, the first %s %s", len(reqs), reqs[0].Method, reqs[0].Path)
	}
}

// sessionPages serves GET /v1/sessions from n sessions, newest first, in the shape
// {data,total_count} (paginated) or as a bare array, honouring limit and offset, and records the
// offsets asked for.
type sessionPages struct {
	n         int
	paginated bool
	mu        sync.Mutex
	offsets   []int
}

func (p *sessionPages) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if r.URL.Path != "/v1/sessions" || q.Get("paginated") != "true" || q.Get("user_id") != "user_1" {
		http.Error(w, "unexpected request "+r.URL.String(), http.StatusBadRequest)
		return
	}
	limit, _ := strconv.Atoi(q.Get("limit"))
	offset, _ := strconv.Atoi(q.Get("offset"))
	p.mu.Lock()
	p.offsets = append(p.offsets, offset)
	p.mu.Unlock()
	page := []map[string]any{}
	for i := offset; i < p.n && i < offset+limit; i++ {
		page = append(page, map[string]any{"object": "session", "id": fmt.Sprintf("sess_%d", i), "user_id": "user_1", "status": "active"})
	}
	w.Header().Set("Content-Type", "application/json")
	if p.paginated {
		_ = json.NewEncoder(w).Encode(map[string]any{"data": page, "total_count": p.n})
		return
	}
	_ = json.NewEncoder(w).Encode(page)
}

// TestListSessionsReadsBothPageShapes pages through GET /sessions answered as Clerk answers
// paginated=true ({data,total_count}, as its Go SDK decodes it) and as Clerk's spec documents it
// (a bare array; TestContract runs that shape against the spec).
func TestListSessionsReadsBothPageShapes(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name        string
		n           int
		paginated   bool
		wantOffsets []int
	}{
		// The total ends the list: a full last page asks for no empty one after it.
		{"data and total_count, a full last page", 4, true, []int{0, 2}},
		{"data and total_count, a short last page", 5, true, []int{0, 2, 4}},
		// Without a total, only a short (here empty) page ends the list.
		{"bare array, a full last page", 4, false, []int{0, 2, 4}},
		{"bare array, a short last page", 3, false, []int{0, 2}},
		{"data and total_count, empty", 0, true, []int{0}},
		{"bare array, empty", 0, false, []int{0}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			pages := &sessionPages{n: tc.n, paginated: tc.paginated}
			srv := httptest.NewServer(pages)
			t.Cleanup(srv.Close)
			c, err := clerk.New(clerk.Config{SecretKey: "sk_test_pages", BaseURL: srv.URL + "/v1", PageSize: 2, Retry: fastRetry})
			if err != nil {
				t.Fatal(err)
			}
			var ids []string
			for s, err := range c.ListSessions(t.Context(), &clerk.ListSessionsParams{UserID: "user_1"}) {
				if err != nil {
					t.Fatal(err)
				}
				if s.UserID != "user_1" || s.Status != "active" || len(s.Raw) == 0 {
					t.Fatalf("session decoded wrongly: %+v", s)
				}
				ids = append(ids, s.ID)
			}
			var want []string
			for i := range tc.n {
				want = append(want, fmt.Sprintf("sess_%d", i))
			}
			if !slices.Equal(ids, want) {
				t.Errorf("listed %v, want %v", ids, want)
			}
			if !slices.Equal(pages.offsets, tc.wantOffsets) {
				t.Errorf("asked for offsets %v, want %v", pages.offsets, tc.wantOffsets)
			}
		})
	}
}

// TestListRefusesAPageOfNeitherShape: an object without data and total_count is not a page of
// Clerk's; the list fails as an unexpected answer instead of ending empty.
func TestListRefusesAPageOfNeitherShape(t *testing.T) {
	t.Parallel()
	for _, body := range []string{`{"data":[]}`, `{"total_count":3}`, `{"sessions":[]}`, `"sessions"`} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write([]byte(body))
		}))
		c, err := clerk.New(clerk.Config{SecretKey: "sk_test_pages", BaseURL: srv.URL + "/v1", Retry: fastRetry})
		if err != nil {
			t.Fatal(err)
		}
		err = firstErr(c.ListSessions(t.Context(), &clerk.ListSessionsParams{UserID: "user_1"}))
		srv.Close()
		if !errors.Is(err, idpclient.ErrUnexpected) {
			t.Errorf("%s: %v, want ErrUnexpected", body, err)
		}
	}
}

// TestSvixAppThroughTheFake runs the Svix calls against the fake: a link is refused until the
// instance has a Svix app, the app is created once, and each link is new.
func TestSvixAppThroughTheFake(t *testing.T) {
	t.Parallel()
	f, base := startFake(t, clerkfake.Options{})
	c := newClient(t, base, f.SecretKey())
	ctx := t.Context()
	if _, err := c.GenerateSvixAuthURL(ctx); !errors.Is(err, idpclient.ErrValidation) {
		t.Fatalf("a link without a Svix app: %v, want a 400", err)
	}
	created, err := c.CreateSvixApp(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreateSvixApp(ctx); !errors.Is(err, idpclient.ErrValidation) {
		t.Errorf("a second Svix app: %v, want a 400", err)
	}
	link, err := c.GenerateSvixAuthURL(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if links := f.SvixLinks(); !f.SvixApp() || len(links) != 2 || links[0] != created.SvixURL || links[1] != link.SvixURL || link.SvixURL == created.SvixURL {
		t.Errorf("links %v, answers %q and %q", links, created.SvixURL, link.SvixURL)
	}
	if n := len(f.MutationsOf("svix_app.create")); n != 1 {
		t.Errorf("%d Svix apps created, want 1", n)
	}
}
