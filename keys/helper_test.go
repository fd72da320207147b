package keys_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/tenantseal/tenantseal/db"
	"github.com/tenantseal/tenantseal/integration"
	"github.com/tenantseal/tenantseal/keys"
	"github.com/tink-crypto/tink-go/v2/aead"
	"github.com/tink-crypto/tink-go/v2/keyset"
	"github.com/tink-crypto/tink-go/v2/tink"
)

func TestMain(m *testing.M) { integration.Main(m) }

func testContext(t testing.TB) context.Context { return integration.Context(t) }

func mustKEK(t testing.TB) *keys.KEK {
	t.Helper()
	uri, err := keys.InitLocalKEK(filepath.Join(t.TempDir(), "kek.json"))
	if err != nil {
		t.Fatal(err)
	}
	k, err := keys.OpenKEK(testContext(t), uri)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func mustConn(t testing.TB, dsn string) *pgx.Conn { return integration.Conn(t, dsn) }

func mustPool(t testing.TB, d *integration.Database) *db.Pool { return d.Pool(t) }

func mustKeyring(t testing.TB, p *db.Pool, kek *keys.KEK) *keys.Keyring {
	t.Helper()
	kr, err := keys.NewKeyring(keys.Config{KEK: kek, Loader: keys.PoolLoader(p)})
	if err != nil {
		t.Fatal(err)
	}
	return kr
}

// env is a migrated database with an owner-side Admin, the app pool and a Keyring.
type env struct {
	d     *integration.Database
	admin *keys.Admin
	pool  *db.Pool
	kr    *keys.Keyring
	kek   *keys.KEK
}

func newEnv(t *testing.T) *env {
	t.Helper()
	d := integration.NewDatabase(t)
	kek := mustKEK(t)
	p := mustPool(t, d)
	return &env{d: d, admin: &keys.Admin{DB: mustConn(t, d.OwnerDSN), KEK: kek}, pool: p, kr: mustKeyring(t, p, kek), kek: kek}
}

func (e *env) tenant(t *testing.T, name string) (db.TenantID, context.Context) {
	t.Helper()
	id, err := e.admin.CreateTenant(testContext(t), name)
	if err != nil {
		t.Fatal(err)
	}
	return id, db.WithPrincipal(testContext(t), db.Principal{Tenant: id, Subject: name + "-user"})
}

func newAEAD(t testing.TB) tink.AEAD {
	t.Helper()
	h, err := keyset.NewHandle(aead.AES256GCMKeyTemplate())
	if err != nil {
		t.Fatal(err)
	}
	a, err := aead.New(h)
	if err != nil {
		t.Fatal(err)
	}
	return a
}
