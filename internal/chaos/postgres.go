package chaos

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

// Postgres is a private PostgreSQL cluster: its own data directory, port and process, trust
// authentication, started by the suite and never shared. Stopping or restarting it touches no
// other cluster of the machine.
type Postgres struct {
	bin  string
	data string
	port int
	proc *Process
	cred *syscall.Credential
}

// PostgresBin returns the bin directory of the newest PostgreSQL in /usr/lib/postgresql, or
// CHAOS_PG_BIN when set.
func PostgresBin() (string, error) {
	if dir := os.Getenv("CHAOS_PG_BIN"); dir != "" {
		return dir, nil
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return pgMajor(dirs[i]) < pgMajor(dirs[j]) })
	for i := len(dirs) - 1; i >= 0; i-- {
		if _, err := os.Stat(filepath.Join(dirs[i], "initdb")); err == nil {
			return dirs[i], nil
		}
	}
	return "", errors.New("no PostgreSQL server binaries in /usr/lib/postgresql/*/bin: install the server package or set CHAOS_PG_BIN")
}

func pgMajor(binDir string) int {
	n, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return n
}

// NewPostgres creates a cluster with initdb in a new temporary directory, on a free port; Start
// runs it and Close stops it and removes the directory. Logs go to logDir. When the suite runs as
// root, the cluster runs as the postgres user, since Postgres refuses root.
func NewPostgres(ctx context.Context, bin, logDir string) (_ *Postgres, err error) {
	data, err := os.MkdirTemp("", "idpsync-chaos-pg-")
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			os.RemoveAll(data)
		}
	}()
	p := &Postgres{bin: bin, data: data}
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			return nil, fmt.Errorf("running as root, the private Postgres needs the postgres user: %w", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		p.cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
		if err := os.Chown(data, uid, gid); err != nil {
			return nil, err
		}
	}
	if p.port, err = freePort(); err != nil {
		return nil, err
	}
	initdb := NewProcess("initdb", filepath.Join(bin, "initdb"),
		[]string{"-D", data, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--locale=C", "--no-sync"}, nil, logDir, p.cred)
	if err := initdb.Start(); err != nil {
		return nil, err
	}
	if err := initdb.Wait(ctx); err != nil {
		return nil, fmt.Errorf("initdb: %w\n%s", err, initdb.Tail(20))
	}
	p.proc = NewProcess("postgres", filepath.Join(bin, "postgres"), []string{"-D", data,
		"-c", "listen_addresses=127.0.0.1", "-c", "port=" + strconv.Itoa(p.port),
		"-c", "unix_socket_directories=" + data, "-c", "shared_buffers=32MB", "-c", "max_connections=100",
		"-c", "logging_collector=off", "-c", "log_min_messages=warning",
	}, nil, logDir, p.cred)
	return p, nil
}

// Process is the postmaster's process (one incarnation per start).
func (p *Postgres) Process() *Process { return p.proc }

// Port is the cluster's TCP port on 127.0.0.1.
func (p *Postgres) Port() int { return p.port }

// URL is the connection URL of database db.
func (p *Postgres) URL(db string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", p.port, db)
}

// Start starts the postmaster and waits until it accepts connections.
func (p *Postgres) Start(ctx context.Context) error {
	if err := p.proc.Start(); err != nil {
		return err
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		conn, err := pgx.Connect(ctx, p.URL("postgres"))
		if err == nil {
			conn.Close(ctx)
			return nil
		}
		select {
		case <-p.proc.Exited():
			return fmt.Errorf("postgres exited while starting: %v\n%s", err, p.proc.Tail(20))
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("postgres did not accept connections within a minute: %w", err)
		}
	}
}

// Stop shuts the cluster down with `pg_ctl stop -m mode` (smart, fast or immediate) and waits for
// the postmaster to exit.
func (p *Postgres) Stop(ctx context.Context, mode string) error {
	if !p.proc.Running() {
		return nil
	}
	p.proc.Expect()
	cmd := exec.CommandContext(ctx, filepath.Join(p.bin, "pg_ctl"), "stop", "-D", p.data, "-m", mode, "-w", "-t", "60")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: p.cred, Pdeathsig: syscall.SIGKILL}
	cmd.Dir = p.data
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("pg_ctl stop -m %s: %w: %s", mode, err, out)
	}
	return p.proc.Wait(context.WithoutCancel(ctx))
}

// Close stops the cluster immediately (killing it if pg_ctl cannot) and removes its directory.
func (p *Postgres) Close() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_ = p.Stop(ctx, "immediate")
	p.proc.Close()
	os.RemoveAll(p.data)
}

// CreateDatabase creates database name.
func (p *Postgres) CreateDatabase(ctx context.Context, name string) error {
	conn, err := pgx.Connect(ctx, p.URL("postgres"))
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize())
	return err
}

// freePort returns a TCP port of 127.0.0.1 that was free a moment ago.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
