package adopt_test

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/tenantseal/tenantseal/adopt"
)

func TestGenerateShop(t *testing.T) {
	t.Parallel()
	_, c := mustDatabase(t, shopSchema)
	p := mustGenerate(t, c, shopDeclaration())

	want := []string{
		"widen-tenant-column shop.tasks",
		"add-tenant-column shop.comments",
		"add-tenant-column shop.project_members",
		"set-not-null shop.users",
		"drop-foreign-key shop.comments",
		"drop-foreign-key shop.project_members",
		"drop-foreign-key shop.project_members",
		"drop-foreign-key shop.projects",
		"drop-foreign-key shop.tasks",
		"tenant-key shop.comments",
		"tenant-key shop.project_members",
		"tenant-key shop.projects",
		"tenant-key shop.projects",
		"tenant-key shop.tasks",
		"tenant-key shop.users",
		"tenant-key shop.companies",
		"tenant-index shop.users",
		"tenant-index shop.projects",
		"tenant-index shop.users",
		"pair-foreign-key shop.comments",
		"pair-foreign-key shop.project_members",
		"pair-foreign-key shop.project_members",
		"pair-foreign-key shop.projects",
		"pair-foreign-key shop.tasks",
		"lookup-index shop.comments",
		"lookup-index shop.project_members",
		"lookup-index shop.tasks",
		"adopt-registry shop.companies",
		"protect-table shop.companies",
		"protect-table shop.billing",
		"protect-table shop.comments",
		"protect-table shop.project_members",
		"protect-table shop.projects",
		"protect-table shop.tasks",
		"protect-table shop.users",
		"grant shop",
		"grant shop.plans",
		"grant shop.comments",
		"grant shop.projects",
		"grant shop.users",
	}
	if diff := cmp.Diff(want, kinds(p)); diff != "" {
		t.Errorf("changes (-want +got):\n%s", diff)
	}

	up, down := p.UpSQL(), p.DownSQL()
	for _, w := range []string{
		// An integer tenant column holds no bigint key: widened.
		`ALTER TABLE "shop"."tasks" ALTER COLUMN "company_id" TYPE bigint;`,
		// The backfill: added, filled from the parent, then NOT NULL; of the parent's type once widened.
		`ALTER TABLE "shop"."comments" ADD COLUMN "company_id" bigint;` + "\n" +
			`UPDATE "shop"."comments" c SET "company_id" = p."company_id" FROM "shop"."tasks" p WHERE p."id" = c."task_id";` + "\n" +
			`ALTER TABLE "shop"."comments" ALTER COLUMN "company_id" SET NOT NULL;`,
		`ALTER TABLE "shop"."users" ALTER COLUMN "company_id" SET NOT NULL;`,
		// The registry's unique name stays unique, on an index no query of the app role can use.
		`CREATE UNIQUE INDEX "companies_name_key" ON "shop"."companies" (tenantseal.opaque_key("name"::text));`,
		// A one-column primary key becomes (tenant, id): a duplicate id would tell of another tenant's row.
		`ALTER TABLE "shop"."users" ADD CONSTRAINT "users_pkey" PRIMARY KEY ("company_id", id);`,
		// A partial unique index becomes unique per tenant and stays partial.
		`CREATE UNIQUE INDEX users_email ON shop.users USING btree ("company_id", email) WHERE (deleted_at IS NULL);`,
		`ALTER TABLE "shop"."projects" ADD CONSTRAINT "projects_slug_key" UNIQUE ("company_id", slug);`,
		`ALTER TABLE "shop"."project_members" ADD CONSTRAINT "project_members_pkey" PRIMARY KEY ("company_id", project_id, user_id);`,
		// ON DELETE SET NULL clears the reference only, never the tenant.
		`ALTER TABLE "shop"."projects" ADD CONSTRAINT "projects_owner_id_fkey" FOREIGN KEY ("company_id", "owner_id") REFERENCES "shop"."users" ("company_id", "id") ON UPDATE NO ACTION ON DELETE SET NULL ("owner_id");`,
		`FOREIGN KEY ("company_id", "project_id") REFERENCES "shop"."projects" ("company_id", "id") ON UPDATE NO ACTION ON DELETE CASCADE;`,
		`CREATE INDEX "project_members_company_id_user_id_idx" ON "shop"."project_members" ("company_id", "user_id");`,
		`SELECT tenantseal.adopt_registry('"shop"."companies"'::regclass, key_column => 'id', name_column => 'name');`,
		`SELECT tenantseal.protect_table('"shop"."companies"'::regclass, tenant_column => 'id');` + "\n" +
			`REVOKE INSERT ON "shop"."companies" FROM "`,
		`GRANT USAGE ON SCHEMA "shop" TO "`,
		`SELECT tenantseal.protect_table('"shop"."tasks"'::regclass, tenant_column => 'company_id');`,
		`GRANT SELECT ON "shop"."plans" TO "`,
		`GRANT USAGE ON SEQUENCE shop.users_id_seq TO "`,
	} {
		if !strings.Contains(up, w) {
			t.Errorf("up file lacks\n%s\ngot:\n%s", w, up)
		}
	}
	for _, w := range []string{
		`SELECT tenantseal.release_registry('"shop"."companies"'::regclass);`,
		`SELECT tenantseal.unprotect_table('"shop"."companies"'::regclass);`,
		`SELECT tenantseal.unprotect_table('"shop"."billing"'::regclass);` + "\n" + `ALTER TABLE "shop"."billing" ENABLE ROW LEVEL SECURITY;`,
		`ALTER TABLE "shop"."tasks" ALTER COLUMN "title" SET STATISTICS 500;`,
		`GRANT SELECT ("name") ON "shop"."companies" TO "`,
		`ALTER TABLE "shop"."tasks" ADD CONSTRAINT "tasks_project_id_fkey" FOREIGN KEY (project_id) REFERENCES shop.projects(id) ON DELETE CASCADE;`,
		`ALTER TABLE "shop"."comments" DROP COLUMN "company_id";`,
		`ALTER TABLE "shop"."tasks" ALTER COLUMN "company_id" TYPE integer;`,
	} {
		if !strings.Contains(down, w) {
			t.Errorf("down file lacks\n%s\ngot:\n%s", w, down)
		}
	}
	// The excluded table is never named; the global one only in its grant.
	if strings.Contains(up, "schema_migrations") || strings.Contains(down, "schema_migrations") {
		t.Errorf("the excluded table appears in the migration:\n%s\n%s", up, down)
	}
	// Every change says why.
	for _, ch := range p.Changes {
		if ch.Reason == "" || len(ch.Up) == 0 || len(ch.Down) == 0 {
			t.Errorf("change %+v: want a reason, up and down statements", ch)
		}
	}
}

