package migrations_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/tenantseal/tenantseal/db"
	"github.com/tenantseal/tenantseal/integration"
)

func TestMain(m *testing.M) { integration.Main(m) }

func testContext(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func mustConn(t testing.TB, dsn string) *pgx.Conn {
	t.Helper()
	c, err := pgx.Connect(testContext(t), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(context.Background()) })
	return c
}

func prefixOf(d *integration.Database) string { return strings.TrimSuffix(d.Roles.Owner, "_owner") }

func mustPool(t testing.TB, d *integration.Database, edit ...func(*db.Config)) *db.Pool {
	t.Helper()
	cfg, err := db.ParseConfig(d.AppDSN)
	if err != nil {
		t.Fatal(err)
	}
	cfg.SigningKey = d.ContextKey
	cfg.RolePrefix = prefixOf(d)
	for _, e := range edit {
		e(cfg)
	}
	p, err := db.Open(testContext(t), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p
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
