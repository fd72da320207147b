package tenants_test

import (
	"context"
	"errors"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/tenantseal/tenantseal"
	"github.com/tenantseal/tenantseal/internal/eventtest"
	"github.com/tenantseal/tenantseal/internal/pgtest"
	"github.com/tenantseal/tenantseal/keys"
	"github.com/tenantseal/tenantseal/keys/pgstore"
	"github.com/tenantseal/tenantseal/tenants"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

func testContext(t testing.TB) context.Context { return pgtest.Context(t) }

func mustConn(t testing.TB, dsn string) *pgx.Conn { return pgtest.Conn(t, dsn) }

// mustKEK returns a new local KEK.
func mustKEK(t testing.TB) *keys.KEK {
	t.Helper()
	uri, err := keys.InitLocalKEK(filepath.Join(t.TempDir(), "kek.json"))
	if err != nil {
		t.Fatal(err)
	}
	kek, err := keys.OpenKEK(testContext(t), uri)
	if err != nil {
		t.Fatal(err)
	}
	return kek
}

// withKeysets creates keysets under kek, as the CLI does.
func withKeysets(kek *keys.KEK) tenants.KeysetCreator {
	return func(ctx context.Context, tx pgx.Tx, id tenantseal.TenantID) error {
		return pgstore.NewAdmin(tx, kek).CreateKeysets(ctx, id)
	}
}

func mustCreate(t testing.TB, db tenants.DB, name string, keysets tenants.KeysetCreator) tenants.Tenant {
	t.Helper()
	tn, err := tenants.Create(testContext(t), db, name, keysets)
	if err != nil {
		t.Fatalf("create %q: %v", name, err)
	}
	return tn
}

// keysetCount returns how many keysets the tenant has, read as the owner.
func keysetCount(t testing.TB, owner *pgx.Conn, id tenantseal.TenantID) int {
	t.Helper()
	var n int
	if err := owner.QueryRow(testContext(t), "SELECT count(*) FROM tenantseal.tenant_keysets WHERE tenant_id = $1", id).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// recorder keeps the events recorded through it.
type recorder = eventtest.Recorder

// statementCounter counts the statements a connection sends.
type statementCounter struct{ n atomic.Int64 }

func (c *statementCounter) TraceQueryStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceQueryStartData) context.Context {
	c.n.Add(1)
	return ctx
}
func (c *statementCounter) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

// countingConn connects to dsn with a tracer that counts its statements.
func countingConn(t testing.TB, dsn string) (*pgx.Conn, *statementCounter) {
	t.Helper()
	cc, err := pgx.ParseConfig(dsn)
	if err != nil {
		t.Fatal(err)
	}
	sc := &statementCounter{}
	cc.Tracer = sc
	c, err := pgx.ConnectConfig(testContext(t), cc)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(context.Background()) })
	return c, sc
}

// sqlState returns the SQLSTATE of a PostgreSQL error in err's chain, or "".
func sqlState(err error) string {
	var pg *pgconn.PgError
	if errors.As(err, &pg) {
		return pg.Code
	}
	return ""
}
