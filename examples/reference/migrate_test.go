package reference_test

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5"

	"github.com/tenantseal/tenantseal/examples/reference"
	"github.com/tenantseal/tenantseal/internal/pgtest"
	"github.com/tenantseal/tenantseal/migrations"
)

// The reference migrations come and go on their own migrations table, leaving tenantseal's alone.
func TestMigrationsDownAndUp(t *testing.T) {
	t.Parallel()
	d := pgtest.NewDatabase(t)
	ctx := testContext(t)
	mg, err := reference.NewMigrator(ctx, d.OwnerDSN, migrations.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer mg.Close()
	super := mustConn(t, d.SuperDSN)
	state := func() (tables, registered []string, product uint) {
		t.Helper()
		rows, err := super.Query(ctx, `SELECT relname::text FROM pg_class WHERE relnamespace = 'public'::regnamespace
			AND relkind = 'r' AND relname IN ('customers', 'invoices', 'documents') ORDER BY 1`)
		if err != nil {
			t.Fatal(err)
		}
		if tables, err = pgx.CollectRows(rows, pgx.RowTo[string]); err != nil {
			t.Fatal(err)
		}
		rows, err = super.Query(ctx, "SELECT table_name::text || '.' || column_name FROM tenantseal.encrypted_columns ORDER BY 1")
		if err != nil {
			t.Fatal(err)
		}
		if registered, err = pgx.CollectRows(rows, pgx.RowTo[string]); err != nil {
			t.Fatal(err)
		}
		if err := super.QueryRow(ctx, "SELECT version FROM tenantseal_migrations.schema_migrations").Scan(&product); err != nil {
			t.Fatal(err)
		}
		return tables, registered, product
	}
	wantTables := []string{"customers", "documents", "invoices"}
	wantRegistered := []string{"customers.email", "customers.notes", "customers.phone", "documents.body", "invoices.memo"}
	check := func(when string, tables, registered []string) {
		t.Helper()
		gotTables, gotRegistered, product := state()
		if diff := cmp.Diff(tables, gotTables); diff != "" {
			t.Errorf("%s: tables (-want +got):\n%s", when, diff)
		}
		if diff := cmp.Diff(registered, gotRegistered); diff != "" {
			t.Errorf("%s: encrypted columns (-want +got):\n%s", when, diff)
		}
		if product != migrations.Latest() {
			t.Errorf("%s: tenantseal's version is %d, want %d untouched", when, product, migrations.Latest())
		}
	}
	check("as pgtest's template has it", wantTables, wantRegistered)
	st, dirty, err := mg.Status()
	if err != nil || dirty || len(st) != 1 || !st[0].Applied || st[0].Name != "reference_domain" {
		t.Errorf("status: got %+v dirty=%v (%v), want reference_domain applied", st, dirty, err)
	}
	if err := mg.Down(ctx, 0); err != nil {
		t.Fatal(err)
	}
	check("after down", []string{}, []string{})
	if err := reference.Migrate(ctx, d.OwnerDSN); err != nil {
		t.Fatal(err)
	}
	check("after Migrate", wantTables, wantRegistered)
	if err := reference.Migrate(ctx, d.OwnerDSN); err != nil {
		t.Errorf("Migrate with nothing to do: got %v, want nil", err)
	}
}
