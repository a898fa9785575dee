// Command fakeidp serves in-memory imitations of the Clerk, Zitadel, AuthPI and ZeroID management
// APIs for demos, manual testing and benchmarks, and signs and sends sample webhooks as those
// IdPs do.
//
//	fakeidp serve -addr 127.0.0.1:8090 -seed-users 1000 -seed-orgs 10   (Clerk on :8090, Zitadel :8091, AuthPI :8092, ZeroID :8093)
//	fakeidp send -provider clerk -url http://127.0.0.1:8080/webhooks/clerk-demo -secret whsec_… -type user.created
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/idpsync/idpsync/internal/fakeidp"
	"github.com/idpsync/idpsync/internal/provider/authpi/authpifake"
	"github.com/idpsync/idpsync/internal/provider/clerk/clerkfake"
	"github.com/idpsync/idpsync/internal/provider/zeroid/zeroidfake"
	"github.com/idpsync/idpsync/internal/provider/zitadel/zitadelfake"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	if err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "fakeidp:", err)
		}
		os.Exit(2)
	}
}

const usage = `usage:
  fakeidp serve [flags]   serve the four fake IdPs on one address until interrupted
  fakeidp send  [flags]   sign and send one sample webhook
Run "fakeidp serve -h" or "fakeidp send -h" for the flags.`

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprintln(stderr, usage)
		return errors.New("a subcommand is required")
	}
	switch args[0] {
	case "serve":
		return serve(ctx, args[1:], getenv, stdout, stderr)
	case "send":
		return sendCmd(ctx, args[1:], getenv, stdout, stderr)
	case "-h", "-help", "--help", "help":
		fmt.Fprintln(stdout, usage)
		return nil
	}
	fmt.Fprintln(stderr, usage)
	return fmt.Errorf("unknown subcommand %q", args[0])
}

// webhookFlags are the delivery targets of one provider.
type webhookFlags struct{ url, secret, scheme string }

