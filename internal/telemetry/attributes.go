package telemetry

import "go.opentelemetry.io/otel/attribute"

// Span attributes idpsync sets besides the semantic conventions' own. None ever carries a secret,
// a token, a signature or a body: sources are configured names, event ids and types come from
// payloads whose signature verified, the rest is idpsync's own vocabulary.
const (
	// AttrSource is the configured source name, e.g. "clerk-prod".
	AttrSource = attribute.Key("idpsync.source")
	// AttrEventID is the IdP's event id.
	AttrEventID = attribute.Key("idpsync.event_id")
	// AttrEventType is the canonical event type, else the IdP's own.
	AttrEventType = attribute.Key("idpsync.event_type")
	// AttrOutcome is what became of a delivery: the receiver's outcome (accepted, duplicate,
	// unauthorized, ...) or the intake's (recorded, duplicate, dead_lettered, redelivered).
	AttrOutcome = attribute.Key("idpsync.outcome")
	// AttrReason is why a delivery failed verification (invalid_signature, timestamp_too_old, ...).
	AttrReason = attribute.Key("idpsync.reason")
	// AttrStatus is the event's status in the event log: applied, stale, pending, recorded or
	// ignored.
	AttrStatus = attribute.Key("idpsync.status")
	// AttrStreamSeq is the message's sequence in the JetStream stream.
	AttrStreamSeq = attribute.Key("idpsync.stream_seq")
	// AttrDuplicate tells that the stream already held the message.
	AttrDuplicate = attribute.Key("idpsync.duplicate")
	// AttrEntity is the mirror entity written: user, organization or membership.
	AttrEntity = attribute.Key("idpsync.entity")
	// AttrApplied tells that a mirror write changed the row (false: the row was as new or newer).
	AttrApplied = attribute.Key("idpsync.applied")
	// AttrWrites is how many mirror rows one round trip wrote.
	AttrWrites = attribute.Key("idpsync.writes")
	// AttrOperation names a call to an IdP's management API (get_user, revoke_session, ...).
	AttrOperation = attribute.Key("idpsync.operation")
)
