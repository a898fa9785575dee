package receiver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// ServerConfig configures a Server.
type ServerConfig struct {
	// Addr is the address to listen on; ":0" picks a free port. Required.
	Addr string
	// ShutdownTimeout bounds the drain of in-flight requests on shutdown. Required.
	ShutdownTimeout time.Duration
	// MaxConns caps the connections open at once. When it is reached the server stops accepting
	// until one closes; further clients wait in the kernel's accept queue. Each idle or stalled
	// connection holds a goroutine, net/http's buffers and a first body buffer, about 17 KB
	// (measured by BenchmarkStalledBodiesRSS), plus up to MaxHeaderBytes of headers. Required.
	MaxConns int
	// MaxHeaderBytes limits a request's header block (net/http adds 4 KiB of slack); a larger one
	// gets 431. An id in a header is refused with 400 by the handler (ids are at most 256
	// bytes). Required.
	MaxHeaderBytes int
	// Logger receives net/http's own error lines (a failed accept, a broken connection). Defaults
	// to a logger that discards.
	Logger *slog.Logger
	// Registerer receives the server's metrics (idpsync_receiver_connections). Nil keeps them
	// unexported.
	Registerer prometheus.Registerer
}

// Server serves a Handler on a listener and shuts down gracefully: on shutdown it stops accepting
// connections and waits for in-flight deliveries (each waiting for its PubAck) to be answered.
type Server struct {
	http            *http.Server
	ln              *limitListener
	shutdownTimeout time.Duration
}

// Listen binds cfg.Addr for h.
func Listen(cfg ServerConfig, h http.Handler) (*Server, error) {
	if cfg.ShutdownTimeout <= 0 || cfg.MaxConns <= 0 || cfg.MaxHeaderBytes <= 0 {
		return nil, errors.New("receiver: ShutdownTimeout, MaxConns and MaxHeaderBytes are required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("receiver: %w", err)
	}
	lln := newLimitListener(ln, cfg.MaxConns)
	if cfg.Registerer != nil {
		err := cfg.Registerer.Register(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "idpsync_receiver_connections",
			Help: "Open connections to the receiver (capped by its connection limit).",
		}, func() float64 { return float64(lln.open()) }))
		if err != nil {
			ln.Close()
			return nil, fmt.Errorf("registering receiver metrics: %w", err)
		}
	}
	return &Server{
		http: &http.Server{
			Handler:           h,
			ReadHeaderTimeout: 10 * time.Second,
			ReadTimeout:       30 * time.Second,
			WriteTimeout:      30 * time.Second,
			IdleTimeout:       2 * time.Minute,
			MaxHeaderBytes:    cfg.MaxHeaderBytes,
			ErrorLog:          slog.NewLogLogger(cfg.Logger.Handler(), slog.LevelWarn),
		},
		ln:              lln,
		shutdownTimeout: cfg.ShutdownTimeout,
	}, nil
}

// Addr is the address the server listens on.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Serve serves until ctx is done, then drains in-flight requests for at most the shutdown timeout.
func (s *Server) Serve(ctx context.Context) error {
	errc := make(chan error, 1)
	go func() { errc <- s.http.Serve(s.ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("receiver: %w", err)
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), s.shutdownTimeout)
	defer cancel()
	if err := s.http.Shutdown(shutdownCtx); err != nil {
		return fmt.Errorf("receiver: draining in-flight requests: %w", err)
	}
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// limitListener accepts at most cap(slots) connections open at once: Accept waits for a slot, and
// a connection gives its slot back when it is closed.
type limitListener struct {
	net.Listener
	slots     chan struct{}
	closed    chan struct{}
	closeOnce sync.Once
}

func newLimitListener(ln net.Listener, n int) *limitListener {
	return &limitListener{Listener: ln, slots: make(chan struct{}, n), closed: make(chan struct{})}
}

func (l *limitListener) Accept() (net.Conn, error) {
	select {
	case l.slots <- struct{}{}:
	case <-l.closed:
		return nil, net.ErrClosed
	}
	c, err := l.Listener.Accept()
	if err != nil {
		<-l.slots
		return nil, err
	}
	return &limitConn{Conn: c, release: sync.OnceFunc(func() { <-l.slots })}, nil
}

func (l *limitListener) Close() error {
	l.closeOnce.Do(func() { close(l.closed) })
	return l.Listener.Close()
}

// open is the number of connections holding a slot.
func (l *limitListener) open() int { return len(l.slots) }

type limitConn struct {
	net.Conn
	release func()
}

func (c *limitConn) Close() error {
	err := c.Conn.Close()
	c.release()
	return err
}

// CloseWrite half-closes the connection as net/http does before hanging up on a request it refused
// unread (431): the client then reads the answer instead of a reset.
func (c *limitConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}
