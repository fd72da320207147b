package reference_test

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5"

	"github.com/tenantseal/tenantseal"
	"github.com/tenantseal/tenantseal/examples/reference"
	"github.com/tenantseal/tenantseal/repo"
)

func TestFindByEmail(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	_, ctxA := e.tenant(t, "a")
	_, ctxB := e.tenant(t, "b")
	c := mustCustomer(t, e, ctxA, "Ada", " Ada@Example.COM")
	for _, tc := range []struct {
		name, email string
	}{
		{"as stored", " Ada@Example.COM"},
		{"lower-cased and trimmed", "ada@example.com  "},
		{"upper-cased", "ADA@EXAMPLE.COM"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := e.customers.FindByEmail(ctxA, tc.email)
			if err != nil || got.ID != c.ID || got.Email != c.Email {
				t.Errorf("got %v %q (%v), want %v %q", got.ID, got.Email, err, c.ID, c.Email)
			}
		})
	}
	if _, err := e.customers.FindByEmail(ctxA, "bob@example.com"); !errors.Is(err, repo.ErrNotFound) {
		t.Errorf("an address nobody has: got %v, want ErrNotFound", err)
	}
	if _, err := e.customers.FindByEmail(ctxB, "ada@example.com"); !errors.Is(err, repo.ErrNotFound) {
		t.Errorf("FindByEmail from another tenant: got %v, want ErrNotFound", err)
	}
}

func TestInvoices(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	_, ctxA := e.tenant(t, "a")
	_, ctxB := e.tenant(t, "b")
	ca := mustCustomer(t, e, ctxA, "A", "a@x")
	ca2 := mustCustomer(t, e, ctxA, "A2", "a2@x")
	cb := mustCustomer(t, e, ctxB, "B", "b@x")

	inv := []*reference.Invoice{
		{CustomerID: ca.ID, AmountMinor: 1000, Currency: "EUR", Status: reference.StatusDraft, Memo: ptr("net 30")},
		{CustomerID: ca.ID, AmountMinor: 2000, Currency: "EUR", Status: reference.StatusIssued},
		{CustomerID: ca2.ID, AmountMinor: 3000, Currency: "USD", Status: reference.StatusIssued},
	}
	if err := e.invoices.InsertMany(ctxA, inv); err != nil {
		t.Fatal(err)
	}
	bInv := reference.Invoice{CustomerID: cb.ID, AmountMinor: 9, Currency: "EUR", Status: reference.StatusPaid}
	if err := e.invoices.Insert(ctxB, &bInv); err != nil {
		t.Fatal(err)
	}

	p, err := e.invoices.ByCustomer(ctxA, ca.ID, repo.ListOptions{})
	if err != nil || len(p.Items) != 2 || p.Items[0].ID != inv[0].ID || p.Items[0].Memo == nil || *p.Items[0].Memo != "net 30" {
		t.Errorf("ByCustomer: got %+v (%v), want the 2 invoices of customer A with memo decrypted", p.Items, err)
	}
	p, err = e.invoices.ByStatus(ctxA, reference.StatusIssued, repo.ListOptions{})
	if err != nil || len(p.Items) != 2 {
		t.Errorf("ByStatus issued: got %d (%v), want 2", len(p.Items), err)
	}
	if _, err := e.invoices.ByStatus(ctxA, "stolen", repo.ListOptions{}); !errors.Is(err, reference.ErrUnknownStatus) {
		t.Errorf("ByStatus with an unknown status: got %v, want ErrUnknownStatus", err)
	}
	// A customer of another tenant has no invoices here.
	p, err = e.invoices.ByCustomer(ctxA, cb.ID, repo.ListOptions{})
	if err != nil || len(p.Items) != 0 {
		t.Errorf("ByCustomer of b's customer as a: got %d (%v), want none", len(p.Items), err)
	}

	j, err := e.invoices.GetWithCustomer(ctxA, inv[0].ID)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(reference.InvoiceWithCustomer{Invoice: *inv[0], Customer: ca}, j); diff != "" {
		t.Errorf("GetWithCustomer (-want +got):\n%s", diff)
	}
	e.events.take()
	if _, err := e.invoices.GetWithCustomer(ctxA, bInv.ID); !errors.Is(err, repo.ErrNotFound) {
		t.Errorf("GetWithCustomer of b's invoice as a: got %v, want ErrNotFound", err)
	}
	// The miss is reported as it is; the audit writer's database tells a foreign id from a missing one.
	want := []tenantseal.Event{{Kind: tenantseal.EventLookupMiss, Table: `"public"."invoices"`, Operation: "get", RowKey: bInv.ID.String()}}
	if diff := cmp.Diff(want, e.events.take()); diff != "" {
		t.Errorf("recorded for GetWithCustomer of b's invoice (-want +got):\n%s", diff)
	}
	if _, err := e.invoices.Get(ctxA, bInv.ID); !errors.Is(err, repo.ErrNotFound) {
		t.Errorf("Get of b's invoice as a: got %v, want ErrNotFound", err)
	}
	// An invoice of a's pointing at b's customer: the composite foreign key refuses it.
	bad := reference.Invoice{CustomerID: cb.ID, AmountMinor: 1, Currency: "EUR", Status: reference.StatusDraft}
	if err := e.invoices.Insert(ctxA, &bad); sqlState(err) != "23503" {
		t.Errorf("invoice for another tenant's customer: got %v, want a foreign key violation", err)
	}
	if err := e.invoices.Insert(ctxA, &reference.Invoice{CustomerID: ca.ID, Currency: "eur", Status: reference.StatusDraft}); sqlState(err) != "23514" {
		t.Errorf("bad currency: got %v, want a check violation as *pgconn.PgError", err)
	}
}

