package adopt_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/tenantseal/tenantseal/adopt"
	"github.com/tenantseal/tenantseal/internal/pgtest"
)

// TestRefusals: each case is a schema adopt must refuse, with what the refusal says. A sibling schema
// that differs only in the flaw is adopted without refusal, so no case passes for another reason.
func TestRefusals(t *testing.T) {
	t.Parallel()
	d := pgtest.NewDatabase(t)
	c := pgtest.Conn(t, d.OwnerDSN)
	const base = `
CREATE SCHEMA %[1]s;
CREATE TABLE %[1]s.accounts (id bigint PRIMARY KEY, name text);
INSERT INTO %[1]s.accounts VALUES (1, 'one'), (2, 'two');
CREATE TABLE %[1]s.projects (id bigint PRIMARY KEY, account_id bigint NOT NULL);
INSERT INTO %[1]s.projects VALUES (10, 1), (20, 2);
`
	for i, tc := range []struct {
		name  string
		flaw  string // SQL that makes schema %[1]s unadoptable
		fixed string // the same schema without the flaw
		table string
		want  []string
	}{
		{
			name:  "nullable tenant column with NULL rows",
			flaw:  "CREATE TABLE %[1]s.notes (id int PRIMARY KEY, account_id bigint); INSERT INTO %[1]s.notes VALUES (1, 1), (2, NULL), (3, NULL)",
			fixed: "CREATE TABLE %[1]s.notes (id int PRIMARY KEY, account_id bigint); INSERT INTO %[1]s.notes VALUES (1, 1)",
			table: "notes", want: []string{"tenant column account_id is nullable and 2 rows hold NULL"},
		},
		{
			name: "foreign key to another tenant's row",
			flaw: `CREATE TABLE %[1]s.tasks (id int PRIMARY KEY, account_id bigint NOT NULL, project_id bigint REFERENCES %[1]s.projects (id));
				INSERT INTO %[1]s.tasks VALUES (1, 1, 10), (2, 1, 20), (3, 2, 20)`,
			fixed: `CREATE TABLE %[1]s.tasks (id int PRIMARY KEY, account_id bigint NOT NULL, project_id bigint REFERENCES %[1]s.projects (id));
				INSERT INTO %[1]s.tasks VALUES (1, 1, 10), (3, 2, 20)`,
			table: "tasks", want: []string{"foreign key tasks_project_id_fkey", "1 row points at another tenant's row", "(project_id)=(20) of tenant 1 points at a row of tenant 2"},
		},
		{
			name: "foreign key to another tenant's row, seen through a backfilled parent",
			flaw: `CREATE TABLE %[1]s.steps (id int PRIMARY KEY, project_id bigint NOT NULL REFERENCES %[1]s.projects (id));
				CREATE TABLE %[1]s.checks (id int PRIMARY KEY, account_id bigint NOT NULL, step_id int NOT NULL REFERENCES %[1]s.steps (id));
				INSERT INTO %[1]s.steps VALUES (1, 10), (2, 20); INSERT INTO %[1]s.checks VALUES (1, 1, 1), (2, 1, 2)`,
			fixed: `CREATE TABLE %[1]s.steps (id int PRIMARY KEY, project_id bigint NOT NULL REFERENCES %[1]s.projects (id));
				CREATE TABLE %[1]s.checks (id int PRIMARY KEY, account_id bigint NOT NULL, step_id int NOT NULL REFERENCES %[1]s.steps (id));
				INSERT INTO %[1]s.steps VALUES (1, 10), (2, 20); INSERT INTO %[1]s.checks VALUES (1, 1, 1), (2, 2, 2)`,
			table: "checks", want: []string{"foreign key checks_step_id_fkey", "(step_id)=(2) of tenant 1 points at a row of tenant 2"},
		},
		{
			name:  "no path to a tenant",
			flaw:  "CREATE TABLE %[1]s.settings (key text PRIMARY KEY, value text)",
			fixed: "CREATE TABLE %[1]s.settings (key text PRIMARY KEY, value text)",
			table: "settings", want: []string{"no tenant column account_id and no foreign key path to a tenant table", "declare it global"},
		},
		{
			name:  "backfill through a NULL reference",
			flaw:  "CREATE TABLE %[1]s.files (id int PRIMARY KEY, project_id bigint REFERENCES %[1]s.projects (id)); INSERT INTO %[1]s.files VALUES (1, 10), (2, NULL)",
			fixed: "CREATE TABLE %[1]s.files (id int PRIMARY KEY, project_id bigint REFERENCES %[1]s.projects (id)); INSERT INTO %[1]s.files VALUES (1, 10)",
			table: "files", want: []string{"through foreign key files_project_id_fkey", "1 row holds NULL there"},
		},
		{
			name:  "unsupported tenant column type",
			flaw:  "CREATE TABLE %[1]s.logs (id int PRIMARY KEY, account_id numeric NOT NULL)",
			fixed: "CREATE TABLE %[1]s.logs (id int PRIMARY KEY, account_id integer NOT NULL)",
			table: "logs", want: []string{"tenant column account_id is numeric", "uuid, bigint, integer, text or varchar"},
		},
		{
			name:  "tenant column of another family than the registry key",
			flaw:  "CREATE TABLE %[1]s.logs (id int PRIMARY KEY, account_id uuid NOT NULL)",
			fixed: "CREATE TABLE %[1]s.logs (id int PRIMARY KEY, account_id bigint NOT NULL)",
			table: "logs", want: []string{"tenant column account_id is uuid, but the registry's key id is bigint"},
		},
		{
			name:  "integer tenant column for bigint keys, used by a view",
			flaw:  "CREATE TABLE %[1]s.logs (id int PRIMARY KEY, account_id int NOT NULL); CREATE VIEW %[1]s.recent AS SELECT account_id FROM %[1]s.logs",
			fixed: "CREATE TABLE %[1]s.logs (id int PRIMARY KEY, account_id int NOT NULL); CREATE VIEW %[1]s.recent AS SELECT id FROM %[1]s.logs",
			table: "logs", want: []string{".recent), so adopt cannot widen it", "widen it to bigint yourself first"},
		},
		{
			name:  "permissive policy of its own",
			flaw:  "CREATE TABLE %[1]s.logs (id int PRIMARY KEY, account_id int NOT NULL); CREATE POLICY logs_all ON %[1]s.logs USING (true)",
			fixed: "CREATE TABLE %[1]s.logs (id int PRIMARY KEY, account_id int NOT NULL); CREATE POLICY logs_all ON %[1]s.logs AS RESTRICTIVE USING (true)",
			table: "logs", want: []string{"permissive policies logs_all", "AS RESTRICTIVE"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			flawed, fixed := fmt.Sprintf("r%d", i), fmt.Sprintf("r%d_fixed", i)
			decl := func(schema string) adopt.Declaration {
				d := adopt.Declaration{Schemas: []string{schema}, TenantColumn: "account_id",
					Registry: &adopt.Registry{Table: schema + ".accounts"}}
				if tc.name == "no path to a tenant" && schema == fixed {
					d.Global = []string{"settings"}
				}
				return d
			}
			mustExec(t, c, fmt.Sprintf(base+tc.flaw, flawed))
			mustExec(t, c, fmt.Sprintf(base+tc.fixed, fixed))

			_, err := adopt.Generate(t.Context(), c, adopt.Options{Declaration: decl(flawed)})
			var re *adopt.RefusalError
			if !errors.As(err, &re) {
				t.Fatalf("got %v, want a *RefusalError", err)
			}
			if len(re.Refusals) != 1 || re.Refusals[0].Table != flawed+"."+tc.table {
				t.Fatalf("got refusals %+v, want one of %s.%s", re.Refusals, flawed, tc.table)
			}
			for _, w := range tc.want {
				if !strings.Contains(re.Refusals[0].Reason, w) {
					t.Errorf("got reason %q, want it to contain %q", re.Refusals[0].Reason, w)
				}
			}
			if msg := err.Error(); !strings.HasPrefix(msg, "adopt: refused, nothing generated: "+flawed+"."+tc.table+": ") {
				t.Errorf("got message %q", msg)
			}
			if _, err := adopt.Generate(t.Context(), c, adopt.Options{Declaration: decl(fixed)}); err != nil {
				t.Errorf("the same schema without the flaw: got %v, want a plan", err)
			}
		})
	}
}

