package keys_test

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/tenantseal/tenantseal"
	"github.com/tenantseal/tenantseal/keys"
)

// rotate rotates both of tenant's keysets in the loader, as pgstore's Admin.Rotate does in the database.
func rotate(t *testing.T, fx *fixture, tenant tenantseal.TenantID) {
	t.Helper()
	w := fx.l.sets[tenant]
	var err error
	if w.AEAD, _, err = keys.RotateWrapped(fx.kek, tenant, keys.PurposeAEAD, w.AEAD); err != nil {
		t.Fatal(err)
	}
	if w.PRF, _, err = keys.RotateWrapped(fx.kek, tenant, keys.PurposePRF, w.PRF); err != nil {
		t.Fatal(err)
	}
	fx.l.set(tenant, w)
	fx.kr.Invalidate(tenant)
}

func TestRotateThenRetire(t *testing.T) {
	fx := newFixture(t, 2)
	a, b := fx.ids[0], fx.ids[1]
	ctx := as(t, a)
	old := mustEncrypt(t, fx.kr, ctx, email, "before")
	oldIdx, err := fx.kr.BlindIndex(ctx, email, "v", nil)
	if err != nil {
		t.Fatal(err)
	}
	oldAEAD, oldPRF, err := fx.kr.PrimaryKeyIDs(ctx)
	if err != nil {
		t.Fatal(err)
	}

	rotate(t, fx, a)
	newAEAD, newPRF, err := fx.kr.PrimaryKeyIDs(ctx)
	if err != nil || newAEAD == oldAEAD || newPRF == oldPRF {
		t.Fatalf("primary keys after rotation: got %d, %d (%v), want new ones, not %d, %d", newAEAD, newPRF, err, oldAEAD, oldPRF)
	}
	if pt, err := fx.kr.Decrypt(ctx, email, old); err != nil || string(pt) != "before" {
		t.Errorf("old ciphertext after rotation: got %q, %v; want it to decrypt", pt, err)
	}
	if id, _ := keys.CiphertextKeyID(mustEncrypt(t, fx.kr, ctx, email, "after")); id != newAEAD {
		t.Errorf("new ciphertext under key %d, want the new primary %d", id, newAEAD)
	}
	idx, err := fx.kr.BlindIndexes(ctx, email, "v", nil)
	if err != nil || len(idx) != 2 || string(idx[1]) != string(oldIdx) {
		t.Errorf("blind indexes after rotation: got %x (%v), want the new one, then the old %x", idx, err, oldIdx)
	}

	w := fx.l.sets[a]
	refused := []struct {
		name  string
		usage keys.KeyUsage
		want  error
	}{
		{"old key in use", keys.KeyUsage{Tenant: a, AEAD: map[uint32]int64{oldAEAD: 3}}, keys.ErrKeyInUse},
		{"usage of another tenant", keys.KeyUsage{Tenant: b}, tenantseal.ErrTenantMismatch},
		{"usage of no tenant", keys.KeyUsage{}, tenantseal.ErrTenantMismatch},
	}
	for _, tc := range refused {
		t.Run(tc.name, func(t *testing.T) {
			out, ids, err := keys.RetireWrapped(fx.kek, a, keys.PurposeAEAD, w.AEAD, tc.usage, keys.RetireOptions{})
			if !errors.Is(err, tc.want) || out != nil || ids != nil {
				t.Errorf("got %d bytes, ids %v, %v; want nothing and %v", len(out), ids, err, tc.want)
			}
		})
	}

	usage := keys.KeyUsage{Tenant: a, AEAD: map[uint32]int64{newAEAD: 1}, PRF: map[uint32]int64{newPRF: 1}}
	for _, p := range []struct {
		purpose string
		wrapped *[]byte
		old     uint32
	}{{keys.PurposeAEAD, &w.AEAD, oldAEAD}, {keys.PurposePRF, &w.PRF, oldPRF}} {
		next, ids, err := keys.RetireWrapped(fx.kek, a, p.purpose, *p.wrapped, usage, keys.RetireOptions{})
		if err != nil || !slices.Equal(ids, []uint32{p.old}) {
			t.Fatalf("retire %s: got %v (%v), want [%d]", p.purpose, ids, err, p.old)
		}
		*p.wrapped = next
		if _, ids, err := keys.RetireWrapped(fx.kek, a, p.purpose, next, usage, keys.RetireOptions{}); err != nil || len(ids) != 0 {
			t.Errorf("retire %s again: got %v (%v), want nothing left to retire", p.purpose, ids, err)
		}
	}
	fx.l.set(a, w)
	fx.kr.Invalidate(a)
	if _, err := fx.kr.Decrypt(ctx, email, old); !errors.Is(err, keys.ErrUnknownKey) {
		t.Errorf("ciphertext under a retired key: got %v, want ErrUnknownKey", err)
	}
	if idx, err := fx.kr.BlindIndexes(ctx, email, "v", nil); err != nil || len(idx) != 1 {
		t.Errorf("blind indexes after retirement: got %d (%v), want the primary's alone", len(idx), err)
	}
}

