package pgstore_test

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/jackc/pgx/v5"

	"github.com/tenantseal/tenantseal"
	"github.com/tenantseal/tenantseal/db"
	"github.com/tenantseal/tenantseal/internal/pgtest"
	"github.com/tenantseal/tenantseal/keys"
	"github.com/tenantseal/tenantseal/keys/pgstore"
)

// The vault table has names that work only when quoted: "Vault"."50%d_off" with column "e-mail".
const vault = `"Vault"."50%d_off"`

// vaultTable creates and registers the vault table as the owner, as an application's migration would.
func (e *env) vaultTable(t *testing.T) {
	t.Helper()
	app := pgx.Identifier{e.d.Roles.App}.Sanitize()
	e.exec(t, `CREATE SCHEMA "Vault"`, `GRANT USAGE ON SCHEMA "Vault" TO `+app,
		`CREATE TABLE `+vault+` (tenant_id uuid NOT NULL REFERENCES tenantseal.tenants (id), id uuid NOT NULL DEFAULT gen_random_uuid(),
			"e-mail" bytea, "e-mail bidx" bytea, notes bytea, PRIMARY KEY (tenant_id, id))`,
		`SELECT tenantseal.protect_table('`+vault+`')`,
		`INSERT INTO tenantseal.encrypted_columns VALUES ('`+vault+`', 'e-mail', 'e-mail bidx', 'email'), ('`+vault+`', 'notes', NULL, 'exact')`)
}

// field names a column of the vault table.
func field(column, row string) keys.Field {
	return keys.Field{Table: "50%d_off", Column: column, Row: row}
}

// insert stores an encrypted row of the Principal's tenant through the app pool and returns its id.
func (e *env) insert(t *testing.T, ctx context.Context, mail, notes string) string {
	t.Helper()
	var id string
	if err := e.pool.QueryRow(ctx, "SELECT gen_random_uuid()::text").Scan(&id); err != nil {
		t.Fatal(err)
	}
	tenant, _ := tenantseal.TenantFrom(ctx)
	mailCT, err := e.kr.Encrypt(ctx, field("e-mail", id), []byte(mail))
	if err != nil {
		t.Fatal(err)
	}
	idx, err := e.kr.BlindIndex(ctx, field("e-mail", ""), mail, keys.NormalizeEmail)
	if err != nil {
		t.Fatal(err)
	}
	notesCT, err := e.kr.Encrypt(ctx, field("notes", id), []byte(notes))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.pool.Exec(ctx, `INSERT INTO `+vault+` (tenant_id, id, "e-mail", "e-mail bidx", notes) VALUES ($1, $2, $3, $4, $5)`,
		tenant, id, mailCT, idx, notesCT); err != nil {
		t.Fatal(err)
	}
	return id
}

// read decrypts a stored field of the vault table as the Principal in ctx.
func (e *env) read(t *testing.T, ctx context.Context, column, id string) ([]byte, error) {
	t.Helper()
	var ct []byte
	if err := e.pool.QueryRow(ctx, "SELECT "+pgx.Identifier{column}.Sanitize()+" FROM "+vault+" WHERE id = $1", id).Scan(&ct); err != nil {
		t.Fatal(err)
	}
	return e.kr.Decrypt(ctx, field(column, id), ct)
}

func TestRoundTripThroughPostgres(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.vaultTable(t)
	_, ctxA := e.tenant(t, "a")
	_, ctxB := e.tenant(t, "b")
	ids := []string{e.insert(t, ctxA, "Ada@Example.com ", "prefers e-mail"), e.insert(t, ctxB, "grace@example.com", "net 30")}
	for _, tc := range []struct {
		ctx        context.Context
		column, id string
		want       string
	}{
		{ctxA, "e-mail", ids[0], "Ada@Example.com "},
		{ctxA, "notes", ids[0], "prefers e-mail"},
		{ctxB, "notes", ids[1], "net 30"},
	} {
		if got, err := e.read(t, tc.ctx, tc.column, tc.id); err != nil || string(got) != tc.want {
			t.Errorf("%s of %s: got %q (%v), want %q", tc.column, tc.id, got, err, tc.want)
		}
	}
	// The database holds no plaintext: look at every stored byte as a superuser.
	rows, err := pgtest.Conn(t, e.d.SuperDSN).Query(ctxA, `SELECT "e-mail" || "e-mail bidx" || notes FROM `+vault)
	if err != nil {
		t.Fatal(err)
	}
	stored, err := pgx.CollectRows(rows, pgx.RowTo[[]byte])
	if err != nil || len(stored) != 2 {
		t.Fatalf("got %d stored rows (%v), want 2", len(stored), err)
	}
	for _, raw := range stored {
		for _, plain := range []string{"Ada@Example.com", "ada@example.com", "grace", "prefers", "net 30"} {
			if bytes.Contains(raw, []byte(plain)) || len(raw) < 2*keys.BlindIndexSize {
				t.Errorf("stored row %x: contains plaintext %q or is too short to hold ciphertexts", raw, plain)
			}
		}
	}
	// The blind index finds the row from a differently written address, and only within its tenant.
	for _, tc := range []struct {
		name string
		ctx  context.Context
		want []string
	}{{"own tenant", ctxA, []string{ids[0]}}, {"other tenant", ctxB, nil}} {
		idx, err := e.kr.BlindIndexes(tc.ctx, field("e-mail", ""), "  ada@EXAMPLE.com", keys.NormalizeEmail)
		if err != nil {
			t.Fatal(err)
		}
		rows, err := e.pool.Query(tc.ctx, `SELECT id::text FROM `+vault+` WHERE "e-mail bidx" = ANY($1)`, idx)
		if err != nil {
			t.Fatal(err)
		}
		found, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil || !cmp.Equal(found, tc.want, cmpopts.EquateEmpty()) {
			t.Errorf("lookup by blind index, %s: got %v (%v), want %v", tc.name, found, err, tc.want)
		}
	}
}

