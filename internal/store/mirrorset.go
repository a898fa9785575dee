package store

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// ApplyBatch writes each entity to the mirror and returns what each write did, in input order.
//
// Live states (users and organizations that are not deleted, memberships added, changed or
// removed) are written set-based: one statement per table for the whole batch, each a
// version-guarded INSERT … ON CONFLICT over the batch's rows that also reads the rows' previous
// state. A deletion of a user or an organization, which tombstones and cascades, is one statement
// of its own. All of a round's statements are pipelined in one round trip.
//
// A statement cannot write a row twice, so the writes of an entity that appears several times in
// the batch go to successive rounds, in their input order (callers order them by version), and the
// rounds run one after the other. Within a round, organizations are written before users, users
// before memberships, and deletions last.
func ApplyBatch(ctx context.Context, db DBTX, writes []Write) ([]Change, error) {
	changes := make([]Change, len(writes))
	if len(writes) == 0 {
		return changes, nil
	}
	rounds, err := roundsOf(writes)
	if err != nil {
		return nil, err
	}
	for _, round := range rounds {
		b := &pgx.Batch{}
		var firstErr error
		fail := func(err error) {
			if firstErr == nil {
				firstErr = err
			}
		}
		for _, set := range round.sets() {
			sql, args := set.statement(writes)
			ords := set.ords
			b.Queue(sql, args...).Query(func(rows pgx.Rows) error {
				for rows.Next() {
					var (
						ord               int32
						c                 Change
						password, totp    *bool
						passwordChangedAt *time.Time
					)
					if err := rows.Scan(&ord, &c.Applied, &c.Existed, &c.WasBanned, &c.WasLocked, &c.WasSuspended, &c.WasDeleted,
						&c.WasPrimaryEmail, &c.WasRole, &password, &passwordChangedAt, &totp); err != nil {
						return err
					}
					c.WasCredentials = wasCredentials(password, passwordChangedAt, totp)
					changes[ord] = c
				}
				if err := rows.Err(); err != nil {
					fail(fmt.Errorf("applying %d %s: %w", len(ords), set.table, err))
					return err
				}
				return nil
			})
		}
		for _, i := range round.single {
			st := singleStatement(writes[i])
			b.Queue(st.sql, st.args...).QueryRow(func(row pgx.Row) error {
				c, err := st.scan(row)
				if err != nil {
					fail(fmt.Errorf("applying %s: %w", st.what, err))
					return err
				}
				changes[i] = c
				return nil
			})
		}
		if err := db.SendBatch(ctx, b).Close(); err != nil {
			if firstErr != nil {
				return nil, firstErr
			}
			return nil, err
		}
	}
	return changes, nil
}

// round is the writes of one round: the set-based ones by table and guard mode, and those that
// are statements of their own.
type round struct {
	users, organizations, memberships [2][]int // by Reapply
	single                            []int
}

// set is one set-based statement: a table, a guard mode, and the writes (indexes) it takes.
type set struct {
	table   string
	reapply bool
	ords    []int
}

func (r *round) sets() []set {
	var out []set
	for _, g := range []struct {
		table string
		ords  [2][]int
	}{{"organizations", r.organizations}, {"users", r.users}, {"memberships", r.memberships}} {
		for mode, ords := range g.ords {
			if len(ords) > 0 {
				out = append(out, set{table: g.table, reapply: mode == 1, ords: ords})
			}
		}
	}
	return out
}

