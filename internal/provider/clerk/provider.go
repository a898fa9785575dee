package clerk

import (
	"errors"
	"fmt"

	"github.com/idpsync/idpsync/internal/events"
	"github.com/idpsync/idpsync/internal/provider"
	"github.com/idpsync/idpsync/internal/webhook"
)

// Kind is Clerk's kind in configurations.
const Kind events.Kind = "clerk"

func init() {
	provider.Register(&provider.Provider{
		Kind: Kind,
		Name: "Clerk",
		Webhook: &provider.Webhook{
			Settings:          "secrets (the endpoint's Svix signing secrets, whsec_…), tolerance",
			NewVerifierFunc:   newVerifier,
			ParseEnvelopeFunc: ParseEnvelope,
			ParseFunc:         Parse,
		},
		API: &provider.API{
			Settings:          "secret_key, base_url (default " + DefaultBaseURL + ")",
			Resync:            events.MirroredEntities,
			Sessions:          true,
			CheckSettingsFunc: checkSettings,
			ConnectFunc:       connect,
			DefaultBaseURL:    DefaultBaseURL,
			Hints: provider.Hints{
				Unauthorized: "the secret key (api.secret_key, sk_…) is wrong, of another instance, or was rolled",
				Forbidden:    "the secret key may not read users",
			},
		},
	})
}

func newVerifier(s provider.WebhookSettings) (webhook.Verifier, error) {
	if len(s.Secrets) == 0 {
		return nil, errors.New("a clerk source needs at least one signing secret in secrets (whsec_..., from the Clerk dashboard: Webhooks → your endpoint → Signing Secret)")
	}
	v, err := NewSvix(SvixConfig{Secrets: s.Secrets, Tolerance: s.Tolerance, NowFunc: s.NowFunc})
	if err != nil {
		return nil, fmt.Errorf("secrets: %w", err)
	}
	return v, nil
}

func checkSettings(s provider.APISettings) error {
	if s.SecretKey == "" {
		return errors.New("secret_key is required for a clerk source (Configure → API keys → Secret key in the Clerk dashboard)")
	}
	return nil
}

func connect(s provider.APISettings) (*provider.Connection, error) {
	c, err := New(Config{SecretKey: s.SecretKey, BaseURL: s.BaseURL, HTTPClient: s.HTTPClient, UserAgent: s.UserAgent,
		Limiter: s.Limiter, Logger: s.Logger})
	if err != nil {
		return nil, err
	}
	return &provider.Connection{Probe: clerkProbe{c: c}, Directory: &clerkDirectory{c: c}, Sessions: &clerkSessions{c: c}, Registrar: &clerkRegistrar{c: c}}, nil
}
