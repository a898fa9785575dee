package config_test

import (
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/idpsync/idpsync/internal/config"
	"github.com/idpsync/idpsync/internal/events"
	"github.com/idpsync/idpsync/internal/provider/clerk"
)

const secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

func env(kv ...string) func(string) string {
	m := map[string]string{}
	for i := 0; i < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return func(k string) string { return m[k] }
}

func TestParseExampleWithDefaults(t *testing.T) {
	t.Parallel()
	yaml := `
receiver: {addr: ":8081", max_body_bytes: 2097152}
sources:
  - name: clerk-prod
    kind: clerk
    webhook: {secrets: ["${CLERK_WEBHOOK_SECRET}", "${CLERK_WEBHOOK_SECRET_OLD:-}"], tolerance: 10m}
`
	cfg, err := config.Parse([]byte(yaml), env("CLERK_WEBHOOK_SECRET", secret, "NATS_URL", "nats://n1:4222"))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Receiver.Addr != ":8081" || cfg.Receiver.MaxBodyBytes != 2<<20 {
		t.Errorf("receiver = %+v", cfg.Receiver)
	}
	s := cfg.Sources[0]
	if s.Name != "clerk-prod" || s.Kind != clerk.Kind || len(s.Webhook.Secrets) != 1 || s.Webhook.Secrets[0] != secret {
		t.Errorf("source = %+v (the unset old secret must be dropped)", s)
	}
	if time.Duration(s.Webhook.Tolerance) != 10*time.Minute {
		t.Errorf("tolerance = %v", s.Webhook.Tolerance)
	}
	// Defaults.
	if cfg.Database.URL != config.DatabaseURLDefault || cfg.Database.Schema != "idpsync" || cfg.NATS.Stream != "IDPSYNC_EVENTS" ||
		cfg.NATS.SubjectPrefix != "idpsync.events" || time.Duration(cfg.NATS.Duplicates) != 2*time.Minute ||
		time.Duration(cfg.NATS.MaxAge) != 7*24*time.Hour || cfg.Worker.BatchSize != 100 || cfg.Worker.Consumer != "idpsync-worker" {
		t.Errorf("defaults not applied: %+v %+v %+v", cfg.Database, cfg.NATS, cfg.Worker)
	}
	if cfg.NATS.URL != "nats://n1:4222" {
		t.Errorf("NATS_URL override: %q", cfg.NATS.URL)
	}
	v, err := s.Verifier(nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := v.(*clerk.Svix); !ok {
		t.Errorf("clerk verifier is %T", v)
	}
}

func TestEnvironmentOverridesAndTypes(t *testing.T) {
	t.Parallel()
	yaml := `
database: {url: "postgres://file/db", max_conns: "${MAX_CONNS}"}
nats: {url: "nats://file:4222"}
sources:
  - name: c
    kind: clerk
    webhook: {secrets: ["${S}"]}
    api: {secret_key: "${KEY}"}
  - name: z
    kind: zeroid
    api: {base_url: "http://zeroid", account_id: "${ACCOUNT}", project_id: "${PROJECT}"}
`
	// Secrets that look like YAML numbers, booleans or mappings stay strings.
	cfg, err := config.Parse([]byte(yaml), env("DATABASE_URL", "postgres://env/db", "MAX_CONNS", "8",
		"S", secret, "KEY", "123", "ACCOUNT", "yes", "PROJECT", "a: b # c"))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Database.URL != "postgres://env/db" || cfg.Database.MaxConns != 8 || cfg.NATS.URL != "nats://file:4222" {
		t.Errorf("database = %+v, nats = %+v", cfg.Database, cfg.NATS)
	}
	if got := cfg.Sources[0].API.SecretKey; got != "123" {
		t.Errorf("secret key = %q", got)
	}
	if a := cfg.Sources[1].API; a.AccountID != "yes" || a.ProjectID != "a: b # c" {
		t.Errorf("zeroid api = %+v", a)
	}
}

func TestSourceDefaults(t *testing.T) {
	t.Parallel()
	yaml := `
sources:
  - {name: hooks-only, kind: clerk, webhook: {secrets: ["` + secret + `"]}}
  - {name: full, kind: clerk, webhook: {secrets: ["` + secret + `"]}, api: {secret_key: sk}, revocation: {zeroid: agents}}
  - {name: quiet, kind: clerk, api: {secret_key: sk}, revocation: {triggers: []}, resync: {periodic: false, entities: [users]}}
  - {name: agents, kind: zeroid, api: {base_url: "http://z", account_id: a, project_id: p}}
`
	cfg, err := config.Parse([]byte(yaml), env())
	if err != nil {
		t.Fatal(err)
	}
	hooks, full, quiet := cfg.Sources[0], cfg.Sources[1], cfg.Sources[2]
	if hooks.RevokesSessions() || len(hooks.ResyncEntities()) != 0 || !hooks.HasWebhook() {
		t.Errorf("a webhook-only source neither resyncs nor revokes sessions: %+v", hooks)
	}
	if !full.RevokesSessions() || len(full.ResyncEntities()) != 3 || !*full.Resync.Periodic ||
		time.Duration(full.Resync.Interval) != 6*time.Hour || !slices.Equal(full.Revocation.Triggers, events.Triggers) ||
		full.Revocation.ZeroIDAction != events.AgentOffboard || full.Revocation.OwnerKey != "id" || full.API.Actor != "idpsync" {
		t.Errorf("defaults with api: %+v", full)
	}
	if quiet.HasWebhook() || len(quiet.Revocation.Triggers) != 0 || *quiet.Resync.Periodic || len(quiet.ResyncEntities()) != 1 {
		t.Errorf("explicit settings: %+v", quiet)
	}
}

func TestErrorsNameTheFieldAndTheFix(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name, yaml string
		env        func(string) string
		want       []string
	}{
		{"unknown field", "recevier: {addr: x}\nsources: []", env(),
			[]string{"recevier (line 1): unknown field", "receiver"}},
		{"unknown nested field", "sources:\n  - name: a\n    kind: clerk\n    webhook: {secret: x}", env(),
			[]string{"sources[0].webhook.secret (line 4): unknown field", "secrets"}},
		{"missing environment variable", "sources:\n  - {name: a, kind: clerk, webhook: {secrets: [\"${CLERK_WEBHOOK_SECRET}\"]}}", env(),
			[]string{"sources[0].webhook.secrets[0] (line 2)", "CLERK_WEBHOOK_SECRET is not set", "${CLERK_WEBHOOK_SECRET:-}"}},
		{"no sources", "receiver: {addr: \":1\"}", env(), []string{"sources: at least one source is required"}},
		{"event retention shorter than the stream's", "worker: {event_retention: 24h}\nsources:\n  - {name: a, kind: clerk, webhook: {secrets: [" + secret + "]}}", env(),
			[]string{"worker.event_retention (line 1): 24h0m0s is shorter than nats.max_age (168h0m0s)", "use at least 168h0m0s, or 0"}},
		{"ssf", "ssf: {issuer: \"http://rp.example.com\", keys: [], receivers: [{name: rp, token: short}], push: {timeout: 1}}\nsources:\n  - {name: a, kind: clerk, webhook: {secrets: [" + secret + "]}}", env(),
			[]string{"ssf.keys (line 1): at least one signing key is required", "ssf.receivers[0].token (line 1): is shorter than 32 characters", "ssf.push.timeout (line 1): \"1\" is not a duration"}},
		{"bad name", "sources:\n  - {name: Clerk Prod, kind: clerk, webhook: {secrets: [" + secret + "]}}", env(),
			[]string{`sources[0].name: "Clerk Prod" is not a valid name`, "lowercase"}},
		{"duplicate name", "sources:\n  - {name: a, kind: clerk, webhook: {secrets: [" + secret + "]}}\n  - {name: a, kind: clerk, webhook: {secrets: [" + secret + "]}}", env(),
			[]string{`sources[1].name: "a" is already the name of sources[0]`}},
		{"bad kind", "sources:\n  - {name: a, kind: okta}", env(),
			[]string{`sources[0].kind: "okta" is not supported; use one of authpi, clerk, zeroid, zitadel`}},
		{"a source with nothing", "sources:\n  - {name: a, kind: clerk}", env(),
			[]string{"sources[0]: the source has neither webhook secrets nor api credentials"}},
		{"clerk api without its key", "sources:\n  - {name: a, kind: clerk, api: {rate_limit: 5, base_url: x}}", env(),
			[]string{"sources[0].api: secret_key is required", "Secret key"}},
		{"zeroid with a webhook", "sources:\n  - {name: z, kind: zeroid, webhook: {bearer_tokens: [t]}, api: {base_url: x, account_id: a, project_id: p}}", env(),
			[]string{"sources[0].webhook: ZeroID sends no webhooks"}},
		{"revocation target of the wrong kind", "sources:\n  - {name: a, kind: clerk, api: {secret_key: k}, revocation: {zeroid: a}}", env(),
			[]string{`sources[0].revocation.zeroid: source "a" is of kind clerk, which holds no agent identities; name a zeroid source`}},
		{"sessions without api", "sources:\n  - {name: a, kind: clerk, webhook: {secrets: [\"" + secret + "\"]}, revocation: {sessions: true}}", env(),
			[]string{"sources[0].revocation.sessions: revoking sessions needs the source's api credentials"}},
		{"unknown trigger and entity", "sources:\n  - {name: a, kind: clerk, api: {secret_key: k}, revocation: {triggers: [user.gone]}, resync: {entities: [sessions]}}", env(),
			[]string{`sources[0].revocation.triggers[0]: "user.gone" is not a trigger`, `sources[0].resync.entities[0]: "sessions" is not an entity`}},
		{"zitadel without one auth method", "sources:\n  - {name: z, kind: zitadel, api: {base_url: x, token: t, client_id: c, client_secret: s}}", env(),
			[]string{"sources[0].api: set exactly one of token"}},
		{"bad duration", "nats: {max_age: 7d}\nsources: []", env(), []string{`"7d" is not a duration`, "168h"}},
		{"river ui without credentials", "worker: {river_ui: true}\nsources:\n  - {name: a, kind: clerk, webhook: {secrets: [\"" + secret + "\"]}}", env(),
			[]string{"worker.river_ui: River UI can retry, cancel and delete jobs", "admin.username"}},
		{"protected metrics without credentials", "admin: {protect_metrics: true, username: ops}\nsources:\n  - {name: a, kind: clerk, webhook: {secrets: [\"" + secret + "\"]}}", env(),
			[]string{"admin: username and password go together", "admin.protect_metrics: needs"}},
		{"several problems at once", "worker: {batch_size: 5000}\nnats: {replicas: 9}\nsources: []", env(),
			[]string{"worker.batch_size: 5000 is out of range", "nats.replicas: 9 is out of range", "sources: at least one"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := config.Parse([]byte(c.yaml), c.env)
			if err == nil {
				t.Fatal("accepted")
			}
			// Errors name their line; most expectations leave it out.
			text := regexp.MustCompile(` \(line \d+\)`).ReplaceAllString(err.Error(), "")
			for _, w := range c.want {
				if !strings.Contains(text, w) && !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func TestErrorsDoNotRevealSecrets(t *testing.T) {
	t.Parallel()
	const leaked = "whsec_this-is-not-base64-but-it-is-secret"
	_, err := config.Parse([]byte("sources:\n  - {name: a, kind: clerk, webhook: {secrets: [\"${S}\"]}}"), env("S", leaked))
	if err == nil {
		t.Fatal("accepted an invalid secret")
	}
	if strings.Contains(err.Error(), "not-base64") {
		t.Fatalf("error reveals the secret: %v", err)
	}
	if !strings.Contains(err.Error(), "signing secret 1 is not a valid whsec_<base64> secret") {
		t.Fatalf("error does not say which secret is wrong: %v", err)
	}
}

// Every problem is reported in one run, each with its field and line, whatever kind it is (a type
// error, an unknown key, an invalid value), and a value that came from the environment, which may
// be a secret, is never repeated.
func TestEveryErrorAtOnceWithoutSecrets(t *testing.T) {
	t.Parallel()
	yaml := `nats:
  max_age: ${MAX_AGE}
  replicas: lots
receiver:
  max_body_bytes: "${BODY}"
  publish_timeout: 7d
worker: {batch_size: 5000, river_ui: maybe}
sources:
  - name: Clerk Prod
    kind: clerk
    webhook: {secrets: ["${CLERK_WEBHOOK_SECRET}"], tolerance: [1, 2]}
    api: {secret_key: sk, base_url: "https://user:${CLERK_PASSWORD}@api.clerk.com/v1?token=${CLERK_TOKEN}"}
    oops: true
`
	getenv := func(k string) string {
		return map[string]string{"MAX_AGE": "sk_live_secret_in_a_duration", "BODY": "whsec_secret_in_a_number",
			"CLERK_WEBHOOK_SECRET": secret, "CLERK_PASSWORD": "pw_secret_in_a_url", "CLERK_TOKEN": "tok_secret_in_a_url"}[k]
	}
	_, err := config.Parse([]byte(yaml), getenv)
	if err == nil {
		t.Fatal("accepted")
	}
	for _, want := range []string{
		"nats.max_age (line 2): the value of ${MAX_AGE} is not a duration",
		`nats.replicas (line 3): "lots" is not a whole number`,
		"receiver.max_body_bytes (line 5): the value of ${BODY} is not a whole number",
		`receiver.publish_timeout (line 6): "7d" is not a duration`,
		"worker.batch_size (line 7): 5000 is out of range",
		`worker.river_ui (line 7): "maybe" is not a boolean`,
		`sources[0].name (line 9): "Clerk Prod" is not a valid name`,
		"sources[0].webhook.tolerance (line 11): a list is not allowed here",
		"sources[0].api.base_url (line 12): base URL https://api.clerk.com… must not carry user info",
		"sources[0].oops (line 13): unknown field",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("the errors do not say %q:\n%v", want, err)
		}
	}
	for _, secret := range []string{"sk_live_secret", "whsec_secret", "pw_secret", "tok_secret", secret[6:]} {
		if strings.Contains(err.Error(), secret) {
			t.Errorf("the errors repeat a secret (%s):\n%v", secret, err)
		}
	}
}

// A command validates only the parts it needs: migrate needs the database, not the sources' secrets.
func TestPartsACommandNeeds(t *testing.T) {
	t.Parallel()
	yaml := "database: {schema: mine}\nsources:\n  - {name: a, kind: clerk, webhook: {secrets: [\"${CLERK_WEBHOOK_SECRET}\"]}}\n"
	noEnv := func(string) string { return "" }
	cfg, err := config.Parse([]byte(yaml), noEnv, config.ForDatabase...)
	if err != nil || cfg.Database.Schema != "mine" {
		t.Fatalf("migrate's parts: %v", err)
	}
	if _, err := config.Parse([]byte(yaml), noEnv, config.ForWorker...); err == nil || !strings.Contains(err.Error(), "CLERK_WEBHOOK_SECRET is not set") {
		t.Fatalf("the worker's parts: %v", err)
	}
	if _, err := config.Parse([]byte("database: {schema: \"Bad Schema\"}\nsources: []\n"), noEnv, config.ForDatabase...); err == nil ||
		!strings.Contains(err.Error(), "database.schema (line 1)") {
		t.Fatalf("a bad database part: %v", err)
	}
}

// The defaults start against a stock nats-server, whose max_payload is 1 MiB: the body limit
// plus the headers the receiver adds fits.
func TestDefaultBodyLimitFitsAStockNATSServer(t *testing.T) {
	t.Parallel()
	cfg, err := config.Parse([]byte("sources:\n  - {name: a, kind: clerk, webhook: {secrets: [\""+secret+"\"]}}\n"), func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	const stockMaxPayload = 1 << 20
	if cfg.Receiver.MaxBodyBytes != 1_000_000 || cfg.Receiver.MaxBodyBytes+4096 > stockMaxPayload {
		t.Fatalf("max_body_bytes defaults to %d", cfg.Receiver.MaxBodyBytes)
	}
}
