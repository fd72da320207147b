package repo_test

import (
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/tenantseal/tenantseal/repo"
)

// Custom SQL reads rows through the repository's mapping and decryption, bound to each row as the
// repository's own reads are.
func TestCustomSQLThroughColumnsAndDest(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a, ctxA := e.tenant(t, "a")
	c1 := mustCustomer(t, e, ctxA, "one", "one@x")
	c2 := mustCustomer(t, e, ctxA, "two", "two@x")
	sql := "SELECT " + e.customers.Columns("c") + " FROM public.customers c WHERE c.tenant_id = $1 AND c.id = $2"
	read := func(id repo.ID) (customer, error) {
		var got customer
		dest, decrypt := e.customers.Dest(&got)
		if err := e.customers.DB().QueryRow(ctxA, sql, a, id).Scan(dest...); err != nil {
			t.Fatal(err)
		}
		return got, decrypt(ctxA)
	}
	got, err := read(c1.ID)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(c1, got); diff != "" {
		t.Errorf("custom read differs from the inserted row (-inserted +got):\n%s", diff)
	}
	if _, err := mustConn(t, e.d.SuperDSN).Exec(ctxA, "UPDATE customers SET email = (SELECT email FROM customers WHERE id = $1) WHERE id = $2", c1.ID, c2.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := read(c2.ID); !errors.Is(err, repo.ErrTampered) {
		t.Errorf("custom read of a moved ciphertext: got %v, want ErrTampered", err)
	}
	if got, want := e.customers.Columns(""), `"tenant_id", "id", "display_name", "email", "phone", "notes", "created_at", "updated_at", "version"`; got != want {
		t.Errorf("Columns(\"\"): got %s, want %s", got, want)
	}
}
