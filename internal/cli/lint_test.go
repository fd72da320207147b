package cli_test

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

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
