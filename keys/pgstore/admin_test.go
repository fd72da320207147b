package pgstore_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5"

	"github.com/tenantseal/tenantseal"
	"github.com/tenantseal/tenantseal/internal/pgtest"
	"github.com/tenantseal/tenantseal/keys"
	"github.com/tenantseal/tenantseal/keys/pgstore"
)

// A tenants package creates the tenant's row and its keysets in one transaction of its own.
func TestCreateKeysetsInTheCallersTransaction(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		create func(e *env, ctx context.Context, tx pgx.Tx, id tenantseal.TenantID) error
	}{
		{"CreateKeysetsIn", func(e *env, ctx context.Context, tx pgx.Tx, id tenantseal.TenantID) error {
			return e.admin.CreateKeysetsIn(ctx, tx, id)
		}},
		{"an Admin over the transaction", func(e *env, ctx context.Context, tx pgx.Tx, id tenantseal.TenantID) error {
			return pgstore.NewAdmin(tx, e.kek).CreateKeysets(ctx, id)
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			ctx := pgtest.Context(t)
			count := func() (keysets, canaries int) {
				t.Helper()
				if err := e.owner.QueryRow(ctx, "SELECT (SELECT count(*) FROM tenantseal.tenant_keysets), (SELECT count(*) FROM tenantseal.kek_canary)").Scan(&keysets, &canaries); err != nil {
					t.Fatal(err)
				}
				return keysets, canaries
			}
			var id tenantseal.TenantID
			create := func(tx pgx.Tx) error {
				if err := tx.QueryRow(ctx, "INSERT INTO tenantseal.tenants (name) VALUES ('t') RETURNING id").Scan(&id); err != nil {
					return err
				}
				return tc.create(e, ctx, tx, id)
			}
			tx, err := e.owner.Begin(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if err := create(tx); err != nil {
				t.Fatal(err)
			}
			if err := tx.Rollback(ctx); err != nil {
				t.Fatal(err)
			}
			if k, c := count(); k != 0 || c != 0 {
				t.Errorf("after the caller's rollback: got %d keysets and %d canaries, want none", k, c)
			}
			if err := pgx.BeginFunc(ctx, e.owner, create); err != nil {
				t.Fatal(err)
			}
			if k, c := count(); k != 2 || c != 1 {
				t.Errorf("after the caller's commit: got %d keysets and %d canaries, want 2 and 1", k, c)
			}
			before := e.keysets(t)[id]
			if err := e.admin.CreateKeysets(ctx, id); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(before, e.keysets(t)[id]); diff != "" {
				t.Errorf("a second CreateKeysets changed the keysets (-before +after):\n%s", diff)
			}
			ctxT := tenantseal.WithPrincipal(ctx, tenantseal.Principal{Tenant: id, Subject: "u"})
			if _, err := e.kr.Encrypt(ctxT, field("notes", "1"), []byte("x")); err != nil {
				t.Errorf("encrypt with keysets created in the caller's transaction: %v", err)
			}
		})
	}
}

