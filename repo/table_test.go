package repo_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5"

	"github.com/tenantseal/tenantseal"
	"github.com/tenantseal/tenantseal/db"
	"github.com/tenantseal/tenantseal/repo"
)

func TestLifecycle(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a, ctxA := e.tenant(t, "a")
	_, ctxB := e.tenant(t, "b")

	c := customer{DisplayName: "Ada", Email: " Ada@Example.COM", Phone: "+44 1", Notes: ptr("likes tea")}
	if err := e.customers.Insert(ctxA, &c); err != nil {
		t.Fatal(err)
	}
	if c.ID.IsZero() || c.TenantID != a || c.Version != 1 || c.CreatedAt.IsZero() || c.UpdatedAt.IsZero() {
		t.Fatalf("after insert got %+v, want id, tenant %s, version 1, created_at and updated_at filled", c, a)
	}
	got, err := e.customers.Get(ctxA, c.ID)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(c, got); diff != "" {
		t.Errorf("Get differs from what was inserted (-inserted +got):\n%s", diff)
	}
	// The database holds only ciphertext.
	var email, notes []byte
	if err := mustConn(t, e.d.SuperDSN).QueryRow(ctxA, "SELECT email, notes FROM customers WHERE id = $1", c.ID).Scan(&email, &notes); err != nil {
		t.Fatal(err)
	}
	if len(email) == 0 || len(notes) == 0 || strings.Contains(string(email), "Example") || strings.Contains(string(notes), "tea") {
		t.Errorf("stored email %q and notes %q: want ciphertext, not empty and not the plaintext", email, notes)
	}

	found, err := e.customers.FindBy(ctxA, "email", "ada@example.com  ")
	if err != nil || len(found) != 1 || found[0].ID != c.ID {
		t.Errorf("FindBy email: got %d rows (%v), want the one with id %v", len(found), err, c.ID)
	}
	if found, err := e.customers.FindBy(ctxB, "email", "ada@example.com"); err != nil || len(found) != 0 {
		t.Errorf("FindBy from another tenant: got %d rows (%v), want none", len(found), err)
	}

	// Update with the current version, then with the stale one.
	stale := got
	got.Notes = nil
	got.DisplayName = "Ada L."
	if err := e.customers.Update(ctxA, &got); err != nil {
		t.Fatal(err)
	}
	if got.Version != 2 || !got.UpdatedAt.After(c.UpdatedAt) {
		t.Errorf("after update got version %d updated_at %v, want 2 and later than %v", got.Version, got.UpdatedAt, c.UpdatedAt)
	}
	stale.DisplayName = "lost update"
	if err := e.customers.Update(ctxA, &stale); !errors.Is(err, repo.ErrConflict) {
		t.Errorf("stale update: got %v, want ErrConflict", err)
	}
	again, err := e.customers.Get(ctxA, c.ID)
	if err != nil || again.DisplayName != "Ada L." || again.Notes != nil || again.Version != 2 {
		t.Errorf("after the refused stale update got %+v (%v), want the first update's row", again, err)
	}

	// Another tenant: not found for every method, no existence oracle.
	if _, err := e.customers.Get(ctxB, c.ID); !errors.Is(err, repo.ErrNotFound) {
		t.Errorf("Get foreign id: got %v, want ErrNotFound", err)
	}
	foreign := again
	foreign.TenantID = tenantseal.TenantID{}
	if err := e.customers.Update(ctxB, &foreign); !errors.Is(err, repo.ErrNotFound) {
		t.Errorf("Update foreign id: got %v, want ErrNotFound", err)
	}
	if err := e.customers.Delete(ctxB, c.ID); !errors.Is(err, repo.ErrNotFound) {
		t.Errorf("Delete foreign id: got %v, want ErrNotFound", err)
	}
	if err := e.customers.Delete(ctxA, c.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := e.customers.Get(ctxA, c.ID); !errors.Is(err, repo.ErrNotFound) {
		t.Errorf("Get after delete: got %v, want ErrNotFound", err)
	}
	if err := e.customers.Delete(ctxA, c.ID); !errors.Is(err, repo.ErrNotFound) {
		t.Errorf("second Delete: got %v, want ErrNotFound", err)
	}
	// No Principal: nothing is sent.
	if _, err := e.customers.Get(testContext(t), c.ID); !errors.Is(err, repo.ErrNoTenant) {
		t.Errorf("Get without a Principal: got %v, want ErrNoTenant", err)
	}
}

// A sentinel comes back as it is; an error of the database has one prefix, repo's, before its own text.
func TestErrorsHaveOnePrefix(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	_, ctxA := e.tenant(t, "a")
	c := mustCustomer(t, e, ctxA, "A", "a@x")
	gone := c
	gone.ID = repo.NewID()
	long := c
	long.DisplayName = strings.Repeat("x", 201) // the CHECK allows 200
	for _, tc := range []struct {
		name string
		err  error
		want string
	}{
		{"update of a missing row", e.customers.Update(ctxA, &gone), "tenantseal: not found"},
		{"delete of a missing row", e.customers.Delete(ctxA, gone.ID), "tenantseal: not found"},
		{"update violating a check", e.customers.Update(ctxA, &long), `repo: update customers: ERROR: new row for relation "customers" violates check constraint`},
		{"bad cursor", func() error { _, err := e.customers.List(ctxA, repo.ListOptions{After: "x"}); return err }(), "tenantseal: invalid cursor"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.err == nil || !strings.HasPrefix(tc.err.Error(), tc.want) {
				t.Errorf("got %v, want a message starting %q", tc.err, tc.want)
			}
			if tc.err != nil && strings.Count(tc.err.Error(), "tenantseal:")+strings.Count(tc.err.Error(), "repo:") != 1 {
				t.Errorf("got %q, want exactly one prefix", tc.err)
			}
		})
	}
}

