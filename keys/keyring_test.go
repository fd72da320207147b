package keys_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/tenantseal/tenantseal"
	"github.com/tenantseal/tenantseal/keys"
)

var email = keys.Field{Table: "customers", Column: "email", Row: "7d0c5a8e-0000-4000-8000-000000000001"}

// ignoreDetail compares events but for their free-text detail, which tests check on its own.
var ignoreDetail = cmpopts.IgnoreFields(tenantseal.Event{}, "Detail")

// After principal A warmed the cache, a context carrying principal B must not decrypt A's ciphertext:
// the Keyring uses B's keys, which do not open it, or refuses a field that names A outright.
func TestWarmCacheServesNoOtherPrincipal(t *testing.T) {
	const secret = "ada@example.com"
	tests := []struct {
		name      string
		field     func(a tenantseal.TenantID) keys.Field
		wantErr   error
		notErr    error
		wantEvent func(a, b tenantseal.TenantID) tenantseal.Event
		wantLoadB int // loads of B's keysets the attempt causes
	}{{
		name:    "field without tenant",
		field:   func(tenantseal.TenantID) keys.Field { return email },
		wantErr: keys.ErrTampered, notErr: tenantseal.ErrTenantMismatch,
		wantEvent: func(_, b tenantseal.TenantID) tenantseal.Event {
			return tenantseal.Event{Kind: tenantseal.EventTampered, TargetTenant: b, Table: "customers", Operation: "decrypt", RowKey: email.Row}
		},
		wantLoadB: 1,
	}, {
		name:    "field naming tenant A",
		field:   func(a tenantseal.TenantID) keys.Field { f := email; f.Tenant = a; return f },
		wantErr: tenantseal.ErrTenantMismatch, notErr: keys.ErrTampered,
		wantEvent: func(a, _ tenantseal.TenantID) tenantseal.Event {
			return tenantseal.Event{Kind: tenantseal.EventTenantMismatch, TargetTenant: a, Table: "customers", Operation: "decrypt", RowKey: email.Row}
		},
		wantLoadB: 0,
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fx := newFixture(t, 2)
			a, b := fx.ids[0], fx.ids[1]
			ctxA, ctxB := as(t, a), as(t, b)
			ct := mustEncrypt(t, fx.kr, ctxA, email, secret)
			if pt, err := fx.kr.Decrypt(ctxA, email, ct); err != nil || string(pt) != secret {
				t.Fatalf("A decrypts its own field: got %q, %v; want %q", pt, err, secret)
			}
			if st := fx.kr.Stats(); st.Entries != 1 {
				t.Fatalf("got %d cached tenants, want A's keysets cached", st.Entries)
			}
			if ev := fx.rec.take(); len(ev) != 0 {
				t.Fatalf("A's own use recorded %v, want nothing", ev)
			}

			pt, err := fx.kr.Decrypt(ctxB, tc.field(a), ct)
			if !errors.Is(err, tc.wantErr) || errors.Is(err, tc.notErr) {
				t.Errorf("B decrypts A's ciphertext: got %v, want %v and not %v", err, tc.wantErr, tc.notErr)
			}
			if pt != nil {
				t.Errorf("B decrypts A's ciphertext: got plaintext %q, want none", pt)
			}
			if strings.Contains(err.Error(), secret) {
				t.Errorf("error %q contains the plaintext", err)
			}
			ev := fx.rec.take()
			if diff := cmp.Diff([]tenantseal.Event{tc.wantEvent(a, b)}, ev, ignoreDetail); diff != "" {
				t.Errorf("recorded events (-want +got):\n%s", diff)
			}
			for _, e := range ev {
				if !strings.Contains(e.Detail, "column email") || strings.Contains(e.Detail, secret) {
					t.Errorf("event detail %q: want the column named and no plaintext", e.Detail)
				}
			}
			loadsB, foreign := fx.l.counts(b)
			if loadsB != tc.wantLoadB || foreign != 0 {
				t.Errorf("got %d loads of B's keysets and %d requests for another tenant's, want %d and 0", loadsB, foreign, tc.wantLoadB)
			}
		})
	}
}

