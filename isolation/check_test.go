package isolation_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/tenantseal/tenantseal/internal/pgtest"
	"github.com/tenantseal/tenantseal/isolation"
	"github.com/tenantseal/tenantseal/isolation/isolationtest"
)

// The shipped schema passes every case against every table.
func TestIsolationSuiteOnShippedSchema(t *testing.T) {
	t.Parallel()
	d := pgtest.NewDatabase(t)
	// A view done right: it reads with the caller's rights, so row-level security applies through it.
	mustExec(t, d.SuperDSN, fmt.Sprintf(`SET ROLE %[1]s;
		CREATE VIEW public.customer_names WITH (security_invoker = true) AS SELECT tenant_id, id, display_name FROM public.customers;
		GRANT SELECT ON public.customer_names TO %[2]s;
		-- A partitioned table done right: its partitions protected too, for a statement that names them.
		CREATE TABLE public.events (tenant_id uuid NOT NULL, id uuid NOT NULL DEFAULT gen_random_uuid(), body text, PRIMARY KEY (tenant_id, id))
			PARTITION BY HASH (tenant_id);
		CREATE TABLE public.events_p0 PARTITION OF public.events FOR VALUES WITH (MODULUS 2, REMAINDER 0);
		CREATE TABLE public.events_p1 PARTITION OF public.events FOR VALUES WITH (MODULUS 2, REMAINDER 1);
		SELECT tenantseal.protect_table('public.events');
		SELECT tenantseal.protect_table('public.events_p0');
		SELECT tenantseal.protect_table('public.events_p1')`, d.Roles.Owner, d.Roles.App))
	cfg := suiteConfig(d, testing.Short())
	rep := isolationtest.Run(t, cfg)
	if !rep.OK() {
		t.Fatalf("the shipped schema leaks: %d leaks, %d errors", len(rep.Leaks()), len(rep.Errors()))
	}
	var tables []string
	for _, ti := range rep.Tables {
		tables = append(tables, ti.Name)
	}
	if want := []string{"tenantseal.tenants", "customers", "events", "invoices", "documents"}; !slices.Equal(tables, want) {
		t.Errorf("discovered %v, want %v", tables, want)
	}
	for _, c := range isolation.CaseNames() {
		ran := false
		for _, r := range rep.Results {
			ran = ran || r.Case == c && r.Status == isolation.StatusPass && r.Checks > 0
		}
		if !ran {
			t.Errorf("case %s passed against no target", c)
		}
	}
	// The existence probe answers "does this id exist for another tenant?": only the audit writer's
	// appends may ask it, never the app role.
	for _, r := range rep.Results {
		if strings.Contains(r.Target, "exists_elsewhere") {
			t.Errorf("%s reaches %s: the app role may call the existence probe", r.Case, r.Target)
		}
	}
}

