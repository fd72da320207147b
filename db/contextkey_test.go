package db_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/tenantseal/tenantseal/db"
	"github.com/tenantseal/tenantseal/internal/pgtest"
)

// keyIDs returns the ids of keys, and whether each has an end.
func keyIDs(keys []db.StoredContextKey) map[string]bool {
	m := map[string]bool{}
	for _, k := range keys {
		m[k.ID] = !k.NotAfter.IsZero()
	}
	return m
}

func mustContextKeys(t *testing.T, d *pgtest.Database) []db.StoredContextKey {
	t.Helper()
	keys, err := db.ContextKeys(testContext(t), mustConn(t, d.OwnerDSN))
	if err != nil {
		t.Fatal(err)
	}
	return keys
}

func TestRotateContextKey(t *testing.T) {
	t.Parallel()
	d := pgtest.NewDatabase(t)
	owner := mustConn(t, d.OwnerDSN)
	tenant := mustTenant(t, d, "acme")
	old := d.ContextKey
	count := func(key db.ContextKey) error {
		cfg := mustConfig(t, d, d.AppDSN)
		cfg.SigningKey = key
		var n int
		return mustOpen(t, cfg).QueryRow(as(testContext(t), tenant, "s"), "SELECT count(*) FROM tenantseal.tenants").Scan(&n)
	}

	if got, want := keyIDs(mustContextKeys(t, d)), map[string]bool{old.ID: false}; !cmp.Equal(got, want) {
		t.Fatalf("before rotating: got keys %v, want %v", got, want)
	}

	before := time.Now()
	k1, err := db.RotateContextKey(testContext(t), owner, 10*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	after := time.Now()
	if k1.ID == old.ID || len(k1.Secret) != 32 {
		t.Fatalf("got key %s with a %d-byte secret, want a new id and 32 bytes", k1, len(k1.Secret))
	}
	keys := mustContextKeys(t, d)
	if got, want := keyIDs(keys), map[string]bool{old.ID: true, k1.ID: false}; !cmp.Equal(got, want) {
		t.Fatalf("after rotating with an overlap: got keys %v (id: has an end), want %v", got, want)
	}
	// The database's clock decides; allow for a skew of a second between it and this process.
	if end := keys[0].NotAfter; end.Before(before.Add(10*time.Minute-time.Second)) || end.After(after.Add(10*time.Minute+time.Second)) {
		t.Errorf("old key accepted until %v, want 10m after the rotation (%v .. %v)", end, before, after)
	}
	for name, key := range map[string]db.ContextKey{"new": k1, "old, within the overlap": old} {
		if err := count(key); err != nil {
			t.Errorf("%s key: got %v, want it accepted", name, err)
		}
	}

	// Overlap 0 retires nothing: what bootstrap installs is accepted next to what is there.
	k2, err := db.RotateContextKey(testContext(t), owner, 0)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := keyIDs(mustContextKeys(t, d)), map[string]bool{old.ID: true, k1.ID: false, k2.ID: false}; !cmp.Equal(got, want) {
		t.Fatalf("after rotating without an overlap: got keys %v, want %v", got, want)
	}

	// A short overlap: once it has passed, the retired keys are no longer listed, and refused.
	k3, err := db.RotateContextKey(testContext(t), owner, 50*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond)
	if got, want := keyIDs(mustContextKeys(t, d)), map[string]bool{k3.ID: false}; !cmp.Equal(got, want) {
		t.Fatalf("after the overlap: got keys %v, want %v", got, want)
	}
	if err := count(k3); err != nil {
		t.Errorf("newest key: got %v, want it accepted", err)
	}
	for name, key := range map[string]db.ContextKey{"first": old, "second": k1, "third": k2} {
		if err := count(key); !errors.Is(err, db.ErrInvalidContext) {
			t.Errorf("%s key after the overlap: got %v, want db.ErrInvalidContext", name, err)
		}
	}
}

func TestRotateContextKeyRefusals(t *testing.T) {
	t.Parallel()
	d := pgtest.NewDatabase(t)
	want := keyIDs(mustContextKeys(t, d))

	if _, err := db.RotateContextKey(testContext(t), mustConn(t, d.OwnerDSN), -time.Second); err == nil || !strings.Contains(err.Error(), "negative overlap") {
		t.Errorf("negative overlap: got %v, want a refusal naming the negative overlap", err)
	}
	for _, role := range []struct{ name, dsn string }{{"app", d.AppDSN}, {"auditor", d.AuditorDSN}} {
		if _, err := db.RotateContextKey(testContext(t), mustConn(t, role.dsn), time.Minute); sqlState(err) != "42501" {
			t.Errorf("rotate as the %s role: got %v, want permission denied (42501)", role.name, err)
		}
		if _, err := db.ContextKeys(testContext(t), mustConn(t, role.dsn)); sqlState(err) != "42501" {
			t.Errorf("list as the %s role: got %v, want permission denied (42501)", role.name, err)
		}
	}
	if got := keyIDs(mustContextKeys(t, d)); !cmp.Equal(got, want) {
		t.Errorf("after the refusals: got keys %v, want them unchanged %v", got, want)
	}
}

func TestRolePrefix(t *testing.T) {
	t.Parallel()
	d := pgtest.NewDatabase(t)
	got, err := db.DatabaseRolePrefix(testContext(t), mustConn(t, d.OwnerDSN))
	if err != nil || got != d.RolePrefix() {
		t.Errorf("DatabaseRolePrefix: got %q, %v; want %q", got, err, d.RolePrefix())
	}
	if _, err := db.DatabaseRolePrefix(testContext(t), mustConn(t, d.AppDSN)); sqlState(err) != "42501" {
		t.Errorf("DatabaseRolePrefix as the app role: got %v, want permission denied (42501)", err)
	}

	app := mustConn(t, d.AppDSN)
	if err := db.CheckRolePrefix(testContext(t), app, d.RolePrefix()); err != nil {
		t.Errorf("CheckRolePrefix(%q): got %v, want nil", d.RolePrefix(), err)
	}
	if err := db.CheckRolePrefix(testContext(t), app, "nosuch"); err == nil || !strings.Contains(err.Error(), "no role nosuch_owner") {
		t.Errorf(`CheckRolePrefix("nosuch"): got %v, want an error naming the missing role nosuch_owner`, err)
	}
}
