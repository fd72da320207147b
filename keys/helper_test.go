package keys_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/tenantseal/tenantseal/keys/pgstore"

	"github.com/tenantseal/tenantseal"

	"github.com/jackc/pgx/v5"
	"github.com/tink-crypto/tink-go/v2/aead"
	"github.com/tink-crypto/tink-go/v2/keyset"
	"github.com/tink-crypto/tink-go/v2/tink"

	"github.com/tenantseal/tenantseal/db"
	"github.com/tenantseal/tenantseal/internal/pgtest"
	"github.com/tenantseal/tenantseal/keys"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

func testContext(t testing.TB) context.Context { return pgtest.Context(t) }

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

func mustConn(t testing.TB, dsn string) *pgx.Conn { return pgtest.Conn(t, dsn) }

func mustPool(t testing.TB, d *pgtest.Database) *db.Pool { return d.Pool(t) }

func mustKeyring(t testing.TB, p *db.Pool, kek *keys.KEK) *keys.Keyring {
	t.Helper()
	kr, err := keys.NewKeyring(keys.Config{KEK: kek, Loader: pgstore.Loader(p)})
	if err != nil {
		t.Fatal(err)
	}
	return kr
}

// env is a migrated database with an owner-side Admin, the app pool and a Keyring.
type env struct {
	d     *pgtest.Database
	admin *keys.Admin
	pool  *db.Pool
	kr    *keys.Keyring
	kek   *keys.KEK
}

func newEnv(t *testing.T) *env {
	t.Helper()
	d := pgtest.NewDatabase(t)
	kek := mustKEK(t)
	p := mustPool(t, d)
	return &env{d: d, admin: &keys.Admin{DB: mustConn(t, d.OwnerDSN), KEK: kek}, pool: p, kr: mustKeyring(t, p, kek), kek: kek}
}

func (e *env) tenant(t *testing.T, name string) (tenantseal.TenantID, context.Context) {
	t.Helper()
	id, err := e.admin.CreateTenant(testContext(t), name)
	if err != nil {
		t.Fatal(err)
	}
	return id, tenantseal.WithPrincipal(testContext(t), tenantseal.Principal{Tenant: id, Subject: name + "-user"})
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
