package migrations_test

import (
	"fmt"
	"math/rand/v2"
	"regexp"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/tenantseal/tenantseal"
	"github.com/tenantseal/tenantseal/internal/pgtest"
	"github.com/tenantseal/tenantseal/internal/uuid"
	"github.com/tenantseal/tenantseal/migrations"
)

// tenantseal.tenant_handle in SQL and TenantID.Handle in Go name every key alike: the signed context
// carries the Go one, the registry stores the SQL one.
func TestTenantHandleAgreesWithGo(t *testing.T) {
	t.Parallel()
	d := pgtest.NewDatabase(t)
	c := mustConn(t, d.OwnerDSN)
	keys := []string{"0", "-1", "42", "9223372036854775807", "acme", "Acme Corp", "org_2abcDEF", "été", "a.b.c", "3f2504e0-4f89-41d3-9a0c-0305e82c3301"}
	for range 50 {
		keys = append(keys, fmt.Sprint(rand.Int64()))
	}
	for _, k := range keys {
		id, err := tenantseal.ParseTenantID(k)
		if err != nil {
			t.Fatal(err)
		}
		var got string
		if err := c.QueryRow(testContext(t), "SELECT tenantseal.tenant_handle($1)::text", k).Scan(&got); err != nil {
			t.Fatal(err)
		}
		if want := uuid.Format(id.Handle()); got != want {
			t.Errorf("handle of %q: SQL %s, Go %s", k, got, want)
		}
	}
}

// keyShape is a schema whose tenants are keyed by an application's own registry.
type keyShape struct {
	name     string
	keyType  string // the registry key's type
	colType  string // the tenant column's type
	keyDef   string // the registry key column
	keys     [2]string
	regInsrt string // inserts the two tenants into the registry
}

var keyShapes = []keyShape{
	{"bigint", "bigint", "bigint", "id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY", [2]string{"1", "2"}, "INSERT INTO companies (name) VALUES ('acme'), ('globex')"},
	{"integer", "integer", "integer", "id integer PRIMARY KEY", [2]string{"7", "8"}, "INSERT INTO companies (id, name) VALUES (7, 'acme'), (8, 'globex')"},
	{"integer keys, bigint column", "integer", "bigint", "id integer PRIMARY KEY", [2]string{"7", "8"}, "INSERT INTO companies (id, name) VALUES (7, 'acme'), (8, 'globex')"},
	{"text", "text", "text", "id text PRIMARY KEY", [2]string{"acme", "globex.example"}, "INSERT INTO companies (id, name) VALUES ('acme', 'acme'), ('globex.example', 'globex')"},
	{"uuid keys, text column", "uuid", "text", "id uuid PRIMARY KEY DEFAULT gen_random_uuid()", [2]string{}, "INSERT INTO companies (id, name) VALUES ('3f2504e0-4f89-41d3-9a0c-0305e82c3301', 'acme'), ('6ba7b810-9dad-41d1-80b4-00c04fd430c8', 'globex')"},
}

