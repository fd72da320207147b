package db_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/tenantseal/tenantseal/internal/pgtest"
)

// SQL injected into one request may change its session for good; the next request on the connection,
// another tenant's, must not notice, and Unscoped() must fail closed even under a session-level context.
func TestSessionChangesDoNotOutliveTheRequest(t *testing.T) {
	t.Parallel()
	d := pgtest.NewDatabase(t)
	cfg := mustConfig(t, d, d.AppDSN)
	cfg.PoolConfig.MaxConns = 1
	p := mustOpen(t, cfg)
	ctx := testContext(t)
	a, b := mustTenant(t, d, "a"), mustTenant(t, d, "b")
	ctxA, ctxB := as(ctx, a, "mallory"), as(ctx, b, "bob")
	for c, name := range map[context.Context]string{ctxA: "a1", ctxB: "b1"} {
		if _, err := p.Exec(c, "INSERT INTO customers (display_name) VALUES ($1)", name); err != nil {
			t.Fatal(err)
		}
	}
	// The statement the victim runs next, new to the connection each time, and the name pgx prepares it
	// under.
	var victimSQL string
	cacheName := func() string {
		sum := sha256.Sum256([]byte(victimSQL))
		return "stmtcache_" + hex.EncodeToString(sum[:24])
	}
	// The name the direct path (pgx's Conn.Prepare) prepares it under.
	directName := func() string {
		sum := sha256.Sum256([]byte(victimSQL))
		return "stmt_" + hex.EncodeToString(sum[:24])
	}
	var tokenA string
	if err := p.QueryRow(ctxA, "SELECT current_setting('tenantseal.context')").Scan(&tokenA); err != nil {
		t.Fatal(err)
	}
	const settings = "SELECT concat_ws(' ', current_setting('row_security'), current_setting('statement_timeout'), current_setting('default_transaction_read_only'), current_setting('search_path'), coalesce(current_setting('tenantseal.context', true), ''))"
	var fresh string
	if err := p.Unscoped().QueryRow(ctx, settings).Scan(&fresh); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		run  func() error
	}{
		{"row_security off", func() error { _, err := p.Exec(ctxA, "SELECT set_config('row_security', 'off', false)"); return err }},
		{"statement_timeout", func() error { _, err := p.Exec(ctxA, "SET statement_timeout = 1"); return err }},
		{"read only by default", func() error { _, err := p.Exec(ctxA, "SET default_transaction_read_only = on"); return err }},
		{"search_path", func() error { _, err := p.Exec(ctxA, "SET search_path = pg_catalog"); return err }},
		{"a session-level tenant context", func() error {
			_, err := p.Exec(ctxA, "SELECT set_config('tenantseal.context', $1, false)", tokenA)
			return err
		}},
		{"in a DO block", func() error {
			_, err := p.Exec(ctxA, "DO $$ BEGIN PERFORM set_config('row_security', 'off', false); END $$")
			return err
		}},
		{"in a transaction", func() error {
			return p.Tx(ctxA, func(tx pgx.Tx) error { _, err := tx.Exec(ctx, "SET default_transaction_read_only = on"); return err })
		}},
		{"pgx's statement name taken", func() error {
			_, err := p.Exec(ctxA, fmt.Sprintf("PREPARE %s AS SELECT 1", pgx.Identifier{cacheName()}.Sanitize()))
			return err
		}},
		{"the direct path's statement name taken", func() error {
			_, err := p.Exec(ctxA, fmt.Sprintf("PREPARE %s AS SELECT 1", pgx.Identifier{directName()}.Sanitize()))
			return err
		}},
		{"every prepared statement deallocated", func() error {
			// Its own batch may fail: the statements after it in the batch are gone too.
			_, _ = p.Exec(ctxA, "DEALLOCATE ALL")
			return nil
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			victimSQL = "SELECT display_name FROM customers ORDER BY 1 -- " + tc.name
			if err := tc.run(); err != nil {
				t.Fatalf("the attacker's request: %v", err)
			}
			rows, err := p.Query(ctxB, victimSQL)
			if err != nil {
				t.Fatalf("the next request: %v", err)
			}
			names, err := pgx.CollectRows(rows, pgx.RowTo[string])
			if err != nil || len(names) != 1 || names[0] != "b1" {
				t.Errorf("the next request read %v (%v), want [b1]", names, err)
			}
			if _, err := p.Exec(ctxB, "UPDATE customers SET display_name = 'b1'"); err != nil {
				t.Errorf("the next write: %v", err)
			}
			var n int
			if err := p.Unscoped().QueryRow(ctx, "SELECT count(*) FROM customers").Scan(&n); err != nil || n != 0 {
				t.Errorf("Unscoped read %d rows (%v), want 0", n, err)
			}
			var now string
			if err := p.Unscoped().QueryRow(ctx, settings).Scan(&now); err != nil || now != fresh {
				t.Errorf("settings now %q (%v), a fresh session's %q", now, err, fresh)
			}
		})
	}
}
