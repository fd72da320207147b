package isolation

import (
	"context"
	"errors"
	"fmt"

	"github.com/tenantseal/tenantseal"

	"github.com/jackc/pgx/v5"

	"github.com/tenantseal/tenantseal/keys"
)

// loader reads wrapped keysets as the app role under the tenant context of the Principal in ctx, the
// way keys.PoolLoader does through a db.Pool, but signed by the suite.
type loader struct{ s *suite }

func (l loader) LoadKeysets(ctx context.Context, tenant tenantseal.TenantID) (keys.Wrapped, error) {
	p, ok := tenantseal.PrincipalFrom(ctx)
	if !ok {
		return keys.Wrapped{}, tenantseal.ErrNoTenant
	}
	tok, err := l.s.sign(p.Tenant, timeNowPlusMinute())
	if err != nil {
		return keys.Wrapped{}, err
	}
	var w keys.Wrapped
	err = l.s.as(ctx, tok, false, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, "SELECT purpose, wrapped, kek_id FROM tenantseal.tenant_keysets WHERE tenant_id = $1", tenant)
		if err != nil {
			return err
		}
		var purpose, kek string
		var wrapped []byte
		_, err = pgx.ForEachRow(rows, []any{&purpose, &wrapped, &kek}, func() error {
			switch purpose {
			case keys.PurposeAEAD:
				w.AEAD = append([]byte(nil), wrapped...)
			case keys.PurposePRF:
				w.PRF = append([]byte(nil), wrapped...)
			}
			w.KEKID = kek
			return nil
		})
		return err
	})
	if err != nil {
		return keys.Wrapped{}, fmt.Errorf("isolation: load keysets: %w", err)
	}
	if w.AEAD == nil || w.PRF == nil {
		return keys.Wrapped{}, fmt.Errorf("%w (tenant %s)", keys.ErrNoKeyset, tenant)
	}
	return w, nil
}

// keyring returns a keyring with an empty cache.
func (s *suite) keyring() (*keys.Keyring, error) {
	kr, err := keys.NewKeyring(keys.Config{KEK: s.kek, Loader: loader{s}})
	if err != nil {
		return nil, fmt.Errorf("isolation: %w", err)
	}
	return kr, nil
}

// readCiphertext reads column col of row r of t as the app role under tenant ti.
func (s *suite) readCiphertext(ctx context.Context, t *table, r *seedRow, col string, ti int) ([]byte, error) {
	where, args := whereRow(t, r, 1)
	var ct []byte
	err := s.as(ctx, s.token(ti), false, func(tx pgx.Tx) error {
		return tx.QueryRow(ctx, fmt.Sprintf("SELECT %s FROM %s WHERE %s", ident(col), t.qname(), where), args...).Scan(&ct)
	})
	return ct, err
}

// moveCiphertext copies column from of row src into column to of row dst, as someone with direct table
// access (a restored backup, an insider) would.
func (s *suite) moveCiphertext(ctx context.Context, t *table, src *seedRow, from string, dst *seedRow, to string) error {
	ws, sargs := whereRow(t, src, 1)
	wd, dargs := whereRow(t, dst, len(sargs)+1)
	_, err := s.super.Exec(ctx, fmt.Sprintf("UPDATE %[1]s SET %[2]s = (SELECT %[3]s FROM %[1]s WHERE %[4]s) WHERE %[5]s", t.qname(), ident(to), ident(from), ws, wd), append(sargs, dargs...)...)
	return err
}

// keysApply tells whether the key cases apply to t, and why not.
func (s *suite) keysApply(t *table, r *rec) bool {
	switch {
	case s.keys == nil:
		r.na = "no tenantseal.tenant_keysets in this database"
	case len(t.encrypted) == 0:
		r.na = "no encrypted column registered"
	case t.idColumn() == "":
		r.na = "no single id column that ciphertexts are bound to"
	default:
		return true
	}
	return false
}

// decryptAt decrypts what row dst of t holds in column col as tenant ti, binding it to that row and
// column, and checks that it fails instead of yielding plaintext from elsewhere.
func (s *suite) decryptAt(ctx context.Context, t *table, dst *seedRow, col string, ti int, r *rec, what string) {
	ct, err := s.readCiphertext(ctx, t, dst, col, ti)
	if err != nil {
		r.errorf("read %s: %v", col, err)
		return
	}
	kr, err := s.keyring()
	if err != nil {
		r.errorf("%v", err)
		return
	}
	pt, err := kr.Decrypt(s.principal(ctx, ti), keys.Field{Table: t.name, Column: col, Row: dst.val(t.idColumn()), Tenant: s.tenants[ti]}, ct)
	r.expect(err != nil, "%s decrypted to %q", what, pt)
	if err != nil && !errors.Is(err, keys.ErrTampered) && !errors.Is(err, keys.ErrKeysetTampered) && !errors.Is(err, keys.ErrNoKeyset) {
		r.notef("%s failed with %v", what, err)
	}
}

