package db_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/tenantseal/tenantseal"

	"github.com/jackc/pgx/v5"

	"github.com/tenantseal/tenantseal/db"
	"github.com/tenantseal/tenantseal/internal/pgtest"
)

func TestOpenRefusesUnsafeRoles(t *testing.T) {
	t.Parallel()
	d := pgtest.NewDatabase(t)
	super := mustConn(t, d.SuperDSN)
	suffix := strings.TrimPrefix(d.Name, d.Roles.Owner[:len(d.Roles.Owner)-len("_owner")])
	mk := func(name, attrs string, extra ...string) string {
		role := "guard" + suffix + "_" + name
		mustExec(t, super, fmt.Sprintf("CREATE ROLE %s LOGIN PASSWORD 'pw' %s", role, attrs))
		mustExec(t, super, fmt.Sprintf("GRANT CONNECT ON DATABASE %s TO %s", d.Name, role))
		for _, e := range extra {
			mustExec(t, super, fmt.Sprintf(e, role))
		}
		t.Cleanup(func() {
			c := mustConn(t, d.SuperDSN)
			c.Exec(testContext(t), fmt.Sprintf("DROP OWNED BY %s; DROP ROLE %s", role, role))
		})
		u := *mustParseURL(t, d.AppDSN)
		u.User = mustUser(role)
		return u.String()
	}
	tests := []struct {
		name, dsn, problem string
	}{
		{"superuser", mk("super", "SUPERUSER"), "is a superuser"},
		{"bypassrls", mk("bypass", "BYPASSRLS"), "has BYPASSRLS"},
		{"the owner itself", d.OwnerDSN, "is the owner role"},
		{"owner member", mk("member", "", "GRANT "+d.Roles.Owner+" TO %s"), "is a member of the owner role"},
		{"member of a BYPASSRLS role", mk("probemember", "", "GRANT "+d.Roles.Probe+" TO %s"), "member of roles that bypass row-level security (" + d.Roles.Probe},
		{"table owner", mk("tabowner", "", "CREATE TABLE public.%[1]s_t (id int)", "ALTER TABLE public.%[1]s_t OWNER TO %[1]s"), "owns tables (public."},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, err := db.Open(testContext(t), mustConfig(t, d, tc.dsn))
			if err == nil {
				p.Close()
				t.Fatal("Open succeeded, want a refusal")
			}
			var re *db.RoleError
			if !errors.As(err, &re) || !errors.Is(err, db.ErrUnsafeRole) {
				t.Fatalf("got %v, want a *db.RoleError", err)
			}
			if !strings.Contains(re.Problem, tc.problem) || re.Fix == "" {
				t.Errorf("got problem %q fix %q, want problem containing %q and a fix", re.Problem, re.Fix, tc.problem)
			}
		})
	}
	t.Run("app role accepted", func(t *testing.T) {
		mustOpen(t, mustConfig(t, d, d.AppDSN))
	})
}

func TestNoTenantSendsNoSQL(t *testing.T) {
	t.Parallel()
	d := pgtest.NewDatabase(t)
	cfg := mustConfig(t, d, d.AppDSN)
	qc := &pgtest.Statements{}
	cfg.PoolConfig.ConnConfig.Tracer = qc
	p := mustOpen(t, cfg)
	ctx := testContext(t)
	before := qc.N()

	_, err := p.Exec(ctx, "DELETE FROM customers")
	if !errors.Is(err, tenantseal.ErrNoTenant) {
		t.Errorf("Exec: got %v, want tenantseal.ErrNoTenant", err)
	}
	_, err = p.Query(ctx, "SELECT 1")
	if !errors.Is(err, tenantseal.ErrNoTenant) {
		t.Errorf("Query: got %v, want tenantseal.ErrNoTenant", err)
	}
	var n int
	if err := p.QueryRow(ctx, "SELECT 1").Scan(&n); !errors.Is(err, tenantseal.ErrNoTenant) {
		t.Errorf("QueryRow: got %v, want tenantseal.ErrNoTenant", err)
	}
	called := false
	err = p.Tx(ctx, func(pgx.Tx) error { called = true; return nil })
	if !errors.Is(err, tenantseal.ErrNoTenant) || called {
		t.Errorf("Tx: got %v (fn called: %v), want tenantseal.ErrNoTenant without calling fn", err, called)
	}
	// A Principal with the zero tenant is no tenant either.
	if _, err := p.Exec(tenantseal.WithPrincipal(ctx, tenantseal.Principal{Subject: "x"}), "SELECT 1"); !errors.Is(err, tenantseal.ErrNoTenant) {
		t.Errorf("zero tenant: got %v, want tenantseal.ErrNoTenant", err)
	}
	if got := qc.N(); got != before {
		t.Errorf("got %d statements sent, want 0", got-before)
	}
}
