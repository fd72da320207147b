package cli_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tenantseal/tenantseal"

	"github.com/tenantseal/tenantseal/audit"
	"github.com/tenantseal/tenantseal/internal/cli"
	"github.com/tenantseal/tenantseal/internal/pgtest"
)

// mustAuditWriter opens an audit writer on d's audit writer role with its spool in a temporary directory.
func mustAuditWriter(t testing.TB, d *pgtest.Database, now func() time.Time) *audit.Writer {
	t.Helper()
	cfg, err := audit.ParseConfig(d.AuditWriterDSN)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Now, cfg.SpoolPath, cfg.Logger = now, filepath.Join(t.TempDir(), "audit.spool"), slog.New(slog.NewTextHandler(io.Discard, nil))
	w, err := audit.NewWriter(testContext(t), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close(context.Background()) })
	return w
}

// auditEvent is one event to seed: recorded under ctx.
type auditEvent struct {
	ctx context.Context
	e   tenantseal.Event
}

// mustRecord records events and waits until the database holds them.
func mustRecord(t testing.TB, w *audit.Writer, events ...auditEvent) {
	t.Helper()
	for _, ev := range events {
		w.Record(ev.ctx, ev.e)
	}
	ok, err := w.Flush(testContext(t))
	if err != nil || !ok {
		t.Fatalf("flush the audit writer: got written=%v, %v; want the events in the database", ok, err)
	}
}

func newTenantID(t testing.TB) tenantseal.TenantID {
	t.Helper()
	h := randomHex(16)
	id, err := tenantseal.ParseTenantID(fmt.Sprintf("%s-%s-4%s-8%s-%s", h[:8], h[8:12], h[13:16], h[17:20], h[20:]))
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// seqsOf returns the sequence numbers that lines of text or JSON output start with.
func seqsOf(t testing.TB, out string, asJSON bool) []int64 {
	t.Helper()
	var seqs []int64
	for _, e := range entriesOf(t, out, asJSON) {
		seqs = append(seqs, e.Seq)
	}
	return seqs
}

// entriesOf parses the lines of tail or export output; text lines yield their sequence numbers only.
func entriesOf(t testing.TB, out string, asJSON bool) []audit.Entry {
	t.Helper()
	var entries []audit.Entry
	for _, l := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
		if l == "" {
			continue
		}
		var e audit.Entry
		if asJSON {
			if err := json.Unmarshal([]byte(l), &e); err != nil {
				t.Fatalf("line %q is not a JSON entry: %v", l, err)
			}
		} else {
			seq, err := strconv.ParseInt(strings.Fields(l)[0], 10, 64)
			if err != nil {
				t.Fatalf("line %q does not start with a sequence number", l)
			}
			e.Seq = seq
		}
		entries = append(entries, e)
	}
	return entries
}

