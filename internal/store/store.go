// Package store is idpsync's Postgres adapter: the connection pool, the migrations (ours and
// River's), the event log, the dead letters and the mirror tables. All SQL lives here.
//
// Every function takes a DBTX, so callers compose them into their own transaction — in particular
// the transaction of a River job, which makes a mirror write and the job's completion atomic.
// Errors from pgx are translated at this boundary: ErrNotFound, and IsDataError for values
// Postgres refuses whatever the retry (the caller dead-letters them instead of retrying).
package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// DBTX is what the store needs of a connection: a *pgxpool.Pool or a pgx.Tx.
type DBTX interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults
}

var (
	_ DBTX = (*pgxpool.Pool)(nil)
	_ DBTX = (pgx.Tx)(nil)
)

// ErrNotFound is returned when a row asked for by key does not exist.
var ErrNotFound = errors.New("not found")

// Open connects a pool to url whose sessions resolve unqualified names in schema. maxConns of 0
// keeps pgx's default.
func Open(ctx context.Context, url, schema string, maxConns int32) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		// pgx's parse errors can echo the URL, password included.
		return nil, errors.New("database url is not a valid Postgres connection string")
	}
	if maxConns > 0 {
		cfg.MaxConns = maxConns
	}
	cfg.ConnConfig.RuntimeParams["search_path"] = schema
	if cfg.ConnConfig.RuntimeParams["application_name"] == "" {
		cfg.ConnConfig.RuntimeParams["application_name"] = "idpsync"
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("connecting to postgres: %w", err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("connecting to postgres at %s:%d: %w", cfg.ConnConfig.Host, cfg.ConnConfig.Port, err)
	}
	return pool, nil
}

// IsDataError reports whether err is Postgres refusing a value (SQLSTATE class 22, e.g. a NUL
// character in a JSON string): retrying the same value cannot succeed.
func IsDataError(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && len(pgErr.Code) == 5 && pgErr.Code[:2] == "22"
}

func interpretError(err error) error {
	if errors.Is(err, pgx.ErrNoRows) {
		return ErrNotFound
	}
	return err
}

// quoteIdent quotes a Postgres identifier.
func quoteIdent(s string) string { return pgx.Identifier{s}.Sanitize() }

// EnsureDatabase creates the database url names when it does not exist yet, connecting to the
// same server's "postgres" database to do so. It returns the database's name and whether it
// created it. When it cannot, its error gives the command an administrator can run instead.
func EnsureDatabase(ctx context.Context, url string) (name string, created bool, err error) {
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		return "", false, errors.New("database url is not a valid Postgres connection string")
	}
	name = cfg.Database
	if name == "" || name == "postgres" {
		return name, false, nil
	}
	createdb := fmt.Sprintf("createdb -h %s -p %d -O %s %s", cfg.Host, cfg.Port, quoteShell(cfg.User), quoteShell(name))
	if conn, err := pgx.ConnectConfig(ctx, cfg); err == nil {
		// It exists and we may connect: the common case, which needs no other database.
		conn.Close(context.WithoutCancel(ctx))
		return name, false, nil
	} else if !isCode(err, "3D000") { // invalid_catalog_name: it does not exist
		return name, false, fmt.Errorf("connecting to postgres at %s:%d: %w", cfg.Host, cfg.Port, err)
	}
	cfg.Database = "postgres"
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return name, false, fmt.Errorf("database %s does not exist and connecting to the server's postgres database to create it failed (%w); create it with: %s", name, err, createdb)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, `CREATE DATABASE `+quoteIdent(name)); err != nil {
		if isCode(err, "42P04") { // created meanwhile by someone else
			return name, false, nil
		}
		if isCode(err, "42501") { // insufficient_privilege
			return name, false, fmt.Errorf("database %s does not exist and role %s may not create databases; ask an administrator to run: %s", name, cfg.User, createdb)
		}
		return name, false, fmt.Errorf("creating database %s: %w; create it with: %s", name, err, createdb)
	}
	return name, true, nil
}

func isCode(err error, code string) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == code
}

// quoteShell quotes s for a POSIX shell when it needs it.
func quoteShell(s string) string {
	for _, r := range s {
		if !(r == '_' || r == '-' || r == '.' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z') {
			return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
		}
	}
	return s
}

// ForgetSource deletes everything the database holds of source: its event log, dead letters,
// mirror rows, resync runs and revocation audit. `make run` uses it for the demo sources, whose
// fake IdPs start afresh in every run.
func ForgetSource(ctx context.Context, db DBTX, source string) error {
	for _, table := range []string{"events", "dead_letters", "memberships", "users", "organizations", "resync_runs", "revocations"} {
		if _, err := db.Exec(ctx, `DELETE FROM `+table+` WHERE source = $1`, source); err != nil {
			return fmt.Errorf("forgetting %s in %s: %w", source, table, err)
		}
	}
	return nil
}

// IsTransient reports whether err means Postgres could not take the work now, whatever the work:
// no connection, a connection lost, the server shutting down or out of resources, a serialization
// failure or deadlock, a lock not available, the caller's deadline. Retrying the same work later
// may succeed. A Postgres error of another class is Postgres refusing this work (a value, a
// constraint, a limit); an error that is neither is not classified as transient (the caller may
// check that Postgres answers).
func IsTransient(err error) bool {
	if err == nil {
		return false
	}
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) {
		var netErr net.Error
		var connectErr *pgconn.ConnectError
		return errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) || pgconn.Timeout(err) ||
			errors.As(err, &netErr) || errors.As(err, &connectErr) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
			pgconn.SafeToRetry(err)
	}
	switch pgErr.Code[:2] {
	case "08", // connection exception
		"40", // transaction rollback: serialization failure, deadlock
		"53", // insufficient resources
		"57", // operator intervention: shutdown, cancel
		"58": // system error
		return true
	}
	return pgErr.Code == "55P03" // lock not available
}

// IsPostgresError reports whether err is an answer of Postgres (it was reachable).
func IsPostgresError(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr)
}
