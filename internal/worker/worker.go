// Package worker assembles a worker process: the intake (stream → event log + jobs), the River
// client that works the jobs, and the admin server (metrics, health, River UI).
//
// Shutdown order matters: the intake stops fetching and records what it holds first, so that no
// job is enqueued after River stops; then River finishes running jobs within ShutdownTimeout and
// cancels the rest, which it will retry later (every job is idempotent).
package worker

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivertype"
	"go.opentelemetry.io/otel/trace"
	"riverqueue.com/riverui"

	"github.com/idpsync/idpsync/internal/admin"
	"github.com/idpsync/idpsync/internal/events"
	"github.com/idpsync/idpsync/internal/handlers"
	"github.com/idpsync/idpsync/internal/intake"
	"github.com/idpsync/idpsync/internal/natsbus"
	"github.com/idpsync/idpsync/internal/ssf"
)

// Config configures a Worker.
type Config struct {
	// Pool and Schema locate the event log, the mirror and River's tables. Required.
	Pool   *pgxpool.Pool
	Schema string
	// Bus is the event stream. Required.
	Bus *natsbus.Bus
	// Consumer is the durable consumer shared by all workers. Required.
	Consumer natsbus.ConsumerConfig
	// KindOf tells the kind of each configured source. Required.
	KindOf func(source string) (events.Kind, bool)
	// BatchSize is the most messages recorded per transaction. Required.
	BatchSize int
	// ReconcileWorkers is how many mirror jobs run at once. Defaults to 20.
	ReconcileWorkers int
	// RevokeWorkers is how many calls back to the IdPs run at once. Defaults to 10.
	RevokeWorkers int
	// ResyncWorkers is how many resyncs run at once. Defaults to 2.
	ResyncWorkers int
	// SSF turns on the Shared Signals transmitter (defaults applied, valid): its listener on
	// SSF.Addr, its push jobs, and SETs from the mirror's changes and revoked sessions. Nil: off.
	SSF *ssf.Config
	// SSFWorkers is how many SET pushes run at once. Defaults to 10.
	SSFWorkers int
	// EventRetention, when positive, is how long the event log keeps an event; an hourly job
	// deletes older ones. Zero keeps them forever.
	EventRetention time.Duration
	// JobRetention is how long River keeps completed jobs. Required.
	JobRetention time.Duration
	// IdPs are the sources' management APIs, for resyncs and revocations.
	IdPs handlers.IdPs
	// Probes check the sources' management APIs when the worker starts; what they find is logged
	// and, when a source is misconfigured, reported by /readyz (through IdPs.Health).
	Probes []Probe
	// Policies are the sources' revocation policies, by source name.
	Policies map[string]handlers.Policy
	// Resyncs are the periodic resyncs this process schedules when it is River's leader.
	Resyncs []ResyncSchedule
	// ShutdownTimeout bounds how long running jobs may finish on shutdown. Defaults to 25s.
	ShutdownTimeout time.Duration
	// AdminAddr serves /metrics, /healthz, /readyz and /riverui/. Empty: no admin server.
	AdminAddr string
	// RiverUI mounts River's dashboard at /riverui/ on the admin server, behind Admin's
	// credentials (New fails without them).
	RiverUI bool
	// Admin protects the admin server's pages.
	Admin admin.Credentials
	// ProtectMetrics puts /metrics behind Admin's credentials.
	ProtectMetrics bool
	// Hooks react to mirror changes inside the apply job's transaction.
	Hooks []handlers.ChangeHook
	// Logger defaults to a logger that discards.
	Logger *slog.Logger
	// Registry receives the worker's metrics and is served at /metrics. Defaults to a new registry.
	Registry *prometheus.Registry
	// TracerProvider traces the intake (a span per delivery, continuing the receiver's trace) and
	// the jobs (a span per job, continuing the trace of the webhook that enqueued it). Nil turns
	// tracing off. The IdPs' clients are traced by their own http.Client (see ConnectIdPs).
	TracerProvider trace.TracerProvider
}

// Job time limits: see river.Config's JobTimeout and RescueStuckJobsAfter.
const (
	JobTimeout           = time.Minute
	RescueStuckJobsAfter = 90 * time.Second
)

// Fetch timing of the latency-sensitive queues.
const (
	fastFetchCooldown = 10 * time.Millisecond
	fastFetchPoll     = 250 * time.Millisecond
)

// ResyncSchedule is a periodic resync of one entity of one source.
type ResyncSchedule struct {
	Source   string
	Entity   events.Entity
	Interval time.Duration
}