// GetWithCustomer on a transaction sees the transaction's rows, and its miss leaves the transaction usable.
func TestGetWithCustomerInATransaction(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	_, ctxA := e.tenant(t, "a")
	err := e.pool.Tx(ctxA, func(tx pgx.Tx) error {
		c := reference.Customer{DisplayName: "tx", Email: "tx@x"}
		if err := e.customers.With(tx).Insert(ctxA, &c); err != nil {
			return err
		}
		inv := reference.Invoice{CustomerID: c.ID, AmountMinor: 5, Currency: "EUR", Status: reference.StatusDraft, Memo: ptr("in tx")}
		if err := e.invoices.With(tx).Insert(ctxA, &inv); err != nil {
			return err
		}
		if _, err := e.invoices.With(tx).GetWithCustomer(ctxA, repo.NewID()); !errors.Is(err, repo.ErrNotFound) {
			t.Errorf("a missing invoice: got %v, want ErrNotFound", err)
		}
		j, err := e.invoices.With(tx).GetWithCustomer(ctxA, inv.ID)
		if err != nil {
			return err
		}
		if j.Customer.Email != "tx@x" || j.Invoice.Memo == nil || *j.Invoice.Memo != "in tx" {
			t.Errorf("got %+v, want the transaction's invoice and customer, decrypted", j)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestDocumentsStreamAndLimit(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	_, ctxA := e.tenant(t, "a")
	_, ctxB := e.tenant(t, "b")
	c := mustCustomer(t, e, ctxA, "A", "a@x")
	inv := reference.Invoice{CustomerID: c.ID, AmountMinor: 1, Currency: "EUR", Status: reference.StatusDraft}
	if err := e.invoices.Insert(ctxA, &inv); err != nil {
		t.Fatal(err)
	}
	body := bytes.Repeat([]byte("%PDF-1.7 binary\x00\xff"), 1000)
	d := reference.Document{InvoiceID: inv.ID, Filename: "inv.pdf", ContentType: "application/pdf"}
	if err := e.documents.Upload(ctxA, &d, bytes.NewReader(body)); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	got, err := e.documents.Download(ctxA, d.ID, &out)
	if err != nil || !bytes.Equal(out.Bytes(), body) || got.Size != int64(len(body)) || got.Body != nil {
		t.Errorf("Download: got %d bytes, size %d, body left %d (%v), want %d and no body", out.Len(), got.Size, len(got.Body), err, len(body))
	}
	out.Reset()
	if _, err := e.documents.Download(ctxB, d.ID, &out); !errors.Is(err, repo.ErrNotFound) || out.Len() != 0 {
		t.Errorf("Download by another tenant: got %v and %d bytes, want ErrNotFound and nothing", err, out.Len())
	}
	small := *e.documents
	small.MaxBody = 100
	big := reference.Document{InvoiceID: inv.ID, Filename: "big.bin", ContentType: "application/octet-stream"}
	if err := small.Upload(ctxA, &big, strings.NewReader(strings.Repeat("x", 101))); !errors.Is(err, reference.ErrTooLarge) {
		t.Errorf("oversized upload: got %v, want ErrTooLarge", err)
	}
	exact := reference.Document{InvoiceID: inv.ID, Filename: "exact.bin", ContentType: "application/octet-stream"}
	if err := small.Upload(ctxA, &exact, strings.NewReader(strings.Repeat("x", 100))); err != nil {
		t.Errorf("upload of exactly MaxBody: %v", err)
	}
	if n, err := e.documents.Count(ctxA); err != nil || n != 2 {
		t.Errorf("got %d documents (%v), want 2 (the oversized one not written)", n, err)
	}
}
