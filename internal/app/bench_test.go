package app_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"runtime/debug"
	"runtime/metrics"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/idpsync/idpsync/internal/events"
	"github.com/idpsync/idpsync/internal/provider/clerk/clerkfake"
	"github.com/idpsync/idpsync/internal/provider/zeroid/zeroidfake"
	"github.com/idpsync/idpsync/internal/store"
)

// The resync benchmark pages through a Clerk fake running in a child process (this test binary
// started again with benchFakeEnv set), so that the memory measured is idpsync's alone.
const benchFakeEnv = "IDPSYNC_BENCH_CLERK_USERS"

func TestMain(m *testing.M) {
	if n := os.Getenv(benchFakeEnv); n != "" {
		users, _ := strconv.Atoi(n)
		f := clerkfake.New(clerkfake.Options{Seed: 42, Users: users})
		fmt.Println(f.Start())
		_, _ = bufio.NewReader(os.Stdin).ReadString('\n') // until the parent closes stdin
		f.Close()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// childClerk starts the Clerk fake with users in a child process, and returns its URL and the
// child's process id.
func childClerk(b *testing.B, users int) (string, int) {
	b.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$", "-test.bench=^$")
	cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%d", benchFakeEnv, users))
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { stdin.Close(); _ = cmd.Wait() })
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		b.Fatalf("child fake: %v", err)
	}
	return strings.TrimSpace(line), cmd.Process.Pid
}

// memoryPeaks samples the process's resident set and live heap until stop is called.
func memoryPeaks() (stop func() (rssMiB, heapMiB float64)) {
	var peakRSS, peakHeap atomic.Int64
	done := make(chan struct{})
	finished := make(chan struct{})
	sample := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	go func() {
		defer close(finished)
		t := time.NewTicker(10 * time.Millisecond)
		defer t.Stop()
		for {
			metrics.Read(sample)
			peakHeap.Store(max(peakHeap.Load(), int64(sample[0].Value.Uint64())))
			peakRSS.Store(max(peakRSS.Load(), rss()))
			select {
			case <-done:
				return
			case <-t.C:
			}
		}
	}()
	return func() (float64, float64) {
		close(done)
		<-finished
		return float64(peakRSS.Load()) / (1 << 20), float64(peakHeap.Load()) / (1 << 20)
	}
}

// rss reads the process's resident set size from /proc.
func rss() int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for line := range strings.Lines(string(b)) {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// BenchmarkResync measures a resync of a Clerk source's users into an empty mirror: users/s
// written to Postgres (listing, mapping, version-guarded upserts, seen keys, checkpoints), the CPU
// time per user of this process, of its Postgres backends and of the fake (which shares the
// machine), and the peak resident set and live heap of the process, which must not grow with the
// number of users: each size after the first also reports the growth of both over the first.
//
//	go test -run '^$' -bench 'BenchmarkResync$' ./internal/app
//
// BENCH_RESYNC_USERS sets the sizes, comma-separated (default 10000,300000);
// BENCH_RESYNC_CPUPROFILE writes a CPU profile of the last resync to that file.
func BenchmarkResync(b *testing.B) {
	benchDatabase(b)
	sizes := []int{10_000, 300_000}
	if v := os.Getenv("BENCH_RESYNC_USERS"); v != "" {
		sizes = nil
		for f := range strings.SplitSeq(v, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(f))
			if err != nil {
				b.Fatalf("BENCH_RESYNC_USERS: %v", err)
			}
			sizes = append(sizes, n)
		}
	}
	var firstRSS, firstHeap float64
	for i, users := range sizes {
		b.Run(fmt.Sprintf("users=%d", users), func(b *testing.B) {
			url, fake := childClerk(b, users)
			s := startStack(b, withSources(fmt.Sprintf(
				`[{name: clerk-e2e, kind: clerk, webhook: {secrets: [%q]}, api: {secret_key: sk_test_fakeidp, base_url: %q}, resync: {periodic: false}}]`, secret, url)))
			b.ResetTimer()
			for b.Loop() {
				// Collect and hand freed memory back to the OS, so that the peaks are this resync's
				// and not what benchmarks run before it in this process left in the resident set.
				debug.FreeOSMemory()
				stop := memoryPeaks()
				cost, fake0 := startCPUCost(b, s), procCPU(fake)
				profile := cpuProfile(b, os.Getenv("BENCH_RESYNC_CPUPROFILE"))
				start := time.Now()
				run := s.finishedWithin(s.resync(events.EntityUser), 10*time.Minute)
				took := time.Since(start)
				profile()
				self, pg := cost.perUnit(users)
				fakeCPU := float64((procCPU(fake) - fake0).Microseconds()) / float64(users)
				rssMiB, heapMiB := stop()
				if run.Status != store.RunSucceeded || run.Seen != int64(users) {
					b.Fatalf("run = %+v", run)
				}
				b.Logf("%d users: %.0f users/s; cpu/user: %.1f us here + %.1f us in Postgres + %.1f us in the fake; peak RSS %.1f MiB, peak heap %.1f MiB",
					users, float64(users)/took.Seconds(), self, pg, fakeCPU, rssMiB, heapMiB)
				b.ReportMetric(float64(users)/took.Seconds(), "users/s")
				b.ReportMetric(self+pg, "cpu-us/user")
				b.ReportMetric(rssMiB, "peak-rss-MiB")
				b.ReportMetric(heapMiB, "peak-heap-MiB")
				if i == 0 {
					firstRSS, firstHeap = rssMiB, heapMiB
				} else {
					b.ReportMetric(rssMiB-firstRSS, "rss-growth-MiB")
					b.ReportMetric(heapMiB-firstHeap, "heap-growth-MiB")
				}
			}
		})
	}
}

