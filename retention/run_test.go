package retention_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/tenantseal/tenantseal"
	"github.com/tenantseal/tenantseal/audit"
	"github.com/tenantseal/tenantseal/internal/eventtest"
	"github.com/tenantseal/tenantseal/internal/pgtest"
	"github.com/tenantseal/tenantseal/keys"
	"github.com/tenantseal/tenantseal/keys/pgstore"
	"github.com/tenantseal/tenantseal/retention"
	"github.com/tenantseal/tenantseal/tenants"
)

// A run deletes exactly the rows past the cut-off of the tenants whose policy says so, and of no other
// tenant, however old their rows; each deletion is certified in the audit log, whose chain holds. A
// dry run before changes and records nothing; a second run finds nothing and records nothing.
func TestRunDeletesWhatIsPastItsPolicy(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	w := e.writer(t)
	ctx := operator(t)
	e.setPolicy(t, w, retention.Policy{Name: "short", Rules: []retention.Rule{
		{Table: "events", Column: "created_at", MaxAge: days(30)}, {Table: "visits", Column: "day", MaxAge: days(10)}}})
	e.setPolicy(t, w, retention.Policy{Name: "long", Rules: []retention.Rule{{Table: "events", Column: "created_at", MaxAge: days(365)}}})
	a := e.tenant(t, "a", "short")
	b := e.tenant(t, "b", "")     // no policy: nothing of it goes
	c := e.tenant(t, "c", "long") // a longer policy
	for _, id := range []tenantseal.TenantID{a, b, c} {
		e.events(t, id, 5, days(40))
		e.events(t, id, 3, days(10))
	}
	visits := func(id tenantseal.TenantID, age int, n int) {
		if _, err := pgtest.Conn(t, e.d.SuperDSN).Exec(ctx, "INSERT INTO visits (tenant_id, day) SELECT $1, current_date - $2::int FROM generate_series(1, $3)", id, age, n); err != nil {
			t.Fatal(err)
		}
	}
	visits(a, 20, 4)
	visits(a, 1, 2)
	visits(b, 20, 4)
	flush(t, w)
	before := w.Stats().Recorded

	dry, err := retention.Run(ctx, e.owner, e.pool, nil, retention.Options{DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(dry.Certificates) != 2 || dry.Certificates[0].Rows != 5 || dry.Certificates[0].Table != "events" ||
		dry.Certificates[1].Rows != 4 || dry.Certificates[1].Table != "visits" || dry.Certificates[0].Tenant != a {
		t.Errorf("dry run: got %+v, want tenant a's 5 events and 4 visits planned", dry.Certificates)
	}
	if n := e.count(t, "events", a, 0); n != 8 {
		t.Errorf("after the dry run: tenant a has %d events, want all 8", n)
	}
	if w.Stats().Recorded != before {
		t.Errorf("the dry run recorded something")
	}

	rep, err := retention.Run(ctx, e.owner, e.pool, w, retention.Options{BatchSize: 2})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		table     string
		id        tenantseal.TenantID
		olderThan int
		want      int64
	}{
		{"events", a, 30, 0}, {"events", a, 0, 3}, {"visits", a, 10, 0}, {"visits", a, 0, 2},
		{"events", b, 30, 5}, {"events", b, 0, 8}, {"visits", b, 0, 4},
		{"events", c, 30, 5}, {"events", c, 0, 8},
	} {
		if n := e.count(t, tc.table, tc.id, days(tc.olderThan)); n != tc.want {
			t.Errorf("after the run: %s of tenant %s older than %dd: got %d, want %d", tc.table, tc.id, tc.olderThan, n, tc.want)
		}
	}
	if len(rep.Certificates) != 2 || rep.Certificates[0].Rows != 5 || rep.Certificates[1].Rows != 4 || rep.Certificates[0].Partial {
		t.Errorf("run: got %+v, want the 5 events and 4 visits of tenant a certified", rep.Certificates)
	}
	flush(t, w)

	// Again: nothing more to delete, and no empty certificate.
	again, err := retention.Run(ctx, e.owner, e.pool, w, retention.Options{})
	if err != nil || len(again.Certificates) != 0 {
		t.Errorf("second run: got %+v, %v; want no certificate", again, err)
	}
	flush(t, w)

	auditor := pgtest.Conn(t, e.d.AuditorDSN)
	if res, err := audit.Verify(ctx, auditor); err != nil || res.Break != nil {
		t.Fatalf("verify: got %+v, %v; want the chain whole", res, err)
	}
	certs, err := audit.Query(ctx, auditor, audit.Filter{Kind: tenantseal.EventDeletionCertificate})
	if err != nil {
		t.Fatal(err)
	}
	if len(certs) != 2 {
		t.Fatalf("got %d deletion certificates in the log, want 2", len(certs))
	}
	cutoff := rep.Certificates[0].Cutoff.UTC().Format("2006-01-02T15:04:05.999999999Z07:00")
	for i, want := range []struct{ table, detail string }{
		{"events", "deleted 5 rows whose created_at is before " + cutoff + " (older than 30d), by retention policy short version 1"},
		{"visits", "deleted 4 rows whose day is before"},
	} {
		en := certs[i]
		if deref(en.Subject) != "ada@ops" || en.TenantID != nil || deref(en.TargetTenant) != a.String() || deref(en.Table) != want.table ||
			deref(en.Operation) != "delete" || !strings.HasPrefix(deref(en.Detail), want.detail) {
			t.Errorf("certificate %d: got subject %q tenant %v target %q table %q operation %q detail %q; want %s of tenant a by ada@ops, %q",
				i, deref(en.Subject), en.TenantID, deref(en.TargetTenant), deref(en.Table), deref(en.Operation), deref(en.Detail), want.table, want.detail)
		}
	}
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// A deleted tenant's keysets are shredded once its grace period is over, and not before: its encrypted
// values then no longer decrypt, as after tenants shred. A suspended tenant's rows are left, and said so.
func TestRunShredsDeletedTenantsAfterTheGracePeriod(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	rec := &eventtest.Recorder{}
	ctx := operator(t)
	e.setPolicy(t, rec, retention.Policy{Name: "regulated", ShredAfter: ptr(days(10)),
		Rules: []retention.Rule{{Table: "events", Column: "created_at", MaxAge: days(30)}}})
	gone := e.tenant(t, "gone", "regulated")
	recent := e.tenant(t, "recent", "regulated")
	paused := e.tenant(t, "paused", "regulated")
	e.events(t, paused, 2, days(40))
	kr, err := keys.NewKeyring(keys.Config{KEK: e.kek, Loader: pgstore.Loader(e.owner)})
	if err != nil {
		t.Fatal(err)
	}
	field := keys.Field{Table: "events", Column: "secret", Row: "1"}
	cts := map[tenantseal.TenantID][]byte{}
	for _, id := range []tenantseal.TenantID{gone, recent} {
		tctx := tenantseal.WithPrincipal(ctx, tenantseal.Principal{Tenant: id, Subject: "app"})
		if cts[id], err = kr.Encrypt(tctx, field, []byte("card 4111")); err != nil {
			t.Fatal(err)
		}
		if err := tenants.Delete(ctx, e.owner, id); err != nil {
			t.Fatal(err)
		}
	}
	if err := tenants.Suspend(ctx, e.owner, paused); err != nil {
		t.Fatal(err)
	}
	// gone was deleted eleven days ago; the database dates deletions itself, so the test moves it back
	// as a superuser with the triggers off.
	super := pgtest.Conn(t, e.d.SuperDSN)
	if _, err := super.Exec(ctx, "SET session_replication_role = replica"); err != nil {
		t.Fatal(err)
	}
	if _, err := super.Exec(ctx, "UPDATE tenantseal.tenants SET deleted_at = now() - interval '11 days' WHERE key = $1", gone.String()); err != nil {
		t.Fatal(err)
	}

	dry, err := retention.Run(ctx, e.owner, e.pool, nil, retention.Options{DryRun: true})
	if err != nil || len(dry.Certificates) != 1 || !dry.Certificates[0].IsShred() || dry.Certificates[0].Tenant != gone {
		t.Fatalf("dry run: got %+v, %v; want the shred of gone planned", dry, err)
	}
	if n := keysetCount(t, e, gone); n != 2 {
		t.Errorf("after the dry run: gone has %d keysets, want 2", n)
	}

	rec.Take()
	rep, err := retention.Run(ctx, e.owner, e.pool, rec, retention.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Certificates) != 1 || rep.Certificates[0].Tenant != gone || strings.Join(rep.Certificates[0].Shredded, ",") != "aead,prf" {
		t.Errorf("got certificates %+v, want gone's keysets shredded", rep.Certificates)
	}
	var skipped []string
	for _, s := range rep.Skipped {
		skipped = append(skipped, s.Tenant.String()+" "+s.Reason)
	}
	if len(rep.Skipped) != 3 || !strings.Contains(strings.Join(skipped, "\n"), paused.String()+" is suspended") {
		t.Errorf("got skipped %q, want the suspended tenant and the two deleted ones named", skipped)
	}
	if n := e.count(t, "events", paused, 0); n != 2 {
		t.Errorf("the suspended tenant has %d events, want its 2 kept", n)
	}
	evs := rec.Take()
	var kinds []tenantseal.EventKind
	for _, ev := range evs {
		kinds = append(kinds, ev.Kind)
	}
	if len(evs) != 2 || kinds[0] != tenantseal.EventShred || kinds[1] != tenantseal.EventDeletionCertificate ||
		evs[1].TargetTenant != gone || evs[1].Operation != "shred" ||
		!strings.Contains(evs[1].Detail, "shredded keysets (aead, prf) of the tenant deleted at") ||
		!strings.Contains(evs[1].Detail, "after the grace period of 10d, by retention policy regulated version 1") {
		t.Errorf("got %+v, want the shred and its certificate", evs)
	}

	fresh, err := keys.NewKeyring(keys.Config{KEK: e.kek, Loader: pgstore.Loader(e.owner)})
	if err != nil {
		t.Fatal(err)
	}
	_, err = fresh.Decrypt(tenantseal.WithPrincipal(ctx, tenantseal.Principal{Tenant: gone, Subject: "app"}), field, cts[gone])
	if !errors.Is(err, keys.ErrShredded) || errors.Is(err, keys.ErrTampered) {
		t.Errorf("gone's value after the run: got %v, want keys.ErrShredded", err)
	}
	if pt, err := fresh.Decrypt(tenantseal.WithPrincipal(ctx, tenantseal.Principal{Tenant: recent, Subject: "app"}), field, cts[recent]); err != nil || string(pt) != "card 4111" {
		t.Errorf("recent's value, within its grace period: got %q, %v; want it readable", pt, err)
	}
	again, err := retention.Run(ctx, e.owner, e.pool, rec, retention.Options{})
	if err != nil || len(again.Certificates) != 0 || len(rec.Take()) != 0 {
		t.Errorf("second run: got %+v, %v; want nothing shredded again, nothing recorded", again.Certificates, err)
	}
}

func keysetCount(t *testing.T, e *env, id tenantseal.TenantID) int {
	t.Helper()
	var n int
	if err := e.owner.QueryRow(pgtest.Context(t), "SELECT count(*) FROM tenantseal.tenant_keysets WHERE tenant_id = $1", id).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// A run stopped between batches certifies what committed, marked partial, and the next run deletes the
// rest; while it runs, a second run is refused.
func TestRunInterruptedResumes(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	rec := &eventtest.Recorder{}
	e.setPolicy(t, rec, retention.Policy{Name: "short", Rules: []retention.Rule{{Table: "events", Column: "created_at", MaxAge: days(30)}}})
	a := e.tenant(t, "a", "short")
	e.events(t, a, 7, days(40))
	rec.Take()

	ctx, cancel := context.WithCancel(operator(t))
	defer cancel()
	other := pgtest.Conn(t, e.d.OwnerDSN)
	var busy error
	rep, err := retention.Run(ctx, e.owner, e.pool, rec, retention.Options{BatchSize: 2, Progress: func(c retention.Certificate) {
		if busy == nil {
			_, busy = retention.Run(operator(t), other, e.pool, rec, retention.Options{})
		}
		cancel()
	}})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want the run stopped by its context", err)
	}
	if !errors.Is(busy, retention.ErrBusy) {
		t.Errorf("a second run meanwhile: got %v, want ErrBusy", busy)
	}
	if len(rep.Certificates) != 1 || rep.Certificates[0].Rows != 2 || !rep.Certificates[0].Partial {
		t.Errorf("got %+v, want the first batch of 2 certified as partial", rep.Certificates)
	}
	if n := e.count(t, "events", a, 0); n != 5 {
		t.Errorf("after the interruption: %d events, want 5", n)
	}
	rep, err = retention.Run(operator(t), e.owner, e.pool, rec, retention.Options{BatchSize: 2})
	if err != nil || len(rep.Certificates) != 1 || rep.Certificates[0].Rows != 5 || rep.Certificates[0].Partial {
		t.Errorf("resumed: got %+v, %v; want the other 5 certified", rep.Certificates, err)
	}
	if n := e.count(t, "events", a, 0); n != 0 {
		t.Errorf("after the resumed run: %d events, want none", n)
	}
	evs := rec.Take()
	if len(evs) != 2 || !strings.Contains(evs[0].Detail, "deleted 2 rows") || !strings.Contains(evs[0].Detail, "interrupted") ||
		!strings.Contains(evs[1].Detail, "deleted 5 rows") || strings.Contains(evs[1].Detail, "interrupted") {
		t.Errorf("got %+v, want a partial certificate of 2 rows and one of 5", evs)
	}
}

// A rule whose table is no longer protected stops the run before it deletes anything.
func TestRunRefusesARuleOnATableNoLongerProtected(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	rec := &eventtest.Recorder{}
	e.setPolicy(t, rec, retention.Policy{Name: "short", Rules: []retention.Rule{
		{Table: "events", Column: "created_at", MaxAge: days(30)}, {Table: "visits", Column: "day", MaxAge: days(30)}}})
	a := e.tenant(t, "a", "short")
	e.events(t, a, 3, days(40))
	if _, err := e.owner.Exec(pgtest.Context(t), "SELECT tenantseal.unprotect_table('visits')"); err != nil {
		t.Fatal(err)
	}
	rec.Take()
	_, err := retention.Run(operator(t), e.owner, e.pool, rec, retention.Options{})
	if err == nil || !strings.Contains(err.Error(), "visits is no longer a protected tenant table") || !strings.Contains(err.Error(), "nothing was deleted") {
		t.Errorf("got %v, want the rule named and nothing deleted", err)
	}
	if n := e.count(t, "events", a, 0); n != 3 || len(rec.Take()) != 0 {
		t.Errorf("got %d events left, want 3, and nothing recorded", n)
	}
	if _, err := retention.Run(operator(t), e.owner, e.pool, rec, retention.Options{Tenants: []tenantseal.TenantID{tenantseal.TenantIDFromUUID([16]byte{1})}}); !errors.Is(err, tenants.ErrNotFound) {
		t.Errorf("a run for a missing tenant: got %v, want tenants.ErrNotFound", err)
	}
}
