package audit_test

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/tenantseal/tenantseal"
	"github.com/tenantseal/tenantseal/audit"
	"github.com/tenantseal/tenantseal/internal/pgtest"
)

// The database dates and orders every entry itself, keeps what the writer said as reported_at (never in
// the future), and takes a bounded batch.
func TestTheDatabaseDatesEntriesAndBoundsBatches(t *testing.T) {
	t.Parallel()
	d := pgtest.NewDatabase(t)
	ctx := testContext(t)
	writer := mustConn(t, d.AuditWriterDSN)
	start := time.Now()
	batch := `[{"kind": "no_tenant", "at": "2001-01-01T00:00:00Z"}, {"kind": "no_tenant", "at": "2099-01-01T00:00:00Z"}]`
	if _, err := writer.Exec(ctx, "SELECT tenantseal.audit_append($1::jsonb)", batch); err != nil {
		t.Fatal(err)
	}
	got, err := audit.Query(ctx, mustConn(t, d.AuditorDSN), audit.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 {
		t.Fatalf("got %d entries, want 2", len(got))
	}
	for i, e := range got {
		if e.At.Before(start.Add(-time.Minute)) || e.At.After(time.Now().Add(time.Minute)) {
			t.Errorf("entry %d dated %v, want the database's now", i, e.At)
		}
		if e.ReportedAt == nil || e.ReportedAt.After(e.At) {
			t.Errorf("entry %d reported at %v, want what the writer said, and no later than %v", i, e.ReportedAt, e.At)
		}
	}
	if got[0].ReportedAt.Year() != 2001 {
		t.Errorf("reported at %v, want 2001 as the writer said", got[0].ReportedAt)
	}
	if res, err := audit.Verify(ctx, mustConn(t, d.AuditorDSN)); err != nil || res.Break != nil || res.Rows != 2 {
		t.Errorf("verify: got %+v (%v), want 2 intact rows", res, err)
	}
	events := make([]map[string]string, audit.MaxBatchSize+1)
	for i := range events {
		events[i] = map[string]string{"kind": "no_tenant"}
	}
	big, _ := json.Marshal(events)
	if _, err := writer.Exec(ctx, "SELECT tenantseal.audit_append($1::jsonb)", big); sqlState(err) != "54000" {
		t.Errorf("a batch of %d: got %v, want it refused (54000)", len(events), err)
	}
	cfg, err := audit.ParseConfig(d.AuditWriterDSN)
	if err != nil {
		t.Fatal(err)
	}
	cfg.BatchSize = audit.MaxBatchSize + 1
	if w, err := audit.NewWriter(ctx, cfg); err == nil {
		w.Close(ctx)
		t.Error("NewWriter took a BatchSize above MaxBatchSize")
	}
}

// A session holding the chain head locked delays the writer by Config.LockTimeout at most: then the
// events wait in the spool, the wait is logged at ERROR and counted, and they are written once the lock
// is gone. The app role cannot hold the lock at all.
func TestAHeldChainHeadDelaysTheWriterBoundedly(t *testing.T) {
	t.Parallel()
	d := pgtest.NewDatabase(t)
	ctx := testContext(t)
	var logs syncBuffer
	w := mustWriter(t, d, func(c *audit.Config) {
		c.LockTimeout = 200 * time.Millisecond
		c.Logger = slog.New(slog.NewJSONHandler(&logs, nil))
	})
	holder := mustConn(t, d.OwnerDSN)
	tx, err := holder.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, "SELECT 1 FROM tenantseal.audit_head FOR UPDATE"); err != nil {
		t.Fatal(err)
	}
	rec := tenantseal.WithPrincipal(ctx, tenantseal.Principal{Tenant: tenantseal.TenantIDFromUUID([16]byte{1}), Subject: "s"})
	w.Record(rec, tenantseal.Event{Kind: tenantseal.EventNoTenant})
	start := time.Now()
	if ok, err := w.Flush(ctx); ok || err != nil {
		t.Fatalf("flush while the head is locked: ok=%v err=%v, want the event spooled", ok, err)
	}
	if took := time.Since(start); took > 3*time.Second {
		t.Errorf("the writer waited %v, want about the lock timeout", took)
	}
	if st := w.Stats(); st.LockTimeouts == 0 || st.Spooled != 1 {
		t.Errorf("stats %+v, want a lock timeout counted and the event spooled", st)
	}
	if !strings.Contains(logs.String(), "chain head stayed locked") || !strings.Contains(logs.String(), `"level":"ERROR"`) {
		t.Errorf("log %s, want the wait at ERROR", logs.String())
	}
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	mustFlushWithin(t, w, 10*time.Second, "after the lock was released")
	app := mustConn(t, d.AppDSN)
	if _, err := app.Exec(ctx, "SELECT tenantseal.audit_append('[]')"); sqlState(err) != "42501" {
		t.Errorf("the app role appends: got %v, want permission denied (42501)", err)
	}
}

