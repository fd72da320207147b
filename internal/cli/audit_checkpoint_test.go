package cli_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tenantseal/tenantseal"
	"github.com/tenantseal/tenantseal/audit"
	"github.com/tenantseal/tenantseal/internal/pgtest"
)

// The whole cycle: a key wrapped by the KEK, checkpoints signed on demand as the auditor, verify with
// them, a proof of inclusion, and the owner's rewrite of history detected.
func TestAuditCheckpoints(t *testing.T) {
	t.Parallel()
	d := pgtest.NewDatabase(t)
	tmp := t.TempDir()
	key, dir, kek := filepath.Join(tmp, "audit-signing.json"), filepath.Join(tmp, "checkpoints"), newLocalKEK(t)
	r := mustRun(t, "audit", "keygen", "--key", key, "--origin", "example.com/audit", "--kek", kek)
	vkey := strings.TrimSpace(r.stdout)
	if !strings.HasPrefix(vkey, "example.com/audit+") {
		t.Fatalf("keygen: got %q, want a verifier key of example.com/audit", vkey)
	}
	pub := key + ".pub"
	if b, err := os.ReadFile(pub); err != nil || strings.TrimSpace(string(b)) != vkey {
		t.Fatalf("keygen's %s: got %q, %v; want the verifier key", pub, b, err)
	}
	wantFailure(t, run(t, "audit", "keygen", "--key", key, "--origin", "example.com/audit", "--kek", kek), 1, "refusing to overwrite")
	wantFailure(t, run(t, "audit", "checkpoint", "--key", key, "--checkpoints", dir, "--dsn", d.AuditorDSN, "--kek", newLocalKEK(t)), 1, "does not open")

	ctx := as(testContext(t), newTenantID(t))
	w := mustAuditWriter(t, d, nil)
	record := func(n int) {
		for i := 0; i < n; i++ {
			mustRecord(t, w, auditEvent{ctx, tenantseal.Event{Kind: tenantseal.EventForeignID, Table: "customers", Operation: "select", RowKey: "r"}})
		}
	}
	checkpoint := func() {
		t.Helper()
		mustRun(t, "audit", "checkpoint", "--key", key, "--checkpoints", dir, "--dsn", d.AuditorDSN, "--kek", kek)
	}
	record(3)
	checkpoint()
	record(2)
	checkpoint()
	record(1)
	verify := []string{"audit", "verify", "--checkpoints", dir, "--verifier-key", pub, "--dsn", d.AuditorDSN}
	r = mustRun(t, verify...)
	if want := "audit log intact: 6 entries; entries 1..5 anchored by 2 checkpoints (the last 00000000000000000005.checkpoint); entries 6..6 not anchored yet (after the last checkpoint)\n"; r.stdout != want {
		t.Errorf("verify: got %q, want %q", r.stdout, want)
	}
	r = mustRun(t, append(verify, "--format", "json")...)
	want := `{"schema":"tenantseal/audit-verify/v1","intact":true,"verified":6,"broken_at":null,"reason":null,` +
		`"anchored":[{"from":1,"to":3,"checkpoint":"00000000000000000003.checkpoint"},{"from":4,"to":5,"checkpoint":"00000000000000000005.checkpoint"}],` +
		`"unanchored":{"from":6,"to":6},"bad_checkpoint":null}` + "\n"
	if r.stdout != want {
		t.Errorf("verify --format json: got %s, want %s", r.stdout, want)
	}

	// The evidence bundle checks the same checkpoints and says what they anchor.
	secrets := secretsFor(t, d)
	bundle := filepath.Join(tmp, "bundle")
	mustRun(t, "evidence", "export", bundle, "--secrets", secrets, "--checkpoints", dir, "--verifier-key", pub)
	m, files := readBundle(t, bundle)
	if got := checkStatus(m, "audit checkpoints"); got != "pass" {
		t.Errorf("evidence export with checkpoints: got the check %s, want pass", got)
	}
	var aj struct {
		Checkpoints struct {
			Checked, OK bool
			Details     struct {
				Anchored   []audit.AnchoredRange `json:"anchored"`
				Unanchored *audit.Range          `json:"unanchored"`
			}
		}
	}
	if err := json.Unmarshal([]byte(files["audit.json"]), &aj); err != nil {
		t.Fatal(err)
	}
	if c := aj.Checkpoints; !c.Checked || !c.OK || len(c.Details.Anchored) != 2 || c.Details.Anchored[1].To != 5 ||
		c.Details.Unanchored == nil || *c.Details.Unanchored != (audit.Range{From: 6, To: 6}) {
		t.Errorf("audit.json checkpoints: got %+v, want 1..3 and 4..5 anchored, 6 not yet", c)
	}
	wantContains(t, "summary.md", files["summary.md"], "entries 1..5 anchored by 2 checkpoints")

	r = mustRun(t, "audit", "prove", "4", "--checkpoints", dir, "--verifier-key", pub, "--dsn", d.AuditorDSN)
	var p audit.InclusionProof
	if err := json.Unmarshal([]byte(r.stdout), &p); err != nil {
		t.Fatalf("prove: %v in %s", err, r.stdout)
	}
	v, err := audit.ParseVerifierKey([]byte(vkey))
	if err != nil {
		t.Fatal(err)
	}
	if c, err := audit.CheckInclusion(&p, v); err != nil || c.Size != 5 || p.Seq != 4 {
		t.Errorf("the printed proof: got %+v, %v; want entry 4 under the checkpoint of 5", c, err)
	}
	wantFailure(t, run(t, "audit", "prove", "6", "--checkpoints", dir, "--verifier-key", pub, "--dsn", d.AuditorDSN), 1, "entry 6 is not under checkpoint latest")
	wantFailure(t, run(t, "audit", "prove", "x", "--checkpoints", dir, "--verifier-key", pub, "--dsn", d.AuditorDSN), 2, "want the sequence number")

	// The owner rewrites entry 2 and hides it from the chain: the chain alone holds, the checkpoints
	// do not.
	mustExec(t, d.OwnerDSN, pgtest.AsOwnerWritingAudit("UPDATE tenantseal.audit_log SET row_key = 'nothing' WHERE seq = 2;"+pgtest.RehashAudit))
	if r := mustRun(t, "audit", "verify", "--dsn", d.AuditorDSN); r.stdout != "audit log intact: 6 entries\n" {
		t.Fatalf("verify without checkpoints after the rewrite: got %q, want the chain intact (what the rewrite defeats)", r.stdout)
	}
	r = run(t, verify...)
	if r.code != 1 || !strings.HasPrefix(r.stdout, "audit log broken at seq 1: entries 1..3 do not match checkpoint 00000000000000000003.checkpoint") {
		t.Errorf("verify with checkpoints after the rewrite: got %v, want exit 1 and the break at seq 1 (range 1..3)", r)
	}
	r = run(t, append(verify, "--format", "json")...)
	var out struct {
		Intact   bool   `json:"intact"`
		BrokenAt *int64 `json:"broken_at"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &out); err != nil || r.code != 1 || out.Intact || out.BrokenAt == nil || *out.BrokenAt != 1 {
		t.Errorf("verify --format json after the rewrite: got %v (%v), want exit 1, intact false, broken_at 1", r, err)
	}
	r = run(t, "evidence", "export", filepath.Join(tmp, "bundle-after"), "--secrets", secrets, "--checkpoints", dir, "--verifier-key", pub)
	wantFailure(t, r, 4, "but 1 check failed", "audit checkpoints (", "entries 1..3 do not match checkpoint 00000000000000000003.checkpoint")
	wantFailure(t, run(t, "audit", "checkpoint", "--key", key, "--checkpoints", dir, "--dsn", d.AuditorDSN, "--kek", kek), 1, "refusing to sign")
}

func TestAuditCheckpointFlags(t *testing.T) {
	t.Parallel()
	tmp := t.TempDir()
	key := filepath.Join(tmp, "dev.key")
	r := mustRun(t, "audit", "keygen", "--local", "--key", key, "--origin", "dev.example/audit")
	if st, err := os.Stat(key); err != nil || st.Mode().Perm() != 0o600 || !strings.HasPrefix(r.stdout, "dev.example/audit+") {
		t.Fatalf("keygen --local: got %v, %v, %q; want a 0600 key and its verifier key", st, err, r.stdout)
	}
	tests := []struct {
		args []string
		code int
		want string
	}{
		{[]string{"audit", "keygen", "--key", filepath.Join(tmp, "k")}, 2, "--origin NAME are required"},
		{[]string{"audit", "keygen", "--local", "--key", filepath.Join(tmp, "k2"), "--origin", "has space"}, 1, "log name"},
		{[]string{"audit", "checkpoint", "--key", key}, 2, "--checkpoints DIR are required"},
		{[]string{"audit", "verify", "--checkpoints", tmp}, 2, "--checkpoints DIR and --verifier-key FILE go together"},
		{[]string{"audit", "verify", "--checkpoints", tmp, "--verifier-key", key}, 1, "not a verifier key"},
		{[]string{"audit", "verify", "--checkpoints", filepath.Join(tmp, "missing"), "--verifier-key", key + ".pub"}, 1, "no such file"},
		{[]string{"audit", "prove", "--checkpoints", tmp, "--verifier-key", key + ".pub"}, 2, "want one argument"},
		{[]string{"audit", "tail", "--checkpoints", tmp}, 2, "--checkpoints goes with"},
		{[]string{"evidence", "export", filepath.Join(tmp, "b"), "--checkpoints", tmp}, 2, "evidence export: --checkpoints DIR and --verifier-key FILE go together"},
		{[]string{"evidence", "export", filepath.Join(tmp, "b"), "--verifier-key", key}, 2, "evidence export: --checkpoints DIR and --verifier-key FILE go together"},
		{[]string{"evidence", "export", filepath.Join(tmp, "b"), "--checkpoints", tmp, "--verifier-key", key}, 1, "not a verifier key"},
	}
	for _, tc := range tests {
		r := run(t, tc.args...)
		wantFailure(t, r, tc.code, tc.want)
		if strings.Contains(r.stderr, "PRIVATE+KEY") {
			t.Errorf("%v: the message holds the key: %s", tc.args, r.stderr)
		}
	}
}
