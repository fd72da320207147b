package repo

import (
	"context"
	"time"

	"github.com/tenantseal/tenantseal"

	"github.com/tenantseal/tenantseal/db"
	"github.com/tenantseal/tenantseal/keys"
)

// Customer is a row of the reference customers table. Email, Phone and Notes are stored encrypted;
// Email also has a blind index for FindByEmail.
type Customer struct {
	TenantID    tenantseal.TenantID `ts:"tenant_id,tenant"`
	ID          ID                  `ts:"id,pk"`
	DisplayName string              `ts:"display_name"`
	Email       string              `ts:"email,encrypted,bidx=email_bidx,normalize=email"`
	Phone       string              `ts:"phone,encrypted"`
	Notes       *string             `ts:"notes,encrypted"`
	CreatedAt   time.Time           `ts:"created_at,readonly"`
	UpdatedAt   time.Time           `ts:"updated_at,updated"`
	Version     int64               `ts:"version,version"`
}

// Customers is the customers repository.
type Customers struct{ *Table[Customer] }

// NewCustomers returns the customers repository.
func NewCustomers(ctx context.Context, pool *db.Pool, kr *keys.Keyring) (*Customers, error) {
	t, err := New[Customer](ctx, pool, kr, "public.customers")
	if err != nil {
		return nil, err
	}
	return &Customers{t}, nil
}

// FindByEmail returns the tenant's customer with email (compared trimmed and lower-cased), or
// [ErrNotFound].
func (c *Customers) FindByEmail(ctx context.Context, email string) (Customer, error) {
	rows, err := c.FindBy(ctx, "email", email)
	if err != nil {
		return Customer{}, err
	}
	if len(rows) == 0 {
		return Customer{}, ErrNotFound
	}
	return rows[0], nil
}
