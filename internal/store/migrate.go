package store

import (
	"context"
	"fmt"
	"io/fs"
	"log/slog"
	"slices"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivermigrate"

	"github.com/idpsync/idpsync/migrations"
)

// Migration is one applied migration.
type Migration struct {
	Line    string // "idpsync" or "river"
	Version int
	Name    string
}

// Migrate creates schema if needed and applies, in order, idpsync's pending migrations and then
// River's. Concurrent migrators (several workers starting at once) wait for each other on an
// advisory lock; running it again when everything is applied is a no-op that returns nothing.
func Migrate(ctx context.Context, pool *pgxpool.Pool, schema string, logger *slog.Logger) ([]Migration, error) {
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return nil, fmt.Errorf("acquiring a connection: %w", err)
	}
	defer conn.Release()

	lockKey := "idpsync.migrate." + schema
	if _, err := conn.Exec(ctx, `SELECT pg_advisory_lock(hashtext($1))`, lockKey); err != nil {
		return nil, fmt.Errorf("taking the migration lock: %w", err)
	}
	defer func() {
		// A fresh context: the lock must be released even when ctx is done.
		_, _ = conn.Exec(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock(hashtext($1))`, lockKey)
	}()

	q := quoteIdent(schema)
	if _, err := conn.Exec(ctx, `CREATE SCHEMA IF NOT EXISTS `+q); err != nil {
		return nil, fmt.Errorf("creating schema %s: %w", schema, err)
	}
	if _, err := conn.Exec(ctx, `CREATE TABLE IF NOT EXISTS `+q+`.schema_migrations (
		version    integer PRIMARY KEY,
		name       text        NOT NULL,
		applied_at timestamptz NOT NULL DEFAULT now())`); err != nil {
		return nil, fmt.Errorf("creating schema_migrations: %w", err)
	}

	files, err := migrationFiles()
	if err != nil {
		return nil, err
	}
	var applied []Migration
	for _, f := range files {
		var done bool
		if err := conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM `+q+`.schema_migrations WHERE version = $1)`, f.Version).Scan(&done); err != nil {
			return nil, fmt.Errorf("reading schema_migrations: %w", err)
		}
		if done {
			continue
		}
		err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, `SELECT set_config('search_path', $1, true)`, schema); err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, f.sql); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, `INSERT INTO `+q+`.schema_migrations (version, name) VALUES ($1, $2)`, f.Version, f.Name)
			return err
		})
		if err != nil {
			return nil, fmt.Errorf("applying migration %03d_%s: %w", f.Version, f.Name, err)
		}
		logger.Info("migration applied", "line", "idpsync", "version", f.Version, "name", f.Name)
		applied = append(applied, f.Migration)
	}

	migrator, err := rivermigrate.New(riverpgxv5.New(pool), &rivermigrate.Config{Schema: schema, Logger: logger})
	if err != nil {
		return nil, fmt.Errorf("preparing river migrations: %w", err)
	}
	res, err := migrator.Migrate(ctx, rivermigrate.DirectionUp, nil)
	if err != nil {
		return nil, fmt.Errorf("applying river migrations: %w", err)
	}
	for _, v := range res.Versions {
		logger.Info("migration applied", "line", "river", "version", v.Version, "name", v.Name)
		applied = append(applied, Migration{Line: "river", Version: v.Version, Name: v.Name})
	}
	return applied, nil
}

type migrationFile struct {
	Migration
	sql string
}

func migrationFiles() ([]migrationFile, error) {
	entries, err := fs.ReadDir(migrations.FS, ".")
	if err != nil {
		return nil, err
	}
	var files []migrationFile
	for _, e := range entries {
		name := e.Name()
		if !strings.HasSuffix(name, ".sql") {
			continue
		}
		num, rest, ok := strings.Cut(strings.TrimSuffix(name, ".sql"), "_")
		version, err := strconv.Atoi(num)
		if !ok || err != nil {
			return nil, fmt.Errorf("migration %s is not named NNN_description.sql", name)
		}
		body, err := fs.ReadFile(migrations.FS, name)
		if err != nil {
			return nil, err
		}
		files = append(files, migrationFile{Migration{Line: "idpsync", Version: version, Name: rest}, string(body)})
	}
	slices.SortFunc(files, func(a, b migrationFile) int { return a.Version - b.Version })
	for i := 1; i < len(files); i++ {
		if files[i].Version == files[i-1].Version {
			return nil, fmt.Errorf("two migrations have version %d", files[i].Version)
		}
	}
	return files, nil
}