func TestAuditVerify(t *testing.T) {
	t.Parallel()
	d := pgtest.NewDatabase(t)
	secrets := secretsFor(t, d)
	ctx := as(testContext(t), newTenantID(t))
	w := mustAuditWriter(t, d, nil)
	mustRecord(t, w,
		auditEvent{ctx, tenantseal.Event{Kind: tenantseal.EventForeignID, Table: "customers", Operation: "select", RowKey: "r1"}},
		auditEvent{ctx, tenantseal.Event{Kind: tenantseal.EventRefusedWrite, Table: "invoices", Operation: "insert", SQLState: "42501"}},
		auditEvent{ctx, tenantseal.Event{Kind: tenantseal.EventElevation, Detail: "reason=support ttl=5m"}})

	if r := mustRun(t, "audit", "verify", "--dsn", d.AuditorDSN); r.stdout != "audit log intact: 3 entries\n" {
		t.Errorf("verify: got stdout %q, want \"audit log intact: 3 entries\"", r.stdout)
	}
	// The auditor's connection string from the secrets file; a superuser and the owner (whose
	// audit_append must see stored event ids) also see the whole log.
	for _, args := range [][]string{{"--secrets", secrets}, {"--dsn", d.SuperDSN}, {"--dsn", d.OwnerDSN}} {
		if r := mustRun(t, append([]string{"audit", "verify"}, args...)...); r.stdout != "audit log intact: 3 entries\n" {
			t.Errorf("verify %s: got stdout %q, want \"audit log intact: 3 entries\"", args[0], r.stdout)
		}
	}
	// A role that sees part of the log (the app role: its tenant's events only) would report hidden rows
	// as deleted: refused.
	wantFailure(t, run(t, "audit", "verify", "--dsn", d.AppDSN), 1, "sees only part of the audit log", "TENANTSEAL_AUDITOR_DSN")

	mustExec(t, d.SuperDSN, "SET session_replication_role = replica; UPDATE tenantseal.audit_log SET detail = 'x' WHERE seq = 2")
	r := run(t, "audit", "verify", "--dsn", d.AuditorDSN)
	if r.code != 1 || r.stderr != "" {
		t.Errorf("verify after tampering: got %v, want exit 1 and the report on stdout only", r)
	}
	if want := "audit log broken at seq 2: its content does not match its hash: edited\n"; r.stdout != want {
		t.Errorf("verify after tampering: got stdout %q, want %q", r.stdout, want)
	}
	r = run(t, "audit", "verify", "--format", "json", "--dsn", d.AuditorDSN)
	if want := `{"schema":"tenantseal/audit-verify/v1","intact":false,"verified":1,"broken_at":2,"reason":"its content does not match its hash: edited"}` + "\n"; r.code != 1 || r.stdout != want {
		t.Errorf("verify --format json after tampering: got %v, want exit 1 and %s", r, want)
	}
}

func TestAuditVerifyJSON(t *testing.T) {
	t.Parallel()
	d := pgtest.NewDatabase(t)
	w := mustAuditWriter(t, d, nil)
	mustRecord(t, w, auditEvent{as(testContext(t), newTenantID(t)), tenantseal.Event{Kind: tenantseal.EventForeignID, Table: "customers", Operation: "select", RowKey: "r1"}})
	r := mustRun(t, "audit", "verify", "--format", "json", "--dsn", d.AuditorDSN)
	if want := `{"schema":"tenantseal/audit-verify/v1","intact":true,"verified":1,"broken_at":null,"reason":null}` + "\n"; r.stdout != want {
		t.Errorf("got stdout %q, want %q", r.stdout, want)
	}
	wantFailure(t, run(t, "audit", "verify", "--format", "xml", "--dsn", d.AuditorDSN), 2, `--format "xml": want text or json`)
}

