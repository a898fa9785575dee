package zeroid

import (
	"context"
	"fmt"
	"iter"

	"github.com/idpsync/idpsync/internal/provider"
)

// zeroidAgents revokes the credentials of ZeroID agent identities.
type zeroidAgents struct{ c *Client }

var _ provider.AgentRevoker = (*zeroidAgents)(nil)

func (a *zeroidAgents) OwnedAgents(ctx context.Context, owner string) iter.Seq2[string, error] {
	return func(yield func(string, error) bool) {
		for id, err := range a.c.ListIdentities(ctx, &ListIdentitiesParams{OwnerUserID: owner, Status: "active,suspended"}) {
			if err != nil {
				yield("", err)
				return
			}
			if !yield(id.ID, nil) {
				return
			}
		}
	}
}

func (a *zeroidAgents) SignalAgent(ctx context.Context, identityID string, s provider.Signal) error {
	_, err := a.c.IngestSignal(ctx, &IngestSignalParams{IdentityID: identityID, SignalType: s.Type, Severity: s.Severity,
		Source: s.Source, Payload: s.Payload})
	return err
}

func (a *zeroidAgents) DeactivateAgent(ctx context.Context, identityID string) error {
	_, err := a.c.DeactivateIdentity(ctx, identityID)
	return err
}

func (a *zeroidAgents) Offboard(ctx context.Context, owner, reason string) (string, error) {
	res, err := a.c.OffboardByOwner(ctx, owner, reason)
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("%d identities deactivated, %d credentials revoked", res.IdentitiesDeactivated, res.CredentialsRevoked), nil
}
