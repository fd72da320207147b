package audit_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"go.opentelemetry.io/otel/metric"

	"github.com/tenantseal/tenantseal"
	"github.com/tenantseal/tenantseal/audit"
	"github.com/tenantseal/tenantseal/db"
	"github.com/tenantseal/tenantseal/examples/reference"
	"github.com/tenantseal/tenantseal/internal/pgtest"
	"github.com/tenantseal/tenantseal/keys"
	"github.com/tenantseal/tenantseal/keys/pgstore"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

func testContext(t testing.TB) context.Context { return pgtest.Context(t) }

func mustConn(t testing.TB, dsn string) *pgx.Conn { return pgtest.Conn(t, dsn) }

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func mustWriter(t testing.TB, d *pgtest.Database, edit ...func(*audit.Config)) *audit.Writer {
	t.Helper()
	cfg, err := audit.ParseConfig(d.AuditWriterDSN)
	if err != nil {
		t.Fatal(err)
	}
	cfg.SpoolPath, cfg.Logger = filepath.Join(t.TempDir(), "audit.spool"), quiet
	cfg.FlushInterval, cfg.RetryInterval = 20*time.Millisecond, 50*time.Millisecond
	for _, e := range edit {
		e(cfg)
	}
	w, err := audit.NewWriter(testContext(t), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close(context.Background()) })
	return w
}

// env wires a writer into the pool, the keyring and the repositories, as an application would.
type env struct {
	d         *pgtest.Database
	w         *audit.Writer
	pool      *db.Pool
	kr        *keys.Keyring
	admin     *pgstore.Admin
	customers *reference.Customers
}

func newEnv(t testing.TB, edit ...func(*db.Config)) *env { return newMeteredEnv(t, nil, edit...) }

// newMeteredEnv is newEnv whose writer, pool and keyring record their metrics with mp.
func newMeteredEnv(t testing.TB, mp metric.MeterProvider, edit ...func(*db.Config)) *env {
	t.Helper()
	ctx := testContext(t)
	d := pgtest.NewDatabase(t)
	if err := reference.Migrate(ctx, d.OwnerDSN); err != nil {
		t.Fatal(err)
	}
	w := mustWriter(t, d, func(c *audit.Config) { c.MeterProvider = mp })
	uri, err := keys.InitLocalKEK(filepath.Join(t.TempDir(), "kek.json"))
	if err != nil {
		t.Fatal(err)
	}
	kek, err := keys.OpenKEK(ctx, uri)
	if err != nil {
		t.Fatal(err)
	}
	pool := d.Pool(t, append([]func(*db.Config){func(c *db.Config) { c.Recorder, c.MeterProvider = w, mp }}, edit...)...)
	kr, err := keys.NewKeyring(keys.Config{KEK: kek, Loader: pgstore.Loader(pool), Recorder: w, MeterProvider: mp})
	if err != nil {
		t.Fatal(err)
	}
	customers, err := reference.NewCustomers(ctx, pool, kr)
	if err != nil {
		t.Fatal(err)
	}
	return &env{d: d, w: w, pool: pool, kr: kr, admin: pgstore.NewAdmin(mustConn(t, d.OwnerDSN), kek), customers: customers}
}

func (e *env) tenant(t testing.TB, name string, roles ...string) (tenantseal.TenantID, context.Context) {
	t.Helper()
	id, err := e.admin.CreateTenant(testContext(t), name)
	if err != nil {
		t.Fatal(err)
	}
	ctx := tenantseal.WithPrincipal(testContext(t), tenantseal.Principal{Tenant: id, Subject: name + "-user", Roles: roles})
	return id, audit.WithRequestID(ctx, "req-"+name)
}

// events flushes the writer and returns every entry, read as the auditor.
func (e *env) events(t testing.TB) []audit.Entry {
	t.Helper()
	if ok, err := e.w.Flush(testContext(t)); err != nil || !ok {
		t.Fatalf("flush: ok=%v err=%v", ok, err)
	}
	out, err := audit.Query(testContext(t), mustConn(t, e.d.AuditorDSN), audit.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// detections are the events but the keyset unwraps, which the keyring records on every cache miss.
func (e *env) detections(t testing.TB) []audit.Entry {
	t.Helper()
	var out []audit.Entry
	for _, en := range e.events(t) {
		if en.Kind != tenantseal.EventKeyUnwrap {
			out = append(out, en)
		}
	}
	return out
}

func str(s *string) string {
	if s == nil {
		return "<nil>"
	}
	return *s
}

// sqlState returns the SQLSTATE of a PostgreSQL error in err's chain, or "".
func sqlState(err error) string {
	var pg *pgconn.PgError
	if errors.As(err, &pg) {
		return pg.Code
	}
	return ""
}

// mustFlushWithin flushes w until everything recorded is in the database, and fails the test when some
// of it still waits in the spool after within.
func mustFlushWithin(t testing.TB, w *audit.Writer, within time.Duration, when string) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		ok, err := w.Flush(testContext(t))
		if err != nil {
			t.Fatal(err)
		}
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("events still spooled %v %s: %+v", within, when, w.Stats())
		}
		time.Sleep(50 * time.Millisecond)
	}
}