func TestTenantMismatchWritesNothing(t *testing.T) {
	t.Parallel()
	rec, edit := recording()
	e := newEnv(t, edit)
	a, ctxA := e.tenant(t, "a")
	b, ctxB := e.tenant(t, "b")
	bc := mustCustomer(t, e, ctxB, "B", "b@x")
	rec.take()

	c := customer{TenantID: b, DisplayName: "smuggled", Email: "s@x"}
	err := e.customers.Insert(ctxA, &c)
	var me *repo.MismatchError
	if !errors.Is(err, repo.ErrTenantMismatch) || !errors.Is(err, tenantseal.ErrTenantMismatch) || !errors.As(err, &me) || me.Given != b || me.Principal != a {
		t.Errorf("Insert with b's tenant as a: got %v, want a MismatchError naming both tenants", err)
	}
	many := []*customer{{DisplayName: "ok", Email: "ok@x"}, {TenantID: b, DisplayName: "smuggled", Email: "s2@x"}}
	if err := e.customers.InsertMany(ctxA, many); !errors.Is(err, repo.ErrTenantMismatch) {
		t.Errorf("InsertMany with one foreign row: got %v, want ErrTenantMismatch", err)
	}
	bc.DisplayName = "hijacked"
	if err := e.customers.Update(ctxA, &bc); !errors.Is(err, repo.ErrTenantMismatch) {
		t.Errorf("Update of b's row as a: got %v, want ErrTenantMismatch", err)
	}
	var n int
	if err := mustConn(t, e.d.SuperDSN).QueryRow(ctxA, "SELECT count(*) FROM customers WHERE tenant_id = $1 OR display_name IN ('smuggled', 'hijacked', 'ok')", a).Scan(&n); err != nil || n != 0 {
		t.Errorf("got %d rows written (%v), want none", n, err)
	}
	want := []tenantseal.Event{
		{Kind: tenantseal.EventTenantMismatch, TargetTenant: b, Table: "customers", Operation: "insert"},
		{Kind: tenantseal.EventTenantMismatch, TargetTenant: b, Table: "customers", Operation: "insert"},
		{Kind: tenantseal.EventTenantMismatch, TargetTenant: b, Table: "customers", Operation: "update", RowKey: bc.ID.String()},
	}
	if diff := cmp.Diff(want, rec.take()); diff != "" {
		t.Errorf("recorded events (-want +got):\n%s", diff)
	}
}

