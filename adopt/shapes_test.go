package adopt_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/tenantseal/tenantseal/adopt"
	"github.com/tenantseal/tenantseal/internal/pgtest"
	"github.com/tenantseal/tenantseal/isolation"
	"github.com/tenantseal/tenantseal/lint"
)

// realShape is an application schema of a shape real multi-tenant applications have, as it exists
// before tenantseal, and its declaration.
type realShape struct {
	name   string
	schema string
	sql    string // creates and fills it, as the owner
	decl   adopt.Declaration
	runs   int // clean isolation runs required
	hints  map[string]isolation.TableHint
}

var realShapes = []realShape{
	{
		// A Java sample: uuid tenants, whose registry's key is itself named tenant_id.
		name: "uuid registry keyed tenant_id", schema: "java", runs: 1,
		sql: `CREATE SCHEMA java;
CREATE TABLE java.tenants (tenant_id uuid PRIMARY KEY DEFAULT gen_random_uuid(), name text NOT NULL);
CREATE TABLE java.customers (id uuid PRIMARY KEY DEFAULT gen_random_uuid(), tenant_id uuid NOT NULL REFERENCES java.tenants (tenant_id), name text NOT NULL);
CREATE TABLE java.orders (id uuid PRIMARY KEY DEFAULT gen_random_uuid(), tenant_id uuid NOT NULL REFERENCES java.tenants (tenant_id),
    customer_id uuid NOT NULL REFERENCES java.customers (id), total numeric(10,2) NOT NULL CHECK (total >= 0),
    status text NOT NULL CHECK (status IN ('open', 'paid')));
INSERT INTO java.tenants (tenant_id, name) VALUES ('3f2504e0-4f89-41d3-9a0c-0305e82c3301', 'acme'), ('6ba7b810-9dad-41d1-80b4-00c04fd430c8', 'globex');
INSERT INTO java.customers (tenant_id, name) SELECT tenant_id, name || ' customer' FROM java.tenants;
INSERT INTO java.orders (tenant_id, customer_id, total, status) SELECT tenant_id, id, 10, 'open' FROM java.customers;`,
		decl: adopt.Declaration{Schemas: []string{"java"}, TenantColumn: "tenant_id",
			Registry: &adopt.Registry{Table: "java.tenants", Key: "tenant_id", Name: "name"}},
	},
	{
		// A Rails application: bigint company_id, no foreign keys, Rails' own tables beside.
		name: "bigint tenant column without foreign keys", schema: "rails", runs: 1,
		sql: `CREATE SCHEMA rails;
CREATE TABLE rails.companies (id bigserial PRIMARY KEY, name varchar NOT NULL);
CREATE TABLE rails.users (id bigserial PRIMARY KEY, company_id bigint NOT NULL, email varchar NOT NULL,
    role varchar NOT NULL DEFAULT 'member', created_at timestamp(6) NOT NULL DEFAULT now());
CREATE UNIQUE INDEX index_users_on_email ON rails.users (email);
CREATE TABLE rails.projects (id bigserial PRIMARY KEY, company_id bigint NOT NULL, name varchar NOT NULL, archived boolean NOT NULL DEFAULT false);
CREATE INDEX index_projects_on_company_id ON rails.projects (company_id);
CREATE TABLE rails.schema_migrations (version varchar PRIMARY KEY);
CREATE TABLE rails.ar_internal_metadata (key varchar PRIMARY KEY, value varchar);
INSERT INTO rails.companies (name) VALUES ('acme'), ('globex');
INSERT INTO rails.users (company_id, email) VALUES (1, 'a@acme.test'), (2, 'b@globex.test');
INSERT INTO rails.projects (company_id, name) VALUES (1, 'rocket'), (2, 'dome');`,
		decl: adopt.Declaration{Schemas: []string{"rails"}, TenantColumn: "company_id",
			Registry: &adopt.Registry{Table: "rails.companies", Key: "id", Name: "name"},
			Exclude:  []string{"rails.schema_migrations", "rails.ar_internal_metadata"}},
	},
	{
		// A Go application: integer tenant_id, partial unique indexes, a join table, a 1:1 table keyed by
		// the tenant column, a partitioned table, a materialized view.
		name: "integer tenant column with partitions", schema: "goapp", runs: 20,
		sql: `CREATE SCHEMA goapp;
CREATE TABLE goapp.tenants (id serial PRIMARY KEY, name text NOT NULL UNIQUE);
CREATE TABLE goapp.users (id serial PRIMARY KEY, tenant_id integer NOT NULL REFERENCES goapp.tenants, email text NOT NULL, deleted_at timestamptz);
CREATE UNIQUE INDEX users_email_live ON goapp.users (tenant_id, email) WHERE deleted_at IS NULL;
CREATE TABLE goapp.teams (id serial PRIMARY KEY, tenant_id integer NOT NULL REFERENCES goapp.tenants, name text NOT NULL);
CREATE TABLE goapp.team_members (team_id integer NOT NULL REFERENCES goapp.teams, user_id integer NOT NULL REFERENCES goapp.users,
    PRIMARY KEY (team_id, user_id));
CREATE TABLE goapp.billing (tenant_id integer PRIMARY KEY REFERENCES goapp.tenants, plan text NOT NULL CHECK (plan IN ('free', 'pro')));
CREATE TABLE goapp.events (tenant_id integer NOT NULL, id bigint GENERATED ALWAYS AS IDENTITY, at date NOT NULL, kind text NOT NULL,
    PRIMARY KEY (tenant_id, id, at)) PARTITION BY RANGE (at);
CREATE TABLE goapp.events_2026 PARTITION OF goapp.events FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');
CREATE TABLE goapp.events_2027 PARTITION OF goapp.events FOR VALUES FROM ('2027-01-01') TO ('2028-01-01');
INSERT INTO goapp.tenants (name) VALUES ('acme'), ('globex');
INSERT INTO goapp.users (tenant_id, email) VALUES (1, 'a@acme.test'), (2, 'b@globex.test');
INSERT INTO goapp.teams (tenant_id, name) VALUES (1, 'ops'), (2, 'dev');
INSERT INTO goapp.team_members VALUES (1, 1), (2, 2);
INSERT INTO goapp.billing VALUES (1, 'free'), (2, 'pro');
INSERT INTO goapp.events (tenant_id, at, kind) VALUES (1, '2026-03-01', 'login'), (2, '2027-03-01', 'login');
CREATE MATERIALIZED VIEW goapp.user_counts AS SELECT tenant_id, count(*) AS n FROM goapp.users GROUP BY tenant_id;`,
		decl: adopt.Declaration{Schemas: []string{"goapp"}, TenantColumn: "tenant_id",
			Registry: &adopt.Registry{Table: "goapp.tenants", Key: "id", Name: "name"}},
	},
}

