// Package migrations holds tenantseal's schema as golang-migrate SQL files and a runner for them. The
// roles and the database they need come first, from package bootstrap.
//
// # Files
//
// [FS] returns the embedded NNNN_name.up.sql / .down.sql files. They run as the owner role, with the
// stock migrate CLI too; the role names they grant to come from the database setting
// tenantseal.role_prefix, which bootstrap.CreateDatabase stores.
//
// The schema is the product's only: the tenantseal schema (context keys, keysets, the registry of
// encrypted columns, the audit log) and tenantseal.tenants. Migration 0002 is empty since the example tables
// it used to create moved to examples/reference; migration 0005 removes them from databases that got
// them, when they hold no row (otherwise it keeps them and raises a WARNING saying why; see
// Options.OnNotice).
//
// # Running migrations
//
//	mg, err := migrations.New(ctx, ownerDSN, migrations.Options{})
//	if err != nil { ... }
//	defer mg.Close()
//	err = mg.Up(ctx)
//
// A failing migration returns a [*MigrationError] naming its file, the failing statement and its line.
// A file without transaction control statements runs as one transaction: nothing of it stays applied and
// the version is set back, so migrating again after a fix completes; one the server rolled back to
// resolve a deadlock or a serialization conflict with another session (an audit writer reading the
// tables a revert drops, say) is run again, up to four times, before its error is returned. Any other file that fails part-way
// leaves the database dirty: the next run returns a [*DirtyError] naming the version and the
// `tenantseal migrate force` command that clears it after repair.
//
// # Reverts that destroy data
//
// Reverting 0001, 0003, 0004 or 0012 destroys data ([Loss]: the tenants, every tenant's keysets, the
// audit log, the tenants' own KEKs). While that data is not empty, Down, Goto and Steps refuse with a
// [*LossError], running nothing, unless Options.ConfirmLoss names every loss; a confirmed revert is
// recorded through Options.Recorder first (and waits until the audit log holds the record), and
// Options.AuditArchive receives the audit log before 0004 drops it. Every change of version is recorded.
// [Export] writes the migration files for the stock migrate CLI.
//
// # Other sets of migrations
//
// Options.Source and Options.Table run another set of golang-migrate files with the same machinery,
// recorded in a migrations table of its own: an application's, or the examples' (reference.Migrate).
//
// # Protecting your own tables
//
// Call tenantseal.protect_table('schema.table') in a migration, as the owner, on a table with a
// tenant_id uuid column: it enables and forces row-level security, creates one policy per command for the
// app role and the read-only elevation policy, and grants DML to the app role. Register each encrypted
// column in tenantseal.encrypted_columns, as examples/reference/migrations does.
package migrations
