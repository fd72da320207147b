package db_test

import (
	"bytes"
	"errors"
	"testing"

	"github.com/tenantseal/tenantseal"

	"github.com/jackc/pgx/v5"
	"go.opentelemetry.io/otel/attribute"

	"github.com/tenantseal/tenantseal/db"
	"github.com/tenantseal/tenantseal/internal/metrictest"
	"github.com/tenantseal/tenantseal/internal/pgtest"
)

func refusals(t testing.TB, m *metrictest.Reader, class db.RefusalClass, attrs ...attribute.KeyValue) int64 {
	t.Helper()
	return m.Sum(t, "tenantseal.db.refusals", append(attrs, db.AttrRefusal.String(string(class)))...)
}

// The pool counts refusals on both of its send paths: pgx's batch (taken when the configuration has a
// tracer of its own) and the direct one (without).
func TestRefusalsCountedByClass(t *testing.T) {
	t.Parallel()
	d := pgtest.NewDatabase(t)
	for _, withTracer := range []bool{true, false} {
		t.Run(map[bool]string{true: "own tracer", false: "direct"}[withTracer], func(t *testing.T) {
			refusalsCounted(t, d, withTracer)
		})
	}
}

func refusalsCounted(t *testing.T, d *pgtest.Database, withTracer bool) {
	m := metrictest.New(t)
	own := &pgtest.Statements{}
	instrumented := func(c *db.Config) {
		c.MeterProvider, c.RoleCheckInterval = m.Provider, -1
		if withTracer {
			c.PoolConfig.ConnConfig.Tracer = own
		}
	}
	p := d.Pool(t, instrumented)
	ctx := testContext(t)
	a, b := mustTenant(t, d, t.Name()+"/a"), mustTenant(t, d, t.Name()+"/b")
	ctxA := as(ctx, a, "alice")

	// A row of tenant b written as tenant a: refused by the policy's WITH CHECK.
	_, err := p.Exec(ctxA, "INSERT INTO customers (tenant_id, display_name) VALUES ($1, 'x')", b)
	if sqlState(err) != "42501" {
		t.Fatalf("cross-tenant insert: got %v, want 42501", err)
	}
	if got := refusals(t, m, db.RefusalRLS, db.AttrSQLState.String("42501")); got != 1 {
		t.Errorf("rls_violation refusals: got %d, want 1", got)
	}
	// Inside a transaction the tracer sees it too.
	_ = p.Tx(ctxA, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, "INSERT INTO customers (tenant_id, display_name) VALUES ($1, 'y')", b)
		return err
	})
	if got := refusals(t, m, db.RefusalRLS); got != 2 {
		t.Errorf("rls_violation refusals after the transaction: got %d, want 2", got)
	}

	// A table the app role may not read at all.
	if _, err := p.Exec(ctxA, "SELECT * FROM tenantseal.context_keys"); sqlState(err) != "42501" {
		t.Fatalf("context_keys: got %v, want 42501", err)
	}
	if got := refusals(t, m, db.RefusalPrivilege, db.AttrSQLState.String("42501")); got != 1 {
		t.Errorf("insufficient_privilege refusals: got %d, want 1", got)
	}

	// Tokens signed with a key the database does not know.
	forged := d.Pool(t, instrumented, func(c *db.Config) {
		c.SigningKey = db.ContextKey{ID: "forged", Secret: bytes.Repeat([]byte{7}, 32)}
	})
	if _, err := forged.Exec(ctxA, "SELECT count(*) FROM customers"); !errors.Is(err, db.ErrInvalidContext) {
		t.Fatalf("forged token: got %v, want ErrInvalidContext", err)
	}
	if got := refusals(t, m, db.RefusalInvalidContext, db.AttrSQLState.String(db.SQLStateInvalidContext)); got != 1 {
		t.Errorf("invalid_context refusals: got %d, want 1", got)
	}

	// The library's own refusals, before any SQL.
	if _, err := p.Exec(ctx, "SELECT 1"); !errors.Is(err, tenantseal.ErrNoTenant) {
		t.Fatalf("no principal: got %v, want ErrNoTenant", err)
	}
	p.Record(ctxA, tenantseal.Event{Kind: tenantseal.EventTenantMismatch, TargetTenant: b, Table: "customers"})
	for class, want := range map[db.RefusalClass]int64{db.RefusalNoTenant: 1, db.RefusalTenantMismatch: 1} {
		if got := refusals(t, m, class); got != want {
			t.Errorf("%s refusals: got %d, want %d", class, got, want)
		}
	}
	// Failures that are no refusal are not counted as one.
	if _, err := p.Exec(ctxA, "SELECT * FROM no_such_table"); sqlState(err) != "42P01" {
		t.Fatalf("missing table: got %v, want 42P01", err)
	}
	if got := m.Sum(t, "tenantseal.db.refusals"); got != 6 {
		t.Errorf("all refusals: got %d, want 6", got)
	}
	m.WantNoValue(t, a.String(), b.String(), "alice")
	if withTracer && own.N() == 0 {
		t.Error("the configuration's own tracer saw no statement: the pool's tracer replaced it")
	}
}

func TestStatementsCountedWithoutTheFraming(t *testing.T) {
	t.Parallel()
	d := pgtest.NewDatabase(t)
	m := metrictest.New(t)
	p := d.Pool(t, func(c *db.Config) { c.MeterProvider, c.RoleCheckInterval = m.Provider, -1 })
	ctx := as(testContext(t), mustTenant(t, d, "a"), "alice")
	selects := func() int64 {
		return m.Sum(t, "tenantseal.db.statements", db.AttrOperation.String("select"), db.AttrOutcome.String("ok"))
	}
	before, all := selects(), m.Sum(t, "tenantseal.db.statements")
	for range 3 {
		var n int
		if err := p.QueryRow(ctx, "SELECT count(*) FROM customers").Scan(&n); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := p.Exec(ctx, "UPDATE customers SET display_name = display_name"); err != nil {
		t.Fatal(err)
	}
	if got := selects() - before; got != 3 {
		t.Errorf("selects counted: got %d, want 3", got)
	}
	if got := m.Sum(t, "tenantseal.db.statements") - all; got != 4 {
		t.Errorf("statements counted: got %d, want 4 (the tenant context and the session reset are not statements of the caller)", got)
	}
	if _, err := p.Exec(ctx, "SELECT 1 / 0"); sqlState(err) != "22012" {
		t.Fatalf("division by zero: got %v, want 22012", err)
	}
	if got := m.Sum(t, "tenantseal.db.statements", db.AttrOperation.String("select"), db.AttrOutcome.String("error")); got != 1 {
		t.Errorf("failed selects: got %d, want 1", got)
	}
	if _, err := p.Exec(ctx, "VACUUM customers"); err == nil {
		t.Fatal("VACUUM in a batch: got no error, want one (it cannot run in a transaction)")
	}
	if got := m.Sum(t, "tenantseal.db.statements", db.AttrOperation.String("other")); got != 1 {
		t.Errorf("statements of a command outside the closed set: got %d, want 1 under operation other", got)
	}
}
