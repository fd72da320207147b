package repo_test

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/tenantseal/tenantseal"

	"github.com/tenantseal/tenantseal/repo"
)

func TestInvoices(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	_, ctxA := e.tenant(t, "a")
	_, ctxB := e.tenant(t, "b")
	ca := mustCustomer(t, e, ctxA, "A", "a@x")
	ca2 := mustCustomer(t, e, ctxA, "A2", "a2@x")
	cb := mustCustomer(t, e, ctxB, "B", "b@x")

	inv := []*repo.Invoice{
		{CustomerID: ca.ID, AmountMinor: 1000, Currency: "EUR", Status: repo.StatusDraft, Memo: ptr("net 30")},
		{CustomerID: ca.ID, AmountMinor: 2000, Currency: "EUR", Status: repo.StatusIssued},
		{CustomerID: ca2.ID, AmountMinor: 3000, Currency: "USD", Status: repo.StatusIssued},
	}
	if err := e.invoices.InsertMany(ctxA, inv); err != nil {
		t.Fatal(err)
	}
	bInv := repo.Invoice{CustomerID: cb.ID, AmountMinor: 9, Currency: "EUR", Status: repo.StatusPaid}
	if err := e.invoices.Insert(ctxB, &bInv); err != nil {
		t.Fatal(err)
	}

	p, err := e.invoices.ByCustomer(ctxA, ca.ID, repo.ListOptions{})
	if err != nil || len(p.Items) != 2 || p.Items[0].ID != inv[0].ID || *p.Items[0].Memo != "net 30" {
		t.Errorf("ByCustomer: got %+v (%v), want the 2 invoices of customer A with memo decrypted", p.Items, err)
	}
	p, err = e.invoices.ByStatus(ctxA, repo.StatusIssued, repo.ListOptions{})
	if err != nil || len(p.Items) != 2 {
		t.Errorf("ByStatus issued: got %d (%v), want 2", len(p.Items), err)
	}
	if _, err := e.invoices.ByStatus(ctxA, "stolen", repo.ListOptions{}); err == nil {
		t.Error("ByStatus with an unknown status: got no error")
	}
	// A customer of another tenant has no invoices here.
	p, err = e.invoices.ByCustomer(ctxA, cb.ID, repo.ListOptions{})
	if err != nil || len(p.Items) != 0 {
		t.Errorf("ByCustomer of b's customer as a: got %d (%v), want none", len(p.Items), err)
	}

	j, err := e.invoices.GetWithCustomer(ctxA, inv[0].ID)
	if err != nil || j.Customer.ID != ca.ID || j.Customer.Email != "a@x" || *j.Invoice.Memo != "net 30" {
		t.Errorf("GetWithCustomer: got %+v (%v), want invoice 0 with customer A, both decrypted", j, err)
	}
	if _, err := e.invoices.GetWithCustomer(ctxA, bInv.ID); !errors.Is(err, repo.ErrNotFound) {
		t.Errorf("GetWithCustomer of b's invoice as a: got %v, want ErrNotFound", err)
	}
	if _, err := e.invoices.Get(ctxA, bInv.ID); !errors.Is(err, repo.ErrNotFound) {
		t.Errorf("Get of b's invoice as a: got %v, want ErrNotFound", err)
	}
	// An invoice of a's pointing at b's customer: the composite foreign key refuses it.
	bad := repo.Invoice{CustomerID: cb.ID, AmountMinor: 1, Currency: "EUR", Status: repo.StatusDraft}
	if err := e.invoices.Insert(ctxA, &bad); sqlState(err) != "23503" {
		t.Errorf("invoice for another tenant's customer: got %v, want a foreign key violation", err)
	}
	if err := e.invoices.Insert(ctxA, &repo.Invoice{CustomerID: ca.ID, Currency: "eur", Status: repo.StatusDraft}); sqlState(err) != "23514" {
		t.Errorf("bad currency: got %v, want a check violation as *pgconn.PgError", err)
	}
}

