package cli

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/tenantseal/tenantseal/db"
	"github.com/tenantseal/tenantseal/lint"
)

var lintCommand = command{
	name:    "lint",
	summary: "check the live schema for mistakes that let one tenant reach another's rows",
	run:     runLint,
}

const lintAboutText = `
Reads the database's system catalog and reports every table, policy, key, view, function or role grant
that would let one tenant reach another's rows (errors) or make the policies slow (warnings). It only
reads, in one read-only snapshot. Connect as the owner or a superuser: the app role cannot see everything
that must be checked, and should not report on itself.

The app and owner roles are <prefix>_app and <prefix>_owner. Without --prefix they are the database's
own, as tenantseal.role_name tells them; a database without the tenantseal schema needs --prefix, and
--tenant-function if its policies call a verifying function of its own.

--format json writes a JSON array of {rule, severity, object, message, fix}, [] when clean. The exit
status is 1 when a finding is an error, 0 when there are only warnings or none, 2 on a usage error.

A clean report means that the known mistakes are absent, not that the policies are correct: only
isolation tests against the real database prove that.

Rules:
%s`

func lintAbout() string {
	var b strings.Builder
	for _, r := range lint.Rules() {
		fmt.Fprintf(&b, "\t%s %-7s  %s\n", r.ID, r.Severity, r.Title)
	}
	return fmt.Sprintf(lintAboutText, b.String())
}

func runLint(ctx context.Context, s *session, args []string) error {
	f := newFlags(s, "lint", "[--format text|json] [--prefix P] [--schema S ...] [--global-table schema.table ...] [flags]", lintAbout())
	conn := f.ownerConn()
	format := f.String("format", "text", "output: text (one finding per line, with a fix hint) or json")
	prefix := f.String("prefix", "", "role name prefix: check <prefix>_app and <prefix>_owner (default: the database's own)")
	var schemas, globals listFlag
	f.Var(&schemas, "schema", "`name` of a schema to check; repeat, or separate with commas (default: every schema but the system schemas)")
	f.Var(&globals, "global-table", "`schema.table` of a table without a tenant column that the app role may write (rule TS015); repeat, or separate with commas")
	tenantColumn := f.String("tenant-column", lint.DefaultTenantColumn, "the column that makes a table a tenant table")
	tenantFunction := f.String("tenant-function", lint.DefaultTenantFunction, "the verifying function that policies must compare the tenant column with: schema.name or schema.name(argtypes)")
	pos, err := f.parse(args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usageErrorf("lint: unexpected argument %q", pos[0])
	}
	if *format != "text" && *format != "json" {
		return usageErrorf("lint: --format must be text or json, got %q", *format)
	}
	for _, g := range globals {
		if sch, tbl, ok := strings.Cut(g, "."); !ok || sch == "" || tbl == "" {
			return usageErrorf("lint: --global-table %q: want schema.table, e.g. public.plans", g)
		}
	}
	if f.set("prefix") && strings.TrimSpace(*prefix) == "" {
		return usageErrorf("lint: --prefix must not be empty")
	}
	if strings.TrimSpace(*tenantColumn) == "" || strings.TrimSpace(*tenantFunction) == "" {
		return usageErrorf("lint: --tenant-column and --tenant-function must not be empty")
	}
	dsn, err := conn.ownerDSN()
	if err != nil {
		return err
	}

	c, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return err
	}
	defer c.Close(context.WithoutCancel(ctx))
	// One snapshot for every catalog query, so that concurrent DDL cannot make the report inconsistent.
	tx, err := c.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return err
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) // read-only: nothing to commit

	roles, err := lintRoles(ctx, tx, *prefix)
	if err != nil {
		return err
	}
	findings, err := lint.Run(ctx, tx, lint.Options{
		AppRole:        roles.App,
		OwnerRole:      roles.Owner,
		TenantColumn:   *tenantColumn,
		TenantFunction: *tenantFunction,
		Schemas:        schemas,
		GlobalTables:   globals,
	})
	if errors.Is(err, lint.ErrOptions) {
		// A role of --prefix or the --tenant-function does not exist in this database.
		return usageErrorf("%v (see 'tenantseal lint -h')", err)
	}
	if err != nil {
		return ownerError(err)
	}
	if *format == "json" {
		err = lint.WriteJSON(s.stdout, findings)
	} else {
		err = lint.WriteText(s.stdout, findings)
	}
	if err != nil {
		return err
	}
	if lint.HasErrors(findings) {
		return errReported // the report says why
	}
	return nil
}

// lintRoles returns the roles of prefix, or without one the database's own, as tenantseal.role_name
// tells them (from the database's tenantseal.role_prefix setting, else the connected owner's name).
func lintRoles(ctx context.Context, tx pgx.Tx, prefix string) (db.RoleNames, error) {
	if prefix != "" {
		return db.Roles(prefix), nil
	}
	var migrated bool
	if err := tx.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = 'tenantseal')").Scan(&migrated); err != nil {
		return db.RoleNames{}, err
	}
	if !migrated {
		return db.RoleNames{}, usageErrorf("lint: the database has no tenantseal schema to tell its role names: pass --prefix P to check the roles P_app and P_owner")
	}
	var r db.RoleNames
	err := tx.QueryRow(ctx, "SELECT tenantseal.role_name('app'), tenantseal.role_name('owner')").Scan(&r.App, &r.Owner)
	var pe *pgconn.PgError
	if errors.As(err, &pe) && pe.Code == "P0001" {
		// "cannot tell the role prefix" (a superuser on a database without the setting), or a missing role.
		return db.RoleNames{}, usageErrorf("lint: the database cannot tell its role names (%s): pass --prefix", unprefixed(pe.Message))
	}
	if err != nil {
		return db.RoleNames{}, fmt.Errorf("lint: role names: %w", ownerError(err))
	}
	return r, nil
}
