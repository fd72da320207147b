package rekey_test

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/tenantseal/tenantseal"
	"github.com/tenantseal/tenantseal/db"
	"github.com/tenantseal/tenantseal/internal/pgtest"
	"github.com/tenantseal/tenantseal/keys"
	"github.com/tenantseal/tenantseal/keys/pgstore"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// The ledger table's names all need quoting, so that a statement built without pgx.Identifier fails.
const (
	ledger     = `"Ledger"."notes ""Q1"""` // schema Ledger, table notes "Q1"
	ledgerName = `notes "Q1"`
	mailCol    = "Mail Addr" // encrypted, with a blind index
	mailIdx    = "mail%d idx"
	bodyCol    = "body" // encrypted, no blind index
)

var (
	qMail = pgx.Identifier{mailCol}.Sanitize()
	qIdx  = pgx.Identifier{mailIdx}.Sanitize()
)

// env is a database of its own with the ledger table registered, an owner-side Admin, the app role's
// pool and a Keyring over it.
type env struct {
	d     *pgtest.Database
	owner *pgx.Conn
	admin *pgstore.Admin
	pool  *db.Pool
	kek   *keys.KEK
	kr    *keys.Keyring
	lk    *pgx.Conn // a session of its own for re-encryption's lock
}

func newEnv(t *testing.T) *env {
	t.Helper()
	d := pgtest.NewDatabase(t)
	uri, err := keys.InitLocalKEK(filepath.Join(t.TempDir(), "kek.json"))
	if err != nil {
		t.Fatal(err)
	}
	kek, err := keys.OpenKEK(t.Context(), uri)
	if err != nil {
		t.Fatal(err)
	}
	e := &env{d: d, owner: pgtest.Conn(t, d.OwnerDSN), pool: d.Pool(t), kek: kek, lk: pgtest.Conn(t, d.AppDSN)}
	e.admin = pgstore.NewAdmin(e.owner, kek)
	e.kr = e.keyring(t)
	app := pgx.Identifier{d.Roles.App}.Sanitize()
	for _, stmt := range []string{
		`CREATE SCHEMA "Ledger"`,
		`GRANT USAGE ON SCHEMA "Ledger" TO ` + app,
		`CREATE TABLE ` + ledger + ` (tenant_id uuid NOT NULL REFERENCES tenantseal.tenants (id), id uuid NOT NULL,
			` + qMail + ` bytea, ` + qIdx + ` bytea, body bytea, PRIMARY KEY (tenant_id, id))`,
		`SELECT tenantseal.protect_table($$` + ledger + `$$)`,
		fmt.Sprintf(`INSERT INTO tenantseal.encrypted_columns VALUES ($$%[1]s$$, '%[2]s', '%[3]s', 'email'), ($$%[1]s$$, '%[4]s', NULL, 'exact')`,
			ledger, mailCol, mailIdx, bodyCol),
	} {
		if _, err := e.owner.Exec(t.Context(), stmt); err != nil {
			t.Fatalf("%s: %v", stmt, err)
		}
	}
	return e
}

// pastRetireWait moves the tenant's last rotation back by a day, as if the retire wait had passed: no
// cache of a test process is that old.
func (e *env) pastRetireWait(t *testing.T, tenant tenantseal.TenantID) {
	t.Helper()
	if _, err := e.owner.Exec(t.Context(), "UPDATE tenantseal.tenant_keysets SET primary_since = primary_since - interval '1 day' WHERE tenant_id = $1", tenant); err != nil {
		t.Fatal(err)
	}
}

// keyring returns a new Keyring of the app role: its cache is its own.
func (e *env) keyring(t *testing.T) *keys.Keyring {
	t.Helper()
	kr, err := keys.NewKeyring(keys.Config{KEK: e.kek, Loader: pgstore.Loader(e.pool)})
	if err != nil {
		t.Fatal(err)
	}
	return kr
}

// tenant creates a tenant with its keysets and returns it with a context carrying one of its Principals.
func (e *env) tenant(t *testing.T, name string) (tenantseal.TenantID, context.Context) {
	t.Helper()
	id, err := e.admin.CreateTenant(t.Context(), name)
	if err != nil {
		t.Fatal(err)
	}
	return id, tenantseal.WithPrincipal(pgtest.Context(t), tenantseal.Principal{Tenant: id, Subject: name + "-user"})
}

// put writes a ledger row of the Principal's tenant with kr, inserting or replacing it.
func (e *env) put(ctx context.Context, kr *keys.Keyring, id, mail, body string) error {
	tenant, err := tenantseal.TenantFrom(ctx)
	if err != nil {
		return err
	}
	mailCT, err := kr.Encrypt(ctx, keys.Field{Table: ledgerName, Column: mailCol, Row: id}, []byte(mail))
	if err != nil {
		return err
	}
	bodyCT, err := kr.Encrypt(ctx, keys.Field{Table: ledgerName, Column: bodyCol, Row: id}, []byte(body))
	if err != nil {
		return err
	}
	idx, err := kr.BlindIndex(ctx, keys.Field{Table: ledgerName, Column: mailCol}, mail, keys.NormalizeEmail)
	if err != nil {
		return err
	}
	_, err = e.pool.Exec(ctx, `INSERT INTO `+ledger+` VALUES ($1, $2, $3, $4, $5)
		ON CONFLICT (tenant_id, id) DO UPDATE SET `+qMail+` = excluded.`+qMail+`, `+qIdx+` = excluded.`+qIdx+`, body = excluded.body`,
		tenant, id, mailCT, idx, bodyCT)
	return err
}

// newRow writes a new ledger row with the env's Keyring and returns its id.
func (e *env) newRow(t *testing.T, ctx context.Context, mail, body string) string {
	t.Helper()
	return e.newRowWith(t, ctx, e.kr, mail, body)
}

// newRowWith writes a new ledger row with kr and returns its id.
func (e *env) newRowWith(t *testing.T, ctx context.Context, kr *keys.Keyring, mail, body string) string {
	t.Helper()
	var id string
	if err := e.pool.QueryRow(ctx, "SELECT gen_random_uuid()::text").Scan(&id); err != nil {
		t.Fatal(err)
	}
	if err := e.put(ctx, kr, id, mail, body); err != nil {
		t.Fatal(err)
	}
	return id
}

// stored returns a row's stored ciphertext of column.
func (e *env) stored(t *testing.T, ctx context.Context, column, id string) []byte {
	t.Helper()
	var ct []byte
	if err := e.pool.QueryRow(ctx, "SELECT "+pgx.Identifier{column}.Sanitize()+" FROM "+ledger+" WHERE id = $1", id).Scan(&ct); err != nil {
		t.Fatal(err)
	}
	return ct
}

// read decrypts a row's column with a fresh Keyring, so that no cache hides what is stored.
func (e *env) read(t *testing.T, ctx context.Context, column, id string) (string, error) {
	t.Helper()
	pt, err := e.keyring(t).Decrypt(ctx, keys.Field{Table: ledgerName, Column: column, Row: id}, e.stored(t, ctx, column, id))
	return string(pt), err
}

// keyID returns the key id of a row's stored ciphertext of column.
func (e *env) keyID(t *testing.T, ctx context.Context, column, id string) uint32 {
	t.Helper()
	k, _ := keys.CiphertextKeyID(e.stored(t, ctx, column, id))
	return k
}