func TestListPaginatesAcrossInserts(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	_, ctxA := e.tenant(t, "a")
	_, ctxB := e.tenant(t, "b")
	var want []repo.ID
	for i := 0; i < 23; i++ {
		want = append(want, mustCustomer(t, e, ctxA, fmt.Sprint("c", i), fmt.Sprintf("c%d@x", i)).ID)
	}
	mustCustomer(t, e, ctxB, "other", "o@x")

	var seen []repo.ID
	opts := repo.ListOptions{Limit: 10}
	for page := 0; ; page++ {
		p, err := e.customers.List(ctxA, opts)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range p.Items {
			seen = append(seen, c.ID)
		}
		if page == 0 {
			// Rows inserted while a client pages appear at the end, not twice and not in place of others.
			for i := 0; i < 3; i++ {
				want = append(want, mustCustomer(t, e, ctxA, fmt.Sprint("late", i), fmt.Sprintf("late%d@x", i)).ID)
			}
		}
		if p.Next == "" {
			break
		}
		opts.After = p.Next
	}
	if diff := cmp.Diff(want, seen); diff != "" {
		t.Errorf("pages differ from the inserted ids in order (-want +got):\n%s", diff)
	}
	if n, err := e.customers.Count(ctxA); err != nil || n != int64(len(want)) {
		t.Errorf("Count: got %d (%v), want %d", n, err, len(want))
	}
	if n, err := e.customers.Count(ctxA, repo.Eq("display_name", "late1")); err != nil || n != 1 {
		t.Errorf("Count with a condition: got %d (%v), want 1", n, err)
	}
	if p, err := e.customers.List(ctxA, repo.ListOptions{}, repo.Eq("display_name", "c7")); err != nil || len(p.Items) != 1 || p.Items[0].ID != want[7] {
		t.Errorf("List with a condition: got %d rows (%v), want c7", len(p.Items), err)
	}
}

// Arguments List, Count and FindBy cannot use fail with the error for their reason, before anything is
// sent.
func TestInvalidQueriesSendNothing(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	_, ctxA := e.tenant(t, "a")
	sent := &statements{}
	e.open(t, e.d.Pool(t, func(c *db.Config) { c.PoolConfig.ConnConfig.Tracer = sent }))
	for _, tc := range []struct {
		name string
		call func() error
		want error
	}{
		{"garbage cursor", listErr(e, ctxA, repo.ListOptions{After: "not a cursor!"}), repo.ErrInvalidCursor},
		{"short cursor", listErr(e, ctxA, repo.ListOptions{After: "AAAA"}), repo.ErrInvalidCursor},
		{"padded cursor", listErr(e, ctxA, repo.ListOptions{After: "AAAAAAAAAAAAAAAAAAAAAA=="}), repo.ErrInvalidCursor},
		{"limit too high", listErr(e, ctxA, repo.ListOptions{Limit: repo.MaxLimit + 1}), repo.ErrInvalidQuery},
		{"negative limit", listErr(e, ctxA, repo.ListOptions{Limit: -1}), repo.ErrInvalidQuery},
		{"encrypted column", listErr(e, ctxA, repo.ListOptions{}, repo.Eq("email", "x")), repo.ErrInvalidQuery},
		{"unknown column", listErr(e, ctxA, repo.ListOptions{}, repo.Eq("nope", 1)), repo.ErrInvalidQuery},
		{"count on an encrypted column", func() error { _, err := e.customers.Count(ctxA, repo.Eq("phone", "x")); return err }, repo.ErrInvalidQuery},
		{"find by a column without blind index", func() error { _, err := e.customers.FindBy(ctxA, "phone", "x"); return err }, repo.ErrInvalidQuery},
		{"find by a plain column", func() error { _, err := e.customers.FindBy(ctxA, "display_name", "x"); return err }, repo.ErrInvalidQuery},
		{"no principal", listErr(e, testContext(t), repo.ListOptions{}), repo.ErrNoTenant},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := sent.count()
			if err := tc.call(); !errors.Is(err, tc.want) {
				t.Errorf("got %v, want %v", err, tc.want)
			}
			if n := sent.count() - before; n != 0 {
				t.Errorf("got %d statements sent, want none", n)
			}
		})
	}
	// The counter does count: a valid List sends one statement.
	before := sent.count()
	if _, err := e.customers.List(ctxA, repo.ListOptions{}); err != nil || sent.count() == before {
		t.Errorf("a valid List: got %d statements (%v), want some", sent.count()-before, err)
	}
}