// A ciphertext copied to another column, row or tenant by someone with the tables (a superuser here)
// does not decrypt where it lands.
func TestCopiedCiphertextsAreTampered(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.vaultTable(t)
	_, ctxA := e.tenant(t, "a")
	_, ctxB := e.tenant(t, "b")
	a1 := e.insert(t, ctxA, "a1@x", "note a1")
	a2 := e.insert(t, ctxA, "a2@x", "note a2")
	b1 := e.insert(t, ctxB, "b1@x", "note b1")
	super := pgtest.Conn(t, e.d.SuperDSN)
	tests := []struct {
		name, sql   string
		args        []any
		ctx         context.Context
		column, row string
	}{
		{"column", `UPDATE ` + vault + ` SET notes = "e-mail" WHERE id = $1`, []any{a1}, ctxA, "notes", a1},
		{"row", `UPDATE ` + vault + ` SET notes = (SELECT notes FROM ` + vault + ` WHERE id = $1) WHERE id = $2`, []any{a1, a2}, ctxA, "notes", a2},
		{"tenant", `UPDATE ` + vault + ` SET notes = (SELECT notes FROM ` + vault + ` WHERE id = $1) WHERE id = $2`, []any{a1, b1}, ctxB, "notes", b1},
	}
	for _, tc := range tests {
		if _, err := super.Exec(ctxA, tc.sql, tc.args...); err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		got, err := e.read(t, tc.ctx, tc.column, tc.row)
		var fe *keys.FieldError
		if !errors.Is(err, keys.ErrTampered) || !errors.As(err, &fe) || fe.Row != tc.row || fe.Column != tc.column || got != nil {
			t.Errorf("%s copy: got %q, %v; want ErrTampered as a *FieldError for %s row %s", tc.name, got, err, tc.column, tc.row)
		}
		if err != nil && (strings.Contains(err.Error(), "note a") || strings.Contains(err.Error(), "@x")) {
			t.Errorf("%s copy: error %q contains plaintext", tc.name, err)
		}
	}
}

// Row-level security lets a Principal load only its own tenant's keysets, whatever tenant is asked for.
func TestLoaderReadsOnlyThePrincipalsKeysets(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a, _ := e.tenant(t, "a")
	b, ctxB := e.tenant(t, "b")
	l := pgstore.Loader(e.pool)
	if _, err := l.LoadKeysets(ctxB, a); !errors.Is(err, keys.ErrNoKeyset) {
		t.Errorf("b loads a's keysets: got %v, want ErrNoKeyset", err)
	}
	w, err := l.LoadKeysets(ctxB, b)
	if err != nil || w.AEAD == nil || w.PRF == nil || w.Canary == nil || w.KEKID != e.kek.ID {
		t.Errorf("b loads its own keysets: got %d/%d bytes, canary %v, KEK %q (%v); want both keysets, the canary and KEK %q",
			len(w.AEAD), len(w.PRF), w.Canary != nil, w.KEKID, err, e.kek.ID)
	}
	// The pool's error carries its prefix already: pgstore adds none in front.
	_, err = l.LoadKeysets(pgtest.Context(t), b)
	if !errors.Is(err, tenantseal.ErrNoTenant) || !strings.HasPrefix(err.Error(), "tenantseal: ") || strings.Count(err.Error(), ": ") != 2 {
		t.Errorf("load without a Principal: got %q, want ErrNoTenant with one prefix, and what failed after it", err)
	}
	var n int
	if err := e.pool.QueryRow(ctxB, "SELECT count(*) FROM tenantseal.tenant_keysets").Scan(&n); err != nil || n != 2 {
		t.Errorf("app role sees %d keysets (%v), want its own 2", n, err)
	}
}