func roundsOf(writes []Write) ([]*round, error) {
	seen := make(map[string]int, len(writes))
	var rounds []*round
	for i, w := range writes {
		var key string
		switch ev := w.Event; {
		case ev.User != nil:
			key = "u\x00" + w.Source + "\x00" + ev.User.ID
		case ev.Organization != nil:
			key = "o\x00" + w.Source + "\x00" + ev.Organization.ID
		case ev.Membership != nil:
			key = "m\x00" + w.Source + "\x00" + ev.Membership.OrganizationID + "\x00" + ev.Membership.UserID
		default:
			return nil, fmt.Errorf("write %d of the batch carries no entity", i)
		}
		k := seen[key]
		seen[key] = k + 1
		for len(rounds) <= k {
			rounds = append(rounds, &round{})
		}
		r, mode := rounds[k], 0
		if w.Opts.Reapply {
			mode = 1
		}
		switch ev := w.Event; {
		case ev.User != nil && ev.User.Deleted, ev.Organization != nil && ev.Organization.Deleted:
			r.single = append(r.single, i)
		case ev.User != nil:
			r.users[mode] = append(r.users[mode], i)
		case ev.Organization != nil:
			r.organizations[mode] = append(r.organizations[mode], i)
		default:
			r.memberships[mode] = append(r.memberships[mode], i)
		}
	}
	return rounds, nil
}

func singleStatement(w Write) statement {
	if w.Event.User != nil {
		return userStatement(w.Source, w.Event.User, w.Opts)
	}
	return organizationStatement(w.Source, w.Event.Organization, w.Opts)
}

// jsonArray encodes a text[] column's value for a jsonb[] parameter: unnest cannot take an array
// of arrays.
func jsonArray(ss []string) []byte {
	b, _ := json.Marshal(orEmpty(ss))
	return b
}

