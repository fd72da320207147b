package keys_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/tenantseal/tenantseal"
	"github.com/tenantseal/tenantseal/keys"
)

// versioned is a memLoader that also reports versions, as pgstore's loader does.
type versioned struct{ *memLoader }

func (v versioned) KeysetVersion(_ context.Context, tenant tenantseal.TenantID) (int64, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	w, ok := v.sets[tenant]
	if !ok {
		return -1, nil
	}
	return w.Version, nil
}

// change applies edit to the tenant's keyset of purpose in the loader and bumps its version, as pgstore's
// Admin does in the database; it returns the ids edit reports.
func change(t *testing.T, fx *fixture, tenant tenantseal.TenantID, purpose string, edit func(wrapped []byte) ([]byte, []uint32, error)) []uint32 {
	t.Helper()
	w := fx.l.sets[tenant]
	p := &w.AEAD
	if purpose == keys.PurposePRF {
		p = &w.PRF
	}
	next, ids, err := edit(*p)
	if err != nil {
		t.Fatal(err)
	}
	*p = next
	w.Version++
	fx.l.set(tenant, w)
	return ids
}

func keyInfo(t *testing.T, fx *fixture, tenant tenantseal.TenantID) []keys.KeyInfo {
	t.Helper()
	info, err := keys.WrappedKeys(fx.l.sets[tenant].AEAD)
	if err != nil {
		t.Fatal(err)
	}
	return info
}

// A retired key can be enabled again until it is destroyed; destruction refuses while a stored value
// still names it.
func TestEnableUndoesRetireUntilDestroy(t *testing.T) {
	fx := newFixture(t, 1)
	a := fx.ids[0]
	ctx := as(t, a)
	old := mustEncrypt(t, fx.kr, ctx, email, "before")
	oldID, _ := keys.CiphertextKeyID(old)
	rotate(t, fx, a)
	newID, _, err := fx.kr.PrimaryKeyIDs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]keys.KeyInfo{{ID: oldID, Enabled: true}, {ID: newID, Primary: true, Enabled: true}}, keyInfo(t, fx, a)); diff != "" {
		t.Errorf("keys after rotation, read without the KEK (-want +got):\n%s", diff)
	}
	none := keys.KeyUsage{Tenant: a}
	retire := func(w []byte) ([]byte, []uint32, error) {
		return keys.RetireWrapped(fx.kek, a, keys.PurposeAEAD, w, none, keys.RetireOptions{})
	}
	if ids := change(t, fx, a, keys.PurposeAEAD, retire); !slices.Equal(ids, []uint32{oldID}) {
		t.Fatalf("retire: got %v, want [%d]", ids, oldID)
	}
	fx.kr.Invalidate(a)
	if _, err := fx.kr.Decrypt(ctx, email, old); !errors.Is(err, keys.ErrUnknownKey) {
		t.Fatalf("under a retired key: got %v, want ErrUnknownKey", err)
	}
	if diff := cmp.Diff([]keys.KeyInfo{{ID: oldID}, {ID: newID, Primary: true, Enabled: true}}, keyInfo(t, fx, a)); diff != "" {
		t.Errorf("keys after retirement (-want +got):\n%s", diff)
	}

	ids := change(t, fx, a, keys.PurposeAEAD, func(w []byte) ([]byte, []uint32, error) {
		return keys.EnableWrapped(fx.kek, a, keys.PurposeAEAD, w, nil)
	})
	if !slices.Equal(ids, []uint32{oldID}) {
		t.Fatalf("enable: got %v, want [%d]", ids, oldID)
	}
	fx.kr.Invalidate(a)
	if pt, err := fx.kr.Decrypt(ctx, email, old); err != nil || string(pt) != "before" {
		t.Fatalf("after enable: got %q (%v), want the old value back", pt, err)
	}

	change(t, fx, a, keys.PurposeAEAD, retire)
	used := keys.KeyUsage{Tenant: a, AEAD: map[uint32]int64{oldID: 1}}
	w := fx.l.sets[a]
	if _, ids, err := keys.DestroyWrapped(fx.kek, a, keys.PurposeAEAD, w.AEAD, used, keys.RetireOptions{}); !errors.Is(err, keys.ErrKeyInUse) || ids != nil {
		t.Errorf("destroy a key a value still names: got %v (%v), want ErrKeyInUse and nothing destroyed", ids, err)
	}
	ids = change(t, fx, a, keys.PurposeAEAD, func(w []byte) ([]byte, []uint32, error) {
		return keys.DestroyWrapped(fx.kek, a, keys.PurposeAEAD, w, none, keys.RetireOptions{})
	})
	if !slices.Equal(ids, []uint32{oldID}) {
		t.Fatalf("destroy: got %v, want [%d]", ids, oldID)
	}
	if diff := cmp.Diff([]keys.KeyInfo{{ID: newID, Primary: true, Enabled: true}}, keyInfo(t, fx, a)); diff != "" {
		t.Errorf("keys after destruction (-want +got):\n%s", diff)
	}
	if ids := change(t, fx, a, keys.PurposeAEAD, func(w []byte) ([]byte, []uint32, error) {
		return keys.EnableWrapped(fx.kek, a, keys.PurposeAEAD, w, []uint32{oldID})
	}); len(ids) != 0 {
		t.Errorf("enable a destroyed key: got %v, want nothing", ids)
	}
	fx.kr.Invalidate(a)
	if _, err := fx.kr.Decrypt(ctx, email, old); !errors.Is(err, keys.ErrUnknownKey) {
		t.Errorf("under a destroyed key: got %v, want ErrUnknownKey", err)
	}
}

