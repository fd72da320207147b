package cli_test

import (
	"encoding/json"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5"

	"github.com/tenantseal/tenantseal/internal/pgtest"
	"github.com/tenantseal/tenantseal/lint"
)

// mustLintJSON runs lint with --format json and the args, checks the exit status and returns the
// findings the output parses to.
func mustLintJSON(t testing.TB, code int, args ...string) []lint.Finding {
	t.Helper()
	r := run(t, append([]string{"lint", "--format", "json"}, args...)...)
	if r.code != code || r.stderr != "" {
		t.Fatalf("got %v, want exit %d and no stderr", r, code)
	}
	var fs []lint.Finding
	if err := json.Unmarshal([]byte(r.stdout), &fs); err != nil {
		t.Fatalf("stdout does not parse as JSON findings: %v\n%s", err, r.stdout)
	}
	return fs
}

// rulesOn returns "rule object" of every finding, sorted.
func rulesOn(fs []lint.Finding) []string {
	out := []string{}
	for _, f := range fs {
		out = append(out, f.Rule+" "+f.Object)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

func TestLint(t *testing.T) {
	t.Parallel()
	d := pgtest.NewDatabase(t)

	// A fresh database is clean, whether the roles come from the database or from --prefix, and whether
	// the owner or a superuser connects.
	for _, args := range [][]string{
		{"--dsn", d.OwnerDSN},
		{"--dsn", d.SuperDSN},
		{"--dsn", d.OwnerDSN, "--prefix", prefixOf(d.Roles)},
		{"--secrets", secretsFor(t, d)},
	} {
		r := run(t, append([]string{"lint"}, args...)...)
		if r.code != 0 || r.stdout != "no findings\n" || r.stderr != "" {
			t.Errorf("lint %s on a fresh database: got %v, want exit 0 and \"no findings\"", strings.Join(args, " "), r)
		}
	}
	if fs := mustLintJSON(t, 0, "--dsn", d.OwnerDSN); len(fs) != 0 {
		t.Errorf("--format json on a fresh database: got %v, want []", fs)
	}

	mustExec(t, d.SuperDSN, "ALTER TABLE public.customers NO FORCE ROW LEVEL SECURITY")

	r := run(t, "lint", "--dsn", d.OwnerDSN)
	if r.code != 1 || r.stderr != "" {
		t.Errorf("got %v, want exit 1 and no stderr: the report says why", r)
	}
	wantContains(t, "stdout", r.stdout,
		"TS002 error public.customers: ",
		"\tfix: ALTER TABLE public.customers FORCE ROW LEVEL SECURITY\n",
		"1 finding: 1 error, 0 warnings\n")

	fs := mustLintJSON(t, 1, "--dsn", d.OwnerDSN)
	if diff := cmp.Diff([]string{"TS002 public.customers"}, rulesOn(fs)); diff != "" {
		t.Errorf("findings (-want +got):\n%s", diff)
	}
	if len(fs) > 0 && (fs[0].Severity != lint.SeverityError || fs[0].Message == "" || fs[0].Fix == "") {
		t.Errorf("got %+v, want an error with a message and a fix", fs[0])
	}
}

func TestLintSchemasAndGlobalTables(t *testing.T) {
	t.Parallel()
	d := pgtest.NewDatabase(t)
	// A tenant-less table the app role may write, and a tenant table without row-level security in
	// another schema.
	mustExec(t, d.SuperDSN, `CREATE TABLE public.plans (id int PRIMARY KEY, name text);
		GRANT SELECT, INSERT ON public.plans TO `+d.Roles.App+`;
		CREATE SCHEMA other;
		CREATE TABLE other.notes (tenant_id uuid NOT NULL, id uuid NOT NULL, PRIMARY KEY (tenant_id, id));`)

	tests := []struct {
		name string
		args []string
		code int
		want []string
	}{
		{"every schema", nil, 1, []string{"TS001 other.notes", "TS015 public.plans"}},
		{"public only", []string{"--schema", "public"}, 1, []string{"TS015 public.plans"}},
		{"public with its global table", []string{"--schema", "public", "--global-table", "public.plans"}, 0, []string{}},
		{"both schemas, repeated flags", []string{"--schema", "public", "--schema", "other", "--global-table", "public.plans"}, 1, []string{"TS001 other.notes"}},
		{"both schemas, comma-separated", []string{"--schema", "public,other", "--global-table", "public.plans"}, 1, []string{"TS001 other.notes"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fs := mustLintJSON(t, tc.code, append([]string{"--dsn", d.OwnerDSN}, tc.args...)...)
			if diff := cmp.Diff(tc.want, rulesOn(fs)); diff != "" {
				t.Errorf("findings (-want +got):\n%s", diff)
			}
		})
	}
}

// A database that tenantseal did not migrate: the roles and the verifying function come from flags.
func TestLintForeignDatabase(t *testing.T) {
	t.Parallel()
	d := pgtest.NewDatabase(t) // for its roles
	_, name := freshNames(t)
	mustExec(t, superDSN(t), "CREATE DATABASE "+name)
	dsn := pgtest.WithDatabase(superDSN(t), name)
	mustExec(t, dsn, `CREATE FUNCTION public.my_tenant() RETURNS uuid LANGUAGE sql STABLE AS 'SELECT NULL::uuid';
		CREATE TABLE public.things (tenant_id uuid NOT NULL, id uuid NOT NULL, PRIMARY KEY (tenant_id, id))`)
	prefix := prefixOf(d.Roles)

	wantFailure(t, run(t, "lint", "--dsn", dsn), 2, "no tenantseal schema", "--prefix")
	wantFailure(t, run(t, "lint", "--dsn", dsn, "--prefix", prefix), 2, "tenant function tenantseal.current_tenant does not exist")
	wantFailure(t, run(t, "lint", "--dsn", dsn, "--prefix", "nosuch", "--tenant-function", "public.my_tenant"), 2, `role "nosuch_app" does not exist`)

	fs := mustLintJSON(t, 1, "--dsn", dsn, "--prefix", prefix, "--tenant-function", "public.my_tenant")
	if !slices.Contains(rulesOn(fs), "TS001 public.things") {
		t.Errorf("got %v, want TS001 on public.things", rulesOn(fs))
	}
}

func TestLintUsageErrors(t *testing.T) {
	t.Parallel()
	d := pgtest.NewDatabase(t)
	dir := t.TempDir()
	report := filepath.Join(dir, "report.json")
	mustWrite(t, report, "[]\n")
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"unknown format", []string{"--format", "xml"}, "--format must be text, json or sarif"},
		{"a schema that does not exist", []string{"--schema", "public,pubic"}, `schema "pubic" does not exist`},
		{"a tenant column that no table has", []string{"--schema", "public", "--tenant-column", "org_id"}, `no table in schema public has the tenant column "org_id"`},
		{"a registry that is not a table", []string{"--registry", "public.accounts"}, "registry public.accounts is not a table"},
		{"--diff with one report", []string{"--diff", report}, "--diff takes two reports"},
		{"--fix with a format", []string{"--fix", "--format", "json"}, "--fix writes an SQL script"},
		{"--sarif-artifact without sarif", []string{"--sarif-artifact", "migrations/"}, "--sarif-artifact goes with --format sarif"},
		{"a baseline that is no report", []string{"--baseline", filepath.Join(dir, "missing.json")}, "--baseline"},
		{"a migration that does not exist", []string{"--migration", filepath.Join(dir, "missing.sql")}, "--migration"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			wantFailure(t, run(t, append([]string{"lint", "--dsn", d.OwnerDSN}, tc.args...)...), 2, tc.want)
		})
	}
}

