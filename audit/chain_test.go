package audit_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/tenantseal/tenantseal"

	"github.com/jackc/pgx/v5"

	"github.com/tenantseal/tenantseal/audit"
	"github.com/tenantseal/tenantseal/internal/pgtest"
)

// seedChain appends n events through the writer and returns the database.
func seedChain(t *testing.T, n int) *pgtest.Database {
	t.Helper()
	d := pgtest.NewDatabase(t)
	w := mustWriter(t, d)
	ctx := tenantseal.WithPrincipal(testContext(t), tenantseal.Principal{Tenant: tenantseal.TenantIDFromUUID([16]byte{1}), Subject: "s"})
	for i := 0; i < n; i++ {
		w.Record(ctx, tenantseal.Event{Kind: "refused_write", Table: "customers", Detail: fmt.Sprint("event ", i)})
	}
	if ok, err := w.Flush(testContext(t)); !ok || err != nil {
		t.Fatalf("flush: %v %v", ok, err)
	}
	return d
}

func TestVerifyFindsTheFirstBrokenLink(t *testing.T) {
	t.Parallel()
	// Each case tampers as a superuser, who can bypass the append-only triggers.
	tests := []struct {
		name      string
		sql       string
		wantSeq   int64
		wantCause string
	}{
		{"edited", "UPDATE tenantseal.audit_log SET detail = 'nothing happened' WHERE seq = 4", 4, "edited"},
		{"deleted", "DELETE FROM tenantseal.audit_log WHERE seq = 3", 3, "deleted"},
		{"deleted at the end", "DELETE FROM tenantseal.audit_log WHERE seq >= 9", 9, "deleted at the end"},
		// A careful forger gives the inserted row a correct hash: the row after it no longer links.
		{"inserted", `UPDATE tenantseal.audit_log SET seq = seq + 1000 WHERE seq >= 6;
			UPDATE tenantseal.audit_log SET seq = seq - 999 WHERE seq >= 1006;
			INSERT INTO tenantseal.audit_log (seq, event_id, at, kind, prev_hash, hash)
			SELECT 6, gen_random_uuid(), now(), 'forged', hash, ''::bytea FROM tenantseal.audit_log WHERE seq = 5;
			UPDATE tenantseal.audit_log l SET hash = sha256(l.prev_hash || tenantseal.audit_canonical(l)) WHERE seq = 6`, 7, "inserted"},
		{"inserted, hash not recomputed", `UPDATE tenantseal.audit_log SET seq = seq + 1000 WHERE seq >= 6;
			UPDATE tenantseal.audit_log SET seq = seq - 999 WHERE seq >= 1006;
			INSERT INTO tenantseal.audit_log (seq, event_id, at, kind, prev_hash, hash)
			SELECT 6, gen_random_uuid(), now(), 'forged', hash, sha256(hash) FROM tenantseal.audit_log WHERE seq = 5`, 6, "edited"},
		{"reordered", `UPDATE tenantseal.audit_log SET seq = -1 WHERE seq = 5;
			UPDATE tenantseal.audit_log SET seq = 5 WHERE seq = 6;
			UPDATE tenantseal.audit_log SET seq = 6 WHERE seq = -1`, 5, "reordered"},
		{"rehashed edit", `UPDATE tenantseal.audit_log SET detail = 'x', hash = sha256(prev_hash) WHERE seq = 7`, 7, "edited"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			d := seedChain(t, 10)
			auditor := mustConn(t, d.AuditorDSN)
			if res, err := audit.Verify(testContext(t), auditor); err != nil || res.Break != nil || res.Rows != 10 {
				t.Fatalf("before tampering: got %+v (%v), want 10 intact rows", res, err)
			}
			super := mustConn(t, d.SuperDSN)
			err := pgx.BeginFunc(testContext(t), super, func(tx pgx.Tx) error {
				_, err := tx.Exec(testContext(t), "SET LOCAL session_replication_role = replica; "+tc.sql)
				return err
			})
			if err != nil {
				t.Fatal(err)
			}
			res, err := audit.Verify(testContext(t), auditor)
			if err != nil {
				t.Fatal(err)
			}
			if res.Break == nil || res.Break.Seq != tc.wantSeq || !strings.Contains(res.Break.Reason, tc.wantCause) {
				t.Errorf("got %+v, want a break at seq %d naming %q", res.Break, tc.wantSeq, tc.wantCause)
			}
		})
	}
}

