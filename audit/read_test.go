package audit_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/tenantseal/tenantseal"
	"github.com/tenantseal/tenantseal/audit"
	"github.com/tenantseal/tenantseal/internal/pgtest"
)

// seeded is a database whose log holds known entries.
type seeded struct {
	d    *pgtest.Database
	w    *audit.Writer
	a, b tenantseal.TenantID
}

// seedLog records, as seq 1 to 11: a's foreign_id on b, a's refused_write on b, a no_tenant, b's
// foreign_id on a, a's elevation, five of a's refused_writes (6 to 10), b's foreign_id on a.
func seedLog(t *testing.T) *seeded {
	t.Helper()
	d := pgtest.NewDatabase(t)
	s := &seeded{d: d, w: mustWriter(t, d), a: tenantseal.TenantIDFromUUID([16]byte{0xa}), b: tenantseal.TenantIDFromUUID([16]byte{0xb})}
	ctx := testContext(t)
	asA := tenantseal.WithPrincipal(ctx, tenantseal.Principal{Tenant: s.a, Subject: "a-user"})
	asB := tenantseal.WithPrincipal(ctx, tenantseal.Principal{Tenant: s.b, Subject: "b-user"})
	s.w.Record(asA, tenantseal.Event{Kind: tenantseal.EventForeignID, TargetTenant: s.b, Table: "customers"})
	s.w.Record(asA, tenantseal.Event{Kind: tenantseal.EventRefusedWrite, TargetTenant: s.b, Table: "invoices"})
	s.w.Record(ctx, tenantseal.Event{Kind: tenantseal.EventNoTenant, Table: "customers"})
	s.w.Record(asB, tenantseal.Event{Kind: tenantseal.EventForeignID, TargetTenant: s.a, Table: "customers"})
	s.w.Record(asA, tenantseal.Event{Kind: tenantseal.EventElevation})
	for range 5 {
		s.w.Record(asA, tenantseal.Event{Kind: tenantseal.EventRefusedWrite, Table: "customers"})
	}
	s.w.Record(asB, tenantseal.Event{Kind: tenantseal.EventForeignID, TargetTenant: s.a, Table: "invoices"})
	s.flush(t)
	return s
}

func (s *seeded) flush(t *testing.T) {
	t.Helper()
	if ok, err := s.w.Flush(testContext(t)); !ok || err != nil {
		t.Fatalf("flush: got %v, %v; want everything written", ok, err)
	}
}

func seqs(entries []audit.Entry) []int64 {
	var out []int64
	for _, e := range entries {
		out = append(out, e.Seq)
	}
	return out
}

func TestTail(t *testing.T) {
	t.Parallel()
	s := seedLog(t)
	auditor := mustConn(t, s.d.AuditorDSN)
	tests := []struct {
		name string
		f    audit.Filter
		n    int
		want []int64
	}{
		{"all", audit.Filter{}, 20, []int64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11}},
		{"last 3", audit.Filter{}, 3, []int64{9, 10, 11}},
		{"none", audit.Filter{}, 0, nil},
		{"kind", audit.Filter{Kind: tenantseal.EventForeignID}, 20, []int64{1, 4, 11}},
		// The second match lies before the first windows back from the end (1 entry, then 2, 4).
		{"sparse kind", audit.Filter{Kind: tenantseal.EventForeignID}, 2, []int64{4, 11}},
		{"acting or target tenant", audit.Filter{Tenant: s.b}, 20, []int64{1, 2, 4, 11}},
		{"tenant and kind", audit.Filter{Tenant: s.a, Kind: tenantseal.EventForeignID}, 1, []int64{11}},
		{"kind not in the log", audit.Filter{Kind: tenantseal.EventShred}, 5, nil},
		{"after a sequence number", audit.Filter{AfterSeq: 4, Kind: tenantseal.EventForeignID}, 5, []int64{11}},
		{"after the end", audit.Filter{AfterSeq: 11}, 5, nil},
		{"since a time to come", audit.Filter{Since: time.Now().Add(time.Hour)}, 5, nil},
		// Pages smaller than a window.
		{"small pages", audit.Filter{Kind: tenantseal.EventRefusedWrite, Limit: 2}, 3, []int64{8, 9, 10}},
		{"small pages, all", audit.Filter{Limit: 2}, 100, []int64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, head, err := audit.Tail(testContext(t), auditor, tc.f, tc.n)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, seqs(got)); diff != "" {
				t.Errorf("entries differ (-want +got):\n%s", diff)
			}
			if head != 11 {
				t.Errorf("got head %d, want 11", head)
			}
			for _, e := range got {
				if tc.f.Kind != "" && e.Kind != tc.f.Kind {
					t.Errorf("entry %d: got kind %s, want %s", e.Seq, e.Kind, tc.f.Kind)
				}
				if !tc.f.Tenant.IsZero() && str(e.TenantID) != tc.f.Tenant.String() && str(e.TargetTenant) != tc.f.Tenant.String() {
					t.Errorf("entry %d: got tenant %s, target %s; want %s in either", e.Seq, str(e.TenantID), str(e.TargetTenant), tc.f.Tenant)
				}
			}
		})
	}
	if _, _, err := audit.Tail(testContext(t), auditor, audit.Filter{}, -1); err == nil || !strings.Contains(err.Error(), "want 0 or more") {
		t.Errorf("n = -1: got %v, want a refusal", err)
	}
}

