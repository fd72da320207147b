package tenants_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5"

	"github.com/tenantseal/tenantseal"
	"github.com/tenantseal/tenantseal/internal/pgtest"
	"github.com/tenantseal/tenantseal/tenants"
)

func TestCreateListGet(t *testing.T) {
	t.Parallel()
	d := pgtest.NewDatabase(t)
	owner := mustConn(t, d.OwnerDSN)
	before := time.Now().Add(-time.Minute)

	var want []tenants.Tenant
	for _, name := range []string{"acme", "Globex Corporation", "Café 東京", strings.Repeat("東", 66)} {
		tn := mustCreate(t, owner, name, nil)
		if tn.ID.IsZero() || tn.Name != name || tn.Status != tenants.StatusActive || tn.CreatedAt.Before(before) || tn.CreatedAt.Location() != time.UTC {
			t.Errorf("create %q: got %+v, want a new active tenant of that name, created now, in UTC", name, tn)
		}
		want = append(want, tn)
	}
	got, err := tenants.List(testContext(t), owner)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("list differs from what create returned (-want +got):\n%s", diff)
	}
	for _, w := range want {
		if g, err := tenants.Get(testContext(t), owner, w.ID); err != nil || !cmp.Equal(g, w) {
			t.Errorf("get %s: got %+v, %v; want %+v", w.ID, g, err, w)
		}
	}
	missing := tenantseal.TenantIDFromUUID([16]byte{1})
	if _, err := tenants.Get(testContext(t), owner, missing); !errors.Is(err, tenants.ErrNotFound) {
		t.Errorf("get a missing tenant: got %v, want tenants.ErrNotFound", err)
	}
}

func TestCreateRefusesBadNamesBeforeTheDatabase(t *testing.T) {
	t.Parallel()
	d := pgtest.NewDatabase(t)
	owner, sent := countingConn(t, d.OwnerDSN)
	tests := []struct {
		name, tenant, why string
	}{
		{"empty", "", "empty"},
		{"201 bytes", strings.Repeat("x", 201), "201 bytes"},
		{"201 bytes of 3-byte characters", strings.Repeat("東", 67), "201 bytes"},
		{"invalid UTF-8", "acme\xff", "not valid UTF-8"},
		{"tab", "tab\there", "control character"},
		{"newline", "two\nlines", "control character"},
		{"NUL", "nul\x00", "control character"},
		{"escape", "red\x1b[31m", "control character"},
		{"C1 control", "next\u0085line", "control character"},
		{"the isolation check's", "tenantseal-isolation run 1", "isolation check's own"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := tenants.ValidateName(tc.tenant); !errors.Is(err, tenants.ErrInvalidName) {
				t.Fatalf("ValidateName: got %v, want tenants.ErrInvalidName", err)
			}
			n := sent.n.Load()
			_, err := tenants.Create(testContext(t), owner, tc.tenant, nil)
			if !errors.Is(err, tenants.ErrInvalidName) {
				t.Fatalf("got %v, want tenants.ErrInvalidName", err)
			}
			if msg := err.Error(); !strings.Contains(msg, tc.why) || !strings.Contains(msg, "1 to 200 bytes of UTF-8 without control characters") ||
				strings.Count(msg, "tenants: ") != 1 {
				t.Errorf("got message %q, want one \"tenants: \" prefix, %q and the limits", msg, tc.why)
			}
			if got := sent.n.Load() - n; got != 0 {
				t.Errorf("got %d statements sent, want none", got)
			}
		})
	}
	for _, ok := range []string{"a", strings.Repeat("x", 200), strings.Repeat("東", 66) + "xx", "Ünïcödé & <co>"} {
		if err := tenants.ValidateName(ok); err != nil {
			t.Errorf("ValidateName(%q): got %v, want nil", ok, err)
		}
	}
	if ts, err := tenants.List(testContext(t), owner); err != nil || len(ts) != 0 {
		t.Errorf("after the refusals: got tenants %v (%v), want none", ts, err)
	}
}