func TestRotateThenRetire(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a, ctxA := e.tenant(t, "a")
	b, _ := e.tenant(t, "b")
	old := e.encrypt(t, ctxA, "old")
	oldAEAD, oldPRF, err := e.kr.PrimaryKeyIDs(ctxA)
	if err != nil {
		t.Fatal(err)
	}
	bBefore := e.keysets(t)[b]

	if _, err := e.admin.Rotate(ctxA, a); err != nil {
		t.Fatal(err)
	}
	e.kr.Invalidate(a)
	newAEAD, newPRF, err := e.kr.PrimaryKeyIDs(ctxA)
	if err != nil || newAEAD == oldAEAD || newPRF == oldPRF {
		t.Fatalf("primary keys after rotation: got %d, %d (%v), want new ones", newAEAD, newPRF, err)
	}
	if ids, err := e.admin.Retire(ctxA, a, keys.KeyUsage{Tenant: a}, keys.RetireOptions{}); !errors.Is(err, pgstore.ErrTooSoon) || ids != nil {
		t.Errorf("retire right after the rotation: got %v, %v; want nothing retired and ErrTooSoon", ids, err)
	}
	e.pastRetireWait(t, a)
	refused := []struct {
		name  string
		usage keys.KeyUsage
		want  error
	}{
		{"old PRF key in use", keys.KeyUsage{Tenant: a, PRF: map[uint32]int64{oldPRF: 1}}, keys.ErrKeyInUse},
		{"usage of another tenant", keys.KeyUsage{Tenant: b}, tenantseal.ErrTenantMismatch},
	}
	rotated := e.keysets(t)[a]
	for _, tc := range refused {
		ids, err := e.admin.Retire(ctxA, a, tc.usage, keys.RetireOptions{})
		if !errors.Is(err, tc.want) || ids != nil {
			t.Errorf("retire, %s: got %v, %v; want nothing retired and %v", tc.name, ids, err, tc.want)
		}
		if diff := cmp.Diff(rotated, e.keysets(t)[a]); diff != "" {
			t.Errorf("retire, %s, changed the keysets (-before +after):\n%s", tc.name, diff)
		}
	}
	changed, err := e.admin.Retire(ctxA, a, keys.KeyUsage{Tenant: a, AEAD: map[uint32]int64{newAEAD: 5}}, keys.RetireOptions{})
	ids := changed.IDs()
	slices.Sort(ids)
	want := []uint32{oldAEAD, oldPRF}
	slices.Sort(want)
	if err != nil || !slices.Equal(ids, want) {
		t.Fatalf("retire: got %v (%v), want the old keys %v", ids, err, want)
	}
	e.kr.Invalidate(a)
	if _, err := e.kr.Decrypt(ctxA, field("notes", "1"), old); !errors.Is(err, keys.ErrUnknownKey) {
		t.Errorf("ciphertext under a retired key: got %v, want ErrUnknownKey", err)
	}
	if diff := cmp.Diff(bBefore, e.keysets(t)[b]); diff != "" {
		t.Errorf("tenant b's keysets changed (-before +after):\n%s", diff)
	}
	if ts, err := e.admin.Tenants(ctxA); err != nil || !slices.Contains(ts, a) || !slices.Contains(ts, b) || len(ts) != 2 {
		t.Errorf("Tenants: got %v (%v), want a and b", ts, err)
	}
}

func TestRotateKEKAndShred(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a, ctxA := e.tenant(t, "a")
	b, ctxB := e.tenant(t, "b")
	ctA := e.encrypt(t, ctxA, "a notes")
	ctB := e.encrypt(t, ctxB, "b notes")

	next := mustKEK(t)
	n, err := e.admin.RotateKEK(ctxA, next)
	if err != nil || n != 4 {
		t.Fatalf("rotate-kek: got %d keysets (%v), want 4", n, err)
	}
	if err := pgstore.CheckKEK(ctxA, e.pool, next); err != nil {
		t.Errorf("CheckKEK with the new KEK: %v", err)
	}
	if _, err := e.keyring(t, e.kek).Decrypt(ctxA, field("notes", "1"), ctA); !errors.Is(err, keys.ErrKEK) {
		t.Errorf("old KEK after rotate-kek: got %v, want ErrKEK", err)
	}
	kr := e.keyring(t, next)
	if got, err := kr.Decrypt(ctxA, field("notes", "1"), ctA); err != nil || string(got) != "a notes" {
		t.Errorf("new KEK: got %q (%v), want the field unchanged", got, err)
	}
	if _, err := e.admin.Rotate(ctxA, a); !errors.Is(err, keys.ErrKEK) {
		t.Errorf("an Admin with the old KEK after rotate-kek: got %v, want ErrKEK", err)
	}

	admin := pgstore.NewAdmin(e.owner, next)
	if n, err := admin.Shred(ctxA, a); err != nil || n != 2 {
		t.Fatalf("shred: got %d (%v), want 2 keysets destroyed", n, err)
	}
	kr.Invalidate(a)
	if _, err := kr.Decrypt(ctxA, field("notes", "1"), ctA); !errors.Is(err, keys.ErrNoKeyset) {
		t.Errorf("after shred: got %v, want ErrNoKeyset", err)
	}
	if got, err := kr.Decrypt(ctxB, field("notes", "1"), ctB); err != nil || string(got) != "b notes" {
		t.Errorf("other tenant after shred: got %q (%v), want b notes", got, err)
	}
	if _, err := admin.Shred(ctxA, a); !errors.Is(err, keys.ErrNoKeyset) {
		t.Errorf("second shred: got %v, want ErrNoKeyset", err)
	}
	// Nothing can bring the keys back: a rotation has nothing to rotate.
	if _, err := admin.Rotate(ctxA, a); !errors.Is(err, keys.ErrNoKeyset) {
		t.Errorf("rotate after shred: got %v, want ErrNoKeyset", err)
	}
	if ts, err := admin.Tenants(ctxA); err != nil || len(ts) != 1 || ts[0] != b {
		t.Errorf("Tenants after shred: got %v (%v), want b alone", ts, err)
	}
}