// Every session of one role may signal the others: the writer runs as a role of its own, out of the app
// role's reach.
func TestTheAppRoleCannotSignalTheWriter(t *testing.T) {
	t.Parallel()
	d := pgtest.NewDatabase(t)
	ctx := testContext(t)
	w := mustWriter(t, d)
	w.Record(ctx, tenantseal.Event{Kind: tenantseal.EventNoTenant})
	if ok, err := w.Flush(ctx); !ok || err != nil {
		t.Fatalf("flush: %v %v", ok, err)
	}
	app := mustConn(t, d.AppDSN)
	var n int
	if err := mustConn(t, d.SuperDSN).QueryRow(ctx, "SELECT count(*) FROM pg_stat_activity WHERE usename = $1", d.Roles.AuditWriter).Scan(&n); err != nil || n == 0 {
		t.Fatalf("the writer has %d sessions (%v), want some to aim at", n, err)
	}
	for _, f := range []string{"pg_cancel_backend", "pg_terminate_backend"} {
		sql := fmt.Sprintf("SELECT %s(pid) FROM pg_stat_activity WHERE usename = $1", f)
		if _, err := app.Exec(ctx, sql, d.Roles.AuditWriter); sqlState(err) != "42501" {
			t.Errorf("%s of the writer's sessions as the app role: got %v, want permission denied (42501)", f, err)
		}
	}
	w.Record(ctx, tenantseal.Event{Kind: tenantseal.EventNoTenant})
	if ok, err := w.Flush(ctx); !ok || err != nil {
		t.Errorf("flush after the attempts: %v %v", ok, err)
	}
}

// Injected SQL that catches the refusal of a forged context itself (DO ... EXCEPTION) leaves the pool
// nothing to record; the database counts the refusal on its own, in a sequence no rollback undoes.
func TestRefusalsCaughtInTheDatabaseAreCounted(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	_, ctxA := e.tenant(t, "a")
	auditor := mustConn(t, e.d.AuditorDSN)
	before, err := audit.ContextRefusals(testContext(t), auditor)
	if err != nil {
		t.Fatal(err)
	}
	caught := `DO $$ BEGIN
		PERFORM set_config('tenantseal.context', 'v1.k1.00000000-0000-0000-0000-000000000001.9999999999..' || repeat('ab', 32), true);
		PERFORM count(*) FROM customers;
	EXCEPTION WHEN OTHERS THEN NULL;
	END $$`
	if _, err := e.pool.Exec(ctxA, caught); err != nil {
		t.Fatalf("the caught attempt: %v", err)
	}
	for _, ev := range e.events(t) {
		if ev.Kind == tenantseal.EventInvalidContext {
			t.Errorf("the pool recorded %v: it could not have seen the caught refusal", ev)
		}
	}
	after, err := audit.ContextRefusals(testContext(t), auditor)
	if err != nil || after != before+1 {
		t.Errorf("the database counted %d refusals (%v), want %d", after, err, before+1)
	}
}
