package pgstore_test

import (
	"context"
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/tenantseal/tenantseal/internal/kmstest"
	"github.com/tenantseal/tenantseal/internal/pgtest"
	"github.com/tenantseal/tenantseal/keys"
	"github.com/tenantseal/tenantseal/keys/pgstore"
)

// A tenant whose keysets are wrapped by a KEK of its own (in a KMS, here the emulator) reads and writes
// as any other; the shared KEK's rotation leaves it alone; its customer disabling that key makes its
// keysets, and only its, unreadable.
func TestTenantKEK(t *testing.T) {
	t.Parallel()
	emu := kmstest.Start(t)
	client := emu.Client(t)
	e := newEnv(t)
	e.admin = e.admin.WithKMS(client)
	a, ctxA := e.tenant(t, "a")
	_, ctxB := e.tenant(t, "b")
	ctA, ctB := e.encrypt(t, ctxA, "a notes"), e.encrypt(t, ctxB, "b notes")
	uri := emu.NewKey(t)
	own, err := keys.OpenKEKWith(ctxA, uri, client)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.admin.UseTenantKEK(ctxA, a, uri, own); err != nil {
		t.Fatal(err)
	}
	app := func() *keys.Keyring {
		kr, err := keys.NewKeyring(keys.Config{KEK: e.kek, Loader: pgstore.Loader(e.pool),
			OpenKEK: func(ctx context.Context, uri string) (*keys.KEK, error) { return keys.OpenKEKWith(ctx, uri, client) }})
		if err != nil {
			t.Fatal(err)
		}
		return kr
	}
	read := func(kr *keys.Keyring, ctx context.Context, ct []byte) (string, error) {
		pt, err := kr.Decrypt(ctx, field("notes", "1"), ct)
		return string(pt), err
	}
	if got, err := read(app(), ctxA, ctA); err != nil || got != "a notes" {
		t.Fatalf("a under its own KEK: got %q (%v)", got, err)
	}
	// The shared KEK's keyring alone cannot open a's keysets.
	if _, err := read(e.keyring(t, e.kek), ctxA, ctA); !errors.Is(err, keys.ErrKEK) {
		t.Errorf("a without its KMS: got %v, want ErrKEK", err)
	}
	if _, err := e.admin.Rotate(ctxA, a); err != nil {
		t.Errorf("rotate a under its own KEK: %v", err)
	}
	next := mustKEK(t)
	if n, err := e.admin.RotateKEK(ctxA, next); err != nil || n != 2 {
		t.Fatalf("rotate the shared KEK: got %d keysets (%v), want b's 2 alone", n, err)
	}
	e.admin = pgstore.NewAdmin(e.owner, next).WithKMS(client)
	e.kek = next

	st, err := pgstore.Status(ctxA, e.owner)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string][3]string{}
	for _, s := range st {
		got[s.Name] = [3]string{s.KEKID, s.KEKURI, s.Keysets[0].Keys[len(s.Keysets[0].Keys)-1].Status}
	}
	want := map[string][3]string{"a": {own.ID, uri, "primary"}, "b": {next.ID, "", "primary"}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("status: KEK id, own URI, newest key's status (-want +got):\n%s", diff)
	}
	if s := st[0]; len(s.Keysets) != 2 || len(s.Keysets[0].Keys) != 2 || s.Keysets[0].Keys[0].Status != "enabled" ||
		s.Keysets[0].Keys[0].CreatedAt == nil || s.RetireAfter.Sub(s.PrimarySince) != keys.DefaultCacheTTL+60e9 {
		t.Errorf("status of a: got %+v, want two keys a keyset, the old enabled and dated, and a retire wait of 6m", s)
	}

	// Back to the shared KEK, and to its own again: the keys are the same throughout.
	if err := e.admin.UseSharedKEK(ctxA, a); err != nil {
		t.Fatal(err)
	}
	if got, err := read(app(), ctxA, ctA); err != nil || got != "a notes" {
		t.Fatalf("a back under the shared KEK: got %q (%v)", got, err)
	}
	if err := e.admin.UseTenantKEK(ctxA, a, uri, own); err != nil {
		t.Fatal(err)
	}

	emu.DisableKey(t, uri)
	if _, err := read(app(), ctxA, ctA); err == nil {
		t.Error("a after its customer disabled its key: read, want a refusal")
	}
	if got, err := read(app(), ctxB, ctB); err != nil || got != "b notes" {
		t.Errorf("b after a's key was disabled: got %q (%v), want it untouched", got, err)
	}
	if _, err := e.admin.Rotate(ctxA, a); err == nil {
		t.Error("rotate a with its key disabled: succeeded, want a refusal")
	}
}

func TestStatusWithoutKeysets(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a, ctxA := e.tenant(t, "a")
	if _, err := pgstore.NewAdmin(e.owner, nil).Shred(ctxA, a); err != nil {
		t.Fatal(err)
	}
	st, err := pgstore.Status(ctxA, e.owner, a)
	if err != nil || len(st) != 1 {
		t.Fatalf("got %+v (%v), want a", st, err)
	}
	if st[0].ShreddedAt == nil || len(st[0].Keysets) != 0 || st[0].KEKID != "" {
		t.Errorf("got %+v, want shredded with no keysets", st[0])
	}
	if _, err := pgstore.Status(ctxA, pgtest.Conn(t, e.d.OwnerDSN)); err != nil {
		t.Errorf("status of every tenant: %v", err)
	}
}