func TestCreateWithKeysetsIsOneTransaction(t *testing.T) {
	t.Parallel()
	d := pgtest.NewDatabase(t)
	owner := mustConn(t, d.OwnerDSN)
	kek := mustKEK(t)

	acme := mustCreate(t, owner, "acme", withKeysets(kek))
	if n := keysetCount(t, owner, acme.ID); n != 2 {
		t.Errorf("got %d keysets, want 2 (aead, prf)", n)
	}
	bare := mustCreate(t, owner, "bare", nil)
	if n := keysetCount(t, owner, bare.ID); n != 0 {
		t.Errorf("created without keysets: got %d keysets, want 0", n)
	}

	// A creator that fails after storing the keysets takes the tenant's row with it.
	errBoom := errors.New("boom")
	var failed tenantseal.TenantID
	_, err := tenants.Create(testContext(t), owner, "doomed", func(ctx context.Context, tx pgx.Tx, id tenantseal.TenantID) error {
		failed = id
		if err := withKeysets(kek)(ctx, tx, id); err != nil {
			return err
		}
		return errBoom
	})
	if !errors.Is(err, errBoom) || err.Error() != "boom" {
		t.Errorf("got %v, want the creator's error as it is", err)
	}
	if _, err := tenants.Get(testContext(t), owner, failed); !errors.Is(err, tenants.ErrNotFound) {
		t.Errorf("tenant of the failed creation: got %v, want tenants.ErrNotFound", err)
	}
	if n := keysetCount(t, owner, failed); n != 0 {
		t.Errorf("failed creation: got %d keysets, want 0", n)
	}

	// The app role may not create tenants.
	if _, err := tenants.Create(testContext(t), mustConn(t, d.AppDSN), "intruder", nil); sqlState(err) != "42501" {
		t.Errorf("create as the app role: got %v, want permission denied (42501)", err)
	}
}

func TestStatusChanges(t *testing.T) {
	t.Parallel()
	d := pgtest.NewDatabase(t)
	owner := mustConn(t, d.OwnerDSN)
	id := mustCreate(t, owner, "acme", nil).ID
	other := mustCreate(t, owner, "other", nil).ID
	missing := tenantseal.TenantIDFromUUID([16]byte{1})

	type change func(context.Context, tenants.DB, tenantseal.TenantID, ...tenants.Option) error
	steps := []struct {
		name    string
		do      change
		id      tenantseal.TenantID
		wantErr error
		want    tenants.Status // of id afterwards
	}{
		{"suspend", tenants.Suspend, id, nil, tenants.StatusSuspended},
		{"suspend again", tenants.Suspend, id, nil, tenants.StatusSuspended},
		{"resume", tenants.Resume, id, nil, tenants.StatusActive},
		{"resume an active tenant", tenants.Resume, id, nil, tenants.StatusActive},
		{"suspend a missing tenant", tenants.Suspend, missing, tenants.ErrNotFound, tenants.StatusActive},
		{"resume a missing tenant", tenants.Resume, missing, tenants.ErrNotFound, tenants.StatusActive},
		{"delete a missing tenant", tenants.Delete, missing, tenants.ErrNotFound, tenants.StatusActive},
		{"suspend before deleting", tenants.Suspend, id, nil, tenants.StatusSuspended},
		{"delete", tenants.Delete, id, nil, tenants.StatusDeleted},
		{"delete again", tenants.Delete, id, nil, tenants.StatusDeleted},
		{"resume a deleted tenant", tenants.Resume, id, tenants.ErrDeleted, tenants.StatusDeleted},
		{"suspend a deleted tenant", tenants.Suspend, id, tenants.ErrDeleted, tenants.StatusDeleted},
	}
	for _, st := range steps {
		err := st.do(testContext(t), owner, st.id)
		if !errors.Is(err, st.wantErr) || (st.wantErr == nil) != (err == nil) {
			t.Errorf("%s: got error %v, want %v", st.name, err, st.wantErr)
		}
		got, err := tenants.Get(testContext(t), owner, id)
		if err != nil {
			t.Fatal(err)
		}
		if got.Status != st.want {
			t.Errorf("%s: got status %s, want %s", st.name, got.Status, st.want)
		}
	}
	if got, err := tenants.Get(testContext(t), owner, other); err != nil || got.Status != tenants.StatusActive {
		t.Errorf("the other tenant: got %+v, %v; want it active still", got, err)
	}
	// The app role may not change a status, even of its own tenant.
	if err := tenants.Suspend(testContext(t), mustConn(t, d.AppDSN), other); sqlState(err) != "42501" {
		t.Errorf("suspend as the app role: got %v, want permission denied (42501)", err)
	}
}

