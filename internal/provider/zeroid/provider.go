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
			Settings: "base_url, account_id, project_id; client_id and client_secret (the OAuth client for token introspection " +
				"and revocation); token (only for a gateway in front of the admin routes)",
			Agents:            true,
			CheckSettingsFunc: checkSettings,
			ConnectFunc:       connect,
			Hints: provider.Hints{
				Unauthorized: "ZeroID refused the OAuth client (api.client_id, api.client_secret) or the tenant (api.account_id, api.project_id), or a gateway refused api.token",
				Forbidden:    "the tenant's admin routes are closed to idpsync's credentials",
			},
		},
	})
}

func checkSettings(s provider.APISettings) error {
	switch {
	case s.BaseURL == "" || s.AccountID == "" || s.ProjectID == "":
		return errors.New("base_url, account_id and project_id are required for a zeroid source")
	case s.ClientSecret != "" && s.ClientID == "":
		return errors.New("client_secret is set without client_id; set the OAuth client's id too")
	case systemActor(s.Actor):
		return errors.New(`the actor starts with "system:", which ZeroID reserves for its own workers and drops; use another, e.g. "idpsync"`)
	}
	return nil
}

func connect(s provider.APISettings) (*provider.Connection, error) {
	c, err := New(Config{BaseURL: s.BaseURL, AccountID: s.AccountID, ProjectID: s.ProjectID, AdminToken: s.Token,
		UserID: s.Actor, ClientID: s.ClientID, ClientSecret: s.ClientSecret,
		HTTPClient: s.HTTPClient, UserAgent: s.UserAgent, Limiter: s.Limiter, Logger: s.Logger})
	if err != nil {
		return nil, err
	}
	return &provider.Connection{Probe: zeroidProbe{c: c}, Agents: &zeroidAgents{c: c}}, nil
}
