package migrations_test

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

func mustConn(t testing.TB, dsn string) *pgx.Conn { return pgtest.Conn(t, dsn) }

func mustPool(t testing.TB, d *pgtest.Database, edit ...func(*db.Config)) *db.Pool {
	return d.Pool(t, edit...)
}

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

// sqlState returns the SQLSTATE of err, or "" when err is not a server error.
func sqlState(err error) string {
	var pg *pgconn.PgError
	if errors.As(err, &pg) {
		return pg.Code
	}
	return ""
}
