package receiver_test

import (
	"bytes"
	"context"
	"log/slog"
	"net/http"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/idpsync/idpsync/internal/natsbus"
	"github.com/idpsync/idpsync/internal/natsbus/natstest"
	"github.com/idpsync/idpsync/internal/provider/clerk"
	"github.com/idpsync/idpsync/internal/receiver"
)

// gatedPublisher publishes to the real stream, but only once the test opens the gate.
type gatedPublisher struct {
	bus     *natsbus.Bus
	started chan struct{}
	gate    chan struct{}
}

func (g *gatedPublisher) Publish(ctx context.Context, ev *natsbus.Event) (natsbus.PubAck, error) {
	close(g.started)
	<-g.gate
	return g.bus.Publish(ctx, ev)
}

// Shutting down while a delivery waits for its PubAck lets it finish: the IdP gets its 2xx and the
// event is in the stream.
func TestShutdownDrainsInFlightDeliveries(t *testing.T) {
	t.Parallel()
	ns := natstest.Start(t)
	bus := ns.Bus()
	pub := &gatedPublisher{bus: bus, started: make(chan struct{}), gate: make(chan struct{})}
	v, _ := clerk.NewSvix(clerk.SvixConfig{Secrets: []string{secret}, Tolerance: 5 * time.Minute})
	h, err := receiver.New(receiver.Config{
		Sources:   []receiver.Source{{Name: "clerk-test", Verifier: v, ParseEnvelopeFunc: clerk.ParseEnvelope}},
		Publisher: pub, Ready: bus.Ready, MaxBodyBytes: 4096, MaxInFlightBytes: 1 << 20, RetryAfter: time.Second,
		Logger: slog.New(slog.DiscardHandler), Registerer: prometheus.NewRegistry(),
	})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := receiver.Listen(receiver.ServerConfig{Addr: "127.0.0.1:0", ShutdownTimeout: 10 * time.Second, MaxConns: 64, MaxHeaderBytes: 16 << 10}, h)
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ctx) }()

	body := userCreated("user_1")
	hdr, _ := clerk.SignSvix("msg_inflight", time.Now(), body, secret)
	req, _ := http.NewRequest(http.MethodPost, "http://"+srv.Addr()+"/webhooks/clerk-test", bytes.NewReader(body))
	req.Header = hdr
	req.Header.Set("Content-Type", "application/json")
	answered := make(chan int, 1)
	go func() {
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			answered <- 0
			return
		}
		resp.Body.Close()
		answered <- resp.StatusCode
	}()

	<-pub.started // the delivery is waiting for its publish
	stop()        // SIGTERM
	select {
	case err := <-served:
		t.Fatalf("the server stopped before the in-flight delivery was answered: %v", err)
	case <-time.After(200 * time.Millisecond):
	}
	close(pub.gate)
	if code := <-answered; code != http.StatusAccepted {
		t.Fatalf("in-flight delivery answered %d", code)
	}
	if err := <-served; err != nil {
		t.Fatalf("Serve: %v", err)
	}
	st, err := bus.JetStream().Stream(context.Background(), "IDPSYNC_EVENTS")
	if err != nil {
		t.Fatal(err)
	}
	if msg, err := st.GetMsg(context.Background(), 1); err != nil || msg.Header.Get("Idpsync-Event-Id") != "msg_inflight" {
		t.Fatalf("the in-flight event is not in the stream: %v", err)
	}
	// New connections are refused once shut down.
	if _, err := http.Get("http://" + srv.Addr() + "/healthz"); err == nil {
		t.Fatal("the server still accepts connections")
	}
}