// On each key type the policy compares the column in its own type with the verified tenant, once per
// statement (an InitPlan) and as an index condition; rows stay with their tenant both ways.
func TestTenantKeysOfEveryType(t *testing.T) {
	t.Parallel()
	for _, sh := range keyShapes {
		t.Run(sh.name, func(t *testing.T) {
			t.Parallel()
			d := pgtest.NewDatabase(t)
			ctx := testContext(t)
			owner := mustConn(t, d.OwnerDSN)
			if sh.keyType == "uuid" {
				sh.keys = [2]string{"3f2504e0-4f89-41d3-9a0c-0305e82c3301", "6ba7b810-9dad-41d1-80b4-00c04fd430c8"}
			}
			mustRun(t, owner, "CREATE TABLE companies ("+sh.keyDef+", name text NOT NULL UNIQUE)")
			mustRun(t, owner, sh.regInsrt)
			var n int64
			if err := owner.QueryRow(ctx, "SELECT tenantseal.adopt_registry('public.companies', 'id', 'name')").Scan(&n); err != nil || n != 2 {
				t.Fatalf("adopt_registry: %d, %v", n, err)
			}
			mustRun(t, owner, fmt.Sprintf(`CREATE TABLE projects (company_id %s NOT NULL, id bigint GENERATED ALWAYS AS IDENTITY, title text NOT NULL,
				PRIMARY KEY (company_id, id))`, sh.colType))
			mustRun(t, owner, "SELECT tenantseal.protect_table('public.projects', tenant_column => 'company_id')")
			mustRun(t, owner, "SELECT tenantseal.protect_table('public.companies', tenant_column => 'id')")
			var col string
			if err := owner.QueryRow(ctx, "SELECT tenant_column FROM tenantseal.tenant_tables WHERE relid = 'public.projects'::regclass").Scan(&col); err != nil || col != "company_id" {
				t.Fatalf("tenant_tables: %q, %v", col, err)
			}

			a, _ := tenantseal.ParseTenantID(sh.keys[0])
			b, _ := tenantseal.ParseTenantID(sh.keys[1])
			p := mustPool(t, d)
			for _, id := range []tenantseal.TenantID{a, b} {
				// The TenantID binds to the column in its type.
				if _, err := p.Exec(as(ctx, id, "u"), "INSERT INTO projects (company_id, title) VALUES ($1, $2)", id, "of "+id.String()); err != nil {
					t.Fatalf("insert as %s: %v", id, err)
				}
			}
			if _, err := p.Exec(as(ctx, a, "u"), "INSERT INTO projects (company_id, title) VALUES ($1, 'planted')", b); sqlState(err) != "42501" {
				t.Errorf("a writing b's row: %v, want a policy violation (42501)", err)
			}
			for _, id := range []tenantseal.TenantID{a, b} {
				rows, err := p.Query(as(ctx, id, "u"), "SELECT company_id, title FROM projects")
				if err != nil {
					t.Fatal(err)
				}
				type row struct {
					Tenant tenantseal.TenantID
					Title  string
				}
				got, err := pgx.CollectRows(rows, pgx.RowToStructByPos[row])
				if err != nil {
					t.Fatal(err)
				}
				if len(got) != 1 || got[0].Tenant != id || got[0].Title != "of "+id.String() {
					t.Errorf("%s reads %+v, want its one row", id, got)
				}
				var names []string
				rows, err = p.Query(as(ctx, id, "u"), "SELECT name FROM companies")
				if err == nil {
					names, err = pgx.CollectRows(rows, pgx.RowTo[string])
				}
				if err != nil || len(names) != 1 {
					t.Errorf("%s reads registry rows %v (%v), want its own only", id, names, err)
				}
			}

			// The plan: the tenant comparison is an InitPlan's parameter in the index condition.
			var plan []string
			err := p.Tx(as(ctx, a, "u"), func(tx pgx.Tx) error {
				if _, err := tx.Exec(ctx, "SET LOCAL enable_seqscan = off"); err != nil {
					return err
				}
				rows, err := tx.Query(ctx, "EXPLAIN (COSTS OFF) SELECT title FROM projects WHERE id = 1")
				if err == nil {
					plan, err = pgx.CollectRows(rows, pgx.RowTo[string])
				}
				return err
			})
			if err != nil {
				t.Fatal(err)
			}
			text := strings.Join(plan, "\n")
			if !regexp.MustCompile(`Index Cond: \(\(company_id = \$0\)`).MatchString(text) || !strings.Contains(text, "InitPlan 1") || strings.Contains(text, "Filter") {
				t.Errorf("plan:\n%s\nwant the tenant comparison as an index condition on an InitPlan's $0, and no filter", text)
			}

			// A lookup miss of a's row id by b is a foreign id attempt, in every key type.
			var rowID string
			if err := p.QueryRow(as(ctx, a, "u"), "SELECT id::text FROM projects").Scan(&rowID); err != nil {
				t.Fatal(err)
			}
			w := mustConn(t, d.AuditWriterDSN)
			ev := fmt.Sprintf(`[{"kind": "lookup_miss", "tenant_id": %q, "table_name": "public.projects", "row_key": %q, "subject": "b"}]`, uuid.Format(b.Handle()), rowID)
			rows, err := w.Query(ctx, "SELECT tenantseal.audit_append($1::jsonb)", ev)
			if err != nil {
				t.Fatal(err)
			}
			foreign, err := pgx.CollectRows(rows, pgx.RowTo[string])
			if err != nil || len(foreign) != 1 {
				t.Errorf("b's miss of a's row %s: foreign ids %v (%v), want one", rowID, foreign, err)
			}
			ev = fmt.Sprintf(`[{"kind": "lookup_miss", "tenant_id": %q, "table_name": "public.projects", "row_key": "999999", "subject": "b"}]`, uuid.Format(b.Handle()))
			rows, err = w.Query(ctx, "SELECT tenantseal.audit_append($1::jsonb)", ev)
			if err == nil {
				foreign, err = pgx.CollectRows(rows, pgx.RowTo[string])
			}
			if err != nil || len(foreign) != 0 {
				t.Errorf("a miss of nobody's id: foreign ids %v (%v), want none", foreign, err)
			}

			// A row inserted into the registry later is a tenant at once.
			mustRun(t, owner, strings.NewReplacer("'acme'", "'initech'", "'globex'", "'umbrella'", "('acme'", "('initech'", "('globex.example'", "('umbrella.example'",
				"(7,", "(17,", "(8,", "(18,", "3f2504e0", "4f2504e0", "6ba7b810", "7ba7b810").Replace(sh.regInsrt))
			if err := owner.QueryRow(ctx, "SELECT count(*) FROM tenantseal.tenants").Scan(&n); err != nil || n != 4 {
				t.Errorf("tenants after two more registry rows: %d (%v), want 4", n, err)
			}
		})
	}
}

