package chaos

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// Report is the outcome of one run of a scenario.
type Report struct {
	Scenario string
	Run      int
	// Deliveries is how many the IdP sent; Acked how many got a 2xx.
	Deliveries, Acked int
	// Lost counts acknowledged deliveries without an event row once the system quiesced (before
	// that, the stream may still deliver them); Doubled, deliveries with several rows.
	Lost, Doubled int
	// Attempts counts HTTP requests, retries included; Answers summarizes their answers.
	Attempts int
	Answers  string
	// StreamMsgs is how many messages the stream held at the end.
	StreamMsgs uint64
	// Quiesce is the time from the load's end until nothing was left in flight.
	Quiesce  time.Duration
	Quiesced bool
	Failures []Failure
	Timeline []string
	// Logs are the tails of every process's output, when a check failed.
	Logs string
	// Dir is the run's directory.
	Dir string
}

// Summary is the report in one line.
func (r *Report) Summary() string {
	q := r.Quiesce.Round(10 * time.Millisecond).String()
	if !r.Quiesced {
		q = "not within " + r.Quiesce.Round(time.Second).String()
	}
	verdict := "ok"
	if len(r.Failures) > 0 {
		checks := make([]string, len(r.Failures))
		for i, f := range r.Failures {
			checks[i] = f.Check
		}
		verdict = "FAILED: " + strings.Join(slices.Compact(checks), ", ")
	}
	return fmt.Sprintf("%s run %d: deliveries %d, 2xx %d, lost %d, doubled %d, attempts %d, stream messages %d, quiesced %s — %s",
		r.Scenario, r.Run, r.Deliveries, r.Acked, r.Lost, r.Doubled, r.Attempts, r.StreamMsgs, q, verdict)
}

// String is the whole report: the summary, the timeline, each failure with its evidence and,
// when something failed, the tails of the process logs.
func (r *Report) String() string {
	var b strings.Builder
	b.WriteString(r.Summary())
	b.WriteString("\ntimeline:\n")
	for _, l := range r.Timeline {
		b.WriteString("  " + l + "\n")
	}
	b.WriteString("answers: " + r.Answers + "\n")
	for _, f := range r.Failures {
		fmt.Fprintf(&b, "FAILED %s: %s\n", f.Check, f.Detail)
	}
	if r.Logs != "" {
		b.WriteString("process output (" + r.Dir + "):\n" + r.Logs)
	}
	return b.String()
}

// Table sums up the reports scenario by scenario: runs, deliveries, 2xx'd, lost, doubled, the
// median and the longest time to quiesce, and the runs that failed with the checks they failed.
func Table(reports []*Report) string {
	var names []string
	by := map[string][]*Report{}
	for _, r := range reports {
		if by[r.Scenario] == nil {
			names = append(names, r.Scenario)
		}
		by[r.Scenario] = append(by[r.Scenario], r)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "| %-26s | %4s | %10s | %8s | %4s | %7s | %28s | %s |\n", "scenario", "runs", "deliveries", "2xx'd", "lost", "doubled", "quiesce med/max", "failed runs")
	fmt.Fprintf(&b, "|%s|%s|%s|%s|%s|%s|%s|%s|\n", strings.Repeat("-", 28), strings.Repeat("-", 6), strings.Repeat("-", 12),
		strings.Repeat("-", 10), strings.Repeat("-", 6), strings.Repeat("-", 9), strings.Repeat("-", 30), strings.Repeat("-", 13))
	for _, name := range names {
		rs := by[name]
		var deliveries, acked, lost, doubled, failed, unsettled int
		var qs []time.Duration
		checks := map[string]int{}
		for _, r := range rs {
			deliveries += r.Deliveries
			acked += r.Acked
			lost += r.Lost
			doubled += r.Doubled
			qs = append(qs, r.Quiesce)
			if !r.Quiesced {
				unsettled++
			}
			if len(r.Failures) > 0 {
				failed++
			}
			seen := map[string]bool{}
			for _, f := range r.Failures {
				if !seen[f.Check] {
					checks[f.Check]++
					seen[f.Check] = true
				}
			}
		}
		slices.Sort(qs)
		var keys []string
		for k, n := range checks {
			keys = append(keys, fmt.Sprintf("%s ×%d", k, n))
		}
		slices.Sort(keys)
		failures := fmt.Sprintf("%d", failed)
		if len(keys) > 0 {
			failures += " (" + strings.Join(keys, ", ") + ")"
		}
		q := fmt.Sprintf("%s / %s", fmtSeconds(qs[len(qs)/2]), fmtSeconds(qs[len(qs)-1]))
		if unsettled > 0 {
			q = fmt.Sprintf("%d× timeout, %s", unsettled, q)
		}
		fmt.Fprintf(&b, "| %-26s | %4d | %10d | %8d | %4d | %7d | %28s | %s |\n", name, len(rs), deliveries, acked, lost, doubled, q, failures)
	}
	return b.String()
}

func fmtSeconds(d time.Duration) string { return fmt.Sprintf("%.1fs", d.Seconds()) }
