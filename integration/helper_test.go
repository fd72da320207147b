package integration_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/tenantseal/tenantseal"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/tenantseal/tenantseal/db"
	"github.com/tenantseal/tenantseal/internal/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

func testContext(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func mustConn(t testing.TB, dsn string) *pgx.Conn {
	t.Helper()
	c, err := pgx.Connect(testContext(t, time.Minute), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(context.Background()) })
	return c
}

func prefixOf(d *pgtest.Database) string { return strings.TrimSuffix(d.Roles.Owner, "_owner") }

// mustPool opens the app role's db.Pool on d, edited by edit.
func mustPool(t testing.TB, d *pgtest.Database, dsn string, edit ...func(*db.Config)) *db.Pool {
	t.Helper()
	cfg, err := db.ParseConfig(dsn)
	if err != nil {
		t.Fatal(err)
	}
	cfg.SigningKey = d.ContextKey
	cfg.RolePrefix = prefixOf(d)
	for _, e := range edit {
		e(cfg)
	}
	p, err := db.Open(testContext(t, time.Minute), cfg)
	if err != nil {
		t.Fatalf("db.Open: %v", err)
	}
	t.Cleanup(p.Close)
	return p
}

// mustTenant creates a tenant as the owner.
func mustTenant(t testing.TB, d *pgtest.Database, name string) tenantseal.TenantID {
	t.Helper()
	var id tenantseal.TenantID
	if err := mustConn(t, d.OwnerDSN).QueryRow(testContext(t, time.Minute), "INSERT INTO tenantseal.tenants (name) VALUES ($1) RETURNING id", name).Scan(&id); err != nil {
		t.Fatal(err)
	}
	return id
}

func as(ctx context.Context, tenant tenantseal.TenantID, subject string) context.Context {
	return tenantseal.WithPrincipal(ctx, tenantseal.Principal{Tenant: tenant, Subject: subject})
}

func sqlState(err error) string {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code
	}
	return ""
}
