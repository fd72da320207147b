package cli

import (
	"context"
	"errors"
	"os"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/tenantseal/tenantseal/adopt"
	"github.com/tenantseal/tenantseal/db"
)

var adoptCommand = command{
	name:    "adopt",
	summary: "write the migrations that put an existing schema under tenantseal",
	run:     runAdopt,
}

const adoptAbout = `
Reads the catalog and the data of an existing schema and writes a golang-migrate up and down file pair
into --dir, numbered after the highest version there, that puts the schema under tenantseal: tenant
columns NOT NULL (added and filled through a foreign key where a table has none), keys and indexes led
by the tenant column, foreign keys that pair the tenant columns, the registry of tenants adopted (each
tenant sees its own row; the owner creates tenants), every tenant table protected (forced row-level
security, one policy per command, DML for the app role), global tables readable. Each change is preceded by a comment with its reason; the down file restores the
catalog as it was. adopt only reads; apply the files with 'migrate' (or your own migration runner) as
the owner, after review.

The declaration (--declaration FILE, JSON) names what the catalog cannot tell:

	{"schemas": ["public"], "tenant_column": "company_id",
	 "tenant_columns": {"public.billing": "account_id"},
	 "registry": {"table": "public.companies", "key": "id", "name": "name"},
	 "global": ["public.plans"], "exclude": ["public.schema_migrations"]}

Flags override it: --schema, --tenant-column, --registry and --registry-name replace its values;
--table-tenant-column, --global-table and --exclude add to them. One-column primary keys become (tenant,
id): a duplicate id would tell a tenant that another has it. "keep_primary_keys": true keeps them, with
(tenant, id) beside them for the foreign keys, and lint then reports each (TS008). On the coordinator
of a Citus cluster, "citus": true also shards each tenant table by its tenant column, parents first,
and makes each global table a reference table (see the README's "Scaling out").

adopt refuses, writing nothing (exit status 2), what it cannot change safely: a nullable tenant column
that holds NULL, a foreign key that existing rows would violate once it pairs the tenant columns (a row
pointing at another tenant's row: the count and an example are reported), a table without a path to a
tenant that is neither global nor excluded, a tenant column that is not uuid, bigint, integer, text or
varchar. --dry-run prints the plan instead of writing files.
`

func runAdopt(ctx context.Context, s *session, args []string) error {
	f := newFlags(s, "adopt", "[--declaration FILE] (--dir DIR | --dry-run) [--schema S] [--tenant-column C] [--registry schema.table(key)] [flags]", adoptAbout)
	conn := f.ownerConn()
	declPath := f.String("declaration", "", "JSON `file` of the declaration")
	dir := f.String("dir", "", "`directory` of the application's migration files to write into")
	name := f.String("name", adopt.DefaultName, "name part of the files: NNNN_`name`.up.sql")
	dryRun := f.Bool("dry-run", false, "print the plan, each change with its reason; write no files")
	prefix := f.String("prefix", "", "role name prefix: grant to <prefix>_app (default: the database's own)")
	tenantColumn := f.String("tenant-column", "", "the column that names a row's tenant (default "+adopt.DefaultTenantColumn+")")
	registry := f.String("registry", "", "`schema.table(key)` of the application's tenant registry, e.g. public.companies(id)")
	registryName := f.String("registry-name", "", "the registry's `column` of tenant names")
	var schemas, overrides, globals, excludes listFlag
	f.Var(&schemas, "schema", "`name` of a schema to adopt; repeat, or separate with commas (default public)")
	f.Var(&overrides, "table-tenant-column", "`schema.table=column`: the tenant column of one table; repeat")
	f.Var(&globals, "global-table", "`schema.table` that every tenant reads, with no tenant column; repeat")
	f.Var(&excludes, "exclude", "`schema.table` to leave as it is; repeat")
	pos, err := f.parse(args)
	if err != nil {
		return err
	}
	switch {
	case len(pos) > 0:
		return usageErrorf("adopt: unexpected argument %q", pos[0])
	case *dir == "" && !*dryRun:
		return usageErrorf("adopt: --dir is required (the directory of the migration files), or --dry-run")
	case *dir != "" && *dryRun:
		return usageErrorf("adopt: --dry-run writes no files: it takes no --dir")
	case f.set("prefix") && strings.TrimSpace(*prefix) == "":
		return usageErrorf("adopt: --prefix must not be empty")
	}

	var decl adopt.Declaration
	if *declPath != "" {
		fh, err := os.Open(*declPath)
		if err != nil {
			return usageErrorf("adopt: --declaration: %v", err)
		}
		decl, err = adopt.ParseDeclaration(fh)
		fh.Close()
		if err != nil {
			return usageErrorf("%s: %v", *declPath, err)
		}
	}
	if len(schemas) > 0 {
		decl.Schemas = schemas
	}
	if *tenantColumn != "" {
		decl.TenantColumn = *tenantColumn
	}
	if *registry != "" {
		r, err := adopt.ParseRegistry(*registry)
		if err != nil {
			return usageErrorf("adopt: --registry: %v", err)
		}
		decl.Registry = &r
	}
	if *registryName != "" {
		if decl.Registry == nil {
			return usageErrorf("adopt: --registry-name needs a registry (--registry or the declaration's)")
		}
		decl.Registry.Name = *registryName
	}
	for _, o := range overrides {
		tbl, col, ok := strings.Cut(o, "=")
		if !ok || tbl == "" || col == "" {
			return usageErrorf("adopt: --table-tenant-column %q: want schema.table=column", o)
		}
		if decl.TenantColumns == nil {
			decl.TenantColumns = map[string]string{}
		}
		decl.TenantColumns[tbl] = col
	}
	decl.Global = append(decl.Global, globals...)
	decl.Exclude = append(decl.Exclude, excludes...)

	dsn, err := conn.ownerDSN()
	if err != nil {
		return err
	}
	c, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return err
	}
	defer c.Close(context.WithoutCancel(ctx))
	// One snapshot of the catalog and the data it checks.
	tx, err := c.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return err
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	opts := adopt.Options{Declaration: decl}
	if *prefix != "" {
		r := db.Roles(*prefix)
		opts.AppRole, opts.OwnerRole, opts.ProbeRole = r.App, r.Owner, r.Probe
	}
	plan, err := adopt.Generate(ctx, tx, opts)
	var re *adopt.RefusalError
	switch {
	case errors.As(err, &re):
		return usageErrorf("%v; nothing written", err)
	case errors.Is(err, adopt.ErrDeclaration), errors.Is(err, adopt.ErrOptions):
		return usageErrorf("%v (see 'tenantseal adopt -h')", err)
	case err != nil:
		return ownerError(err)
	}
	if *dryRun {
		return plan.WriteText(s.stdout)
	}
	if len(plan.Changes) == 0 {
		s.printf("nothing to change: schema %s is under tenantseal already; no files written\n", strings.Join(plan.Schemas, ", "))
		return nil
	}
	files, err := plan.Write(*dir, *name)
	if err != nil {
		return err
	}
	s.printf("wrote %s and %s: %d changes\n", files.Up, files.Down, len(plan.Changes))
	for _, n := range plan.Notes {
		s.info("left as is: %s\n", n)
	}
	s.info("review them, then apply them as the owner, e.g. migrate -path %s -database 'pgx5://...' up\n", *dir)
	return nil
}
