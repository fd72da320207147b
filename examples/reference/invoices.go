package reference

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tenantseal/tenantseal"
	"github.com/tenantseal/tenantseal/db"
	"github.com/tenantseal/tenantseal/keys"
	"github.com/tenantseal/tenantseal/repo"
)

// Invoice statuses, as the CHECK constraint of public.invoices allows them.
const (
	StatusDraft  = "draft"
	StatusIssued = "issued"
	StatusPaid   = "paid"
	StatusVoid   = "void"
)

// ErrUnknownStatus means a status other than the Status constants. Use errors.Is.
var ErrUnknownStatus = errors.New("reference: unknown invoice status")

// Invoice is a row of public.invoices. Memo is stored encrypted.
type Invoice struct {
	TenantID    tenantseal.TenantID `ts:"tenant_id,tenant"`
	ID          repo.ID             `ts:"id,pk"`
	CustomerID  repo.ID             `ts:"customer_id"`
	AmountMinor int64               `ts:"amount_minor"`
	Currency    string              `ts:"currency"`
	Status      string              `ts:"status"`
	Memo        *string             `ts:"memo,encrypted"`
	IssuedAt    *time.Time          `ts:"issued_at"`
	Version     int64               `ts:"version,version"`
}

// Invoices is the invoices repository.
type Invoices struct {
	*repo.Table[Invoice]
	customers *repo.Table[Customer]
}

// NewInvoices returns the invoices repository.
func NewInvoices(ctx context.Context, pool *db.Pool, kr *keys.Keyring) (*Invoices, error) {
	t, err := repo.New[Invoice](ctx, pool, kr, "public.invoices")
	if err != nil {
		return nil, err
	}
	c, err := repo.New[Customer](ctx, pool, kr, "public.customers")
	if err != nil {
		return nil, err
	}
	return &Invoices{Table: t, customers: c}, nil
}

// With returns a copy that runs on tx.
func (r *Invoices) With(tx pgx.Tx) *Invoices {
	return &Invoices{Table: r.Table.With(tx), customers: r.customers.With(tx)}
}

// ByCustomer pages through a customer's invoices.
func (r *Invoices) ByCustomer(ctx context.Context, customer repo.ID, opts repo.ListOptions) (repo.Page[Invoice], error) {
	return r.List(ctx, opts, repo.Eq("customer_id", customer))
}

// ByStatus pages through the invoices with a status, or fails with [ErrUnknownStatus].
func (r *Invoices) ByStatus(ctx context.Context, status string, opts repo.ListOptions) (repo.Page[Invoice], error) {
	switch status {
	case StatusDraft, StatusIssued, StatusPaid, StatusVoid:
	default:
		return repo.Page[Invoice]{}, fmt.Errorf("%w %q", ErrUnknownStatus, status)
	}
	return r.List(ctx, opts, repo.Eq("status", status))
}

// InvoiceWithCustomer is an invoice and its customer, read in one statement.
type InvoiceWithCustomer struct {
	Invoice  Invoice
	Customer Customer
}

// GetWithCustomer returns an invoice joined with its customer, in one statement. The join matches on
// (tenant_id, id), as the composite foreign key does, and both sides carry the tenant predicate: it
// cannot leave the tenant. A miss is [repo.ErrNotFound], answered by Get, which also records an id of
// another tenant's invoice.
func (r *Invoices) GetWithCustomer(ctx context.Context, id repo.ID) (InvoiceWithCustomer, error) {
	var out InvoiceWithCustomer
	tenant, err := tenantseal.TenantFrom(ctx)
	if err != nil {
		return out, err
	}
	invDest, invDecrypt := r.Dest(&out.Invoice)
	custDest, custDecrypt := r.customers.Dest(&out.Customer)
	err = r.DB().QueryRow(ctx, "SELECT "+r.Columns("i")+", "+r.customers.Columns("c")+
		` FROM public.invoices i JOIN public.customers c ON c.tenant_id = i.tenant_id AND c.id = i.customer_id
		WHERE i.tenant_id = $1 AND c.tenant_id = $1 AND i.id = $2`, tenant, id).Scan(append(invDest, custDest...)...)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		if _, err := r.Get(ctx, id); err != nil {
			return InvoiceWithCustomer{}, err
		}
		return InvoiceWithCustomer{}, repo.ErrNotFound // inserted since: not there when asked
	case err != nil:
		return InvoiceWithCustomer{}, fmt.Errorf("reference: get invoice with customer: %w", err)
	}
	if err := invDecrypt(ctx); err != nil {
		return InvoiceWithCustomer{}, err
	}
	if err := custDecrypt(ctx); err != nil {
		return InvoiceWithCustomer{}, err
	}
	return out, nil
}
