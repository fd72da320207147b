package lint_test

import (
	"cmp"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	gocmp "github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5"

	"github.com/tenantseal/tenantseal/internal/pgtest"
	"github.com/tenantseal/tenantseal/lint"
)

const fixtures = "testdata/fixtures"

func TestShippedSchemaIsClean(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		dsn  func(*pgtest.Database) string
	}{
		{"as owner", func(d *pgtest.Database) string { return d.OwnerDSN }},
		{"as superuser", func(d *pgtest.Database) string { return d.SuperDSN }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			d := pgtest.NewDatabase(t)
			if fs := mustRun(t, tc.dsn(d), options(d)); len(fs) != 0 {
				t.Errorf("got %d findings, want none:\n%s", len(fs), text(fs))
			}
		})
	}
}

// TestFixtures runs each testdata/fixtures/*.sql in a database of its own: TSnnn*.sql must trigger rule
// TSnnn and no other, clean*.sql nothing. Only the findings that the fixture adds count: those of the
// shipped schema (which TestShippedSchemaIsClean requires to be none) are the baseline. A fixture's
// "-- lint: option value" lines set options (see fixtureOptions). The owner and the superuser must see
// the same findings.
func TestFixtures(t *testing.T) {
	t.Parallel()
	files, err := filepath.Glob(filepath.Join(fixtures, "*.sql"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no fixtures: %v", err)
	}
	for _, file := range files {
		name := strings.TrimSuffix(filepath.Base(file), ".sql")
		want := []string{}
		if id := regexp.MustCompile(`^TS\d{3}`).FindString(name); id != "" {
			want = []string{id}
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			d := pgtest.NewDatabase(t)
			opts := fixtureOptions(t, file, options(d))
			shipped := lint.NewBaseline(shippedFindings(t, d, opts))
			mustFixture(t, d, file)
			asOwner, _ := shipped.Filter(mustRun(t, d.OwnerDSN, opts))
			t.Logf("findings:\n%s", text(asOwner))
			if diff := gocmp.Diff(want, ruleIDs(asOwner)); diff != "" {
				t.Errorf("rules (-want +got):\n%s\nfindings:\n%s", diff, text(asOwner))
			}
			asSuper, _ := shipped.Filter(mustRun(t, d.SuperDSN, opts))
			if diff := gocmp.Diff(asOwner, asSuper); diff != "" {
				t.Errorf("findings as owner (-) and as superuser (+) differ:\n%s", diff)
			}
			for _, f := range asOwner {
				if f.Object == "" || f.Message == "" || f.Fix == "" {
					t.Errorf("finding without object, message or fix: %+v", f)
				}
			}
		})
	}
}

func TestEveryRuleHasFixture(t *testing.T) {
	t.Parallel()
	known := map[string]bool{}
	for _, r := range lint.Rules() {
		known[r.ID] = true
		if _, err := os.Stat(filepath.Join(fixtures, r.ID+".sql")); err != nil {
			t.Errorf("rule %s (%s) has no fixture: %v", r.ID, r.Title, err)
		}
	}
	if got, want := len(known), 31; got != want {
		t.Errorf("got %d rules, want %d", got, want)
	}
	files, _ := filepath.Glob(filepath.Join(fixtures, "*.sql"))
	for _, f := range files {
		base := filepath.Base(f)
		if id := regexp.MustCompile(`^TS\d{3}`).FindString(base); id != "" && !known[id] {
			t.Errorf("fixture %s names unknown rule %s", base, id)
		} else if id == "" && !strings.HasPrefix(base, "clean") {
			t.Errorf("fixture %s: name it TSnnn*.sql or clean*.sql", base)
		}
	}
}

func TestRules(t *testing.T) {
	t.Parallel()
	rules := lint.Rules()
	for i, r := range rules {
		if want := fmt.Sprintf("TS%03d", i+1); r.ID != want {
			t.Errorf("rule %d: got id %s, want %s", i, r.ID, want)
		}
		if r.Severity != lint.SeverityError && r.Severity != lint.SeverityWarning {
			t.Errorf("rule %s: got severity %q, want error or warning", r.ID, r.Severity)
		}
		if r.Title == "" {
			t.Errorf("rule %s has no title", r.ID)
		}
	}
}

