// Package migrations holds tenantseal's schema as golang-migrate SQL files, a runner for them, and the
// bootstrap that creates the roles and the database.
//
// # Files
//
// [FS] returns the embedded NNNN_name.up.sql / .down.sql files. They run as the owner role, with the
// stock migrate CLI too; the role names they grant to come from the database setting
// tenantseal.role_prefix, which [Bootstrap] stores.
//
// # Bootstrap
//
// [Bootstrap] runs once as a superuser: it creates the owner, app and auditor roles (prefix
// configurable, so deployments can share a cluster), the database owned by the owner, applies the
// migrations as the owner and installs the key that signs tenant contexts. It is idempotent.
//
// # Running migrations
//
//	mg, err := migrations.New(ctx, ownerDSN, migrations.Options{})
//	if err != nil { ... }
//	defer mg.Close()
//	err = mg.Up(ctx)
//
// A migration that fails part-way leaves the database dirty: [Migrator.Up] returns a [*DirtyError]
// naming the version and the `tenantseal migrate force` command that clears it after repair.
//
// # Protecting your own tables
//
// Call tenantseal.protect_table('schema.table') in a migration, as the owner, on a table with a
// tenant_id uuid column: it enables and forces row-level security, creates one policy per command for the
// app role and the read-only elevation policy, and grants DML to the app role.
package migrations
