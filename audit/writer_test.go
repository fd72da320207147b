package audit_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/tenantseal/tenantseal"

	"github.com/tenantseal/tenantseal/audit"
	"github.com/tenantseal/tenantseal/internal/pgtest"
)

// setConnections stops (or restarts) the writer's database for new and existing sessions, as a
// superuser: the database is down for the writer and up for the test's checks through other databases.
func setConnections(t *testing.T, d *pgtest.Database, allow bool) {
	t.Helper()
	super := mustConn(t, pgtest.SharedCluster(t).Server.SuperDSN)
	if _, err := super.Exec(testContext(t), fmt.Sprintf("ALTER DATABASE %s WITH ALLOW_CONNECTIONS %v", d.Name, allow)); err != nil {
		t.Fatal(err)
	}
	if !allow {
		if _, err := super.Exec(testContext(t), "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1", d.Name); err != nil {
			t.Fatal(err)
		}
	}
}

func TestNoEventLostWhileTheDatabaseIsDown(t *testing.T) {
	t.Parallel()
	d := pgtest.NewDatabase(t)
	var logBuf syncBuffer
	spool := t.TempDir() + "/audit.spool"
	w := mustWriter(t, d, func(c *audit.Config) {
		c.SpoolPath = spool
		c.Logger = slog.New(slog.NewJSONHandler(&logBuf, nil))
		c.WriteTimeout = 2 * time.Second
	})
	ctx := tenantseal.WithPrincipal(testContext(t), tenantseal.Principal{Tenant: tenantseal.TenantIDFromUUID([16]byte{7}), Subject: "s"})
	record := func(from, to int) {
		for i := from; i < to; i++ {
			w.Record(ctx, tenantseal.Event{Kind: "foreign_id", RowKey: fmt.Sprint(i)})
		}
	}
	record(0, 10)
	if ok, err := w.Flush(testContext(t)); !ok || err != nil {
		t.Fatalf("flush while up: %v %v", ok, err)
	}

	setConnections(t, d, false)
	record(10, 25)
	if ok, err := w.Flush(testContext(t)); err != nil || ok {
		t.Fatalf("flush while down: ok=%v err=%v, want events kept in the spool", ok, err)
	}
	if st := w.Stats(); st.Spooled != 15 || st.Written != 10 {
		t.Errorf("while down: got %+v, want 15 spooled and 10 written", st)
	}
	if raw, err := os.ReadFile(spool); err != nil || bytes.Count(raw, []byte("\n")) != 15 {
		t.Errorf("spool file: %d lines (%v), want 15", bytes.Count(raw, []byte("\n")), err)
	}
	if !strings.Contains(logBuf.String(), "event spooled") {
		t.Error("the spooled events are not in the log")
	}
	record(25, 30) // more while down: they queue behind the spool

	setConnections(t, d, true)
	mustFlushWithin(t, w, 30*time.Second, "after the database's return")
	got, err := audit.Query(testContext(t), mustConn(t, d.AuditorDSN), audit.Filter{Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 30 {
		t.Fatalf("got %d events after recovery, want all 30", len(got))
	}
	for i, e := range got {
		if str(e.RowKey) != fmt.Sprint(i) {
			t.Fatalf("event %d has row key %s: order not kept", i, str(e.RowKey))
		}
	}
	res, err := audit.Verify(testContext(t), mustConn(t, d.AuditorDSN))
	if err != nil || res.Break != nil || res.Rows != 30 {
		t.Errorf("verify after recovery: %+v (%v), want 30 intact rows", res, err)
	}
	if _, err := os.Stat(spool); !os.IsNotExist(err) {
		t.Errorf("the spool file is still there after replay (%v)", err)
	}
}

func TestSpoolSurvivesARestartOfTheProcess(t *testing.T) {
	t.Parallel()
	d := pgtest.NewDatabase(t)
	spool := t.TempDir() + "/audit.spool"
	setConnections(t, d, false)
	w := mustWriter(t, d, func(c *audit.Config) { c.SpoolPath = spool; c.WriteTimeout = time.Second })
	w.Record(context.Background(), tenantseal.Event{Kind: "no_tenant", Operation: "select"})
	if err := w.Close(testContext(t)); err != nil {
		t.Fatal(err)
	}
	setConnections(t, d, true)
	// The next process finds the spool and replays it.
	w2 := mustWriter(t, d, func(c *audit.Config) { c.SpoolPath = spool })
	if ok, err := w2.Flush(testContext(t)); !ok || err != nil {
		t.Fatalf("flush: %v %v", ok, err)
	}
	got, err := audit.Query(testContext(t), mustConn(t, d.AuditorDSN), audit.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Kind != "no_tenant" {
		t.Errorf("got %v, want the event of the previous process", got)
	}
}

func TestFullQueueDropsCountedAndLogged(t *testing.T) {
	t.Parallel()
	d := pgtest.NewDatabase(t)
	var logBuf syncBuffer
	setConnections(t, d, false) // nothing drains quickly: every append waits out its timeout
	w := mustWriter(t, d, func(c *audit.Config) {
		c.QueueSize = 4
		c.BatchSize = 1
		c.MaxBlock = time.Millisecond
		c.WriteTimeout = 3 * time.Second
		c.Logger = slog.New(slog.NewJSONHandler(&logBuf, nil))
	})
	defer setConnections(t, d, true)
	start := time.Now()
	for i := 0; i < 50; i++ {
		w.Record(context.Background(), tenantseal.Event{Kind: "no_tenant"})
	}
	if elapsed := time.Since(start); elapsed > 2*time.Second {
		t.Errorf("50 Records took %v with a stuck writer, want each bounded by MaxBlock", elapsed)
	}
	st := w.Stats()
	if st.Dropped == 0 || st.Recorded != 50 {
		t.Errorf("got %+v, want drops counted among 50 recorded", st)
	}
	if !strings.Contains(logBuf.String(), "events dropped") {
		t.Error("drops were not logged")
	}
}

func TestOversizedAndInvalidValuesAreKept(t *testing.T) {
	t.Parallel()
	d := pgtest.NewDatabase(t)
	w := mustWriter(t, d)
	long := strings.Repeat("é", 5000)
	w.Record(context.Background(), tenantseal.Event{Kind: "tampered_ciphertext", Table: "bad\xff\x00name", Detail: long, RowKey: long})
	if ok, err := w.Flush(testContext(t)); !ok || err != nil {
		t.Fatalf("flush: %v %v", ok, err)
	}
	got, err := audit.Query(testContext(t), mustConn(t, d.AuditorDSN), audit.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 {
		t.Fatalf("got %d events, want the one event kept", len(got))
	}
	e := got[0]
	if !strings.Contains(str(e.Table), "[invalid utf-8 replaced]") || !utf8.ValidString(str(e.Table)) {
		t.Errorf("table %q: want valid UTF-8 with the replacement marker", str(e.Table))
	}
	if len(str(e.Detail)) > audit.MaxDetailLen || !strings.HasSuffix(str(e.Detail), "…[truncated]") || !utf8.ValidString(str(e.Detail)) {
		t.Errorf("detail of %d bytes: want at most %d, cut at a character with the marker", len(str(e.Detail)), audit.MaxDetailLen)
	}
	if len(str(e.RowKey)) > audit.MaxFieldLen {
		t.Errorf("row key of %d bytes, want at most %d", len(str(e.RowKey)), audit.MaxFieldLen)
	}
	if res, err := audit.Verify(testContext(t), mustConn(t, d.AuditorDSN)); err != nil || res.Break != nil {
		t.Errorf("verify: %+v (%v)", res, err)
	}
}

type alerts struct {
	mu  sync.Mutex
	got []audit.Alert
}

func (a *alerts) Alert(_ context.Context, al audit.Alert) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.got = append(a.got, al)
}

func TestAlertFiresAboveThresholdOnly(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	rec := &alerts{}
	det := audit.NewDetector(audit.DetectorConfig{Threshold: 5, Window: time.Minute, Alerter: rec, Now: func() time.Time { return now }})
	s1, s2 := "mallory", "alice"
	tenant := "00000000-0000-0000-0000-000000000001"
	other := "00000000-0000-0000-0000-000000000002"
	ev := func(subject, tenant string) audit.Entry {
		return audit.Entry{Kind: "foreign_id", Subject: &subject, TenantID: &tenant}
	}
	for i := 0; i < 5; i++ {
		det.Observe(context.Background(), ev(s1, tenant))
		now = now.Add(time.Second)
	}
	if len(rec.got) != 0 {
		t.Fatalf("got %d alerts at the threshold, want none", len(rec.got))
	}
	det.Observe(context.Background(), ev(s1, tenant)) // the 6th within the window
	if len(rec.got) != 2 {
		t.Fatalf("got %v, want one alert for the principal and one for its tenant", rec.got)
	}
	if rec.got[0].Key != "principal:"+tenant+"/mallory" || rec.got[0].Count != 6 || rec.got[0].Kinds["foreign_id"] != 6 {
		t.Errorf("got %+v, want mallory's burst of 6", rec.got[0])
	}
	det.Observe(context.Background(), ev(s1, tenant)) // still above: no repeat
	if len(rec.got) != 2 {
		t.Errorf("got %d alerts, want no repeat within the burst", len(rec.got))
	}
	// Another principal of another tenant is counted on its own.
	for i := 0; i < 5; i++ {
		det.Observe(context.Background(), ev(s2, other))
	}
	if len(rec.got) != 2 {
		t.Errorf("got %d alerts, want none for alice's 5", len(rec.got))
	}
	// Outside the window the old events no longer count; elevation is never counted.
	now = now.Add(2 * time.Minute)
	for i := 0; i < 5; i++ {
		det.Observe(context.Background(), ev(s1, tenant))
		det.Observe(context.Background(), audit.Entry{Kind: "elevation", Subject: &s1, TenantID: &tenant})
	}
	if len(rec.got) != 2 {
		t.Errorf("got %d alerts, want none after the window moved on", len(rec.got))
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
