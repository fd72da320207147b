package db_test

import (
	"context"
	"errors"
	"testing"

	"github.com/tenantseal/tenantseal"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/tenantseal/tenantseal/db"
	"github.com/tenantseal/tenantseal/internal/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

func testContext(t testing.TB) context.Context { return pgtest.Context(t) }

func mustConfig(t testing.TB, d *pgtest.Database, dsn string) *db.Config {
	return d.Config(t, dsn)
}

func mustOpen(t testing.TB, cfg *db.Config) *db.Pool {
	t.Helper()
	p, err := db.Open(testContext(t), cfg)
	if err != nil {
		t.Fatalf("db.Open: %v", err)
	}
	t.Cleanup(p.Close)
	return p
}

func mustConn(t testing.TB, dsn string) *pgx.Conn { return pgtest.Conn(t, dsn) }

func mustExec(t testing.TB, c *pgx.Conn, sql string, args ...any) {
	t.Helper()
	if _, err := c.Exec(testContext(t), sql, args...); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

// mustTenant creates a tenant as the owner, as `tenantseal tenants create` does.
func mustTenant(t testing.TB, d *pgtest.Database, name string) tenantseal.TenantID {
	t.Helper()
	var id tenantseal.TenantID
	if err := mustConn(t, d.OwnerDSN).QueryRow(testContext(t), "INSERT INTO tenantseal.tenants (name) VALUES ($1) RETURNING id", name).Scan(&id); err != nil {
		t.Fatal(err)
	}
	return id
}

func as(ctx context.Context, tenant tenantseal.TenantID, subject string, roles ...string) context.Context {
	return tenantseal.WithPrincipal(ctx, tenantseal.Principal{Tenant: tenant, Subject: subject, Roles: roles})
}

// sqlState returns the SQLSTATE of a PostgreSQL error in err's chain, or "".
func sqlState(err error) string {
	var pg *pgconn.PgError
	if errors.As(err, &pg) {
		return pg.Code
	}
	return ""
}
