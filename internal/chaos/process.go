package chaos

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Process is one program of the system under test. Each Start runs a new incarnation in its own
// process group, with its stdout and stderr in files of the log directory (name-N.stdout,
// name-N.stderr), so that it can be killed with everything it forked and its output read
// afterwards. Every incarnation also gets SIGKILL when the test binary dies.
type Process struct {
	// Name names the log files and the reports, e.g. "worker" or "nats-2".
	Name string

	path   string
	args   []string
	env    []string
	logDir string
	cred   *syscall.Credential

	mu   sync.Mutex
	incs []*incarnation
}

// incarnation is one run of a Process.
type incarnation struct {
	n              int
	cmd            *exec.Cmd
	stdout, stderr string
	started        time.Time
	done           chan struct{}
	err            error // from Wait, valid once done is closed
	ended          time.Time
	// expected is set before the harness signals the incarnation, so that its exit is not
	// reported as a crash.
	expected atomic.Bool
}

// NewProcess describes a program; nothing runs until Start. env is added to the harness's own
// environment. cred, when not nil, runs the program as another user (Postgres refuses root).
func NewProcess(name, path string, args, env []string, logDir string, cred *syscall.Credential) *Process {
	return &Process{Name: name, path: path, args: args, env: env, logDir: logDir, cred: cred}
}

// Start runs a new incarnation. The previous one must have exited.
func (p *Process) Start() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if cur := p.current(); cur != nil && !cur.exited() {
		return fmt.Errorf("%s: already running (pid %d)", p.Name, cur.cmd.Process.Pid)
	}
	inc := &incarnation{n: len(p.incs) + 1, done: make(chan struct{})}
	inc.stdout = filepath.Join(p.logDir, fmt.Sprintf("%s-%d.stdout", p.Name, inc.n))
	inc.stderr = filepath.Join(p.logDir, fmt.Sprintf("%s-%d.stderr", p.Name, inc.n))
	stdout, err := os.Create(inc.stdout)
	if err != nil {
		return err
	}
	stderr, err := os.Create(inc.stderr)
	if err != nil {
		stdout.Close()
		return err
	}
	cmd := exec.Command(p.path, p.args...)
	cmd.Env = append(os.Environ(), p.env...)
	cmd.Stdout, cmd.Stderr = stdout, stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL, Credential: p.cred}
	if p.cred != nil {
		cmd.Dir = os.TempDir() // the other user may not reach the harness's directories
	}
	if err := cmd.Start(); err != nil {
		stdout.Close()
		stderr.Close()
		return fmt.Errorf("starting %s: %w", p.Name, err)
	}
	inc.cmd, inc.started = cmd, time.Now()
	go func() {
		inc.err = cmd.Wait()
		inc.ended = time.Now()
		stdout.Close()
		stderr.Close()
		close(inc.done)
	}()
	p.incs = append(p.incs, inc)
	return nil
}

func (p *Process) current() *incarnation {
	if len(p.incs) == 0 {
		return nil
	}
	return p.incs[len(p.incs)-1]
}

func (inc *incarnation) exited() bool {
	select {
	case <-inc.done:
		return true
	default:
		return false
	}
}

// last returns the current incarnation, or nil before the first Start.
func (p *Process) last() *incarnation {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.current()
}

// PID is the current incarnation's process id, 0 before the first Start.
func (p *Process) PID() int {
	if inc := p.last(); inc != nil {
		return inc.cmd.Process.Pid
	}
	return 0
}

// Running reports whether the current incarnation is alive.
func (p *Process) Running() bool {
	inc := p.last()
	return inc != nil && !inc.exited()
}

// Kill sends SIGKILL to the current incarnation's process group and waits for it to exit.
func (p *Process) Kill() {
	inc := p.last()
	if inc == nil || inc.exited() {
		return
	}
	inc.expected.Store(true)
	_ = syscall.Kill(-inc.cmd.Process.Pid, syscall.SIGKILL)
	<-inc.done
}