func TestAuditTail(t *testing.T) {
	t.Parallel()
	d := pgtest.NewDatabase(t)
	a, b := newTenantID(t), newTenantID(t)
	at := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	w := mustAuditWriter(t, d, func() time.Time { return at })
	ctx := testContext(t)
	asA, asB := audit.WithRequestID(as(ctx, a), "req-1"), as(ctx, b)
	mustRecord(t, w,
		auditEvent{asA, tenantseal.Event{Kind: tenantseal.EventForeignID, TargetTenant: b, Table: "customers", Operation: "select", RowKey: "r1"}},
		auditEvent{asA, tenantseal.Event{Kind: tenantseal.EventRefusedWrite, TargetTenant: b, Table: "invoices", Operation: "insert", SQLState: "42501"}},
		auditEvent{ctx, tenantseal.Event{Kind: tenantseal.EventNoTenant, Table: "customers", Operation: "select"}},
		auditEvent{asB, tenantseal.Event{Kind: tenantseal.EventForeignID, TargetTenant: a, Table: "customers", Operation: "update", RowKey: "r4", Detail: `has "quotes"` + "\x1b[31m"}},
		auditEvent{asA, tenantseal.Event{Kind: tenantseal.EventElevation, Detail: "reason=support"}})

	tests := []struct {
		name string
		args []string
		want []int64
	}{
		{"default", nil, []int64{1, 2, 3, 4, 5}},
		{"last 2", []string{"-n", "2"}, []int64{4, 5}},
		{"none", []string{"-n", "0"}, nil},
		{"kind", []string{"--kind", string(tenantseal.EventForeignID)}, []int64{1, 4}},
		{"acting or target tenant", []string{"--tenant", a.String()}, []int64{1, 2, 4, 5}},
		{"tenant in capitals", []string{"--tenant", strings.ToUpper(b.String())}, []int64{1, 2, 4}},
		{"tenant and kind, last 1", []string{"--tenant", b.String(), "--kind", string(tenantseal.EventForeignID), "-n", "1"}, []int64{4}},
		// One match lies before the windows that tail reads first, back from the end.
		{"sparse kind", []string{"--kind", string(tenantseal.EventForeignID), "-n", "2", "--tenant", a.String()}, []int64{1, 4}},
		{"kind not in the log", []string{"--kind", "shred"}, nil},
	}
	for _, tc := range tests {
		for _, format := range []string{"text", "json"} {
			t.Run(tc.name+"/"+format, func(t *testing.T) {
				args := append([]string{"audit", "tail", "--dsn", d.AuditorDSN, "--format", format}, tc.args...)
				r := mustRun(t, args...)
				if got := seqsOf(t, r.stdout, format == "json"); !slices.Equal(got, tc.want) {
					t.Errorf("got entries %v, want %v\n%s", got, tc.want, r.stdout)
				}
			})
		}
	}

	t.Run("text line", func(t *testing.T) {
		r := mustRun(t, "audit", "tail", "--dsn", d.AuditorDSN, "-n", "4")
		// The database dates every entry itself, with its own clock: the time field is now's.
		lines := strings.Split(regexp.MustCompile(`(?m)^(\d+) \S+ `).ReplaceAllString(r.stdout, "$1 <at> "), "\n")
		want := []string{
			fmt.Sprintf("2 <at> refused_write subject=cli-test tenant=%s target=%s table=invoices operation=insert row=- sqlstate=42501 request_id=req-1 detail=-", a, b),
			"3 <at> no_tenant subject=- tenant=- target=- table=customers operation=select row=- sqlstate=- request_id=- detail=-",
			// Quotes and control characters are escaped: a detail cannot forge a field or drive the terminal.
			fmt.Sprintf(`4 <at> foreign_id subject=cli-test tenant=%s target=%s table=customers operation=update row=r4 sqlstate=- request_id=- detail="has \"quotes\"\x1b[31m"`, b, a),
		}
		for i, w := range want {
			if lines[i] != w {
				t.Errorf("line %d:\ngot  %q\nwant %q", i, lines[i], w)
			}
		}
	})

	t.Run("json fields", func(t *testing.T) {
		r := mustRun(t, "audit", "tail", "--dsn", d.AuditorDSN, "--format", "json", "--kind", string(tenantseal.EventForeignID), "-n", "1")
		es := entriesOf(t, r.stdout, true)
		if len(es) != 1 {
			t.Fatalf("got %d entries, want 1:\n%s", len(es), r.stdout)
		}
		e := es[0]
		if e.Seq != 4 || e.ReportedAt == nil || !e.ReportedAt.Equal(at) || e.Kind != tenantseal.EventForeignID || strval(e.Subject) != "cli-test" ||
			strval(e.TenantID) != b.String() || strval(e.TargetTenant) != a.String() || strval(e.Table) != "customers" ||
			strval(e.Operation) != "update" || strval(e.RowKey) != "r4" || e.SQLState != nil || len(e.Hash) != 32 {
			t.Errorf("got entry %+v, want seq 4, foreign_id by %s on %s's customers row r4, with its hash", e, b, a)
		}
	})
}