// BenchmarkOrganizationDeletedRevocation measures, for 100 organizations of 10 members deleted at
// the Clerk fake 10 per second, the time from each deletion to the last revocation call it caused
// at the fakes (10 session revocations at Clerk and 10 agent signals at ZeroID): the webhook, the
// receiver, the stream, the intake, the mirror job and two rounds of revocation jobs.
//
//	go test -run '^$' -bench BenchmarkOrganizationDeletedRevocation ./internal/app
func BenchmarkOrganizationDeletedRevocation(b *testing.B) {
	const orgs, members = 100, 10
	s, c, z := revocationStackWith(b, clerkfake.Options{Seed: 5, Users: orgs * members, Organizations: orgs,
		MembersPerOrganization: members, SessionsPerUser: 1}, "{zeroid: agents, zeroid_action: signal}")
	for _, uid := range c.UserIDs() {
		z.CreateIdentity(zeroidfake.Identity{Name: "agent", IdentityType: "agent", Status: "active", OwnerUserID: uid})
	}
	for _, entity := range events.MirroredEntities {
		if run := s.finishedWithin(s.resync(entity), 10*time.Minute); run.Status != store.RunSucceeded {
			b.Fatalf("resync %s: %+v", entity, run)
		}
	}
	orgIDs := c.OrganizationIDs()
	memberOf := map[string]string{} // session or identity owner → organization
	for _, org := range orgIDs {
		for _, m := range c.Memberships(org) {
			memberOf[m.UserID] = org
		}
	}
	b.ResetTimer()
	for b.Loop() {
		deleted := map[string]time.Time{}
		tick := time.NewTicker(100 * time.Millisecond)
		for _, org := range orgIDs {
			<-tick.C
			deleted[org] = time.Now()
			if err := c.DeleteOrganization(org); err != nil {
				b.Fatal(err)
			}
		}
		tick.Stop()
		deadline := time.Now().Add(2 * time.Minute)
		for len(c.MutationsOf("session.revoke")) < orgs*members || len(z.MutationsOf("signal.ingest")) < orgs*members {
			if time.Now().After(deadline) {
				b.Fatalf("after 2 minutes: %d sessions revoked, %d agents signalled; jobs: %v; revocations: %v",
					len(c.MutationsOf("session.revoke")), len(z.MutationsOf("signal.ingest")),
					s.counts(`SELECT kind || ':' || state, count(*) FROM river_job GROUP BY 1`),
					s.counts(`SELECT action || ':' || outcome, count(*) FROM revocations GROUP BY 1`))
			}
			time.Sleep(20 * time.Millisecond)
		}
		last := map[string]time.Time{}
		for _, m := range c.MutationsOf("session.revoke") {
			sess, _ := c.Session(m.ID)
			org := memberOf[sess.UserID]
			last[org] = maxTime(last[org], m.At)
		}
		owners := map[string]string{}
		for _, id := range z.IdentityIDs() {
			i, _ := z.Identity(id)
			owners[id] = i.OwnerUserID
		}
		for _, m := range z.MutationsOf("signal.ingest") {
			org := memberOf[owners[m.ID]]
			last[org] = maxTime(last[org], m.At)
		}
		var lat []float64
		for org, at := range deleted {
			lat = append(lat, last[org].Sub(at).Seconds()*1000)
		}
		slices.Sort(lat)
		b.ReportMetric(lat[len(lat)/2], "p50-ms")
		b.ReportMetric(lat[len(lat)*99/100], "p99-ms")
		b.ReportMetric(lat[len(lat)-1], "max-ms")
	}
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// counts runs a "label, count" query.
func (s *stack) counts(query string) map[string]int64 {
	rows, err := s.pool.Query(context.Background(), query)
	if err != nil {
		s.t.Fatal(err)
	}
	defer rows.Close()
	out := map[string]int64{}
	for rows.Next() {
		var k string
		var n int64
		if err := rows.Scan(&k, &n); err != nil {
			s.t.Fatal(err)
		}
		out[k] = n
	}
	return out
}
