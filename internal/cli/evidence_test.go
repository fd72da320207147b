package cli_test

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tenantseal/tenantseal"
	"github.com/tenantseal/tenantseal/audit"
	"github.com/tenantseal/tenantseal/db"
	"github.com/tenantseal/tenantseal/internal/pgtest"
)

// evidenceManifest is the part of manifest.json the tests read.
type evidenceManifest struct {
	Schema, Database string
	ToolVersion      string            `json:"tool_version"`
	ServerVersion    string            `json:"server_version"`
	ReadAs           map[string]string `json:"read_as"`
	Checks           []struct{ Name, Status, Summary string }
	Files            []struct{ Name, Schema, SHA256 string }
}

// readBundle checks that dir holds exactly the files manifest.json lists, plus itself, that each
// matches its SHA-256 and, if JSON, names the schema the manifest gives it; it returns the manifest and
// every file's content by name.
func readBundle(t *testing.T, dir string) (evidenceManifest, map[string]string) {
	t.Helper()
	files := map[string]string{}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		files[e.Name()] = mustRead(t, filepath.Join(dir, e.Name()))
	}
	var m evidenceManifest
	if err := json.Unmarshal([]byte(files["manifest.json"]), &m); err != nil {
		t.Fatalf("manifest.json: %v\n%s", err, files["manifest.json"])
	}
	if m.Schema != "tenantseal/evidence/v1" {
		t.Errorf("manifest schema: got %q, want tenantseal/evidence/v1", m.Schema)
	}
	listed := []string{"manifest.json"}
	for _, f := range m.Files {
		listed = append(listed, f.Name)
		data, ok := files[f.Name]
		if !ok {
			t.Errorf("manifest lists %s, which the bundle lacks", f.Name)
			continue
		}
		sum := sha256.Sum256([]byte(data))
		if got := hex.EncodeToString(sum[:]); got != f.SHA256 {
			t.Errorf("%s: got SHA-256 %s, manifest says %s", f.Name, got, f.SHA256)
		}
		if strings.HasSuffix(f.Name, ".json") && f.Name != "isolation.json" {
			var doc struct{ Schema string }
			if err := json.Unmarshal([]byte(data), &doc); err != nil || doc.Schema != f.Schema || !strings.HasPrefix(doc.Schema, "tenantseal/evidence/") {
				t.Errorf("%s: got schema %q (%v), manifest says %q", f.Name, doc.Schema, err, f.Schema)
			}
		}
	}
	var inDir []string
	for name := range files {
		inDir = append(inDir, name)
	}
	slices.Sort(listed)
	slices.Sort(inDir)
	if !slices.Equal(listed, inDir) {
		t.Errorf("the bundle holds %v, the manifest lists %v", inDir, listed)
	}
	return m, files
}

// checkStatus returns the status the manifest gives check name.
func checkStatus(m evidenceManifest, name string) string {
	for _, c := range m.Checks {
		if c.Name == name {
			return c.Status
		}
	}
	return "(absent)"
}

// wantNoSecret fails if any file holds any of secrets (named by what they are).
func wantNoSecret(t *testing.T, files map[string]string, secrets map[string]string) {
	t.Helper()
	for what, v := range secrets {
		if len(v) < 8 {
			t.Fatalf("secret %s %q is too short to search for", what, v)
		}
		for name, data := range files {
			if strings.Contains(data, v) {
				t.Errorf("%s holds %s", name, what)
			}
		}
	}
}

func passwordOf(t *testing.T, dsn string) string {
	t.Helper()
	cc, err := pgx.ParseConfig(dsn)
	if err != nil {
		t.Fatal(err)
	}
	return cc.Password
}

