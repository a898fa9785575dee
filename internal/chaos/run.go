package chaos

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Options size a run.
type Options struct {
	// Users is how many users the IdP creates, updates and deletes (about 4.5 deliveries each).
	Users int
	// Rate is how many deliveries are dispatched per second.
	Rate float64
	// Concurrency bounds the deliveries in flight.
	Concurrency int
	// QuiesceTimeout bounds the wait for the system to settle once every delivery got its 2xx.
	QuiesceTimeout time.Duration
	// Seed seeds the load; each run derives its own from it.
	Seed uint64
}

// Run is one run of a scenario: the deployment, the load, and what happened to them.
type Run struct {
	Scenario Scenario
	N        int
	Sys      *System
	Plan     *Plan
	Load     *Load

	opts  Options
	db    *pgxpool.Pool
	nc    *nats.Conn
	js    jetstream.JetStream
	began time.Time

	mu       sync.Mutex
	timeline []string
	failures []Failure
}

// Failure is a check that did not hold, and the evidence.
type Failure struct {
	Check  string
	Detail string
}

// Note adds a line to the run's timeline, stamped with the time since the load started.
func (r *Run) Note(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.timeline = append(r.timeline, fmt.Sprintf("t+%6.2fs  %s", time.Since(r.began).Seconds(), fmt.Sprintf(format, args...)))
}

func (r *Run) fail(check, format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.failures = append(r.failures, Failure{Check: check, Detail: fmt.Sprintf(format, args...)})
}

// Execute runs scenario sc once (run number n) in dir, over the private cluster pg, and returns
// its report. An error means the run could not be set up; a broken promise is a Failure of the
// report.
func Execute(ctx context.Context, sc Scenario, n int, dir string, bin Binaries, pg *Postgres, opts Options) (*Report, error) {
	db := fmt.Sprintf("run_%02d", n)
	if err := pg.CreateDatabase(ctx, db); err != nil {
		return nil, fmt.Errorf("creating database %s: %w", db, err)
	}
	ns, err := NewNATS(bin.NATSServer, dir, sc.NATSNodes)
	if err != nil {
		return nil, err
	}
	defer ns.Close()
	if err := ns.Start(ctx); err != nil {
		return nil, err
	}
	sys, err := NewSystem(ctx, dir, bin, pg, db, ns)
	if err != nil {
		return nil, err
	}
	r := &Run{Scenario: sc, N: n, Sys: sys, opts: opts}
	defer sys.Close()
	if r.db, err = pgxpool.New(ctx, sys.DatabaseURL()); err != nil {
		return nil, err
	}
	defer r.db.Close()
	if r.nc, r.js, err = ns.Connect("idpsync-chaos-observer"); err != nil {
		return nil, err
	}
	defer r.nc.Close()
	if err := sys.StartWorker(ctx, true); err != nil {
		return nil, err
	}
	if err := sys.StartReceiver(ctx, true); err != nil {
		return nil, err
	}

	rng := rand.New(rand.NewPCG(opts.Seed, uint64(n)))
	runID := fmt.Sprintf("%x", rng.Uint32())
	r.Plan = NewPlan(rng, runID, opts.Users)
	sender := &Sender{URL: sys.WebhookURL(), Secret: sys.Secret, Rate: opts.Rate, Concurrency: opts.Concurrency}
	loadTime := time.Duration(float64(len(r.Plan.Deliveries)) / opts.Rate * float64(time.Second))
	sendCtx, cancelSend := context.WithTimeout(ctx, 2*loadTime+opts.QuiesceTimeout)
	defer cancelSend()
	r.began = time.Now()
	if r.Load, err = sender.Send(sendCtx, r.Plan); err != nil {
		return nil, err
	}
	r.Note("deployment: %s", sys.describe())
	r.Note("load started at %s UTC: %d deliveries for %d users at %.0f/s, %d in flight at most",
		r.began.UTC().Format("15:04:05.000"), len(r.Plan.Deliveries), opts.Users, opts.Rate, opts.Concurrency)

	superCtx, stopSupervisor := context.WithCancel(ctx)
	supervised := make(chan struct{})
	go func() {
		defer close(supervised)
		r.supervise(superCtx)
	}()
	disrupted := make(chan error, 1)
	go func() { disrupted <- sc.Disrupt(ctx, r) }()
	if err := <-disrupted; err != nil {
		r.fail("disruption", "%s: %v", sc.Name, err)
	}
	r.repair(ctx)
	<-r.Load.Done()
	r.Note("load finished: %d of %d deliveries acknowledged (%s)", r.Load.Acked(), r.Load.Total(), r.Load.Answers())

	rep := &Report{Scenario: sc.Name, Run: n, Deliveries: r.Load.Total(), Acked: r.Load.Acked(), Answers: r.Load.Answers()}
	rep.Quiesce, rep.Quiesced = r.quiesce(ctx)
	r.verify(ctx, rep)

	stopSupervisor()
	<-supervised
	if err := sys.Close(); err != nil {
		r.fail("shutdown", "%v", err)
	}
	r.checkProcesses()
	r.mu.Lock()
	rep.Failures, rep.Timeline = r.failures, r.timeline
	r.mu.Unlock()
	if len(rep.Failures) > 0 {
		rep.Logs = r.logTails()
	}
	rep.Dir = dir
	return rep, nil
}

