package repo_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/tenantseal/tenantseal/db"
	"github.com/tenantseal/tenantseal/repo"
)

// recorder runs statements on a pool and remembers them, to explain them afterwards.
type recorder struct {
	p   *db.Pool
	mu  sync.Mutex
	got []stmt
}

type stmt struct {
	sql  string
	args []any
}

func (r *recorder) note(sql string, args []any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.got = append(r.got, stmt{sql, args})
}

func (r *recorder) Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	r.note(sql, args)
	return r.p.Exec(ctx, sql, args...)
}

func (r *recorder) Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	r.note(sql, args)
	return r.p.Query(ctx, sql, args...)
}

func (r *recorder) QueryRow(ctx context.Context, sql string, args ...any) pgx.Row {
	r.note(sql, args)
	return r.p.QueryRow(ctx, sql, args...)
}

// scans lists the scan nodes of an EXPLAIN (FORMAT JSON) plan: node type and index name.
func scans(plan any, out *[][2]string) {
	switch n := plan.(type) {
	case map[string]any:
		switch typ, _ := n["Node Type"].(string); typ {
		case "Seq Scan", "Index Scan", "Index Only Scan", "Bitmap Index Scan":
			name, _ := n["Index Name"].(string)
			rel, _ := n["Relation Name"].(string)
			*out = append(*out, [2]string{typ + " " + rel, name})
		}
		for _, v := range n {
			scans(v, out)
		}
	case []any:
		for _, v := range n {
			scans(v, out)
		}
	}
}

// Every statement the repositories send, on loaded tables, scans by an index that leads with tenant_id.
func TestRepositoryQueriesUseTenantLeadingIndexes(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	var ctxs []context.Context
	for i := 0; i < 20; i++ {
		_, ctx := e.tenant(t, fmt.Sprint("t", i))
		ctxs = append(ctxs, ctx)
		cs := make([]*customer, 300)
		for j := range cs {
			cs[j] = &customer{DisplayName: fmt.Sprint("c", j), Email: fmt.Sprintf("c%d@t%d", j, i)}
		}
		if err := e.customers.InsertMany(ctx, cs); err != nil {
			t.Fatal(err)
		}
		invs := make([]*invoice, 300)
		for j := range invs {
			invs[j] = &invoice{CustomerID: cs[j].ID, AmountMinor: 1, Currency: "EUR", Status: []string{"draft", "issued", "paid", "void"}[j%4]}
		}
		if err := e.invoices.InsertMany(ctx, invs); err != nil {
			t.Fatal(err)
		}
	}
	super := mustConn(t, e.d.SuperDSN)
	if _, err := super.Exec(testContext(t), "ANALYZE"); err != nil {
		t.Fatal(err)
	}
	leading := map[string]bool{}
	rows, err := super.Query(testContext(t), `SELECT c.relname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
		JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0] WHERE a.attname = 'tenant_id'`)
	if err != nil {
		t.Fatal(err)
	}
	names, _ := pgx.CollectRows(rows, pgx.RowTo[string])
	for _, n := range names {
		leading[n] = true
	}

	rec := &recorder{p: e.pool}
	customers := repo.WithDBTX(e.customers, rec)
	invoices := repo.WithDBTX(e.invoices, rec)
	ctx := ctxs[3]
	page, err := customers.List(ctx, repo.ListOptions{Limit: 20})
	if err != nil {
		t.Fatal(err)
	}
	c := page.Items[5]
	steps := []struct {
		name string
		run  func() error
		want error // the one error the step may end with
	}{
		{"get", func() error { _, err := customers.Get(ctx, c.ID); return err }, nil},
		{"list after a cursor", func() error { _, err := customers.List(ctx, repo.ListOptions{Limit: 20, After: page.Next}); return err }, nil},
		{"count", func() error { _, err := customers.Count(ctx); return err }, nil},
		{"find by", func() error { _, err := customers.FindBy(ctx, "email", c.Email); return err }, nil},
		{"update", func() error { return customers.Update(ctx, &c) }, nil},
		{"delete of a missing id", func() error { return customers.Delete(ctx, repo.NewID()) }, repo.ErrNotFound},
		{"list by customer", func() error {
			_, err := invoices.List(ctx, repo.ListOptions{}, repo.Eq("customer_id", c.ID))
			return err
		}, nil},
		{"list by status", func() error {
			_, err := invoices.List(ctx, repo.ListOptions{}, repo.Eq("status", "paid"))
			return err
		}, nil},
	}
	for _, s := range steps {
		if err := s.run(); !errors.Is(err, s.want) {
			t.Fatalf("%s: got %v, want %v", s.name, err, s.want)
		}
	}
	explained := 0
	for _, s := range rec.got {
		if strings.Contains(s.sql, "exists_elsewhere") {
			continue // a function: its one query is a primary-key lookup by (tenant_id, id) inside
		}
		var plan []any
		if err := e.pool.QueryRow(ctx, "EXPLAIN (FORMAT JSON) "+s.sql, s.args...).Scan(&plan); err != nil {
			t.Fatalf("explain %s: %v", s.sql, err)
		}
		var found [][2]string
		scans(plan, &found)
		if len(found) == 0 {
			t.Errorf("no scan found in the plan of %s", s.sql)
		}
		for _, f := range found {
			if strings.HasPrefix(f[0], "Seq Scan") || f[1] == "" || !leading[f[1]] {
				b, _ := json.Marshal(plan)
				t.Errorf("%s: %s with index %q, want an index scan on a tenant-leading index\n%s", s.sql, f[0], f[1], b)
			}
		}
		explained++
	}
	if explained < len(steps) {
		t.Errorf("explained %d statements, want at least %d", explained, len(steps))
	}
}