// After principal A warmed the cache, principal B gets nothing out of A's ciphertext: B's own keys do not
// open it, and a field naming A is refused outright; each attempt is recorded once.
func TestWarmCacheServesNoOtherPrincipal(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.vaultTable(t)
	a, ctxA := e.tenant(t, "a")
	b, ctxB := e.tenant(t, "b")
	id := e.insert(t, ctxA, "a@x", "a's secret")
	var ct []byte
	if err := e.pool.QueryRow(ctxA, "SELECT notes FROM "+vault+" WHERE id = $1", id).Scan(&ct); err != nil {
		t.Fatal(err)
	}
	if pt, err := e.kr.Decrypt(ctxA, field("notes", id), ct); err != nil || string(pt) != "a's secret" {
		t.Fatalf("a reads its own field: got %q (%v)", pt, err)
	}
	e.rec.take()
	named := field("notes", id)
	named.Tenant = a
	tests := []struct {
		name string
		f    keys.Field
		want error
		kind tenantseal.EventKind
		on   tenantseal.TenantID
	}{
		{"field without tenant", field("notes", id), keys.ErrTampered, tenantseal.EventTampered, b},
		{"field naming a", named, tenantseal.ErrTenantMismatch, tenantseal.EventTenantMismatch, a},
	}
	for _, tc := range tests {
		pt, err := e.kr.Decrypt(ctxB, tc.f, ct)
		if !errors.Is(err, tc.want) || pt != nil {
			t.Errorf("%s: got %q, %v; want no plaintext and %v", tc.name, pt, err, tc.want)
		}
		want := []tenantseal.Event{{Kind: tc.kind, TargetTenant: tc.on, Table: "50%d_off", Operation: "decrypt", RowKey: id}}
		if diff := cmp.Diff(want, e.rec.take(), cmpopts.IgnoreFields(tenantseal.Event{}, "Detail")); diff != "" {
			t.Errorf("%s: recorded events (-want +got):\n%s", tc.name, diff)
		}
	}
}

func TestKeysetCopiedToAnotherTenantDoesNotOpen(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a, _ := e.tenant(t, "a")
	b, ctxB := e.tenant(t, "b")
	// Copy a's wrapped keysets over b's, as an insider could.
	if _, err := pgtest.Conn(t, e.d.SuperDSN).Exec(ctxB, `UPDATE tenantseal.tenant_keysets t SET wrapped = s.wrapped
		FROM tenantseal.tenant_keysets s WHERE s.tenant_id = $1 AND t.tenant_id = $2 AND s.purpose = t.purpose`, a, b); err != nil {
		t.Fatal(err)
	}
	if _, err := e.kr.Encrypt(ctxB, field("notes", "x"), []byte("y")); !errors.Is(err, keys.ErrKeysetTampered) {
		t.Errorf("got %v, want ErrKeysetTampered", err)
	}
}

// Inside a transaction, WithQuerier makes the loader use it: a pool of one connection does not wait for
// a second.
func TestWithQuerierLoadsInsideTheTransaction(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a, ctxA := e.tenant(t, "a")
	one := e.d.Pool(t, func(c *db.Config) { c.PoolConfig.MaxConns = 1 })
	l := pgstore.Loader(one)
	err := one.Tx(ctxA, func(tx pgx.Tx) error {
		if _, err := l.LoadKeysets(pgstore.WithQuerier(ctxA, tx), a); err != nil {
			return err
		}
		// Without it, the load needs the pool's only connection, which this transaction holds.
		ctx, cancel := context.WithTimeout(ctxA, 300*time.Millisecond)
		defer cancel()
		if _, err := l.LoadKeysets(ctx, a); !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("load through the pool inside its only transaction: got %v, want it to wait", err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestColumnsNamesQuotedTables(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.vaultTable(t)
	_, ctxA := e.tenant(t, "a")
	cols, err := pgstore.Columns(ctxA, e.pool)
	if err != nil {
		t.Fatal(err)
	}
	var got []pgstore.Column
	for _, c := range cols {
		if c.Schema == "Vault" {
			got = append(got, c)
		}
	}
	want := []pgstore.Column{
		{Table: vault, Schema: "Vault", Name: "50%d_off", Column: "e-mail", BlindIndex: "e-mail bidx", Normalizer: "email"},
		{Table: vault, Schema: "Vault", Name: "50%d_off", Column: "notes", Normalizer: "exact"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("registered columns (-want +got):\n%s", diff)
	}
	if len(got) > 0 && got[0].Ident().Sanitize() != vault {
		t.Errorf("Ident().Sanitize() = %s, want %s", got[0].Ident().Sanitize(), vault)
	}
}