// Worker is a running worker process.
type Worker struct {
	cfg    Config
	river  *river.Client[pgx.Tx]
	intake *intake.Intake
	admin  *http.Server
	ui     *riverui.Handler
	ln     net.Listener
	// ssf serves the SSF transmitter's endpoints on ssfLn; nil without SSF.
	ssf   *http.Server
	ssfLn net.Listener
}

// New builds a Worker; nothing runs until Run.
func New(cfg Config) (*Worker, error) {
	if cfg.Pool == nil || cfg.Bus == nil || cfg.Schema == "" || cfg.JobRetention <= 0 {
		return nil, errors.New("worker: Pool, Schema, Bus and JobRetention are required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Registry == nil {
		cfg.Registry = prometheus.NewRegistry()
	}
	cfg.ReconcileWorkers = cmp.Or(cfg.ReconcileWorkers, 20)
	cfg.RevokeWorkers = cmp.Or(cfg.RevokeWorkers, 10)
	cfg.ResyncWorkers = cmp.Or(cfg.ResyncWorkers, 2)
	if cfg.ShutdownTimeout <= 0 {
		cfg.ShutdownTimeout = 25 * time.Second
	}
	jm, err := newJobMetrics(cfg.Registry)
	if err != nil {
		return nil, err
	}
	hm, err := handlers.NewMetrics(cfg.Registry)
	if err != nil {
		return nil, err
	}
	if err := cfg.Registry.Register(newGauges(cfg.Pool, cfg.Probes, cfg.IdPs.Health, cfg.Logger)); err != nil {
		return nil, fmt.Errorf("registering gauges: %w", err)
	}
	workers := river.NewWorkers()
	queues := map[string]river.QueueConfig{
		handlers.QueueReconcile: {MaxWorkers: cfg.ReconcileWorkers, FetchCooldown: fastFetchCooldown, FetchPollInterval: fastFetchPoll},
		handlers.QueueRevoke:    {MaxWorkers: cfg.RevokeWorkers, FetchCooldown: fastFetchCooldown, FetchPollInterval: fastFetchPoll},
		handlers.QueueResync:    {MaxWorkers: cfg.ResyncWorkers},
	}
	var periodic []*river.PeriodicJob
	hooks := cfg.Hooks
	revoke := handlers.NewRevokeWorkers(cfg.Pool, cfg.IdPs, cfg.Logger, hm)
	var (
		ssfJobs *handlers.SSF
		signer  *ssf.Signer
	)
	if cfg.SSF != nil {
		keys, err := cfg.SSF.LoadKeys()
		if err != nil {
			return nil, err
		}
		if signer, err = ssf.NewSigner(keys, cfg.SSF.SigningKey); err != nil {
			return nil, fmt.Errorf("ssf: %w", err)
		}
		if ssfJobs, err = handlers.NewSSF(*cfg.SSF, cfg.Pool, signer, cfg.Logger.With("component", "ssf"), cfg.Registry); err != nil {
			return nil, err
		}
		ssfJobs.Register(workers)
		hooks = append(slices.Clone(hooks), ssfJobs.React)
		revoke.OnSessionRevoked(ssfJobs.SessionRevoked)
		queues[handlers.QueueSSF] = river.QueueConfig{MaxWorkers: cmp.Or(cfg.SSFWorkers, 10), FetchCooldown: fastFetchCooldown, FetchPollInterval: fastFetchPoll}
		periodic = append(periodic, handlers.PrunePeriodicJob())
	}
	mirror := newMirror(cfg.Policies, hooks, cfg.Logger)
	river.AddWorker(workers, handlers.NewApplyEventWorker(cfg.Pool, cfg.IdPs, cfg.Logger, mirror))
	river.AddWorker(workers, handlers.NewResyncWorker(cfg.Pool, cfg.IdPs, cfg.Logger, hm, mirror))
	revoke.Register(workers)
	if cfg.EventRetention > 0 {
		river.AddWorker(workers, handlers.NewPruneEventsWorker(cfg.Pool, cfg.EventRetention, hm))
		periodic = append(periodic, handlers.PruneEventsPeriodicJob())
	}
	for _, r := range cfg.Resyncs {
		args := handlers.ResyncArgs{Source: r.Source, Entity: r.Entity}
		periodic = append(periodic, river.NewPeriodicJob(river.PeriodicInterval(r.Interval),
			func() (river.JobArgs, *river.InsertOpts) { return args, nil },
			&river.PeriodicJobOpts{ID: "resync:" + r.Source + ":" + r.Entity.Plural()}))
	}
	middleware := []rivertype.Middleware{jm}
	if cfg.TracerProvider != nil {
		middleware = append(tracingMiddleware(cfg.TracerProvider), middleware...)
	}
	client, err := river.NewClient(riverpgxv5.New(cfg.Pool), &river.Config{
		// The mirror and revocation queues fetch again 10 ms after a fetch (River's default is
		// 100 ms, which caps a queue of short jobs at about ten fetches of MaxWorkers jobs a second
		// and adds up to 100 ms per hop); resyncs are long and keep the defaults.
		Queues:       queues,
		Workers:      workers,
		PeriodicJobs: periodic,
		Schema:       cfg.Schema,
		Logger:       slog.New(quieter{cfg.Logger.Handler(), slog.LevelWarn}).With("component", "river"),
		ErrorHandler: &jobErrorLogger{logger: cfg.Logger},
		Middleware:   middleware,
		// No job runs longer than a minute (resyncs work in slices), so a job still "running"
		// after RescueStuckJobsAfter belongs to a worker that died: River's rescuer (every 30 s)
		// hands it to a live worker, within about two minutes of the crash.
		JobTimeout:                  JobTimeout,
		RescueStuckJobsAfter:        RescueStuckJobsAfter,
		CompletedJobRetentionPeriod: cfg.JobRetention,
	})
	if err != nil {
		return nil, fmt.Errorf("river client: %w", err)
	}
	in, err := intake.New(intake.Config{
		Bus: cfg.Bus, Consumer: cfg.Consumer, Pool: cfg.Pool, Jobs: client, Mirror: mirror, KindOf: cfg.KindOf,
		BatchSize: cfg.BatchSize, Logger: cfg.Logger.With("component", "intake"), Registerer: cfg.Registry,
		TracerProvider: cfg.TracerProvider,
	})
	if err != nil {
		return nil, err
	}
	w := &Worker{cfg: cfg, river: client, intake: in}
	if ssfJobs != nil {
		ssfJobs.UseJobs(client)
		t, err := ssf.NewTransmitter(*cfg.SSF, signer, ssfJobs.Store(), cfg.Logger.With("component", "ssf"))
		if err != nil {
			return nil, err
		}
		w.ssf = t.NewServer()
	}
	if cfg.AdminAddr != "" {
		if err := w.buildAdmin(); err != nil {
			return nil, err
		}
	}
	return w, nil
}

// newMirror returns the mirror writer whose changes the revocation policies, then hooks, react to.
func newMirror(policies map[string]handlers.Policy, hooks []handlers.ChangeHook, logger *slog.Logger) *handlers.Mirror {
	return handlers.NewMirror(append([]handlers.ChangeHook{handlers.NewRevocationPolicy(policies, logger).React}, hooks...)...)
}

// River returns the River client, for operator commands that enqueue jobs.
func (w *Worker) River() *river.Client[pgx.Tx] { return w.river }

// AdminAddr returns the admin server's address once Run listens (useful with ":0").
func (w *Worker) AdminAddr() string {
	if w.ln == nil {
		return ""
	}
	return w.ln.Addr().String()
}

// Listen binds the admin address, so that its actual address is known before Run.
func (w *Worker) Listen() error {
	if w.admin != nil && w.ln == nil {
		ln, err := net.Listen("tcp", w.cfg.AdminAddr)
		if err != nil {
			return fmt.Errorf("admin server: %w", err)
		}
		w.ln = ln
	}
	if w.ssf != nil && w.ssfLn == nil {
		ln, err := net.Listen("tcp", w.cfg.SSF.Addr)
		if err != nil {
			return fmt.Errorf("ssf transmitter: %w", err)
		}
		w.ssfLn = ln
	}
	return nil
}

// SSFAddr returns the SSF transmitter's address once Run listens; "" without SSF.
func (w *Worker) SSFAddr() string {
	if w.ssfLn == nil {
		return ""
	}
	return w.ssfLn.Addr().String()
}

// Run works until ctx is done, then shuts down in order and returns.
func (w *Worker) Run(ctx context.Context) error {
	if err := w.Listen(); err != nil {
		return err
	}
	// River gets its own context: it is stopped explicitly below, after the intake.
	if err := w.river.Start(context.WithoutCancel(ctx)); err != nil {
		return fmt.Errorf("starting river: %w", err)
	}
	var (
		wg      sync.WaitGroup
		errMu   sync.Mutex
		runErrs []error
	)
	fail := func(err error) {
		errMu.Lock()
		runErrs = append(runErrs, err)
		errMu.Unlock()
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	wg.Go(func() {
		if err := w.intake.Run(ctx); err != nil {
			fail(fmt.Errorf("intake: %w", err))
			cancel()
		}
	})
	if w.admin != nil {
		if w.ui != nil {
			if err := w.ui.Start(ctx); err != nil {
				fail(fmt.Errorf("river ui: %w", err))
				cancel()
			}
		}
		wg.Go(func() {
			if err := w.admin.Serve(w.ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				fail(fmt.Errorf("admin server: %w", err))
				cancel()
			}
		})
	}
	if w.ssf != nil {
		wg.Go(func() {
			if err := w.ssf.Serve(w.ssfLn); err != nil && !errors.Is(err, http.ErrServerClosed) {
				fail(fmt.Errorf("ssf transmitter: %w", err))
				cancel()
			}
		})
	}
	w.cfg.Logger.Info("worker started", "admin_addr", w.AdminAddr(), "ssf_addr", w.SSFAddr(), "reconcile_workers", w.cfg.ReconcileWorkers)
	wg.Go(func() { w.checkSources(ctx) })

	<-ctx.Done()
	w.cfg.Logger.Info("worker stopping")
	for _, srv := range []*http.Server{w.admin, w.ssf} {
		if srv != nil {
			shutdownCtx, done := context.WithTimeout(context.Background(), 5*time.Second)
			_ = srv.Shutdown(shutdownCtx)
			done()
		}
	}
	wg.Wait() // the intake has recorded and settled what it held
	stopCtx, done := context.WithTimeout(context.Background(), w.cfg.ShutdownTimeout)
	defer done()
	if err := w.river.Stop(stopCtx); err != nil {
		w.cfg.Logger.Warn("jobs still running at the shutdown timeout; cancelling them (they will be retried)")
		cancelCtx, done := context.WithTimeout(context.Background(), 10*time.Second)
		defer done()
		if err := w.river.StopAndCancel(cancelCtx); err != nil {
			fail(fmt.Errorf("stopping river: %w", err))
		}
	}
	w.cfg.Logger.Info("worker stopped")
	return errors.Join(runErrs...)
}

func (w *Worker) buildAdmin() error {
	protected := map[string]http.Handler{}
	if w.cfg.RiverUI {
		ui, err := riverui.NewHandler(&riverui.HandlerOpts{
			Endpoints:                riverui.NewEndpoints(w.river, nil),
			Logger:                   w.cfg.Logger.With("component", "riverui"),
			Prefix:                   "/riverui",
			JobListHideArgsByDefault: true,
		})
		if err != nil {
			return fmt.Errorf("river ui: %w", err)
		}
		w.ui = ui
		protected["/riverui/"] = ui
	}
	h, err := admin.New(admin.Config{Registry: w.cfg.Registry, ReadyFunc: w.Ready, Credentials: w.cfg.Admin,
		ProtectMetrics: w.cfg.ProtectMetrics, Protected: protected})
	if err != nil {
		return fmt.Errorf("admin server: %w", err)
	}
	w.admin = admin.Server(h)
	return nil
}

// Ready reports whether Postgres and the stream are reachable and no source's management API
// answered in a way that shows it misconfigured.
func (w *Worker) Ready(ctx context.Context) error {
	if err := w.cfg.Pool.Ping(ctx); err != nil {
		return fmt.Errorf("postgres: %w", err)
	}
	if err := w.cfg.Bus.Ready(ctx); err != nil {
		return err
	}
	return w.cfg.IdPs.Health.Err()
}

// quieter raises a handler's threshold to min unless the handler is at debug: River reports its
// routine work (job counts every few seconds) at info, which would drown a worker's own logs.
type quieter struct {
	slog.Handler
	min slog.Level
}

func (q quieter) Enabled(ctx context.Context, l slog.Level) bool {
	if q.Handler.Enabled(ctx, slog.LevelDebug) {
		return true
	}
	return l >= q.min && q.Handler.Enabled(ctx, l)
}

func (q quieter) WithAttrs(attrs []slog.Attr) slog.Handler {
	return quieter{q.Handler.WithAttrs(attrs), q.min}
}
func (q quieter) WithGroup(name string) slog.Handler {
	return quieter{q.Handler.WithGroup(name), q.min}
}
