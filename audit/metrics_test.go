package audit_test

import (
	"errors"
	"testing"
	"time"

	"github.com/tenantseal/tenantseal"

	"github.com/tenantseal/tenantseal/audit"
	"github.com/tenantseal/tenantseal/db"
	"github.com/tenantseal/tenantseal/examples/reference"
	"github.com/tenantseal/tenantseal/internal/metrictest"
	"github.com/tenantseal/tenantseal/internal/pgtest"
	"github.com/tenantseal/tenantseal/keys"
	"github.com/tenantseal/tenantseal/repo"
)

// The instruments move with real operations: a cross-tenant write refused by the database and one
// refused by the repository, keyset unwraps, and the writer appending what they recorded.
func TestInstrumentsCountWhatHappened(t *testing.T) {
	t.Parallel()
	m := metrictest.New(t)
	e := newMeteredEnv(t, m.Provider)
	a, ctxA := e.tenant(t, "a")
	b, _ := e.tenant(t, "b")
	c := reference.Customer{DisplayName: "A", Email: "a@x", Phone: "a-phone"}
	if err := e.customers.Insert(ctxA, &c); err != nil {
		t.Fatal(err)
	}
	for _, purpose := range []string{keys.PurposeAEAD, keys.PurposePRF} {
		if got := m.Sum(t, "tenantseal.keys.unwraps", keys.AttrPurpose.String(purpose), keys.AttrKEK.String("shared"), keys.AttrOutcome.String("ok")); got != 1 {
			t.Errorf("%s unwraps: got %d, want 1 (one cache miss of tenant a)", purpose, got)
		}
	}
	if _, err := e.pool.Exec(ctxA, "UPDATE customers SET tenant_id = $1", b); sqlState(err) != "42501" {
		t.Fatalf("cross-tenant update: got %v, want 42501", err)
	}
	if got := m.Sum(t, "tenantseal.db.refusals", db.AttrRefusal.String(string(db.RefusalRLS))); got != 1 {
		t.Errorf("rls_violation refusals: got %d, want 1", got)
	}
	foreign := reference.Customer{TenantID: b, DisplayName: "x", Email: "x@x"}
	if err := e.customers.Insert(ctxA, &foreign); !errors.Is(err, repo.ErrTenantMismatch) {
		t.Fatalf("client-supplied tenant: got %v, want ErrTenantMismatch", err)
	}
	if got := m.Sum(t, "tenantseal.db.refusals", db.AttrRefusal.String(string(db.RefusalTenantMismatch))); got != 1 {
		t.Errorf("tenant_mismatch refusals: got %d, want 1", got)
	}
	e.w.Record(ctxA, tenantseal.Event{Kind: "custom_kind_of_the_application"})

	entries := e.events(t) // flushed
	st := e.w.Stats()
	if st.Written != int64(len(entries)) || st.Written != 5 { // 2 unwraps, refused_write, tenant_mismatch, the custom kind
		t.Fatalf("written: got %d (%d entries), want 5", st.Written, len(entries))
	}
	if got := m.Sum(t, "tenantseal.audit.appended"); got != st.Written {
		t.Errorf("tenantseal.audit.appended: got %d, want %d as in Stats", got, st.Written)
	}
	for kind, n := range map[string]int64{"refused_write": 1, "tenant_mismatch": 1, "key_unwrap": 2, "other": 1} {
		if got := m.Sum(t, "tenantseal.audit.recorded", audit.AttrKind.String(kind)); got != n {
			t.Errorf("recorded %s: got %d, want %d", kind, got, n)
		}
	}
	if got := m.Sum(t, "tenantseal.audit.recorded"); got != st.Recorded {
		t.Errorf("tenantseal.audit.recorded: got %d, want %d as in Stats", got, st.Recorded)
	}
	if got := m.Sum(t, "tenantseal.audit.queue_length"); got != 0 {
		t.Errorf("queue length after a flush: got %d, want 0", got)
	}
	m.WantNoValue(t, a.String(), b.String(), "a-user")
}

// The figures of a writer whose database is down: spooled, then replayed; and drops of a full queue.
func TestInstrumentsCountSpoolAndDrops(t *testing.T) {
	t.Parallel()
	m := metrictest.New(t)
	d := pgtest.NewDatabase(t)
	setConnections(t, d, false)
	w := mustWriter(t, d, func(c *audit.Config) {
		c.MeterProvider, c.QueueSize, c.BatchSize, c.MaxBlock, c.WriteTimeout = m.Provider, 2, 1, time.Millisecond, 2*time.Second
	})
	for range 20 {
		w.Record(testContext(t), tenantseal.Event{Kind: tenantseal.EventNoTenant})
	}
	if ok, err := w.Flush(testContext(t)); ok || err != nil {
		t.Fatalf("flush while down: ok=%v err=%v, want events in the spool", ok, err)
	}
	st := w.Stats()
	if st.Dropped == 0 || st.Spooled == 0 || st.Dropped+st.Spooled != 20 {
		t.Fatalf("while down: got %+v, want 20 events dropped or spooled, some of each", st)
	}
	setConnections(t, d, true)
	mustFlushWithin(t, w, 30*time.Second, "after the database's return")
	st = w.Stats()
	for name, want := range map[string]int64{"tenantseal.audit.dropped": st.Dropped, "tenantseal.audit.spooled": st.Spooled,
		"tenantseal.audit.replayed": st.Replayed, "tenantseal.audit.appended": st.Written, "tenantseal.audit.queue_length": 0} {
		if got := m.Sum(t, name); got != want {
			t.Errorf("%s: got %d, want %d", name, got, want)
		}
	}
	if st.Replayed != st.Spooled {
		t.Errorf("replayed %d of %d spooled", st.Replayed, st.Spooled)
	}
}
