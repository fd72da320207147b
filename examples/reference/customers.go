package reference

import (
	"context"
	"time"

	"github.com/tenantseal/tenantseal"
	"github.com/tenantseal/tenantseal/db"
	"github.com/tenantseal/tenantseal/keys"
	"github.com/tenantseal/tenantseal/repo"
)

// Customer is a row of public.customers. Email, Phone and Notes are stored encrypted; Email also has a
// blind index for FindByEmail.
type Customer struct {
	TenantID    tenantseal.TenantID `ts:"tenant_id,tenant"`
	ID          repo.ID             `ts:"id,pk"`
	DisplayName string              `ts:"display_name"`
	Email       string              `ts:"email,encrypted,bidx=email_bidx,normalize=email"`
	Phone       string              `ts:"phone,encrypted"`
	Notes       *string             `ts:"notes,encrypted"`
	CreatedAt   time.Time           `ts:"created_at,readonly"`
	UpdatedAt   time.Time           `ts:"updated_at,updated"`
	Version     int64               `ts:"version,version"`
}

// Customers is the customers repository.
type Customers struct{ *repo.Table[Customer] }

// NewCustomers returns the customers repository.
func NewCustomers(ctx context.Context, pool *db.Pool, kr *keys.Keyring) (*Customers, error) {
	t, err := repo.New[Customer](ctx, pool, kr, "public.customers")
	if err != nil {
		return nil, err
	}
	return &Customers{t}, nil
}

// FindByEmail returns the tenant's customer with email (compared trimmed and lower-cased), or
// [repo.ErrNotFound].
func (c *Customers) FindByEmail(ctx context.Context, email string) (Customer, error) {
	rows, err := c.FindBy(ctx, "email", email)
	if err != nil {
		return Customer{}, err
	}
	if len(rows) == 0 {
		return Customer{}, repo.ErrNotFound
	}
	return rows[0], nil
}
