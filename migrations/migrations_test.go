package migrations_test

import (
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5"

	"github.com/tenantseal/tenantseal/examples/reference"
	"github.com/tenantseal/tenantseal/internal/pgtest"
	"github.com/tenantseal/tenantseal/migrations"
)

// catalogDump describes every user-visible schema object with its definition, privileges and policies,
// in a stable order, so that two states of a database can be compared.
const catalogDump = `
WITH ns AS (
  SELECT oid, nspname FROM pg_namespace
   WHERE nspname NOT IN ('pg_catalog', 'information_schema') AND nspname !~ '^pg_(toast|temp_|toast_temp_)'
)
SELECT 'schema ' || n.nspname || ' ' || coalesce(n.nspacl::text, '') FROM pg_namespace n JOIN ns USING (oid)
UNION ALL
SELECT format('rel %s.%s kind=%s rls=%s force=%s acl=%s opts=%s', ns.nspname, c.relname, c.relkind,
              c.relrowsecurity, c.relforcerowsecurity, c.relacl, c.reloptions)
  FROM pg_class c JOIN ns ON ns.oid = c.relnamespace
UNION ALL
SELECT format('col %s.%s.%s %s notnull=%s default=%s acl=%s', ns.nspname, c.relname, a.attname,
              format_type(a.atttypid, a.atttypmod), a.attnotnull, pg_get_expr(d.adbin, d.adrelid), a.attacl)
  FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN ns ON ns.oid = c.relnamespace
  LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
 WHERE a.attnum > 0 AND NOT a.attisdropped
UNION ALL
SELECT format('con %s.%s %s', ns.nspname, con.conname, pg_get_constraintdef(con.oid))
  FROM pg_constraint con JOIN ns ON ns.oid = con.connamespace
UNION ALL
SELECT 'index ' || pg_get_indexdef(i.indexrelid)
  FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid JOIN ns ON ns.oid = c.relnamespace
UNION ALL
SELECT format('policy %s on %s cmd=%s permissive=%s roles=%s using=%s check=%s', p.polname, p.polrelid::regclass,
              p.polcmd, p.polpermissive, (SELECT array_agg(r ORDER BY r) FROM unnest(p.polroles::regrole[]) r),
              pg_get_expr(p.polqual, p.polrelid), pg_get_expr(p.polwithcheck, p.polrelid))
  FROM pg_policy p
UNION ALL
SELECT format('function %s owner=%s acl=%s %s', p.oid::regprocedure, p.proowner::regrole, p.proacl, pg_get_functiondef(p.oid))
  FROM pg_proc p JOIN ns ON ns.oid = p.pronamespace
UNION ALL
SELECT format('trigger %s on %s %s', t.tgname, t.tgrelid::regclass, pg_get_triggerdef(t.oid))
  FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid JOIN ns ON ns.oid = c.relnamespace WHERE NOT t.tgisinternal
UNION ALL
SELECT format('type %s.%s', ns.nspname, t.typname)
  FROM pg_type t JOIN ns ON ns.oid = t.typnamespace
 WHERE t.typtype = 'c' AND NOT EXISTS (SELECT 1 FROM pg_class c WHERE c.oid = t.typrelid AND c.relkind <> 'c')
ORDER BY 1`

func dump(t *testing.T, dsn string) []string {
	t.Helper()
	rows, err := mustConn(t, dsn).Query(testContext(t), catalogDump)
	if err != nil {
		t.Fatal(err)
	}
	lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	return lines
}

func mustMigrator(t *testing.T, dsn string) *migrations.Migrator {
	t.Helper()
	mg, err := migrations.New(testContext(t), dsn, migrations.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { mg.Close() })
	return mg
}

