// Package clerk is everything idpsync knows of Clerk, in one place:
//
//   - webhooks: Clerk delivers through Svix (Standard Webhooks signatures, verified with
//     github.com/svix/svix-webhooks/go, verify.go); the envelope and payload parsers map Clerk's
//     users, organizations, memberships and sessions to idpsync's canonical events (parse.go);
//   - the Backend API (BAPI) client: users, organizations, memberships and sessions, and the
//     calls that revoke access (ban, lock, delete, revoke session). Lists are lazy iterators over
//     Clerk's offset pagination (limit ≤ 500); GET /users answers a bare JSON array without a
//     total, so the iterator stops at the first short page, and CountUsers asks /users/count.
//     Errors are *idpclient.APIError decoded from Clerk's {"errors":[…],"clerk_trace_id":…} body;
//   - the adapters the jobs use: a Directory that resyncs users, organizations and memberships in
//     creation order, and a SessionRevoker (directory.go);
//   - the Registrar of `worker register` (register.go): Clerk keeps its endpoints in a Svix app that
//     BAPI can create (POST /webhooks/svix) and open in Svix's dashboard (POST /webhooks/svix_url,
//     a login link) but not configure, so registering creates the app when the instance has none
//     and leaves the operator the steps in the dashboard (svix.go);
//   - its registration with internal/provider (provider.go). Its fake is clerkfake.
package clerk