// supervise restarts the receiver and the worker when they exit on their own, a second later, as
// systemd or Kubernetes would; every such exit is reported as a failure by checkProcesses.
func (r *Run) supervise(ctx context.Context) {
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		for _, p := range []*Process{r.Sys.Receiver, r.Sys.Worker} {
			if !p.crashed() {
				continue
			}
			r.Note("%s exited on its own; the supervisor restarts it in 1s", p.Name)
			select {
			case <-ctx.Done():
				return
			case <-time.After(time.Second):
			}
			if err := p.Start(); err != nil {
				r.Note("supervisor: %v", err)
			}
		}
	}
}

// repair starts whatever a disruption that failed halfway left stopped, so that the load can
// finish and the run be checked. After a disruption that went as planned it does nothing.
func (r *Run) repair(ctx context.Context) {
	if !r.Sys.Postgres.Process().Running() {
		r.Note("repair: postgres is down; starting it")
		if err := r.Sys.Postgres.Start(ctx); err != nil {
			r.Note("repair: %v", err)
		}
	}
	for i := range r.Sys.NATS.Nodes() {
		if !r.Sys.NATS.Process(i).Running() {
			r.Note("repair: %s is down; starting it", r.Sys.NATS.Name(i))
			if err := r.Sys.NATS.StartNode(ctx, i); err != nil {
				r.Note("repair: %v", err)
			}
		}
	}
	for _, p := range []*Process{r.Sys.Receiver, r.Sys.Worker} {
		if !p.Running() && !p.crashed() { // the supervisor restarts crashed ones
			r.Note("repair: %s is down; starting it", p.Name)
			if err := r.start(ctx, p); err != nil {
				r.Note("repair: %v", err)
			}
		}
	}
}

// kill sends SIGKILL to each process, at once.
func (r *Run) kill(_ context.Context, ps ...*Process) {
	names := make([]string, len(ps))
	var wg sync.WaitGroup
	for i, p := range ps {
		names[i] = fmt.Sprintf("%s (pid %d)", p.Name, p.PID())
		wg.Go(p.Kill)
	}
	wg.Wait()
	r.Note("kill -9 %s", strings.Join(names, ", "))
}

// start starts the receiver or the worker again, without waiting for readiness.
func (r *Run) start(ctx context.Context, ps ...*Process) error {
	for _, p := range ps {
		var err error
		switch p {
		case r.Sys.Receiver:
			err = r.Sys.StartReceiver(ctx, false)
		case r.Sys.Worker:
			err = r.Sys.StartWorker(ctx, false)
		default:
			err = p.Start()
		}
		if err != nil {
			return err
		}
		r.Note("started %s (pid %d)", p.Name, p.PID())
	}
	return nil
}