// Quarantined values hold a key back only until the operator says to skip them.
func TestQuarantinedValuesBlockUnlessSkipped(t *testing.T) {
	fx := newFixture(t, 1)
	a := fx.ids[0]
	rotate(t, fx, a)
	var oldID uint32
	for _, k := range keyInfo(t, fx, a) {
		if !k.Primary {
			oldID = k.ID
		}
	}
	w := fx.l.sets[a].AEAD
	for _, tc := range []struct {
		name                string
		used, quarantined   int64
		skip, wantRetireErr bool
	}{
		{"quarantined, not skipped", 2, 2, false, true},
		{"quarantined, skipped", 2, 2, true, false},
		{"more than the quarantined, skipped", 3, 2, true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			u := keys.KeyUsage{Tenant: a, AEAD: map[uint32]int64{oldID: tc.used}, QuarantinedAEAD: map[uint32]int64{oldID: tc.quarantined}}
			_, ids, err := keys.RetireWrapped(fx.kek, a, keys.PurposeAEAD, w, u, keys.RetireOptions{SkipQuarantined: tc.skip})
			if tc.wantRetireErr != errors.Is(err, keys.ErrKeyInUse) || (err == nil) == (ids == nil) {
				t.Errorf("got %v (%v), want ErrKeyInUse: %v", ids, err, tc.wantRetireErr)
			}
		})
	}
}

// A process that cached the keysets before a rotation reads what another wrote under the new key, after
// reading the keysets again; it does not take it for tampering. Ciphertexts naming keys that do not
// exist make it read at most once a second.
func TestKeyringReadsAgainForAKeyItLacks(t *testing.T) {
	now := time.Unix(1_000_000, 0)
	fx := newFixture(t, 1, func(c *keys.Config) { c.Now = func() time.Time { return now } })
	a := fx.ids[0]
	ctx := as(t, a)
	mustEncrypt(t, fx.kr, ctx, email, "warm") // the stale reader's cache
	w := fx.l.sets[a]
	var err error
	if w.AEAD, _, err = keys.RotateWrapped(fx.kek, a, keys.PurposeAEAD, w.AEAD); err != nil {
		t.Fatal(err)
	}
	fx.l.set(a, w)
	writer, err := keys.NewKeyring(keys.Config{KEK: fx.kek, Loader: fx.l})
	if err != nil {
		t.Fatal(err)
	}
	ct := mustEncrypt(t, writer, ctx, email, "written after the rotation")
	loads := func() int { n, _ := fx.l.counts(a); return n }

	if _, err := fx.kr.Decrypt(ctx, email, ct); !errors.Is(err, keys.ErrUnknownKey) || loads() != 2 {
		t.Fatalf("within a second of loading: got %v after %d loads, want ErrUnknownKey without a reload", err, loads())
	}
	fx.rec.take()
	now = now.Add(2 * time.Second)
	if pt, err := fx.kr.Decrypt(ctx, email, ct); err != nil || string(pt) != "written after the rotation" {
		t.Fatalf("a second later: got %q (%v), want the value, read with the keysets loaded again", pt, err)
	}
	if ev := fx.rec.take(); len(ev) != 0 || loads() != 3 {
		t.Errorf("got events %v after %d loads, want none after 3", ev, loads())
	}
	forged := slices.Clone(ct)
	forged[1] ^= 0xff // names a key nobody has
	for range 5 {
		if _, err := fx.kr.Decrypt(ctx, email, forged); !errors.Is(err, keys.ErrTampered) {
			t.Fatalf("forged key id: got %v, want ErrTampered", err)
		}
	}
	if got := loads(); got != 3 {
		t.Errorf("5 forged key ids within a second: got %d loads, want still 3", got)
	}
}

