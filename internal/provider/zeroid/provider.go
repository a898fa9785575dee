package zeroid

import (
	"errors"

	"github.com/idpsync/idpsync/internal/events"
	"github.com/idpsync/idpsync/internal/provider"
)

// Kind is ZeroID's kind in configurations.
const Kind events.Kind = "zeroid"

func init() {
	provider.Register(&provider.Provider{
		Kind: Kind,
		Name: "ZeroID",
		API: &provider.API{
			Settings:          "base_url, account_id, project_id, token (when a gateway wants one)",
			Agents:            true,
			CheckSettingsFunc: checkSettings,
			ConnectFunc:       connect,
		},
	})
}

func checkSettings(s provider.APISettings) error {
	if s.BaseURL == "" || s.AccountID == "" || s.ProjectID == "" {
		return errors.New("base_url, account_id and project_id are required for a zeroid source")
	}
	return nil
}

func connect(s provider.APISettings) (*provider.Connection, error) {
	c, err := New(Config{BaseURL: s.BaseURL, AccountID: s.AccountID, ProjectID: s.ProjectID, AdminToken: s.Token,
		UserID: "system:idpsync", HTTPClient: s.HTTPClient, UserAgent: s.UserAgent, Limiter: s.Limiter, Logger: s.Logger})
	if err != nil {
		return nil, err
	}
	return &provider.Connection{Agents: &zeroidAgents{c: c}}, nil
}