func TestLintSARIF(t *testing.T) {
	t.Parallel()
	d := pgtest.NewDatabase(t)
	mustExec(t, d.SuperDSN, "ALTER TABLE public.customers NO FORCE ROW LEVEL SECURITY")
	r := run(t, "lint", "--dsn", d.OwnerDSN, "--format", "sarif", "--sarif-artifact", "migrations/")
	if r.code != 1 || r.stderr != "" {
		t.Fatalf("got %v, want exit 1 and no stderr", r)
	}
	var log struct {
		Version string
		Runs    []struct {
			Tool struct {
				Driver struct{ Rules []struct{ ID string } }
			}
			Results []struct {
				RuleID  string
				Message struct{ Text string }
			}
		}
	}
	if err := json.Unmarshal([]byte(r.stdout), &log); err != nil {
		t.Fatalf("stdout is not JSON: %v\n%s", err, r.stdout)
	}
	if log.Version != "2.1.0" || len(log.Runs) != 1 || len(log.Runs[0].Tool.Driver.Rules) != len(lint.Rules()) {
		t.Fatalf("got version %q, %d runs, want 2.1.0 and one run listing every rule", log.Version, len(log.Runs))
	}
	res := log.Runs[0].Results
	if len(res) != 1 || res[0].RuleID != "TS002" || !strings.HasPrefix(res[0].Message.Text, "public.customers: ") {
		t.Errorf("got results %+v, want one TS002 on public.customers", res)
	}
}

// A team adopting the linter accepts today's findings and fails only on new ones.
func TestLintBaseline(t *testing.T) {
	t.Parallel()
	d := pgtest.NewDatabase(t)
	mustExec(t, d.SuperDSN, "ALTER TABLE public.customers NO FORCE ROW LEVEL SECURITY")
	baseline := filepath.Join(t.TempDir(), "baseline.json")
	r := run(t, "lint", "--dsn", d.OwnerDSN, "--format", "json")
	if r.code != 1 {
		t.Fatalf("got %v, want exit 1", r)
	}
	mustWrite(t, baseline, r.stdout)

	r = run(t, "lint", "--dsn", d.OwnerDSN, "--baseline", baseline)
	if r.code != 0 || r.stdout != "no findings\n1 finding accepted by the baseline "+baseline+"\n" {
		t.Errorf("with every finding in the baseline: got %v, want exit 0, no findings, 1 accepted", r)
	}
	mustExec(t, d.SuperDSN, "GRANT TRUNCATE ON public.invoices TO "+d.Roles.App)
	fs := mustLintJSON(t, 1, "--dsn", d.OwnerDSN, "--baseline", baseline)
	if diff := cmp.Diff([]string{"TS020 public.invoices"}, rulesOn(fs)); diff != "" {
		t.Errorf("a new finding beside the accepted one (-want +got):\n%s", diff)
	}
}

