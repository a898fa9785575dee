package monitoring

import (
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
	"go.yaml.in/yaml/v3"
)

const (
	rulesFile     = "idpsync.rules.yml"
	ruleTestsGlob = "*.test.yml" // promtool's unit tests of rulesFile
	dashboardFile = "idpsync-dashboard.json"
)

// sourceTrees hold the service's code, whose metric registrations the contract must match.
var sourceTrees = []string{"../../internal", "../../cmd"}

// metric is what the rules and the dashboard may select of one metric.
type metric struct {
	// labels are the metric's own labels; job and instance (added by the scrape) are always allowed.
	labels []string
	// values lists, for the labels with a fixed vocabulary, the values a matcher may name.
	values map[string][]string
	// histogram: the series are name_bucket (with le), name_sum and name_count.
	histogram bool
}

var (
	sourceOutcomes  = []string{"accepted", "duplicate", "unauthorized", "bad_request", "too_large", "unsupported_media_type", "method_not_allowed", "unknown_source", "unavailable", "overloaded"}
	verifyReasons   = []string{"missing_header", "malformed_header", "missing_signature", "invalid_signature", "timestamp_too_old", "timestamp_too_new"}
	entities        = []string{"users", "organizations", "memberships"}
	queues          = []string{"reconcile", "revoke", "resync", "ssf"}
	riverStates     = []string{"available", "cancelled", "completed", "discarded", "pending", "retryable", "running", "scheduled"}
	revokeActions   = []string{"list_sessions", "revoke_session", "offboard", "list_agents", "deactivate_agent", "signal_agent"}
	revokeOutcomes  = []string{"done", "already_done", "failed"}
	jobOutcomes     = []string{"completed", "retried", "discarded", "cancelled", "snoozed"}
	ssfPushOutcomes = []string{"delivered", "failed", "dropped", "retried"}
)

// contract lists the metrics idpsync emits, or will: the README's Metrics table, the SSF
// transmitter's, and the River and dead-letter gauges announced for the rules.
var contract = map[string]metric{
	"idpsync_webhook_requests_total":              {labels: []string{"source", "outcome"}, values: map[string][]string{"outcome": sourceOutcomes}},
	"idpsync_webhook_verification_failures_total": {labels: []string{"source", "reason"}, values: map[string][]string{"reason": verifyReasons}},
	"idpsync_webhook_publish_seconds":             {labels: []string{"source"}, histogram: true},
	"idpsync_intake_messages_total":               {labels: []string{"source", "outcome"}, values: map[string][]string{"outcome": {"recorded", "duplicate", "dead_lettered"}}},
	"idpsync_webhook_body_bytes_in_flight":        {},
	"idpsync_receiver_connections":                {},
	"idpsync_intake_lag_seconds":                  {histogram: true},
	"idpsync_intake_failures_total":               {},
	"idpsync_jobs_total":                          {labels: []string{"kind", "outcome"}, values: map[string][]string{"outcome": jobOutcomes}},
	"idpsync_job_duration_seconds":                {labels: []string{"kind"}, histogram: true},
	"idpsync_resync_runs_total":                   {labels: []string{"source", "entity", "outcome"}, values: map[string][]string{"entity": entities, "outcome": {"succeeded", "failed"}}},
	"idpsync_resync_drift_total":                  {labels: []string{"source", "entity", "change"}, values: map[string][]string{"entity": entities, "change": {"created", "updated", "deleted"}}},
	"idpsync_resync_seen_total":                   {labels: []string{"source", "entity"}, values: map[string][]string{"entity": entities}},
	"idpsync_revocations_total":                   {labels: []string{"target", "action", "outcome"}, values: map[string][]string{"action": revokeActions, "outcome": revokeOutcomes}},
	"idpsync_revocation_seconds":                  {labels: []string{"action"}, values: map[string][]string{"action": revokeActions}, histogram: true},
	"idpsync_ssf_sets_recorded_total":             {labels: []string{"event_type"}},
	"idpsync_ssf_pushes_total":                    {labels: []string{"outcome"}, values: map[string][]string{"outcome": ssfPushOutcomes}},
	"idpsync_ssf_push_seconds":                    {histogram: true},
	"idpsync_events_pruned_total":                 {},

	"idpsync_dead_letters_pending":   {labels: []string{"source"}},
	"idpsync_jobs":                   {labels: []string{"queue", "state"}, values: map[string][]string{"queue": queues, "state": riverStates}},
	"idpsync_job_oldest_age_seconds": {labels: []string{"queue", "state"}, values: map[string][]string{"queue": queues, "state": riverStates}},
	"idpsync_source_misconfigured":   {labels: []string{"source"}},
}