func listErr(e *env, ctx context.Context, opts repo.ListOptions, conds ...repo.Cond) func() error {
	return func() error {
		_, err := e.customers.List(ctx, opts, conds...)
		return err
	}
}

// statements is a pgx tracer that keeps the text of every statement sent, alone or in a batch.
type statements struct {
	mu  sync.Mutex
	sql []string
}

func (s *statements) add(sql string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sql = append(s.sql, sql)
}

func (s *statements) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.sql)
}

// matching returns how many statements sent start with prefix.
func (s *statements) matching(prefix string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, q := range s.sql {
		if strings.HasPrefix(q, prefix) {
			n++
		}
	}
	return n
}

func (s *statements) TraceQueryStart(ctx context.Context, _ *pgx.Conn, d pgx.TraceQueryStartData) context.Context {
	s.add(d.SQL)
	return ctx
}
func (s *statements) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}
func (s *statements) TraceBatchStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceBatchStartData) context.Context {
	return ctx
}
func (s *statements) TraceBatchQuery(_ context.Context, _ *pgx.Conn, d pgx.TraceBatchQueryData) {
	s.add(d.SQL)
}
func (s *statements) TraceBatchEnd(context.Context, *pgx.Conn, pgx.TraceBatchEndData) {}

func TestInsertManyChunksInOneTransaction(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a, ctxA := e.tenant(t, "a")
	sent := &statements{}
	e.open(t, e.d.Pool(t, func(c *db.Config) { c.PoolConfig.ConnConfig.Tracer = sent }))
	// A customer binds 7 parameters (tenant_id, id, display_name, email, email_bidx, phone, notes):
	// 10000 rows need two statements under the limit of 65535.
	const n = 10000
	rows := make([]*customer, n)
	for i := range rows {
		rows[i] = &customer{DisplayName: fmt.Sprint("bulk", i), Email: fmt.Sprintf("bulk%d@x", i)}
	}
	if err := e.customers.InsertMany(ctxA, rows); err != nil {
		t.Fatal(err)
	}
	if got := sent.matching("INSERT INTO"); got != 2 {
		t.Errorf("got %d INSERT statements, want 2", got)
	}
	for _, r := range []*customer{rows[0], rows[n-1]} {
		if r.ID.IsZero() || r.TenantID != a || r.Version != 1 || r.CreatedAt.IsZero() {
			t.Errorf("got %+v, want id, tenant, version and created_at filled", r)
		}
	}
	if got, err := e.customers.Count(ctxA); err != nil || got != n {
		t.Errorf("got %d rows (%v), want %d", got, err, n)
	}
	found, err := e.customers.FindBy(ctxA, "email", "BULK9999@x")
	if err != nil || len(found) != 1 || found[0].ID != rows[n-1].ID {
		t.Errorf("FindBy of the last row: got %d rows (%v), want the row %v", len(found), err, rows[n-1].ID)
	}
	// The last row of a second call duplicates a blind index (the same e-mail): its statement, the second,
	// fails, and the first statement's rows go with it.
	again := make([]*customer, n)
	for i := range again {
		again[i] = &customer{DisplayName: fmt.Sprint("again", i), Email: fmt.Sprintf("again%d@x", i)}
	}
	again[n-1].Email = "bulk1@x"
	if err := e.customers.InsertMany(ctxA, again); sqlState(err) != "23505" {
		t.Errorf("duplicate e-mail in the second statement: got %v, want a unique violation", err)
	}
	if got := sent.matching("INSERT INTO"); got != 4 {
		t.Errorf("got %d INSERT statements in all, want 4 (the duplicate is in the second of the second call)", got)
	}
	if got, err := e.customers.Count(ctxA); err != nil || got != n {
		t.Errorf("after the failed InsertMany: got %d rows (%v), want %d (nothing of it written)", got, err, n)
	}
}

