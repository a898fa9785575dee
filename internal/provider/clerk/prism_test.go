//go:build unix

package clerk_test

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

// The contract test serves Clerk's published Backend API spec with Prism, a validating mock, and
// sends it every request the client makes. This file is the harness: it finds Prism, starts it on
// a copy of the spec, and mounts it behind a small proxy at the spec's server path (/v1), where
// it records each exchange with what Prism and the spec say about it.

const (
	// specFile is Clerk's Backend API spec, committed as published (see testdata/openapi/LICENSE).
	specFile = "testdata/openapi/bapi-2025-11-10.yml"
	// prismBin is where make contract installs Prism (tools/prism/package.json pins the version).
	prismBin = "tools/prism/node_modules/.bin/prism"
	// requirePrismEnv makes a missing Prism a failure instead of a skip; make contract sets it.
	requirePrismEnv = "IDPSYNC_CONTRACT"
	// prismSeed makes Prism's generated answers the same on every run.
	prismSeed = "idpsync"
	// prismStartTimeout bounds Prism's start (it parses a 700 KB spec; about 10 s on 2 cores).
	prismStartTimeout = 2 * time.Minute
)

// prismFaker is appended to the copy of the spec that Prism serves. It is Prism's own extension
// for its generator, not part of Clerk's contract: every array Prism generates has exactly two
// items, so that each list answer carries items to decode and every page is full, which makes the
// iterators ask for the next page. (Prism serves the spec's examples statically by default, but
// its static sampler writes "string" into properties with a pattern and then fails its own
// response validation, so the harness asks for answers generated from the schemas instead.)
const prismFaker = "\nx-json-schema-faker:\n  min-items: 2\n  max-items: 2\n"

// exchange is one request the client sent through the mock, and what came of it.
type exchange struct {
	Method string
	// Path is the request path below the spec's server path, escaped, e.g. "/users/user_1/ban".
	Path  string
	Query url.Values
	// Operation is the operationId of the spec's operation for the method and path; "" when the
	// spec has none.
	Operation string
	Status    int
	// Problems are the harness's findings and Prism's validation errors; empty when the request
	// conforms to the spec and Prism's answer to its schema.
	Problems []string
}

func (e exchange) String() string {
	s := e.Method + " " + e.Path
	if len(e.Query) > 0 {
		s += "?" + e.Query.Encode()
	}
	return fmt.Sprintf("%s → %d (%s)", s, e.Status, cmp.Or(e.Operation, "no operation"))
}

// prismMock is Prism serving Clerk's spec, behind a proxy at the spec's server path.
type prismMock struct {
	// BaseURL is the API root to configure the client with: the proxy's URL and the spec's
	// server path, shaped like https://api.clerk.com/v1.
	BaseURL string
	// ServerURL is the spec's server URL.
	ServerURL string

	spec   *specIndex
	prism  string // Prism's own URL, at its root
	client *http.Client
	output *syncBuffer

	mu        sync.Mutex
	exchanges []exchange
}

// startPrism starts Prism on the spec and the recording proxy in front of it; both stop when the
// test ends. It skips the test when Prism is not installed, unless IDPSYNC_CONTRACT=require.
func startPrism(t *testing.T) *prismMock {
	t.Helper()
	root := repoRoot(t)
	bin := filepath.Join(root, prismBin)
	if _, err := os.Stat(bin); err != nil {
		msg := fmt.Sprintf("Prism is not installed (%s); `make contract` installs it with npm and runs this test", prismBin)
		if os.Getenv(requirePrismEnv) == "require" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	spec, err := os.ReadFile(specFile)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(spec, []byte("\nx-json-schema-faker:")) {
		t.Fatalf("%s already has an x-json-schema-faker section; the harness appends its own", specFile)
	}
	idx, err := indexSpec(spec)
	if err != nil {
		t.Fatalf("%s: %v", specFile, err)
	}
	served := filepath.Join(t.TempDir(), "bapi.yml")
	if err := os.WriteFile(served, append(spec, prismFaker...), 0o644); err != nil {
		t.Fatal(err)
	}

	m := &prismMock{spec: idx, ServerURL: idx.server, output: &syncBuffer{}, client: &http.Client{Timeout: 30 * time.Second}}
	m.prism = runPrism(t, bin, served, m.output)

	proxy := httptest.NewServer(http.HandlerFunc(m.serve))
	t.Cleanup(proxy.Close)
	m.BaseURL = proxy.URL + idx.basePath
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("Prism's log:\n%s", m.output.String())
		}
	})
	return m
}

