package repo_test

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
	"github.com/tenantseal/tenantseal/repo"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

func testContext(t testing.TB) context.Context { return pgtest.Context(t) }

func mustConn(t testing.TB, dsn string) *pgx.Conn { return pgtest.Conn(t, dsn) }

// The tests here are of repo's own, over the tables that pgtest's template has from the examples'
// migrations, mapped by the examples' structs.
type (
	customer = reference.Customer
	invoice  = reference.Invoice
)

// env is a migrated database, the app pool, a keyring and repositories over customers and invoices.
type env struct {
	d         *pgtest.Database
	admin     *pgstore.Admin
	kek       *keys.KEK
	pool      *db.Pool
	kr        *keys.Keyring
	customers *repo.Table[customer]
	invoices  *repo.Table[invoice]
}

// newEnv opens the environment; edit adjusts the pool's configuration first.
func newEnv(t testing.TB, edit ...func(*db.Config)) *env {
	t.Helper()
	return envOn(t, pgtest.NewDatabase(t), edit...)
}

// envOn opens the environment on d.
func envOn(t testing.TB, d *pgtest.Database, edit ...func(*db.Config)) *env {
	t.Helper()
	ctx := testContext(t)
	uri, err := keys.InitLocalKEK(filepath.Join(t.TempDir(), "kek.json"))
	if err != nil {
		t.Fatal(err)
	}
	kek, err := keys.OpenKEK(ctx, uri)
	if err != nil {
		t.Fatal(err)
	}
	e := &env{d: d, admin: pgstore.NewAdmin(mustConn(t, d.OwnerDSN), kek), kek: kek}
	e.open(t, d.Pool(t, edit...))
	return e
}

// open makes e's keyring and repositories work over pool.
func (e *env) open(t testing.TB, pool *db.Pool) {
	t.Helper()
	var err error
	e.pool = pool
	if e.kr, err = keys.NewKeyring(keys.Config{KEK: e.kek, Loader: pgstore.Loader(pool)}); err != nil {
		t.Fatal(err)
	}
	e.customers = mustNew[customer](t, e, "public.customers")
	e.invoices = mustNew[invoice](t, e, "public.invoices")
}

func mustNew[T any](t testing.TB, e *env, table string) *repo.Table[T] {
	t.Helper()
	r, err := repo.New[T](testContext(t), e.pool, e.kr, table)
	if err != nil {
		t.Fatal(err)
	}
	return r
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

// owner runs sql as the owner role, for fixtures.
func (e *env) owner(t testing.TB, sql string, args ...any) {
	t.Helper()
	if _, err := mustConn(t, e.d.OwnerDSN).Exec(testContext(t), sql, args...); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

func mustCustomer(t testing.TB, e *env, ctx context.Context, name, email string) customer {
	t.Helper()
	c := customer{DisplayName: name, Email: email, Phone: "+1 555 0100"}
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

// recording returns a recorder and the pool configuration edit that sends the pool's events to it.
func recording() (*events, func(*db.Config)) {
	r := &events{}
	return r, func(c *db.Config) { c.Recorder = r }
}

func sqlState(err error) string {
	var pg *pgconn.PgError
	if errors.As(err, &pg) {
		return pg.Code
	}
	return ""
}

func ptr[T any](v T) *T { return &v }