// Series that Prometheus itself makes, with the labels the rules and the dashboard may use.
var prometheusSeries = map[string][]string{
	"up":     {"job", "instance"},
	"ALERTS": {"alertname", "alertstate", "severity"},
}

var promql = parser.NewParser(parser.Options{})

// checker checks the selectors of PromQL expressions against the contract.
type checker struct {
	// recorded are the recording rules' names, which expressions may select with any label.
	recorded map[string]bool
}

// check parses expr and returns what is wrong with it, if anything.
func (c checker) check(expr string) []string {
	e, err := promql.ParseExpr(expr)
	if err != nil {
		return []string{err.Error()}
	}
	var problems []string
	parser.Inspect(e, func(n parser.Node, _ []parser.Node) error {
		if vs, ok := n.(*parser.VectorSelector); ok {
			problems = append(problems, c.selector(vs)...)
		}
		return nil
	})
	return problems
}

func (c checker) selector(vs *parser.VectorSelector) []string {
	if vs.Name == "" {
		return []string{fmt.Sprintf("%s: select a metric by name", vs)}
	}
	if c.recorded[vs.Name] {
		return nil
	}
	allowed, values, ok := c.labelsOf(vs.Name)
	if !ok {
		return []string{fmt.Sprintf("%s: %s is neither a metric idpsync emits (the contract) nor a recording rule", vs, vs.Name)}
	}
	var problems []string
	for _, m := range vs.LabelMatchers {
		if m.Name == labels.MetricName {
			continue
		}
		if !slices.Contains(allowed, m.Name) {
			problems = append(problems, fmt.Sprintf("%s: %s has no label %q (it has %s)", vs, vs.Name, m.Name, strings.Join(allowed, ", ")))
			continue
		}
		vocabulary := values[m.Name]
		if vocabulary == nil {
			continue
		}
		for _, v := range literals(m) {
			if !slices.Contains(vocabulary, v) {
				problems = append(problems, fmt.Sprintf("%s: %s=%q is not a value of %s (%s)", vs, m.Name, v, vs.Name, strings.Join(vocabulary, ", ")))
			}
		}
	}
	return problems
}

// labelsOf returns the labels a selector of name may match, and their vocabularies.
func (checker) labelsOf(name string) ([]string, map[string][]string, bool) {
	scrape := []string{"job", "instance"}
	if l, ok := prometheusSeries[name]; ok {
		return l, nil, true
	}
	if m, ok := contract[name]; ok && !m.histogram {
		return append(scrape, m.labels...), m.values, true
	}
	for _, suffix := range []string{"_bucket", "_sum", "_count"} {
		m, ok := contract[strings.TrimSuffix(name, suffix)]
		if !ok || !m.histogram || !strings.HasSuffix(name, suffix) {
			continue
		}
		l := append(scrape, m.labels...)
		if suffix == "_bucket" {
			l = append(l, "le")
		}
		return l, m.values, true
	}
	return nil, nil, false
}

var literalAlternation = regexp.MustCompile(`^[a-z_]+(\|[a-z_]+)*$`)

// literals returns the label values a matcher names: its value, or the alternatives of a regular
// expression that is only literals ("a|b"); none for any other expression.
func literals(m *labels.Matcher) []string {
	switch m.Type {
	case labels.MatchEqual, labels.MatchNotEqual:
		return []string{m.Value}
	}
	if literalAlternation.MatchString(m.Value) {
		return strings.Split(m.Value, "|")
	}
	return nil
}

