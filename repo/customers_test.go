package repo_test

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/tenantseal/tenantseal"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5"

	"github.com/tenantseal/tenantseal/repo"
)

func TestCustomerLifecycle(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a, ctxA := e.tenant(t, "a")
	_, ctxB := e.tenant(t, "b")

	c := repo.Customer{DisplayName: "Ada", Email: " Ada@Example.COM", Phone: "+44 1", Notes: ptr("likes tea")}
	if err := e.customers.Insert(ctxA, &c); err != nil {
		t.Fatal(err)
	}
	if c.ID.IsZero() || c.TenantID != a || c.Version != 1 || c.CreatedAt.IsZero() {
		t.Fatalf("after insert got %+v, want id, tenant %s, version 1 and created_at filled", c, a)
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
	mustConn(t, e.d.SuperDSN).QueryRow(ctxA, "SELECT email, notes FROM customers WHERE id = $1", c.ID).Scan(&email, &notes)
	if strings.Contains(string(email), "Example") || strings.Contains(string(notes), "tea") {
		t.Error("the stored row holds plaintext")
	}

	found, err := e.customers.FindByEmail(ctxA, "ada@example.com  ")
	if err != nil || found.ID != c.ID {
		t.Errorf("FindByEmail: got %v (%v), want %v", found.ID, err, c.ID)
	}
	if _, err := e.customers.FindByEmail(ctxB, "ada@example.com"); !errors.Is(err, repo.ErrNotFound) {
		t.Errorf("FindByEmail from another tenant: got %v, want ErrNotFound", err)
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
	again, _ := e.customers.Get(ctxA, c.ID)
	if again.DisplayName != "Ada L." || again.Notes != nil || again.Version != 2 {
		t.Errorf("after the refused stale update got %+v, want the first update's row", again)
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

func TestTenantMismatchWritesNothing(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a, ctxA := e.tenant(t, "a")
	b, ctxB := e.tenant(t, "b")
	bc := mustCustomer(t, e, ctxB, "B", "b@x")

	c := repo.Customer{TenantID: b, DisplayName: "smuggled", Email: "s@x"}
	err := e.customers.Insert(ctxA, &c)
	var me *repo.MismatchError
	if !errors.Is(err, repo.ErrTenantMismatch) || !errors.As(err, &me) || me.Given != b || me.Principal != a {
		t.Errorf("Insert with b's tenant as a: got %v, want a MismatchError naming both tenants", err)
	}
	many := []*repo.Customer{{DisplayName: "ok", Email: "ok@x"}, {TenantID: b, DisplayName: "smuggled", Email: "s2@x"}}
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
	for _, tc := range []struct {
		name string
		opts repo.ListOptions
		cond []repo.Cond
	}{
		{"garbage cursor", repo.ListOptions{After: "not a cursor!"}, nil},
		{"short cursor", repo.ListOptions{After: "AAAA"}, nil},
		{"limit too high", repo.ListOptions{Limit: repo.MaxLimit + 1}, nil},
		{"negative limit", repo.ListOptions{Limit: -1}, nil},
		{"encrypted column", repo.ListOptions{}, []repo.Cond{repo.Eq("email", "x")}},
		{"unknown column", repo.ListOptions{}, []repo.Cond{repo.Eq("nope", 1)}},
	} {
		if _, err := e.customers.List(ctxA, tc.opts, tc.cond...); err == nil {
			t.Errorf("%s: got no error, want one", tc.name)
		}
	}
}

func TestInsertManyChunksInOneTransaction(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a, ctxA := e.tenant(t, "a")
	// Customers bind 8 parameters a row: 9000 rows need two statements under the 65535 limit.
	rows := make([]*repo.Customer, 9000)
	for i := range rows {
		rows[i] = &repo.Customer{DisplayName: fmt.Sprint("bulk", i), Email: fmt.Sprintf("bulk%d@x", i)}
	}
	if err := e.customers.InsertMany(ctxA, rows); err != nil {
		t.Fatal(err)
	}
	for _, r := range []*repo.Customer{rows[0], rows[8999]} {
		if r.ID.IsZero() || r.TenantID != a || r.Version != 1 || r.CreatedAt.IsZero() {
			t.Errorf("got %+v, want id, tenant, version and created_at filled", r)
		}
	}
	if n, _ := e.customers.Count(ctxA); n != 9000 {
		t.Errorf("got %d rows, want 9000", n)
	}
	got, err := e.customers.FindByEmail(ctxA, "BULK8999@x")
	if err != nil || got.ID != rows[8999].ID {
		t.Errorf("FindByEmail of the last row: got %v (%v), want %v", got.ID, err, rows[8999].ID)
	}
	// A duplicate blind index (same e-mail) fails the whole call: nothing of it is written.
	dup := []*repo.Customer{{DisplayName: "new", Email: "fresh@x"}, {DisplayName: "dup", Email: "bulk1@x"}}
	if err := e.customers.InsertMany(ctxA, dup); sqlState(err) != "23505" {
		t.Errorf("duplicate e-mail: got %v, want a unique violation", err)
	}
	if _, err := e.customers.FindByEmail(ctxA, "fresh@x"); !errors.Is(err, repo.ErrNotFound) {
		t.Errorf("after the failed InsertMany: got %v, want nothing written", err)
	}
}

func TestTamperedRowReportsErrTampered(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	_, ctxA := e.tenant(t, "a")
	c1 := mustCustomer(t, e, ctxA, "one", "one@x")
	c2 := mustCustomer(t, e, ctxA, "two", "two@x")
	if _, err := mustConn(t, e.d.SuperDSN).Exec(ctxA, "UPDATE customers SET phone = (SELECT phone FROM customers WHERE id = $1) WHERE id = $2", c1.ID, c2.ID); err != nil {
		t.Fatal(err)
	}
	_, err := e.customers.Get(ctxA, c2.ID)
	if !errors.Is(err, repo.ErrTampered) {
		t.Fatalf("got %v, want ErrTampered", err)
	}
	if strings.Contains(err.Error(), "555") {
		t.Errorf("error %q contains plaintext", err)
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
	var c repo.Customer
	err := e.pool.Tx(ctxA, func(tx pgx.Tx) error {
		c = repo.Customer{DisplayName: "tx", Email: "tx@x"}
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
				c := repo.Customer{DisplayName: fmt.Sprint(id, j), Email: fmt.Sprintf("%d@%s", j, id)}
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
