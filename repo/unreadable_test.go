package repo_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/tenantseal/tenantseal/keys"
	"github.com/tenantseal/tenantseal/repo"
	"github.com/tenantseal/tenantseal/tenants"
)

// One row whose field does not decrypt does not fail a List page: the page names it and returns the
// others, and the cursor goes past it. After a shred every row is named, as shredded, not tampered.
func TestListNamesUnreadableRows(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a, ctx := e.tenant(t, "a")
	var cs []customer
	for _, m := range []string{"1@x", "2@x", "3@x"} {
		cs = append(cs, mustCustomer(t, e, ctx, "c", m))
	}
	// Someone with the table copies the first row's email into the second.
	if _, err := mustConn(t, e.d.SuperDSN).Exec(ctx, "UPDATE customers SET email = (SELECT email FROM customers WHERE id = $1) WHERE id = $2", cs[0].ID, cs[1].ID); err != nil {
		t.Fatal(err)
	}
	page, err := e.customers.List(ctx, repo.ListOptions{Limit: 2})
	if err != nil {
		t.Fatalf("got %v, want the page", err)
	}
	if len(page.Items) != 1 || page.Items[0].ID != cs[0].ID || len(page.Unreadable) != 1 || page.Unreadable[0].ID != cs[1].ID ||
		!errors.Is(page.Unreadable[0].Err, keys.ErrTampered) || page.Next == "" {
		t.Fatalf("first page: got %+v, want the first row, the second named as tampered, and a cursor", page)
	}
	var fe *keys.FieldError
	if !errors.As(page.Unreadable[0].Err, &fe) || fe.Column != "email" {
		t.Errorf("got %v, want a FieldError naming the column", page.Unreadable[0].Err)
	}
	next, err := e.customers.List(ctx, repo.ListOptions{Limit: 2, After: page.Next})
	if err != nil || len(next.Items) != 1 || next.Items[0].ID != cs[2].ID || len(next.Unreadable) != 0 || next.Next != "" {
		t.Errorf("second page: got %+v (%v), want the third row alone", next, err)
	}
	if _, err := e.customers.Get(ctx, cs[1].ID); !errors.Is(err, keys.ErrTampered) {
		t.Errorf("get the tampered row: got %v, want ErrTampered", err)
	}

	if _, err := tenants.Shred(ctx, mustConn(t, e.d.OwnerDSN), &events{}, a); err != nil {
		t.Fatal(err)
	}
	e.kr.Invalidate(a)
	page, err = e.customers.List(ctx, repo.ListOptions{})
	if err != nil || len(page.Items) != 0 || len(page.Unreadable) != 3 {
		t.Fatalf("after the shred: got %+v (%v), want every row named", page, err)
	}
	for _, u := range page.Unreadable {
		if !errors.Is(u.Err, keys.ErrShredded) || errors.Is(u.Err, keys.ErrTampered) {
			t.Errorf("row %s after the shred: got %v, want ErrShredded, no tampering", u.ID, u.Err)
		}
	}
}

// One candidate of a FindBy that does not decrypt does not hide the others: the matches come back with
// an UnreadableError naming it.
func TestFindByNamesUnreadableCandidates(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	_, ctx := e.tenant(t, "a")
	// Two candidates for one value: the index on the blind index, unique in the example schema, is not
	// here (blind indexes are not unique in general: they are truncated).
	if _, err := mustConn(t, e.d.SuperDSN).Exec(ctx, "DROP INDEX customers_email_bidx; CREATE INDEX customers_email_bidx ON customers (tenant_id, email_bidx)"); err != nil {
		t.Fatal(err)
	}
	c0 := mustCustomer(t, e, ctx, "c0", "dup@x")
	c1 := mustCustomer(t, e, ctx, "c1", "dup@x")
	// Someone with the table moves c0's email ciphertext into c1: c1's blind index still says dup@x.
	if _, err := mustConn(t, e.d.SuperDSN).Exec(ctx, "UPDATE customers SET email = (SELECT email FROM customers WHERE id = $1) WHERE id = $2", c0.ID, c1.ID); err != nil {
		t.Fatal(err)
	}
	found, err := e.customers.FindBy(ctx, "email", "dup@x")
	var ue *repo.UnreadableError
	if !errors.As(err, &ue) || len(ue.Rows) != 1 || ue.Rows[0].ID != c1.ID || !errors.Is(err, keys.ErrTampered) {
		t.Fatalf("got %v, want an UnreadableError naming %s as tampered", err, c1.ID)
	}
	if len(found) != 1 || found[0].ID != c0.ID {
		t.Errorf("got %d rows, want the readable match %s", len(found), c0.ID)
	}
	if strings.Contains(err.Error(), "dup@x") {
		t.Errorf("the error %q carries the plaintext", err)
	}
}