// withoutExamples reverts the examples' migrations that pgtest's template has, leaving tenantseal's own.
func withoutExamples(t *testing.T, d *pgtest.Database) {
	t.Helper()
	mg, err := reference.NewMigrator(testContext(t), d.OwnerDSN, migrations.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer mg.Close()
	if err := mg.Down(testContext(t), 0); err != nil {
		t.Fatal(err)
	}
	// golang-migrate keeps its table after the last down; a database that never had the examples has none.
	if _, err := mustConn(t, d.OwnerDSN).Exec(testContext(t), "DROP TABLE "+pgx.Identifier{migrations.Schema, reference.MigrationsTable}.Sanitize()); err != nil {
		t.Fatal(err)
	}
}

func TestUpDownUpRestoresTheSameSchema(t *testing.T) {
	t.Parallel()
	d := pgtest.NewDatabase(t)
	ctx := testContext(t)
	withoutExamples(t, d)
	first := dump(t, d.SuperDSN)
	if len(first) < 50 {
		t.Fatalf("got %d catalog lines after the first up, want the whole schema", len(first))
	}
	mg := migrator(t, d, migrations.Options{ConfirmLoss: migrations.Losses(), Recorder: auditWriter(t, writerDSN(d)), AuditArchive: io.Discard})
	if v, dirty, err := mg.Version(); err != nil || dirty || v != migrations.Latest() {
		t.Fatalf("got version %d dirty=%v (%v), want %d clean", v, dirty, err, migrations.Latest())
	}
	if err := mg.Down(ctx, 0); err != nil {
		t.Fatalf("down to zero: %v", err)
	}
	for _, line := range dump(t, d.SuperDSN) {
		if strings.Contains(line, "tenantseal.") || strings.Contains(line, "public.customers") || strings.Contains(line, "tenantseal.tenants") {
			t.Errorf("after down to zero, still there: %s", line)
		}
	}
	if v, _, err := mg.Version(); err != nil || v != 0 {
		t.Errorf("after down: got version %d (%v), want 0", v, err)
	}
	if err := mg.Up(ctx); err != nil {
		t.Fatalf("up again: %v", err)
	}
	if diff := cmp.Diff(first, dump(t, d.SuperDSN)); diff != "" {
		t.Errorf("schema after up, down, up differs from the first up (-first +again):\n%s", diff)
	}
}

func TestStepsGotoAndStatus(t *testing.T) {
	t.Parallel()
	d := pgtest.NewDatabase(t)
	ctx := testContext(t)
	mg := migrator(t, d, migrations.Options{ConfirmLoss: migrations.Losses(), Recorder: auditWriter(t, writerDSN(d)), AuditArchive: io.Discard})
	latest := migrations.Latest()
	if err := mg.Down(ctx, 1); err != nil {
		t.Fatal(err)
	}
	st, dirty, err := mg.Status()
	if err != nil || dirty {
		t.Fatalf("status: %v dirty=%v", err, dirty)
	}
	for _, m := range st {
		if want := m.Version < latest; m.Applied != want {
			t.Errorf("migration %d %s: got applied=%v, want %v", m.Version, m.Name, m.Applied, want)
		}
	}
	if err := mg.Goto(ctx, 1); err != nil {
		t.Fatal(err)
	}
	if v, _, _ := mg.Version(); v != 1 {
		t.Errorf("after goto 1: got version %d, want 1", v)
	}
	if err := mg.Goto(ctx, 99); err == nil {
		t.Error("goto 99: succeeded, want an error naming the missing version")
	}
	if err := mg.Up(ctx); err != nil {
		t.Fatal(err)
	}
	if err := mg.Up(ctx); err != nil {
		t.Errorf("up with nothing to do: got %v, want nil", err)
	}
}

func TestDirtyStateNamesVersionAndForce(t *testing.T) {
	t.Parallel()
	d := pgtest.NewDatabase(t)
	ctx := testContext(t)
	mustConn(t, d.OwnerDSN).Exec(ctx, "UPDATE tenantseal_migrations.schema_migrations SET dirty = true")
	mg := mustMigrator(t, d.OwnerDSN)
	err := mg.Up(ctx)
	var de *migrations.DirtyError
	if !errors.As(err, &de) {
		t.Fatalf("got %v, want a *DirtyError", err)
	}
	latest := int(migrations.Latest())
	if de.Version != latest || !strings.Contains(err.Error(), "tenantseal migrate force") {
		t.Errorf("got %q, want version %d and the force command", err, latest)
	}
	if err := mg.Force(ctx, latest); err != nil {
		t.Fatal(err)
	}
	if _, dirty, _ := mg.Version(); dirty {
		t.Error("still dirty after force")
	}
	if err := mg.Force(ctx, 42); err == nil {
		t.Error("force 42: succeeded, want an error")
	}
}

// Down and up again through 0004 keep the probe able to answer for tables protected in between.
func TestProbeSurvivesDownAndUp(t *testing.T) {
	t.Parallel()
	d := pgtest.NewDatabase(t)
	ctx := testContext(t)
	mg := migrator(t, d, migrations.Options{ConfirmLoss: migrations.Losses(), Recorder: auditWriter(t, writerDSN(d)), AuditArchive: io.Discard})
	if err := mg.Goto(ctx, 3); err != nil {
		t.Fatal(err)
	}
	if err := mg.Up(ctx); err != nil {
		t.Fatal(err)
	}
	a, b := mustTenant(t, d, "a"), mustTenant(t, d, "b")
	p := mustPool(t, d)
	var id string
	if err := p.QueryRow(as(ctx, a, "a"), "INSERT INTO customers (tenant_id, display_name) VALUES ($1, 'x') RETURNING id::text", a).Scan(&id); err != nil {
		t.Fatal(err)
	}
	// The probe answers for audit_append, the owner's, on the writer's behalf; never for the app role.
	var elsewhere bool
	if err := mustConn(t, d.OwnerDSN).QueryRow(ctx, "SELECT tenantseal.exists_elsewhere('public.customers'::regclass, $1::uuid, $2)", id, b).Scan(&elsewhere); err != nil || !elsewhere {
		t.Errorf("exists_elsewhere of a's customer for b: got %v (%v), want true", elsewhere, err)
	}
	if err := p.QueryRow(as(ctx, b, "b"), "SELECT tenantseal.exists_elsewhere('public.customers'::regclass, $1::uuid, $2)", id, b).Scan(&elsewhere); sqlState(err) != "42501" {
		t.Errorf("exists_elsewhere as the app role: got %v (%v), want permission denied (42501)", elsewhere, err)
	}
}