func TestWrongKEK(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a, ctxA := e.tenant(t, "a")
	other := mustKEK(t)
	sameID := keys.NewKEK(e.kek.ID, fakeAEAD(t)) // the right id, another key
	for _, tc := range []struct {
		name      string
		kek       *keys.KEK
		rotateErr error
	}{
		{"another KEK", other, keys.ErrKEK},
		// Rotate reads no canary: under the stored KEK id it cannot tell a wrong key from a tampered
		// keyset. CheckKEK, which the CLI runs first, can.
		{"another key under the right id", sameID, keys.ErrKeysetTampered},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := e.keyring(t, tc.kek).Encrypt(ctxA, field("notes", "1"), []byte("x")); !errors.Is(err, keys.ErrKEK) {
				t.Errorf("Keyring: got %v, want ErrKEK", err)
			}
			if err := pgstore.CheckKEK(ctxA, e.pool, tc.kek); !errors.Is(err, keys.ErrKEK) {
				t.Errorf("CheckKEK: got %v, want ErrKEK", err)
			}
			admin := pgstore.NewAdmin(e.owner, tc.kek)
			if _, err := admin.CreateTenant(ctxA, "c"); !errors.Is(err, keys.ErrKEK) {
				t.Errorf("CreateTenant: got %v, want ErrKEK", err)
			}
			if _, err := admin.Rotate(ctxA, a); !errors.Is(err, tc.rotateErr) {
				t.Errorf("Rotate: got %v, want %v", err, tc.rotateErr)
			}
			if _, err := admin.RotateKEK(ctxA, tc.kek); !errors.Is(err, keys.ErrKEK) {
				t.Errorf("RotateKEK: got %v, want ErrKEK", err)
			}
		})
	}
	if err := pgstore.CheckKEK(ctxA, e.pool, e.kek); err != nil {
		t.Errorf("CheckKEK with the right KEK: %v", err)
	}
	// Before any keyset exists, any KEK passes: the first keysets store the canary.
	if err := pgstore.CheckKEK(ctxA, pgtest.Conn(t, newEnv(t).d.OwnerDSN), other); err != nil {
		t.Errorf("CheckKEK on a database without keysets: %v", err)
	}
	// Rows of tenants created with a wrong KEK were not left behind.
	var n int
	if err := e.owner.QueryRow(ctxA, "SELECT count(*) FROM tenantseal.tenants WHERE name = 'c'").Scan(&n); err != nil || n != 0 {
		t.Errorf("got %d tenants from refused CreateTenant calls (%v), want none", n, err)
	}
}