func (r *Run) startNATSNode(ctx context.Context, i int) error {
	if err := r.Sys.NATS.StartNode(ctx, i); err != nil {
		return err
	}
	r.Note("started %s (pid %d)", r.Sys.NATS.Name(i), r.Sys.NATS.Process(i).PID())
	return nil
}

func (r *Run) restartPostgres(ctx context.Context, mode string) error {
	if err := r.Load.WaitDispatched(ctx, at); err != nil {
		return err
	}
	t0 := time.Now()
	if err := r.Sys.Postgres.Stop(ctx, mode); err != nil {
		return err
	}
	r.Note("postgres stopped (pg_ctl stop -m %s) in %s", mode, time.Since(t0).Round(time.Millisecond))
	t0 = time.Now()
	if err := r.Sys.Postgres.Start(ctx); err != nil {
		return err
	}
	r.Note("postgres accepts connections again after %s", time.Since(t0).Round(time.Millisecond))
	return nil
}

// stallJobs makes the worker's mirror writes wait, as a slow moment of the database would: it
// locks the users table against writes, and waits up to limit for want jobs to be running (and
// stalled on the lock), so that a kill strikes jobs in the middle of their work. The returned
// function releases the lock.
func (r *Run) stallJobs(ctx context.Context, want int, limit time.Duration) (release func()) {
	tx, err := r.db.Begin(ctx)
	if err == nil {
		_, err = tx.Exec(ctx, `LOCK TABLE `+Schema+`.users IN EXCLUSIVE MODE`)
	}
	if err != nil {
		r.Note("could not stall the jobs (%v); striking anyway", err)
		if tx != nil {
			_ = tx.Rollback(ctx)
		}
		return func() {}
	}
	t0 := time.Now()
	var n int
	for time.Since(t0) < limit && ctx.Err() == nil {
		if err := r.db.QueryRow(ctx, `SELECT count(*) FROM `+Schema+`.river_job WHERE state = 'running'`).Scan(&n); err == nil && n >= want {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	r.Note("users table locked for %s: %d jobs running, waiting for the lock", time.Since(t0).Round(time.Millisecond), n)
	return func() {
		_ = tx.Rollback(context.WithoutCancel(ctx))
		r.Note("users table unlocked")
	}
}

// noteOrphans records what a killed worker left, once no worker runs and the transactions its
// connections had in flight are over: jobs still marked running, and messages handed out but not
// acknowledged.
func (r *Run) noteOrphans(ctx context.Context) {
	time.Sleep(500 * time.Millisecond)
	var jobs int
	if err := r.db.QueryRow(ctx, `SELECT count(*) FROM `+Schema+`.river_job WHERE state = 'running'`).Scan(&jobs); err != nil {
		r.Note("counting orphaned jobs: %v", err)
		return
	}
	msgs := "?"
	if c, err := r.js.Consumer(ctx, StreamName, ConsumerName); err == nil {
		if info, err := c.Info(ctx); err == nil {
			msgs = fmt.Sprint(info.NumAckPending)
		}
	}
	r.Note("no worker runs: %d jobs are left in state running, %s messages unacknowledged", jobs, msgs)
}

// waitNewLeader waits up to 10 seconds for another node to lead the stream, and notes it.
func (r *Run) waitNewLeader(ctx context.Context, old int) {
	t0 := time.Now()
	for time.Since(t0) < 10*time.Second && ctx.Err() == nil {
		qctx, cancel := context.WithTimeout(ctx, time.Second)
		leader, err := r.Sys.NATS.StreamLeader(qctx, r.js, StreamName)
		cancel()
		if err == nil && leader != old {
			r.Note("%s leads the stream after %s", r.Sys.NATS.Name(leader), time.Since(t0).Round(time.Millisecond))
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	r.Note("no new stream leader within 10s")
}

// crashed reports whether the current incarnation exited without the harness stopping it.
func (p *Process) crashed() bool {
	inc := p.last()
	return inc != nil && inc.exited() && !inc.expected.Load()
}