// Stop sends SIGTERM to the current incarnation and waits up to timeout for it to exit, then
// kills its process group. It reports whether the process exited within the timeout.
func (p *Process) Stop(timeout time.Duration) bool {
	inc := p.last()
	if inc == nil || inc.exited() {
		return true
	}
	inc.expected.Store(true)
	_ = inc.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-inc.done:
		return true
	case <-time.After(timeout):
		p.Kill()
		return false
	}
}

// Expect marks the current incarnation's coming exit as caused by the harness (another program,
// such as pg_ctl, is about to stop it).
func (p *Process) Expect() {
	if inc := p.last(); inc != nil {
		inc.expected.Store(true)
	}
}

// Wait waits for the current incarnation to exit and returns its exit error, or ctx's.
func (p *Process) Wait(ctx context.Context) error {
	inc := p.last()
	if inc == nil {
		return errors.New(p.Name + ": never started")
	}
	select {
	case <-inc.done:
		return inc.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Exited returns a channel closed when the current incarnation exits.
func (p *Process) Exited() <-chan struct{} {
	if inc := p.last(); inc != nil {
		return inc.done
	}
	return nil
}

// Close kills every incarnation still running, with its process group. (Exited ones are left
// alone: their process group ids may belong to someone else by now. The programs under test fork
// nothing that outlives them: Postgres's backends exit with the postmaster.)
func (p *Process) Close() {
	p.mu.Lock()
	incs := append([]*incarnation(nil), p.incs...)
	p.mu.Unlock()
	for _, inc := range incs {
		if inc.exited() {
			continue
		}
		inc.expected.Store(true)
		_ = syscall.Kill(-inc.cmd.Process.Pid, syscall.SIGKILL)
		<-inc.done
	}
}

// Crashes describes every incarnation that exited without the harness stopping or killing it.
func (p *Process) Crashes() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []string
	for _, inc := range p.incs {
		if inc.exited() && !inc.expected.Load() {
			out = append(out, fmt.Sprintf("%s (incarnation %d, pid %d) exited on its own after %s: %v",
				p.Name, inc.n, inc.cmd.Process.Pid, inc.ended.Sub(inc.started).Round(time.Millisecond), exitStatus(inc.err)))
		}
	}
	return out
}

func exitStatus(err error) string {
	if err == nil {
		return "exit status 0"
	}
	return err.Error()
}

// Grep returns the lines of every incarnation's output that match re, prefixed with the file's
// name.
func (p *Process) Grep(re *regexp.Regexp) []string {
	var out []string
	for _, f := range p.files() {
		for _, line := range readLines(f, 0) {
			if re.MatchString(line) {
				out = append(out, filepath.Base(f)+": "+line)
			}
		}
	}
	return out
}

// Tail returns the last n lines of each incarnation's output, file by file.
func (p *Process) Tail(n int) string {
	var b strings.Builder
	for _, f := range p.files() {
		lines := readLines(f, n)
		if len(lines) == 0 {
			continue
		}
		fmt.Fprintf(&b, "--- %s (last %d lines)\n", filepath.Base(f), len(lines))
		for _, l := range lines {
			b.WriteString(l)
			b.WriteByte('\n')
		}
	}
	return b.String()
}

func (p *Process) files() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []string
	for _, inc := range p.incs {
		out = append(out, inc.stdout, inc.stderr)
	}
	return out
}

// readLines returns the last n lines of a file (all of them when n is 0), each cut to 2000 bytes.
func readLines(path string, n int) []string {
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 4*1024*1024)
	for sc.Scan() {
		line := sc.Text()
		if len(line) > 2000 {
			line = line[:2000] + "…"
		}
		lines = append(lines, line)
		if n > 0 && len(lines) > 2*n {
			lines = append(lines[:0], lines[len(lines)-n:]...)
		}
	}
	if n > 0 && len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return lines
}