// An Admin without a KEK can shred and list, and refuses the rest.
func TestAdminWithoutKEK(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a, ctxA := e.tenant(t, "a")
	admin := pgstore.NewAdmin(e.owner, nil)
	if _, err := admin.Rotate(ctxA, a); !errors.Is(err, keys.ErrKEK) {
		t.Errorf("Rotate: got %v, want ErrKEK", err)
	}
	if err := pgx.BeginFunc(ctxA, e.owner, func(tx pgx.Tx) error { return admin.CreateKeysetsIn(ctxA, tx, a) }); !errors.Is(err, keys.ErrKEK) {
		t.Errorf("CreateKeysetsIn: got %v, want ErrKEK", err)
	}
	if _, err := admin.CreateTenant(ctxA, "b"); !errors.Is(err, keys.ErrKEK) {
		t.Errorf("CreateTenant: got %v, want ErrKEK", err)
	}
	if ts, err := admin.Tenants(ctxA); err != nil || len(ts) != 1 {
		t.Errorf("Tenants: got %v (%v), want a", ts, err)
	}
	if n, err := admin.Shred(ctxA, a); err != nil || n != 2 {
		t.Errorf("Shred: got %d (%v), want 2", n, err)
	}
}

// The cache bound reaches every Keyring that loads through pgstore, and a lowered one does not shorten
// the retire wait until the old one has passed.
func TestKeySettings(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a, ctxA := e.tenant(t, "a")
	st, err := pgstore.ReadKeySettings(ctxA, e.owner)
	if err != nil || st != (pgstore.KeySettings{MaxCacheTTL: 5 * time.Minute, WriteGrace: time.Minute, RetireWait: 6 * time.Minute}) {
		t.Fatalf("defaults: got %+v (%v)", st, err)
	}
	minute, zero := time.Minute, time.Duration(0)
	rec := &events{}
	st, err = e.admin.WithRecorder(rec).SetKeySettings(ctxA, pgstore.KeySettingsChange{MaxCacheTTL: &minute, WriteGrace: &zero})
	if err != nil || st != (pgstore.KeySettings{MaxCacheTTL: time.Minute, RetireWait: 5 * time.Minute}) {
		t.Errorf("lowered: got %+v (%v), want a 1m bound and the old 5m still in the wait", st, err)
	}
	if ev := rec.take(); len(ev) != 1 || ev[0].Kind != tenantseal.EventKeySettings {
		t.Errorf("got events %+v, want the change recorded", ev)
	}
	e.exec(t, "UPDATE tenantseal.key_settings SET changed_at = changed_at - interval '10 minutes'")
	if st, err := pgstore.ReadKeySettings(ctxA, e.owner); err != nil || st.RetireWait != time.Minute {
		t.Errorf("after the old bound passed: got %+v (%v), want a 1m wait", st, err)
	}
	w, err := pgstore.Loader(e.pool).LoadKeysets(ctxA, a)
	if err != nil || w.CacheBound != time.Minute {
		t.Errorf("loaded: got bound %v (%v), want 1m", w.CacheBound, err)
	}
	if _, err := e.admin.SetKeySettings(ctxA, pgstore.KeySettingsChange{MaxCacheTTL: &zero}); err == nil {
		t.Error("a zero bound: accepted, want a refusal")
	}
}

// The tenants of a running isolation check (their keysets wrapped by the check's own KEK) are left out of
// the operations over every tenant.
func TestIsolationCheckTenantsAreSkipped(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a, ctxA := e.tenant(t, "a")
	suiteTenant, _ := e.tenant(t, "x")
	e.exec(t, "UPDATE tenantseal.tenants SET name = '"+pgstore.IsolationTenantPrefix+" run 1a2b' WHERE id = '"+suiteTenant.String()+"'")
	before := e.keysets(t)[suiteTenant]
	if ts, err := e.admin.Tenants(ctxA); err != nil || !slices.Equal(ts, []tenantseal.TenantID{a}) {
		t.Errorf("Tenants: got %v (%v), want a alone", ts, err)
	}
	n, err := e.admin.RotateKEK(ctxA, mustKEK(t))
	if err != nil || n != 2 {
		t.Errorf("rotate-kek: got %d keysets (%v), want a's 2", n, err)
	}
	if diff := cmp.Diff(before, e.keysets(t)[suiteTenant]); diff != "" {
		t.Errorf("the isolation check's keysets changed (-before +after):\n%s", diff)
	}
}
