package repo_test

import (
	"context"
	"errors"
	"path/filepath"
	"testing"

	"github.com/tenantseal/tenantseal/keys/pgstore"

	"github.com/tenantseal/tenantseal"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/tenantseal/tenantseal/db"
	"github.com/tenantseal/tenantseal/internal/pgtest"
	"github.com/tenantseal/tenantseal/keys"
	"github.com/tenantseal/tenantseal/repo"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

func testContext(t testing.TB) context.Context { return pgtest.Context(t) }

func mustConn(t testing.TB, dsn string) *pgx.Conn { return pgtest.Conn(t, dsn) }

// env is a migrated database, the app pool, a keyring and the reference repositories.
type env struct {
	d         *pgtest.Database
	admin     *keys.Admin
	pool      *db.Pool
	kr        *keys.Keyring
	customers *repo.Customers
	invoices  *repo.Invoices
	documents *repo.Documents
}

func newEnv(t testing.TB) *env {
	t.Helper()
	ctx := testContext(t)
	d := pgtest.NewDatabase(t)
	uri, err := keys.InitLocalKEK(filepath.Join(t.TempDir(), "kek.json"))
	if err != nil {
		t.Fatal(err)
	}
	kek, err := keys.OpenKEK(ctx, uri)
	if err != nil {
		t.Fatal(err)
	}
	pool := d.Pool(t)
	kr, err := keys.NewKeyring(keys.Config{KEK: kek, Loader: pgstore.Loader(pool)})
	if err != nil {
		t.Fatal(err)
	}
	e := &env{d: d, admin: &keys.Admin{DB: mustConn(t, d.OwnerDSN), KEK: kek}, pool: pool, kr: kr}
	if e.customers, err = repo.NewCustomers(ctx, pool, kr); err != nil {
		t.Fatal(err)
	}
	if e.invoices, err = repo.NewInvoices(ctx, pool, kr); err != nil {
		t.Fatal(err)
	}
	if e.documents, err = repo.NewDocuments(ctx, pool, kr); err != nil {
		t.Fatal(err)
	}
	return e
}

// tenant creates a tenant with its keysets and returns a context of one of its users.
func (e *env) tenant(t testing.TB, name string) (tenantseal.TenantID, context.Context) {
	t.Helper()
	id, err := e.admin.CreateTenant(testContext(t), name)
	if err != nil {
		t.Fatal(err)
	}
	return id, tenantseal.WithPrincipal(testContext(t), tenantseal.Principal{Tenant: id, Subject: name + "-user"})
}

func mustCustomer(t testing.TB, e *env, ctx context.Context, name, email string) repo.Customer {
	t.Helper()
	c := repo.Customer{DisplayName: name, Email: email, Phone: "+1 555 0100"}
	if err := e.customers.Insert(ctx, &c); err != nil {
		t.Fatal(err)
	}
	return c
}

func sqlState(err error) string {
	var pg *pgconn.PgError
	if errors.As(err, &pg) {
		return pg.Code
	}
	return ""
}

func ptr[T any](v T) *T { return &v }
