package tenants

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/tenantseal/tenantseal"
)

// Sentinel errors; use errors.Is.
var (
	// ErrNotFound means no tenant has the id.
	ErrNotFound = errors.New("tenants: no such tenant")
	// ErrInvalidName means a name [ValidateName] refuses; nothing was sent to the database.
	ErrInvalidName = errors.New("tenants: invalid tenant name")
	// ErrDeleted means the tenant is deleted, which is final: it cannot be suspended or resumed.
	ErrDeleted = errors.New("tenants: tenant is deleted")
	// ErrNoKeysets means the tenant has no keysets to shred: shredded already, or created without.
	ErrNoKeysets = errors.New("tenants: tenant has no keysets")
)

// DB is a connection as the owner role: *pgx.Conn, *pgxpool.Pool and pgx.Tx satisfy it.
type DB interface {
	Begin(ctx context.Context) (pgx.Tx, error)
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// Status is a tenant's state, as tenantseal.tenants.status stores it.
type Status string

// The states of a tenant.
const (
	StatusActive    Status = "active"
	StatusSuspended Status = "suspended"
	StatusDeleted   Status = "deleted" // final
)

// Tenant is a row of tenantseal.tenants.
type Tenant struct {
	ID        tenantseal.TenantID
	Name      string
	Status    Status
	CreatedAt time.Time
}

// KeysetCreator creates the keysets of the new tenant id inside tx, the transaction that creates the
// tenant: an error rolls both back. keys/pgstore's Admin provides one; nil creates none.
type KeysetCreator func(ctx context.Context, tx pgx.Tx, id tenantseal.TenantID) error

const tenantColumns = "id, name, status, created_at"

func scanTenant(r pgx.CollectableRow) (Tenant, error) {
	var t Tenant
	err := r.Scan(&t.ID, &t.Name, &t.Status, &t.CreatedAt)
	t.CreatedAt = t.CreatedAt.UTC()
	return t, err
}

// Create inserts an active tenant named name and, unless keysets is nil, its keysets, in one transaction.
// A tenant without keysets cannot use encrypted fields until it is given some (keys/pgstore's
// Admin.CreateKeysets). The name is checked with [ValidateName] first. An error of keysets is returned
// as it is, after the rollback.
func Create(ctx context.Context, db DB, name string, keysets KeysetCreator) (Tenant, error) {
	if err := ValidateName(name); err != nil {
		return Tenant{}, err
	}
	var t Tenant
	var keysetErr error
	err := pgx.BeginFunc(ctx, db, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, "INSERT INTO tenantseal.tenants (name) VALUES ($1) RETURNING "+tenantColumns, name)
		if err != nil {
			return err
		}
		if t, err = pgx.CollectExactlyOneRow(rows, scanTenant); err != nil {
			return err
		}
		if keysets != nil {
			keysetErr = keysets(ctx, tx, t.ID)
		}
		return keysetErr
	})
	switch {
	case keysetErr != nil:
		return Tenant{}, keysetErr // the creator's own message, with its own prefix
	case err != nil:
		return Tenant{}, fmt.Errorf("tenants: create: %w", err)
	}
	return t, nil
}

// List returns every tenant, the oldest first.
func List(ctx context.Context, db DB) ([]Tenant, error) {
	rows, err := db.Query(ctx, "SELECT "+tenantColumns+" FROM tenantseal.tenants ORDER BY created_at, id")
	if err != nil {
		return nil, fmt.Errorf("tenants: list: %w", err)
	}
	ts, err := pgx.CollectRows(rows, scanTenant)
	if err != nil {
		return nil, fmt.Errorf("tenants: list: %w", err)
	}
	return ts, nil
}

// Get returns the tenant id, or [ErrNotFound].
func Get(ctx context.Context, db DB, id tenantseal.TenantID) (Tenant, error) {
	rows, err := db.Query(ctx, "SELECT "+tenantColumns+" FROM tenantseal.tenants WHERE id = $1", id)
	if err != nil {
		return Tenant{}, fmt.Errorf("tenants: get %s: %w", id, err)
	}
	t, err := pgx.CollectExactlyOneRow(rows, scanTenant)
	if errors.Is(err, pgx.ErrNoRows) {
		return Tenant{}, fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	if err != nil {
		return Tenant{}, fmt.Errorf("tenants: get %s: %w", id, err)
	}
	return t, nil
}

// Suspend marks the tenant suspended; suspending a suspended tenant changes nothing. It fails with
// [ErrNotFound], or [ErrDeleted] for a deleted tenant.
func Suspend(ctx context.Context, db DB, id tenantseal.TenantID) error {
	return setStatus(ctx, db, id, StatusSuspended)
}

// Resume marks a suspended tenant active again; resuming an active tenant changes nothing. It fails
// with [ErrNotFound], or [ErrDeleted] for a deleted tenant.
func Resume(ctx context.Context, db DB, id tenantseal.TenantID) error {
	return setStatus(ctx, db, id, StatusActive)
}

// Delete marks the tenant deleted, for good; deleting a deleted tenant changes nothing. Its rows and
// keysets stay: [Shred] makes its encrypted fields unreadable. It fails with [ErrNotFound].
func Delete(ctx context.Context, db DB, id tenantseal.TenantID) error {
	return setStatus(ctx, db, id, StatusDeleted)
}

// setStatus sets the tenant's status in one statement, which leaves a deleted tenant alone.
func setStatus(ctx context.Context, db DB, id tenantseal.TenantID, to Status) error {
	tag, err := db.Exec(ctx, `UPDATE tenantseal.tenants SET status = $2
		WHERE id = $1 AND (status <> 'deleted' OR $2 = 'deleted')`, id, string(to))
	if err != nil {
		return fmt.Errorf("tenants: set %s %s: %w", id, to, err)
	}
	if tag.RowsAffected() == 1 {
		return nil
	}
	// Nothing changed: a deletion is final, so the tenant is missing or deleted, for good.
	if _, err := Get(ctx, db, id); err != nil {
		return err
	}
	return fmt.Errorf("%w: %s: cannot mark it %s", ErrDeleted, id, to)
}