func TestDeclarationErrors(t *testing.T) {
	t.Parallel()
	_, c := mustDatabase(t, shopSchema)
	for _, tc := range []struct {
		name string
		edit func(*adopt.Declaration)
		want string
	}{
		{"missing registry", func(d *adopt.Declaration) { d.Registry.Table = "shop.firms" }, "registry shop.firms: no such table in schema shop"},
		{"missing key", func(d *adopt.Declaration) { d.Registry.Key = "uid" }, "registry shop.companies has no key column uid"},
		{"missing name", func(d *adopt.Declaration) { d.Registry.Name = "title" }, "registry shop.companies has no name column title"},
		{"missing global", func(d *adopt.Declaration) { d.Global = append(d.Global, "plan_items") }, "global table shop.plan_items: no such table"},
		{"missing excluded", func(d *adopt.Declaration) { d.Exclude = []string{"public.schema_migrations"} }, "excluded table public.schema_migrations: no such table in schema shop"},
		{"both global and excluded", func(d *adopt.Declaration) { d.Exclude = append(d.Exclude, "shop.plans") }, "shop.plans is both global table and excluded table"},
		{"tenantseal's schema", func(d *adopt.Declaration) { d.Schemas = []string{"tenantseal"} }, `schema "tenantseal" is not the application's`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := shopDeclaration()
			tc.edit(&d)
			_, err := adopt.Generate(t.Context(), c, adopt.Options{Declaration: d})
			if !errors.Is(err, adopt.ErrDeclaration) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %v, want ErrDeclaration saying %q", err, tc.want)
			}
		})
	}
}

