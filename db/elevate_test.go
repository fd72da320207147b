package db_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/tenantseal/tenantseal"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5"

	"github.com/tenantseal/tenantseal/db"
	"github.com/tenantseal/tenantseal/internal/pgtest"
)

func TestElevation(t *testing.T) {
	t.Parallel()
	d := pgtest.NewDatabase(t)
	type use struct {
		Subject, Reason string
	}
	var uses []use
	var now time.Time // zero: the real clock
	cfg := mustConfig(t, d, d.AppDSN)
	cfg.MaxElevation = 10 * time.Minute
	cfg.OnElevatedUse = func(_ context.Context, p tenantseal.Principal, reason string, _ time.Time) {
		uses = append(uses, use{p.Subject, reason})
	}
	cfg.Now = func() time.Time {
		if now.IsZero() {
			return time.Now()
		}
		return now
	}
	p := mustOpen(t, cfg)
	ctx := testContext(t)
	a, b, c := mustTenant(t, d, "a"), mustTenant(t, d, "b"), mustTenant(t, d, "c")
	for tenant, name := range map[tenantseal.TenantID]string{a: "a1", b: "b1", c: "c1"} {
		if _, err := p.Exec(as(ctx, tenant, "seed"), "INSERT INTO customers (tenant_id, display_name) VALUES ($1, $2)", tenant, name); err != nil {
			t.Fatal(err)
		}
	}
	staff := as(ctx, a, "sam", "support")

	if got, want := customerNames(t, staff, p), []string{"a1"}; !cmp.Equal(got, want) {
		t.Errorf("without elevation: got %v, want %v", got, want)
	}
	// The support case is b's: the elevation reads b's rows, and only b's, not the staff's own tenant's.
	elevated, err := p.Elevate(staff, b, "ticket 4711: invoice totals look wrong", 5*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := customerNames(t, elevated, p), []string{"b1"}; !cmp.Equal(got, want) {
		t.Errorf("elevated into b: got %v, want %v", got, want)
	}
	var inTx []string
	err = p.Tx(elevated, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, "SELECT display_name FROM customers ORDER BY 1")
		if err != nil {
			return err
		}
		inTx, err = pgx.CollectRows(rows, pgx.RowTo[string])
		return err
	})
	if err != nil || !cmp.Equal(inTx, []string{"b1"}) {
		t.Errorf("elevated into b, in a transaction: got %v (%v), want [b1]", inTx, err)
	}
	if want := []use{{"sam", "ticket 4711: invoice totals look wrong"}, {"sam", "ticket 4711: invoice totals look wrong"}}; !cmp.Equal(uses, want) {
		t.Errorf("elevated uses: got %v, want %v", uses, want)
	}

	t.Run("read-only", func(t *testing.T) {
		writes := []string{
			"UPDATE customers SET display_name = 'x'",
			"DELETE FROM customers",
			"INSERT INTO customers (tenant_id, display_name) VALUES ('" + a.String() + "', 'x')",
		}
		for _, w := range writes {
			// Refused as writes in a read-only transaction (25006), not by any other failure.
			if tag, err := p.Exec(elevated, w); sqlState(err) != "25006" {
				t.Errorf("Exec %q elevated: %d rows, error %v, want SQLSTATE 25006", w, tag.RowsAffected(), err)
			}
			err := p.Tx(elevated, func(tx pgx.Tx) error { _, err := tx.Exec(ctx, w); return err })
			if sqlState(err) != "25006" {
				t.Errorf("Tx %q elevated: got %v, want SQLSTATE 25006", w, err)
			}
			// The single-round-trip Query path runs read-only too.
			if rows, err := p.Query(elevated, w+" RETURNING 1"); err == nil {
				if _, err := pgx.CollectRows(rows, pgx.RowTo[int]); sqlState(err) != "25006" {
					t.Errorf("Query %q elevated: got %v, want SQLSTATE 25006", w, err)
				}
			} else if sqlState(err) != "25006" {
				t.Errorf("Query %q elevated: got %v, want SQLSTATE 25006", w, err)
			}
		}
		var n int
		if err := mustConn(t, d.SuperDSN).QueryRow(ctx, "SELECT count(*) FROM customers WHERE display_name = 'x'").Scan(&n); err != nil || n != 0 {
			t.Errorf("got %d written rows (%v), want 0", n, err)
		}
	})

	t.Run("refused", func(t *testing.T) {
		for _, tc := range []struct {
			name   string
			ctx    context.Context
			reason string
			ttl    time.Duration
			want   error
		}{
			{"without the support role", as(ctx, a, "mallory"), "curious", time.Minute, db.ErrElevation},
			{"longer than MaxElevation", staff, "long", 11 * time.Minute, db.ErrElevation},
			{"empty reason", staff, "  ", time.Minute, db.ErrElevation},
			{"zero ttl", staff, "x", 0, db.ErrElevation},
			{"no principal", ctx, "x", time.Minute, tenantseal.ErrNoTenant},
		} {
			got, err := p.Elevate(tc.ctx, b, tc.reason, tc.ttl)
			if !errors.Is(err, tc.want) {
				t.Errorf("%s: got %v, want %v", tc.name, err, tc.want)
			}
			if _, _, ok := db.ElevationFrom(got); ok {
				t.Errorf("%s: the refused context carries an elevation", tc.name)
			}
		}
		if _, err := p.Elevate(staff, tenantseal.TenantID{}, "no case", time.Minute); !errors.Is(err, db.ErrElevation) {
			t.Errorf("no tenant of a support case: got %v, want ErrElevation", err)
		}
		// A context elevated through a laxer pool is refused at use by a stricter one, before any SQL.
		laxCfg := mustConfig(t, d, d.AppDSN)
		laxCfg.MaxElevation = time.Hour
		laxCfg.ElevationRole = "anyone"
		lax := mustOpen(t, laxCfg)
		for name, pr := range map[string]context.Context{
			"without the support role": as(ctx, a, "mallory", "anyone"),
			"longer than MaxElevation": as(ctx, a, "sam", "support", "anyone"),
		} {
			ttl := time.Minute
			if name == "longer than MaxElevation" {
				ttl = 30 * time.Minute
			}
			lc, err := lax.Elevate(pr, b, "ticket", ttl)
			if err != nil {
				t.Fatalf("%s: lax pool: %v", name, err)
			}
			if _, err := p.Query(lc, "SELECT 1"); !errors.Is(err, db.ErrElevation) {
				t.Errorf("%s: got %v, want ErrElevation", name, err)
			}
		}
	})

	t.Run("after the TTL", func(t *testing.T) {
		now = time.Now().Add(6 * time.Minute)
		defer func() { now = time.Time{} }()
		if _, err := p.Query(elevated, "SELECT 1"); !errors.Is(err, db.ErrElevation) {
			t.Errorf("got %v, want ErrElevation", err)
		}
	})
}
