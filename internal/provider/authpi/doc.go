// Package authpi is everything idpsync knows of AuthPI, in one place:
//
//   - webhooks: AuthPI authenticates each delivery with a bearer token, an HMAC-SHA256 of the body
//     in X-Webhook-Signature, or both (verify.go); its events are CloudEvents 1.0 wrapping whole
//     entities, applied as they are (parse.go);
//   - the Core API client: issuers, users and organizations per issuer, and webhooks (so idpsync
//     can register its own receiver). It authenticates with an API key (key id and secret over
//     HTTP Basic) or with an access token plus an OnTokenExpiredFunc that is asked for a new token
//     after a 401 (the request is then sent once more). The account id is resolved once through
//     GET /v1/me and cached, unless given. Lists follow AuthPI's cursors (limit ≤ 100,
//     next_cursor, has_more);
//   - the Registrar of `worker register` (register.go): a webhook for the receiver, subscribed to
//     every event type the parser maps, with bearer+signature auth;
//   - its registration with internal/provider (provider.go). Its fake is authpifake.
package authpi