func TestTamperedRowReportsErrTampered(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	_, ctxA := e.tenant(t, "a")
	c1 := customer{DisplayName: "one", Email: "one@x", Phone: "+1 555 0101"}
	if err := e.customers.Insert(ctxA, &c1); err != nil {
		t.Fatal(err)
	}
	c2 := mustCustomer(t, e, ctxA, "two", "two@x")
	if _, err := mustConn(t, e.d.SuperDSN).Exec(ctxA, "UPDATE customers SET phone = (SELECT phone FROM customers WHERE id = $1) WHERE id = $2", c1.ID, c2.ID); err != nil {
		t.Fatal(err)
	}
	got, err := e.customers.Get(ctxA, c2.ID)
	if !errors.Is(err, repo.ErrTampered) {
		t.Fatalf("got %v, want ErrTampered", err)
	}
	if strings.Contains(err.Error(), "0101") {
		t.Errorf("error %q contains the moved plaintext", err)
	}
	if diff := cmp.Diff(customer{}, got); diff != "" {
		t.Errorf("Get of the tampered row returned a partial row (-want +got):\n%s", diff)
	}
	if _, err := e.customers.Get(ctxA, c1.ID); err != nil {
		t.Errorf("the untouched row: %v", err)
	}
}

func TestWithTxRunsCustomSQLInTheSameTransaction(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	_, ctxA := e.tenant(t, "a")
	boom := errors.New("roll back")
	var c customer
	err := e.pool.Tx(ctxA, func(tx pgx.Tx) error {
		c = customer{DisplayName: "tx", Email: "tx@x"}
		if err := e.customers.With(tx).Insert(ctxA, &c); err != nil {
			return err
		}
		var n int
		if err := tx.QueryRow(ctxA, "SELECT count(*) FROM customers WHERE display_name = 'tx'").Scan(&n); err != nil || n != 1 {
			t.Errorf("custom SQL in the transaction sees %d rows (%v), want 1", n, err)
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("got %v, want the callback's error", err)
	}
	if _, err := e.customers.Get(ctxA, c.ID); !errors.Is(err, repo.ErrNotFound) {
		t.Errorf("after rollback: got %v, want ErrNotFound", err)
	}
}

func TestConcurrentTenantsSeeOnlyTheirRows(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	const tenants, perTenant = 8, 12
	var wg sync.WaitGroup
	for i := 0; i < tenants; i++ {
		id, ctx := e.tenant(t, fmt.Sprint("t", i))
		wg.Add(1)
		go func() {
			defer wg.Done()
			var mine []repo.ID
			for j := 0; j < perTenant; j++ {
				c := customer{DisplayName: fmt.Sprint(id, j), Email: fmt.Sprintf("%d@%s", j, id)}
				if err := e.customers.Insert(ctx, &c); err != nil {
					t.Error(err)
					return
				}
				mine = append(mine, c.ID)
				p, err := e.customers.List(ctx, repo.ListOptions{Limit: repo.MaxLimit})
				if err != nil {
					t.Error(err)
					return
				}
				if len(p.Items) != len(mine) {
					t.Errorf("tenant %s sees %d rows, want its own %d", id, len(p.Items), len(mine))
					return
				}
				for k, got := range p.Items {
					if got.TenantID != id || got.ID != mine[k] || !strings.HasSuffix(got.Email, id.String()) {
						t.Errorf("tenant %s got a row of %s", id, got.TenantID)
						return
					}
				}
			}
		}()
	}
	wg.Wait()
}
