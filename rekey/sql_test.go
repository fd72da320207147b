package rekey

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/tenantseal/tenantseal/keys/pgstore"
)

// Statements are built from quoted identifiers only: names that a format string would break (a %d, a
// quote, a space) come out intact.
func TestStatementsQuoteEveryIdentifier(t *testing.T) {
	cols := []pgstore.Column{
		{Table: `"My App"."50%d_off"`, Schema: "My App", Name: "50%d_off", Column: `e"mail`, BlindIndex: "e mail idx", Normalizer: "email"},
		{Table: `"My App"."50%d_off"`, Schema: "My App", Name: "50%d_off", Column: "notes", Normalizer: "exact"},
		{Table: "other", Schema: "public", Name: "other", Column: "body", Normalizer: "exact"},
	}
	ts := tables(cols)
	if len(ts) != 2 || len(ts[0].cols) != 2 || ts[0].nvals != 3 || ts[1].nvals != 1 {
		t.Fatalf("got %d tables, want 2 grouped in registry order with 3 and 1 values a row", len(ts))
	}
	got := []string{ts[0].count, ts[0].read, ts[0].update([]string{`"notes" = $3`}, []string{`"notes" = $4`}),
		usageSQL(cols[0], cols[0].BlindIndex, 1), ts[1].read}
	want := []string{
		`SELECT count(*) FROM "My App"."50%d_off" WHERE "tenant_id" = $1`,
		`SELECT "id"::text, "e""mail", "e mail idx", "notes" FROM "My App"."50%d_off" WHERE "tenant_id" = $1 AND "id" > $2::uuid ORDER BY "id" LIMIT $3`,
		`UPDATE "My App"."50%d_off" SET "notes" = $3 WHERE "tenant_id" = $1 AND "id" = $2::uuid AND "notes" = $4`,
		`SELECT substring(t."e mail idx" FROM 1 FOR 4), count(*), count(q.row_key) FROM "My App"."50%d_off" t LEFT JOIN tenantseal.quarantine q ON q.tenant_id = t."tenant_id" AND q.table_name = $2::regclass AND q.column_name = $3 AND q.row_key = t."id"::text WHERE t."tenant_id" = $1 AND t."e mail idx" IS NOT NULL GROUP BY 1`,
		`SELECT "id"::text, "body" FROM "public"."other" WHERE "tenant_id" = $1 AND "id" > $2::uuid ORDER BY "id" LIMIT $3`,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("statements (-want +got):\n%s", diff)
	}
}