func TestParseDeclaration(t *testing.T) {
	t.Parallel()
	d, err := adopt.ParseDeclaration(strings.NewReader(`{
		"schemas": ["shop"], "tenant_column": "company_id", "tenant_columns": {"billing": "account_id"},
		"registry": {"table": "shop.companies", "key": "id", "name": "name"},
		"global": ["shop.plans"], "exclude": ["schema_migrations"]}`))
	if err != nil {
		t.Fatal(err)
	}
	want := adopt.Declaration{Schemas: []string{"shop"}, TenantColumn: "company_id", TenantColumns: map[string]string{"billing": "account_id"},
		Registry: &adopt.Registry{Table: "shop.companies", Key: "id", Name: "name"}, Global: []string{"shop.plans"}, Exclude: []string{"schema_migrations"}}
	if diff := cmp.Diff(want, d); diff != "" {
		t.Errorf("declaration (-want +got):\n%s", diff)
	}
	for _, bad := range []string{
		`{"tenant_colum": "x"}`,
		`{"schemas": ["a.b"]}`,
		`{"global": ["a.b.c"]}`,
		`{"global": ["x"], "exclude": ["x"]}`,
		`{"registry": {"table": ""}}`,
		`{} {}`,
		`[`,
	} {
		if _, err := adopt.ParseDeclaration(strings.NewReader(bad)); !errors.Is(err, adopt.ErrDeclaration) {
			t.Errorf("ParseDeclaration(%s): got %v, want ErrDeclaration", bad, err)
		}
	}
}

func TestParseRegistry(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]adopt.Registry{
		"public.companies(id)":     {Table: "public.companies", Key: "id"},
		" accounts ( tenant_id ) ": {Table: "accounts", Key: "tenant_id"},
		"public.companies":         {Table: "public.companies"},
	} {
		got, err := adopt.ParseRegistry(in)
		if err != nil || got != want {
			t.Errorf("ParseRegistry(%q): got %+v, %v; want %+v", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "companies(id", "companies()", "a(b)(c)"} {
		if _, err := adopt.ParseRegistry(bad); !errors.Is(err, adopt.ErrDeclaration) {
			t.Errorf("ParseRegistry(%q): got %v, want ErrDeclaration", bad, err)
		}
	}
}

// TestRefusesRegistryBesideOtherTenants: tenantseal has uuid tenants already, which a registry of bigint
// keys cannot join; and a text registry whose keys are no tenant keys.
func TestRefusesRegistryBesideOtherTenants(t *testing.T) {
	t.Parallel()
	_, c := mustDatabase(t, `
CREATE SCHEMA crm;
CREATE TABLE crm.accounts (id bigint PRIMARY KEY);
CREATE TABLE crm.orgs (slug text PRIMARY KEY);
INSERT INTO crm.orgs VALUES ('good'), (E'bad\ttab');`)
	decl := adopt.Declaration{Schemas: []string{"crm"}, Exclude: []string{"crm.orgs"}, Registry: &adopt.Registry{Table: "crm.accounts"}}
	if _, err := adopt.Generate(t.Context(), c, adopt.Options{Declaration: decl}); err != nil {
		t.Fatalf("without other tenants: %v", err)
	}
	orgs := adopt.Declaration{Schemas: []string{"crm"}, Exclude: []string{"crm.accounts"}, Registry: &adopt.Registry{Table: "crm.orgs", Key: "slug"}}
	_, err := adopt.Generate(t.Context(), c, adopt.Options{Declaration: orgs})
	var re *adopt.RefusalError
	if !errors.As(err, &re) || !strings.Contains(err.Error(), "crm.orgs: 1 row's key is no tenant key, e.g. a tenant key has no control characters: bad") {
		t.Errorf("a text registry with a control character in a key: got %v", err)
	}

	mustExec(t, c, "INSERT INTO tenantseal.tenants (name) VALUES ('before')")
	_, err = adopt.Generate(t.Context(), c, adopt.Options{Declaration: decl})
	if !errors.As(err, &re) || !strings.Contains(err.Error(), "crm.accounts: tenantseal already has 1 tenant whose keys are not bigint, e.g. ") {
		t.Errorf("beside a uuid tenant: got %v", err)
	}
}
