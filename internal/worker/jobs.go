package worker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
)

// jobMetrics counts worked jobs by kind and outcome and times them.
type jobMetrics struct {
	river.MiddlewareDefaults
	jobs     *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

var _ rivertype.WorkerMiddleware = (*jobMetrics)(nil)

func newJobMetrics(reg prometheus.Registerer) (*jobMetrics, error) {
	m := &jobMetrics{
		jobs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "idpsync_jobs_total",
			Help: "Jobs worked, by kind and outcome (completed, retried, discarded, cancelled, snoozed).",
		}, []string{"kind", "outcome"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "idpsync_job_duration_seconds",
			Help:    "Time spent working a job, by kind.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60},
		}, []string{"kind"}),
	}
	for _, c := range []prometheus.Collector{m.jobs, m.duration} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("registering job metrics: %w", err)
		}
	}
	return m, nil
}

// Work implements rivertype.WorkerMiddleware.
func (m *jobMetrics) Work(ctx context.Context, job *rivertype.JobRow, doInner func(context.Context) error) error {
	start := time.Now()
	err := doInner(ctx)
	m.duration.WithLabelValues(job.Kind).Observe(time.Since(start).Seconds())
	m.jobs.WithLabelValues(job.Kind, jobOutcome(job, err)).Inc()
	return err
}

func jobOutcome(job *rivertype.JobRow, err error) string {
	switch {
	case err == nil:
		return "completed"
	case errors.As(err, new(*river.JobSnoozeError)):
		return "snoozed"
	case errors.As(err, new(*river.JobCancelError)):
		return "cancelled"
	case job.Attempt >= job.MaxAttempts:
		return "discarded"
	}
	return "retried"
}

// jobErrorLogger logs failed and panicking jobs; River then retries them on its schedule.
type jobErrorLogger struct{ logger *slog.Logger }

func (l *jobErrorLogger) HandleError(ctx context.Context, job *rivertype.JobRow, err error) *river.ErrorHandlerResult {
	level := slog.LevelWarn
	if job.Attempt >= job.MaxAttempts {
		level = slog.LevelError
	}
	l.logger.Log(ctx, level, "job failed", "job_kind", job.Kind, "job_id", job.ID, "attempt", job.Attempt,
		"max_attempts", job.MaxAttempts, "error", err)
	return nil
}

func (l *jobErrorLogger) HandlePanic(ctx context.Context, job *rivertype.JobRow, panicVal any, trace string) *river.ErrorHandlerResult {
	l.logger.Error("job panicked", "job_kind", job.Kind, "job_id", job.ID, "attempt", job.Attempt, "panic", fmt.Sprint(panicVal), "trace", trace)
	return nil
}