// Real migration files, applied in a transaction that is rolled back, classified by what they add.
func TestLintMigration(t *testing.T) {
	t.Parallel()
	d := pgtest.NewDatabase(t)
	dir := t.TempDir()
	app := pgx.Identifier{d.Roles.App}.Sanitize()
	// One after the other: each must find the database as the one before left it.
	for _, tc := range []struct {
		name, sql string
		file      string // a migration of the repository instead of sql
		code      int
		change    lint.Change
		added     []string
	}{
		{name: "a tenant-leading index", sql: "CREATE INDEX invoices_issued ON public.invoices (tenant_id, issued_at);",
			change: lint.ChangeSafe, added: []string{}},
		{name: "the reference domain's down migration", file: filepath.Join("..", "..", "examples", "reference", "migrations", "0001_reference_domain.down.sql"),
			change: lint.ChangeSafe, added: []string{}},
		{name: "a dropped policy", sql: "DROP POLICY invoices_delete ON public.invoices;", code: 1,
			change: lint.ChangeBreaking, added: []string{"TS003 public.invoices"}},
		{name: "a loosened predicate", code: 1, change: lint.ChangeDangerous, added: []string{"TS005 invoices_select on public.invoices"},
			sql: "ALTER POLICY invoices_select ON public.invoices TO " + app + " USING (tenant_id = coalesce((SELECT tenantseal.current_tenant()), tenant_id));"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			file := tc.file
			if file == "" {
				file = filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "_")+".up.sql")
				mustWrite(t, file, tc.sql)
			}
			r := run(t, "lint", "--dsn", d.OwnerDSN, "--format", "json", "--migration", file)
			if r.code != tc.code || r.stderr != "" {
				t.Fatalf("got %v, want exit %d and no stderr", r, tc.code)
			}
			var diff lint.Diff
			if err := json.Unmarshal([]byte(r.stdout), &diff); err != nil {
				t.Fatalf("stdout is not a diff: %v\n%s", err, r.stdout)
			}
			if diff.Change != tc.change {
				t.Errorf("got %s, want %s", diff.Change, tc.change)
			}
			if d := cmp.Diff(tc.added, rulesOn(diff.Added)); d != "" {
				t.Errorf("added findings (-want +got):\n%s", d)
			}
		})
	}
	// Rolled back: the database is as it was.
	if fs := mustLintJSON(t, 0, "--dsn", d.OwnerDSN); len(fs) != 0 {
		t.Errorf("after the checks: got %v, want no findings", rulesOn(fs))
	}
	r := run(t, "lint", "--dsn", d.OwnerDSN, "--migration", filepath.Join(dir, "a_dropped_policy.up.sql"))
	wantContains(t, "stdout", r.stdout, "breaking: 1 finding added, 0 removed\n", "+ TS003 error public.invoices: ")
}

func TestLintDiffAndFix(t *testing.T) {
	t.Parallel()
	d := pgtest.NewDatabase(t)
	dir := t.TempDir()
	before, after := filepath.Join(dir, "before.json"), filepath.Join(dir, "after.json")
	mustWrite(t, before, run(t, "lint", "--dsn", d.OwnerDSN, "--format", "json").stdout)
	mustExec(t, d.SuperDSN, "ALTER TABLE public.customers NO FORCE ROW LEVEL SECURITY")
	mustWrite(t, after, run(t, "lint", "--dsn", d.OwnerDSN, "--format", "json").stdout)

	r := run(t, "lint", "--diff", before, after)
	if r.code != 1 || !strings.HasPrefix(r.stdout, "dangerous: 1 finding added, 0 removed\n") {
		t.Errorf("--diff: got %v, want exit 1 and a dangerous change", r)
	}
	if r := run(t, "lint", "--diff", after, before); r.code != 0 || !strings.HasPrefix(r.stdout, "safe: 0 findings added, 1 removed\n") {
		t.Errorf("--diff the other way: got %v, want exit 0 and a safe change", r)
	}
	r = run(t, "lint", "--dsn", d.OwnerDSN, "--fix")
	if r.code != 1 {
		t.Errorf("--fix: got %v, want exit 1", r)
	}
	wantContains(t, "stdout", r.stdout, "-- TS002 error public.customers: ", "\nALTER TABLE public.customers FORCE ROW LEVEL SECURITY;\n")
}