// What protect_table, the registry and the tenant keys refuse, with the reason.
func TestTenantKeyRefusals(t *testing.T) {
	t.Parallel()
	d := pgtest.NewDatabase(t)
	ctx := testContext(t)
	owner := mustConn(t, d.OwnerDSN)
	mustRun(t, owner, `CREATE TABLE loose (org_id uuid, id uuid PRIMARY KEY);
		CREATE TABLE odd (org_id numeric NOT NULL, id uuid PRIMARY KEY);
		CREATE TABLE narrow (org_id integer NOT NULL, id uuid PRIMARY KEY);
		CREATE TABLE accounts (id bigint PRIMARY KEY, name text)`)
	for _, c := range []struct {
		sql, state, says string
	}{
		{"SELECT tenantseal.protect_table('loose', tenant_column => 'org_id')", "23502", "may be NULL"},
		{"SELECT tenantseal.protect_table('loose', tenant_column => 'nope')", "42703", "has no column"},
		{"SELECT tenantseal.protect_table('odd', tenant_column => 'org_id')", "42804", "cannot hold"},
		// uuid keys in an integer column: no.
		{"SELECT tenantseal.protect_table('narrow', tenant_column => 'org_id')", "42804", "cannot hold"},
		{"INSERT INTO tenantseal.tenants (key, name) VALUES ('42', 'x')", "22023", "not a uuid"},
		{"INSERT INTO tenantseal.tenants (key, name) VALUES ('3F2504E0-4F89-41D3-9A0C-0305E82C3301', 'x')", "22023", "not a uuid"},
		{"SELECT tenantseal.adopt_registry('accounts', 'nope')", "42703", "has no column"},
	} {
		_, err := owner.Exec(ctx, c.sql)
		if sqlState(err) != c.state || err == nil || !strings.Contains(err.Error(), c.says) {
			t.Errorf("%s: %v, want %s saying %q", c.sql, err, c.state, c.says)
		}
	}
	// Keys and ids never change; a uuid tenant created by id alone has its id as its key.
	a := mustTenant(t, d, "a")
	var key string
	if err := owner.QueryRow(ctx, "SELECT key FROM tenantseal.tenants WHERE id = $1", a).Scan(&key); err != nil || key != a.String() {
		t.Errorf("key of a uuid tenant: %q (%v), want %s", key, err, a)
	}
	if _, err := owner.Exec(ctx, "UPDATE tenantseal.tenants SET key = gen_random_uuid()::text WHERE id = $1", a); sqlState(err) != "55000" {
		t.Errorf("changing a key: %v, want 55000", err)
	}
	// A registry of bigint keys cannot be adopted beside uuid tenants.
	if _, err := owner.Exec(ctx, "SELECT tenantseal.adopt_registry('accounts', 'id', 'name')"); sqlState(err) != "55000" || !strings.Contains(err.Error(), a.String()) {
		t.Errorf("adopting bigint keys beside uuid tenants: %v, want 55000 naming the tenant", err)
	}
}