func TestAppendOnlyForEveryRole(t *testing.T) {
	t.Parallel()
	d := seedChain(t, 3)
	owner, super := mustConn(t, d.OwnerDSN), mustConn(t, d.SuperDSN)
	// Each change is refused by a trigger (42501), or, for the owner under forced row-level security with
	// no UPDATE or DELETE policy, finds no row to change.
	const refused, noRow = "42501", ""
	tests := []struct {
		role string
		c    *pgx.Conn
		sql  string
		want string
	}{
		{"owner", owner, "UPDATE tenantseal.audit_log SET kind = 'x'", noRow},
		{"owner", owner, "DELETE FROM tenantseal.audit_log", noRow},
		{"owner", owner, "TRUNCATE tenantseal.audit_log", refused},
		{"owner", owner, "DELETE FROM tenantseal.audit_head", refused},
		{"owner", owner, "TRUNCATE tenantseal.audit_head", refused},
		{"superuser", super, "UPDATE tenantseal.audit_log SET kind = 'x'", refused},
		{"superuser", super, "DELETE FROM tenantseal.audit_log", refused},
		{"superuser", super, "TRUNCATE tenantseal.audit_log", refused},
		{"superuser", super, "DELETE FROM tenantseal.audit_head", refused},
		{"superuser", super, "TRUNCATE tenantseal.audit_head", refused},
	}
	for _, tc := range tests {
		tag, err := tc.c.Exec(testContext(t), tc.sql)
		switch {
		case tc.want == refused && sqlState(err) != refused:
			t.Errorf("%s as the %s: got %v, want the append-only trigger's refusal (42501)", tc.sql, tc.role, err)
		case tc.want == noRow && (err != nil || tag.RowsAffected() != 0):
			t.Errorf("%s as the %s: got %d rows changed, %v; want no row found", tc.sql, tc.role, tag.RowsAffected(), err)
		}
	}
	if res, err := audit.Verify(testContext(t), mustConn(t, d.AuditorDSN)); err != nil || res.Break != nil || res.Rows != 3 {
		t.Errorf("after the refused changes: got %+v (%v), want 3 intact rows", res, err)
	}
	auditor := mustConn(t, d.AuditorDSN)
	if _, err := auditor.Exec(testContext(t), "SELECT tenantseal.audit_append('[]')"); sqlState(err) != "42501" {
		t.Errorf("append as the auditor: got %v, want permission denied (42501)", err)
	}
}

func TestConcurrentWritersKeepOneChain(t *testing.T) {
	t.Parallel()
	d := pgtest.NewDatabase(t)
	const writers, each = 4, 50
	var wg sync.WaitGroup
	for i := 0; i < writers; i++ {
		w := mustWriter(t, d, func(c *audit.Config) { c.BatchSize = 7 })
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			ctx := tenantseal.WithPrincipal(context.Background(), tenantseal.Principal{Tenant: tenantseal.TenantIDFromUUID([16]byte{byte(i + 1)}), Subject: fmt.Sprint("w", i)})
			for j := 0; j < each; j++ {
				w.Record(ctx, tenantseal.Event{Kind: "foreign_id", RowKey: fmt.Sprint(j)})
			}
			if ok, err := w.Flush(context.Background()); !ok || err != nil {
				t.Errorf("flush: %v %v", ok, err)
			}
		}(i)
	}
	wg.Wait()
	res, err := audit.Verify(testContext(t), mustConn(t, d.AuditorDSN))
	if err != nil || res.Break != nil || res.Rows != writers*each {
		t.Errorf("got %+v (%v), want %d rows in one intact chain", res, err, writers*each)
	}
}

// Appending a batch again, as the writer does when an acknowledgement was lost, stores nothing twice.
func TestReplayedBatchIsStoredOnce(t *testing.T) {
	t.Parallel()
	d := pgtest.NewDatabase(t)
	writer := mustConn(t, d.AuditWriterDSN)
	batch := `[{"event_id": "0190a5b2-7c3d-4e5f-8a9b-0c1d2e3f4a5b", "kind": "foreign_id", "at": "2026-01-01T00:00:00Z"},
	           {"event_id": "0190a5b2-7c3d-4e5f-8a9b-0c1d2e3f4a5c", "kind": "no_tenant", "at": "2026-01-01T00:00:01Z"}]`
	for i := 0; i < 2; i++ {
		if _, err := writer.Exec(testContext(t), "SELECT tenantseal.audit_append($1::jsonb)", batch); err != nil {
			t.Fatal(err)
		}
	}
	res, err := audit.Verify(testContext(t), mustConn(t, d.AuditorDSN))
	if err != nil || res.Break != nil || res.Rows != 2 {
		t.Errorf("got %+v (%v), want 2 intact rows", res, err)
	}
}
