package authpi

import (
	"errors"

	"github.com/idpsync/idpsync/internal/events"
	"github.com/idpsync/idpsync/internal/provider"
	"github.com/idpsync/idpsync/internal/webhook"
)

// Kind is AuthPI's kind in configurations.
const Kind events.Kind = "authpi"

func init() {
	provider.Register(&provider.Provider{
		Kind: Kind,
		Name: "AuthPI",
		Webhook: &provider.Webhook{
			Settings:          "bearer_tokens (auth type bearer), secrets (HMAC secrets, auth type signature), or both",
			NewVerifierFunc:   newVerifier,
			ParseEnvelopeFunc: ParseEnvelope,
			ParseFunc:         Parse,
		},
		API: &provider.API{
			Settings:          "key_id and key_secret (an API key), issuer_id, account_id (looked up when empty), base_url (default " + DefaultBaseURL + ")",
			Resync:            []events.Entity{events.EntityUser, events.EntityOrganization},
			CheckSettingsFunc: checkSettings,
			ConnectFunc:       connect,
			DefaultBaseURL:    DefaultBaseURL,
			Hints: provider.Hints{
				Unauthorized: "the API key (api.key_id, api.key_secret) is wrong or revoked",
				Forbidden:    "the API key may not read the issuer's users",
			},
		},
	})
}

func checkSettings(s provider.APISettings) error {
	switch {
	case s.KeyID == "" || s.KeySecret == "":
		return errors.New("key_id and key_secret are required for an authpi source (an API key from AuthPI's console)")
	case s.IssuerID == "":
		return errors.New("issuer_id is required for an authpi source: the issuer (i_…) whose users and organizations are mirrored")
	}
	return nil
}

func connect(s provider.APISettings) (*provider.Connection, error) {
	c, err := New(Config{APIKeyID: s.KeyID, APIKeySecret: s.KeySecret, AccountID: s.AccountID, BaseURL: s.BaseURL,
		HTTPClient: s.HTTPClient, UserAgent: s.UserAgent, Limiter: s.Limiter, Logger: s.Logger})
	if err != nil {
		return nil, err
	}
	return &provider.Connection{Probe: authpiProbe{c: c, issuer: s.IssuerID}, Directory: &authpiDirectory{c: c, issuer: s.IssuerID}, Registrar: &authpiRegistrar{c: c, source: s.Source}}, nil
}

// newVerifier builds AuthPI's verifier for the webhook's auth type: bearer, signature, or
// bearer+signature (both must pass).
func newVerifier(s provider.WebhookSettings) (webhook.Verifier, error) {
	var all webhook.All
	if len(s.BearerTokens) > 0 {
		v, err := NewBearer(s.BearerTokens...)
		if err != nil {
			return nil, err
		}
		all = append(all, v)
	}
	if len(s.Secrets) > 0 {
		v, err := NewHMAC(s.Secrets...)
		if err != nil {
			return nil, err
		}
		all = append(all, v)
	}
	switch len(all) {
	case 0:
		return nil, errors.New("an authpi source needs bearer_tokens (auth type bearer), secrets (auth type signature) or both")
	case 1:
		return all[0], nil
	}
	return all, nil
}
