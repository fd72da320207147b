package db_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/tenantseal/tenantseal"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5"

	"github.com/tenantseal/tenantseal/db"
	"github.com/tenantseal/tenantseal/internal/pgtest"
)

func customerNames(t testing.TB, ctx context.Context, p *db.Pool) []string {
	t.Helper()
	rows, err := p.Query(ctx, "SELECT display_name FROM customers ORDER BY display_name")
	if err != nil {
		t.Fatal(err)
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	return names
}

func TestNoCarryOverOnReusedConnection(t *testing.T) {
	t.Parallel()
	d := pgtest.NewDatabase(t)
	cfg := mustConfig(t, d, d.AppDSN)
	cfg.PoolConfig.MaxConns = 1
	// What a context-less user of the connection would see right after each release.
	type leftover struct {
		Setting string
		Rows    int
	}
	// pgxpool runs AfterRelease on a goroutine of its own.
	var mu sync.Mutex
	var after []leftover
	var pids []uint32
	cfg.PoolConfig.AfterRelease = func(c *pgx.Conn) bool {
		var l leftover
		if err := c.QueryRow(context.Background(), "SELECT coalesce(current_setting('tenantseal.context', true), ''), (SELECT count(*) FROM customers)").Scan(&l.Setting, &l.Rows); err != nil {
			t.Errorf("after release: %v", err)
		}
		mu.Lock()
		defer mu.Unlock()
		after = append(after, l)
		pids = append(pids, c.PgConn().PID())
		return true
	}
	p := mustOpen(t, cfg)
	ctx := testContext(t)
	a, b := mustTenant(t, d, "a"), mustTenant(t, d, "b")
	ctxA, ctxB := as(ctx, a, "alice"), as(ctx, b, "bob")

	if _, err := p.Exec(ctxA, "INSERT INTO customers (tenant_id, display_name) VALUES ($1, 'a1')", a); err != nil {
		t.Fatal(err)
	}
	if err := p.Tx(ctxB, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, "INSERT INTO customers (display_name) VALUES ('b1')") // tenant_id from its default
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if got, want := customerNames(t, ctxA, p), []string{"a1"}; !cmp.Equal(got, want) {
		t.Errorf("tenant a sees %v, want %v", got, want)
	}
	if got, want := customerNames(t, ctxB, p), []string{"b1"}; !cmp.Equal(got, want) {
		t.Errorf("tenant b sees %v, want %v", got, want)
	}
	if got, want := customerNames(t, ctxA, p), []string{"a1"}; !cmp.Equal(got, want) {
		t.Errorf("tenant a again sees %v, want %v", got, want)
	}
	if _, err := p.Exec(ctx, "SELECT 1"); !errors.Is(err, tenantseal.ErrNoTenant) {
		t.Errorf("context-less call: got %v, want tenantseal.ErrNoTenant", err)
	}
	// The one connection again: the hooks of the releases before have run.
	var n int
	if err := p.Unscoped().QueryRow(ctx, "SELECT 1").Scan(&n); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(pids) < 4 {
		t.Fatalf("got %d releases, want at least 4", len(pids))
	}
	for i, pid := range pids {
		if pid != pids[0] {
			t.Fatalf("release %d on backend %d, want every call on the one connection %d", i, pid, pids[0])
		}
	}
	for i, l := range after {
		if l != (leftover{}) {
			t.Errorf("after release %d the connection still had %+v, want no context and no visible rows", i, l)
		}
	}
}

func TestSingleStatementIsOneImplicitTransaction(t *testing.T) {
	t.Parallel()
	d := pgtest.NewDatabase(t)
	p := mustOpen(t, mustConfig(t, d, d.AppDSN))
	ctx := as(testContext(t), mustTenant(t, d, "a"), "alice")
	// The context is visible to the statement that follows it in the batch.
	var tok string
	if err := p.QueryRow(ctx, "SELECT current_setting('tenantseal.context')").Scan(&tok); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(tok, "v1."+d.ContextKey.ID+".") {
		t.Errorf("got context %q in the statement, want a v1 token signed with %s", tok, d.ContextKey.ID)
	}
	// The tenant resolved by the database is the Principal's.
	var got tenantseal.TenantID
	if err := p.QueryRow(ctx, "SELECT tenantseal.current_tenant()").Scan(&got); err != nil {
		t.Fatal(err)
	}
	want, _ := tenantseal.TenantFrom(ctx)
	if got != want {
		t.Errorf("got tenant %s, want %s", got, want)
	}
	var subject string
	if err := p.QueryRow(ctx, "SELECT tenantseal.current_subject()").Scan(&subject); err != nil || subject != "alice" {
		t.Errorf("got subject %q (%v), want alice", subject, err)
	}
}

func TestUnsignedModeOnlyWhenTheOwnerAllowsIt(t *testing.T) {
	t.Parallel()
	d := pgtest.NewDatabase(t)
	cfg := mustConfig(t, d, d.AppDSN)
	cfg.Unsigned = true
	p := mustOpen(t, cfg)
	ctx := testContext(t)
	a := mustTenant(t, d, "a")
	mustTenant(t, d, "b")
	var n int
	if err := p.QueryRow(as(ctx, a, "x"), "SELECT count(*) FROM tenantseal.tenants").Scan(&n); !errors.Is(err, db.ErrInvalidContext) {
		t.Fatalf("unsigned before the owner allows it: got %v, want ErrInvalidContext", err)
	}
	mustExec(t, mustConn(t, d.OwnerDSN), "UPDATE tenantseal.settings SET allow_unsigned = true")
	var got tenantseal.TenantID
	if err := p.QueryRow(as(ctx, a, "x"), "SELECT id FROM tenantseal.tenants").Scan(&got); err != nil || got != a {
		t.Errorf("unsigned once allowed: got %s (%v), want only tenant %s", got, err, a)
	}
}
