package keys_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/tenantseal/tenantseal"

	"github.com/jackc/pgx/v5"

	"github.com/tenantseal/tenantseal/keys"
)

// insertCustomer stores an encrypted customer through the app pool and returns its id.
func insertCustomer(t *testing.T, e *env, ctx context.Context, tenant tenantseal.TenantID, email, phone, notes string) string {
	t.Helper()
	var id string
	err := e.pool.Tx(ctx, func(tx pgx.Tx) error {
		if err := tx.QueryRow(ctx, "SELECT gen_random_uuid()::text").Scan(&id); err != nil {
			return err
		}
		enc := func(col, v string) []byte {
			ct, err := e.kr.Encrypt(ctx, keys.Field{Table: "customers", Column: col, Row: id}, []byte(v))
			if err != nil {
				t.Fatal(err)
			}
			return ct
		}
		bidx, err := e.kr.BlindIndex(ctx, keys.Field{Table: "customers", Column: "email"}, email, keys.NormalizeEmail)
		if err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `INSERT INTO customers (tenant_id, id, display_name, email, email_bidx, phone, notes)
			VALUES ($1, $2, 'c', $3, $4, $5, $6)`, tenant, id, enc("email", email), bidx, enc("phone", phone), enc("notes", notes))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func readField(t *testing.T, e *env, ctx context.Context, tenant tenantseal.TenantID, table, column, id string) ([]byte, error) {
	t.Helper()
	var ct []byte
	if err := e.pool.QueryRow(ctx, fmt.Sprintf("SELECT %s FROM %s WHERE tenant_id = $1 AND id = $2", column, table), tenant, id).Scan(&ct); err != nil {
		t.Fatal(err)
	}
	return e.kr.Decrypt(ctx, keys.Field{Table: table, Column: column, Row: id}, ct)
}

func TestRoundTripThroughPostgres(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a, ctxA := e.tenant(t, "a")
	cust := insertCustomer(t, e, ctxA, a, "Ada@Example.com ", "+44 20 7946 0000", "prefers e-mail")

	var inv, doc string
	body := bytes.Repeat([]byte{0, 1, 2, 255}, 4096)
	err := e.pool.Tx(ctxA, func(tx pgx.Tx) error {
		if err := tx.QueryRow(ctxA, "SELECT gen_random_uuid()::text, gen_random_uuid()::text").Scan(&inv, &doc); err != nil {
			return err
		}
		memo, err := e.kr.Encrypt(ctxA, keys.Field{Table: "invoices", Column: "memo", Row: inv}, []byte("net 30"))
		if err != nil {
			return err
		}
		bct, err := e.kr.Encrypt(ctxA, keys.Field{Table: "documents", Column: "body", Row: doc}, body)
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctxA, "INSERT INTO invoices (tenant_id, id, customer_id, amount_minor, currency, memo) VALUES ($1, $2, $3, 100, 'EUR', $4)", a, inv, cust, memo); err != nil {
			return err
		}
		_, err = tx.Exec(ctxA, "INSERT INTO documents (tenant_id, id, invoice_id, filename, content_type, size, body) VALUES ($1, $2, $3, 'b.bin', 'application/octet-stream', $4, $5)", a, doc, inv, len(body), bct)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		table, column, id string
		want              []byte
	}{
		{"customers", "email", cust, []byte("Ada@Example.com ")},
		{"customers", "phone", cust, []byte("+44 20 7946 0000")},
		{"customers", "notes", cust, []byte("prefers e-mail")},
		{"invoices", "memo", inv, []byte("net 30")},
		{"documents", "body", doc, body},
	} {
		got, err := readField(t, e, ctxA, a, tc.table, tc.column, tc.id)
		if err != nil || !bytes.Equal(got, tc.want) {
			t.Errorf("%s.%s: got %d bytes (%v), want %d bytes", tc.table, tc.column, len(got), err, len(tc.want))
		}
	}
	// The database holds no plaintext.
	var raw []byte
	mustConn(t, e.d.SuperDSN).QueryRow(ctxA, "SELECT email || phone || notes FROM customers").Scan(&raw)
	for _, plain := range []string{"Ada@Example.com", "7946", "prefers"} {
		if bytes.Contains(raw, []byte(plain)) {
			t.Errorf("stored row contains plaintext %q", plain)
		}
	}
	// The blind index finds the row from a differently written address.
	idx, err := e.kr.BlindIndexes(ctxA, keys.Field{Table: "customers", Column: "email"}, "  ada@EXAMPLE.com", keys.NormalizeEmail)
	if err != nil {
		t.Fatal(err)
	}
	var found string
	if err := e.pool.QueryRow(ctxA, "SELECT id::text FROM customers WHERE tenant_id = $1 AND email_bidx = ANY($2)", a, idx).Scan(&found); err != nil || found != cust {
		t.Errorf("lookup by blind index: got %q (%v), want %q", found, err, cust)
	}
}

func TestSwappedCiphertextsAreTampered(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a, ctxA := e.tenant(t, "a")
	b, ctxB := e.tenant(t, "b")
	a1 := insertCustomer(t, e, ctxA, a, "a1@x", "111", "note a1")
	a2 := insertCustomer(t, e, ctxA, a, "a2@x", "222", "note a2")
	b1 := insertCustomer(t, e, ctxB, b, "b1@x", "333", "note b1")
	super := mustConn(t, e.d.SuperDSN)
	ctx := testContext(t)
	// Each swap copies a ciphertext as a superuser (a stolen-backup or insider attacker) and reads it as
	// the app would.
	tests := []struct {
		name, sql       string
		tenant          tenantseal.TenantID
		ctx             context.Context
		column, readRow string
	}{
		{"column", fmt.Sprintf("UPDATE customers SET notes = phone WHERE id = '%s'", a1), a, ctxA, "notes", a1},
		{"row", fmt.Sprintf("UPDATE customers SET phone = (SELECT phone FROM customers WHERE id = '%s') WHERE id = '%s'", a2, a1), a, ctxA, "phone", a1},
		{"tenant", fmt.Sprintf("UPDATE customers SET email = (SELECT email FROM customers WHERE id = '%s') WHERE id = '%s'", a2, b1), b, ctxB, "email", b1},
		{"truncated", fmt.Sprintf("UPDATE customers SET notes = substring(notes FROM 1 FOR length(notes) - 1) WHERE id = '%s'", a2), a, ctxA, "notes", a2},
		{"bit flip", fmt.Sprintf("UPDATE customers SET email = set_byte(email, 20, get_byte(email, 20) # 1) WHERE id = '%s'", a2), a, ctxA, "email", a2},
	}
	for _, tc := range tests {
		if _, err := super.Exec(ctx, tc.sql); err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		got, err := readField(t, e, tc.ctx, tc.tenant, "customers", tc.column, tc.readRow)
		var fe *keys.FieldError
		if !errors.Is(err, keys.ErrTampered) || !errors.As(err, &fe) || fe.Row != tc.readRow || fe.Column != tc.column {
			t.Errorf("%s swap: got %q, %v; want ErrTampered as a *FieldError for %s row %s", tc.name, got, err, tc.column, tc.readRow)
		}
		if err != nil && (strings.Contains(err.Error(), "note a") || strings.Contains(err.Error(), "@x")) {
			t.Errorf("%s swap: error %q contains plaintext", tc.name, err)
		}
	}
}

func TestKeysetBoundToTenant(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a, _ := e.tenant(t, "a")
	b, ctxB := e.tenant(t, "b")
	insertCustomer(t, e, ctxB, b, "b@x", "1", "n")
	// Copy a's wrapped keysets over b's, as an insider could.
	_, err := mustConn(t, e.d.SuperDSN).Exec(testContext(t), `UPDATE tenantseal.tenant_keysets t SET wrapped = s.wrapped
		FROM tenantseal.tenant_keysets s WHERE s.tenant_id = $1 AND t.tenant_id = $2 AND s.purpose = t.purpose`, a, b)
	if err != nil {
		t.Fatal(err)
	}
	e.kr.Invalidate(b) // as a fresh process, or once the cache TTL has passed
	_, err = e.kr.Encrypt(ctxB, keys.Field{Table: "customers", Column: "notes", Row: "x"}, []byte("y"))
	if !errors.Is(err, keys.ErrKeysetTampered) {
		t.Errorf("got %v, want ErrKeysetTampered", err)
	}
	// And the app role reads only its own tenant's keysets: b cannot load a's.
	_, err = e.kr.Encrypt(ctxB, keys.Field{Table: "customers", Column: "notes", Row: "x"}, []byte("y"))
	if !errors.Is(err, keys.ErrNoKeyset) {
		t.Errorf("load another tenant's keyset: got %v, want ErrNoKeyset", err)
	}
	var n int
	if err := e.pool.QueryRow(ctxB, "SELECT count(*) FROM tenantseal.tenant_keysets").Scan(&n); err != nil || n != 2 {
		t.Errorf("app role sees %d keysets (%v), want its own 2", n, err)
	}
}

func TestWrongKEK(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	_, ctxA := e.tenant(t, "a")
	a, _ := tenantseal.TenantFrom(ctxA)
	other := mustKEK(t)
	wrong := keys.NewKEK(e.kek.ID, newAEAD(t)) // same id, different key
	kr := mustKeyring(t, e.pool, wrong)
	if _, err := kr.Encrypt(ctxA, keys.Field{Table: "t", Column: "c", Row: "r"}, []byte("x")); !errors.Is(err, keys.ErrKEK) {
		t.Errorf("wrong key under the right id: got %v, want ErrKEK", err)
	}
	kr = mustKeyring(t, e.pool, other)
	if _, err := kr.Encrypt(ctxA, keys.Field{Table: "t", Column: "c", Row: "r"}, []byte("x")); !errors.Is(err, keys.ErrKEK) {
		t.Errorf("another KEK: got %v, want ErrKEK", err)
	}
	if err := keys.CheckKEK(ctxA, e.pool, other); !errors.Is(err, keys.ErrKEK) {
		t.Errorf("CheckKEK with another KEK: got %v, want ErrKEK", err)
	}
	if err := keys.CheckKEK(ctxA, e.pool, e.kek); err != nil {
		t.Errorf("CheckKEK with the right KEK: %v", err)
	}
	if _, err := keys.OpenKEK(ctxA, keys.LocalKEKScheme+"/nonexistent/kek.json"); !errors.Is(err, keys.ErrKEK) {
		t.Errorf("missing KEK file: got %v, want ErrKEK", err)
	}
	if _, err := keys.OpenKEK(ctxA, ""); !errors.Is(err, keys.ErrKEK) {
		t.Errorf("no KEK URI: got %v, want ErrKEK", err)
	}
	if _, err := keys.OpenKEK(ctxA, "aws-kms://arn:aws:kms:eu-west-1:123:key/secret-name"); !errors.Is(err, keys.ErrKEK) || strings.Contains(err.Error(), "secret-name") {
		t.Errorf("unregistered KMS: got %v, want ErrKEK without the key path", err)
	}
}