// runPrism starts `prism mock` on a free port of the loopback interface, waits until it answers
// and stops it (and anything it started) when the test ends. It returns Prism's URL.
func runPrism(t *testing.T, bin, spec string, output *syncBuffer) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	// --port 0: the system picks a free port, which Prism prints once it listens.
	cmd := exec.CommandContext(ctx, bin, "mock", spec, "--host", "127.0.0.1", "--port", "0",
		"--errors", "--dynamic", "--seed", prismSeed)
	cmd.Dir = t.TempDir()
	cmd.Env = append(os.Environ(), "NO_COLOR=1", "FORCE_COLOR=0")
	// Prism runs in its own process group, so that stopping it stops every process it started.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	dieWithTest(cmd.SysProcAttr)
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM) }
	cmd.WaitDelay = 5 * time.Second
	stdout, stdoutW := io.Pipe()
	cmd.Stdout, cmd.Stderr = stdoutW, output
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatalf("starting Prism: %v", err)
	}
	exited := make(chan struct{})
	listening := make(chan string, 1)
	go func() {
		re := regexp.MustCompile(`listening on (http://127\.0\.0\.1:[0-9]+)`)
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			output.WriteString(line + "\n")
			if mm := re.FindStringSubmatch(line); mm != nil {
				select {
				case listening <- mm[1]:
				default:
				}
			}
		}
		_, _ = io.Copy(output, stdout)
	}()
	go func() {
		_ = cmd.Wait()
		stdoutW.Close()
		close(exited)
	}()
	t.Cleanup(func() {
		cancel()
		<-exited
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) // whatever ignored SIGTERM; ESRCH when none
	})

	var base string
	select {
	case base = <-listening:
	case <-exited:
		t.Fatalf("Prism exited before it listened: %v\n%s", cmd.ProcessState, output.String())
	case <-time.After(prismStartTimeout):
		t.Fatalf("Prism did not listen within %s:\n%s", prismStartTimeout, output.String())
	}
	// It printed its address; make sure it answers before the test sends anything.
	deadline := time.Now().Add(30 * time.Second)
	probe := &http.Client{Timeout: 5 * time.Second}
	for {
		resp, err := probe.Get(base + "/")
		if err == nil {
			resp.Body.Close()
			return base
		}
		if time.Now().After(deadline) {
			t.Fatalf("Prism listens on %s but does not answer: %v\n%s", base, err, output.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// serve is the proxy: it checks the request against the spec, forwards it to Prism with the
// server path stripped (Prism serves a spec's paths at its root), and records the exchange before
// it answers, so that the exchange is there when the client has its answer.
func (m *prismMock) serve(w http.ResponseWriter, r *http.Request) {
	ex, header, body := m.forward(r)
	m.mu.Lock()
	m.exchanges = append(m.exchanges, ex)
	m.mu.Unlock()
	for k, vs := range header {
		w.Header()[k] = vs
	}
	w.WriteHeader(ex.Status)
	_, _ = w.Write(body)
}

func (m *prismMock) forward(r *http.Request) (exchange, http.Header, []byte) {
	ex := exchange{Method: r.Method, Path: r.URL.EscapedPath(), Query: r.URL.Query()}
	fail := func(status int, problem string) (exchange, http.Header, []byte) {
		ex.Status = status
		ex.Problems = append(ex.Problems, problem)
		return ex, http.Header{"Content-Type": {"text/plain; charset=utf-8"}}, []byte(problem + "\n")
	}
	rest, ok := strings.CutPrefix(ex.Path, m.spec.basePath+"/")
	if !ok {
		return fail(http.StatusNotFound, fmt.Sprintf("the path is outside the spec's server %s", m.ServerURL))
	}
	ex.Path = "/" + rest
	if op := m.spec.match(r.Method, ex.Path); op != nil {
		ex.Operation = op.ID
		for name := range ex.Query {
			if !slices.Contains(op.Query, name) {
				ex.Problems = append(ex.Problems, fmt.Sprintf("query parameter %q is not one of %s's parameters %v (Prism lets undeclared parameters through)", name, op.ID, op.Query))
			}
		}
	} else {
		ex.Problems = append(ex.Problems, fmt.Sprintf("the spec has no operation %s %s", r.Method, ex.Path))
	}

	out, err := http.NewRequestWithContext(r.Context(), r.Method, m.prism+ex.Path, r.Body)
	if err != nil {
		return fail(http.StatusBadGateway, err.Error())
	}
	out.URL.RawQuery = r.URL.RawQuery
	out.Header = r.Header.Clone()
	resp, err := m.client.Do(out)
	if err != nil {
		return fail(http.StatusBadGateway, fmt.Sprintf("forwarding to Prism: %v", err))
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return fail(http.StatusBadGateway, fmt.Sprintf("reading Prism's answer: %v", err))
	}
	ex.Status = resp.StatusCode
	// With --errors Prism answers a request that violates the spec with 422 (the spec's own 422
	// answer, or its problem document when the operation has none) and names the violations in
	// the sl-violations header; an answer it could not generate validly is a 500 problem
	// document. Other problem documents: no route, no method, no credentials.
	if v := resp.Header.Get("sl-violations"); v != "" {
		ex.Problems = append(ex.Problems, "Prism: "+v)
	}
	if bytes.Contains(body, []byte("https://stoplight.io/prism/errors#")) {
		ex.Problems = append(ex.Problems, "Prism: "+string(body))
	}
	return ex, resp.Header, body
}

// take returns the exchanges recorded since the last call.
func (m *prismMock) take() []exchange {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := m.exchanges
	m.exchanges = nil
	return out
}

// specIndex is what the harness reads of the spec: its server and, per operation, the query
// parameters it declares.
type specIndex struct {
	server   string // e.g. https://api.clerk.com/v1
	basePath string // e.g. /v1
	ops      []specOperation
}

type specOperation struct {
	ID       string
	Method   string
	Segments []string // the path template split at slashes; "{x}" matches any one segment
	Query    []string
}

func indexSpec(doc []byte) (*specIndex, error) {
	type param struct {
		Ref  string `yaml:"$ref"`
		Name string `yaml:"name"`
		In   string `yaml:"in"`
	}
	var spec struct {
		Servers []struct {
			URL string `yaml:"url"`
		} `yaml:"servers"`
		Paths      map[string]map[string]yaml.Node `yaml:"paths"`
		Components struct {
			Parameters map[string]param `yaml:"parameters"`
		} `yaml:"components"`
	}
	if err := yaml.Unmarshal(doc, &spec); err != nil {
		return nil, err
	}
	if len(spec.Servers) != 1 {
		return nil, fmt.Errorf("want one server, the spec has %d", len(spec.Servers))
	}
	server, err := url.Parse(spec.Servers[0].URL)
	if err != nil {
		return nil, fmt.Errorf("server: %w", err)
	}
	idx := &specIndex{server: spec.Servers[0].URL, basePath: strings.TrimSuffix(server.Path, "/")}
	methods := []string{"get", "put", "post", "delete", "patch", "head", "options"}
	for path, item := range spec.Paths {
		var shared []param
		if n, ok := item["parameters"]; ok {
			if err := n.Decode(&shared); err != nil {
				return nil, fmt.Errorf("%s parameters: %w", path, err)
			}
		}
		for method, n := range item {
			if !slices.Contains(methods, method) {
				continue
			}
			var op struct {
				OperationID string  `yaml:"operationId"`
				Parameters  []param `yaml:"parameters"`
			}
			if err := n.Decode(&op); err != nil {
				return nil, fmt.Errorf("%s %s: %w", method, path, err)
			}
			so := specOperation{ID: op.OperationID, Method: strings.ToUpper(method), Segments: strings.Split(path, "/")}
			for _, p := range append(slices.Clone(shared), op.Parameters...) {
				if name, ok := strings.CutPrefix(p.Ref, "#/components/parameters/"); ok {
					def, found := spec.Components.Parameters[name]
					if !found {
						return nil, fmt.Errorf("%s %s: parameter %s is not defined", method, path, p.Ref)
					}
					p = def
				}
				if p.In == "query" {
					so.Query = append(so.Query, p.Name)
				}
			}
			idx.ops = append(idx.ops, so)
		}
	}
	return idx, nil
}

// match returns the operation for method and an escaped path, preferring literal segments to
// templated ones (/users/count over /users/{user_id}), or nil.
func (s *specIndex) match(method, path string) *specOperation {
	segs := strings.Split(path, "/")
	var best *specOperation
	bestLiterals := -1
	for i := range s.ops {
		op := &s.ops[i]
		if op.Method != method || len(op.Segments) != len(segs) {
			continue
		}
		literals, ok := 0, true
		for j, want := range op.Segments {
			switch {
			case strings.HasPrefix(want, "{") && strings.HasSuffix(want, "}"):
				ok = ok && segs[j] != ""
			case want == segs[j]:
				literals++
			default:
				ok = false
			}
		}
		if ok && literals > bestLiterals {
			best, bestLiterals = op, literals
		}
	}
	return best
}

// repoRoot is the directory of go.mod above the working directory.
func repoRoot(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal(errors.New("no go.mod above the test's directory"))
		}
		dir = parent
	}
}

// syncBuffer is a bytes.Buffer safe for concurrent writers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) WriteString(v string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.b.WriteString(v)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
