package adopt_test

import (
	"context"
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/golang-migrate/migrate/v4"
	pgxmigrate "github.com/golang-migrate/migrate/v4/database/pgx/v5"
	_ "github.com/golang-migrate/migrate/v4/source/file"
	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/tenantseal/tenantseal"
	"github.com/tenantseal/tenantseal/adopt"
	"github.com/tenantseal/tenantseal/internal/pgtest"
	"github.com/tenantseal/tenantseal/lint"
)

// mustMigrator returns golang-migrate, as the stock CLI runs it, over the files in dir, recording its
// version in a table of its own so that tenantseal's is untouched.
func mustMigrator(t testing.TB, ownerDSN, dir string) *migrate.Migrate {
	t.Helper()
	cfg, err := pgx.ParseConfig(ownerDSN)
	if err != nil {
		t.Fatal(err)
	}
	sqlDB := stdlib.OpenDB(*cfg)
	drv, err := pgxmigrate.WithInstance(sqlDB, &pgxmigrate.Config{MigrationsTable: "adopt_migrations"})
	if err != nil {
		sqlDB.Close()
		t.Fatal(err)
	}
	m, err := migrate.NewWithDatabaseInstance("file://"+filepath.ToSlash(dir), "pgx5", drv)
	if err != nil {
		drv.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

// TestAdoptEndToEnd adopts shopSchema: the generated up file, applied with golang-migrate, leaves a
// schema that lint finds no error in and that keeps the companies apart for the app role; the down file
// restores the catalog exactly.
func TestAdoptEndToEnd(t *testing.T) {
	t.Parallel()
	d, c := mustDatabase(t, shopSchema)
	ctx := pgtest.Context(t)
	before := catalogDump(t, c, "shop")

	tx, err := c.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		t.Fatal(err)
	}
	p, err := adopt.Generate(ctx, tx, adopt.Options{Declaration: shopDeclaration()})
	tx.Rollback(ctx)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	files, err := p.Write(dir, "")
	if err != nil {
		t.Fatal(err)
	}
	m := mustMigrator(t, d.OwnerDSN, dir)
	if err := m.Up(); err != nil {
		t.Fatalf("migrate up %s: %v", files.Up, err)
	}
	if diff := cmp.Diff(before, catalogDump(t, c, "shop")); diff == "" {
		t.Fatal("the up file changed nothing in the catalog")
	}

	findings, err := lint.Run(ctx, c, lint.Options{AppRole: d.Roles.App, OwnerRole: d.Roles.Owner, TenantColumn: "company_id",
		Schemas: []string{"shop"}, GlobalTables: []string{"shop.plans"}, Registry: "shop.companies"})
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range findings {
		switch {
		case f.Severity != lint.SeverityError:
			t.Logf("lint: %s %s %s: %s", f.Rule, f.Severity, f.Object, f.Message)
		default:
			t.Errorf("lint error on the adopted schema: %s %s: %s", f.Rule, f.Object, f.Message)
		}
	}

	// Run again on the adopted schema, adopt has nothing to change.
	if again := mustGenerate(t, c, shopDeclaration()); len(again.Changes) != 0 {
		t.Errorf("adopt on the adopted schema: got changes %v, want none", kinds(again))
	}

	// The app role sees and changes its own company's rows only.
	pool := d.Pool(t)
	as := func(company int64) context.Context {
		return tenantseal.WithPrincipal(ctx, tenantseal.Principal{Tenant: tenantseal.TenantIDFromInt(company), Subject: "user"})
	}
	for _, tc := range []struct {
		company int64
		sql     string
		want    []string
	}{
		{1, "SELECT name FROM shop.companies", []string{"acme"}},
		{2, "SELECT email FROM shop.users ORDER BY 1", []string{"b@globex.test", "c@globex.test"}},
		{1, "SELECT slug FROM shop.projects", []string{"rocket"}},
		{2, "SELECT title FROM shop.tasks", []string{"paint"}},
		{1, "SELECT body FROM shop.comments", []string{"go"}},
		{2, "SELECT user_id::text FROM shop.project_members ORDER BY 1", []string{"2", "3"}},
		{1, "SELECT plan_id::text FROM shop.billing", []string{"1"}},
		{2, "SELECT name FROM shop.plans", []string{"basic"}},
	} {
		rows, err := pool.Query(as(tc.company), tc.sql)
		if err != nil {
			t.Errorf("company %d: %s: %v", tc.company, tc.sql, err)
			continue
		}
		got, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("company %d: %s: got %q, %v; want %q", tc.company, tc.sql, got, err, tc.want)
		}
	}
	for _, tc := range []struct {
		sql, code string
	}{
		{"INSERT INTO shop.users (company_id, email) VALUES (2, 'x@acme.test')", "42501"},                // another tenant's row
		{"INSERT INTO shop.tasks (company_id, project_id, title) VALUES (1, 2, 'steal')", "23503"},       // a reference to another tenant's project
		{"INSERT INTO shop.comments (company_id, task_id, body) VALUES (1, 2, 'x')", "23503"},            // the backfilled table too
		{"INSERT INTO shop.project_members (company_id, project_id, user_id) VALUES (1, 1, 2)", "23503"}, // and the join table
		{"INSERT INTO shop.plans (id, name) VALUES (2, 'free')", "42501"},                                // a global table is read-only
		{"UPDATE shop.companies SET id = 2 WHERE id = 1", "428C9"},                                       // GENERATED ALWAYS
	} {
		_, err := pool.Exec(as(1), tc.sql)
		var pe *pgconn.PgError
		if !errors.As(err, &pe) || pe.Code != tc.code {
			t.Errorf("company 1: %s: got %v, want SQLSTATE %s", tc.sql, err, tc.code)
		}
	}
	if _, err := pool.Exec(as(1), "INSERT INTO shop.users (company_id, email) VALUES (1, 'new@acme.test')"); err != nil {
		t.Errorf("company 1 inserts its own user (through the serial's sequence): %v", err)
	}
	if tag, err := pool.Exec(as(1), "UPDATE shop.users SET email = upper(email)"); err != nil || tag.RowsAffected() != 2 {
		t.Errorf("company 1 updates every user it sees: got %v, %v; want 2 rows", tag, err)
	}
	// A company registered after adoption is a tenant at once.
	mustExec(t, c, "INSERT INTO shop.companies (name) VALUES ('initech')")
	if tag, err := pool.Exec(as(3), "INSERT INTO shop.billing (company_id, plan_id) VALUES (3, 1)"); err != nil || tag.RowsAffected() != 1 {
		t.Errorf("company 3, registered after adoption: got %v, %v", tag, err)
	}

	if err := m.Down(); err != nil {
		t.Fatalf("migrate down %s: %v", files.Down, err)
	}
	if diff := cmp.Diff(before, catalogDump(t, c, "shop")); diff != "" {
		t.Errorf("catalog after up and down (-before +after):\n%s", diff)
	}
	var tenants int
	if err := c.QueryRow(ctx, "SELECT count(*) FROM tenantseal.tenants WHERE key IN ('1', '2', '3')").Scan(&tenants); err != nil || tenants != 3 {
		t.Errorf("tenants after down: got %d, %v; want the 3 registered, kept", tenants, err)
	}
	if strings.Contains(p.UpSQL(), d.OwnerDSN) {
		t.Error("the up file quotes the connection string")
	}
}
