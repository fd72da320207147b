package pgstore_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/tink-crypto/tink-go/v2/aead"
	"github.com/tink-crypto/tink-go/v2/keyset"
	"github.com/tink-crypto/tink-go/v2/tink"

	"github.com/tenantseal/tenantseal"
	"github.com/tenantseal/tenantseal/db"
	"github.com/tenantseal/tenantseal/internal/eventtest"
	"github.com/tenantseal/tenantseal/internal/pgtest"
	"github.com/tenantseal/tenantseal/keys"
	"github.com/tenantseal/tenantseal/keys/pgstore"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// env is a migrated database of its own with an owner-side Admin, the app role's pool and a Keyring
// that loads through it and records into rec.
type env struct {
	d     *pgtest.Database
	owner *pgx.Conn
	admin *pgstore.Admin
	pool  *db.Pool
	kek   *keys.KEK
	kr    *keys.Keyring
	rec   *events
}

func newEnv(t *testing.T) *env {
	t.Helper()
	d := pgtest.NewDatabase(t)
	e := &env{d: d, owner: pgtest.Conn(t, d.OwnerDSN), pool: d.Pool(t), kek: mustKEK(t), rec: &events{}}
	e.admin = pgstore.NewAdmin(e.owner, e.kek)
	e.kr = e.keyring(t, e.kek)
	return e
}

// keyring returns a new Keyring that opens keysets with kek, loading them as the app role.
func (e *env) keyring(t *testing.T, kek *keys.KEK) *keys.Keyring {
	t.Helper()
	kr, err := keys.NewKeyring(keys.Config{KEK: kek, Loader: pgstore.Loader(e.pool), Recorder: e.rec})
	if err != nil {
		t.Fatal(err)
	}
	return kr
}

// tenant creates a tenant with its keysets and returns it with a context carrying one of its Principals.
func (e *env) tenant(t *testing.T, name string) (tenantseal.TenantID, context.Context) {
	t.Helper()
	id, err := e.admin.CreateTenant(pgtest.Context(t), name)
	if err != nil {
		t.Fatal(err)
	}
	return id, tenantseal.WithPrincipal(pgtest.Context(t), tenantseal.Principal{Tenant: id, Subject: name + "-user"})
}

// exec runs statements as the owner.
func (e *env) exec(t *testing.T, stmts ...string) {
	t.Helper()
	for _, s := range stmts {
		if _, err := e.owner.Exec(pgtest.Context(t), s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
}

// pastRetireWait moves the tenant's last rotation back by a day, as if the retire wait had passed: no
// cache of a test process is that old.
func (e *env) pastRetireWait(t *testing.T, tenant tenantseal.TenantID) {
	t.Helper()
	if _, err := e.owner.Exec(pgtest.Context(t), "UPDATE tenantseal.tenant_keysets SET primary_since = primary_since - interval '1 day' WHERE tenant_id = $1", tenant); err != nil {
		t.Fatal(err)
	}
}

// keysets returns every stored keyset row as the owner sees it: purpose and wrapped bytes by tenant.
func (e *env) keysets(t *testing.T) map[tenantseal.TenantID]map[string][]byte {
	t.Helper()
	rows, err := e.owner.Query(pgtest.Context(t), "SELECT tenant_id, purpose, wrapped FROM tenantseal.tenant_keysets")
	if err != nil {
		t.Fatal(err)
	}
	out := map[tenantseal.TenantID]map[string][]byte{}
	var id tenantseal.TenantID
	var purpose string
	var wrapped []byte
	if _, err := pgx.ForEachRow(rows, []any{&id, &purpose, &wrapped}, func() error {
		if out[id] == nil {
			out[id] = map[string][]byte{}
		}
		out[id][purpose] = wrapped
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

// encrypt encrypts pt as the Principal in ctx for the notes of row 1 of the vault table (which need not
// exist: the Keyring never looks).
func (e *env) encrypt(t *testing.T, ctx context.Context, pt string) []byte {
	t.Helper()
	ct, err := e.kr.Encrypt(ctx, field("notes", "1"), []byte(pt))
	if err != nil {
		t.Fatal(err)
	}
	return ct
}

// fakeAEAD is a fresh AES-GCM key, for a KEK that opens nothing stored.
func fakeAEAD(t testing.TB) tink.AEAD {
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

func mustKEK(t testing.TB) *keys.KEK {
	t.Helper()
	uri, err := keys.InitLocalKEK(filepath.Join(t.TempDir(), "kek.json"))
	if err != nil {
		t.Fatal(err)
	}
	k, err := keys.OpenKEK(t.Context(), uri)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// events keeps what is recorded: the keyset unwraps, which every cache miss records, apart from the
// rest (refusals, tampered ciphertexts, operator actions), which the tests check.
type events struct{ eventtest.Recorder }

// take returns the events but the unwraps recorded since the last call.
func (ev *events) take() []tenantseal.Event { return ev.TakeExcept(tenantseal.EventKeyUnwrap) }
