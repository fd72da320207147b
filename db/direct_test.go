package db_test

import (
	"fmt"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/tenantseal/tenantseal/db"
	"github.com/tenantseal/tenantseal/internal/pgtest"
)

// The direct send path is taken where pgx's batch would only add bookkeeping, and not where the
// configuration asks for something that only pgx's batch does; either sets the context with c_enter
// where the database has it.
func TestDirectPathWhereItApplies(t *testing.T) {
	t.Parallel()
	d := pgtest.NewDatabase(t)
	for _, tc := range []struct {
		name   string
		cfg    func(*db.Config)
		direct bool
	}{
		{"default", func(*db.Config) {}, true},
		{"a tracer of the application's", func(c *db.Config) { c.PoolConfig.ConnConfig.Tracer = &pgtest.Statements{} }, false},
		{"pgbouncer's exec mode", func(c *db.Config) { c.ExecMode = pgx.QueryExecModeCacheDescribe }, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := d.Pool(t, tc.cfg)
			if got := db.Direct(p); got != tc.direct {
				t.Fatalf("direct path: got %v, want %v", got, tc.direct)
			}
			// The context is set with c_enter wherever the C verifier runs (the local image's has it).
			if got, want := db.Enter(p), p.Verifier() == db.VerifierC; got != want {
				t.Fatalf("c_enter with the %s verifier: got %v, want %v", p.Verifier(), got, want)
			}
			ctx := as(testContext(t), mustTenant(t, d, "direct "+tc.name), "alice")
			var n int
			if err := p.QueryRow(ctx, "SELECT count(*) FROM customers").Scan(&n); err != nil || n != 0 {
				t.Fatalf("count: %d, %v", n, err)
			}
		})
	}
}

// On the direct path, pgx's named arguments still work (pgx's batch serves them), more statements than
// a connection keeps prepared still run, and a statement whose result changed under its prepared form
// fails at most once.
func TestDirectPathStatements(t *testing.T) {
	t.Parallel()
	d := pgtest.NewDatabase(t)
	cfg := mustConfig(t, d, d.AppDSN)
	cfg.PoolConfig.MaxConns = 1
	p := mustOpen(t, cfg)
	if !db.Direct(p) {
		t.Fatal("the pool does not take the direct path")
	}
	ctx := as(testContext(t), mustTenant(t, d, "a"), "alice")
	if _, err := p.Exec(ctx, "INSERT INTO customers (display_name) VALUES ('a1')"); err != nil {
		t.Fatal(err)
	}

	var got int
	if err := p.QueryRow(ctx, "SELECT @x::int + 1", pgx.NamedArgs{"x": 41}).Scan(&got); err != nil || got != 42 {
		t.Fatalf("named arguments: got %d, %v", got, err)
	}

	for i := range db.DirectStatementsMax + 20 {
		if err := p.QueryRow(ctx, fmt.Sprintf("SELECT count(*) + %d FROM customers", i)).Scan(&got); err != nil || got != i+1 {
			t.Fatalf("statement %d: got %d, %v", i, got, err)
		}
	}

	const star = "SELECT * FROM customers"
	read := func() error {
		rows, err := p.Query(ctx, star)
		if err != nil {
			return err
		}
		_, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) ([]any, error) { return r.Values() })
		return err
	}
	if err := read(); err != nil {
		t.Fatal(err)
	}
	if _, err := mustConn(t, d.OwnerDSN).Exec(testContext(t), "ALTER TABLE customers ADD COLUMN direct_path_note text"); err != nil {
		t.Fatal(err)
	}
	failed := 0
	for range 3 {
		if err := read(); err != nil {
			failed++
			t.Logf("after the table changed: %v", err)
		}
	}
	if failed > 1 {
		t.Errorf("after the table changed, %d of 3 reads failed, want at most the first", failed)
	}
}
