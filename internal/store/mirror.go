package store

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/idpsync/idpsync/internal/events"
)

// The mirror's write rules (the README documents them as guarantees):
//
//   - A state is written only if its version is newer than the row's (source_version), so an
//     older event arriving late changes nothing and a replay of an applied event is a no-op.
//   - Deleting a user or an organization leaves a tombstone (deleted_at) that nothing undoes: IdPs
//     never reuse those ids, so a late update must not resurrect them. The deletion also
//     tombstones their memberships.
//   - A membership is the pair (organization, user). Removing it is versioned like any other
//     change, so a newer "created" after a removal revives the row (the user was added again).

// Change describes what applying one state did to a mirror row and what the row was before, so
// that callers can react to transitions (a user becoming banned, an organization deleted).
//
// The Was* fields describe the row as of the writing statement's snapshot. When two changes to
// the same row commit concurrently, both may report the earlier state, so reactions to a transition
// must be idempotent (revocation jobs are unique and treat "already done" as success).
type Change struct {
	// Applied is true when the row changed; false when the mirror already held this state or a
	// newer one (or a tombstone).
	Applied bool
	// Existed is true when the row existed before. The Was* fields describe it.
	Existed    bool
	WasBanned  bool
	WasLocked  bool
	WasDeleted bool
	// WasSuspended is the organization's suspended flag before.
	WasSuspended bool
	// WasPrimaryEmail is the user's primary email before ("" when it had none).
	WasPrimaryEmail string
	// WasRole is the membership's role before ("" when it had none).
	WasRole string
	// WasCredentials is the user's credentials before; nil when the row said nothing of them.
	WasCredentials *events.Credentials
}

// wasCredentials builds Change.WasCredentials from a row's previous columns.
func wasCredentials(password *bool, changedAt *time.Time, totp *bool) *events.Credentials {
	if password == nil {
		return nil
	}
	c := &events.Credentials{Password: *password, TOTP: totp != nil && *totp}
	if changedAt != nil {
		c.PasswordChangedAt = changedAt.UTC()
	}
	return c
}

// credentialColumns returns the password_set, password_changed_at and totp_enabled values of c:
// NULLs when the IdP said nothing of them, which keep what the row knew.
func credentialColumns(c *events.Credentials) (*bool, *time.Time, *bool) {
	if c == nil {
		return nil, nil, nil
	}
	password, totp := c.Password, c.TOTP
	return &password, nullTime(c.PasswordChangedAt), &totp
}

// ApplyOptions qualify one mirror write.
type ApplyOptions struct {
	// DeletedAt dates a deletion; zero means now.
	DeletedAt time.Time
	// Reapply also rewrites a live row whose version equals the state's: an operator replaying
	// events after fixing how they map to rows. It never revives a tombstone.
	Reapply bool
}

// versionGuard is the condition under which an incoming live state overwrites row alias a.
func versionGuard(a string, reapply bool) string {
	if reapply {
		return "(" + a + ".source_version < excluded.source_version OR (" + a + ".source_version = excluded.source_version AND " + a + ".deleted_at IS NULL))"
	}
	return a + ".source_version < excluded.source_version"
}

// anotherMembership is the condition under which a live membership state overwrites row alias a at
// the same version: it is another membership of the same pair, one the IdP added again and gave a
// new id. A membership's versions are milliseconds (Clerk's), so one removed and added again
// within a millisecond comes back at the version of its removal or its last change; the pair
// holds one membership at a time, so the other one is the newer. Not so when the user or the
// organization was deleted: their deletion tombstoned the row at its own version, and nothing of
// theirs comes after it. (An older membership arriving late at the same version would win too;
// the next resync, reading the IdP's current one, puts it right.)
func anotherMembership(a string) string {
	return "(" + a + ".source_version = excluded.source_version AND excluded.id IS NOT NULL AND " + a + ".id IS DISTINCT FROM excluded.id" +
		" AND NOT EXISTS (SELECT 1 FROM users d WHERE d.source = " + a + ".source AND d.id = " + a + ".user_id AND d.deleted_at IS NOT NULL)" +
		" AND NOT EXISTS (SELECT 1 FROM organizations d WHERE d.source = " + a + ".source AND d.id = " + a + ".organization_id AND d.deleted_at IS NOT NULL))"
}

