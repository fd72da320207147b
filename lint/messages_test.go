package lint_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	gocmp "github.com/google/go-cmp/cmp"

	"github.com/tenantseal/tenantseal/internal/pgtest"
	"github.com/tenantseal/tenantseal/lint"
)

// TestMessages checks that findings say what is true of the schema, not only which rule fired.
func TestMessages(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		fixture       string
		want, wantNot []string
	}{
		{"TS001.sql", []string{"the app role reads and writes every tenant's rows"}, nil},
		{"TS001_reads.sql", []string{"the app role reads every tenant's rows"}, []string{"writes"}},
		{"TS005_coalesce.sql", []string{"USING with no tenant context it admits rows"}, nil},
		{"TS005_not_equal.sql", []string{"with one tenant's context it admits another tenant's rows"}, nil},
		{"TS005_elevated_write.sql", []string{"it lets an elevated, read-only session write"}, nil},
		{"TS005.sql", []string{"USING is always true"}, nil},
		{"TS015_misspelt.sql", []string{`its column tenantid looks like a misspelt tenant_id`}, nil},
		{"TS015_read.sql", []string{"may SELECT it: every tenant reads all its rows"}, []string{"writes"}},
		{"TS015_context_keys.sql", []string{"signing keys"}, nil},
		{"TS017.sql", []string{"permissive policies notes_elevated_read, notes_select are ORed"}, nil},
		{"TS017_cast.sql", []string{"no cast or function around the column"}, nil},
		{"TS021_view.sql", []string{"view public.note_feed, which the app role reads, calls it", "is a superuser"}, nil},
		{"TS021_trigger.sql", []string{"trigger notes_touch fires on public.notes"}, nil},
		{"TS021_argument.sql", []string{"compares tenant_id with its argument p_tenant, which the caller chooses"}, nil},
		{"TS015_unrecorded.sql", []string{"public.invoices_2019: has no tenant_id column", "its column company_id is the tenant column of other tables"}, nil},
		{"TS018_tenant_key.sql", []string{"workspace_id may be NULL", "ALTER COLUMN workspace_id SET NOT NULL"}, nil},
		{"TS025_update.sql", []string{"into public.latest_note, which has no tenant_id column"}, nil},
		{"TS026_callee.sql", []string{"'app.tenant' (through fx.claimed_tenant())", "'application_name'"}, nil},
		{"TS026_coalesce.sql", []string{"'request.jwt.claims'"}, nil},
		// The fix hints speak of the table's own column and the key verifier in its type.
		{"TS016_tenant_key.sql", []string{"SELECT tenantseal.protect_table('public.deals', tenant_column => 'org_id')"}, nil},
		{"TS005_tenant_key.sql", []string{"USING (org_id = (SELECT tenantseal.current_tenant_key()::bigint))"}, []string{"tenant_id"}},
	} {
		t.Run(tc.fixture, func(t *testing.T) {
			t.Parallel()
			d := pgtest.NewDatabase(t)
			file := filepath.Join(fixtures, tc.fixture)
			opts := fixtureOptions(t, file, options(d))
			shipped := lint.NewBaseline(shippedFindings(t, d, opts))
			mustFixture(t, d, file)
			fs, _ := shipped.Filter(mustRun(t, d.OwnerDSN, opts))
			got := text(fs)
			for _, w := range tc.want {
				if !strings.Contains(got, w) {
					t.Errorf("findings do not say %q:\n%s", w, got)
				}
			}
			for _, w := range tc.wantNot {
				if strings.Contains(strings.Join(messages(fs), "\n"), w) {
					t.Errorf("findings say %q, which is not so:\n%s", w, got)
				}
			}
		})
	}
}

func messages(fs []lint.Finding) []string {
	var out []string
	for _, f := range fs {
		out = append(out, f.Message)
	}
	return out
}

// TestShapes lints shapes whose right answer is more than one rule, or a rule that must not fire
// beside another.
func TestShapes(t *testing.T) {
	t.Parallel()
	const nullable = `SET ROLE {{owner}};
		CREATE TABLE public.notes (tenant_id uuid NOT NULL, id uuid NOT NULL, slug text, UNIQUE (tenant_id, id));
		SELECT tenantseal.protect_table('public.notes');
		ALTER TABLE public.notes ALTER COLUMN tenant_id DROP NOT NULL; -- protect_table refuses a nullable column
		`
	for _, tc := range []struct {
		name, sql string
		want      []string
	}{
		// The nullable column is the mistake; with = the policies still admit no row of nobody's.
		{"nullable tenant column", nullable, []string{"TS018"}},
		// IS NOT DISTINCT FROM admits the rows without a tenant when there is no context.
		{"nullable tenant column compared with IS NOT DISTINCT FROM", nullable + `DROP POLICY notes_select ON public.notes;
			CREATE POLICY notes_select ON public.notes FOR SELECT TO {{app}}
			    USING (tenant_id IS NOT DISTINCT FROM (SELECT tenantseal.current_tenant()));`, []string{"TS005", "TS018"}},
		// A unique index on the rows of no tenant spans no tenants: not TS008, not TS007.
		{"partial unique index on rows without a tenant", nullable +
			"CREATE UNIQUE INDEX notes_global_slug ON public.notes (slug) WHERE tenant_id IS NULL;", []string{"TS018"}},
		// The product's audit log is the owner's and the auditor's; granted to the app role again with a
		// policy that is not tenant-bound, it leaks, and its indexes (seq, event_id) lead not with
		// tenant_id, a side channel of their own.
		{"the audit log readable by the app role through a policy of any tenant", `SET ROLE {{owner}};
			GRANT SELECT ON tenantseal.audit_log TO {{app}};
			CREATE POLICY audit_log_app ON tenantseal.audit_log FOR SELECT TO {{app}} USING (tenant_id IS NOT NULL);`,
			[]string{"TS005", "TS007"}},
		{"partial unique index on other rows", nullable +
			"CREATE UNIQUE INDEX notes_slug ON public.notes (slug) WHERE slug <> '';", []string{"TS008", "TS018"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			d := pgtest.NewDatabase(t)
			shipped := lint.NewBaseline(mustRun(t, d.OwnerDSN, options(d)))
			tmp := filepath.Join(t.TempDir(), "shape.sql")
			if err := os.WriteFile(tmp, []byte(tc.sql), 0o600); err != nil {
				t.Fatal(err)
			}
			mustFixture(t, d, tmp)
			fs, _ := shipped.Filter(mustRun(t, d.OwnerDSN, options(d)))
			if diff := gocmp.Diff(tc.want, ruleIDs(fs)); diff != "" {
				t.Errorf("rules (-want +got):\n%s\nfindings:\n%s", diff, text(fs))
			}
		})
	}
}