// A field that names another tenant than the Principal's is refused by every operation before any key
// is loaded, and recorded once.
func TestFieldTenantMismatchIsRefusedAndRecorded(t *testing.T) {
	tests := []struct {
		op   string
		call func(kr *keys.Keyring, ctx context.Context, f keys.Field, ct []byte) (any, error)
	}{
		{"encrypt", func(kr *keys.Keyring, ctx context.Context, f keys.Field, _ []byte) (any, error) {
			return kr.Encrypt(ctx, f, []byte("x"))
		}},
		{"decrypt", func(kr *keys.Keyring, ctx context.Context, f keys.Field, ct []byte) (any, error) {
			return kr.Decrypt(ctx, f, ct)
		}},
		{"blind index", func(kr *keys.Keyring, ctx context.Context, f keys.Field, _ []byte) (any, error) {
			return kr.BlindIndex(ctx, f, "x", nil)
		}},
		{"blind index", func(kr *keys.Keyring, ctx context.Context, f keys.Field, _ []byte) (any, error) {
			return kr.BlindIndexes(ctx, f, "x", nil)
		}},
	}
	for i, tc := range tests {
		t.Run(fmt.Sprintf("%d %s", i, tc.op), func(t *testing.T) {
			fx := newFixture(t, 2)
			a, b := fx.ids[0], fx.ids[1]
			ct := mustEncrypt(t, fx.kr, as(t, a), email, "x")
			fx.kr.Invalidate(a)
			f := email
			f.Tenant = a
			out, err := tc.call(fx.kr, as(t, b), f, ct)
			if !errors.Is(err, tenantseal.ErrTenantMismatch) {
				t.Errorf("got %v, want ErrTenantMismatch", err)
			}
			if !isNil(out) {
				t.Errorf("got output %x, want none", out)
			}
			want := []tenantseal.Event{{Kind: tenantseal.EventTenantMismatch, TargetTenant: a, Table: f.Table, Operation: tc.op, RowKey: f.Row, Detail: "column email"}}
			if diff := cmp.Diff(want, fx.rec.take()); diff != "" {
				t.Errorf("recorded events (-want +got):\n%s", diff)
			}
			if st := fx.kr.Stats(); st.Loads != 1 {
				t.Errorf("got %d keyset loads, want only the one that encrypted A's field", st.Loads)
			}
			// The same field of the Principal's own tenant goes through.
			if _, err := tc.call(fx.kr, as(t, a), f, ct); err != nil {
				t.Errorf("field of the Principal's own tenant: %v", err)
			}
		})
	}
}

func isNil(v any) bool {
	switch x := v.(type) {
	case []byte:
		return x == nil
	case [][]byte:
		return x == nil
	}
	return v == nil
}

func TestNoPrincipalNoKeys(t *testing.T) {
	fx := newFixture(t, 1)
	ct := mustEncrypt(t, fx.kr, as(t, fx.ids[0]), email, "x")
	ctx := t.Context()
	_, errEnc := fx.kr.Encrypt(ctx, email, []byte("x"))
	_, errDec := fx.kr.Decrypt(ctx, email, ct)
	_, errIdx := fx.kr.BlindIndex(ctx, email, "x", nil)
	_, _, errIDs := fx.kr.PrimaryKeyIDs(ctx)
	for i, err := range []error{errEnc, errDec, errIdx, errIDs} {
		if !errors.Is(err, tenantseal.ErrNoTenant) {
			t.Errorf("call %d without a Principal: got %v, want ErrNoTenant", i, err)
		}
	}
	if st := fx.kr.Stats(); st.Loads != 1 {
		t.Errorf("got %d loads, want only the Principal's one", st.Loads)
	}
}

