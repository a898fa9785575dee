package main

import (
	"context"
	"errors"
	"flag"
	"fmt"

	"github.com/idpsync/idpsync/internal/cli"
	"github.com/idpsync/idpsync/internal/register"
	"github.com/idpsync/idpsync/internal/worker"
)

const registerUsage = `Registers the receiver as the source's webhook endpoint at its IdP through the source's api
settings: it prints what it looked up, every call it sends and what it made, and the secrets the
IdP shows once, as the line to put in the source's webhook settings (or into -secrets-out FILE).
Running it again changes nothing. At Clerk it creates the Svix app and prints the steps left to
you. See the README, "Registering the endpoint".`

const unregisterUsage = `Removes what register made at the source's IdP (at Clerk: prints the steps).`

func registerFlags(fs *flag.FlagSet) func(ctx context.Context, e *cli.Env) error {
	return registrationFlags(fs, true)
}

func unregisterFlags(fs *flag.FlagSet) func(ctx context.Context, e *cli.Env) error {
	return registrationFlags(fs, false)
}

func registrationFlags(fs *flag.FlagSet, registering bool) func(ctx context.Context, e *cli.Env) error {
	name := map[bool]string{true: "register", false: "unregister"}[registering]
	source := fs.String("source", "", "the source whose receiver endpoint to "+name+" (required)")
	endpoint := fs.String("url", "", "the receiver's public URL for the source, https://<receiver>/webhooks/<source> (required)")
	dryRun := fs.Bool("dry-run", false, "send only the lookups and print the calls it would make")
	secretsOut := new(string)
	if registering {
		secretsOut = fs.String("secrets-out", "", "write the secrets the IdP shows once to this new file (mode 0600) instead of printing them")
	}
	return func(ctx context.Context, e *cli.Env) error {
		src, ok := e.Config.Source(*source)
		switch {
		case *source == "":
			return errors.New("-source is required")
		case !ok:
			return fmt.Errorf("-source: no source named %q in the configuration", *source)
		case *endpoint == "":
			return errors.New("-url is required: https://<receiver>/webhooks/" + *source)
		}
		if !src.API.Configured() {
			return fmt.Errorf("source %s has no api settings; %s goes through its IdP's management API", *source, name)
		}
		o := register.Options{Provider: src.Provider(), Settings: worker.APISettings(src, e.Logger), Endpoint: *endpoint,
			DryRun: *dryRun, SecretsOut: *secretsOut, Out: e.Stdout}
		if registering {
			return register.Register(ctx, o)
		}
		return register.Unregister(ctx, o)
	}
}
