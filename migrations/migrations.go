// Package migrations holds idpsync's SQL migrations, applied in file-name order by
// `worker migrate` (internal/store.Migrate). River's own migrations are applied after them, in the
// same schema, through rivermigrate.
//
// A migration is never edited once released; change the schema with a new file.
package migrations

import "embed"

// FS holds the migration files, NNN_description.sql.
//
//go:embed *.sql
var FS embed.FS