// A ciphertext decrypts only for the tenant, table, column and row it was written for.
func TestCiphertextBoundToItsField(t *testing.T) {
	const secret = "prefers e-mail"
	fx := newFixture(t, 2)
	a, b := fx.ids[0], fx.ids[1]
	ct := mustEncrypt(t, fx.kr, as(t, a), email, secret)
	with := func(edit func(*keys.Field)) keys.Field { f := email; edit(&f); return f }
	flipped := bytes.Clone(ct)
	flipped[len(flipped)-1] ^= 1
	tests := []struct {
		name string
		ctx  context.Context
		f    keys.Field
		ct   []byte
		want error
	}{
		{"other tenant", as(t, b), email, ct, keys.ErrUnknownKey},
		{"other table", as(t, a), with(func(f *keys.Field) { f.Table = "invoices" }), ct, keys.ErrTampered},
		{"other column", as(t, a), with(func(f *keys.Field) { f.Column = "notes" }), ct, keys.ErrTampered},
		{"other row", as(t, a), with(func(f *keys.Field) { f.Row = "7d0c5a8e-0000-4000-8000-000000000002" }), ct, keys.ErrTampered},
		{"table and column shifted", as(t, a), with(func(f *keys.Field) { f.Table, f.Column = "customersemail", "" }), ct, keys.ErrTampered},
		{"truncated", as(t, a), email, ct[:len(ct)-1], keys.ErrTampered},
		{"bit flip", as(t, a), email, flipped, keys.ErrTampered},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			pt, err := fx.kr.Decrypt(tc.ctx, tc.f, tc.ct)
			var fe *keys.FieldError
			if !errors.Is(err, keys.ErrTampered) || !errors.Is(err, tc.want) || !errors.As(err, &fe) {
				t.Fatalf("got %q, %v; want %v as a *FieldError", pt, err, tc.want)
			}
			if fe.Table != tc.f.Table || fe.Column != tc.f.Column || fe.Row != tc.f.Row {
				t.Errorf("got FieldError for %s.%s row %s, want %s.%s row %s", fe.Table, fe.Column, fe.Row, tc.f.Table, tc.f.Column, tc.f.Row)
			}
			ev := fx.rec.take()
			if len(ev) != 1 || ev[0].Kind != tenantseal.EventTampered || ev[0].RowKey != tc.f.Row {
				t.Errorf("got events %v, want one %s for row %s", ev, tenantseal.EventTampered, tc.f.Row)
			}
			if strings.Contains(err.Error(), secret) || (len(ev) == 1 && strings.Contains(ev[0].Detail, secret)) {
				t.Errorf("error %q or event %v contains the plaintext", err, ev)
			}
		})
	}
}

func TestBadInput(t *testing.T) {
	fx := newFixture(t, 1, func(c *keys.Config) { c.MaxFieldSize = 1024 })
	ctx := as(t, fx.ids[0])
	f := keys.Field{Table: "t", Column: "c", Row: "r"}
	good := mustEncrypt(t, fx.kr, ctx, f, "hello")
	unknown := bytes.Clone(good)
	unknown[4] ^= 0xff
	tests := []struct {
		name string
		ct   []byte
		want error
	}{
		{"empty", nil, keys.ErrTampered},
		{"prefix only", good[:5], keys.ErrTampered},
		{"truncated", good[:len(good)-1], keys.ErrTampered},
		{"not a Tink prefix", append([]byte{0}, good[1:]...), keys.ErrTampered},
		{"unknown key id", unknown, keys.ErrUnknownKey},
		{"oversized", make([]byte, 4096), keys.ErrFieldTooLarge},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := fx.kr.Decrypt(ctx, f, tc.ct); !errors.Is(err, tc.want) {
				t.Errorf("got %v, want %v", err, tc.want)
			}
		})
	}
	if _, err := fx.kr.Encrypt(ctx, f, make([]byte, 1025)); !errors.Is(err, keys.ErrFieldTooLarge) {
		t.Errorf("oversized plaintext: got %v, want ErrFieldTooLarge", err)
	}
	if _, err := fx.kr.Encrypt(as(t, tenantID(0xee)), f, []byte("x")); !errors.Is(err, keys.ErrNoKeyset) {
		t.Errorf("tenant without keysets: got %v, want ErrNoKeyset", err)
	}
	corrupt := fx.l.sets[fx.ids[0]]
	corrupt.AEAD = bytes.Clone(corrupt.AEAD)
	corrupt.AEAD[len(corrupt.AEAD)/2] ^= 1
	fx.l.set(fx.ids[0], corrupt)
	fx.kr.Invalidate(fx.ids[0])
	if _, err := fx.kr.Encrypt(ctx, f, []byte("x")); !errors.Is(err, keys.ErrKeysetTampered) {
		t.Errorf("corrupted wrapped keyset: got %v, want ErrKeysetTampered", err)
	}
}