// statement returns the set-based statement of s. Its rows are (ord, applied, existed,
// was_banned, was_locked, was_suspended, was_deleted, was_primary_email, was_role,
// was_password_set, was_password_changed_at, was_totp_enabled), one per write.
func (s set) statement(writes []Write) (string, []any) {
	n := len(s.ords)
	ord := make([]int32, n)
	source, id := make([]string, n), make([]string, n)
	raw := make([][]byte, n)
	version := make([]int64, n)
	created, updated := make([]*time.Time, n), make([]*time.Time, n)
	for k, i := range s.ords {
		w := writes[i]
		ord[k], source[k] = int32(i), w.Source
		switch ev := w.Event; {
		case ev.User != nil:
			id[k], raw[k], version[k], created[k], updated[k] = ev.User.ID, rawJSON(ev.User.Raw), ev.User.Version, nullTime(ev.User.CreatedAt), nullTime(ev.User.UpdatedAt)
		case ev.Organization != nil:
			id[k], raw[k], version[k], created[k], updated[k] = ev.Organization.ID, rawJSON(ev.Organization.Raw), ev.Organization.Version,
				nullTime(ev.Organization.CreatedAt), nullTime(ev.Organization.UpdatedAt)
		default:
			m := ev.Membership
			raw[k], version[k], created[k], updated[k] = rawJSON(m.Raw), m.Version, nullTime(m.CreatedAt), nullTime(m.UpdatedAt)
		}
	}
	switch s.table {
	case "users":
		externalID, email, username, first, last, image := make([]*string, n), make([]*string, n), make([]*string, n), make([]*string, n), make([]*string, n), make([]*string, n)
		emails := make([][]byte, n)
		banned, locked := make([]bool, n), make([]bool, n)
		password, totp, changedAt := make([]*bool, n), make([]*bool, n), make([]*time.Time, n)
		for k, i := range s.ords {
			u := writes[i].Event.User
			externalID[k], email[k], username[k] = nullIfEmpty(u.ExternalID), nullIfEmpty(u.PrimaryEmail), nullIfEmpty(u.Username)
			first[k], last[k], image[k], emails[k] = nullIfEmpty(u.FirstName), nullIfEmpty(u.LastName), nullIfEmpty(u.ImageURL), jsonArray(u.Emails)
			banned[k], locked[k] = u.Banned, u.Locked
			password[k], changedAt[k], totp[k] = credentialColumns(u.Credentials)
		}
		return `WITH input AS (
			SELECT * FROM unnest($1::int[], $2::text[], $3::text[], $4::text[], $5::text[], $6::jsonb[], $7::text[], $8::text[], $9::text[],
			                     $10::text[], $11::bool[], $12::bool[], $13::timestamptz[], $14::timestamptz[], $15::jsonb[], $16::bigint[],
			                     $17::bool[], $18::timestamptz[], $19::bool[])
			AS t(ord, source, id, external_id, primary_email, emails, username, first_name, last_name, image_url, banned, locked,
			     created_at, updated_at, raw, source_version, password_set, password_changed_at, totp_enabled)),
		prev AS (SELECT u.source, u.id, u.banned, u.locked, u.deleted_at IS NOT NULL AS deleted, u.primary_email,
			u.password_set, u.password_changed_at, u.totp_enabled FROM users u JOIN input i USING (source, id)),
		up AS (
			INSERT INTO users AS u (source, id, external_id, primary_email, emails, username, first_name, last_name, image_url, banned, locked,
			                        created_at, updated_at, raw, source_version, password_set, password_changed_at, totp_enabled)
			SELECT source, id, external_id, primary_email, ARRAY(SELECT jsonb_array_elements_text(emails)), username, first_name, last_name,
			       image_url, banned, locked, created_at, updated_at, raw, source_version, password_set, password_changed_at, totp_enabled
			FROM input
			ON CONFLICT (source, id) DO UPDATE
			SET external_id = excluded.external_id, primary_email = excluded.primary_email, emails = excluded.emails,
			    username = excluded.username, first_name = excluded.first_name, last_name = excluded.last_name,
			    image_url = excluded.image_url, banned = excluded.banned, locked = excluded.locked,
			    created_at = excluded.created_at, updated_at = excluded.updated_at, raw = excluded.raw,
			    source_version = excluded.source_version, password_set = coalesce(excluded.password_set, u.password_set),
			    password_changed_at = CASE WHEN excluded.password_set IS NULL THEN u.password_changed_at ELSE excluded.password_changed_at END,
			    totp_enabled = coalesce(excluded.totp_enabled, u.totp_enabled), synced_at = now()
			WHERE u.deleted_at IS NULL AND ` + versionGuard("u", s.reapply) + `
			RETURNING u.source, u.id)
		SELECT i.ord, up.id IS NOT NULL, p.id IS NOT NULL, coalesce(p.banned, false), coalesce(p.locked, false), false, coalesce(p.deleted, false),
		       coalesce(p.primary_email, ''), '', p.password_set, p.password_changed_at, p.totp_enabled
		FROM input i LEFT JOIN up ON up.source = i.source AND up.id = i.id LEFT JOIN prev p ON p.source = i.source AND p.id = i.id`,
			[]any{ord, source, id, externalID, email, emails, username, first, last, image, banned, locked, created, updated, raw, version,
				password, changedAt, totp}
	case "organizations":
		name, slug, image := make([]*string, n), make([]*string, n), make([]*string, n)
		suspended := make([]bool, n)
		for k, i := range s.ords {
			o := writes[i].Event.Organization
			name[k], slug[k], image[k], suspended[k] = nullIfEmpty(o.Name), nullIfEmpty(o.Slug), nullIfEmpty(o.ImageURL), o.Suspended
		}
		return `WITH input AS (
			SELECT * FROM unnest($1::int[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::bool[], $8::timestamptz[],
			                     $9::timestamptz[], $10::jsonb[], $11::bigint[])
			AS t(ord, source, id, name, slug, image_url, suspended, created_at, updated_at, raw, source_version)),
		prev AS (SELECT o.source, o.id, o.suspended, o.deleted_at IS NOT NULL AS deleted FROM organizations o JOIN input i USING (source, id)),
		up AS (
			INSERT INTO organizations AS o (source, id, name, slug, image_url, suspended, created_at, updated_at, raw, source_version)
			SELECT source, id, name, slug, image_url, suspended, created_at, updated_at, raw, source_version FROM input
			ON CONFLICT (source, id) DO UPDATE
			SET name = excluded.name, slug = excluded.slug, image_url = excluded.image_url, suspended = excluded.suspended,
			    created_at = excluded.created_at, updated_at = excluded.updated_at, raw = excluded.raw,
			    source_version = excluded.source_version, synced_at = now()
			WHERE o.deleted_at IS NULL AND ` + versionGuard("o", s.reapply) + `
			RETURNING o.source, o.id)
		SELECT i.ord, up.id IS NOT NULL, p.id IS NOT NULL, false, false, coalesce(p.suspended, false), coalesce(p.deleted, false), '', '',
		       NULL::boolean, NULL::timestamptz, NULL::boolean
		FROM input i LEFT JOIN up ON up.source = i.source AND up.id = i.id LEFT JOIN prev p ON p.source = i.source AND p.id = i.id`,
			[]any{ord, source, id, name, slug, image, suspended, created, updated, raw, version}
	}
	orgID, userID := make([]string, n), make([]string, n)
	memID, role := make([]*string, n), make([]*string, n)
	perms := make([][]byte, n)
	deleted := make([]*time.Time, n)
	for k, i := range s.ords {
		m := writes[i].Event.Membership
		orgID[k], userID[k], memID[k], role[k], perms[k] = m.OrganizationID, m.UserID, nullIfEmpty(m.ID), nullIfEmpty(m.Role), jsonArray(m.Permissions)
		if m.Deleted {
			at := orNow(writes[i].Opts.DeletedAt)
			deleted[k] = &at
		}
	}
	return `WITH input AS (
		SELECT * FROM unnest($1::int[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::jsonb[], $8::timestamptz[],
		                     $9::timestamptz[], $10::jsonb[], $11::bigint[], $12::timestamptz[])
		AS t(ord, source, organization_id, user_id, id, role, permissions, created_at, updated_at, raw, source_version, deleted_at)),
	prev AS (SELECT m.source, m.organization_id, m.user_id, m.deleted_at IS NOT NULL AS deleted, m.role FROM memberships m
		JOIN input i USING (source, organization_id, user_id)),
	up AS (
		INSERT INTO memberships AS m (source, organization_id, user_id, id, role, permissions, created_at, updated_at, raw, source_version, deleted_at)
		SELECT source, organization_id, user_id, id, role, ARRAY(SELECT jsonb_array_elements_text(permissions)), created_at, updated_at, raw,
		       source_version, deleted_at FROM input
		ON CONFLICT (source, organization_id, user_id) DO UPDATE
		SET id = excluded.id, role = excluded.role, permissions = excluded.permissions, created_at = excluded.created_at,
		    updated_at = excluded.updated_at, raw = excluded.raw, source_version = excluded.source_version,
		    deleted_at = CASE WHEN excluded.deleted_at IS NULL THEN NULL ELSE coalesce(m.deleted_at, excluded.deleted_at) END,
		    synced_at = now()
		WHERE CASE WHEN excluded.deleted_at IS NOT NULL THEN m.source_version <= excluded.source_version
		           ELSE ` + versionGuard("m", s.reapply) + ` OR ` + anotherMembership("m") + ` END
		RETURNING m.source, m.organization_id, m.user_id)
	SELECT i.ord, up.user_id IS NOT NULL, p.user_id IS NOT NULL, false, false, false, coalesce(p.deleted, false), '', coalesce(p.role, ''),
	       NULL::boolean, NULL::timestamptz, NULL::boolean
	FROM input i
	LEFT JOIN up ON up.source = i.source AND up.organization_id = i.organization_id AND up.user_id = i.user_id
	LEFT JOIN prev p ON p.source = i.source AND p.organization_id = i.organization_id AND p.user_id = i.user_id`,
		[]any{ord, source, orgID, userID, memID, role, perms, created, updated, raw, version, deleted}
}

// batchOrder returns the indexes of writes in the order ApplyBatch applies them.
func batchOrder(writes []Write) []int {
	rounds, err := roundsOf(writes)
	if err != nil {
		return nil
	}
	var out []int
	for _, r := range rounds {
		for _, s := range r.sets() {
			out = append(out, s.ords...)
		}
		out = append(out, r.single...)
	}
	return out
}