func serve(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("fakeidp serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", orEnv(getenv, "FAKEIDP_ADDR", "127.0.0.1:8090"),
		"listen address of the first fake (env FAKEIDP_ADDR); each fake is served at the root of its own port, as the real service is: Clerk on this port, Zitadel, AuthPI and ZeroID on the next three (port 0: free ports)")
	seed := fs.Uint64("seed", 1, "seed of the generated data; the same seed gives the same ids")
	users := fs.Int("seed-users", 1000, "users per provider (identities for ZeroID)")
	orgs := fs.Int("seed-orgs", 10, "organizations per provider")
	members := fs.Int("members-per-org", 5, "members per organization (Clerk)")
	sessions := fs.Int("sessions-per-user", 1, "sessions per user (Clerk, Zitadel)")
	latency := fs.Duration("latency", 0, "delay added to every answer")
	failEvery := fs.Int("fail-every", 0, "answer every Nth request with 429 and Retry-After (0 = never)")
	retryAfter := fs.Duration("retry-after", time.Second, "Retry-After sent with injected 429s")
	keyFile := fs.String("zitadel-key-file", "", "write the Zitadel service user's key file (private key JWT method) to this path")
	var clerkHook, zitadelHook, authpiHook webhookFlags
	fs.StringVar(&clerkHook.url, "clerk-webhook-url", "", "send Clerk webhooks for every mutation to this URL")
	fs.StringVar(&clerkHook.secret, "clerk-webhook-secret", getenv("FAKEIDP_CLERK_WEBHOOK_SECRET"), "Svix signing secret whsec_… (env FAKEIDP_CLERK_WEBHOOK_SECRET)")
	fs.StringVar(&zitadelHook.url, "zitadel-webhook-url", "", "send Zitadel Actions v2 events to this URL")
	fs.StringVar(&zitadelHook.secret, "zitadel-webhook-key", getenv("FAKEIDP_ZITADEL_SIGNING_KEY"), "target signing key (env FAKEIDP_ZITADEL_SIGNING_KEY)")
	fs.StringVar(&authpiHook.url, "authpi-webhook-url", "", "send AuthPI CloudEvents to this URL")
	fs.StringVar(&authpiHook.secret, "authpi-webhook-secret", getenv("FAKEIDP_AUTHPI_WEBHOOK_SECRET"), "bearer token or HMAC secret (env FAKEIDP_AUTHPI_WEBHOOK_SECRET)")
	fs.StringVar(&authpiHook.scheme, "authpi-webhook-scheme", "bearer", "AuthPI webhook auth: bearer or signature")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *users < 0 || *orgs < 0 || *members < 0 || *sessions < 0 {
		return errors.New("the -seed-* and -*-per-* counts must not be negative")
	}
	for name, h := range map[string]webhookFlags{"clerk": clerkHook, "zitadel": zitadelHook, "authpi": authpiHook} {
		if h.url != "" && h.secret == "" {
			return fmt.Errorf("-%s-webhook-url is set without its secret; set the matching secret flag or environment variable", name)
		}
	}

	clerk := clerkfake.New(clerkfake.Options{Seed: *seed, Users: *users, Organizations: *orgs, MembersPerOrganization: *members, SessionsPerUser: *sessions})
	zitadel := zitadelfake.New(zitadelfake.Options{Seed: *seed, Users: *users, Organizations: *orgs, SessionsPerUser: *sessions})
	authpi := authpifake.New(authpifake.Options{Seed: *seed, Users: *users, Organizations: *orgs})
	zeroid := zeroidfake.New(zeroidfake.Options{Seed: *seed, Identities: *users, Owners: max(*users/3, 1)})
	fakes := []interface {
		Handler() http.Handler
		SetLatency(time.Duration)
		FailEvery(int, fakeidp.Failure)
		Close()
	}{clerk, zitadel, authpi, zeroid}
	for _, f := range fakes {
		f.SetLatency(*latency)
		f.FailEvery(*failEvery, fakeidp.Failure{Status: http.StatusTooManyRequests, RetryAfter: *retryAfter})
		defer f.Close()
	}
	if clerkHook.url != "" {
		clerk.SetWebhookTarget(fakeidp.WebhookTarget{URL: clerkHook.url, Secret: clerkHook.secret})
	}
	if zitadelHook.url != "" {
		zitadel.SetWebhookTarget(fakeidp.WebhookTarget{URL: zitadelHook.url, Secret: zitadelHook.secret})
	}
	if authpiHook.url != "" {
		authpi.SetWebhookTarget(fakeidp.WebhookTarget{URL: authpiHook.url, Secret: authpiHook.secret, Scheme: authpiHook.scheme})
	}

	if *keyFile != "" {
		if err := os.WriteFile(*keyFile, zitadel.KeyFile(), 0o600); err != nil {
			return fmt.Errorf("writing the Zitadel key file: %w", err)
		}
	}
	host, port, err := net.SplitHostPort(*addr)
	if err != nil {
		return fmt.Errorf("-addr %q: %w", *addr, err)
	}
	first, err := strconv.Atoi(port)
	if err != nil || first < 0 || first > 65532 {
		return fmt.Errorf("-addr %q: the port must be a number from 0 to 65532", *addr)
	}
	handlers := []http.Handler{clerk.Handler(), zitadel.Handler(), authpi.Handler(), zeroid.Handler()}
	roots := make([]string, len(handlers))
	servers := make([]*http.Server, len(handlers))
	listeners := make([]net.Listener, len(handlers))
	for i := range handlers {
		p := 0
		if first != 0 {
			p = first + i
		}
		ln, err := net.Listen("tcp", net.JoinHostPort(host, strconv.Itoa(p)))
		if err != nil {
			for _, l := range listeners[:i] {
				l.Close()
			}
			return fmt.Errorf("listening: %w", err)
		}
		listeners[i], roots[i] = ln, "http://"+ln.Addr().String()
		servers[i] = &http.Server{Handler: handlers[i], ReadHeaderTimeout: 10 * time.Second}
	}
	zitadel.SetIssuer(roots[1])

	zid, zsecret := zitadel.ClientCredentials()
	akey, asecret := authpi.APIKey()
	acc, proj := zeroid.Tenant()
	zeroidClient, zeroidSecret := zeroid.ClientCredentials()
	zkey := ""
	if ids := zeroid.IdentityIDs(); len(ids) > 0 {
		if zkey, err = zeroid.IssueAPIKey(ids[0]); err != nil {
			return fmt.Errorf("issuing the ZeroID demo key: %w", err)
		}
	}
	fmt.Fprintf(stdout, "fakeidp serving four fakes (%d users, %d organizations per provider, seed %d)\n", *users, *orgs, *seed)
	fmt.Fprintf(stdout, "clerk    base_url=%s/v1 secret_key=%s\n", roots[0], clerk.SecretKey())
	fmt.Fprintf(stdout, "zitadel  base_url=%s pat=%s client_id=%s client_secret=%s", roots[1], zitadel.PAT(), zid, zsecret)
	if *keyFile != "" {
		fmt.Fprintf(stdout, " key_file=%s", *keyFile)
	}
	fmt.Fprintln(stdout)
	fmt.Fprintf(stdout, "authpi   base_url=%s api_key_id=%s api_key_secret=%s account_id=%s issuer_id=%s\n", roots[2], akey, asecret, authpi.AccountID(), authpi.IssuerIDs()[0])
	fmt.Fprintf(stdout, "zeroid   base_url=%s account_id=%s project_id=%s client_id=%s client_secret=%s api_key=%s\n", roots[3], acc, proj, zeroidClient, zeroidSecret, zkey)

	errc := make(chan error, len(servers))
	for i, srv := range servers {
		go func() { errc <- srv.Serve(listeners[i]) }()
	}
	var serveErr error
	select {
	case err := <-errc:
		serveErr = fmt.Errorf("serving: %w", err)
	case <-ctx.Done():
	}
	shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, srv := range servers {
		if err := srv.Shutdown(shutdown); err != nil && serveErr == nil {
			serveErr = fmt.Errorf("shutting down: %w", err)
		}
	}
	return serveErr
}