func orNow(t time.Time) time.Time {
	if t.IsZero() {
		return time.Now().UTC()
	}
	return t
}

// nullIfEmpty is a text column's value: NULL for "", else s cleaned for Postgres.
func nullIfEmpty(s string) *string {
	if s == "" {
		return nil
	}
	c := cleanText(s)
	return &c
}

// rawJSON is a jsonb column's value: the JSON cleaned for Postgres.
func rawJSON(b []byte) []byte {
	c, _ := cleanJSON(b)
	return c
}

func nullTime(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

// orEmpty is a text[] column's value: never NULL, each element cleaned for Postgres.
func orEmpty(s []string) []string {
	if s == nil {
		return []string{}
	}
	return cleanTexts(s)
}

// statement is one mirror write: a single SQL statement (so that many can be pipelined in one
// round trip) and the reading of its result.
type statement struct {
	what string
	sql  string
	args []any
	scan func(pgx.Row) (Change, error)
}

func (st statement) run(ctx context.Context, db DBTX) (Change, error) {
	c, err := st.scan(db.QueryRow(ctx, st.sql, st.args...))
	if err != nil {
		return Change{}, fmt.Errorf("applying %s: %w", st.what, err)
	}
	return c, nil
}

// ApplyUser writes u to the users mirror of source.
func ApplyUser(ctx context.Context, db DBTX, source string, u *events.User, opts ApplyOptions) (Change, error) {
	return userStatement(source, u, opts).run(ctx, db)
}

// ApplyOrganization writes o to the organizations mirror of source.
func ApplyOrganization(ctx context.Context, db DBTX, source string, o *events.Organization, opts ApplyOptions) (Change, error) {
	return organizationStatement(source, o, opts).run(ctx, db)
}

// ApplyMembership writes m to the memberships mirror of source. A removal applies when it is at
// least as new as the row; anything else only when strictly newer, or as new but another
// membership (a new id) of the pair.
func ApplyMembership(ctx context.Context, db DBTX, source string, m *events.Membership, opts ApplyOptions) (Change, error) {
	return membershipStatement(source, m, opts).run(ctx, db)
}

// Write is one entity to write to the mirror of a source.
type Write struct {
	Source string
	// Event carries the entity: a user, an organization or a membership.
	Event events.Event
	Opts  ApplyOptions
}

// cascade is the part of a deletion's statement that tombstones the deleted user's or
// organization's memberships, raising their version to the deletion's so that no older
// membership event revives them: the live ones, and those removed before (which keep their
// deleted_at), since a removed membership added again by an event older than the deletion (late,
// or a repeat that a batch writes in a later round) must stay deleted. It runs only when the
// deletion applied.
func cascade(column string) string {
	return `, cascade AS (
			UPDATE memberships SET deleted_at = coalesce(deleted_at, $6), source_version = greatest(source_version, $5), synced_at = now()
			WHERE source = $1 AND ` + column + ` = $2 AND (deleted_at IS NULL OR source_version < $5) AND EXISTS (SELECT 1 FROM up)
			RETURNING 1)`
}

func userStatement(source string, u *events.User, opts ApplyOptions) statement {
	const prev = `prev AS (SELECT banned, locked, deleted_at IS NOT NULL AS deleted, primary_email, password_set, password_changed_at,
		totp_enabled FROM users WHERE source = $1 AND id = $2)`
	st := statement{what: "user " + u.ID}
	if u.Deleted {
		st.sql = `WITH ` + prev + `, up AS (
			INSERT INTO users AS u (source, id, external_id, raw, source_version, deleted_at)
			VALUES ($1, $2, $3, $4, $5, $6)
			ON CONFLICT (source, id) DO UPDATE
			SET deleted_at = excluded.deleted_at, source_version = greatest(u.source_version, excluded.source_version), synced_at = now()
			WHERE u.deleted_at IS NULL
			RETURNING 1)` + cascade("user_id")
		st.args = []any{source, u.ID, nullIfEmpty(u.ExternalID), rawJSON(u.Raw), u.Version, orNow(opts.DeletedAt)}
	} else {
		st.sql = `WITH ` + prev + `, up AS (
			INSERT INTO users AS u (source, id, external_id, primary_email, emails, username, first_name, last_name,
			                        image_url, banned, locked, created_at, updated_at, raw, source_version,
			                        password_set, password_changed_at, totp_enabled)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)
			ON CONFLICT (source, id) DO UPDATE
			SET external_id = excluded.external_id, primary_email = excluded.primary_email, emails = excluded.emails,
			    username = excluded.username, first_name = excluded.first_name, last_name = excluded.last_name,
			    image_url = excluded.image_url, banned = excluded.banned, locked = excluded.locked,
			    created_at = excluded.created_at, updated_at = excluded.updated_at, raw = excluded.raw,
			    source_version = excluded.source_version, password_set = coalesce(excluded.password_set, u.password_set),
			    password_changed_at = CASE WHEN excluded.password_set IS NULL THEN u.password_changed_at ELSE excluded.password_changed_at END,
			    totp_enabled = coalesce(excluded.totp_enabled, u.totp_enabled), synced_at = now()
			WHERE u.deleted_at IS NULL AND ` + versionGuard("u", opts.Reapply) + `
			RETURNING 1)`
		password, changedAt, totp := credentialColumns(u.Credentials)
		st.args = []any{source, u.ID, nullIfEmpty(u.ExternalID), nullIfEmpty(u.PrimaryEmail), orEmpty(u.Emails),
			nullIfEmpty(u.Username), nullIfEmpty(u.FirstName), nullIfEmpty(u.LastName), nullIfEmpty(u.ImageURL),
			u.Banned, u.Locked, nullTime(u.CreatedAt), nullTime(u.UpdatedAt), rawJSON(u.Raw), u.Version, password, changedAt, totp}
	}
	st.sql += `
		SELECT EXISTS (SELECT 1 FROM up), EXISTS (SELECT 1 FROM prev),
		       coalesce((SELECT banned FROM prev), false), coalesce((SELECT locked FROM prev), false),
		       coalesce((SELECT deleted FROM prev), false), coalesce((SELECT primary_email FROM prev), ''),
		       (SELECT password_set FROM prev), (SELECT password_changed_at FROM prev), (SELECT totp_enabled FROM prev)`
	st.scan = func(row pgx.Row) (Change, error) {
		var (
			c                 Change
			password, totp    *bool
			passwordChangedAt *time.Time
		)
		err := row.Scan(&c.Applied, &c.Existed, &c.WasBanned, &c.WasLocked, &c.WasDeleted, &c.WasPrimaryEmail,
			&password, &passwordChangedAt, &totp)
		c.WasCredentials = wasCredentials(password, passwordChangedAt, totp)
		return c, err
	}
	return st
}

func organizationStatement(source string, o *events.Organization, opts ApplyOptions) statement {
	const prev = `prev AS (SELECT suspended, deleted_at IS NOT NULL AS deleted FROM organizations WHERE source = $1 AND id = $2)`
	st := statement{what: "organization " + o.ID}
	if o.Deleted {
		st.sql = `WITH ` + prev + `, up AS (
			INSERT INTO organizations AS o (source, id, slug, raw, source_version, deleted_at)
			VALUES ($1, $2, $3, $4, $5, $6)
			ON CONFLICT (source, id) DO UPDATE
			SET deleted_at = excluded.deleted_at, source_version = greatest(o.source_version, excluded.source_version), synced_at = now()
			WHERE o.deleted_at IS NULL
			RETURNING 1)` + cascade("organization_id")
		st.args = []any{source, o.ID, nullIfEmpty(o.Slug), rawJSON(o.Raw), o.Version, orNow(opts.DeletedAt)}
	} else {
		st.sql = `WITH ` + prev + `, up AS (
			INSERT INTO organizations AS o (source, id, name, slug, image_url, suspended, created_at, updated_at, raw, source_version)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
			ON CONFLICT (source, id) DO UPDATE
			SET name = excluded.name, slug = excluded.slug, image_url = excluded.image_url, suspended = excluded.suspended,
			    created_at = excluded.created_at, updated_at = excluded.updated_at, raw = excluded.raw,
			    source_version = excluded.source_version, synced_at = now()
			WHERE o.deleted_at IS NULL AND ` + versionGuard("o", opts.Reapply) + `
			RETURNING 1)`
		st.args = []any{source, o.ID, nullIfEmpty(o.Name), nullIfEmpty(o.Slug), nullIfEmpty(o.ImageURL), o.Suspended,
			nullTime(o.CreatedAt), nullTime(o.UpdatedAt), rawJSON(o.Raw), o.Version}
	}
	st.sql += `
		SELECT EXISTS (SELECT 1 FROM up), EXISTS (SELECT 1 FROM prev),
		       coalesce((SELECT suspended FROM prev), false), coalesce((SELECT deleted FROM prev), false)`
	st.scan = func(row pgx.Row) (Change, error) {
		var c Change
		err := row.Scan(&c.Applied, &c.Existed, &c.WasSuspended, &c.WasDeleted)
		return c, err
	}
	return st
}

func membershipStatement(source string, m *events.Membership, opts ApplyOptions) statement {
	const prev = `prev AS (SELECT deleted_at IS NOT NULL AS deleted, role FROM memberships
		WHERE source = $1 AND organization_id = $2 AND user_id = $3)`
	guard := versionGuard("m", opts.Reapply) + " OR " + anotherMembership("m")
	var deleted *time.Time
	if m.Deleted {
		guard = `m.source_version <= excluded.source_version`
		at := orNow(opts.DeletedAt)
		deleted = &at
	}
	return statement{
		what: "membership " + m.OrganizationID + "/" + m.UserID,
		sql: `WITH ` + prev + `, up AS (
		INSERT INTO memberships AS m (source, organization_id, user_id, id, role, permissions, created_at, updated_at,
		                              raw, source_version, deleted_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
		ON CONFLICT (source, organization_id, user_id) DO UPDATE
		SET id = excluded.id, role = excluded.role, permissions = excluded.permissions, created_at = excluded.created_at,
		    updated_at = excluded.updated_at, raw = excluded.raw, source_version = excluded.source_version,
		    deleted_at = CASE WHEN excluded.deleted_at IS NULL THEN NULL ELSE coalesce(m.deleted_at, excluded.deleted_at) END,
		    synced_at = now()
		WHERE ` + guard + `
		RETURNING 1)
		SELECT EXISTS (SELECT 1 FROM up), EXISTS (SELECT 1 FROM prev), coalesce((SELECT deleted FROM prev), false),
		       coalesce((SELECT role FROM prev), '')`,
		args: []any{source, m.OrganizationID, m.UserID, nullIfEmpty(m.ID), nullIfEmpty(m.Role), orEmpty(m.Permissions),
			nullTime(m.CreatedAt), nullTime(m.UpdatedAt), rawJSON(m.Raw), m.Version, deleted},
		scan: func(row pgx.Row) (Change, error) {
			var c Change
			err := row.Scan(&c.Applied, &c.Existed, &c.WasDeleted, &c.WasRole)
			return c, err
		},
	}
}