// Nothing a Keyring or KEK prints, returns as an error or records holds key material or plaintext,
// in any usual encoding; what they should name, they do.
func TestNoSecretInStringsErrorsOrEvents(t *testing.T) {
	const secret = "the tenant's secret note"
	fx := newFixture(t, 2)
	a, b := fx.ids[0], fx.ids[1]
	material, err := keys.KeyMaterial(fx.kek, a, fx.l.sets[a])
	if err != nil {
		t.Fatal(err)
	}
	if len(material) != 2 {
		t.Fatalf("got %d keys, want A's AEAD and PRF keys", len(material))
	}
	ct := mustEncrypt(t, fx.kr, as(t, a), email, secret)
	var outputs []string
	add := func(what string, err error) {
		if err == nil {
			t.Fatalf("%s: no error", what)
		}
		outputs = append(outputs, err.Error())
	}
	_, err = fx.kr.Decrypt(as(t, a), keys.Field{Table: "customers", Column: "notes", Row: email.Row}, ct)
	add("decrypt under another column", err)
	_, err = fx.kr.Decrypt(as(t, b), email, ct)
	add("decrypt as another tenant", err)
	_, err = fx.kr.Decrypt(as(t, a), keys.Field{Table: "customers", Column: "email", Row: email.Row, Tenant: b}, ct)
	add("decrypt a field of another tenant", err)
	for _, e := range fx.rec.take() {
		outputs = append(outputs, e.Detail, fmt.Sprintf("%+v", e))
	}
	for _, v := range []any{fx.kr, fx.kek} {
		outputs = append(outputs, fmt.Sprint(v), fmt.Sprintf("%+v", v), fmt.Sprintf("%#v", v), fmt.Sprintf("%x", v))
	}
	if len(outputs) < 12 {
		t.Fatalf("got %d outputs to check, want errors, events and formatted values", len(outputs))
	}
	forms := func(b []byte) []string {
		return []string{string(b), hex.EncodeToString(b), strings.ToUpper(hex.EncodeToString(b)),
			base64.StdEncoding.EncodeToString(b), base64.RawStdEncoding.EncodeToString(b), base64.URLEncoding.EncodeToString(b),
			base64.RawURLEncoding.EncodeToString(b), fmt.Sprint(b)}
	}
	var secrets []string
	for _, m := range material {
		secrets = append(secrets, forms(m)...)
	}
	secrets = append(secrets, forms([]byte(secret))...)
	for _, out := range outputs {
		for _, s := range secrets {
			if strings.Contains(out, s) {
				t.Errorf("output %q contains a secret (%q)", out, s)
			}
		}
	}
	if s := fx.kr.String(); !strings.Contains(s, fx.kek.ID) || !strings.Contains(s, "2 tenants cached") {
		t.Errorf("Keyring.String() = %q, want the KEK's id and 2 tenants cached", s)
	}
	if s := fx.kek.String(); s != "KEK("+fx.kek.ID+")" {
		t.Errorf("KEK.String() = %q, want KEK(%s)", s, fx.kek.ID)
	}
}
