package audit_test

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5"
	"golang.org/x/mod/sumdb/note"

	"github.com/tenantseal/tenantseal"
	"github.com/tenantseal/tenantseal/audit"
	"github.com/tenantseal/tenantseal/internal/pgtest"
)

// anchoredLog is a database whose audit log has checkpoints published into dir.
type anchoredLog struct {
	d      *pgtest.Database
	w      *audit.Writer
	signer *audit.Signer
	dir    audit.Dir
	cp     *audit.Checkpointer
	n      int
}

// newAnchoredLog seeds a log and signs a checkpoint after each size in sizes.
func newAnchoredLog(t *testing.T, sizes ...int) *anchoredLog {
	t.Helper()
	d := pgtest.NewDatabase(t)
	l := &anchoredLog{d: d, w: mustWriter(t, d), signer: mustSigner(t, "example.com/audit"), dir: audit.Dir(filepath.Join(t.TempDir(), "checkpoints"))}
	l.cp = mustCheckpointer(t, d, l.signer, l.dir)
	for _, s := range sizes {
		l.record(t, s-l.n)
		if _, err := l.cp.Checkpoint(testContext(t)); err != nil {
			t.Fatalf("checkpoint at %d: %v", s, err)
		}
	}
	return l
}

func mustSigner(t testing.TB, name string) *audit.Signer {
	t.Helper()
	path := filepath.Join(t.TempDir(), "signing.key")
	if _, err := audit.CreateKeyFile(path, name); err != nil {
		t.Fatal(err)
	}
	s, err := audit.OpenKeyFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func mustCheckpointer(t testing.TB, d *pgtest.Database, s *audit.Signer, p audit.Publisher) *audit.Checkpointer {
	t.Helper()
	cp, err := audit.NewCheckpointer(audit.CheckpointerConfig{Querier: mustConn(t, d.AuditorDSN), Signer: s, Publisher: p})
	if err != nil {
		t.Fatal(err)
	}
	return cp
}

// record appends n events and waits until they are in the database.
func (l *anchoredLog) record(t testing.TB, n int) {
	t.Helper()
	ctx := tenantseal.WithPrincipal(testContext(t), tenantseal.Principal{Tenant: tenantseal.TenantIDFromUUID([16]byte{3}), Subject: "s"})
	for i := 0; i < n; i++ {
		l.n++
		l.w.Record(ctx, tenantseal.Event{Kind: "refused_write", Table: "invoices", Detail: fmt.Sprint("event ", l.n)})
	}
	if ok, err := l.w.Flush(testContext(t)); !ok || err != nil {
		t.Fatalf("flush: %v %v", ok, err)
	}
}

// verify checks the log as the auditor against the directory's checkpoints.
func (l *anchoredLog) verify(t testing.TB) audit.AnchorResult {
	t.Helper()
	signed, err := l.dir.Checkpoints(testContext(t))
	if err != nil {
		t.Fatal(err)
	}
	res, err := audit.VerifyCheckpoints(testContext(t), mustConn(t, l.d.AuditorDSN), l.signer.Verifier(), signed)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func TestCheckpointsAnchorACleanLog(t *testing.T) {
	t.Parallel()
	l := newAnchoredLog(t, 4, 10)
	l.record(t, 3)
	res := l.verify(t)
	if !res.OK() || res.Rows != 13 {
		t.Fatalf("got break %v, bad checkpoint %v, %d rows; want 13 intact rows", res.Break, res.BadCheckpoint, res.Rows)
	}
	want := []audit.AnchoredRange{
		{Range: audit.Range{From: 1, To: 4}, Checkpoint: "00000000000000000004.checkpoint"},
		{Range: audit.Range{From: 5, To: 10}, Checkpoint: "00000000000000000010.checkpoint"},
	}
	if diff := cmp.Diff(want, res.Anchored); diff != "" {
		t.Errorf("anchored ranges (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(&audit.Range{From: 11, To: 13}, res.Unanchored); diff != "" {
		t.Errorf("unanchored: entries after the last checkpoint (-want +got):\n%s", diff)
	}

	// A checkpoint of the current head anchors everything.
	if _, err := l.cp.Checkpoint(testContext(t)); err != nil {
		t.Fatal(err)
	}
	res = l.verify(t)
	if !res.OK() || res.Unanchored != nil || len(res.Anchored) != 3 || res.Anchored[2].To != 13 {
		t.Errorf("after checkpointing the head: got %+v, want 3 anchored ranges to 13 and nothing unanchored", res)
	}
}

const rehash = pgtest.RehashAudit

// Each rewrite is played as the owner (who disables the append-only triggers and row-level security on
// its own table, then restores them) and as a superuser (who turns triggers off for its session).
func TestCheckpointsDetectRewrittenHistory(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		sql  string
		// chainHolds: the rewrite defeats the hash chain alone (audit.Verify reports it intact).
		chainHolds bool
		wantSeq    int64
		wantCause  string
	}{
		{"edited, chain recomputed", "UPDATE tenantseal.audit_log SET detail = 'nothing happened' WHERE seq = 5;" + rehash,
			true, 5, "entries 5..6 do not match checkpoint 00000000000000000006.checkpoint"},
		{"edited, chain not recomputed", "UPDATE tenantseal.audit_log SET detail = 'nothing happened' WHERE seq = 5",
			false, 5, "edited"},
		{"history rewritten from the first entry", "UPDATE tenantseal.audit_log SET subject = 'someone else';" + rehash,
			true, 1, "entries 1..2 do not match"},
		{"deleted, renumbered, chain recomputed", `DELETE FROM tenantseal.audit_log WHERE seq = 5;
			UPDATE tenantseal.audit_log SET seq = seq + 1000 WHERE seq > 5;
			UPDATE tenantseal.audit_log SET seq = seq - 1001 WHERE seq > 1000;` + rehash,
			true, 5, "entries 5..6 do not match"},
		{"inserted, renumbered, chain recomputed", `UPDATE tenantseal.audit_log SET seq = seq + 1000 WHERE seq >= 5;
			UPDATE tenantseal.audit_log SET seq = seq - 999 WHERE seq >= 1005;
			INSERT INTO tenantseal.audit_log (seq, event_id, at, kind, prev_hash, hash)
			VALUES (5, gen_random_uuid(), now(), 'refused_write', ''::bytea, ''::bytea);` + rehash,
			true, 5, "entries 5..6 do not match"},
		{"reordered, chain recomputed", `UPDATE tenantseal.audit_log SET seq = -1 WHERE seq = 5;
			UPDATE tenantseal.audit_log SET seq = 5 WHERE seq = 6;
			UPDATE tenantseal.audit_log SET seq = 6 WHERE seq = -1;` + rehash,
			true, 5, "entries 5..6 do not match"},
		{"tail truncated below the last checkpoint, head updated", "DELETE FROM tenantseal.audit_log WHERE seq > 7;" + rehash,
			true, 8, "the log ends at 7 but checkpoint 00000000000000000010.checkpoint signs 10 entries: entries 8..10 deleted"},
	}
	roles := []struct {
		name   string
		dsn    func(*pgtest.Database) string
		tamper func(sql string) string
	}{
		{"owner", func(d *pgtest.Database) string { return d.OwnerDSN }, pgtest.AsOwnerWritingAudit},
		{"superuser", func(d *pgtest.Database) string { return d.SuperDSN }, func(sql string) string {
			return "SET LOCAL session_replication_role = replica;" + sql
		}},
	}
	for _, role := range roles {
		for _, tc := range tests {
			t.Run(role.name+"/"+tc.name, func(t *testing.T) {
				t.Parallel()
				l := newAnchoredLog(t, 2, 4, 6, 8, 10)
				if res := l.verify(t); !res.OK() || res.Unanchored != nil {
					t.Fatalf("before the rewrite: got %+v, want every entry anchored", res)
				}
				err := pgx.BeginFunc(testContext(t), mustConn(t, role.dsn(l.d)), func(tx pgx.Tx) error {
					_, err := tx.Exec(testContext(t), role.tamper(tc.sql))
					return err
				})
				if err != nil {
					t.Fatalf("rewrite as the %s: %v", role.name, err)
				}
				chain, err := audit.Verify(testContext(t), mustConn(t, l.d.AuditorDSN))
				if err != nil {
					t.Fatal(err)
				}
				if got := chain.Break == nil; got != tc.chainHolds {
					t.Fatalf("the hash chain alone: got intact=%v (%v), want %v: the rewrite is not the one this case plays", got, chain.Break, tc.chainHolds)
				}
				res := l.verify(t)
				if res.Break == nil || res.Break.Seq != tc.wantSeq || !strings.Contains(res.Break.Reason, tc.wantCause) {
					t.Errorf("got break %v, want one at seq %d naming %q", res.Break, tc.wantSeq, tc.wantCause)
				}
				if res.OK() {
					t.Error("OK() after a rewrite: want false")
				}
				// A checkpointer started now checks the log against the last published checkpoint and
				// refuses to vouch for the rewritten history.
				if cp, err := mustCheckpointer(t, l.d, l.signer, l.dir).Checkpoint(testContext(t)); err == nil || !strings.Contains(err.Error(), "refusing to sign") {
					t.Errorf("a new checkpointer on the rewritten log: got %+v, %v; want a refusal to sign", cp, err)
				}
				// The running one, which remembers what it read, refuses too when the rewrite reached the
				// last entry it signed; when it did not, what it signs is its own tree of the entries as it
				// read them, which does not vouch for the rewrite either.
				l.record(t, 1)
				cp, err := l.cp.Checkpoint(testContext(t))
				if tc.chainHolds && (err == nil || !strings.Contains(err.Error(), "refusing to sign")) {
					t.Errorf("the running checkpointer on the rewritten log: got %+v, %v; want a refusal to sign", cp, err)
				}
				// (After the truncation the new entry took seq 8: the range 7..8 of the checkpoint of 8 breaks.)
				if res := l.verify(t); res.Break == nil || res.Break.Seq > tc.wantSeq {
					t.Errorf("after the running checkpointer's attempt (%v): got break %v, want one at seq %d or before", err, res.Break, tc.wantSeq)
				}
			})
		}
	}
}

func TestVerifyCheckpointsRejectsBadCheckpoints(t *testing.T) {
	t.Parallel()
	l := newAnchoredLog(t, 3, 6)
	ctx := testContext(t)
	good, err := l.dir.Checkpoints(ctx)
	if err != nil {
		t.Fatal(err)
	}
	other := mustSigner(t, "other.example/audit")
	sameName := mustSigner(t, "example.com/audit")
	forged := mustForge(t, sameName, audit.Checkpoint{Origin: "example.com/audit", Size: 6})
	fork := mustForge(t, l.signer, audit.Checkpoint{Origin: "example.com/audit", Size: 6})
	altered := strings.Replace(string(good[0].Note), "\n3\n", "\n2\n", 1)
	tests := []struct {
		name string
		note []byte
		want string
	}{
		{"another log's key", mustForge(t, other, audit.Checkpoint{Origin: "other.example/audit", Size: 6}), "not signed by the verifier key example.com/audit"},
		{"another key of the same name", forged, "not signed by the verifier key"},
		{"altered after signing", []byte(altered), "does not verify"},
		{"another origin, signed by the log's key", mustForge(t, l.signer, audit.Checkpoint{Origin: "other.example/audit", Size: 6}), `of log "other.example/audit"`},
		{"two histories signed for one size", fork, "two histories were signed"},
		{"not a note", []byte("hello\n"), "malformed"},
		{"empty", nil, "malformed"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			signed := append(append([]audit.SignedCheckpoint{}, good...), audit.SignedCheckpoint{Name: "bad.checkpoint", Note: tc.note})
			res, err := audit.VerifyCheckpoints(ctx, mustConn(t, l.d.AuditorDSN), l.signer.Verifier(), signed)
			if err != nil {
				t.Fatal(err)
			}
			if res.OK() || res.BadCheckpoint == nil || res.BadCheckpoint.Name != "bad.checkpoint" || !strings.Contains(res.BadCheckpoint.Reason, tc.want) {
				t.Errorf("got bad checkpoint %v (break %v), want bad.checkpoint rejected naming %q", res.BadCheckpoint, res.Break, tc.want)
			}
			// The good checkpoints are still checked.
			if res.Break != nil || len(res.Anchored) != 2 {
				t.Errorf("got break %v and %d anchored ranges, want the good checkpoints to anchor 2 ranges", res.Break, len(res.Anchored))
			}
		})
	}
}

// mustForge signs a checkpoint with s, as a holder of the key could.
func mustForge(t testing.TB, s *audit.Signer, c audit.Checkpoint) []byte {
	t.Helper()
	text := fmt.Sprintf("%s\n%d\n%s\n", c.Origin, c.Size, base64.StdEncoding.EncodeToString(c.Root[:]))
	b, err := note.Sign(&note.Note{Text: text}, s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestWriterSignsCheckpointsAfterWritesLand(t *testing.T) {
	t.Parallel()
	d := pgtest.NewDatabase(t)
	signer, dir := mustSigner(t, "example.com/audit"), audit.Dir(t.TempDir())
	cp := mustCheckpointer(t, d, signer, dir)
	w := mustWriter(t, d, func(c *audit.Config) { c.Checkpointer = cp })
	ctx := tenantseal.WithPrincipal(testContext(t), tenantseal.Principal{Tenant: tenantseal.TenantIDFromUUID([16]byte{4}), Subject: "s"})
	for i := 0; i < 7; i++ {
		w.Record(ctx, tenantseal.Event{Kind: "foreign_id", RowKey: fmt.Sprint(i)})
	}
	// Close writes what is queued, then signs a last checkpoint of it.
	if err := w.Close(testContext(t)); err != nil {
		t.Fatal(err)
	}
	if st := w.Stats(); st.Written != 7 || st.Checkpoints < 1 || st.CheckpointFailures != 0 {
		t.Fatalf("got %+v, want 7 written and at least one checkpoint, no failure", st)
	}
	signed, err := dir.Checkpoints(testContext(t))
	if err != nil {
		t.Fatal(err)
	}
	res, err := audit.VerifyCheckpoints(testContext(t), mustConn(t, d.AuditorDSN), signer.Verifier(), signed)
	if err != nil {
		t.Fatal(err)
	}
	if !res.OK() || res.Unanchored != nil || len(res.Anchored) == 0 || res.Anchored[len(res.Anchored)-1].To != 7 {
		t.Errorf("got %+v, want entries 1..7 anchored", res)
	}
}

func TestWriterSignsPeriodically(t *testing.T) {
	t.Parallel()
	d := pgtest.NewDatabase(t)
	signer, dir := mustSigner(t, "example.com/audit"), audit.Dir(t.TempDir())
	w := mustWriter(t, d, func(c *audit.Config) {
		c.Checkpointer, c.CheckpointInterval = mustCheckpointer(t, d, signer, dir), 10*time.Millisecond
	})
	ctx := tenantseal.WithPrincipal(testContext(t), tenantseal.Principal{Tenant: tenantseal.TenantIDFromUUID([16]byte{6}), Subject: "s"})
	for round, want := range []int64{3, 5} {
		for w.Stats().Written < want {
			w.Record(ctx, tenantseal.Event{Kind: "foreign_id", RowKey: fmt.Sprint(round)})
			if ok, err := w.Flush(testContext(t)); !ok || err != nil {
				t.Fatalf("flush: %v %v", ok, err)
			}
		}
		// While the writer runs, a checkpoint of what landed follows within some intervals.
		deadline := time.Now().Add(10 * time.Second)
		for {
			latest, err := dir.Latest(testContext(t))
			if err != nil {
				t.Fatal(err)
			}
			if latest != nil {
				c, err := audit.OpenCheckpoint(audit.LatestName, latest, signer.Verifier())
				if err != nil {
					t.Fatal(err)
				}
				if c.Size == want {
					break
				}
			}
			if time.Now().After(deadline) {
				t.Fatalf("no checkpoint of %d entries 10 s after they landed: %+v", want, w.Stats())
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
}

// failingPublisher is a publisher that cannot store anything (a full disk, an unreachable store).
type failingPublisher struct{}

func (failingPublisher) Publish(context.Context, audit.Checkpoint, []byte) error {
	return errors.New("disk full")
}

func TestCheckpointFailureNeverBlocksRecording(t *testing.T) {
	t.Parallel()
	d := pgtest.NewDatabase(t)
	cp := mustCheckpointer(t, d, mustSigner(t, "example.com/audit"), failingPublisher{})
	w := mustWriter(t, d, func(c *audit.Config) { c.Checkpointer = cp })
	ctx := tenantseal.WithPrincipal(testContext(t), tenantseal.Principal{Tenant: tenantseal.TenantIDFromUUID([16]byte{5}), Subject: "s"})
	for i := 0; i < 5; i++ {
		w.Record(ctx, tenantseal.Event{Kind: "foreign_id", RowKey: fmt.Sprint(i)})
	}
	if err := w.Close(testContext(t)); err != nil {
		t.Fatal(err)
	}
	if st := w.Stats(); st.Written != 5 || st.Dropped != 0 || st.Checkpoints != 0 || st.CheckpointFailures < 1 {
		t.Errorf("got %+v, want 5 written, none dropped, the failed checkpoint counted", st)
	}
	if res, err := audit.Verify(testContext(t), mustConn(t, d.AuditorDSN)); err != nil || res.Break != nil || res.Rows != 5 {
		t.Errorf("got %+v (%v), want 5 intact rows", res, err)
	}
}

func TestCheckpointerRefusesAPartialView(t *testing.T) {
	t.Parallel()
	d := pgtest.NewDatabase(t)
	cp, err := audit.NewCheckpointer(audit.CheckpointerConfig{Querier: mustConn(t, d.AppDSN), Signer: mustSigner(t, "example.com/audit"), Publisher: audit.Dir(t.TempDir())})
	if err != nil {
		t.Fatal(err)
	}
	// The app role reads no audit table at all: refused by the database (42501) before anything is signed.
	if _, err := cp.Checkpoint(testContext(t)); !errors.Is(err, audit.ErrPartialLog) && sqlState(err) != "42501" {
		t.Errorf("checkpoint as the app role: got %v, want ErrPartialLog or permission denied", err)
	}
}

func TestInclusionProof(t *testing.T) {
	t.Parallel()
	l := newAnchoredLog(t, 5)
	l.record(t, 2) // after the checkpoint: not provable under it
	latest, err := l.dir.Latest(testContext(t))
	if err != nil {
		t.Fatal(err)
	}
	cp := audit.SignedCheckpoint{Name: audit.LatestName, Note: latest}
	auditor := mustConn(t, l.d.AuditorDSN)
	p, err := audit.ProveEntry(testContext(t), auditor, l.signer.Verifier(), cp, 3)
	if err != nil {
		t.Fatal(err)
	}
	c, err := audit.CheckInclusion(p, l.signer.Verifier())
	if err != nil || c.Size != 5 || str(p.Entry.Detail) != "event 3" {
		t.Fatalf("check the proof of entry 3: got %+v, %v (detail %q), want it included in the checkpoint of 5", c, err, str(p.Entry.Detail))
	}
	if _, err := audit.ProveEntry(testContext(t), auditor, l.signer.Verifier(), cp, 6); err == nil || !strings.Contains(err.Error(), "not under checkpoint") {
		t.Errorf("prove entry 6 under a checkpoint of 5: got %v, want a refusal", err)
	}
	tampered := []struct {
		name string
		edit func(p *audit.InclusionProof)
	}{
		{"entry edited", func(p *audit.InclusionProof) { s := "nothing happened"; p.Entry.Detail = &s }},
		{"entry and encoding edited", func(p *audit.InclusionProof) {
			p.Canonical = append([]byte{}, p.Canonical...)
			p.Canonical[len(p.Canonical)-1] ^= 1
		}},
		{"proof hash changed", func(p *audit.InclusionProof) {
			p.Proof = append([][]byte{}, p.Proof...)
			p.Proof[0] = make([]byte, 32)
		}},
		{"another seq", func(p *audit.InclusionProof) { p.Seq = 4 }},
		{"checkpoint of another key", func(p *audit.InclusionProof) {
			p.Checkpoint = string(mustForge(t, mustSigner(t, "example.com/audit"), audit.Checkpoint{Origin: "example.com/audit", Size: 5}))
		}},
	}
	for _, tc := range tampered {
		q := *p
		tc.edit(&q)
		if _, err := audit.CheckInclusion(&q, l.signer.Verifier()); err == nil {
			t.Errorf("%s: got no error, want the proof refused", tc.name)
		}
	}
}
