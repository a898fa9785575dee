package store

import (
	"context"
	"fmt"
	"time"

	"github.com/idpsync/idpsync/internal/events"
)

// Revocation outcomes.
const (
	// RevocationDone: the IdP carried the call out.
	RevocationDone = "done"
	// RevocationAlreadyDone: the IdP had nothing left to do (the session or identity was gone).
	RevocationAlreadyDone = "already_done"
	// RevocationFailed: the IdP refused the call for good (the job was cancelled or exhausted).
	RevocationFailed = "failed"
)

// Revocation is one call made back to an IdP, as audited in the revocations table.
type Revocation struct {
	JobID   int64
	Source  string // the source whose change triggered it
	Target  string // the source called
	Action  string
	Subject string
	UserID  string
	Trigger events.Trigger
	EventID int64 // the triggering event's row, 0 when a resync detected the change
	Outcome string
	Detail  string
	// TriggeredAt is when the triggering webhook was received (or the resync detected the change).
	TriggeredAt time.Time
}

// RecordRevocation appends r to the audit.
func RecordRevocation(ctx context.Context, db DBTX, r Revocation) error {
	var eventID *int64
	if r.EventID != 0 {
		eventID = &r.EventID
	}
	_, err := db.Exec(ctx, `
		INSERT INTO revocations (job_id, source, target, action, subject, user_id, trigger, event_id, outcome, detail, triggered_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)`,
		r.JobID, r.Source, r.Target, r.Action, r.Subject, nullIfEmpty(r.UserID), r.Trigger, eventID, r.Outcome,
		nullIfEmpty(r.Detail), r.TriggeredAt)
	if err != nil {
		return fmt.Errorf("recording revocation: %w", err)
	}
	return nil
}

// MembersSince returns the users who are members of an organization, or whose membership ended
// at or after since: for an organization's deletion, the members its deletion (or the IdP's own
// cascade of membership deletions) removed. A zero since returns the live members only.
func MembersSince(ctx context.Context, db DBTX, source, organizationID string, since time.Time) ([]string, error) {
	rows, err := db.Query(ctx, `SELECT user_id FROM memberships WHERE source = $1 AND organization_id = $2
		AND (deleted_at IS NULL OR deleted_at >= $3) ORDER BY user_id`, source, organizationID, nullTime(since))
	if err != nil {
		return nil, fmt.Errorf("listing members of %s: %w", organizationID, err)
	}
	defer rows.Close()
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		ids = append(ids, id)
	}
	return ids, rows.Err()
}

// UserKeys returns a mirrored user's external id and primary email ("" when unknown), tombstoned
// or not: other systems may know the user by them.
func UserKeys(ctx context.Context, db DBTX, source, userID string) (externalID, email string, err error) {
	err = db.QueryRow(ctx, `SELECT coalesce(external_id, ''), coalesce(primary_email, '') FROM users WHERE source = $1 AND id = $2`,
		source, userID).Scan(&externalID, &email)
	if err != nil {
		return "", "", fmt.Errorf("reading user %s: %w", userID, interpretError(err))
	}
	return externalID, email, nil
}