// Reverting migration 21 is refused while tenants have keys only it can name, and changes nothing.
func TestRevertOfTenantKeysRefusedWhileInUse(t *testing.T) {
	t.Parallel()
	d := pgtest.NewDatabase(t)
	ctx := testContext(t)
	owner := mustConn(t, d.OwnerDSN)
	withoutExamples(t, d)
	mustRun(t, owner, "CREATE TABLE companies (id bigint PRIMARY KEY, name text); INSERT INTO companies VALUES (1, 'acme')")
	mustRun(t, owner, "SELECT tenantseal.adopt_registry('companies', 'id', 'name'); SELECT tenantseal.release_registry('companies')")
	mg := mustMigrator(t, d.OwnerDSN)
	before := dump(t, d.SuperDSN)
	if err := mg.Goto(ctx, 20); err == nil || !strings.Contains(err.Error(), "keys that are not uuids") {
		t.Fatalf("revert with a bigint tenant: %v, want a refusal", err)
	}
	if v, dirty, err := mg.Version(); err != nil || v != migrations.Latest() || dirty {
		t.Errorf("after the refusal: version %d dirty %v (%v), want %d clean", v, dirty, err, migrations.Latest())
	}
	if after := dump(t, d.SuperDSN); strings.Join(after, "\n") != strings.Join(before, "\n") {
		t.Error("the refused revert changed the schema")
	}
}

// current_tenant_key() runs on the verifier current_tenant() runs on: the C one reads the key from the
// entry that verified the token, the plpgsql one looks it up.
func TestCurrentTenantKeyFollowsVerifier(t *testing.T) {
	t.Parallel()
	d := pgtest.NewDatabase(t)
	ctx := testContext(t)
	super := mustConn(t, d.SuperDSN)
	var verifier string
	var onC, definer bool
	if err := super.QueryRow(ctx, `SELECT tenantseal.verifier(),
		EXISTS (SELECT 1 FROM pg_depend WHERE classid = 'pg_proc'::regclass AND objid = 'tenantseal.current_tenant_key()'::regprocedure
		         AND refobjid = to_regprocedure('tenantseal.c_current_tenant_key()')),
		(SELECT prosecdef FROM pg_proc WHERE oid = 'tenantseal.current_tenant_key()'::regprocedure)`).Scan(&verifier, &onC, &definer); err != nil {
		t.Fatal(err)
	}
	if want := verifier == "c"; onC != want || definer == want {
		t.Errorf("verifier %s: current_tenant_key() calls c_current_tenant_key() %v, is SECURITY DEFINER %v", verifier, onC, definer)
	}
	a := mustTenant(t, d, "a")
	p := mustPool(t, d)
	var key string
	if err := p.QueryRow(as(ctx, a, "u"), "SELECT tenantseal.current_tenant_key()").Scan(&key); err != nil || key != a.String() {
		t.Errorf("current_tenant_key() = %q (%v), want %s", key, err, a)
	}
	// Twice in one session: the second answer comes from the C verifier's cache.
	if err := p.QueryRow(as(ctx, a, "u"), "SELECT tenantseal.current_tenant_key()").Scan(&key); err != nil || key != a.String() {
		t.Errorf("current_tenant_key() again = %q (%v), want %s", key, err, a)
	}
	var none *string
	if err := p.Unscoped().QueryRow(ctx, "SELECT tenantseal.current_tenant_key()").Scan(&none); err != nil || none != nil {
		t.Errorf("current_tenant_key() without a context = %v (%v), want NULL", none, err)
	}
	// A forged context is refused by either verifier with TS401.
	if _, err := mustConn(t, d.AppDSN).Exec(ctx, "SELECT set_config('tenantseal.context', 'v1.k.x.1.e.00.00', false), tenantseal.current_tenant_key()"); sqlState(err) != "TS401" {
		t.Errorf("a forged context: %v, want TS401", err)
	}
}
