// Package ssf is idpsync's OpenID Shared Signals Framework 1.0 transmitter: it tells receivers
// (relying parties, security tools) about the changes idpsync sees, as Security Event Tokens
// (RFC 8417) carrying CAEP 1.0 and RISC 1.0 events.
//
// The package owns the protocol and nothing else; it imports neither River nor pgx:
//
//	event.go        the events (CAEP session-revoked, credential-change, token-claims-change; RISC
//	                account-disabled, -enabled, -purged, identifier-changed; SSF verification,
//	                stream-updated) and their subjects (email, iss_sub, opaque, complex)
//	subject.go      subjects sent by receivers: validation, canonical keys, matching
//	set.go          SETs: claims, signing with RS256 (go-jose v4), the JWKS
//	config.go       Config, its defaults and validation
//	stream.go       stream configurations as the management API reads and writes them
//	transmitter.go  the HTTP handler: discovery, JWKS, stream management (SSF 1.0 §8), and
//	                poll delivery (RFC 8936)
//	store.go        Store, what the handler needs of storage (internal/handlers implements it
//	                over internal/store and River)
//	push.go         Pusher, the RFC 8935 client: the request, and the receiver's answer judged
//	                delivered, retryable or permanent (PushError)
//	ssftest/        a receiver for tests, verifying SETs with an independent JOSE library
//
// Push delivery is a River job in internal/handlers (one per SET) that signs with Signer and
// posts with Pusher.
//
// How a change becomes a SET: a job's transaction (apply, resync, revoke) calls the emitter in
// internal/handlers with an Event; the emitter finds the streams that requested the event's type
// and cover its subject, records one unsigned SET per stream (jti and iat fixed then) and, for push
// streams, enqueues one delivery job per SET, all in that transaction. SETs are signed when they
// are delivered, outside the mirror's transaction (see Signer).
package ssf