func sendCmd(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("fakeidp send", flag.ContinueOnError)
	fs.SetOutput(stderr)
	provider := fs.String("provider", "", "clerk, zitadel or authpi (ZeroID sends no webhooks)")
	url := fs.String("url", "", "receiver URL, e.g. http://127.0.0.1:8080/webhooks/clerk-demo")
	secret := fs.String("secret", getenv("FAKEIDP_WEBHOOK_SECRET"), "signing secret: Clerk whsec_…, Zitadel signing key, AuthPI bearer token or HMAC secret (env FAKEIDP_WEBHOOK_SECRET)")
	scheme := fs.String("scheme", "bearer", "AuthPI auth: bearer, signature or bearer+signature (then -signature-secret)")
	sigSecret := fs.String("signature-secret", "", "AuthPI HMAC secret for bearer+signature")
	typ := fs.String("type", "", "event type, e.g. user.created (Clerk), user.human.added (Zitadel), user.created (AuthPI)")
	seed := fs.Uint64("seed", 1, "seed of the sample data")
	timeout := fs.Duration("timeout", 10*time.Second, "request timeout")
	if err := fs.Parse(args); err != nil {
		return err
	}
	switch {
	case *provider == "" || *url == "" || *typ == "":
		return errors.New("-provider, -url and -type are required")
	case *secret == "" && *scheme != "none":
		return errors.New("-secret (or FAKEIDP_WEBHOOK_SECRET) is required")
	}
	var (
		ev   fakeidp.Event
		sign func(fakeidp.WebhookTarget, fakeidp.Event, time.Time) (http.Header, error)
		err  error
	)
	switch *provider {
	case "clerk":
		f := clerkfake.New(clerkfake.Options{Seed: *seed, Users: 1, Organizations: 1, MembersPerOrganization: 1})
		ev, err = f.SampleEvent(*typ)
		sign = f.SignEvent
	case "zitadel":
		f := zitadelfake.New(zitadelfake.Options{Seed: *seed, Users: 1})
		ev, err = f.SampleEvent(*typ)
		sign = f.SignEvent
	case "authpi":
		f := authpifake.New(authpifake.Options{Seed: *seed, Users: 1, Organizations: 1})
		ev, err = f.SampleEvent(*typ)
		sign = f.SignEvent
	default:
		return fmt.Errorf("-provider %q is not one of clerk, zitadel, authpi", *provider)
	}
	if err != nil {
		return err
	}
	target := fakeidp.WebhookTarget{URL: *url, Secret: *secret, Scheme: *scheme, SignatureSecret: *sigSecret,
		HTTPClient: &http.Client{Timeout: *timeout}}
	status, err := fakeidp.Send(ctx, target, ev, sign)
	if err != nil {
		return fmt.Errorf("sending %s %s: %w", *provider, *typ, err)
	}
	fmt.Fprintf(stdout, "sent %s %s (id %s, %d bytes): HTTP %d\n", *provider, ev.Type, ev.ID, len(ev.Body), status)
	if status < 200 || status > 299 {
		return fmt.Errorf("the receiver answered HTTP %d", status)
	}
	return nil
}

func orEnv(getenv func(string) string, key, def string) string {
	if v := strings.TrimSpace(getenv(key)); v != "" {
		return v
	}
	return def
}
