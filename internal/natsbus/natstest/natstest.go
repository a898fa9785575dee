// Package natstest runs a real, in-process JetStream server for a test, and can stop and restart
// it on the same port and store to simulate an outage.
package natstest

import (
	"fmt"
	"io"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/idpsync/idpsync/internal/natsbus"
	"github.com/idpsync/idpsync/internal/natsbus/natsembed"
)

// Server is an embedded JetStream server owned by one test.
type Server struct {
	t    testing.TB
	dir  string
	port int
	ns   *server.Server
}

// Start starts a server on a free port with a temporary store; it stops when the test ends.
func Start(t testing.TB) *Server {
	t.Helper()
	s := NewStopped(t)
	s.Restart()
	return s
}

// NewStopped returns a server that is not running yet, as during an outage: its URL is fixed and
// Restart starts it. It stops when the test ends.
func NewStopped(t testing.TB) *Server {
	t.Helper()
	s := &Server{t: t, dir: t.TempDir(), port: freePort(t)}
	t.Cleanup(s.Shutdown)
	return s
}

// URL is the server's client URL; it stays the same across restarts.
func (s *Server) URL() string { return fmt.Sprintf("nats://127.0.0.1:%d", s.port) }

// Shutdown stops the server, as an outage would. It is a no-op when already stopped.
func (s *Server) Shutdown() {
	if s.ns == nil {
		return
	}
	s.ns.Shutdown()
	s.ns.WaitForShutdown()
	s.ns = nil
}

// RestartEmpty starts the server again on the same port with an empty store, as a replacement
// server that lost every stream would come back.
func (s *Server) RestartEmpty() {
	s.t.Helper()
	s.dir = s.t.TempDir()
	s.Restart()
}

// Restart starts the server again with the same port and store.
func (s *Server) Restart() {
	s.t.Helper()
	var err error
	for range 50 { // the port may linger for a moment after a shutdown
		if s.ns, err = natsembed.Start(natsembed.Options{StoreDir: s.dir, Port: s.port}); err == nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	s.t.Fatalf("starting nats-server: %v", err)
}

// StreamConfig is the stream configuration tests use: the production defaults.
var StreamConfig = natsbus.StreamConfig{
	Name: "IDPSYNC_EVENTS", SubjectPrefix: "idpsync.events", Replicas: 1,
	MaxAge: 24 * time.Hour, Duplicates: 2 * time.Minute, MaxBytes: -1,
}

// Bus connects to the server and ensures the stream; the connection closes when the test ends.
func (s *Server) Bus() *natsbus.Bus {
	s.t.Helper()
	nc, err := natsbus.Connect(s.URL(), "", s.t.Name(), slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		s.t.Fatal(err)
	}
	s.t.Cleanup(nc.Close)
	bus, err := natsbus.New(nc, StreamConfig, 2*time.Second)
	if err != nil {
		s.t.Fatal(err)
	}
	if err := bus.EnsureStream(s.t.Context()); err != nil {
		s.t.Fatal(err)
	}
	return bus
}

func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