// TestAppRole changes the app role itself, which is cluster-wide: every other test's database shares
// it. So it is not parallel: Go finishes the sequential tests, cleanups included, before it releases
// any parallel one, so no other test lints while the role is altered.
func TestAppRole(t *testing.T) {
	d := pgtest.NewDatabase(t)
	super := mustConn(t, d.SuperDSN)
	app := pgx.Identifier{d.Roles.App}.Sanitize()
	owner := pgx.Identifier{d.Roles.Owner}.Sanitize()
	probe := pgx.Identifier{d.Roles.Probe}.Sanitize()
	mid := pgx.Identifier{d.Roles.Owner + "_mid"}.Sanitize()
	for _, tc := range []struct {
		name, setup, undo string
		want              []string
		// atLeast: want must be among the rules found (a superuser holds every privilege, so it trips
		// many more).
		atLeast bool
		object  string // of the TS010 finding; default the app role
	}{
		{name: "superuser", setup: "ALTER ROLE " + app + " SUPERUSER", undo: "ALTER ROLE " + app + " NOSUPERUSER",
			want: []string{"TS010", "TS015"}, atLeast: true},
		{name: "bypassrls", setup: "ALTER ROLE " + app + " BYPASSRLS", undo: "ALTER ROLE " + app + " NOBYPASSRLS", want: []string{"TS010"}},
		{name: "createrole", setup: "ALTER ROLE " + app + " CREATEROLE", undo: "ALTER ROLE " + app + " NOCREATEROLE", want: []string{"TS010"}},
		{name: "member of owner", setup: "GRANT " + owner + " TO " + app, undo: "REVOKE " + owner + " FROM " + app, want: []string{"TS010"}},
		{name: "member of owner through another role",
			setup: "CREATE ROLE " + mid + " NOLOGIN; GRANT " + owner + " TO " + mid + "; GRANT " + mid + " TO " + app,
			undo:  "DROP ROLE " + mid, want: []string{"TS010"}},
		{name: "member of the probe role, which has BYPASSRLS", setup: "GRANT " + probe + " TO " + app,
			undo: "REVOKE " + probe + " FROM " + app, want: []string{"TS010"}},
		{name: "member of a BYPASSRLS role through another role",
			setup: "CREATE ROLE " + mid + " NOLOGIN; GRANT " + probe + " TO " + mid + "; GRANT " + mid + " TO " + app,
			undo:  "DROP ROLE " + mid, want: []string{"TS010"}},
		{name: "member of a superuser role", setup: "CREATE ROLE " + mid + " NOLOGIN SUPERUSER; GRANT " + mid + " TO " + app,
			undo: "DROP ROLE " + mid, want: []string{"TS010"}},
		{name: "member of a role that owns a tenant table",
			setup: "CREATE ROLE " + mid + " NOLOGIN; ALTER TABLE public.customers OWNER TO " + mid + "; GRANT " + mid + " TO " + app,
			undo:  "ALTER TABLE public.customers OWNER TO " + owner + "; DROP ROLE " + mid, want: []string{"TS010"}},
		{name: "owner with BYPASSRLS", setup: "ALTER ROLE " + owner + " BYPASSRLS", undo: "ALTER ROLE " + owner + " NOBYPASSRLS",
			want: []string{"TS010"}, object: d.Roles.Owner},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mustExec(t, super, tc.setup)
			t.Cleanup(func() { mustExec(t, super, tc.undo) })
			fs := mustRun(t, d.OwnerDSN, options(d))
			got := ruleIDs(fs)
			if tc.atLeast {
				got = slices.DeleteFunc(got, func(id string) bool { return !slices.Contains(tc.want, id) })
			}
			if diff := gocmp.Diff(tc.want, got); diff != "" {
				t.Errorf("rules (-want +got):\n%s\nfindings:\n%s", diff, text(fs))
			}
			object := cmp.Or(tc.object, d.Roles.App)
			for _, f := range fs {
				if f.Rule == "TS010" && f.Object != object {
					t.Errorf("TS010 object: got %q, want %q", f.Object, object)
				}
			}
		})
	}
	if fs := mustRun(t, d.OwnerDSN, options(d)); len(fs) != 0 {
		t.Errorf("after undoing every change: got %d findings, want none:\n%s", len(fs), text(fs))
	}
}

