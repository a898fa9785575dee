package app_test

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"runtime/pprof"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/idpsync/idpsync/internal/store/storetest"
)

// The benchmarks share a machine with other work, so rates move with the load. Beside each rate
// they report the CPU time one unit of work costs: this process (idpsync, or the naive reference,
// and the in-process NATS server) and the Postgres backends serving it, read from /proc (zero when
// Postgres is not on this host or /proc is not there). CPU per unit is much steadier than a rate
// on a loaded machine, and on a saturated one the rates' ratio follows the CPU costs' ratio.

// benchDatabase gives the benchmark's Postgres sessions an application_name of their own, so that
// pgCPU counts only the backends serving this process.
func benchDatabase(b *testing.B) {
	b.Helper()
	name := fmt.Sprintf("idpsync-bench-%d", os.Getpid())
	dsn := storetest.DatabaseURL()
	if u, err := url.Parse(dsn); err == nil && (u.Scheme == "postgres" || u.Scheme == "postgresql") {
		q := u.Query()
		q.Set("application_name", name)
		u.RawQuery = q.Encode()
		dsn = u.String()
	} else {
		dsn += " application_name=" + name
	}
	b.Setenv("TEST_DATABASE_URL", dsn)
}

// cpuCost measures the CPU time spent from its start: by this process and by the Postgres
// backends of this benchmark.
type cpuCost struct {
	b        *testing.B
	s        *stack
	self, pg time.Duration
}

func startCPUCost(b *testing.B, s *stack) *cpuCost {
	return &cpuCost{b: b, s: s, self: procCPU(os.Getpid()), pg: pgCPU(b, s)}
}

// perUnit returns the CPU time spent since start by this process and by Postgres, in microseconds
// per unit of n.
func (c *cpuCost) perUnit(n int) (self, pg float64) {
	us := func(d time.Duration) float64 { return float64(d.Microseconds()) / float64(n) }
	return us(procCPU(os.Getpid()) - c.self), us(pgCPU(c.b, c.s) - c.pg)
}

// pgCPU sums the CPU time of the Postgres backends whose application_name is this session's (see
// benchDatabase). A backend that exited since the last call is no longer counted, so callers
// measure windows in which the pool keeps its connections.
func pgCPU(b *testing.B, s *stack) time.Duration {
	b.Helper()
	rows, err := s.pool.Query(context.Background(),
		`SELECT pid FROM pg_stat_activity WHERE application_name = current_setting('application_name')`)
	if err != nil {
		b.Fatal(err)
	}
	pids, err := pgx.CollectRows(rows, pgx.RowTo[int32])
	if err != nil {
		b.Fatal(err)
	}
	var total time.Duration
	for _, pid := range pids {
		total += procCPU(int(pid))
	}
	return total
}

// procCPU is the user and system CPU time of process pid from /proc (Linux's clock tick is 10 ms);
// zero when it cannot be read.
func procCPU(pid int) time.Duration {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(data)
	i := strings.LastIndexByte(s, ')')
	if i < 0 || i+2 > len(s) {
		return 0
	}
	f := strings.Fields(s[i+2:])
	if len(f) < 13 {
		return 0
	}
	user, _ := strconv.ParseInt(f[11], 10, 64)
	system, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(user+system) * 10 * time.Millisecond
}

// cpuProfile writes a CPU profile of this process to path until stop is called; an empty path
// profiles nothing.
func cpuProfile(b *testing.B, path string) (stop func()) {
	b.Helper()
	if path == "" {
		return func() {}
	}
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		b.Fatal(err)
	}
	return func() {
		pprof.StopCPUProfile()
		if err := f.Close(); err != nil {
			b.Error(err)
		}
	}
}
