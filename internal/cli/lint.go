package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
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
that must be checked, and should not report on itself. tenantseal's own schema is always checked, against
what the product expects of it.

The app and owner roles are <prefix>_app and <prefix>_owner. Without --prefix they are the database's
own, as tenantseal.role_name tells them; a database without the tenantseal schema needs --prefix, and
--tenant-function if its policies call a verifying function of its own.

--format json writes a JSON array of {rule, severity, object, message, fix}, [] when clean; --format
sarif writes SARIF 2.1.0 for code scanning (--sarif-artifact attaches every result to a file of the
repository). --baseline FILE (a --format json report) accepts the findings it holds: only new ones are
reported and count. --fix prints the fix hints as an SQL script to review, never runs it.

--migration FILE applies FILE in a transaction, lints before and after, rolls back, and prints the
findings the change adds and removes, classified safe (no new error), breaking (the application loses
access, TS003, TS016) or dangerous (a new isolation error). --diff BEFORE.json AFTER.json classifies two
saved reports the same way, without a database.

The exit status is 1 when a finding is an error (with --migration or --diff: when the change is breaking
or dangerous), 0 when there are only warnings or none, 2 on a usage error.

A clean report means that the known mistakes are absent, not that the policies are correct: only
isolation tests against the real database prove that. Each rule's page is docs/lint/<rule>.md.