func TestOptions(t *testing.T) {
	t.Parallel()
	const orgs = `SET ROLE {{owner}};
		CREATE SCHEMA orgs;
		CREATE TABLE orgs.docs (org_id uuid NOT NULL, id uuid NOT NULL, PRIMARY KEY (org_id, id));
		ALTER TABLE orgs.docs ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
		CREATE POLICY docs_rw ON orgs.docs TO {{app}}
		    USING (org_id = (SELECT tenantseal.current_tenant())) WITH CHECK (org_id = (SELECT tenantseal.current_tenant()));
		GRANT SELECT, INSERT, UPDATE, DELETE ON orgs.docs TO {{app}};`
	// deals is keyed by org_id, a bigint, under tenantseal's key verifier; the tenant column is named for
	// this table only (Options.TenantColumns).
	const deals = `SET ROLE {{owner}};
		CREATE TABLE public.deals (org_id bigint NOT NULL, id bigint NOT NULL, PRIMARY KEY (org_id, id));
		ALTER TABLE public.deals ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
		CREATE POLICY deals_rw ON public.deals TO {{app}}
		    USING (org_id = (SELECT tenantseal.current_tenant_key()::bigint))
		    WITH CHECK (org_id = (SELECT tenantseal.current_tenant_key()::bigint));
		GRANT SELECT, INSERT, UPDATE, DELETE ON public.deals TO {{app}};`
	const other = `SET ROLE {{owner}};
		CREATE SCHEMA other;
		CREATE TABLE other.notes (tenant_id uuid NOT NULL, id uuid NOT NULL, PRIMARY KEY (tenant_id, id));
		GRANT SELECT ON other.notes TO {{app}};`
	for _, tc := range []struct {
		name    string
		fixture string // file under testdata/fixtures, or inline SQL
		opts    func(*lint.Options)
		want    []string
	}{
		{"global table listed", "TS015.sql", func(o *lint.Options) { o.GlobalTables = []string{"public.plans"} }, []string{}},
		{"global table not listed", "TS015.sql", func(o *lint.Options) { o.GlobalTables = []string{"public.other"} }, []string{"TS015"}},
		{"schema not checked", other, func(o *lint.Options) { o.Schemas = []string{"public"} }, []string{}},
		{"schema checked by default", other, func(o *lint.Options) {}, []string{"TS001"}},
		{"tenant column", orgs, func(o *lint.Options) { o.TenantColumn, o.Schemas = "org_id", []string{"orgs"} }, []string{}},
		{"tenant column of one table", deals, func(o *lint.Options) { o.TenantColumns = map[string]string{"public.deals": "org_id"} }, []string{}},
		// Without the override, deals is a table without a tenant column that the app role may use.
		{"tenant column of one table not named", deals, func(o *lint.Options) {}, []string{"TS015"}},
		// A database migrated before tenantseal recorded tenant columns.
		{"no tenantseal.tenant_tables", "SET ROLE {{owner}}; DROP TABLE tenantseal.tenant_tables;", func(o *lint.Options) {}, []string{}},
		{"global table beside tables of other tenant columns", "TS015_unrecorded.sql", func(o *lint.Options) { o.GlobalTables = []string{"public.invoices_2019"} }, []string{}},
		{"tenant function with signature", "", func(o *lint.Options) { o.TenantFunction = "tenantseal.current_tenant()" }, []string{}},
		{"tenant function that policies do not call", "", func(o *lint.Options) { o.TenantFunction = "tenantseal.current_subject" },
			// current_tenant is then just another function, and not leakproof.
			[]string{"TS005", "TS014"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			d := pgtest.NewDatabase(t)
			switch {
			case strings.HasSuffix(tc.fixture, ".sql"):
				mustFixture(t, d, filepath.Join(fixtures, tc.fixture))
			case tc.fixture != "":
				tmp := filepath.Join(t.TempDir(), "fixture.sql")
				if err := os.WriteFile(tmp, []byte(tc.fixture), 0o600); err != nil {
					t.Fatal(err)
				}
				mustFixture(t, d, tmp)
			}
			opts := options(d)
			tc.opts(&opts)
			fs := mustRun(t, d.OwnerDSN, opts)
			if diff := gocmp.Diff(tc.want, ruleIDs(fs)); diff != "" {
				t.Errorf("rules (-want +got):\n%s\nfindings:\n%s", diff, text(fs))
			}
		})
	}
}

func TestOptionErrors(t *testing.T) {
	t.Parallel()
	d := pgtest.NewDatabase(t)
	conn := mustConn(t, d.OwnerDSN)
	mustExec(t, mustConn(t, d.SuperDSN), `CREATE SCHEMA orgs;
		CREATE TABLE orgs.docs (org_id uuid NOT NULL, id uuid NOT NULL, PRIMARY KEY (org_id, id))`)
	for _, tc := range []struct {
		name string
		opts lint.Options
	}{
		{"no app role", lint.Options{OwnerRole: d.Roles.Owner}},
		{"unknown schema", lint.Options{AppRole: d.Roles.App, OwnerRole: d.Roles.Owner, Schemas: []string{"public", "pubic"}}},
		{"tenant column that no table has", lint.Options{AppRole: d.Roles.App, OwnerRole: d.Roles.Owner, Schemas: []string{"orgs"}}},
		{"registry that is not a table", lint.Options{AppRole: d.Roles.App, OwnerRole: d.Roles.Owner, Registry: "public.accounts"}},
		{"no owner role", lint.Options{AppRole: d.Roles.App}},
		{"unknown app role", lint.Options{AppRole: "nobody_here", OwnerRole: d.Roles.Owner}},
		{"unknown tenant function", lint.Options{AppRole: d.Roles.App, OwnerRole: d.Roles.Owner, TenantFunction: "tenantseal.nothing"}},
		{"tenant column of a table that does not exist", lint.Options{AppRole: d.Roles.App, OwnerRole: d.Roles.Owner,
			TenantColumns: map[string]string{"public.nothing": "org_id"}}},
		{"tenant column that the table does not have", lint.Options{AppRole: d.Roles.App, OwnerRole: d.Roles.Owner,
			TenantColumns: map[string]string{"orgs.docs": "account_id"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// Not parallel: the subtests share conn.
			fs, err := lint.Run(testContext(t), conn, tc.opts)
			if !errors.Is(err, lint.ErrOptions) {
				t.Errorf("got %v, %d findings, want ErrOptions", err, len(fs))
			}
		})
	}
}
