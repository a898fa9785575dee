// Package zeroid is everything idpsync knows of ZeroID. It holds a client for ZeroID, the identity server for agents and other non-human
// identities: issue, introspect and revoke tokens, ingest CAE signals (high and critical ones
// revoke the identity's credentials), list identities (also by human owner), offboard every
// identity of a departing owner, and read health and JWKS.
//
// ZeroID's admin routes (under AdminPathPrefix, default /api/v1) are scoped by the X-Account-ID
// and X-Project-ID headers and have no authentication of their own: deployments put them behind
// a network boundary or an AdminAuth hook, for which AdminToken is sent as a bearer token.
// Identities page by offset with limit ≤ 100 (ZeroID silently replaces a larger limit by 20, so the
// client never asks for more than 100).
//
// ZeroID sends no webhooks: a zeroid source is a revocation target. The adapter the jobs use
// (agents.go) revokes the agent identities a user owns; provider.go registers the kind with
// internal/provider. Its fake is zeroidfake.
package zeroid