func TestFollow(t *testing.T) {
	t.Parallel()
	s := seedLog(t)
	auditor := mustConn(t, s.d.AuditorDSN)
	_, head, err := audit.Tail(testContext(t), auditor, audit.Filter{}, 0)
	if err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithCancel(testContext(t))
	defer cancel()
	polls := make(chan []int64)
	var got []int64 // written by Follow's goroutine until it returns, read between polls
	done := make(chan error, 1)
	go func() {
		done <- audit.Follow(ctx, auditor, audit.Filter{AfterSeq: head, Kind: tenantseal.EventForeignID},
			audit.FollowOptions{Interval: 5 * time.Millisecond, Polled: func() error {
				// Each poll waits until the test takes what it saw: a poll after a taken one started after
				// everything the test did before taking it.
				select {
				case polls <- append([]int64(nil), got...):
				case <-ctx.Done():
				}
				return nil
			}},
			func(e *audit.Entry) error {
				got = append(got, e.Seq)
				return nil
			})
	}()
	poll := func(what string) []int64 {
		t.Helper()
		select {
		case seen := <-polls:
			return seen
		case err := <-done:
			t.Fatalf("%s: Follow returned %v", what, err)
		case <-time.After(30 * time.Second):
			t.Fatalf("%s: no poll within 30 s", what)
		}
		return nil
	}
	if seen := poll("first poll"); len(seen) != 0 {
		t.Fatalf("before new entries: got %v, want none (the seeded ones are before head)", seen)
	}
	asB := tenantseal.WithPrincipal(testContext(t), tenantseal.Principal{Tenant: s.b, Subject: "b-user"})
	s.w.Record(asB, tenantseal.Event{Kind: tenantseal.EventNoTenant})
	s.w.Record(asB, tenantseal.Event{Kind: tenantseal.EventForeignID, TargetTenant: s.a})
	s.flush(t)
	poll("poll under way while recording")
	if seen := poll("poll after recording"); !cmp.Equal(seen, []int64{13}) {
		t.Fatalf("after new entries: got %v, want [13], the new foreign_id only", seen)
	}
	s.w.Record(asB, tenantseal.Event{Kind: tenantseal.EventForeignID, TargetTenant: s.a})
	s.flush(t)
	poll("poll under way while recording")
	if seen := poll("poll after recording"); !cmp.Equal(seen, []int64{13, 14}) {
		t.Fatalf("after another entry: got %v, want [13 14], each once", seen)
	}

	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("after cancel: got %v, want context.Canceled", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Follow did not return within 30 s of the cancellation")
	}

	// An error of fn ends Follow with it.
	errStop := errors.New("stop")
	err = audit.Follow(testContext(t), auditor, audit.Filter{}, audit.FollowOptions{Interval: time.Millisecond},
		func(*audit.Entry) error { return errStop })
	if !errors.Is(err, errStop) {
		t.Errorf("fn failing: got %v, want its error", err)
	}
}

func TestExport(t *testing.T) {
	t.Parallel()
	s := seedLog(t)
	auditor := mustConn(t, s.d.AuditorDSN)
	for _, f := range []audit.Filter{{}, {Limit: 3}, {Tenant: s.a, Limit: 2}, {Kind: tenantseal.EventRefusedWrite, AfterSeq: 6}} {
		want, err := audit.Query(testContext(t), auditor, audit.Filter{AfterSeq: f.AfterSeq, Tenant: f.Tenant, Kind: f.Kind})
		if err != nil {
			t.Fatal(err)
		}
		var out strings.Builder
		n, err := audit.Export(testContext(t), auditor, &out, f)
		if err != nil {
			t.Fatal(err)
		}
		var got []audit.Entry
		sc := bufio.NewScanner(strings.NewReader(out.String()))
		for sc.Scan() {
			var e audit.Entry
			if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
				t.Fatalf("line %q is not a JSON entry: %v", sc.Text(), err)
			}
			got = append(got, e)
		}
		if diff := cmp.Diff(want, got); diff != "" || n != int64(len(want)) {
			t.Errorf("export %+v: got %d entries, want %d (-query +export):\n%s", f, n, len(want), diff)
		}
	}
}

func TestOnlyTheWholeLogIsVerified(t *testing.T) {
	t.Parallel()
	s := seedLog(t)
	for _, role := range []struct{ name, dsn string }{{"auditor", s.d.AuditorDSN}, {"owner", s.d.OwnerDSN}, {"superuser", s.d.SuperDSN}} {
		if err := audit.CheckWholeLog(testContext(t), mustConn(t, role.dsn)); err != nil {
			t.Errorf("%s: got %v, want nil", role.name, err)
		}
	}
	// The app role sees its tenant's entries only: the others would look deleted.
	app := mustConn(t, s.d.AppDSN)
	err := audit.CheckWholeLog(testContext(t), app)
	if !errors.Is(err, audit.ErrPartialLog) || !strings.Contains(err.Error(), s.d.Roles.App) {
		t.Errorf("app role: got %v, want audit.ErrPartialLog naming %s", err, s.d.Roles.App)
	}
	if _, err := audit.Verify(testContext(t), app); !errors.Is(err, audit.ErrPartialLog) {
		t.Errorf("verify as the app role: got %v, want audit.ErrPartialLog", err)
	}
	if res, err := audit.Verify(testContext(t), mustConn(t, s.d.AuditorDSN)); err != nil || res.Break != nil || res.Rows != 11 {
		t.Errorf("verify as the auditor: got %+v, %v; want 11 intact rows", res, err)
	}
}