func TestWrappedKeysetOpensOnlyForItsTenantAndPurpose(t *testing.T) {
	fx := newFixture(t, 2)
	a, b := fx.ids[0], fx.ids[1]
	w := fx.l.sets[a]
	other := fakeKEK(t)
	tests := []struct {
		name    string
		kek     *keys.KEK
		tenant  tenantseal.TenantID
		purpose string
		wrapped []byte
		want    error
	}{
		{"another tenant", fx.kek, b, keys.PurposeAEAD, w.AEAD, keys.ErrKeysetTampered},
		{"another purpose", fx.kek, a, keys.PurposeAEAD, w.PRF, keys.ErrKeysetTampered},
		{"another KEK", other, a, keys.PurposeAEAD, w.AEAD, keys.ErrKeysetTampered},
		{"truncated", fx.kek, a, keys.PurposeAEAD, w.AEAD[:len(w.AEAD)-1], keys.ErrKeysetTampered},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, _, err := keys.RotateWrapped(tc.kek, tc.tenant, tc.purpose, tc.wrapped); !errors.Is(err, tc.want) {
				t.Errorf("rotate: got %v, want %v", err, tc.want)
			}
			if _, err := keys.Rewrap(tc.kek, other, tc.tenant, tc.purpose, tc.wrapped); !errors.Is(err, tc.want) {
				t.Errorf("rewrap: got %v, want %v", err, tc.want)
			}
		})
	}
	if _, _, err := keys.RotateWrapped(fx.kek, a, "mac", w.AEAD); err == nil || errors.Is(err, keys.ErrKeysetTampered) || !strings.Contains(err.Error(), `"mac"`) {
		t.Errorf("unknown purpose: got %v, want an error naming it", err)
	}
}

func TestRewrapAndCanary(t *testing.T) {
	fx := newFixture(t, 1)
	a := fx.ids[0]
	ct := mustEncrypt(t, fx.kr, as(t, a), email, "kept")
	next := fakeKEK(t)
	w := fx.l.sets[a]
	var err error
	if w.AEAD, err = keys.Rewrap(fx.kek, next, a, keys.PurposeAEAD, w.AEAD); err != nil {
		t.Fatal(err)
	}
	if w.PRF, err = keys.Rewrap(fx.kek, next, a, keys.PurposePRF, w.PRF); err != nil {
		t.Fatal(err)
	}
	if w.Canary, err = next.NewCanary(); err != nil {
		t.Fatal(err)
	}
	fx.l.set(a, w)

	kr, err := keys.NewKeyring(keys.Config{KEK: next, Loader: fx.l})
	if err != nil {
		t.Fatal(err)
	}
	if pt, err := kr.Decrypt(as(t, a), email, ct); err != nil || string(pt) != "kept" {
		t.Errorf("new KEK: got %q, %v; want the field unchanged", pt, err)
	}
	fx.kr.Invalidate(a)
	if _, err := fx.kr.Decrypt(as(t, a), email, ct); !errors.Is(err, keys.ErrKEK) {
		t.Errorf("old KEK after rewrap, with the new canary: got %v, want ErrKEK", err)
	}
	for _, tc := range []struct {
		name string
		kek  *keys.KEK
		ct   []byte
		want bool
	}{
		{"its own KEK", next, w.Canary, true},
		{"another KEK", fx.kek, w.Canary, false},
		{"altered", next, append(w.Canary[:len(w.Canary)-1:len(w.Canary)-1], w.Canary[len(w.Canary)-1]^1), false},
		{"empty", next, nil, false},
	} {
		if got := tc.kek.OpensCanary(tc.ct); got != tc.want {
			t.Errorf("OpensCanary, %s: got %v, want %v", tc.name, got, tc.want)
		}
	}
}
