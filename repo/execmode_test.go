package repo_test

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5"

	"github.com/tenantseal/tenantseal/db"
	"github.com/tenantseal/tenantseal/repo"
)

// Rows decode the same whatever the exec mode of the pool that reads them: QueryExecModeExec reads
// results as text (bytea as hex), the others in binary. Empty, NULL and multi-byte values included.
func TestRowsDecodeInEveryExecMode(t *testing.T) {
	t.Parallel()
	for _, mode := range []pgx.QueryExecMode{pgx.QueryExecModeCacheStatement, pgx.QueryExecModeCacheDescribe, pgx.QueryExecModeDescribeExec, pgx.QueryExecModeExec} {
		t.Run(mode.String(), func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			_, ctx := e.tenant(t, "a")
			rows := []*customer{
				{DisplayName: "one", Email: "Ünïcode@x", Phone: "", Notes: ptr("")},
				{DisplayName: "two", Email: "two@x", Phone: "+1 555 0100", Notes: nil},
				{DisplayName: "three", Email: "three@x", Phone: "+1", Notes: ptr("notes, and more notes")},
			}
			if err := e.customers.InsertMany(ctx, rows); err != nil {
				t.Fatal(err)
			}
			c := customer{DisplayName: "four", Email: "four@x", Phone: "4", Notes: ptr("4")}
			if err := e.customers.Insert(ctx, &c); err != nil {
				t.Fatal(err)
			}
			want := []customer{*rows[0], *rows[1], *rows[2], c}
			byText := cmp.Comparer(func(a, b repo.ID) bool { return a.Equal(b) })
			r := *e
			r.open(t, e.d.Pool(t, func(c *db.Config) { c.ExecMode = mode }))
			page, err := r.customers.List(ctx, repo.ListOptions{Limit: 10})
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(want, page.Items, byText); diff != "" {
				t.Errorf("List (-inserted +got):\n%s", diff)
			}
			// Keys bound as arguments, and read back as the uuids they are, in every mode.
			first, err := r.customers.List(ctx, repo.ListOptions{Limit: 2})
			if err != nil || len(first.Items) != 2 || first.Next == "" {
				t.Fatalf("List of 2: %v (%v)", first.Items, err)
			}
			rest, err := r.customers.List(ctx, repo.ListOptions{Limit: 10, After: first.Next})
			if err != nil || len(rest.Items) != 2 {
				t.Fatalf("List after the cursor: %v (%v)", rest.Items, err)
			}
			got, err := r.customers.Get(ctx, c.ID)
			if err != nil || got.ID != c.ID || got.Email != c.Email {
				t.Errorf("Get: %+v (%v), want %+v", got, err, c)
			}
			five := customer{DisplayName: "five", Email: "five@x", Phone: "5"}
			if err := r.customers.Insert(ctx, &five); err != nil {
				t.Fatalf("Insert: %v", err)
			}
			if err := r.customers.Delete(ctx, five.ID); err != nil {
				t.Errorf("Delete: %v", err)
			}
			found, err := r.customers.FindBy(ctx, "email", "ünïcode@X")
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(want[:1], found, byText); diff != "" {
				t.Errorf("FindBy (-inserted +got):\n%s", diff)
			}
		})
	}
}