Rules:
%s`

func lintAbout() string {
	var b strings.Builder
	for _, r := range lint.Rules() {
		fmt.Fprintf(&b, "\t%s %-7s  %s\n", r.ID, r.Severity, r.Title)
	}
	return fmt.Sprintf(lintAboutText, b.String())
}

// lintFlags are what runLint parsed.
type lintFlags struct {
	format, prefix, baseline, migration, artifact string
	fix, diff                                     bool
	opts                                          lint.Options
}

func runLint(ctx context.Context, s *session, args []string) error {
	f := newFlags(s, "lint", "[--format text|json|sarif] [--prefix P] [--schema S ...] [--global-table schema.table ...] [--baseline FILE] [--migration FILE | --diff BEFORE.json AFTER.json] [flags]", lintAbout())
	conn := f.ownerConn()
	var lf lintFlags
	f.StringVar(&lf.format, "format", "text", "output: text (one finding per line, with a fix hint), json or sarif")
	f.StringVar(&lf.prefix, "prefix", "", "role name prefix: check <prefix>_app and <prefix>_owner (default: the database's own)")
	var schemas, globals listFlag
	f.Var(&schemas, "schema", "`name` of a schema to check; repeat, or separate with commas (default: every schema but the system schemas; tenantseal's own are always checked)")
	f.Var(&globals, "global-table", "`schema.table` of a table without a tenant column that every tenant shares, which the app role may read and write (rule TS015); repeat, or separate with commas")
	tenantColumn := f.String("tenant-column", lint.DefaultTenantColumn, "the column that makes a table a tenant table")
	tenantFunction := f.String("tenant-function", lint.DefaultTenantFunction, "the verifying function that policies must compare the tenant column with: schema.name or schema.name(argtypes)")
	registry := f.String("registry", "", "`schema.table` of the application's own tenant registry, keyed by the tenant id (rule TS019; tenantseal.tenants is always one)")
	f.StringVar(&lf.baseline, "baseline", "", "`file` of accepted findings (a --format json report): report and count only the others")
	f.StringVar(&lf.migration, "migration", "", "SQL `file` to apply in a transaction that is rolled back: report what it changes")
	f.BoolVar(&lf.diff, "diff", false, "compare two --format json reports given as arguments, BEFORE.json AFTER.json, without a database")
	f.BoolVar(&lf.fix, "fix", false, "print the fix hints as an SQL script to review (never applied)")
	f.StringVar(&lf.artifact, "sarif-artifact", "", "with --format sarif: `path` of the repository file every result is attached to (code scanning shows only results with one)")
	pos, err := f.parse(args)
	if err != nil {
		return err
	}
	if err := lf.check(f, pos, globals); err != nil {
		return err
	}
	if lf.diff {
		return lintDiff(s, lf, pos[0], pos[1])
	}
	if f.set("prefix") && strings.TrimSpace(lf.prefix) == "" {
		return usageErrorf("lint: --prefix must not be empty")
	}
	if strings.TrimSpace(*tenantColumn) == "" || strings.TrimSpace(*tenantFunction) == "" {
		return usageErrorf("lint: --tenant-column and --tenant-function must not be empty")
	}
	lf.opts = lint.Options{TenantColumn: *tenantColumn, TenantFunction: *tenantFunction, Schemas: schemas,
		GlobalTables: globals, Registry: *registry}
	var accepted *lint.Baseline
	if lf.baseline != "" {
		if accepted, err = readBaseline(lf.baseline); err != nil {
			return err
		}
	}
	var migration []byte
	if lf.migration != "" {
		if migration, err = os.ReadFile(lf.migration); err != nil {
			return usageErrorf("lint: --migration: %v", err)
		}
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
	// One snapshot for every catalog query, so that concurrent DDL cannot make the report inconsistent;
	// read-write only to apply a migration, which is rolled back.
	txOpts := pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}
	if migration != nil {
		txOpts = pgx.TxOptions{}
	}
	tx, err := c.BeginTx(ctx, txOpts)
	if err != nil {
		return err
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) // nothing to commit, a migration included

	roles, err := lintRoles(ctx, tx, lf.prefix)
	if err != nil {
		return err
	}
	lf.opts.AppRole, lf.opts.OwnerRole = roles.App, roles.Owner
	if migration != nil {
		d, err := lint.CheckMigration(ctx, tx, lf.opts, string(migration))
		if err != nil {
			return lintError(err)
		}
		return writeDiff(s, lf.format, d)
	}
	findings, err := lint.Run(ctx, tx, lf.opts)
	if err != nil {
		return lintError(err)
	}
	var old []lint.Finding
	if accepted != nil {
		findings, old = accepted.Filter(findings)
	}
	if err := writeFindings(s, lf, findings); err != nil {
		return err
	}
	if len(old) > 0 && lf.format == "text" && !lf.fix {
		fmt.Fprintf(s.stdout, "%d %s accepted by the baseline %s\n", len(old), pluralize(len(old), "finding"), lf.baseline)
	}
	if lint.HasErrors(findings) {
		return errReported // the report says why
	}
	return nil
}

// check validates the flags that need no database.
func (lf *lintFlags) check(f *flags, pos []string, globals listFlag) error {
	switch lf.format {
	case "text", "json", "sarif":
	default:
		return usageErrorf("lint: --format must be text, json or sarif, got %q", lf.format)
	}
	switch {
	case lf.diff && len(pos) != 2:
		return usageErrorf("lint: --diff takes two reports, BEFORE.json AFTER.json; got %d arguments", len(pos))
	case !lf.diff && len(pos) > 0:
		return usageErrorf("lint: unexpected argument %q", pos[0])
	case lf.diff && (lf.migration != "" || lf.baseline != "" || lf.fix):
		return usageErrorf("lint: --diff compares two reports: it takes no --migration, --baseline or --fix")
	case lf.migration != "" && (lf.baseline != "" || lf.fix):
		return usageErrorf("lint: --migration reports a change: it takes no --baseline or --fix")
	case (lf.diff || lf.migration != "") && lf.format == "sarif":
		return usageErrorf("lint: a change is written as text or json, not sarif")
	case lf.fix && lf.format != "text":
		return usageErrorf("lint: --fix writes an SQL script: it takes no --format")
	case lf.artifact != "" && lf.format != "sarif":
		return usageErrorf("lint: --sarif-artifact goes with --format sarif")
	case f.set("migration") && lf.migration == "", f.set("baseline") && lf.baseline == "":
		return usageErrorf("lint: --migration and --baseline need a file name")
	}
	for _, g := range globals {
		if sch, tbl, ok := strings.Cut(g, "."); !ok || sch == "" || tbl == "" {
			return usageErrorf("lint: --global-table %q: want schema.table, e.g. public.plans", g)
		}
	}
	return nil
}

// lintError turns an error of package lint into the CLI's: invalid options are usage errors.
func lintError(err error) error {
	if errors.Is(err, lint.ErrOptions) {
		// A role of --prefix, a --schema, the --tenant-column, the --tenant-function or the --registry
		// does not exist in this database.
		return usageErrorf("%v (see 'tenantseal lint -h')", err)
	}
	return ownerError(err)
}

func readBaseline(path string) (*lint.Baseline, error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, usageErrorf("lint: --baseline: %v", err)
	}
	defer fh.Close()
	b, err := lint.ReadBaseline(fh)
	if err != nil {
		return nil, usageErrorf("%v (want a 'tenantseal lint --format json' report)", err)
	}
	return b, nil
}

func writeFindings(s *session, lf lintFlags, fs []lint.Finding) error {
	switch {
	case lf.fix:
		return lint.WriteFixes(s.stdout, fs)
	case lf.format == "json":
		return lint.WriteJSON(s.stdout, fs)
	case lf.format == "sarif":
		return lint.WriteSARIF(s.stdout, fs, lint.SARIFOptions{Artifact: lf.artifact, Version: Version})
	}
	return lint.WriteText(s.stdout, fs)
}

func writeDiff(s *session, format string, d lint.Diff) error {
	var err error
	if format == "json" {
		err = lint.WriteDiffJSON(s.stdout, d)
	} else {
		err = lint.WriteDiffText(s.stdout, d)
	}
	if err != nil {
		return err
	}
	if d.Change != lint.ChangeSafe {
		return errReported
	}
	return nil
}

// lintDiff classifies the change between two saved reports.
func lintDiff(s *session, lf lintFlags, beforePath, afterPath string) error {
	var reports [2][]lint.Finding
	for i, path := range []string{beforePath, afterPath} {
		b, err := os.ReadFile(path)
		if err != nil {
			return usageErrorf("lint: --diff: %v", err)
		}
		if err := json.Unmarshal(b, &reports[i]); err != nil {
			return usageErrorf("lint: --diff: %s: %v (want a 'tenantseal lint --format json' report)", path, err)
		}
	}
	return writeDiff(s, lf.format, lint.Compare(reports[0], reports[1]))
}

func pluralize(n int, word string) string {
	if n == 1 {
		return word
	}
	return word + "s"
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