type ruleFile struct {
	Groups []struct {
		Name  string `yaml:"name"`
		Rules []struct {
			Record      string            `yaml:"record"`
			Alert       string            `yaml:"alert"`
			Expr        string            `yaml:"expr"`
			Labels      map[string]string `yaml:"labels"`
			Annotations map[string]string `yaml:"annotations"`
		} `yaml:"rules"`
	} `yaml:"groups"`
}

func readYAML(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

func readRules(t *testing.T) ruleFile {
	t.Helper()
	var rf ruleFile
	readYAML(t, rulesFile, &rf)
	if len(rf.Groups) == 0 {
		t.Fatalf("%s has no rule groups", rulesFile)
	}
	return rf
}

func recordedNames(rf ruleFile) map[string]bool {
	names := map[string]bool{}
	for _, g := range rf.Groups {
		for _, r := range g.Rules {
			if r.Record != "" {
				names[r.Record] = true
			}
		}
	}
	return names
}

var recordName = regexp.MustCompile(`^[a-z_]+:idpsync_[a-z0-9_]+:[a-z0-9_]+$`)

// TestRules checks what promtool does not: every expression selects metrics and labels idpsync
// emits, with values they take; recording rules are named level:metric:operation; every alert
// is a page or a ticket and tells the operator what is wrong and what to check.
func TestRules(t *testing.T) {
	rf := readRules(t)
	c := checker{recorded: recordedNames(rf)}
	alerts := 0
	for _, g := range rf.Groups {
		for _, r := range g.Rules {
			name := r.Record + r.Alert
			for _, p := range c.check(r.Expr) {
				t.Errorf("group %s, rule %s: %s", g.Name, name, p)
			}
			if r.Record != "" {
				if !recordName.MatchString(r.Record) {
					t.Errorf("recording rule %s: name it level:idpsync_metric:operation", r.Record)
				}
				continue
			}
			alerts++
			if !strings.HasPrefix(r.Alert, "Idpsync") {
				t.Errorf("alert %s: start its name with Idpsync", r.Alert)
			}
			if s := r.Labels["severity"]; s != "page" && s != "ticket" {
				t.Errorf("alert %s: severity %q; use page or ticket", r.Alert, s)
			}
			for _, a := range []string{"summary", "description"} {
				if strings.TrimSpace(r.Annotations[a]) == "" {
					t.Errorf("alert %s has no %s", r.Alert, a)
				}
			}
		}
	}
	if alerts == 0 {
		t.Errorf("%s has no alerts", rulesFile)
	}
}

type ruleTests struct {
	RuleFiles []string `yaml:"rule_files"`
	Tests     []struct {
		Name       string `yaml:"name"`
		AlertTests []struct {
			Alertname string           `yaml:"alertname"`
			ExpAlerts []map[string]any `yaml:"exp_alerts"`
		} `yaml:"alert_rule_test"`
	} `yaml:"tests"`
}

// TestEveryAlertIsTested checks that the unit tests show each alert firing and each alert not
// firing, and name no alert the rules lack (promtool would pass a test that expects nothing of
// an alert that does not exist).
func TestEveryAlertIsTested(t *testing.T) {
	rf := readRules(t)
	files, err := filepath.Glob(ruleTestsGlob)
	if err != nil || len(files) == 0 {
		t.Fatalf("no unit tests (%s): %v", ruleTestsGlob, err)
	}
	fires, quiet := map[string]int{}, map[string]int{}
	for _, f := range files {
		var rt ruleTests
		readYAML(t, f, &rt)
		if !slices.Equal(rt.RuleFiles, []string{rulesFile}) {
			t.Errorf("%s tests %v; want [%s]", f, rt.RuleFiles, rulesFile)
		}
		for _, tg := range rt.Tests {
			for _, at := range tg.AlertTests {
				if len(at.ExpAlerts) > 0 {
					fires[at.Alertname]++
				} else {
					quiet[at.Alertname]++
				}
			}
		}
	}
	defined := map[string]bool{}
	for _, g := range rf.Groups {
		for _, r := range g.Rules {
			if r.Alert == "" {
				continue
			}
			defined[r.Alert] = true
			if fires[r.Alert] == 0 {
				t.Errorf("%s: no test where it fires", r.Alert)
			}
			if quiet[r.Alert] == 0 {
				t.Errorf("%s: no test where it does not fire", r.Alert)
			}
		}
	}
	for _, tested := range []map[string]int{fires, quiet} {
		for name := range tested {
			if !defined[name] {
				t.Errorf("the unit tests test alert %s, which %s does not define", name, rulesFile)
			}
		}
	}
}

type dashboard struct {
	SchemaVersion int                       `json:"schemaVersion"`
	UID           string                    `json:"uid"`
	Panels        []panel                   `json:"panels"`
	Templating    struct{ List []variable } `json:"templating"`
}

type panel struct {
	ID         int                `json:"id"`
	Type       string             `json:"type"`
	Title      string             `json:"title"`
	Datasource *datasourceRef     `json:"datasource"`
	GridPos    struct{ X, W int } `json:"gridPos"`
	Targets    []struct {
		Expr       string         `json:"expr"`
		Datasource *datasourceRef `json:"datasource"`
	} `json:"targets"`
	Panels []panel `json:"panels"` // a collapsed row's
}

type datasourceRef struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

type variable struct {
	Name       string          `json:"name"`
	Type       string          `json:"type"`
	Query      json.RawMessage `json:"query"`
	Definition string          `json:"definition"`
	Datasource *datasourceRef  `json:"datasource"`
}

// grafanaVariables are replaced before parsing: the interval variables by a duration, the
// dashboard's own by a regular expression, as Grafana does for a multi-value variable.
var grafanaVariables = []struct {
	re   *regexp.Regexp
	with string
}{
	{regexp.MustCompile(`\$\{?__(rate_interval|interval|range)\}?`), "5m"},
	{regexp.MustCompile(`\$\{?source(:[a-z]+)?\}?`), ".*"},
}

func expand(expr string) string {
	for _, v := range grafanaVariables {
		expr = v.re.ReplaceAllString(expr, v.with)
	}
	return expr
}

var labelValues = regexp.MustCompile(`^label_values\(\s*([a-zA-Z_:][a-zA-Z0-9_:]*)\s*,\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\)$`)

// TestDashboard checks the dashboard's structure, and that every expression parses as PromQL
// once Grafana's variables are expanded and selects metrics and labels idpsync emits.
func TestDashboard(t *testing.T) {
	b, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("%s: %v", dashboardFile, err)
	}
	if d.SchemaVersion < 39 {
		t.Errorf("schemaVersion %d; want 39 or later", d.SchemaVersion)
	}
	if d.UID == "" {
		t.Error("the dashboard has no uid: links to it would change at each import")
	}
	c := checker{recorded: recordedNames(readRules(t))}

	vars := map[string]variable{}
	for _, v := range d.Templating.List {
		vars[v.Name] = v
	}
	if v := vars["datasource"]; v.Type != "datasource" || string(v.Query) != `"prometheus"` {
		t.Errorf("variable datasource: type %q query %s; want a datasource variable of type prometheus", v.Type, v.Query)
	}
	src := vars["source"]
	if src.Type != "query" || src.Datasource == nil || src.Datasource.UID != "${datasource}" {
		t.Errorf("variable source: type %q on %+v; want a query on ${datasource}", src.Type, src.Datasource)
	}
	if want := "label_values(idpsync_webhook_requests_total, source)"; src.Definition != want || !strings.Contains(string(src.Query), want) {
		t.Errorf("variable source: definition %q, query %s; want %s", src.Definition, src.Query, want)
	}
	for _, v := range d.Templating.List {
		if m := labelValues.FindStringSubmatch(v.Definition); m != nil {
			for _, p := range c.check(m[1] + "{" + m[2] + `!=""}`) {
				t.Errorf("variable %s: %s", v.Name, p)
			}
		}
	}

	var rows []string
	ids := map[int]string{}
	exprs := 0
	var visit func(p panel)
	visit = func(p panel) {
		if prev, dup := ids[p.ID]; dup {
			t.Errorf("panels %q and %q share id %d", prev, p.Title, p.ID)
		}
		ids[p.ID] = p.Title
		if p.GridPos.W <= 0 || p.GridPos.X+p.GridPos.W > 24 {
			t.Errorf("panel %q: gridPos x %d w %d does not fit the 24 columns", p.Title, p.GridPos.X, p.GridPos.W)
		}
		if p.Type == "row" {
			rows = append(rows, p.Title)
			for _, inner := range p.Panels {
				visit(inner)
			}
			return
		}
		if p.Datasource == nil || p.Datasource.UID != "${datasource}" {
			t.Errorf("panel %q: datasource %+v; want uid ${datasource}", p.Title, p.Datasource)
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			exprs++
			if tg.Datasource == nil || tg.Datasource.UID != "${datasource}" {
				t.Errorf("panel %q: a query's datasource is %+v; want uid ${datasource}", p.Title, tg.Datasource)
			}
			e := expand(tg.Expr)
			if strings.Contains(e, "$") {
				t.Errorf("panel %q: %s uses a variable the dashboard does not define", p.Title, tg.Expr)
			}
			for _, problem := range c.check(e) {
				t.Errorf("panel %q: %s", p.Title, problem)
			}
		}
	}
	for _, p := range d.Panels {
		visit(p)
	}
	for _, want := range []string{"Receiver", "Intake", "Jobs", "Revocations", "Resync", "SSF", "Sources"} {
		if !slices.Contains(rows, want) {
			t.Errorf("no row %q (rows: %s)", want, strings.Join(rows, ", "))
		}
	}
	if exprs == 0 {
		t.Error("the dashboard has no queries")
	}
}