// The store's cache bound shortens the Keyring's TTL; a version change reaches the cache at the next
// revalidation.
func TestCacheFollowsTheStore(t *testing.T) {
	now := time.Unix(1_000_000, 0)
	fx := newFixture(t, 1, func(c *keys.Config) {
		c.CacheTTL, c.Revalidate, c.Now = time.Hour, 10*time.Second, func() time.Time { return now }
	})
	a := fx.ids[0]
	ctx := as(t, a)
	w := fx.l.sets[a]
	w.CacheBound = time.Minute
	fx.l.set(a, w)
	kr, err := keys.NewKeyring(keys.Config{KEK: fx.kek, Loader: versioned{fx.l}, CacheTTL: time.Hour, Revalidate: 10 * time.Second,
		Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []*keys.Keyring{fx.kr, kr} {
		if _, _, err := k.PrimaryKeyIDs(ctx); err != nil {
			t.Fatal(err)
		}
	}
	loads := func() int { n, _ := fx.l.counts(a); return n }
	now = now.Add(61 * time.Second)
	fx.kr.PrimaryKeyIDs(ctx)
	if got := loads(); got != 3 {
		t.Fatalf("past the store's bound of a minute with a TTL of an hour: got %d loads, want 3", got)
	}

	// A rotation, seen by the versioned Keyring at its next revalidation, not at its TTL.
	before, _, _ := kr.PrimaryKeyIDs(ctx)
	rotate(t, fx, a)
	w = fx.l.sets[a]
	w.Version++
	fx.l.set(a, w)
	now = now.Add(5 * time.Second)
	if got, _, _ := kr.PrimaryKeyIDs(ctx); got != before {
		t.Errorf("before the revalidation: got primary %d, want the cached %d", got, before)
	}
	now = now.Add(6 * time.Second)
	if got, _, _ := kr.PrimaryKeyIDs(ctx); got == before {
		t.Errorf("after the revalidation: got primary %d, want the rotated one", got)
	}
	if st := kr.Stats(); st.Checks == 0 {
		t.Errorf("got %+v, want version checks counted", st)
	}
}

// After a shred, values the shred destroyed are reported as such, not as tampered ones, and nothing is
// recorded, even under keysets the tenant was given afterwards.
func TestShreddedIsNoAlarm(t *testing.T) {
	fx := newFixture(t, 1)
	a := fx.ids[0]
	ctx := as(t, a)
	ct := mustEncrypt(t, fx.kr, ctx, email, "gone")
	w, err := keys.NewTenantKeysets(fx.kek, a)
	if err != nil {
		t.Fatal(err)
	}
	w.Shredded = true
	fx.l.set(a, w)
	fx.kr.Invalidate(a)
	fx.rec.take()
	_, err = fx.kr.Decrypt(ctx, email, ct)
	if !errors.Is(err, keys.ErrShredded) || errors.Is(err, keys.ErrTampered) {
		t.Errorf("got %v, want ErrShredded and not ErrTampered", err)
	}
	var fe *keys.FieldError
	if !errors.As(err, &fe) || fe.Row != email.Row || fe.Column != email.Column {
		t.Errorf("got %#v, want a FieldError naming the field", err)
	}
	if ev := fx.rec.take(); len(ev) != 0 {
		t.Errorf("got events %v, want none", ev)
	}
}
