package migrations_test

import (
	"context"
	"errors"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/tenantseal/tenantseal/db"
	"github.com/tenantseal/tenantseal/integration"
)

func TestMain(m *testing.M) { integration.Main(m) }

func testContext(t testing.TB) context.Context { return integration.Context(t) }

func mustConn(t testing.TB, dsn string) *pgx.Conn { return integration.Conn(t, dsn) }

func mustPool(t testing.TB, d *integration.Database, edit ...func(*db.Config)) *db.Pool {
	return d.Pool(t, edit...)
}

func mustTenant(t testing.TB, d *integration.Database, name string) db.TenantID {
	t.Helper()
	var id db.TenantID
	if err := mustConn(t, d.OwnerDSN).QueryRow(testContext(t), "INSERT INTO tenants (name) VALUES ($1) RETURNING id", name).Scan(&id); err != nil {
		t.Fatal(err)
	}
	return id
}

func as(ctx context.Context, tenant db.TenantID, subject string, roles ...string) context.Context {
	return db.WithPrincipal(ctx, db.Principal{Tenant: tenant, Subject: subject, Roles: roles})
}

// sqlState returns the SQLSTATE of err, or "" when err is not a server error.
func sqlState(err error) string {
	var pg *pgconn.PgError
	if errors.As(err, &pg) {
		return pg.Code
	}
	return ""
}