// adopted is one real shape after adopt and migrate up.
type adopted struct {
	sh realShape
	d  *pgtest.Database
	c  *pgx.Conn // the owner's
}

func adoptShape(t *testing.T, sh realShape) *adopted {
	t.Helper()
	d := pgtest.NewDatabase(t)
	ctx := pgtest.Context(t)
	c := pgtest.Conn(t, d.OwnerDSN)
	if _, err := c.Exec(ctx, sh.sql); err != nil {
		t.Fatal(err)
	}
	tx, err := c.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		t.Fatal(err)
	}
	p, err := adopt.Generate(ctx, tx, adopt.Options{Declaration: sh.decl})
	tx.Rollback(ctx)
	if err != nil {
		t.Fatalf("adopt: %v", err)
	}
	dir := t.TempDir()
	if _, err := p.Write(dir, ""); err != nil {
		t.Fatal(err)
	}
	if err := mustMigrator(t, d.OwnerDSN, dir).Up(); err != nil {
		t.Fatalf("migrate up: %v\n%s", err, p.UpSQL())
	}
	return &adopted{sh: sh, d: d, c: c}
}

func (a *adopted) lint(t *testing.T) []lint.Finding {
	t.Helper()
	findings, err := lint.Run(pgtest.Context(t), a.c, lint.Options{AppRole: a.d.Roles.App, OwnerRole: a.d.Roles.Owner,
		TenantColumn: a.sh.decl.TenantColumn, Schemas: a.sh.decl.Schemas, Registry: a.sh.decl.Registry.Table})
	if err != nil {
		t.Fatal(err)
	}
	var errs []lint.Finding
	for _, f := range findings {
		if f.Severity == lint.SeverityError {
			errs = append(errs, f)
		}
	}
	return errs
}

func (a *adopted) isolation(t *testing.T) *isolation.Report {
	t.Helper()
	excl := map[string]string{}
	for _, e := range a.sh.decl.Exclude {
		excl[e] = "declared excluded: the framework's own bookkeeping"
	}
	rep, err := isolation.Check(pgtest.Context(t), isolation.Config{SuperDSN: a.d.SuperDSN, AppDSN: a.d.AppDSN,
		ContextKey: a.d.ContextKey, TenantColumn: a.sh.decl.TenantColumn, Schemas: a.sh.decl.Schemas, Short: true, Exclude: excl,
		Hints: a.sh.hints})
	if err != nil {
		t.Fatalf("isolation: %v", err)
	}
	return rep
}

