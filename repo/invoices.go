package repo

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/tenantseal/tenantseal"

	"github.com/jackc/pgx/v5"

	"github.com/tenantseal/tenantseal/db"
	"github.com/tenantseal/tenantseal/keys"
)

// Invoice statuses.
const (
	StatusDraft  = "draft"
	StatusIssued = "issued"
	StatusPaid   = "paid"
	StatusVoid   = "void"
)

// Invoice is a row of the reference invoices table. Memo is stored encrypted.
type Invoice struct {
	TenantID    tenantseal.TenantID `ts:"tenant_id,tenant"`
	ID          ID                  `ts:"id,pk"`
	CustomerID  ID                  `ts:"customer_id"`
	AmountMinor int64               `ts:"amount_minor"`
	Currency    string              `ts:"currency"`
	Status      string              `ts:"status"`
	Memo        *string             `ts:"memo,encrypted"`
	IssuedAt    *time.Time          `ts:"issued_at"`
	Version     int64               `ts:"version,version"`
}

// Invoices is the invoices repository.
type Invoices struct {
	*Table[Invoice]
	customers *Table[Customer]
}

// NewInvoices returns the invoices repository.
func NewInvoices(ctx context.Context, pool *db.Pool, kr *keys.Keyring) (*Invoices, error) {
	t, err := New[Invoice](ctx, pool, kr, "public.invoices")
	if err != nil {
		return nil, err
	}
	c, err := New[Customer](ctx, pool, kr, "public.customers")
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
func (r *Invoices) ByCustomer(ctx context.Context, customer ID, opts ListOptions) (Page[Invoice], error) {
	return r.List(ctx, opts, Eq("customer_id", customer))
}

// ByStatus pages through the invoices with a status.
func (r *Invoices) ByStatus(ctx context.Context, status string, opts ListOptions) (Page[Invoice], error) {
	switch status {
	case StatusDraft, StatusIssued, StatusPaid, StatusVoid:
	default:
		return Page[Invoice]{}, fmt.Errorf("repo: unknown invoice status %q", status)
	}
	return r.List(ctx, opts, Eq("status", status))
}

// InvoiceWithCustomer is an invoice and its customer, read in one statement.
type InvoiceWithCustomer struct {
	Invoice  Invoice
	Customer Customer
}

// GetWithCustomer returns an invoice joined with its customer. The join matches on (tenant_id, id), as
// the composite foreign key does, and both sides carry the tenant predicate: it cannot leave the tenant.
func (r *Invoices) GetWithCustomer(ctx context.Context, id ID) (InvoiceWithCustomer, error) {
	ctx = r.keyCtx(ctx)
	var out InvoiceWithCustomer
	tenant, err := tenantseal.TenantFrom(ctx)
	if err != nil {
		return out, err
	}
	sql := fmt.Sprintf(`SELECT %s, %s FROM %s i JOIN %s c ON c.tenant_id = i.tenant_id AND c.id = i.customer_id
		WHERE i.tenant_id = $1 AND c.tenant_id = $1 AND i.id = $2`,
		r.qualifiedCols("i"), r.customers.qualifiedCols("c"), r.s.rel.QualifiedName(), r.customers.s.rel.QualifiedName())
	row := r.q.QueryRow(ctx, sql, tenant, id)
	err = scanJoined(ctx, row, r.Table, &out.Invoice, r.customers, &out.Customer)
	if errors.Is(err, pgx.ErrNoRows) {
		return out, r.notFound(ctx, "get", id)
	}
	return out, wrapErr("get invoice with customer", err)
}
