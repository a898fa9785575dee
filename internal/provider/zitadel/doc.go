// Package zitadel is everything idpsync knows of Zitadel, in one place:
//
//   - webhooks: Actions v2 targets sign with ZITADEL-Signature: t=<unix>,v1=<hex HMAC-SHA256 of
//     "<t>.<body>"> (verify.go); Zitadel's events carry changes, not states, so the parsers name the
//     user or organization and the worker reads its state from the API; organization member events
//     carry the whole pair and are applied as they are (parse.go);
//   - the v2 management API client over REST: users, organizations and sessions, and the calls
//     that revoke access (deactivate or lock a user, delete a session). It authenticates in any of
//     the three ways of Zitadel's own SDKs: a personal access token, client credentials, or a
//     service user's private key (the JWT profile grant, signed with RS256 by the standard
//     library). The two token methods cache the access token, refresh it shortly before it
//     expires, fetch once however many goroutines need it, and fetch again after a 401. Lists page
//     with Zitadel's ListQuery {offset, limit ≤ 1000, asc} in a POST body and stop when offset
//     reaches details.totalResult (64-bit numbers arrive as JSON strings);
//   - the adapters the jobs use: a Directory (users, organizations) and a SessionRevoker
//     (directory.go);
//   - Actions v2 targets and executions (actions.go), and the Registrar of `worker register`
//     (register.go): a restWebhook target for the receiver, called on every user.* and org.*
//     event, whose signing key is the source's webhook secret;
//   - its registration with internal/provider (provider.go). Its fake is zitadelfake.
package zitadel