func describe(rep *isolation.Report) string {
	var b strings.Builder
	rep.WriteText(&b)
	return b.String()
}

// Three schemas nobody here wrote the shape of: adopt, migrate up, and then lint finds no error and the
// isolation suite nothing, run after run.
func TestRealShapesAdoptCleanly(t *testing.T) {
	t.Parallel()
	for _, sh := range realShapes {
		t.Run(sh.name, func(t *testing.T) {
			t.Parallel()
			a := adoptShape(t, sh)
			for _, f := range a.lint(t) {
				t.Errorf("lint on the adopted schema: %s %s: %s", f.Rule, f.Object, f.Message)
			}
			for i := range sh.runs {
				rep := a.isolation(t)
				if !rep.OK() || len(rep.Leaks()) > 0 {
					t.Fatalf("isolation run %d of %d on the adopted schema:\n%s", i+1, sh.runs, describe(rep))
				}
			}
		})
	}
}

// The ways a real schema breaks after adoption, each reported by name: by the linter (a rule) and by
// the isolation suite (a leak naming the object).
func TestRealShapeBreaksAreReported(t *testing.T) {
	t.Parallel()
	sh := realShapes[2]
	for _, br := range []struct {
		name   string
		sql    string // run as the superuser; %[1]s is the app role
		rule   string // the lint rule that reports it
		target string // what the isolation suite's leak names
	}{
		{"a policy that admits every row",
			`DROP POLICY users_select ON goapp.users; CREATE POLICY users_select ON goapp.users FOR SELECT TO %[1]s USING (true)`,
			"TS005", "goapp.users"},
		{"a partition read directly",
			`GRANT SELECT ON goapp.events_2026 TO %[1]s; ALTER TABLE goapp.events_2026 NO FORCE ROW LEVEL SECURITY; ALTER TABLE goapp.events_2026 DISABLE ROW LEVEL SECURITY`,
			"TS001", "goapp.events_2026"},
		{"a SECURITY DEFINER function that reads other tenants' rows",
			`CREATE FUNCTION goapp.email_of(uid bigint) RETURNS text LANGUAGE sql STABLE SECURITY DEFINER AS 'SELECT email FROM goapp.users WHERE id = uid';
			 GRANT EXECUTE ON FUNCTION goapp.email_of(bigint) TO %[1]s`,
			"TS021", "goapp.email_of"},
		{"a policy that trusts a client setting",
			`DROP POLICY teams_select ON goapp.teams; CREATE POLICY teams_select ON goapp.teams FOR SELECT TO %[1]s
			 USING (tenant_id = nullif(current_setting('app.tenant_id', true), '')::int)`,
			"TS005", "goapp.teams"},
		// (goapp.user_counts, the owner's, is empty once refreshed: forced row-level security holds for
		// its owner too. One the superuser owns is not.)
		{"a materialized view of every tenant",
			`CREATE MATERIALIZED VIEW goapp.all_emails AS SELECT tenant_id, email FROM goapp.users; GRANT SELECT ON goapp.all_emails TO %[1]s`,
			"TS012", "goapp.all_emails"},
		{"a table without row-level security",
			`CREATE TABLE goapp.user_copies (tenant_id integer NOT NULL, email text); INSERT INTO goapp.user_copies SELECT tenant_id, email FROM goapp.users;
			 GRANT SELECT ON goapp.user_copies TO %[1]s`,
			"TS001", "goapp.user_copies"},
	} {
		t.Run(br.name, func(t *testing.T) {
			t.Parallel()
			a := adoptShape(t, sh)
			if _, err := pgtest.Conn(t, a.d.SuperDSN).Exec(pgtest.Context(t), fmt.Sprintf(br.sql, pgx.Identifier{a.d.Roles.App}.Sanitize())); err != nil {
				t.Fatal(err)
			}
			{
				var rules []string
				found := false
				for _, f := range a.lint(t) {
					rules = append(rules, f.Rule+" "+f.Object)
					found = found || f.Rule == br.rule && strings.Contains(f.Object+" "+f.Message, br.target)
				}
				if !found {
					t.Errorf("lint: got %v, want %s on %s", rules, br.rule, br.target)
				}
			}
			rep := a.isolation(t)
			found := false
			for _, r := range rep.Leaks() {
				found = found || strings.Contains(r.Target, br.target)
			}
			if !found {
				t.Errorf("isolation: no leak names %s:\n%s", br.target, describe(rep))
			}
		})
	}
}
