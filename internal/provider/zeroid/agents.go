package zeroid

import (
	"context"
	"fmt"
	"iter"

	"github.com/idpsync/idpsync/internal/idpclient"
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

// zeroidProbe reads a page of one identity of the tenant (the admin routes offboarding uses) and,
// when an OAuth client is configured, introspects a token that exists nowhere: a ZeroID that
// accepts the client answers {"active": false}, one that does not answers 401.
type zeroidProbe struct{ c *Client }

func (p zeroidProbe) Probe(ctx context.Context) (string, error) {
	call := "GET " + p.c.prefix + "/identities?limit=1"
	if err := idpclient.FirstErr(p.c.ListIdentities(ctx, &ListIdentitiesParams{Limit: 1})); err != nil {
		return call, err
	}
	if p.c.clientID == "" {
		return call, nil
	}
	call += " and POST /oauth2/token/introspect"
	in, err := p.c.IntrospectToken(ctx, "idpsync-check")
	if err == nil && in.Active {
		err = fmt.Errorf("introspecting a token that exists nowhere answered active: %w", idpclient.ErrUnexpected)
	}
	return call, err
}
