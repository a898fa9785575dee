package idpclient_test

import (
	"bufio"
	"context"
	"fmt"
	"iter"
	"os"
	"os/exec"
	"runtime"
	"runtime/metrics"
	"strconv"
	"strings"
	"testing"

	"github.com/idpsync/idpsync/internal/provider/authpi"
	"github.com/idpsync/idpsync/internal/provider/authpi/authpifake"
	"github.com/idpsync/idpsync/internal/provider/clerk"
	"github.com/idpsync/idpsync/internal/provider/clerk/clerkfake"
	"github.com/idpsync/idpsync/internal/provider/zeroid"
	"github.com/idpsync/idpsync/internal/provider/zeroid/zeroidfake"
	"github.com/idpsync/idpsync/internal/provider/zitadel"
	"github.com/idpsync/idpsync/internal/provider/zitadel/zitadelfake"
)

// The benchmarks page through a fake that runs in a child process (this test binary started
// again with benchFakeEnv set), so that the heap measured is the client's alone.
const benchFakeEnv = "IDPCLIENT_BENCH_FAKE"

func TestMain(m *testing.M) {
	if spec := os.Getenv(benchFakeEnv); spec != "" {
		os.Exit(serveBenchFake(spec))
	}
	os.Exit(m.Run())
}

// serveBenchFake starts the fake "provider:users", prints its base URL, and serves until stdin
// closes.
func serveBenchFake(spec string) int {
	provider, n, _ := strings.Cut(spec, ":")
	users, err := strconv.Atoi(n)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bad", benchFakeEnv, spec)
		return 2
	}
	var url string
	var closer func()
	switch provider {
	case "clerk":
		f := clerkfake.New(clerkfake.Options{Users: users})
		url, closer = f.Start(), f.Close
	case "zitadel":
		f := zitadelfake.New(zitadelfake.Options{Users: users})
		url, closer = f.Start(), f.Close
	case "authpi":
		f := authpifake.New(authpifake.Options{Users: users})
		url, closer = f.Start(), f.Close
	case "zeroid":
		f := zeroidfake.New(zeroidfake.Options{Identities: users})
		url, closer = f.Start(), f.Close
	default:
		fmt.Fprintln(os.Stderr, "unknown provider", provider)
		return 2
	}
	defer closer()
	fmt.Println(url)
	_, _ = bufio.NewReader(os.Stdin).ReadString('\n') // returns when the parent closes stdin
	return 0
}

func startChildFake(b *testing.B, provider string, users int) string {
	b.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$", "-test.bench=^$")
	cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%s:%d", benchFakeEnv, provider, users))
	stdin, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		stdin.Close()
		_ = cmd.Wait()
	})
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		b.Fatalf("child fake did not start: %v", err)
	}
	return strings.TrimSpace(line)
}

// lister builds the id iterator of one provider's client against a fake at url.
func lister(b *testing.B, provider, url string) func(context.Context) iter.Seq2[string, error] {
	b.Helper()
	ids := func(seq func(func(string, error) bool)) iter.Seq2[string, error] { return seq }
	switch provider {
	case "clerk":
		c, err := clerk.New(clerk.Config{BaseURL: url, SecretKey: "sk_test_fakeidp"})
		if err != nil {
			b.Fatal(err)
		}
		return func(ctx context.Context) iter.Seq2[string, error] {
			return ids(func(yield func(string, error) bool) {
				for u, err := range c.ListUsers(ctx, nil) {
					if !yield(u.ID, err) {
						return
					}
				}
			})
		}
	case "zitadel":
		c, err := zitadel.New(zitadel.Config{BaseURL: url, PersonalAccessToken: "fakeidp-zitadel-pat"})
		if err != nil {
			b.Fatal(err)
		}
		return func(ctx context.Context) iter.Seq2[string, error] {
			return ids(func(yield func(string, error) bool) {
				for u, err := range c.ListUsers(ctx, nil) {
					if !yield(u.UserID, err) {
						return
					}
				}
			})
		}
	case "authpi":
		c, err := authpi.New(authpi.Config{BaseURL: url, APIKeyID: "key_fakeidp", APIKeySecret: "fakeidp-key-secret"})
		if err != nil {
			b.Fatal(err)
		}
		var issuer string
		for iss, err := range c.ListIssuers(b.Context(), nil) {
			if err != nil {
				b.Fatal(err)
			}
			issuer = iss.ID
			break
		}
		return func(ctx context.Context) iter.Seq2[string, error] {
			return ids(func(yield func(string, error) bool) {
				for u, err := range c.ListUsers(ctx, &authpi.ListUsersParams{IssuerID: issuer}) {
					if !yield(u.ID, err) {
						return
					}
				}
			})
		}
	case "zeroid":
		c, err := zeroid.New(zeroid.Config{BaseURL: url, AccountID: "acct_fakeidp", ProjectID: "proj_fakeidp"})
		if err != nil {
			b.Fatal(err)
		}
		return func(ctx context.Context) iter.Seq2[string, error] {
			return ids(func(yield func(string, error) bool) {
				for i, err := range c.ListIdentities(ctx, nil) {
					if !yield(i.ID, err) {
						return
					}
				}
			})
		}
	}
	b.Fatalf("unknown provider %s", provider)
	return nil
}

// BenchmarkListUsers iterates every user of a fake holding 10,000 or 100,000 of them and reports
// throughput and the peak live heap of the client process during the walk. Peak heap stays flat
// as the count grows because the iterators hold one page at a time.
func BenchmarkListUsers(b *testing.B) {
	for _, provider := range []string{"clerk", "zitadel", "authpi", "zeroid"} {
		for _, n := range []int{10_000, 100_000} {
			b.Run(fmt.Sprintf("%s/%dk", provider, n/1000), func(b *testing.B) {
				list := lister(b, provider, startChildFake(b, provider, n))
				sample := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
				var peak uint64
				runtime.GC()
				b.ReportAllocs()
				b.ResetTimer()
				items := 0
				for b.Loop() {
					got := 0
					for _, err := range list(b.Context()) {
						if err != nil {
							b.Fatal(err)
						}
						got++
						if got%500 == 0 {
							metrics.Read(sample)
							peak = max(peak, sample[0].Value.Uint64())
						}
					}
					if got != n {
						b.Fatalf("iterated %d users, want %d", got, n)
					}
					items += got
				}
				b.ReportMetric(float64(items)/b.Elapsed().Seconds(), "items/s")
				b.ReportMetric(float64(peak)/(1<<20), "peak-heap-MiB")
			})
		}
	}
}
