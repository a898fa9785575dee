// Package storetest gives tests a real, migrated Postgres schema of their own.
//
// Tests connect to TEST_DATABASE_URL, by default postgres://postgres@127.0.0.1:5432/test. Each call
// to NewSchema creates a fresh schema with idpsync's and River's migrations applied, and drops it
// when the test ends, so tests run in parallel without seeing each other's rows.
package storetest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"io"
	"log/slog"
	"os"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/idpsync/idpsync/internal/store"
)

// DatabaseURLDefault is the database tests use when TEST_DATABASE_URL is unset.
const DatabaseURLDefault = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"

// DatabaseURL returns the database tests run against.
func DatabaseURL() string {
	if u := os.Getenv("TEST_DATABASE_URL"); u != "" {
		return u
	}
	return DatabaseURLDefault
}

// NewSchema creates a migrated schema for t and returns a pool whose search_path is that schema.
func NewSchema(t testing.TB) (*pgxpool.Pool, string) {
	t.Helper()
	ctx := context.Background()
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	schema := "t_" + hex.EncodeToString(b)

	pool, err := store.Open(ctx, DatabaseURL(), schema, 10)
	if err != nil {
		t.Fatalf("tests need Postgres (TEST_DATABASE_URL, default %s): %v", DatabaseURLDefault, err)
	}
	t.Cleanup(func() {
		_, err := pool.Exec(context.Background(), `DROP SCHEMA IF EXISTS `+schema+` CASCADE`)
		pool.Close()
		if err != nil {
			t.Errorf("dropping test schema %s: %v", schema, err)
		}
	})
	if _, err := store.Migrate(ctx, pool, schema, slog.New(slog.NewTextHandler(io.Discard, nil))); err != nil {
		t.Fatalf("migrating test schema: %v", err)
	}
	return pool, schema
}
