package chaos_test

import (
	"crypto/rand"
	"encoding/binary"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/idpsync/idpsync/internal/chaos"
)

// suite is the configuration of a chaos run, from CHAOS and the CHAOS_* knobs (see the package
// documentation).
type suite struct {
	mode      string
	runs      int
	opts      chaos.Options
	scenarios []chaos.Scenario
	keep      bool
}

func loadSuite(t *testing.T) suite {
	mode := os.Getenv("CHAOS")
	if mode != "short" && mode != "long" {
		t.Skip("the chaos suite runs with CHAOS=short or CHAOS=long (make chaos-short, make chaos)")
	}
	s := suite{mode: mode, runs: 1, keep: os.Getenv("CHAOS_KEEP") == "1",
		opts: chaos.Options{Users: 80, Rate: 60, Concurrency: 32, QuiesceTimeout: 2 * time.Minute}}
	if mode == "long" {
		s.runs, s.opts.Users, s.opts.Rate, s.opts.QuiesceTimeout = 10, 600, 150, 3*time.Minute
	}
	s.runs = envInt(t, "CHAOS_RUNS", s.runs)
	s.opts.Users = envInt(t, "CHAOS_USERS", s.opts.Users)
	s.opts.Rate = float64(envInt(t, "CHAOS_RATE", int(s.opts.Rate)))
	s.opts.Concurrency = envInt(t, "CHAOS_CONCURRENCY", s.opts.Concurrency)
	if v := os.Getenv("CHAOS_QUIESCE_TIMEOUT"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			t.Fatalf("CHAOS_QUIESCE_TIMEOUT=%q: a duration such as 3m", v)
		}
		s.opts.QuiesceTimeout = d
	}
	if v := os.Getenv("CHAOS_SEED"); v != "" {
		seed, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			t.Fatalf("CHAOS_SEED=%q: an unsigned integer", v)
		}
		s.opts.Seed = seed
	} else {
		var b [8]byte
		_, _ = rand.Read(b[:])
		s.opts.Seed = binary.LittleEndian.Uint64(b[:])
	}
	s.scenarios = chaos.Scenarios
	if v := os.Getenv("CHAOS_SCENARIOS"); v != "" {
		s.scenarios = nil
		for name := range strings.SplitSeq(v, ",") {
			sc, ok := chaos.ScenarioNamed(strings.TrimSpace(name))
			if !ok {
				t.Fatalf("CHAOS_SCENARIOS: no scenario %q", name)
			}
			s.scenarios = append(s.scenarios, sc)
		}
	}
	return s
}

func envInt(t *testing.T, name string, def int) int {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		t.Fatalf("%s=%q: a positive integer", name, v)
	}
	return n
}

// TestChaos runs every scenario against the real binaries and checks the promises after each run.
func TestChaos(t *testing.T) {
	s := loadSuite(t)
	pgBin, err := chaos.PostgresBin()
	if err != nil {
		t.Fatal(err)
	}
	binDir := t.TempDir()
	t0 := time.Now()
	bin, err := chaos.Build(t.Context(), binDir)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("built receiver, worker and nats-server in %s; postgres from %s", time.Since(t0).Round(time.Second), pgBin)
	t.Logf("mode %s: %d run(s) of %d scenario(s), %d users per run at %.0f deliveries/s, quiesce timeout %s, CHAOS_SEED=%d",
		s.mode, s.runs, len(s.scenarios), s.opts.Users, s.opts.Rate, s.opts.QuiesceTimeout, s.opts.Seed)

	var (
		mu      sync.Mutex
		reports []*chaos.Report
	)
	t.Run("scenarios", func(t *testing.T) {
		for _, sc := range s.scenarios {
			t.Run(sc.Name, func(t *testing.T) {
				t.Parallel()
				t.Logf("%s: %s", sc.Name, sc.Does)
				pgLogs := runDir(t, s.keep, "pg-logs")
				pg, err := chaos.NewPostgres(t.Context(), pgBin, pgLogs)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(pg.Close)
				if err := pg.Start(t.Context()); err != nil {
					t.Fatal(err)
				}
				for n := 1; n <= s.runs; n++ {
					t.Run("run-"+strconv.Itoa(n), func(t *testing.T) {
						rep, err := chaos.Execute(t.Context(), sc, n, runDir(t, s.keep, "run"), bin, pg, s.opts)
						if err != nil {
							t.Fatalf("%s run %d could not run: %v", sc.Name, n, err)
						}
						mu.Lock()
						reports = append(reports, rep)
						mu.Unlock()
						if len(rep.Failures) > 0 {
							t.Errorf("%s", rep)
						} else {
							t.Logf("%s", rep)
						}
					})
				}
			})
		}
	})
	t.Logf("figures (mode %s, CHAOS_SEED=%d):\n%s", s.mode, s.opts.Seed, chaos.Table(reports))
}

// runDir is a directory for a run: the test's temporary directory, or with CHAOS_KEEP=1 one that
// outlives the test (its path is logged).
func runDir(t *testing.T, keep bool, what string) string {
	if !keep {
		return t.TempDir()
	}
	dir, err := os.MkdirTemp("", "idpsync-chaos-"+what+"-")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("CHAOS_KEEP: %s kept in %s", what, dir)
	return dir
}