// The export of a freshly migrated database with two tenants: every section, hashes that match, and no
// secret in any file.
func TestEvidenceExport(t *testing.T) {
	t.Parallel()
	e := newKeysEnv(t)
	d := e.d
	acme, globex := e.tenant(t, "Acme"), e.tenant(t, "Globex")
	plaintext := "plain-notes-" + randomHex(8)
	e.insertCustomer(t, e.keyring(t, e.kek), acme, "ada@acme.example", plaintext)

	// A support elevation with its reason, recorded by the pool's audit writer.
	w := mustAuditWriter(t, d, nil)
	cfg, err := db.ParseConfig(d.AppDSN)
	if err != nil {
		t.Fatal(err)
	}
	cfg.SigningKey, cfg.RolePrefix, cfg.Recorder = d.ContextKey, prefixOf(d.Roles), w
	pool, err := db.Open(testContext(t), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	staff := tenantseal.WithPrincipal(testContext(t), tenantseal.Principal{Tenant: globex, Subject: "staff@globex", Roles: []string{db.DefaultElevationRole}})
	elevated, err := pool.Elevate(staff, acme, "ticket 4711: invoice dispute", 5*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	var n int
	if err := pool.QueryRow(elevated, "SELECT count(*) FROM customers").Scan(&n); err != nil || n != 1 {
		t.Fatalf("elevated read: got %d rows, %v; want acme's one", n, err)
	}
	if ok, err := w.Flush(testContext(t)); err != nil || !ok {
		t.Fatalf("flush the audit writer: %v, %v", ok, err)
	}

	mustExec(t, d.OwnerDSN, "INSERT INTO tenantseal.tenant_governance (tenant_id, region) VALUES ($1, 'eu-west-1')", acme)
	dir := filepath.Join(t.TempDir(), "bundle")
	r := mustRun(t, "evidence", "export", dir, "--secrets", e.secrets)
	wantContains(t, "stdout", r.stdout, "evidence bundle written to "+dir, "lint", "pass", "audit chain", "isolation suite", "not_run")
	m, files := readBundle(t, dir)
	for _, name := range []string{"manifest.json", "summary.md", "roles.json", "lint.json", "keys.json", "audit.json", "tls.json"} {
		if _, ok := files[name]; !ok {
			t.Errorf("the bundle lacks %s", name)
		}
	}
	if _, ok := files["isolation.junit.xml"]; ok {
		t.Error("the bundle has an isolation report, but the suite was not asked for")
	}
	if m.Database != d.Name || !strings.HasPrefix(m.ServerVersion, "15") || m.ToolVersion == "" {
		t.Errorf("manifest: got database %q, server %q, tool %q; want %q, 15.x, a version", m.Database, m.ServerVersion, m.ToolVersion, d.Name)
	}
	if m.ReadAs["keys"] != d.Roles.Owner || m.ReadAs["audit"] != d.Roles.Auditor || m.ReadAs["roles"] != d.Roles.Auditor {
		t.Errorf("read_as: got %v, want keys as the owner, audit and roles as the auditor", m.ReadAs)
	}
	for name, want := range map[string]string{"lint": "pass", "audit chain": "pass", "audit checkpoints": "not_run", "isolation suite": "not_run"} {
		if got := checkStatus(m, name); got != want {
			t.Errorf("check %s: got %s, want %s", name, got, want)
		}
	}

	// Roles and grants.
	var roles struct {
		Roles []struct {
			Kind, Name               string
			Exists, Superuser, Login bool
			BypassRLS                bool `json:"bypassrls"`
			ConnectionLimit          int  `json:"connection_limit"`
		}
		Privileged []struct{ Name string } `json:"privileged_roles"`
		Tables     []struct {
			Name, Kind   string
			TenantColumn string `json:"tenant_column"`
			Protected    bool
			RLS          bool `json:"rls_enabled"`
			ForceRLS     bool `json:"rls_forced"`
			Grants       []struct {
				Grantee    string
				Privileges []string
			}
			Policies []struct{ Name, Command string }
		}
		Functions []struct {
			Name            string
			SecurityDefiner bool `json:"security_definer"`
		}
	}
	if err := json.Unmarshal([]byte(files["roles.json"]), &roles); err != nil {
		t.Fatal(err)
	}
	kinds := map[string]bool{}
	for _, ro := range roles.Roles {
		kinds[ro.Kind] = ro.Exists
		if ro.Kind == "app" && (!ro.Login || ro.Superuser || ro.BypassRLS || ro.Name != d.Roles.App) {
			t.Errorf("app role: got %+v, want %s, LOGIN, NOSUPERUSER, NOBYPASSRLS", ro, d.Roles.App)
		}
	}
	for _, k := range []string{"owner", "app", "auditor", "audit_writer", "probe"} {
		if !kinds[k] {
			t.Errorf("roles.json: role %s missing or absent (got %v)", k, kinds)
		}
	}
	if len(roles.Privileged) == 0 {
		t.Error("roles.json lists no superuser: the test server's superuser is one")
	}
	tables := map[string]int{}
	for i, tb := range roles.Tables {
		tables[tb.Name] = i
	}
	ci, ok := tables["customers"]
	if !ok {
		t.Fatalf("roles.json: no table customers in %v", tables)
	}
	cust := roles.Tables[ci]
	if cust.Kind != "tenant" || !cust.Protected || !cust.RLS || !cust.ForceRLS || cust.TenantColumn != "tenant_id" || len(cust.Policies) == 0 {
		t.Errorf("customers: got %+v, want a protected tenant table, RLS enabled and forced, with policies", cust)
	}
	appGrant := false
	for _, g := range cust.Grants {
		appGrant = appGrant || g.Grantee == d.Roles.App && slices.Contains(g.Privileges, "SELECT")
	}
	if !appGrant {
		t.Errorf("customers: got grants %+v, want SELECT for %s", cust.Grants, d.Roles.App)
	}
	if _, ok := tables["tenantseal.audit_log"]; !ok {
		t.Errorf("roles.json: no tenantseal.audit_log among %v", tables)
	}
	if !slices.ContainsFunc(roles.Functions, func(f struct {
		Name            string
		SecurityDefiner bool `json:"security_definer"`
	}) bool {
		return strings.HasPrefix(f.Name, "tenantseal.current_tenant(")
	}) {
		t.Errorf("roles.json: no tenantseal.current_tenant() among the functions")
	}

	// Keys per tenant and the context keys.
	var ks struct {
		Tenants []struct {
			ID, Name     string
			Region       *string
			KEK          struct{ ID string }
			LastRotation *time.Time `json:"last_rotation"`
			Keysets      []struct {
				Purpose string
				Keys    []struct {
					ID    uint32
					State string
				}
			}
		}
		Context struct {
			AllowUnsigned bool `json:"allow_unsigned"`
			Keys          []struct{ ID, State string }
		} `json:"context_signing"`
	}
	if err := json.Unmarshal([]byte(files["keys.json"]), &ks); err != nil {
		t.Fatal(err)
	}
	if len(ks.Tenants) != 2 || ks.Tenants[0].ID != acme.String() || ks.Tenants[1].ID != globex.String() {
		t.Fatalf("keys.json: got tenants %+v, want acme and globex", ks.Tenants)
	}
	if r := ks.Tenants[0].Region; r == nil || *r != "eu-west-1" || ks.Tenants[1].Region != nil {
		t.Errorf("keys.json: got regions %v and %v, want acme's eu-west-1 and none for globex", r, ks.Tenants[1].Region)
	}
	for _, tk := range ks.Tenants {
		if tk.KEK.ID == "" || tk.LastRotation == nil || len(tk.Keysets) != 2 {
			t.Errorf("tenant %s: got %+v, want a KEK id, a last rotation and two keysets", tk.Name, tk)
		}
		for _, set := range tk.Keysets {
			if len(set.Keys) != 1 || set.Keys[0].State != "primary" || set.Keys[0].ID == 0 {
				t.Errorf("tenant %s keyset %s: got keys %+v, want one primary key with its id", tk.Name, set.Purpose, set.Keys)
			}
		}
	}
	if ks.Context.AllowUnsigned || len(ks.Context.Keys) != 1 || ks.Context.Keys[0].ID != d.ContextKey.ID || ks.Context.Keys[0].State != "current" {
		t.Errorf("keys.json context signing: got %+v, want key %s current, unsigned refused", ks.Context, d.ContextKey.ID)
	}

	// The audit log: verified, the elevation with its reason, the operator actions.
	var au struct {
		Verify     struct{ Intact bool }
		Elevations struct {
			Count   int
			Entries []audit.Entry
		}
		OperatorActions struct {
			Count   int
			Entries []audit.Entry
		} `json:"operator_actions"`
	}
	if err := json.Unmarshal([]byte(files["audit.json"]), &au); err != nil {
		t.Fatal(err)
	}
	if !au.Verify.Intact || au.Elevations.Count != 1 || !strings.Contains(strval(au.Elevations.Entries[0].Detail), "ticket 4711: invoice dispute") ||
		strval(au.Elevations.Entries[0].Subject) != "staff@globex" || strval(au.Elevations.Entries[0].TargetTenant) != acme.String() {
		t.Errorf("audit.json: got verify %+v, elevations %+v; want intact and the one elevation of acme by staff@globex with its reason", au.Verify, au.Elevations)
	}
	var ops []string
	for _, en := range au.OperatorActions.Entries {
		ops = append(ops, string(en.Kind)+" "+strval(en.Operation))
	}
	if want := []string{"tenant_change create", "tenant_change create"}; !slices.Equal(ops, want) {
		t.Errorf("audit.json operator actions: got %v, want %v", ops, want)
	}

	// TLS: the server's settings and both sessions.
	var tls struct {
		Settings   map[string]string
		Unreadable []string `json:"unreadable_settings"`
		Sessions   []struct {
			Role string
			SSL  bool
		}
	}
	if err := json.Unmarshal([]byte(files["tls.json"]), &tls); err != nil {
		t.Fatal(err)
	}
	if _, ok := tls.Settings["ssl"]; !ok || len(tls.Sessions) != 2 || tls.Sessions[0].Role != d.Roles.Auditor || tls.Sessions[1].Role != d.Roles.Owner {
		t.Errorf("tls.json: got %+v, want the ssl setting and the auditor's and the owner's sessions", tls)
	}
	// PostgreSQL hides the protocol bound from a role without pg_read_all_settings: the bundle says so
	// rather than leave it out silently.
	if _, ok := tls.Settings["ssl_min_protocol_version"]; !ok && !slices.Contains(tls.Unreadable, "ssl_min_protocol_version") {
		t.Errorf("tls.json: got %+v, want ssl_min_protocol_version, or it named unreadable", tls)
	}

	// The summary, for a person.
	wantContains(t, "summary.md", files["summary.md"], "# Evidence: database "+strings.ReplaceAll(d.Name, "_", `\_`), "## Checks", "## Roles", "### Tables",
		"### Policies", "## Lint", "No findings.", "## Keys", "Acme", "Globex", "### Context signing", "## Audit log", "Hash chain intact",
		"Signed checkpoints: not checked", "### Elevations", "ticket 4711: invoice dispute", "### Operator actions", "## TLS",
		"## Isolation suite", "Not run", "## Files")

	wantNoSecret(t, files, secretsOf(t, e, plaintext))
	wantNoSecret(t, map[string]string{"stdout": r.stdout, "stderr": r.stderr}, secretsOf(t, e, plaintext))

	// A directory that holds files is refused, unchanged; --force replaces the bundle and leaves others.
	before := mustRead(t, filepath.Join(dir, "manifest.json"))
	wantFailure(t, run(t, "evidence", "export", dir, "--secrets", e.secrets), 2, "is not empty", "--force")
	if mustRead(t, filepath.Join(dir, "manifest.json")) != before {
		t.Error("the refused export changed the bundle")
	}
	mustWrite(t, filepath.Join(dir, "notes.txt"), "the auditor's own notes")
	mustRun(t, "evidence", "export", dir, "--force", "--secrets", e.secrets)
	if mustRead(t, filepath.Join(dir, "notes.txt")) != "the auditor's own notes" {
		t.Error("--force changed a file that is no part of the bundle")
	}
	if m2, _ := readBundleExcept(t, dir, "notes.txt"); len(m2.Files) != len(m.Files) {
		t.Errorf("after --force: got %d files, want %d", len(m2.Files), len(m.Files))
	}
}

// readBundleExcept is readBundle for a directory that also holds the files extra, no part of the bundle.
func readBundleExcept(t *testing.T, dir string, extra ...string) (evidenceManifest, map[string]string) {
	t.Helper()
	clean := t.TempDir()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if !slices.Contains(extra, e.Name()) {
			mustWrite(t, filepath.Join(clean, e.Name()), mustRead(t, filepath.Join(dir, e.Name())))
		}
	}
	return readBundle(t, clean)
}

// secretsOf returns what no bundle of e may hold: the passwords of every role, the context key, the
// KEK's key material and a field's plaintext.
func secretsOf(t *testing.T, e *keysEnv, plaintext string) map[string]string {
	t.Helper()
	d := e.d
	out := map[string]string{
		"the superuser's password":    passwordOf(t, d.SuperDSN),
		"the owner's password":        passwordOf(t, d.OwnerDSN),
		"the app's password":          passwordOf(t, d.AppDSN),
		"the auditor's password":      passwordOf(t, d.AuditorDSN),
		"the audit writer's password": passwordOf(t, d.AuditWriterDSN),
		"the context key":             fmt.Sprintf("%x", d.ContextKey.Secret),
		"a field's plaintext":         plaintext,
	}
	if e.kekURI != "" {
		kek := mustRead(t, strings.TrimPrefix(e.kekURI, "local-keyset://"))
		ms := regexp.MustCompile(`"value"\s*:\s*"([^"]+)"`).FindAllStringSubmatch(kek, -1)
		if len(ms) == 0 {
			t.Fatalf("the KEK file holds no key value: %s", kek)
		}
		for i, m := range ms {
			out[fmt.Sprintf("the KEK's key material %d", i)] = m[1]
		}
	}
	return out
}

// A lint error and a broken audit chain: the bundle is written, says so, and the export exits 4 naming
// both.
func TestEvidenceExportFailedChecks(t *testing.T) {
	t.Parallel()
	d := pgtest.NewDatabase(t)
	mustTenant(t, d.OwnerDSN, "acme")
	mustTenant(t, d.OwnerDSN, "globex")
	mustExec(t, d.SuperDSN, fmt.Sprintf(`SET ROLE %s;
		CREATE TABLE public.leaky (tenant_id uuid NOT NULL, id uuid PRIMARY KEY, body text);
		GRANT SELECT, INSERT ON public.leaky TO %s`, d.Roles.Owner, d.Roles.App))
	mustExec(t, d.SuperDSN, "SET session_replication_role = replica; UPDATE tenantseal.audit_log SET detail = 'rewritten' WHERE seq = 1")

	dir := filepath.Join(t.TempDir(), "bundle")
	secrets := secretsFor(t, d)
	r := run(t, "evidence", "export", dir, "--secrets", secrets)
	wantFailure(t, r, 4, "the bundle in "+dir+" was written, but 2 checks failed", "lint (", "audit chain (broken at seq 1: its content does not match its hash: edited)")
	m, files := readBundle(t, dir)
	if checkStatus(m, "lint") != "fail" || checkStatus(m, "audit chain") != "fail" {
		t.Errorf("manifest checks: got %+v, want lint and audit chain failed", m.Checks)
	}
	wantContains(t, "summary.md", files["summary.md"], "| lint | **FAIL** |", "| audit chain | **FAIL** | broken at seq 1", "public.leaky",
		"**Hash chain broken at seq 1: its content does not match its hash: edited**")
	var lr struct {
		Errors   int
		Findings []struct{ Rule, Severity, Object string }
	}
	if err := json.Unmarshal([]byte(files["lint.json"]), &lr); err != nil {
		t.Fatal(err)
	}
	if lr.Errors == 0 || !slices.ContainsFunc(lr.Findings, func(f struct{ Rule, Severity, Object string }) bool {
		return f.Severity == "error" && strings.Contains(f.Object, "public.leaky")
	}) {
		t.Errorf("lint.json: got %+v, want an error on public.leaky", lr)
	}
}

// A role setting that holds a password would put it in roles.json: nothing is written. One whose name
// speaks of a secret is written redacted.
func TestEvidenceExportRefusesSecrets(t *testing.T) {
	t.Parallel()
	d := pgtest.NewDatabase(t)
	secrets := secretsFor(t, d)
	token := "tok-" + randomHex(12)
	mustExec(t, d.SuperDSN, fmt.Sprintf("ALTER ROLE %s IN DATABASE %s SET myapp.api_token = '%s'", d.Roles.Auditor, d.Name, token))
	dir := filepath.Join(t.TempDir(), "bundle")
	mustRun(t, "evidence", "export", dir, "--secrets", secrets)
	_, files := readBundle(t, dir)
	wantContains(t, "roles.json", files["roles.json"], "myapp.api_token=[redacted]")
	wantNoSecret(t, files, map[string]string{"the role's token": token})

	owner := passwordOf(t, d.OwnerDSN)
	mustExec(t, d.SuperDSN, fmt.Sprintf("ALTER ROLE %s IN DATABASE %s SET application_name = '%s'", d.Roles.App, d.Name, owner))
	dir2 := filepath.Join(t.TempDir(), "bundle")
	r := run(t, "evidence", "export", dir2, "--secrets", secrets)
	wantFailure(t, r, 1, "the bundle would hold a secret: roles.json; nothing written")
	if strings.Contains(r.stdout+r.stderr, owner) {
		t.Errorf("the refusal shows the password: %v", r)
	}
	if _, err := os.Stat(dir2); !os.IsNotExist(err) {
		t.Errorf("the refused export left %s behind (%v)", dir2, err)
	}
}

// With --isolation-dsn the suite runs and its JUnit report is in the bundle; a leak fails the export.
// The suite runs in its short form (--isolation-short), a few seconds.
func TestEvidenceExportIsolation(t *testing.T) {
	t.Parallel()
	d := pgtest.NewDatabase(t)
	mustUnforcedNotes(t, d)
	secrets := secretsFor(t, d)
	dir := filepath.Join(t.TempDir(), "bundle")
	r := run(t, "evidence", "export", dir, "--secrets", secrets, "--isolation-dsn", d.SuperDSN, "--isolation-short", "--quiet")
	wantFailure(t, r, 4, "lint (1 error (TS002), 0 warnings)", "isolation suite (1 leak, 0 errors: owner-bypass on notes)")
	m, files := readBundle(t, dir)
	if checkStatus(m, "isolation suite") != "fail" {
		t.Errorf("manifest checks: got %+v, want the isolation suite failed", m.Checks)
	}
	var suites struct {
		XMLName xml.Name `xml:"testsuites"`
		Suites  []struct {
			Failures int `xml:"failures,attr"`
		} `xml:"testsuite"`
	}
	if err := xml.Unmarshal([]byte(files["isolation.junit.xml"]), &suites); err != nil || len(suites.Suites) == 0 {
		t.Fatalf("isolation.junit.xml: %v\n%s", err, files["isolation.junit.xml"])
	}
	failures := 0
	for _, s := range suites.Suites {
		failures += s.Failures
	}
	if failures == 0 {
		t.Error("isolation.junit.xml reports no failure, want the leak")
	}
	wantContains(t, "summary.md", files["summary.md"], "| isolation suite | **FAIL** |", "owner-bypass")
	wantNoSecret(t, files, map[string]string{
		"the context key":        fmt.Sprintf("%x", d.ContextKey.Secret),
		"the superuser password": passwordOf(t, d.SuperDSN),
		"the app's password":     passwordOf(t, d.AppDSN),
		"the owner's password":   passwordOf(t, d.OwnerDSN),
	})
}

func TestEvidenceUsage(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"evidence"}, "missing subcommand: export DIR"},
		{[]string{"evidence", "import", "x"}, `unknown subcommand "import"`},
		{[]string{"evidence", "export"}, "missing DIR"},
		{[]string{"evidence", "export", "a", "b"}, `unexpected argument "b"`},
		{[]string{"evidence", "export", "a", "--app-dsn", "x"}, "go with --isolation-dsn"},
		{[]string{"evidence", "export", "a", "--since", "yesterday"}, `--since "yesterday": want an RFC 3339 time`},
		{[]string{"evidence", "export", "a", "--since", "1h", "--until", "2h"}, "is not before --until"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			wantFailure(t, run(t, tc.args...), 2, tc.want)
		})
	}
}

// mustUnforcedNotes adds to d a protected tenant table public.notes whose RLS is not forced: its owner
// reads every tenant's rows (the isolation suite's owner-bypass leak, lint's TS002).
func mustUnforcedNotes(t *testing.T, d *pgtest.Database) {
	t.Helper()
	mustExec(t, d.SuperDSN, fmt.Sprintf(`SET ROLE %s;
		CREATE TABLE public.notes (tenant_id uuid NOT NULL, id uuid NOT NULL DEFAULT gen_random_uuid(), body text, PRIMARY KEY (tenant_id, id));
		SELECT tenantseal.protect_table('public.notes');
		ALTER TABLE public.notes NO FORCE ROW LEVEL SECURITY`, d.Roles.Owner))
}
