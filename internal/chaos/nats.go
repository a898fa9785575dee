package chaos

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// NATS is a private nats-server, or a cluster of three connected by routes, each node a process
// with its own client port, cluster port and JetStream store. Every store fsyncs each write
// (sync_interval: always), so that kill -9 loses nothing a node acknowledged.
type NATS struct {
	nodes []*natsNode
}

type natsNode struct {
	name        string
	port        int
	clusterPort int
	proc        *Process
}

// NewNATS writes the configuration of n nodes (1 or 3) under dir and returns them, not running.
func NewNATS(bin, dir string, n int) (*NATS, error) {
	s := &NATS{}
	for i := range n {
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		cport, err := freePort()
		if err != nil {
			return nil, err
		}
		s.nodes = append(s.nodes, &natsNode{name: fmt.Sprintf("nats-%d", i+1), port: port, clusterPort: cport})
	}
	for _, node := range s.nodes {
		store := filepath.Join(dir, node.name+"-store")
		if err := os.MkdirAll(store, 0o755); err != nil {
			return nil, err
		}
		var conf strings.Builder
		fmt.Fprintf(&conf, "server_name: %s\nlisten: 127.0.0.1:%d\n", node.name, node.port)
		fmt.Fprintf(&conf, "jetstream {\n  store_dir: %q\n  sync_interval: always\n}\n", store)
		if n > 1 {
			var routes []string
			for _, other := range s.nodes {
				if other != node {
					routes = append(routes, fmt.Sprintf("nats-route://127.0.0.1:%d", other.clusterPort))
				}
			}
			fmt.Fprintf(&conf, "cluster {\n  name: idpsync-chaos\n  listen: 127.0.0.1:%d\n  routes: [%s]\n}\n",
				node.clusterPort, strings.Join(routes, ", "))
		}
		path := filepath.Join(dir, node.name+".conf")
		if err := os.WriteFile(path, []byte(conf.String()), 0o644); err != nil {
			return nil, err
		}
		node.proc = NewProcess(node.name, bin, []string{"-c", path}, nil, dir, nil)
	}
	return s, nil
}

// Nodes is the number of servers.
func (s *NATS) Nodes() int { return len(s.nodes) }

// URL lists every node's client URL, comma-separated (what NATS_URL takes).
func (s *NATS) URL() string {
	urls := make([]string, len(s.nodes))
	for i, n := range s.nodes {
		urls[i] = fmt.Sprintf("nats://127.0.0.1:%d", n.port)
	}
	return strings.Join(urls, ",")
}

// Process is node i's process.
func (s *NATS) Process(i int) *Process { return s.nodes[i].proc }

// Name is node i's server name, as JetStream's cluster info reports it.
func (s *NATS) Name(i int) string { return s.nodes[i].name }

// Start starts every node and waits until JetStream answers (for a cluster: until it has a meta
// leader).
func (s *NATS) Start(ctx context.Context) error {
	for i := range s.nodes {
		if err := s.nodes[i].proc.Start(); err != nil {
			return err
		}
	}
	for i := range s.nodes {
		if err := s.waitListening(ctx, i); err != nil {
			return err
		}
	}
	return s.waitJetStream(ctx)
}

// StartNode starts node i again (same port, same store) and waits until it accepts clients.
func (s *NATS) StartNode(ctx context.Context, i int) error {
	if err := s.nodes[i].proc.Start(); err != nil {
		return err
	}
	return s.waitListening(ctx, i)
}

func (s *NATS) waitListening(ctx context.Context, i int) error {
	n := s.nodes[i]
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(n.port), time.Second)
		if err == nil {
			c.Close()
			return nil
		}
		select {
		case <-n.proc.Exited():
			return fmt.Errorf("%s exited while starting\n%s", n.name, n.proc.Tail(20))
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s does not accept connections: %w", n.name, err)
		}
	}
}

func (s *NATS) waitJetStream(ctx context.Context) error {
	nc, js, err := s.Connect("idpsync-chaos-probe")
	if err != nil {
		return err
	}
	defer nc.Close()
	deadline := time.Now().Add(60 * time.Second)
	for {
		actx, cancel := context.WithTimeout(ctx, 2*time.Second)
		_, err := js.AccountInfo(actx)
		cancel()
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("JetStream is not available: %w", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// Connect opens a client connection to the nodes that reconnects forever.
func (s *NATS) Connect(name string) (*nats.Conn, jetstream.JetStream, error) {
	nc, err := nats.Connect(s.URL(), nats.Name(name), nats.MaxReconnects(-1), nats.ReconnectWait(250*time.Millisecond),
		nats.RetryOnFailedConnect(true))
	if err != nil {
		return nil, nil, err
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, nil, err
	}
	return nc, js, nil
}

// StreamLeader returns the node that leads stream's replicas.
func (s *NATS) StreamLeader(ctx context.Context, js jetstream.JetStream, stream string) (int, error) {
	st, err := js.Stream(ctx, stream)
	if err != nil {
		return 0, err
	}
	info := st.CachedInfo()
	if info.Cluster == nil || info.Cluster.Leader == "" {
		return 0, errors.New("the stream has no leader")
	}
	for i, n := range s.nodes {
		if n.name == info.Cluster.Leader {
			return i, nil
		}
	}
	return 0, fmt.Errorf("stream leader %q is not one of the nodes", info.Cluster.Leader)
}

// Close kills every node.
func (s *NATS) Close() {
	for _, n := range s.nodes {
		n.proc.Close()
	}
}