// registration matches a metric's registration in the service's code: the Name of its options
// and, for a vector, the label names after them; or a NewDesc with its label names.
var registration = regexp.MustCompile(`Name:\s*"(idpsync_[a-z0-9_]+)"(?s:.*?)\}(?:\)|, \[\]string\{([^}]*)\}\))` +
	`|NewDesc\(\s*"(idpsync_[a-z0-9_]+)",\s*"(?:[^"\\]|\\.)*",\s*\[\]string\{([^}]*)\}`)

// TestContractMatchesCode checks the contract against the metrics the code registers: the same
// names with the same labels, every emitted metric in the contract, and every metric of the
// contract emitted.
func TestContractMatchesCode(t *testing.T) {
	emitted := map[string][]string{}
	for _, tree := range sourceTrees {
		if err := filepath.WalkDir(tree, func(path string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
				return err
			}
			b, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			for _, m := range registration.FindAllStringSubmatch(string(b), -1) {
				name, list := m[1], m[2]
				if name == "" {
					name, list = m[3], m[4]
				}
				var names []string
				for _, l := range strings.Split(list, ",") {
					if l = strings.Trim(strings.TrimSpace(l), `"`); l != "" {
						names = append(names, l)
					}
				}
				emitted[name] = names
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	if len(emitted) == 0 {
		t.Fatalf("found no metric registration under %s", strings.Join(sourceTrees, ", "))
	}
	for name, got := range emitted {
		m, ok := contract[name]
		if !ok {
			t.Errorf("the code emits %s, which the contract in monitoring_test.go lacks: add it, and a panel or an alert if operators need it", name)
			continue
		}
		if !sameSet(got, m.labels) {
			t.Errorf("the code gives %s the labels %v; the rules and the dashboard expect %v", name, got, m.labels)
		}
	}
	for name := range contract {
		if _, ok := emitted[name]; !ok {
			t.Errorf("the code no longer emits %s, which the rules or the dashboard use", name)
		}
	}
}

func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

// TestPromtoolVersion checks that this module parses with the Prometheus that builds promtool
// (PROMETHEUS_VERSION, set by make monitoring-check). Test binaries carry no dependency versions,
// so go.mod is read.
func TestPromtoolVersion(t *testing.T) {
	want := os.Getenv("PROMETHEUS_VERSION")
	if want == "" {
		t.Skip("PROMETHEUS_VERSION is not set (make monitoring-check sets it)")
	}
	b, err := os.ReadFile("go.mod")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^\s*github\.com/prometheus/prometheus (\S+)`).FindSubmatch(b)
	if m == nil {
		t.Fatal("go.mod does not require github.com/prometheus/prometheus")
	}
	if got := string(m[1]); got != want {
		t.Errorf("go.mod requires github.com/prometheus/prometheus %s; promtool is built from %s: make them the same", got, want)
	}
}