func TestDocumentsStreamAndLimit(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	_, ctxA := e.tenant(t, "a")
	_, ctxB := e.tenant(t, "b")
	c := mustCustomer(t, e, ctxA, "A", "a@x")
	inv := repo.Invoice{CustomerID: c.ID, AmountMinor: 1, Currency: "EUR", Status: repo.StatusDraft}
	if err := e.invoices.Insert(ctxA, &inv); err != nil {
		t.Fatal(err)
	}
	body := bytes.Repeat([]byte("%PDF-1.7 binary\x00\xff"), 1000)
	d := repo.Document{InvoiceID: inv.ID, Filename: "inv.pdf", ContentType: "application/pdf"}
	if err := e.documents.Upload(ctxA, &d, bytes.NewReader(body)); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	got, err := e.documents.Download(ctxA, d.ID, &out)
	if err != nil || !bytes.Equal(out.Bytes(), body) || got.Size != int64(len(body)) {
		t.Errorf("Download: got %d bytes, size %d (%v), want %d", out.Len(), got.Size, err, len(body))
	}
	out.Reset()
	if _, err := e.documents.Download(ctxB, d.ID, &out); !errors.Is(err, repo.ErrNotFound) || out.Len() != 0 {
		t.Errorf("Download by another tenant: got %v and %d bytes, want ErrNotFound and nothing", err, out.Len())
	}
	small := *e.documents
	small.MaxBody = 100
	big := repo.Document{InvoiceID: inv.ID, Filename: "big.bin", ContentType: "application/octet-stream"}
	if err := small.Upload(ctxA, &big, strings.NewReader(strings.Repeat("x", 101))); !errors.Is(err, repo.ErrTooLarge) {
		t.Errorf("oversized upload: got %v, want ErrTooLarge", err)
	}
	if n, _ := e.documents.Count(ctxA); n != 1 {
		t.Errorf("got %d documents, want 1 (the oversized one not written)", n)
	}
}

func TestConstructionChecksTags(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := testContext(t)
	type base struct {
		TenantID tenantseal.TenantID `ts:"tenant_id,tenant"`
		ID       repo.ID             `ts:"id,pk"`
	}
	type missingColumn struct {
		TenantID tenantseal.TenantID `ts:"tenant_id,tenant"`
		ID       repo.ID             `ts:"id,pk"`
		Nickname string              `ts:"nickname"`
	}
	type badEncType struct {
		TenantID tenantseal.TenantID `ts:"tenant_id,tenant"`
		ID       repo.ID             `ts:"id,pk"`
		Phone    int                 `ts:"phone,encrypted"`
	}
	type encOnText struct {
		TenantID tenantseal.TenantID `ts:"tenant_id,tenant"`
		ID       repo.ID             `ts:"id,pk"`
		Name     string              `ts:"display_name,encrypted"`
	}
	type wrongBidx struct {
		TenantID tenantseal.TenantID `ts:"tenant_id,tenant"`
		ID       repo.ID             `ts:"id,pk"`
		Phone    string              `ts:"phone,encrypted,bidx=email_bidx"`
	}
	type noPK struct {
		TenantID tenantseal.TenantID `ts:"tenant_id,tenant"`
		Name     string              `ts:"display_name"`
	}
	type badOption struct {
		TenantID tenantseal.TenantID `ts:"tenant_id,tenant"`
		ID       repo.ID             `ts:"id,pk,sparkly"`
	}
	type badVersion struct {
		TenantID tenantseal.TenantID `ts:"tenant_id,tenant"`
		ID       repo.ID             `ts:"id,pk"`
		Version  string              `ts:"version,version"`
	}
	tests := []struct {
		name string
		err  error
		want string
	}{
		{"missing column", newErr[missingColumn](e, ctx, "customers"), `column "nickname" does not exist`},
		{"encrypted int", newErr[badEncType](e, ctx, "customers"), "must be string, []byte or *string"},
		{"encrypted text column", newErr[encOnText](e, ctx, "customers"), "must be bytea"},
		{"blind index not registered", newErr[wrongBidx](e, ctx, "customers"), "tenantseal.encrypted_columns says"},
		{"no pk", newErr[noPK](e, ctx, "customers"), "needs a field tagged pk"},
		{"unknown option", newErr[badOption](e, ctx, "customers"), "unknown option sparkly"},
		{"string version", newErr[badVersion](e, ctx, "customers"), "version must be an int64"},
		{"missing table", newErr[base](e, ctx, "no_such_table"), "no such table"},
	}
	for _, tc := range tests {
		if tc.err == nil || !strings.Contains(tc.err.Error(), tc.want) {
			t.Errorf("%s: got %v, want an error containing %q", tc.name, tc.err, tc.want)
		}
	}
	if err := newErr[base](e, ctx, "customers"); err != nil {
		t.Errorf("a minimal valid mapping: %v", err)
	}
}

func newErr[T any](e *env, ctx context.Context, table string) error {
	_, err := repo.New[T](ctx, e.pool, e.kr, table)
	return err
}