func TestShred(t *testing.T) {
	t.Parallel()
	d := pgtest.NewDatabase(t)
	owner := mustConn(t, d.OwnerDSN)
	kek := mustKEK(t)
	a := mustCreate(t, owner, "a", withKeysets(kek)).ID
	b := mustCreate(t, owner, "b", withKeysets(kek)).ID
	bare := mustCreate(t, owner, "bare", nil).ID
	rec := &recorder{}

	got, err := tenants.Shred(testContext(t), owner, rec, a)
	if err != nil {
		t.Fatal(err)
	}
	want := tenants.Shredded{Purposes: []string{"aead", "prf"}, KEKIDs: []string{kek.ID}, Role: d.Roles.Owner, At: got.At}
	if diff := cmp.Diff(want, got); diff != "" || got.At.IsZero() {
		t.Errorf("shredded differs (-want +got):\n%s", diff)
	}
	if n := keysetCount(t, owner, a); n != 0 {
		t.Errorf("shredded tenant: got %d keysets, want 0", n)
	}
	if n := keysetCount(t, owner, b); n != 2 {
		t.Errorf("other tenant: got %d keysets, want 2", n)
	}
	wantEvents := []tenantseal.Event{{Kind: tenantseal.EventShred, TargetTenant: a, Table: "tenantseal.tenant_keysets", Operation: "shred",
		Detail: "destroyed 2 keysets (aead, prf) as database role " + d.Roles.Owner}}
	if diff := cmp.Diff(wantEvents, rec.Recorded()); diff != "" {
		t.Errorf("recorded events differ (-want +got):\n%s", diff)
	}

	// Refusals record nothing and destroy nothing.
	tests := []struct {
		name    string
		db      tenants.DB
		rec     tenantseal.Recorder
		id      tenantseal.TenantID
		wantErr error  // matched with errors.Is, or
		state   string // the SQLSTATE wanted
	}{
		{"a missing tenant", owner, rec, tenantseal.TenantIDFromUUID([16]byte{1}), tenants.ErrNotFound, ""},
		{"as the app role", mustConn(t, d.AppDSN), rec, b, nil, "42501"},
		{"as the auditor role", mustConn(t, d.AuditorDSN), rec, b, nil, "42501"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tenants.Shred(testContext(t), tc.db, tc.rec, tc.id)
			if tc.wantErr != nil && !errors.Is(err, tc.wantErr) {
				t.Errorf("got %v, want %v", err, tc.wantErr)
			}
			if tc.state != "" && sqlState(err) != tc.state {
				t.Errorf("got %v, want SQLSTATE %s", err, tc.state)
			}
			if n := len(rec.Recorded()); n != 1 {
				t.Errorf("got %d events recorded in all, want only the first shred's", n)
			}
			if n := keysetCount(t, owner, b); n != 2 {
				t.Errorf("other tenant: got %d keysets, want 2", n)
			}
		})
	}
	// Again: a no-op, reported as such, recording nothing (idempotent automation).
	again, err := tenants.Shred(testContext(t), owner, rec, a)
	if err != nil || !again.Already || !again.At.Equal(got.At) || len(rec.Recorded()) != 1 {
		t.Errorf("second shred: got %+v (%v) and %d events, want Already at the first shred's time and no event", again, err, len(rec.Recorded()))
	}
	// A tenant without keysets is marked shredded all the same, and that is recorded.
	if s, err := tenants.Shred(testContext(t), owner, rec, bare); err != nil || s.Already || len(s.Purposes) != 0 {
		t.Errorf("shred a tenant without keysets: got %+v (%v), want it marked", s, err)
	}
	if ev := rec.Recorded(); len(ev) != 2 || !strings.Contains(ev[1].Detail, "it had no keysets") {
		t.Errorf("got events %+v, want the marking recorded", ev)
	}
	for _, id := range []tenantseal.TenantID{a, bare} {
		if tn, err := tenants.Get(testContext(t), owner, id); err != nil || tn.ShreddedAt == nil {
			t.Errorf("tenant %s: got %+v (%v), want it shown as shredded", id, tn, err)
		}
	}
	if tn, _ := tenants.Get(testContext(t), owner, b); tn.ShreddedAt != nil {
		t.Errorf("tenant b: got %+v, want it not shredded", tn)
	}
	t.Run("without a recorder", func(t *testing.T) {
		if _, err := tenants.Shred(testContext(t), owner, nil, b); err == nil || !strings.Contains(err.Error(), "Recorder is required") {
			t.Errorf("got %v, want a refusal naming the missing Recorder", err)
		}
		if n := keysetCount(t, owner, b); n != 2 {
			t.Errorf("got %d keysets, want 2: nothing shredded unrecorded", n)
		}
	})
}

