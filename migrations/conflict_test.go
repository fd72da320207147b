package migrations_test

import (
	"io"
	"testing"
	"time"

	"github.com/tenantseal/tenantseal/internal/pgtest"
	"github.com/tenantseal/tenantseal/migrations"
)

// A migration file that loses a deadlock to another session is rolled back whole by the server: the
// migrator runs it again rather than failing a change that nothing was wrong with. Here the other
// session reads the audit tables (as the audit writer's security watch does) while the revert of 0004
// drops them, each waiting for the other.
func TestMigrationRunsAgainAfterLosingADeadlock(t *testing.T) {
	t.Parallel()
	d := pgtest.NewDatabase(t)
	ctx := testContext(t)
	mg := migrator(t, d, migrations.Options{ConfirmLoss: migrations.Losses(), Recorder: auditWriter(t, writerDSN(d)), AuditArchive: io.Discard})
	if err := mg.Goto(ctx, 4); err != nil {
		t.Fatal(err)
	}

	other := mustConn(t, d.SuperDSN)
	// The other session never looks for the deadlock itself: the migration's does, after the server's
	// deadlock_timeout, and is the one the server cancels.
	for _, q := range []string{"SET deadlock_timeout = '10min'", "BEGIN", "SELECT count(*) FROM tenantseal.audit_head"} {
		if _, err := other.Exec(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	done := make(chan error, 1)
	go func() { done <- mg.Down(ctx, 1) }()

	// Wait until the revert holds the audit log and waits for the head, which the other session holds.
	watch := mustConn(t, d.SuperDSN)
	deadline := time.Now().Add(time.Minute)
	for {
		var ready bool
		err := watch.QueryRow(ctx, `SELECT
			EXISTS (SELECT FROM pg_locks WHERE relation = 'tenantseal.audit_head'::regclass AND NOT granted AND mode = 'AccessExclusiveLock')
			AND EXISTS (SELECT FROM pg_locks WHERE relation = 'tenantseal.audit_log'::regclass AND granted AND mode = 'AccessExclusiveLock')`).Scan(&ready)
		if err != nil {
			t.Fatal(err)
		}
		if ready {
			break
		}
		select {
		case err := <-done:
			t.Fatalf("the revert ended (%v) before it waited for the head while holding the log: no conflict to test", err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("the revert never waited for the head while holding the log: no conflict to test")
		}
		time.Sleep(20 * time.Millisecond)
	}
	// Now each waits for the other. The server cancels the revert; this read then goes through, on the
	// audit log the revert did not drop.
	if _, err := other.Exec(ctx, "SELECT count(*) FROM tenantseal.audit_log"); err != nil {
		t.Fatalf("the other session's read: %v (want the revert, not it, cancelled)", err)
	}
	if _, err := other.Exec(ctx, "COMMIT"); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("revert across a deadlock: %v, want it run again and applied", err)
	}
	if v, dirty, err := mg.Version(); err != nil || v != 3 || dirty {
		t.Errorf("after the revert: version %d dirty=%v (%v), want 3, clean", v, dirty, err)
	}
}
