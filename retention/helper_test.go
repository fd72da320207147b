package retention_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tenantseal/tenantseal"
	"github.com/tenantseal/tenantseal/audit"
	"github.com/tenantseal/tenantseal/db"
	"github.com/tenantseal/tenantseal/internal/pgtest"
	"github.com/tenantseal/tenantseal/keys"
	"github.com/tenantseal/tenantseal/keys/pgstore"
	"github.com/tenantseal/tenantseal/retention"
	"github.com/tenantseal/tenantseal/tenants"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// operator is a test context acting as an operator, as the CLI's commands do.
func operator(t testing.TB) context.Context {
	return tenantseal.WithPrincipal(pgtest.Context(t), tenantseal.OperatorPrincipal("ada@ops"))
}

// env is a migrated database with two tenant tables: events (created_at timestamptz) and visits
// (day date), and tenants with keysets.
type env struct {
	d     *pgtest.Database
	owner *pgx.Conn
	pool  *db.Pool
	kek   *keys.KEK
}

func newEnv(t *testing.T) *env {
	t.Helper()
	d := pgtest.NewDatabase(t)
	uri, err := keys.InitLocalKEK(filepath.Join(t.TempDir(), "kek.json"))
	if err != nil {
		t.Fatal(err)
	}
	kek, err := keys.OpenKEK(pgtest.Context(t), uri)
	if err != nil {
		t.Fatal(err)
	}
	e := &env{d: d, owner: pgtest.Conn(t, d.OwnerDSN), kek: kek}
	for _, sql := range []string{
		`CREATE TABLE events (tenant_id uuid NOT NULL REFERENCES tenantseal.tenants (id), id uuid NOT NULL DEFAULT gen_random_uuid(),
			created_at timestamptz NOT NULL, secret bytea, PRIMARY KEY (tenant_id, id))`,
		`SELECT tenantseal.protect_table('events')`,
		`CREATE TABLE visits (tenant_id uuid NOT NULL REFERENCES tenantseal.tenants (id), id bigint GENERATED ALWAYS AS IDENTITY,
			day date NOT NULL, PRIMARY KEY (tenant_id, id))`,
		`SELECT tenantseal.protect_table('visits')`,
		`CREATE TABLE unprotected (tenant_id uuid NOT NULL, at timestamptz NOT NULL)`,
	} {
		if _, err := e.owner.Exec(pgtest.Context(t), sql); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	e.pool = d.Pool(t)
	return e
}

// tenant creates an active tenant with keysets and gives it policy (none for "").
func (e *env) tenant(t *testing.T, name, policy string) tenantseal.TenantID {
	t.Helper()
	ctx := operator(t)
	tn, err := tenants.Create(ctx, e.owner, name, func(ctx context.Context, tx pgx.Tx, id tenantseal.TenantID) error {
		return pgstore.NewAdmin(tx, e.kek).CreateKeysets(ctx, id)
	})
	if err != nil {
		t.Fatal(err)
	}
	if policy != "" {
		if err := tenants.SetRetentionPolicy(ctx, e.owner, tn.ID, policy); err != nil {
			t.Fatal(err)
		}
	}
	return tn.ID
}

// events inserts n events of tenant id created age ago, as the tenant.
func (e *env) events(t *testing.T, id tenantseal.TenantID, n int, age time.Duration) {
	t.Helper()
	ctx := tenantseal.WithPrincipal(pgtest.Context(t), tenantseal.Principal{Tenant: id, Subject: "app"})
	err := e.pool.Tx(ctx, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, "INSERT INTO events (tenant_id, created_at) SELECT $1, now() - $2 * interval '1 microsecond' FROM generate_series(1, $3)",
			id, age.Microseconds(), n)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

// count returns how many rows of table (events or visits) tenant id has older than olderThan, read as
// a superuser, whom row-level security does not restrict.
func (e *env) count(t *testing.T, table string, id tenantseal.TenantID, olderThan time.Duration) int64 {
	t.Helper()
	col := map[string]string{"events": "created_at", "visits": "day"}[table]
	var n int64
	err := pgtest.Conn(t, e.d.SuperDSN).QueryRow(pgtest.Context(t),
		"SELECT count(*) FROM "+table+" WHERE tenant_id = $1 AND "+col+" < now() - $2 * interval '1 microsecond'", id, olderThan.Microseconds()).Scan(&n)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// setPolicy sets a policy through rec, failing the test on an error.
func (e *env) setPolicy(t *testing.T, rec tenantseal.Recorder, p retention.Policy) retention.Policy {
	t.Helper()
	got, _, err := retention.SetPolicy(operator(t), e.owner, rec, p)
	if err != nil {
		t.Fatalf("set policy %s: %v", p.Name, err)
	}
	return got
}

// writer starts an audit writer of the database, closed with the test.
func (e *env) writer(t *testing.T) *audit.Writer {
	t.Helper()
	cfg, err := audit.ParseConfig(e.d.AuditWriterDSN)
	if err != nil {
		t.Fatal(err)
	}
	cfg.SpoolPath = filepath.Join(t.TempDir(), "audit.spool")
	w, err := audit.NewWriter(pgtest.Context(t), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close(context.Background()) })
	return w
}

// flush waits until the audit log holds what w recorded.
func flush(t *testing.T, w *audit.Writer) {
	t.Helper()
	if ok, err := w.Flush(pgtest.Context(t)); err != nil || !ok {
		t.Fatalf("flush: %v, %v", ok, err)
	}
}

func days(n int) time.Duration { return time.Duration(n) * retention.Day }

func ptr[T any](v T) *T { return &v }
