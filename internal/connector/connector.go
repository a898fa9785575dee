// Package connector builds each configured source's management-API client and adapts it to what
// the jobs need (internal/handlers): a Directory to resync from, a SessionRevoker, an
// AgentRevoker. It is the only place that knows both the clients and the jobs' interfaces.
//
// Entities read from an API are mapped to canonical ones by the same functions of
// internal/events that map webhook payloads, from the same raw JSON, so that a resync writes
// exactly the rows the webhooks would have.
package connector

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"time"

	"golang.org/x/time/rate"

	"github.com/idpsync/idpsync/internal/config"
	"github.com/idpsync/idpsync/internal/events"
	"github.com/idpsync/idpsync/internal/handlers"
	"github.com/idpsync/idpsync/internal/idpclient/clerk"
	"github.com/idpsync/idpsync/internal/idpclient/zeroid"
	"github.com/idpsync/idpsync/internal/idpclient/zitadel"
)

// UserAgent identifies idpsync to the IdPs.
const UserAgent = "idpsync (+https://github.com/idpsync/idpsync)"

// Build returns the management APIs of every source with API credentials.
func Build(cfg *config.Config, logger *slog.Logger) (handlers.IdPs, error) {
	idps := handlers.IdPs{
		Directories: map[string]handlers.Directory{},
		Sessions:    map[string]handlers.SessionRevoker{},
		Agents:      map[string]handlers.AgentRevoker{},
	}
	for _, s := range cfg.Sources {
		if !s.API.Configured() {
			continue
		}
		log := logger.With("source", s.Name)
		common := common{
			httpClient: &http.Client{Timeout: time.Duration(s.API.Timeout)},
			limiter:    limiter(s.API.RateLimit),
			logger:     log,
		}
		switch s.Kind {
		case events.KindClerk:
			c, err := clerk.New(clerk.Config{SecretKey: s.API.SecretKey, BaseURL: s.API.BaseURL, HTTPClient: common.httpClient,
				UserAgent: UserAgent, Limiter: common.limiter, Logger: log})
			if err != nil {
				return idps, fmt.Errorf("source %s: %w", s.Name, err)
			}
			idps.Directories[s.Name] = &clerkDirectory{c: c}
			idps.Sessions[s.Name] = &clerkSessions{c: c}
		case events.KindZitadel:
			var keyFile []byte
			if s.API.KeyFile != "" {
				b, err := os.ReadFile(s.API.KeyFile)
				if err != nil {
					return idps, fmt.Errorf("source %s: reading api.key_file: %w", s.Name, err)
				}
				keyFile = b
			}
			c, err := zitadel.New(zitadel.Config{BaseURL: s.API.BaseURL, PersonalAccessToken: s.API.Token, ClientID: s.API.ClientID,
				ClientSecret: s.API.ClientSecret, KeyFile: keyFile, OrganizationID: s.API.OrganizationID,
				HTTPClient: common.httpClient, UserAgent: UserAgent, Limiter: common.limiter, Logger: log})
			if err != nil {
				return idps, fmt.Errorf("source %s: %w", s.Name, err)
			}
			idps.Directories[s.Name] = &zitadelDirectory{c: c}
			idps.Sessions[s.Name] = &zitadelSessions{c: c}
		case events.KindZeroID:
			c, err := zeroid.New(zeroid.Config{BaseURL: s.API.BaseURL, AccountID: s.API.AccountID, ProjectID: s.API.ProjectID,
				AdminToken: s.API.Token, UserID: "system:idpsync", HTTPClient: common.httpClient, UserAgent: UserAgent,
				Limiter: common.limiter, Logger: log})
			if err != nil {
				return idps, fmt.Errorf("source %s: %w", s.Name, err)
			}
			idps.Agents[s.Name] = &zeroidAgents{c: c}
		default:
			return idps, fmt.Errorf("source %s: resync and revocation through the %s API are not available yet", s.Name, s.Kind)
		}
	}
	return idps, nil
}

type common struct {
	httpClient *http.Client
	limiter    *rate.Limiter
	logger     *slog.Logger
}

// limiter allows rps requests per second, with a burst of a second's worth; nil for no cap.
func limiter(rps float64) *rate.Limiter {
	if rps <= 0 {
		return nil
	}
	return rate.NewLimiter(rate.Limit(rps), max(1, int(rps)))
}

// offsetCheckpoint is the position of an offset-paged listing: how many entities were written,
// and for a listing nested in organizations, which organization it was in.
type offsetCheckpoint struct {
	Org    int `json:"org,omitempty"`
	Offset int `json:"offset"`
}

func readCheckpoint(raw handlers.Checkpoint) (offsetCheckpoint, error) {
	var c offsetCheckpoint
	if len(raw) == 0 || string(raw) == "{}" || string(raw) == "null" {
		return c, nil
	}
	if err := json.Unmarshal(raw, &c); err != nil {
		return c, fmt.Errorf("resync checkpoint %s: %w", raw, err)
	}
	return c, nil
}

func (c offsetCheckpoint) raw() handlers.Checkpoint {
	b, _ := json.Marshal(c)
	return b
}
