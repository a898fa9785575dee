// Package zeroid is everything idpsync knows of ZeroID, the identity server for agents and other
// non-human identities. Its Client lists identities (also by human owner), deactivates one
// identity, offboards every identity of a departing owner, ingests CAE signals, and issues,
// introspects and revokes tokens.
//
// What each revocation leaves working, as a real ZeroID does it:
//   - a high or critical signal (IngestSignal) revokes the tokens the identity holds now; the
//     identity stays active and its API keys mint new tokens at once;
//   - DeactivateIdentity revokes the identity's API keys and tokens and it can mint no more;
//   - OffboardByOwner does that to every identity of the owner in the account, suspended ones too.
//
// ZeroID's admin routes (under AdminPathPrefix, default /api/v1) have no authentication of their
// own: deployments put them behind a network boundary or a gateway (AdminToken is sent to such a
// gateway, ZeroID ignores it). They are scoped by the X-Account-ID and X-Project-ID headers, and
// X-User-ID names the audit actor (Config.UserID, "idpsync" by default; ZeroID drops any "system:"
// actor). Token introspection and revocation authenticate an OAuth client (ClientID and
// ClientSecret, client_secret_basic by default), which production ZeroIDs require. Identities
// page by offset with limit ≤ 100 (ZeroID replaces a larger limit by 20, so the client never asks
// for more than 100).
//
// ZeroID sends no webhooks: a zeroid source is a revocation target. The adapter the jobs use
// (agents.go) revokes the agent identities a user owns; provider.go registers the kind with
// internal/provider. Its fake is zeroidfake.
package zeroid