// On a table of bigint tenants and keys, a repository Get is one index scan on the tenant-leading
// primary key, and the policy's InitPlan (the verified tenant's key, evaluated once per statement)
// holds it: as the index condition on company_id, or, where the planner has folded the policy into the
// Get's own tenant predicate (company_id = $1 makes both members of one equivalence class), as a
// One-Time Filter comparing it with that predicate's value before any row is read. No row is read and
// then filtered, in the custom plan of the first executions and in the generic one of later ones.
func TestGetOnBigintKeysIsHeldByThePolicyInitPlan(t *testing.T) {
	t.Parallel()
	r := newCompaniesEnv(t)
	projects := mustNew[project](t, r.env, "public.projects")
	for _, ctx := range []context.Context{r.ctxA, r.ctxB} {
		rows := make([]*project, 300)
		for i := range rows {
			rows[i] = &project{Title: fmt.Sprint("p", i), Secret: fmt.Sprint("s", i)}
		}
		if err := projects.InsertMany(ctx, rows); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := mustConn(t, r.d.SuperDSN).Exec(testContext(t), "ANALYZE"); err != nil {
		t.Fatal(err)
	}
	page, err := projects.List(r.ctxA, repo.ListOptions{Limit: 1})
	if err != nil || len(page.Items) != 1 {
		t.Fatalf("List: %d rows (%v), want one", len(page.Items), err)
	}
	rec := &recorder{p: r.pool}
	if _, err := repo.WithDBTX(projects, rec).Get(r.ctxA, repo.IntID(page.Items[0].Key)); err != nil {
		t.Fatal(err)
	}
	if len(rec.got) != 1 {
		t.Fatalf("Get sent %d statements, want 1", len(rec.got))
	}
	get := rec.got[0]
	explain := func(prepare bool) string {
		var plan []string
		err := r.pool.Tx(r.ctxA, func(tx pgx.Tx) error {
			sql, args := "EXPLAIN (COSTS OFF) "+get.sql, get.args
			if prepare {
				if _, err := tx.Exec(r.ctxA, "PREPARE get AS "+get.sql); err != nil {
					return err
				}
				if _, err := tx.Exec(r.ctxA, "SET LOCAL plan_cache_mode = force_generic_plan"); err != nil {
					return err
				}
				sql, args = fmt.Sprintf("EXPLAIN (COSTS OFF) EXECUTE get(%s, %d)", r.a, page.Items[0].Key), nil
			}
			rows, err := tx.Query(r.ctxA, sql, args...)
			if err == nil {
				plan, err = pgx.CollectRows(rows, pgx.RowTo[string])
			}
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		return strings.Join(plan, "\n")
	}
	for _, tc := range []struct {
		name    string
		generic bool
	}{{"custom plan", false}, {"generic plan", true}} {
		t.Run(tc.name, func(t *testing.T) {
			plan := explain(tc.generic)
			if msg := policyHoldsIndexScan(plan, "projects_pkey", "company_id", false); msg != "" {
				t.Errorf("%s\nplan:\n%s", msg, plan)
			}
		})
	}
	// Custom SQL on the repository's connection that names no tenant: the policy alone is the index
	// condition.
	get = stmt{sql: "SELECT title FROM public.projects WHERE id = $1", args: []any{page.Items[0].Key}}
	if plan := explain(false); policyHoldsIndexScan(plan, "projects_pkey", "company_id", true) != "" {
		t.Errorf("%s\nplan:\n%s", policyHoldsIndexScan(plan, "projects_pkey", "company_id", true), plan)
	}
}

// The plan check finds what it is for, on plans of the shapes it must refuse.
func TestPolicyHoldsIndexScanRefuses(t *testing.T) {
	scan := "\n  ->  Index Scan using p_pkey on p\n        Index Cond: ((c = $1) AND (id = $2))"
	for _, tc := range []struct{ name, plan string }{
		{"no InitPlan", "Index Scan using p_pkey on p\n  Index Cond: ((c = $1) AND (id = $2))"},
		{"a filter", "Index Scan using p_pkey on p\n  Index Cond: (id = $2)\n  Filter: (c = $0)\n  InitPlan 1 (returns $0)"},
		{"a sequential scan", "Seq Scan on p\n  Filter: ((c = $0) AND (id = $2))\n  InitPlan 1 (returns $0)"},
		{"another index", "Index Scan using p_other on p\n  Index Cond: ((c = $0) AND (id = $2))\n  InitPlan 1 (returns $0)"},
		{"the InitPlan unused", "Result\n  InitPlan 1 (returns $0)" + scan},
		{"folded, where the condition is required", "Result\n  One-Time Filter: ($0 = $1)\n  InitPlan 1 (returns $0)" + scan},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if policyHoldsIndexScan(tc.plan, "p_pkey", "c", tc.name == "folded, where the condition is required") == "" {
				t.Errorf("accepted:\n%s", tc.plan)
			}
		})
	}
	if msg := policyHoldsIndexScan("Result\n  One-Time Filter: ($0 = $1)\n  InitPlan 1 (returns $0)"+scan, "p_pkey", "c", false); msg != "" {
		t.Errorf("the folded shape: %s", msg)
	}
}

// initPlanParam matches an InitPlan and the parameter it returns: "$0" before PostgreSQL 17, the
// InitPlan itself ("(InitPlan 1).col1") after.
var initPlanParam = regexp.MustCompile(`InitPlan (\d+)(?: \(returns (\$\d+)\))?`)

// policyHoldsIndexScan returns what is wrong with a text plan of a lookup that should be one index scan
// on index, held by the InitPlan of a policy on the tenant column col (as its index condition when
// inCond, else that or a One-Time Filter): "" when nothing is.
func policyHoldsIndexScan(plan, index, col string, inCond bool) string {
	m := initPlanParam.FindStringSubmatch(plan)
	if m == nil {
		return "no InitPlan: the policy's tenant is not evaluated once per statement"
	}
	param := m[2]
	if param == "" {
		param = "(InitPlan " + m[1] + ").col1"
	}
	cond := regexp.MustCompile(`Index Cond: \((.*)\)`).FindStringSubmatch(plan)
	switch {
	case strings.Count(plan, "Scan") != 1 || !strings.Contains(plan, "Index Scan using "+index+" "):
		return "want exactly one scan, an Index Scan using " + index
	case cond == nil || !strings.Contains(cond[1], "("+col+" = "):
		return "want an index condition on " + col
	case regexp.MustCompile(`(?m)^\s*Filter:`).MatchString(plan):
		return "want no row filter: rows of other tenants would be read and discarded"
	case strings.Contains(cond[1], "("+col+" = "+param+")"):
		return "" // the policy is the index condition
	case !inCond && strings.Contains(plan, "One-Time Filter: ("+param+" = "):
		return "" // folded: the policy gates the scan on the Get's own tenant predicate
	}
	return "the policy's " + param + " neither is the index condition on " + col + " nor gates the scan"
}
