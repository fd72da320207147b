package repo_test

import (
	"context"
	"errors"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/tenantseal/tenantseal"
	"github.com/tenantseal/tenantseal/audit"
	"github.com/tenantseal/tenantseal/db"
	"github.com/tenantseal/tenantseal/internal/pgtest"
	"github.com/tenantseal/tenantseal/repo"
)

// Under db.ReadFromReplica the repository's reads run on the standby and its writes on the primary;
// the audit writer records on the primary. The test pauses the shared standby's replay, so it does not
// run in parallel.
func TestReplicaReadsAndWrites(t *testing.T) {
	rs := pgtest.SharedReplicaSet(t)
	d := rs.NewDatabase(t)
	ctx := testContext(t)
	acfg, err := audit.ParseConfig(d.AuditWriterDSN)
	if err != nil {
		t.Fatal(err)
	}
	acfg.SpoolPath, acfg.Logger = filepath.Join(t.TempDir(), "audit.spool"), slog.New(slog.DiscardHandler)
	w, err := audit.NewWriter(ctx, acfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close(context.WithoutCancel(ctx)) })
	e := envOn(t, d, func(c *db.Config) {
		r, err := db.ParseReplica(rs.Replica.On(d.AppDSN))
		if err != nil {
			t.Fatal(err)
		}
		c.Replicas, c.ReplicaMaxLag, c.ReplicaCheckInterval = []db.ReplicaConfig{r}, time.Minute, 50*time.Millisecond
		c.Recorder = w
	})
	_, actx := e.tenant(t, "a")
	_, bctx := e.tenant(t, "b")
	ra, rb := db.ReadFromReplica(actx), db.ReadFromReplica(bctx)

	// Writes under ReadFromReplica: a standby would refuse each with 25006.
	c1 := mustCustomer(t, e, ra, "c1", "c1@example.com")
	gone := mustCustomer(t, e, ra, "gone", "gone@example.com")
	c1.DisplayName = "c1 renamed"
	if err := e.customers.Update(ra, &c1); err != nil {
		t.Fatalf("update: %v", err)
	}
	if err := e.customers.Delete(ra, gone.ID); err != nil {
		t.Fatalf("delete: %v", err)
	}
	if err := rs.WaitReplayed(ctx, rs.Replica); err != nil {
		t.Fatal(err)
	}
	pgtest.WaitReplica(t, e.pool, true)
	got, err := e.customers.Get(ra, c1.ID)
	if err != nil || got.DisplayName != "c1 renamed" || got.Email != "c1@example.com" {
		t.Fatalf("read on the standby: got %+v, %v; want c1 renamed, its email decrypted", got, err)
	}

	super := mustConn(t, rs.Replica.SuperDSN)
	if _, err := super.Exec(ctx, "SELECT pg_wal_replay_pause()"); err != nil {
		t.Fatal(err)
	}
	resumed := false
	t.Cleanup(func() {
		if !resumed {
			_, _ = super.Exec(context.Background(), "SELECT pg_wal_replay_resume()")
		}
	})
	c2 := mustCustomer(t, e, ra, "c2", "c2@example.com")
	// The standby has not replayed c2: a read there misses it, a read on the primary finds it.
	if _, err := e.customers.Get(ra, c2.ID); !errors.Is(err, repo.ErrNotFound) {
		t.Errorf("Get on the paused standby: got %v, want ErrNotFound", err)
	}
	if n, err := e.customers.Count(ra); err != nil || n != 1 {
		t.Errorf("Count on the paused standby: got %d, %v; want 1", n, err)
	}
	if got, err := e.customers.Get(db.OnPrimary(ra), c2.ID); err != nil || got.Email != "c2@example.com" {
		t.Errorf("Get under OnPrimary: got %+v, %v; want c2", got, err)
	}
	// Another tenant's id, on the standby: not found, and recorded by the audit writer on the primary.
	if _, err := e.customers.Get(rb, c1.ID); !errors.Is(err, repo.ErrNotFound) {
		t.Errorf("Get of a's row by b on the standby: got %v, want ErrNotFound", err)
	}
	if ok, err := w.Flush(ctx); err != nil || !ok {
		t.Fatalf("flush the audit writer: %v, %v", ok, err)
	}
	var foreign int
	if err := mustConn(t, d.SuperDSN).QueryRow(ctx, "SELECT count(*) FROM tenantseal.audit_log WHERE kind = $1", string(tenantseal.EventForeignID)).Scan(&foreign); err != nil {
		t.Fatal(err)
	}
	if foreign != 1 {
		t.Errorf("audit log on the primary: %d foreign_id entries, want 1", foreign)
	}

	if _, err := super.Exec(ctx, "SELECT pg_wal_replay_resume()"); err != nil {
		t.Fatal(err)
	}
	resumed = true
	if err := rs.WaitReplayed(ctx, rs.Replica); err != nil {
		t.Fatal(err)
	}
	page, err := e.customers.List(ra, repo.ListOptions{})
	if err != nil || len(page.Items) != 2 {
		t.Errorf("List on the standby after replay: got %d items, %v; want c1 and c2", len(page.Items), err)
	}
}
