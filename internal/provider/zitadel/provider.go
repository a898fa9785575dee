package zitadel

import (
	"errors"
	"fmt"
	"os"

	"github.com/idpsync/idpsync/internal/events"
	"github.com/idpsync/idpsync/internal/provider"
	"github.com/idpsync/idpsync/internal/webhook"
)

// Kind is Zitadel's kind in configurations.
const Kind events.Kind = "zitadel"

func init() {
	provider.Register(&provider.Provider{
		Kind: Kind,
		Name: "Zitadel",
		Webhook: &provider.Webhook{
			Settings:          "secrets (the Actions v2 target's signing keys), tolerance",
			NewVerifierFunc:   newVerifier,
			ParseEnvelopeFunc: ParseEnvelope,
			ParseFunc:         Parse,
			ReadsEntities:     true,
		},
		API: &provider.API{
			Settings:          "base_url, and one of token (a PAT), client_id with client_secret, or key_file",
			Resync:            []events.Entity{events.EntityUser, events.EntityOrganization},
			Sessions:          true,
			CheckSettingsFunc: checkSettings,
			ConnectFunc:       connect,
			Hints: provider.Hints{
				Unauthorized: "the token (a PAT) is expired or revoked, or the client secret or key file no longer belongs to the service user",
				Forbidden:    "the service user lacks user.read: grant it a manager role that reads users (ORG_USER_MANAGER on its organization, or IAM_OWNER_VIEWER for the instance)",
			},
		},
	})
}

func newVerifier(s provider.WebhookSettings) (webhook.Verifier, error) {
	if len(s.Secrets) == 0 {
		return nil, errors.New("a zitadel source needs the target's signing key in secrets (returned once when the Actions v2 target is created)")
	}
	return NewVerifier(VerifierConfig{SigningKeys: s.Secrets, Tolerance: s.Tolerance, NowFunc: s.NowFunc})
}

func checkSettings(s provider.APISettings) error {
	methods := 0
	for _, set := range []bool{s.Token != "", s.ClientID != "" || s.ClientSecret != "", s.KeyFile != ""} {
		if set {
			methods++
		}
	}
	switch {
	case s.BaseURL == "":
		return errors.New("base_url is required for a zitadel source: the instance URL, e.g. https://my-instance.zitadel.cloud")
	case methods != 1:
		return errors.New("set exactly one of token (a personal access token), client_id with client_secret, or key_file (a service user's JSON key)")
	case (s.ClientID == "") != (s.ClientSecret == ""):
		return errors.New("client_id and client_secret go together")
	}
	return nil
}

func connect(s provider.APISettings) (*provider.Connection, error) {
	var keyFile []byte
	if s.KeyFile != "" {
		b, err := os.ReadFile(s.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("reading api.key_file: %w", err)
		}
		keyFile = b
	}
	c, err := New(Config{BaseURL: s.BaseURL, PersonalAccessToken: s.Token, ClientID: s.ClientID, ClientSecret: s.ClientSecret,
		KeyFile: keyFile, OrganizationID: s.OrganizationID, HTTPClient: s.HTTPClient, UserAgent: s.UserAgent,
		Limiter: s.Limiter, Logger: s.Logger})
	if err != nil {
		return nil, err
	}
	return &provider.Connection{Probe: zitadelProbe{c: c}, Directory: &zitadelDirectory{c: c}, Sessions: &zitadelSessions{c: c},
		Registrar: &zitadelRegistrar{c: c, source: s.Source}}, nil
}
