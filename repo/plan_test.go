package repo_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
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
