// Package adopt writes the migrations that put an existing schema under tenantseal: it reads the live
// catalog and data of the schema and a small [Declaration], and returns a [Plan] whose up and down files
// the stock golang-migrate CLI applies. The `tenantseal adopt` command does the same from the command
// line.
//
// # Usage
//
// Connect as the owner of the tables, in one REPEATABLE READ snapshot, and write the files next to the
// application's own migrations:
//
//	tx, err := conn.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
//	...
//	plan, err := adopt.Generate(ctx, tx, adopt.Options{Declaration: adopt.Declaration{
//		TenantColumn: "company_id",
//		Registry:     &adopt.Registry{Table: "public.companies", Key: "id", Name: "name"},
//		Global:       []string{"public.plans"},
//		Exclude:      []string{"public.schema_migrations", "public.ar_internal_metadata"},
//	}})
//	var refused *adopt.RefusalError
//	if errors.As(err, &refused) {
//		// Each refusal names the table, why, and what to do; nothing was generated.
//	}
//	files, err := plan.Write("db/migrate", "") // db/migrate/0042_tenantseal_adopt.{up,down}.sql
//
// [Plan.WriteText] prints the plan instead, each change with its reason (`tenantseal adopt --dry-run`).
//
// # A worked example
//
// A Rails-style schema: a registry of companies, tenant tables that carry company_id without foreign
// keys to it, a join table without a tenant column, a unique index across all tenants:
//
//	CREATE TABLE companies (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, name text UNIQUE);
//	CREATE TABLE users (id bigserial PRIMARY KEY, company_id bigint, email text NOT NULL);
//	CREATE UNIQUE INDEX users_email ON users (email);
//	CREATE TABLE projects (id bigserial PRIMARY KEY, company_id bigint NOT NULL, owner_id bigint REFERENCES users);
//	CREATE TABLE memberships (project_id bigint NOT NULL REFERENCES projects, user_id bigint NOT NULL REFERENCES users,
//	    PRIMARY KEY (project_id, user_id));
//
// The up file then makes, each after a comment with its reason:
//
//	-- memberships gets company_id through its foreign key to projects
//	ALTER TABLE "public"."memberships" ADD COLUMN "company_id" bigint;
//	UPDATE "public"."memberships" c SET "company_id" = p."company_id" FROM "public"."projects" p WHERE p."id" = c."project_id";
//	ALTER TABLE "public"."memberships" ALTER COLUMN "company_id" SET NOT NULL;
//	-- users.company_id holds no NULL: NOT NULL
//	ALTER TABLE "public"."users" ALTER COLUMN "company_id" SET NOT NULL;
//	-- keys per tenant: primary keys become (company_id, id), unique indexes unique per tenant
//	ALTER TABLE "public"."users" DROP CONSTRAINT "users_pkey";
//	ALTER TABLE "public"."users" ADD CONSTRAINT "users_pkey" PRIMARY KEY ("company_id", id);
//	CREATE UNIQUE INDEX users_email ON public.users USING btree ("company_id", email);
//	ALTER TABLE "public"."memberships" ADD CONSTRAINT "memberships_pkey" PRIMARY KEY ("company_id", project_id, user_id);
//	-- foreign keys that pair the tenant columns, so that no row points at another tenant's
//	ALTER TABLE "public"."projects" ADD CONSTRAINT "projects_owner_id_fkey" FOREIGN KEY ("company_id", "owner_id")
//	    REFERENCES "public"."users" ("company_id", "id") ON UPDATE NO ACTION ON DELETE NO ACTION;
//	-- indexes led by company_id, for the policies and the foreign keys' lookups
//	CREATE INDEX "memberships_company_id_user_id_idx" ON "public"."memberships" ("company_id", "user_id");
//	-- the registry, and each tenant table under forced row-level security
//	SELECT tenantseal.adopt_registry('"public"."companies"'::regclass, key_column => 'id', name_column => 'name');
//	SELECT tenantseal.protect_table('"public"."companies"'::regclass, tenant_column => 'id');
//	REVOKE INSERT ON "public"."companies" FROM "tenantseal_app";
//	SELECT tenantseal.protect_table('"public"."users"'::regclass, tenant_column => 'company_id');
//	-- the app role inserts through serial columns' sequences
//	GRANT USAGE ON SEQUENCE public.users_id_seq TO "tenantseal_app";
//
// The registry is protected like a tenant table, on its key: each tenant sees and changes its own row.
// Tenants are created by the owner, through a policy of its own (as tenantseal administers
// tenantseal.tenants), and registered with tenantseal by the trigger adopt_registry installs; the app
// role cannot insert one. An integer tenant column, where the registry's keys are bigint, is widened to
// bigint. The app role gets USAGE on the schema where it lacks it.
//
// The down file undoes each change in reverse order, restoring the original definitions (as
// pg_get_constraintdef and pg_get_indexdef print them), and after tenantseal.unprotect_table and
// tenantseal.release_registry what the catalog held before: the row-level security flags, the
// privileges of the app role, the probe role and PUBLIC, the statistics targets. The tenants the
// registry registered stay in tenantseal.tenants. Two differences PostgreSQL leaves: a dropped column
// keeps its slot in pg_attribute, and a table whose privileges were never granted (relacl NULL) has them
// spelled out afterwards, with the same meaning.
//
// # What adopt refuses
//
// Generate returns a [*RefusalError], and nothing, when a change would fail on the existing rows or
// leave a tenant's rows unprotected: a nullable tenant column that holds NULL, a foreign key that rows
// violate once it pairs the tenant columns (a row that points at another tenant's row: the count and an
// example), a table that gets its tenant column through a foreign key that is NULL in some rows, a table
// with no tenant column and no foreign key path to a tenant table that is neither [Declaration.Global]
// nor [Declaration.Exclude], a tenant column that is not uuid, bigint, integer, text or varchar (or of
// another kind than the registry's key), and permissive policies of the table's own, which PostgreSQL
// would OR with the tenant policies. What it can leave as it is without harm (exclusion constraints,
// GIN and GiST indexes without the tenant column, foreign keys that reference the registry by another
// column) is listed in [Plan.Notes] and as comments at the end of the up file.
//
// # Applying
//
// The statements run in one transaction when golang-migrate applies the file. Indexes are built with
// CREATE INDEX, which blocks writes to the table while it runs; on a large table, build the indexes the
// plan adds CONCURRENTLY by hand first and run adopt again: it adds no index that one already serves. A table whose
// tenant column adopt added needs the application to set that column on insert.
package adopt
