package main

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/idpsync/idpsync/internal/config"
	"github.com/idpsync/idpsync/internal/events"
	"github.com/idpsync/idpsync/internal/provider/clerk"
	"github.com/idpsync/idpsync/internal/store/storetest"
	"github.com/idpsync/idpsync/internal/worker"
)

// TestDemoStepsShowTheirEffect runs the commands the demo prints, as printed, against the demo's
// fakes: the user the first step creates reaches the receiver as a signed user.created; the lock
// reaches it as user.updated and leaves the sessions to idpsync, whose demo policy revokes them and
// offboards the agents on a lock; once the calls that policy makes are made, the printed commands
// show the sessions revoked and the agents deactivated. The SQL the steps print runs on idpsync's
// schema. The whole pipeline, webhook to revocation, is tested in internal/app.
func TestDemoStepsShowTheirEffect(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	d, err := startDemo(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.close(context.Background()) })
	hooks := receiveWebhooks(t, d)
	pool, schema := storetest.NewSchema(t)

	var out strings.Builder
	d.printTryIt(&out, "postgres://postgres@127.0.0.1:5432/idpsync", schema, "/run/idpsync-dev.yaml")
	steps := printedCommands(t, out.String())
	if len(steps) != 7 {
		t.Fatalf("%d commands printed, want 7 (create, find, sessions, agents, lock, revocations, resync):\n%s", len(steps), out.String())
	}
	create, find, sessions, agents, lock, revocations, resync := steps[0], steps[1], steps[2], steps[3], steps[4], steps[5], steps[6]

	// 1. A new user, created through the fake Clerk's API, reaches the receiver.
	shown := create.run(t)
	if len(shown) != 1 || !strings.HasPrefix(shown[0], `"id":"user_`) {
		t.Fatalf("creating a user shows %q, want its id", shown)
	}
	newID := strings.TrimSuffix(strings.TrimPrefix(shown[0], `"id":"`), `"`)
	if u, ok := d.clerk.User(newID); !ok || u.Email != newUserEmail {
		t.Fatalf("the fake Clerk holds %+v, %v after the create step", u, ok)
	}
	if ev := hooks.await(t, "user.created", newID); ev["primary_email_address_id"] == nil {
		t.Fatalf("user.created carries no email address: %v", ev)
	}
	find.query(ctx, t, pool)

	// 2. The lock target has active sessions and agents before the lock...
	if got := sessions.run(t); count(got, `"status":"active"`) != demoSessions || len(got) != 2*demoSessions {
		t.Fatalf("the target's sessions show %q, want %d active", got, demoSessions)
	}
	if got := agents.run(t); count(got, `"status":"active"`) != demoAgentsEach || len(got) != 2*demoAgentsEach {
		t.Fatalf("the target's agents show %q, want %d active", got, demoAgentsEach)
	}
	// ...the lock reaches the receiver, and Clerk leaves the sessions active: revoking them is
	// idpsync's work...
	if got := lock.run(t); !slices.Equal(got, []string{`"locked":true`}) {
		t.Fatalf("locking shows %q", got)
	}
	if ev := hooks.await(t, "user.updated", d.lockTarget); ev["locked"] != true {
		t.Fatalf("user.updated after the lock: %v", ev)
	}
	if got := sessions.run(t); count(got, `"status":"active"`) != demoSessions {
		t.Fatalf("after the lock alone the sessions show %q; Clerk does not revoke a locked user's sessions", got)
	}
	// ...which the demo's configuration does on a lock: sessions at Clerk, agents at ZeroID...
	cfg, err := config.Parse([]byte(d.config()), func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	pol := worker.Policies(cfg)[demoSource]
	if !pol.Triggers[events.TriggerUserLocked] || !pol.Sessions || pol.ZeroID != demoAgents || pol.AgentAction != events.AgentOffboard {
		t.Fatalf("the demo source's policy %+v does not revoke sessions and offboard agents on %s", pol, events.TriggerUserLocked)
	}
	// ...with these calls; after them, the printed commands show the effect.
	idps, _, err := worker.ConnectIdPs(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), nil)
	if err != nil {
		t.Fatal(err)
	}
	for id, err := range idps.Sessions[demoSource].ActiveSessions(ctx, d.lockTarget) {
		if err == nil {
			err = idps.Sessions[demoSource].RevokeSession(ctx, id)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if _, err := idps.Agents[demoAgents].Offboard(ctx, d.lockTarget, "user locked"); err != nil {
		t.Fatal(err)
	}
	if got := sessions.run(t); count(got, `"status":"revoked"`) != demoSessions {
		t.Fatalf("after the revocations the sessions show %q, want %d revoked", got, demoSessions)
	}
	if got := agents.run(t); count(got, `"status":"deactivated"`) != demoAgentsEach {
		t.Fatalf("after the offboarding the agents show %q, want %d deactivated", got, demoAgentsEach)
	}
	revocations.query(ctx, t, pool)

	// 3. The resync command names the effective configuration and the demo source.
	if want := []string{"go", "run", "./cmd/worker", "-config", "/run/idpsync-dev.yaml", "resync", "-source", demoSource, "-wait"}; !slices.Equal(resync.stages[0], want) {
		t.Fatalf("resync command %q, want %q", resync.stages[0], want)
	}
}

func count(lines []string, s string) int {
	n := 0
	for _, l := range lines {
		if l == s {
			n++
		}
	}
	return n
}

// command is one printed command line: its pipeline's stages, each a list of words.
type command struct {
	line   string
	stages [][]string
}

// printedCommands returns the command lines of the demo's text: those indented by two spaces.
func printedCommands(t *testing.T, text string) []command {
	t.Helper()
	var out []command
	for line := range strings.Lines(text) {
		line = strings.TrimRight(line, "\n")
		if !strings.HasPrefix(line, "  ") || strings.HasPrefix(line, "   ") {
			continue
		}
		words := shellWords(t, strings.TrimSpace(line))
		if len(words) == 0 || !slices.Contains([]string{"curl", "psql", "go"}, words[0]) {
			continue
		}
		c := command{line: line, stages: [][]string{nil}}
		for _, w := range words {
			if w == "|" {
				c.stages = append(c.stages, nil)
				continue
			}
			c.stages[len(c.stages)-1] = append(c.stages[len(c.stages)-1], w)
		}
		out = append(out, c)
	}
	return out
}

// shellWords splits a line as a POSIX shell does, for the quoting the demo prints: words separated
// by blanks, '…' and "…" without escapes inside, and | as a word of its own.
func shellWords(t *testing.T, line string) []string {
	t.Helper()
	var (
		words []string
		word  strings.Builder
		in    bool // a word is started
		quote rune
	)
	end := func() {
		if in {
			words = append(words, word.String())
			word.Reset()
			in = false
		}
	}
	for _, r := range line {
		switch {
		case quote != 0 && r == quote:
			quote = 0
		case quote != 0:
			word.WriteRune(r)
		case r == '\'' || r == '"':
			quote, in = r, true
		case r == ' ':
			end()
		case r == '|':
			end()
			words = append(words, "|")
		case r == '\\' || r == '$' || r == '`':
			t.Fatalf("unexpected shell syntax %q in %s", r, line)
		default:
			word.WriteRune(r)
			in = true
		}
	}
	if quote != 0 {
		t.Fatalf("unterminated quote in %s", line)
	}
	end()
	return words
}

// run performs a curl command's request and applies its grep -oE filter, as the shell would:
// it returns the matches, one per line of output.
func (c command) run(t *testing.T) []string {
	t.Helper()
	args := c.stages[0]
	if args[0] != "curl" || len(c.stages) != 2 {
		t.Fatalf("not a curl command piped to a filter: %s", c.line)
	}
	method, url, body, header := http.MethodGet, "", "", http.Header{}
	for i := 1; i < len(args); i++ {
		switch a := args[i]; a {
		case "-s":
		case "-X", "-H", "-d":
			if i++; i == len(args) {
				t.Fatalf("%s without a value: %s", a, c.line)
			}
			switch a {
			case "-X":
				method = args[i]
			case "-H":
				k, v, _ := strings.Cut(args[i], ": ")
				header.Add(k, v)
			case "-d":
				body = args[i]
				if method == http.MethodGet {
					method = http.MethodPost // as curl does
				}
			}
		default:
			if strings.HasPrefix(a, "-") || url != "" {
				t.Fatalf("unexpected curl argument %q: %s", a, c.line)
			}
			url = a
		}
	}
	req, err := http.NewRequestWithContext(t.Context(), method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header = header
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s: %v", c.line, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("%s: %s %s", c.line, resp.Status, b)
	}
	filter := c.stages[1]
	if len(filter) != 3 || filter[0] != "grep" || filter[1] != "-oE" {
		t.Fatalf("filter %q is not grep -oE PATTERN: %s", filter, c.line)
	}
	return regexp.MustCompile(filter[2]).FindAllString(string(b), -1)
}

// query runs a psql command's SQL on pool: it names idpsync's tables and columns as they are.
func (c command) query(ctx context.Context, t *testing.T, pool *pgxpool.Pool) {
	t.Helper()
	args := c.stages[0]
	if len(c.stages) != 1 || len(args) != 4 || args[0] != "psql" || args[2] != "-c" {
		t.Fatalf("not psql URL -c SQL: %s", c.line)
	}
	rows, err := pool.Query(ctx, args[3])
	if err == nil {
		rows.Close()
		err = rows.Err()
	}
	if err != nil {
		t.Fatalf("%s: %v", c.line, err)
	}
}

// webhooks are the events the demo's fake Clerk delivered, verified with the demo's secret.
type webhooks struct {
	mu     sync.Mutex
	events []webhookEvent
	added  chan struct{}
}

type webhookEvent struct {
	Type string         `json:"type"`
	Data map[string]any `json:"data"`
}

// receiveWebhooks makes the demo deliver its webhooks to a receiver of the test's, at the path
// idpsync's receiver serves the demo source on.
func receiveWebhooks(t *testing.T, d *demo) *webhooks {
	t.Helper()
	v, err := clerk.NewSvix(clerk.SvixConfig{Secrets: []string{d.secret}, Tolerance: 5 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	wh := &webhooks{added: make(chan struct{}, 1)}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var ev webhookEvent
		if r.URL.Path != "/webhooks/"+demoSource {
			t.Errorf("webhook delivered to %s", r.URL.Path)
		} else if _, err := v.Verify(body, r.Header); err != nil {
			t.Errorf("webhook does not verify with the demo's secret: %v", err)
		} else if err := json.Unmarshal(body, &ev); err != nil {
			t.Errorf("webhook body: %v", err)
		}
		wh.mu.Lock()
		wh.events = append(wh.events, ev)
		wh.mu.Unlock()
		select {
		case wh.added <- struct{}{}:
		default:
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(srv.Close)
	d.deliverTo(strings.TrimPrefix(srv.URL, "http://"))
	return wh
}

// await returns the data of the first delivered event of type about id.
func (wh *webhooks) await(t *testing.T, eventType, id string) map[string]any {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		wh.mu.Lock()
		for _, ev := range wh.events {
			if ev.Type == eventType && ev.Data["id"] == id {
				wh.mu.Unlock()
				return ev.Data
			}
		}
		wh.mu.Unlock()
		select {
		case <-wh.added:
		case <-deadline:
			t.Fatalf("no %s webhook about %s", eventType, id)
		}
	}
}