// lockedBuffer is a bytes.Buffer that a running command and the test may use at once.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *lockedBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *lockedBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestAuditTailFollow(t *testing.T) {
	t.Parallel()
	d := pgtest.NewDatabase(t)
	a := newTenantID(t)
	w := mustAuditWriter(t, d, nil)
	asA := as(testContext(t), a)
	mustRecord(t, w,
		auditEvent{asA, tenantseal.Event{Kind: tenantseal.EventForeignID, Table: "customers", Operation: "select"}},
		auditEvent{asA, tenantseal.Event{Kind: tenantseal.EventRefusedWrite, Table: "customers", Operation: "insert"}})

	ctx, cancel := context.WithCancel(testContext(t))
	defer cancel()
	polls := make(chan struct{})
	// Each poll waits until the test takes its signal: a poll that follows a taken signal started after
	// everything the test did before taking it.
	polled := func() {
		select {
		case polls <- struct{}{}:
		case <-ctx.Done():
		}
	}
	var stdout, stderr lockedBuffer
	exit := make(chan int, 1)
	go func() {
		exit <- cli.RunAudit(ctx, []string{"tail", "--follow", "--format", "json", "--kind", string(tenantseal.EventForeignID), "--dsn", d.AuditorDSN},
			&stdout, &stderr, 5*time.Millisecond, polled)
	}()
	waitPoll := func(what string) {
		t.Helper()
		select {
		case <-polls:
		case code := <-exit:
			t.Fatalf("%s: tail --follow ended with exit %d; stderr %q", what, code, stderr.String())
		case <-time.After(30 * time.Second):
			t.Fatalf("%s: no poll within 30s", what)
		}
	}

	waitPoll("first poll")
	if got := seqsOf(t, stdout.String(), true); !slices.Equal(got, []int64{1}) {
		t.Fatalf("before new events: got entries %v, want [1] (foreign_id only)", got)
	}
	mustRecord(t, w,
		auditEvent{asA, tenantseal.Event{Kind: tenantseal.EventNoTenant, Table: "customers", Operation: "select"}},
		auditEvent{asA, tenantseal.Event{Kind: tenantseal.EventForeignID, Table: "invoices", Operation: "select", RowKey: "new"}})
	waitPoll("poll under way while recording")
	waitPoll("poll after recording")
	es := entriesOf(t, stdout.String(), true)
	if len(es) != 2 || es[1].Seq != 4 || strval(es[1].RowKey) != "new" {
		t.Fatalf("after a new foreign_id event: got %+v, want entries 1 and 4 (row new)", es)
	}

	cancel()
	select {
	case code := <-exit:
		if code != 0 || stderr.String() != "" {
			t.Errorf("interrupted follow: got exit %d, stderr %q; want exit 0 and nothing on stderr", code, stderr.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("tail --follow did not end within 30s of its context's cancellation")
	}
	if n := len(entriesOf(t, stdout.String(), true)); n != 2 {
		t.Errorf("after the interrupt: got %d entries, want 2", n)
	}
}

func TestAuditExport(t *testing.T) {
	t.Parallel()
	d := pgtest.NewDatabase(t)
	a, b := newTenantID(t), newTenantID(t)
	ctx := testContext(t)
	// The database dates entries with its own clock, whatever the writer says: older entries are older.
	old := mustAuditWriter(t, d, nil)
	mustRecord(t, old,
		auditEvent{as(ctx, a), tenantseal.Event{Kind: tenantseal.EventForeignID, Table: "customers", Operation: "select"}},
		auditEvent{as(ctx, b), tenantseal.Event{Kind: tenantseal.EventForeignID, Table: "customers", Operation: "select"}})
	time.Sleep(1100 * time.Millisecond)
	between := time.Now().UTC().Truncate(time.Second)
	time.Sleep(1100 * time.Millisecond)
	// More than a page of recent events: export streams pages.
	const recent = 2345
	w := mustAuditWriter(t, d, nil)
	var events []auditEvent
	for i := range recent {
		who := as(ctx, a)
		if i%5 == 0 {
			who = as(ctx, b)
		}
		events = append(events, auditEvent{who, tenantseal.Event{Kind: tenantseal.EventRefusedWrite, Table: "invoices", Operation: "insert", RowKey: strconv.Itoa(i)}})
	}
	mustRecord(t, w, events...)
	if s := w.Stats(); s.Dropped != 0 {
		t.Fatalf("seeding: %d events dropped", s.Dropped)
	}

	tests := []struct {
		name  string
		args  []string
		first int64
		n     int
	}{
		{"since a time", []string{"--since", between.Format(time.RFC3339)}, 3, recent},
		{"last hour", []string{"--since", "1h"}, 1, recent + 2},
		{"tenant", []string{"--since", "3h", "--tenant", b.String()}, 2, 1 + (recent+4)/5},
		{"future", []string{"--since", "2999-01-01T00:00:00Z"}, 0, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := mustRun(t, append([]string{"audit", "export", "--dsn", d.AuditorDSN, "--format", "jsonl"}, tc.args...)...)
			es := entriesOf(t, r.stdout, true)
			if len(es) != tc.n {
				t.Fatalf("got %d entries, want %d", len(es), tc.n)
			}
			if tc.n > 0 && es[0].Seq != tc.first {
				t.Errorf("got first entry %d, want %d", es[0].Seq, tc.first)
			}
			for i := 1; i < len(es); i++ {
				if es[i].Seq <= es[i-1].Seq {
					t.Fatalf("entry %d after %d: want sequence order", es[i].Seq, es[i-1].Seq)
				}
			}
		})
	}
}