// brokenSchema has one flaw per table or view, each of the kind the suite exists to catch.
const brokenSchema = `
SET ROLE %[1]s;
-- Row-level security enabled but not forced: its owner reads every tenant's rows.
CREATE TABLE public.unforced_notes (
    tenant_id uuid NOT NULL,
    id        uuid NOT NULL DEFAULT gen_random_uuid(),
    body      text,
    PRIMARY KEY (tenant_id, id)
);
SELECT tenantseal.protect_table('public.unforced_notes');
ALTER TABLE public.unforced_notes NO FORCE ROW LEVEL SECURITY;

-- An UPDATE policy without a tenant WITH CHECK: rows can be moved to another tenant.
CREATE TABLE public.movable_notes (
    tenant_id uuid NOT NULL,
    id        uuid NOT NULL DEFAULT gen_random_uuid(),
    body      text,
    PRIMARY KEY (tenant_id, id)
);
SELECT tenantseal.protect_table('public.movable_notes');
DROP POLICY movable_notes_update ON public.movable_notes;
CREATE POLICY movable_notes_update ON public.movable_notes FOR UPDATE TO %[2]s
    USING (tenant_id = (SELECT tenantseal.current_tenant())) WITH CHECK (true);

-- A unique key without the tenant: its violation tells one tenant another's values, and as an index
-- condition without the tenant's it makes the planner count other tenants' rows.
CREATE TABLE public.slugged_notes (
    tenant_id uuid NOT NULL,
    id        uuid NOT NULL DEFAULT gen_random_uuid(),
    slug      text NOT NULL UNIQUE,
    PRIMARY KEY (tenant_id, id)
);
SELECT tenantseal.protect_table('public.slugged_notes');

-- A second permissive read policy, ORed with the tenant's: the tenant comparison becomes a filter after
-- the attacker's index condition (EXPLAIN ANALYZE counts the other tenants' rows it removes), and an
-- elevation reads every tenant.
CREATE TABLE public.ored_notes (
    tenant_id uuid NOT NULL,
    id        uuid NOT NULL DEFAULT gen_random_uuid(),
    body      text,
    PRIMARY KEY (tenant_id, id)
);
SELECT tenantseal.protect_table('public.ored_notes');
CREATE POLICY ored_notes_elevated_read ON public.ored_notes FOR SELECT TO %[2]s USING ((SELECT tenantseal.elevated()));

-- Statistics kept: the planner estimates from every tenant's values, and EXPLAIN shows the estimates.
CREATE TABLE public.counted_notes (
    tenant_id uuid NOT NULL,
    id        uuid NOT NULL DEFAULT gen_random_uuid(),
    body      text,
    PRIMARY KEY (tenant_id, id)
);
SELECT tenantseal.protect_table('public.counted_notes', hide_statistics => false);
RESET ROLE;

-- A view that runs with its owner's rights, and its owner is a superuser.
CREATE VIEW public.all_customers AS SELECT * FROM public.customers;
GRANT SELECT ON public.all_customers TO %[2]s;
`

// The suite fails on a schema with known flaws, naming each, and only those.
func TestIsolationSuiteReportsBrokenSchema(t *testing.T) {
	t.Parallel()
	d := pgtest.NewDatabase(t)
	mustExec(t, d.SuperDSN, fmt.Sprintf(brokenSchema, d.Roles.Owner, d.Roles.App))
	cfg := suiteConfig(d, true)
	rep, err := isolation.Check(pgtest.Context(t), cfg)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	rep.WriteText(&b)
	t.Log("\n" + b.String())

	wantLeaks := map[[2]string]string{
		{"owner-bypass", "unforced_notes"}:      "not subject to row-level security",
		{"update-move-tenant", "movable_notes"}: "moved 2 own rows",
		{"unique-violation", "slugged_notes"}:   "slugged_notes_slug_key holds across tenants",
		{"view", "view all_customers"}:          "shows rows of",
		{"planner", "slugged_notes"}:            "the plan visits or estimates other tenants' rows",
		{"planner", "ored_notes"}:               "the plan visits or estimates other tenants' rows",
		{"elevated-token", "ored_notes"}:        "it must read only the tenant it names",
		{"planner", "counted_notes"}:            "pg_statistic holds",
	}
	for k, want := range wantLeaks {
		res, ok := rep.Find(k[0], k[1])
		if !ok || res.Status != isolation.StatusLeak || !strings.Contains(strings.Join(res.Leaks, "\n"), want) {
			t.Errorf("%s on %s: got %+v, want a leak saying %q", k[0], k[1], res, want)
		}
	}
	// Nothing else: the shipped tables are untouched by the broken ones and still pass.
	for _, r := range rep.Results {
		if r.Status == isolation.StatusError {
			t.Errorf("%s on %s: error %v", r.Case, r.Target, r.Errors)
		}
		if r.Status != isolation.StatusLeak {
			continue
		}
		if _, expected := wantLeaks[[2]string{r.Case, r.Target}]; expected {
			continue
		}
		switch {
		case r.Target == "slugged_notes" && r.Case == "upsert-foreign":
			// The same tenant-less key, seen through ON CONFLICT: expected as well.
		default:
			t.Errorf("unexpected leak: %s on %s: %v", r.Case, r.Target, r.Leaks)
		}
	}
	if rep.OK() {
		t.Error("report says OK for a broken schema")
	}
}
