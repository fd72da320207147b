package reference

import (
	"context"
	"embed"
	"io/fs"

	"github.com/tenantseal/tenantseal/migrations"
)

//go:embed migrations/*.sql
var files embed.FS

// MigrationsTable is the golang-migrate table, in schema migrations.Schema, that records the reference
// migrations apart from tenantseal's own (x-migrations-table of the stock migrate CLI, quoted with the
// schema).
const MigrationsTable = "reference"

// Migrations returns the reference domain's golang-migrate files (NNNN_name.up.sql, .down.sql).
func Migrations() fs.FS {
	sub, err := fs.Sub(files, "migrations")
	if err != nil {
		panic(err) // the embedded directory is fixed at build time
	}
	return sub
}

// NewMigrator returns a [migrations.Migrator] over the reference migrations of the database that
// ownerDSN names, recorded in [MigrationsTable]. Connect as the owner role. Close it when done.
func NewMigrator(ctx context.Context, ownerDSN string, opts migrations.Options) (*migrations.Migrator, error) {
	opts.Source, opts.Table = Migrations(), MigrationsTable
	return migrations.New(ctx, ownerDSN, opts)
}

// Migrate applies every pending reference migration to the database that ownerDSN names, as the owner
// role. tenantseal's own migrations must be applied first: the tables use its tenant function,
// protect_table and registry of encrypted columns.
func Migrate(ctx context.Context, ownerDSN string) error {
	mg, err := NewMigrator(ctx, ownerDSN, migrations.Options{})
	if err != nil {
		return err
	}
	defer mg.Close()
	return mg.Up(ctx)
}
