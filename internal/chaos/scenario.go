package chaos

import (
	"context"
	"fmt"
	"time"
)

// Scenario is one way of breaking the system while it takes a load.
type Scenario struct {
	// Name identifies the scenario in test names, reports and CHAOS_SCENARIOS.
	Name string
	// Does says what the scenario breaks.
	Does string
	// NATSNodes is 1, or 3 for a JetStream cluster whose stream has 3 replicas.
	NATSNodes int
	// Disrupt breaks the system while the load runs, and brings it back. It runs alongside the
	// sender, from the moment the load starts.
	Disrupt func(ctx context.Context, r *Run) error
}

// at is the share of the load dispatched before a scenario strikes.
const at = 0.3

// Scenarios are the suite's scenarios.
var Scenarios = []Scenario{
	{
		Name: "worker-kill", NATSNodes: 1,
		Does: "kill -9 the worker in the middle of jobs (stalled on a lock of the users table, as in a slow database moment), restart it a second later",
		Disrupt: func(ctx context.Context, r *Run) error {
			if err := r.Load.WaitDispatched(ctx, at); err != nil {
				return err
			}
			release := r.stallJobs(ctx, 3, 2*time.Second)
			r.kill(ctx, r.Sys.Worker)
			release()
			r.noteOrphans(ctx)
			time.Sleep(500 * time.Millisecond)
			return r.start(ctx, r.Sys.Worker)
		},
	},
	{
		Name: "receiver-worker-kill", NATSNodes: 1,
		Does: "kill -9 the receiver and the worker together, the worker in the middle of jobs (as in worker-kill), restart both a second later",
		Disrupt: func(ctx context.Context, r *Run) error {
			if err := r.Load.WaitDispatched(ctx, at); err != nil {
				return err
			}
			release := r.stallJobs(ctx, 3, 2*time.Second)
			r.kill(ctx, r.Sys.Receiver, r.Sys.Worker)
			release()
			r.noteOrphans(ctx)
			time.Sleep(500 * time.Millisecond)
			return r.start(ctx, r.Sys.Receiver, r.Sys.Worker)
		},
	},
	{
		Name: "nats-outage-start", NATSNodes: 1,
		Does: "kill -9 nats-server, the receiver and the worker (a host crash); start the receiver and the worker while NATS is still down, and NATS 5 seconds later",
		Disrupt: func(ctx context.Context, r *Run) error {
			if err := r.Load.WaitDispatched(ctx, at); err != nil {
				return err
			}
			r.kill(ctx, r.Sys.NATS.Process(0), r.Sys.Receiver, r.Sys.Worker)
			if err := r.start(ctx, r.Sys.Receiver, r.Sys.Worker); err != nil {
				return err
			}
			time.Sleep(5 * time.Second)
			for _, p := range []*Process{r.Sys.Receiver, r.Sys.Worker} {
				if crashes := p.Crashes(); len(crashes) > 0 {
					r.Note("while NATS was down, %s", crashes[0])
				} else {
					r.Note("%s kept running while NATS was down", p.Name)
				}
			}
			return r.startNATSNode(ctx, 0)
		},
	},
	{
		Name: "receiver-kill", NATSNodes: 1,
		Does: "kill -9 the receiver under load, restart it a second later",
		Disrupt: func(ctx context.Context, r *Run) error {
			if err := r.Load.WaitDispatched(ctx, at); err != nil {
				return err
			}
			r.kill(ctx, r.Sys.Receiver)
			time.Sleep(time.Second)
			return r.start(ctx, r.Sys.Receiver)
		},
	},
	{
		Name: "nats-restart", NATSNodes: 1,
		Does: "stop nats-server gracefully (SIGTERM) under load, start it again a second later",
		Disrupt: func(ctx context.Context, r *Run) error {
			if err := r.Load.WaitDispatched(ctx, at); err != nil {
				return err
			}
			p := r.Sys.NATS.Process(0)
			if !p.Stop(30 * time.Second) {
				r.Note("nats-server did not stop within 30s of SIGTERM; killed it")
			} else {
				r.Note("stopped nats-server (SIGTERM)")
			}
			time.Sleep(time.Second)
			return r.startNATSNode(ctx, 0)
		},
	},
	{
		Name: "nats-kill", NATSNodes: 1,
		Does: "kill -9 nats-server (sync_interval: always) under load, start it again 2 seconds later",
		Disrupt: func(ctx context.Context, r *Run) error {
			if err := r.Load.WaitDispatched(ctx, at); err != nil {
				return err
			}
			r.kill(ctx, r.Sys.NATS.Process(0))
			time.Sleep(2 * time.Second)
			return r.startNATSNode(ctx, 0)
		},
	},
	{
		Name: "postgres-restart-fast", NATSNodes: 1,
		Does: "restart the private Postgres under load: pg_ctl stop -m fast, then start",
		Disrupt: func(ctx context.Context, r *Run) error {
			return r.restartPostgres(ctx, "fast")
		},
	},
	{
		Name: "postgres-restart-immediate", NATSNodes: 1,
		Does: "restart the private Postgres under load: pg_ctl stop -m immediate (a crash; recovery at start), then start",
		Disrupt: func(ctx context.Context, r *Run) error {
			return r.restartPostgres(ctx, "immediate")
		},
	},
	{
		Name: "cluster-leader-kill", NATSNodes: 3,
		Does: "3-node JetStream cluster, stream with 3 replicas: kill -9 the stream's leader under load, start it again 2 seconds later",
		Disrupt: func(ctx context.Context, r *Run) error {
			if err := r.Load.WaitDispatched(ctx, at); err != nil {
				return err
			}
			leader, err := r.Sys.NATS.StreamLeader(ctx, r.js, StreamName)
			if err != nil {
				return fmt.Errorf("finding the stream leader: %w", err)
			}
			r.Note("stream %s is led by %s", StreamName, r.Sys.NATS.Name(leader))
			r.kill(ctx, r.Sys.NATS.Process(leader))
			r.waitNewLeader(ctx, leader)
			time.Sleep(2 * time.Second)
			return r.startNATSNode(ctx, leader)
		},
	},
}

// ScenarioNamed returns the scenario called name.
func ScenarioNamed(name string) (Scenario, bool) {
	for _, s := range Scenarios {
		if s.Name == name {
			return s, true
		}
	}
	return Scenario{}, false
}