// controlDecrypt checks that the own row's ciphertext decrypts in place: the key cases mean something.
func (s *suite) controlDecrypt(ctx context.Context, t *table, row *seedRow, col string, ti int, r *rec) {
	ct, err := s.readCiphertext(ctx, t, row, col, ti)
	if err != nil {
		r.errorf("read %s: %v", col, err)
		return
	}
	pt, err := s.keys.Decrypt(s.principal(ctx, ti), keys.Field{Table: t.name, Column: col, Row: row.val(t.idColumn()), Tenant: s.tenants[ti]}, ct)
	r.control(err == nil && string(pt) == s.plain[row][col], "the own %s decrypts in place (%v)", col, err)
}

func caseCiphertextMovedRow(ctx context.Context, s *suite, t *table, atk int, r *rec) {
	if !s.keysApply(t, r) {
		return
	}
	rows := s.rows[t][atk]
	if len(rows) < 2 {
		r.na = "one row per tenant: no other own row to move a ciphertext from"
		return
	}
	col := t.encrypted[0]
	s.controlDecrypt(ctx, t, rows[0], col, atk, r)
	defer s.verify(ctx, r, atk)
	if err := s.moveCiphertext(ctx, t, rows[1], col, rows[0], col); err != nil {
		r.errorf("move: %v", err)
		return
	}
	s.decryptAt(ctx, t, rows[0], col, atk, r, "a ciphertext moved from another row")
}

func caseCiphertextMovedColumn(ctx context.Context, s *suite, t *table, atk int, r *rec) {
	if !s.keysApply(t, r) {
		return
	}
	if len(t.encrypted) < 2 {
		r.na = "fewer than two encrypted columns"
		return
	}
	row := s.rows[t][atk][0]
	s.controlDecrypt(ctx, t, row, t.encrypted[1], atk, r)
	defer s.verify(ctx, r, atk)
	if err := s.moveCiphertext(ctx, t, row, t.encrypted[0], row, t.encrypted[1]); err != nil {
		r.errorf("move: %v", err)
		return
	}
	s.decryptAt(ctx, t, row, t.encrypted[1], atk, r, "a ciphertext moved from column "+t.encrypted[0])
}

func caseCiphertextMovedTenant(ctx context.Context, s *suite, t *table, atk int, r *rec) {
	if !s.keysApply(t, r) {
		return
	}
	col := t.encrypted[0]
	own := s.rows[t][atk][0]
	s.controlDecrypt(ctx, t, own, col, atk, r)
	defer s.verify(ctx, r, atk)
	for _, v := range s.victims(atk) {
		vr := s.rows[t][v][0]
		// Straight through the keyring: the attacker's session cannot even load the victim's keyset.
		ct, err := s.readCiphertext(ctx, t, vr, col, v)
		if err != nil {
			r.errorf("read T%d's ciphertext: %v", v, err)
			continue
		}
		kr, err := s.keyring()
		if err != nil {
			r.errorf("%v", err)
			return
		}
		pt, err := kr.Decrypt(s.principal(ctx, atk), keys.Field{Table: t.name, Column: col, Row: vr.val(t.idColumn()), Tenant: s.tenants[v]}, ct)
		r.expect(err != nil, "T%d's session decrypted T%d's %s: %q", atk, v, col, pt)
		// Copied into an own row.
		if err := s.moveCiphertext(ctx, t, vr, col, own, col); err != nil {
			r.errorf("move: %v", err)
			return
		}
		s.decryptAt(ctx, t, own, col, atk, r, fmt.Sprintf("a ciphertext of T%d copied into an own row", v))
	}
}

// caseKeysetMovedTenant copies another tenant's wrapped keysets over the attacker's own, with a ciphertext
// of that tenant: neither may open.
func caseKeysetMovedTenant(ctx context.Context, s *suite, atk int, emit func(string) *rec) {
	r := emit("tenantseal.tenant_keysets")
	if s.keys == nil {
		r.na = "no tenantseal.tenant_keysets in this database"
		return
	}
	var t *table
	for _, tt := range s.cat.tables {
		if len(tt.encrypted) > 0 && tt.idColumn() != "" {
			t = tt
			break
		}
	}
	if t == nil {
		r.na = "no table with encrypted columns"
		return
	}
	col := t.encrypted[0]
	own := s.rows[t][atk][0]
	s.controlDecrypt(ctx, t, own, col, atk, r)
	defer s.verify(ctx, r, atk)
	for _, v := range s.victims(atk) {
		if _, err := s.super.Exec(ctx, `UPDATE tenantseal.tenant_keysets k SET wrapped = o.wrapped
			FROM tenantseal.tenant_keysets o WHERE k.tenant_id = $1 AND o.tenant_id = $2 AND o.purpose = k.purpose`, s.tenants[atk], s.tenants[v]); err != nil {
			r.errorf("move keysets: %v", err)
			return
		}
		s.decryptAt(ctx, t, own, col, atk, r, fmt.Sprintf("an own ciphertext under T%d's keyset", v))
		if err := s.moveCiphertext(ctx, t, s.rows[t][v][0], col, own, col); err != nil {
			r.errorf("move: %v", err)
			return
		}
		s.decryptAt(ctx, t, own, col, atk, r, fmt.Sprintf("T%d's ciphertext under T%d's keyset in an own row", v, v))
	}
}
