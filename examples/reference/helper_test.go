package reference_test

import (
	"context"
	"errors"
	"path/filepath"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/tenantseal/tenantseal"
	"github.com/tenantseal/tenantseal/db"
	"github.com/tenantseal/tenantseal/examples/reference"
	"github.com/tenantseal/tenantseal/internal/pgtest"
	"github.com/tenantseal/tenantseal/keys"
	"github.com/tenantseal/tenantseal/keys/pgstore"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

func testContext(t testing.TB) context.Context { return pgtest.Context(t) }

func mustConn(t testing.TB, dsn string) *pgx.Conn { return pgtest.Conn(t, dsn) }

// env is a database migrated with tenantseal's and the reference migrations (pgtest's template), the
// app pool, a keyring, the reference repositories and what the pool records.
type env struct {
	d         *pgtest.Database
	admin     *pgstore.Admin
	pool      *db.Pool
	events    *events
	customers *reference.Customers
	invoices  *reference.Invoices
	documents *reference.Documents
}

func newEnv(t testing.TB) *env {
	t.Helper()
	ctx := testContext(t)
	e := &env{d: pgtest.NewDatabase(t), events: &events{}}
	uri, err := keys.InitLocalKEK(filepath.Join(t.TempDir(), "kek.json"))
	if err != nil {
		t.Fatal(err)
	}
	kek, err := keys.OpenKEK(ctx, uri)
	if err != nil {
		t.Fatal(err)
	}
	e.admin = pgstore.NewAdmin(mustConn(t, e.d.OwnerDSN), kek)
	e.pool = e.d.Pool(t, func(c *db.Config) { c.Recorder = e.events })
	kr, err := keys.NewKeyring(keys.Config{KEK: kek, Loader: pgstore.Loader(e.pool)})
	if err != nil {
		t.Fatal(err)
	}
	if e.customers, err = reference.NewCustomers(ctx, e.pool, kr); err != nil {
		t.Fatal(err)
	}
	if e.invoices, err = reference.NewInvoices(ctx, e.pool, kr); err != nil {
		t.Fatal(err)
	}
	if e.documents, err = reference.NewDocuments(ctx, e.pool, kr); err != nil {
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

func mustCustomer(t testing.TB, e *env, ctx context.Context, name, email string) reference.Customer {
	t.Helper()
	c := reference.Customer{DisplayName: name, Email: email, Phone: "+1 555 0100"}
	if err := e.customers.Insert(ctx, &c); err != nil {
		t.Fatal(err)
	}
	return c
}

// events collects what the pool records.
type events struct {
	mu  sync.Mutex
	got []tenantseal.Event
}

func (r *events) Record(_ context.Context, e tenantseal.Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.got = append(r.got, e)
}

// take returns the events recorded since the last take.
func (r *events) take() []tenantseal.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.got
	r.got = nil
	return out
}

func sqlState(err error) string {
	var pg *pgconn.PgError
	if errors.As(err, &pg) {
		return pg.Code
	}
	return ""
}

func ptr[T any](v T) *T { return &v }