func TestAuditShred(t *testing.T) {
	t.Parallel()
	e := newKeysEnv(t)
	a := e.tenant(t, "a")
	e.tenant(t, "b")

	r := mustRun(t, "tenants", "shred", a.String(), "--confirm", a.String(), "--secrets", e.secrets)
	wantContains(t, "stdout", r.stdout, "shredded tenant "+a.String())
	wantContains(t, "stderr", r.stderr, "recorded the shred in the audit log")

	// The auditor's connection string comes from the secrets file.
	r = mustRun(t, "audit", "tail", "--format", "json", "--kind", "shred", "--secrets", e.secrets)
	es := entriesOf(t, r.stdout, true)
	if len(es) != 1 {
		t.Fatalf("got %d entries, want exactly one:\n%s", len(es), r.stdout)
	}
	got := es[0]
	if got.Kind != "shred" || strval(got.TargetTenant) != a.String() || strval(got.Operation) != "shred" ||
		!strings.HasPrefix(strval(got.Detail), "destroyed 2 keysets (aead, prf) as database role "+e.d.Roles.Owner) {
		t.Errorf("got %+v, want a shred of %s that destroyed 2 keysets, by %s", got, a, e.d.Roles.Owner)
	}
	// Before it: the two tenants' creations.
	if r := mustRun(t, "audit", "verify", "--secrets", e.secrets); r.stdout != "audit log intact: 3 entries\n" {
		t.Errorf("verify: got %q, want the three entries intact", r.stdout)
	}
}

// Not parallel: it changes the working directory, where the shred's audit writer keeps its spool.
func TestAuditShredUnrecorded(t *testing.T) {
	t.Setenv("TENANTSEAL_AUDIT_WRITER_DSN", "")
	dir := t.TempDir()
	t.Chdir(dir)
	e := newKeysEnv(t)
	a := e.tenant(t, "a")
	b := e.tenant(t, "b")
	good := mustRead(t, e.secrets)
	setApp := func(line string) {
		t.Helper()
		mustWrite(t, e.secrets, regexp.MustCompile(`(?m)^TENANTSEAL_AUDIT_WRITER_DSN=.*\n`).ReplaceAllLiteralString(good, line))
	}

	// Without the audit writer's connection string, the shred could not be recorded: nothing is shredded.
	setApp("")
	wantFailure(t, run(t, "tenants", "shred", a.String(), "--confirm", a.String(), "--secrets", e.secrets), 1, "has no TENANTSEAL_AUDIT_WRITER_DSN line")
	if n := e.keysets(t, a); n != 2 {
		t.Fatalf("after a refused shred: got %d keysets, want 2", n)
	}

	// The audit log cannot be reached: the shred happens, and the command says it is not recorded.
	setApp("TENANTSEAL_AUDIT_WRITER_DSN=postgres://nobody:s3cret-pw@127.0.0.1:1/x?connect_timeout=2&" + e.d.TLSParams().Encode() + "\n")
	r := run(t, "tenants", "shred", a.String(), "--confirm", a.String(), "--secrets", e.secrets)
	if r.code != 1 {
		t.Errorf("got exit %d, want 1; %v", r.code, r)
	}
	wantContains(t, "stdout", r.stdout, "shredded tenant "+a.String())
	lines := strings.Split(strings.TrimSuffix(r.stderr, "\n"), "\n")
	spool := filepath.Join(dir, audit.DefaultSpoolPath)
	wantContains(t, "last stderr line", lines[len(lines)-1], "tenantseal: tenants shred: tenant "+a.String()+" was shredded, but the audit log could not be written", spool)
	if strings.Contains(r.stderr, "s3cret") {
		t.Errorf("stderr %q reveals the password", r.stderr)
	}
	if n := e.keysets(t, a); n != 0 {
		t.Errorf("after the shred: got %d keysets, want 0", n)
	}
	if data, err := os.ReadFile(spool); err != nil || !strings.Contains(string(data), `"kind":"shred"`) {
		t.Fatalf("spool %s: got %q (%v), want the shred event", spool, data, err)
	}

	// The next writer started in this directory replays the spooled event first.
	setApp(fmt.Sprintf("TENANTSEAL_AUDIT_WRITER_DSN=%s\n", e.d.AuditWriterDSN))
	mustRun(t, "tenants", "shred", b.String(), "--confirm", b.String(), "--secrets", e.secrets)
	es := entriesOf(t, mustRun(t, "audit", "tail", "--format", "json", "--kind", "shred", "--secrets", e.secrets).stdout, true)
	if len(es) != 2 || strval(es[0].TargetTenant) != a.String() || strval(es[1].TargetTenant) != b.String() {
		t.Errorf("got shred entries %+v, want a's (replayed from the spool), then b's", es)
	}
	if _, err := os.Stat(spool); !os.IsNotExist(err) {
		t.Errorf("spool after the replay: got %v, want it removed", err)
	}
}

