// Package natsembed runs a JetStream-enabled nats-server inside the process: the store of `make
// run` when no NATS_URL is configured, and of every test. It is real server code (the version
// pinned in go.mod), not a fake.
//
// It lives apart from natsbus so that the production receiver and worker do not link the server.
package natsembed

import (
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// Options configures an embedded server.
type Options struct {
	// StoreDir holds JetStream's files. Required.
	StoreDir string
	// Host to listen on. Defaults to 127.0.0.1.
	Host string
	// Port to listen on; 0 picks a free port.
	Port int
	// SyncAlways fsyncs every write before acknowledging it. A single node otherwise fsyncs every
	// two minutes and a power cut can lose acknowledged messages (a process crash cannot).
	SyncAlways bool
}

// Start starts a server and waits until it accepts connections. Stop it with Shutdown followed by
// WaitForShutdown.
func Start(opts Options) (*server.Server, error) {
	if opts.StoreDir == "" {
		return nil, errors.New("natsembed: StoreDir is required")
	}
	host := opts.Host
	if host == "" {
		host = "127.0.0.1"
	}
	port := opts.Port
	if port == 0 {
		port = server.RANDOM_PORT
	}
	ns, err := server.NewServer(&server.Options{
		ServerName: "idpsync-embedded",
		Host:       host,
		Port:       port,
		JetStream:  true,
		StoreDir:   opts.StoreDir,
		SyncAlways: opts.SyncAlways,
		NoSigs:     true,
		NoLog:      true,
		// MaxPayload is nats-server's default (1 MiB), as a stock server has it: tests and
		// make run see the limits production sees.
	})
	if err != nil {
		return nil, fmt.Errorf("natsembed: %w", err)
	}
	go ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		ns.Shutdown()
		return nil, errors.New("natsembed: server did not become ready within 10s")
	}
	return ns, nil
}
