// Package reference is tenantseal's example domain, customers, invoices and documents, as an
// application would write it on top of the library: its own schema (golang-migrate files) and typed
// repositories over [repo.Table]. The demo, the benchmarks and many tests use it. It is not product
// API: copy what fits into your own application instead of importing it.
//
// # Schema
//
// [Migrations] returns the files; they create public.customers, public.invoices and public.documents
// (every key led by tenant_id, composite (tenant_id, id) foreign keys, forced row-level security through
// tenantseal.protect_table) and register their encrypted columns in tenantseal.encrypted_columns. They
// need tenantseal's own migrations first, run as the owner role and are recorded in their own table,
// [MigrationsTable], so that they come and go without touching tenantseal's own:
//
//	err := reference.Migrate(ctx, ownerDSN)
//
// or, with the stock migrate CLI:
//
//	migrate -source file://examples/reference/migrations \
//		-database 'pgx5://<owner>@host/db?x-migrations-table="tenantseal_migrations"."reference"&x-migrations-table-quoted=1' up
//
// A database migrated by tenantseal before these tables moved here may still have them (migration 0005
// keeps them when they hold rows); to manage them with these files, mark them applied with the same
// command and "force 1" instead of "up".
//
// # Repositories
//
// [NewCustomers], [NewInvoices] and [NewDocuments] describe the tables with `ts` tags. They show the
// patterns an application needs beyond [repo.Table]: a lookup by an encrypted field's blind index
// ([Customers.FindByEmail]), a join read in one statement through [repo.Table.Columns] and
// [repo.Table.Dest] ([Invoices.GetWithCustomer]), and a bounded upload of an encrypted body
// ([Documents.Upload]).
package reference