// withoutTenantseal returns p without the changes that call tenantseal's functions.
func withoutTenantseal(p *adopt.Plan) *adopt.Plan {
	q := *p
	q.Changes = slices.DeleteFunc(slices.Clone(p.Changes), func(c adopt.Change) bool {
		return c.Kind == adopt.KindAdoptRegistry || c.Kind == adopt.KindProtectTable
	})
	return &q
}

// TestKeysRoundTrip applies the schema changes of the plan (all but tenantseal's functions), checks that
// they keep rows apart, and that the down file restores the catalog exactly.
func TestKeysRoundTrip(t *testing.T) {
	t.Parallel()
	_, c := mustDatabase(t, shopSchema)
	before := catalogDump(t, c, "shop")
	p := withoutTenantseal(mustGenerate(t, c, shopDeclaration()))
	mustExec(t, c, p.UpSQL())

	// A task of company 1 may no longer point at company 2's project; per tenant, an email is unique once.
	for _, tc := range []struct {
		sql, code string
	}{
		{"INSERT INTO shop.tasks (company_id, project_id) VALUES (1, 2)", "23503"},
		{"INSERT INTO shop.comments (company_id, task_id) VALUES (2, 1)", "23503"},
		{"INSERT INTO shop.project_members (company_id, project_id, user_id) VALUES (1, 1, 2)", "23503"},
		{"INSERT INTO shop.users (company_id, email) VALUES (2, 'b@globex.test')", "23505"},
		{"INSERT INTO shop.users (company_id, email) VALUES (NULL, 'x@y.test')", "23502"},
	} {
		_, err := c.Exec(t.Context(), tc.sql)
		var pe *pgconn.PgError
		if !errors.As(err, &pe) || pe.Code != tc.code {
			t.Errorf("%s: got %v, want SQLSTATE %s", tc.sql, err, tc.code)
		}
	}
	mustExec(t, c, "INSERT INTO shop.users (company_id, email) VALUES (1, 'b@globex.test')")
	mustExec(t, c, "DELETE FROM shop.users WHERE email = 'b@globex.test' AND company_id = 1")
	var filled int
	if err := c.QueryRow(t.Context(), "SELECT count(*) FROM shop.comments WHERE company_id = (SELECT company_id FROM shop.tasks WHERE id = task_id)").Scan(&filled); err != nil || filled != 2 {
		t.Errorf("backfilled comments: got %d, %v; want 2", filled, err)
	}
	// Deleting a user clears the project's owner, not its tenant.
	mustExec(t, c, "DELETE FROM shop.project_members WHERE user_id = 2; DELETE FROM shop.users WHERE id = 2")
	var owner *int64
	var company int64
	if err := c.QueryRow(t.Context(), "SELECT owner_id, company_id FROM shop.projects WHERE id = 2").Scan(&owner, &company); err != nil || owner != nil || company != 2 {
		t.Errorf("project after its owner's deletion: got owner %v, company %d, %v; want no owner, company 2", owner, company, err)
	}
	mustExec(t, c, "INSERT INTO shop.users (id, company_id, email) VALUES (2, 2, 'b@globex.test'); UPDATE shop.projects SET owner_id = 2 WHERE id = 2; INSERT INTO shop.project_members VALUES (2, 2, 2)")

	mustExec(t, c, p.DownSQL())
	if diff := cmp.Diff(before, catalogDump(t, c, "shop")); diff != "" {
		t.Errorf("catalog after up and down (-before +after):\n%s", diff)
	}
}

// KeepPrimaryKeys keeps a one-column primary key and adds (tenant, id) beside it, for the foreign keys.
func TestGenerateKeepsPrimaryKeys(t *testing.T) {
	t.Parallel()
	_, c := mustDatabase(t, shopSchema)
	decl := shopDeclaration()
	decl.KeepPrimaryKeys = true
	up := mustGenerate(t, c, decl).UpSQL()
	if !strings.Contains(up, `ALTER TABLE "shop"."users" ADD CONSTRAINT "users_company_id_id_key" UNIQUE ("company_id", "id");`) {
		t.Errorf("up file lacks the key beside users' primary key:\n%s", up)
	}
	if strings.Contains(up, `DROP CONSTRAINT "users_pkey"`) {
		t.Errorf("up file replaces users' primary key although asked to keep it:\n%s", up)
	}
}
