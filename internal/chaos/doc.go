// Package chaos is idpsync's chaos suite: it runs the real binaries (cmd/receiver, cmd/worker and
// a nats-server built from the version pinned in go.mod) as separate processes against a private
// Postgres cluster, sends them signed Clerk webhooks the way Svix does (concurrently, each
// delivery retried with backoff until it gets a 2xx), breaks something mid-load, and then checks
// the promises of the README once the system has quiesced:
//
//   - every delivery that got a 2xx has exactly one row in the event log (none lost, none doubled);
//   - the users mirror equals the state the IdP ended with: per user, the state with the highest
//     updated_at, or a tombstone once deleted;
//   - no River job is left available, running, retryable or scheduled, none was discarded or
//     cancelled, and no event is left pending;
//   - no dead letter, no panic in any process's output, no process exited on its own.
//
// The scenarios (see Scenarios) kill -9 the receiver, the worker or both; restart nats-server
// gracefully or kill -9 it; start the receiver and the worker while NATS is down; restart the
// private Postgres (fast and immediate shutdowns); and kill -9 the stream leader of a 3-node
// JetStream cluster whose stream has 3 replicas.
//
// The suite is switched on by the environment, so that `make test` skips it:
//
//	CHAOS=short            one run of every scenario with a small load (make chaos-short, CI)
//	CHAOS=long             ten runs of every scenario with a larger load (make chaos)
//	CHAOS_RUNS             runs per scenario (short 1, long 10)
//	CHAOS_USERS            users per run; each gets about 4.5 deliveries (short 80, long 600)
//	CHAOS_RATE             deliveries dispatched per second (short 60, long 150)
//	CHAOS_CONCURRENCY      deliveries in flight at once, retries included (32)
//	CHAOS_QUIESCE_TIMEOUT  how long the system may take to settle after the load (short 2m, long 3m)
//	CHAOS_SCENARIOS        comma-separated scenario names to run (all)
//	CHAOS_SEED             seed of the generated load (random, printed)
//	CHAOS_KEEP             1 keeps each run's directory (configs, stores, process logs)
//	CHAOS_PG_BIN           PostgreSQL's bin directory (the newest /usr/lib/postgresql/*/bin)
//	CHAOS_PARALLEL         scenarios at once, for make (go test -parallel; short 9, long 4)
//
// A run that fails prints its timeline, each failed check with its evidence (rows, jobs, stream
// contents) and the tails of every process's output. To rerun one scenario with the same load:
//
//	CHAOS=short CHAOS_SCENARIOS=worker-kill CHAOS_SEED=<seed printed> go test -v -run TestChaos ./internal/chaos
//
// Everything a run starts lives in temporary directories and process groups that are removed and
// killed when the test ends, whatever its outcome; each process also dies with the test binary.
// The process logs are kept in the run's directory, and their tails are printed when a check fails.
package chaos
