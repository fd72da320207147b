package db_test

import (
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/tenantseal/tenantseal/db"
	"github.com/tenantseal/tenantseal/internal/pgtest"
)

func TestOpenReportsVerifier(t *testing.T) {
	t.Parallel()
	probe := pgtest.NewDatabase(t)
	for _, v := range pgtest.Verifiers(t, probe) {
		t.Run(string(v), func(t *testing.T) {
			t.Parallel()
			d := pgtest.NewDatabase(t)
			d.UseVerifier(t, v)
			if got := mustOpen(t, mustConfig(t, d, d.AppDSN)).Verifier(); got != v {
				t.Errorf("got %q, want %q", got, v)
			}
		})
	}
	t.Run("schema before migration 20", func(t *testing.T) {
		t.Parallel()
		d := pgtest.NewDatabase(t)
		d.UseVerifier(t, db.VerifierPLpgSQL)
		mustExec(t, mustConn(t, d.OwnerDSN), "DROP FUNCTION tenantseal.verifier()")
		if got := mustOpen(t, mustConfig(t, d, d.AppDSN)).Verifier(); got != db.VerifierPLpgSQL {
			t.Errorf("got %q, want %q", got, db.VerifierPLpgSQL)
		}
	})
}

// A pool that loses c_enter while it is open (its grant revoked, the extension taken back to an older
// version) fails the statement that finds out, and sends set_config and RESET ALL from then on, on both
// send paths.
func TestEnterGoneWhileOpen(t *testing.T) {
	t.Parallel()
	type path struct {
		name string
		cfg  func(*db.Config)
	}
	paths := []path{
		{"direct", func(*db.Config) {}},
		{"pgx's batch", func(c *db.Config) { c.PoolConfig.ConnConfig.Tracer = &pgtest.Statements{} }},
	}
	takeAway := map[string]func(d *pgtest.Database) string{
		"grant revoked": func(d *pgtest.Database) string {
			return "REVOKE EXECUTE ON FUNCTION tenantseal.c_enter(text) FROM " + pgx.Identifier{d.Roles.App}.Sanitize()
		},
		"extension taken back to 1.1": func(*pgtest.Database) string { return "ALTER EXTENSION tenantseal_verify UPDATE TO '1.1'" },
	}
	for _, tc := range paths {
		for how, take := range takeAway {
			t.Run(tc.name+", "+how, func(t *testing.T) {
				enterGone(t, tc.cfg, take)
			})
		}
	}
}

func enterGone(t *testing.T, cfg func(*db.Config), takeAway func(*pgtest.Database) string) {
	t.Parallel()
	d := pgtest.NewDatabase(t)
	d.UseVerifier(t, db.VerifierC)
	p := d.Pool(t, cfg)
	if !db.Enter(p) {
		t.Fatal("the pool does not use c_enter with the C verifier")
	}
	ctx := as(testContext(t), mustTenant(t, d, "a"), "alice")
	if _, err := p.Exec(ctx, "INSERT INTO customers (display_name) VALUES ('a1')"); err != nil {
		t.Fatal(err)
	}
	mustExec(t, mustConn(t, d.OwnerDSN), takeAway(d))
	failed := 0
	for range 3 {
		var n int
		if err := p.QueryRow(ctx, "SELECT count(*) FROM customers").Scan(&n); err != nil {
			failed++
			t.Logf("after the change: %v", err)
		} else if n != 1 {
			t.Errorf("after the change: %d customers visible, want 1", n)
		}
	}
	if failed > 1 || db.Enter(p) {
		t.Errorf("after the change: %d of 3 reads failed and c_enter in use %v; want at most the first, and not", failed, db.Enter(p))
	}
}