// Names are unique without regard to case; a rename is validated like a creation, and every change is
// recorded with its operator.
func TestNamesAndRecordedChanges(t *testing.T) {
	t.Parallel()
	d := pgtest.NewDatabase(t)
	owner := mustConn(t, d.OwnerDSN)
	rec := &recorder{}
	ctx := tenantseal.WithPrincipal(testContext(t), tenantseal.OperatorPrincipal("dba@host"))
	acme, err := tenants.Create(ctx, owner, "Acme", nil, tenants.Recording(rec))
	if err != nil {
		t.Fatal(err)
	}
	globex := mustCreate(t, owner, "Globex", nil)
	for _, name := range []string{"Acme", "acme", "ACME"} {
		if _, err := tenants.Create(ctx, owner, name, nil, tenants.Recording(rec)); !errors.Is(err, tenants.ErrDuplicateName) || !strings.Contains(err.Error(), acme.ID.String()) {
			t.Errorf("create %q: got %v, want ErrDuplicateName naming %s", name, err, acme.ID)
		}
	}
	if err := tenants.Rename(ctx, owner, globex.ID, "acme", tenants.Recording(rec)); !errors.Is(err, tenants.ErrDuplicateName) {
		t.Errorf("rename onto another's name: got %v, want ErrDuplicateName", err)
	}
	if err := tenants.Rename(ctx, owner, globex.ID, "bad\nname"); !errors.Is(err, tenants.ErrInvalidName) {
		t.Errorf("rename to a bad name: got %v, want ErrInvalidName", err)
	}
	if err := tenants.Rename(ctx, owner, acme.ID, "ACME Corp", tenants.Recording(rec)); err != nil {
		t.Fatal(err)
	}
	if err := tenants.Rename(ctx, owner, acme.ID, "ACME Corp", tenants.Recording(rec)); err != nil {
		t.Errorf("rename to the same name: %v, want a no-op", err)
	}
	if err := tenants.Rename(ctx, owner, tenantseal.TenantIDFromUUID([16]byte{1}), "x"); !errors.Is(err, tenants.ErrNotFound) {
		t.Errorf("rename a missing tenant: got %v, want ErrNotFound", err)
	}
	if err := tenants.Suspend(ctx, owner, acme.ID, tenants.Recording(rec)); err != nil {
		t.Fatal(err)
	}
	if err := tenants.Suspend(ctx, owner, acme.ID, tenants.Recording(rec)); err != nil {
		t.Fatal(err)
	}
	if err := tenants.Delete(ctx, owner, acme.ID, tenants.Recording(rec)); err != nil {
		t.Fatal(err)
	}
	if err := tenants.Rename(ctx, owner, acme.ID, "zombie"); !errors.Is(err, tenants.ErrDeleted) {
		t.Errorf("rename a deleted tenant: got %v, want ErrDeleted", err)
	}
	var got []string
	for _, e := range rec.Recorded() {
		if e.Kind != tenantseal.EventTenantChange || e.TargetTenant != acme.ID {
			t.Errorf("got event %+v, want a tenant change of acme", e)
		}
		got = append(got, e.Operation+": "+e.Detail)
	}
	want := []string{`create: created "Acme", without keysets`, `rename: renamed from "Acme" to "ACME Corp"`,
		"suspended: status suspended, was active", "deleted: status deleted, was suspended"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("recorded changes (-want +got):\n%s", diff)
	}
}