// Not parallel: it clears an environment variable and changes the working directory.
func TestNoAuditorDSN(t *testing.T) {
	t.Setenv("TENANTSEAL_AUDITOR_DSN", "")
	t.Chdir(t.TempDir()) // no tenantseal-secrets.env here
	wantFailure(t, run(t, "audit", "verify"), 2, "no auditor connection string", "--dsn", "TENANTSEAL_AUDITOR_DSN", "tenantseal bootstrap")
}

func TestAuditBadInput(t *testing.T) {
	t.Parallel()
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"audit"}, "missing subcommand: verify, tail, export, logins, keygen, checkpoint or prove"},
		{[]string{"audit", "frobnicate"}, `unknown subcommand "frobnicate"`},
		{[]string{"audit", "verify", "now"}, `unexpected argument "now"`},
		{[]string{"audit", "verify", "--follow"}, "--follow goes with tail only"},
		{[]string{"audit", "tail", "--since", "1h"}, "--since goes with export only"},
		{[]string{"audit", "tail", "-n", "-1"}, "-n -1: want 0 or more"},
		{[]string{"audit", "tail", "--format", "xml"}, `--format "xml": want text or json`},
		{[]string{"audit", "tail", "--tenant", "ac\tme"}, `"ac\tme" is not a tenant id`},
		{[]string{"audit", "tail", "--kind", "foreign-id"}, `audit tail: --kind "foreign-id": want one of refused_write, foreign_id, tenant_mismatch, no_tenant, invalid_context, tampered_ciphertext, elevation, shred`},
		{[]string{"audit", "export", "--since", "1h", "--kind", ""}, `audit export: --kind "": want one of`},
		{[]string{"audit", "export", "--since", "1h", "--kind", "SHRED"}, `--kind "SHRED": want one of`},
		{[]string{"audit", "export"}, "--since is required"},
		{[]string{"audit", "export", "--since", "yesterday"}, "RFC 3339"},
		{[]string{"audit", "export", "--since", "-1h"}, "ago, not ahead"},
		{[]string{"audit", "export", "--since", "1h", "--format", "text"}, "want jsonl"},
	}
	for _, tc := range tests {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			wantFailure(t, run(t, tc.args...), 2, tc.want)
		})
	}

	r := mustRun(t, "help", "audit")
	wantContains(t, "help audit", r.stdout, "verify", "tail [--follow]", "export --since", "-follow", "-kind", "-tenant", "TENANTSEAL_AUDITOR_DSN")
	for _, k := range tenantseal.EventKinds() {
		wantContains(t, "help audit", r.stdout, string(k))
	}
	wantContains(t, "help", mustRun(t, "help").stdout, "\taudit ")
}

// strval is the value of an optional entry field, "" when absent.
func strval(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
