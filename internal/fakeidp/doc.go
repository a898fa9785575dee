// Package fakeidp is the machinery the fakes of the identity providers' management APIs share
// (internal/provider/<kind>/<kind>fake): request and mutation recording for assertions, failure
// and latency injection, a loopback HTTP server, an ordered webhook sender that retries like an
// IdP, in-memory tables that page in creation order, and deterministic data generators.
//
// The fakes exist because the IdPs' management APIs are the only things idpsync's tests do not
// run for real. Each fake serves its API at the root of its own listener, as the real service is
// served, and models the real semantics recorded in the project's reference material.
package fakeidp
