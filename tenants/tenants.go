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
	// ErrDuplicateName means another tenant has the name already (compared without regard to case).
	ErrDuplicateName = errors.New("tenants: another tenant has that name")
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
	// ShreddedAt is when the tenant was crypto-shredded ([Shred]); nil if never.
	ShreddedAt *time.Time
	// HasKeysets says the tenant has keysets (tenantseal.tenant_keysets), as when it was read.
	HasKeysets bool
	// Region is where the tenant's data is to live ([SetRegion]); "" when none is recorded.
	Region string
	// RetentionPolicy names the tenant's retention policy ([SetRetentionPolicy]); "" when it has none.
	RetentionPolicy string
	// DeletedAt is when the tenant was marked deleted, as the database dated it; nil if it is not.
	DeletedAt *time.Time
}

// KeysetCreator creates the keysets of the new tenant id inside tx, the transaction that creates the
// tenant: an error rolls both back. keys/pgstore's Admin provides one; nil creates none.
type KeysetCreator func(ctx context.Context, tx pgx.Tx, id tenantseal.TenantID) error

const tenantColumns = "key, name, status, created_at, shredded_at, EXISTS (SELECT 1 FROM tenantseal.tenant_keysets k WHERE k.tenant_id = tenants.id), " +
	"coalesce((SELECT g.region FROM tenantseal.tenant_governance g WHERE g.tenant_id = tenants.id), ''), " +
	"coalesce((SELECT g.retention_policy FROM tenantseal.tenant_governance g WHERE g.tenant_id = tenants.id), ''), deleted_at"

func scanTenant(r pgx.CollectableRow) (Tenant, error) {
	var t Tenant
	err := r.Scan(&t.ID, &t.Name, &t.Status, &t.CreatedAt, &t.ShreddedAt, &t.HasKeysets, &t.Region, &t.RetentionPolicy, &t.DeletedAt)
	t.CreatedAt = t.CreatedAt.UTC()
	t.ShreddedAt, t.DeletedAt = utc(t.ShreddedAt), utc(t.DeletedAt)
	return t, err
}

// utc returns *at in UTC, nil for nil.
func utc(at *time.Time) *time.Time {
	if at == nil {
		return nil
	}
	u := at.UTC()
	return &u
}

// Option changes what a function of this package does besides its work.
type Option func(*options)

type options struct {
	rec tenantseal.Recorder
	key tenantseal.TenantID
}

// WithID gives the tenant that [Create] creates the id id, as the application's registry has it (its
// key: an integer or text where tenantseal.settings.tenant_key_type says so). Without it a uuid
// deployment draws a random uuid, and other deployments refuse to create a tenant.
func WithID(id tenantseal.TenantID) Option { return func(o *options) { o.key = id } }

// Recording records each change (creation, status change, rename) through rec, an audit.Writer say, as
// a tenantseal.EventTenantChange: the Principal in ctx (tenantseal.OperatorPrincipal) is who made it.
func Recording(rec tenantseal.Recorder) Option { return func(o *options) { o.rec = rec } }

func (o options) record(ctx context.Context, id tenantseal.TenantID, op, detail string) {
	if o.rec != nil {
		o.rec.Record(ctx, tenantseal.Event{Kind: tenantseal.EventTenantChange, TargetTenant: id, Table: "tenantseal.tenants", Operation: op, Detail: detail})
	}
}

func apply(opts []Option) options {
	var o options
	for _, f := range opts {
		f(&o)
	}
	return o
}

// claimName fails with [ErrDuplicateName] when a tenant other than id has name, compared without regard
// to case. The transaction-scoped lock makes check and write one step for every caller of this package.
// The database holds no unique index on names: databases of earlier releases may hold duplicates, and
// rows written by other means than this package are not checked.
func claimName(ctx context.Context, tx pgx.Tx, name string, id tenantseal.TenantID) error {
	if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1, 0)", nameLock); err != nil {
		return err
	}
	var other *tenantseal.TenantID
	err := tx.QueryRow(ctx, "SELECT key FROM tenantseal.tenants WHERE lower(name) = lower($1) AND id <> $2 LIMIT 1", name, id).Scan(&other)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil
	}
	if err != nil {
		return err
	}
	return fmt.Errorf("%w: tenant %s is named so already", ErrDuplicateName, *other)
}

// nameLock is the advisory lock that serialises name claims.
const nameLock = 0x74734e4d // "tsNM"

// Create inserts an active tenant named name and, unless keysets is nil, its keysets, in one transaction.
// A tenant without keysets cannot use encrypted fields until it is given some (keys/pgstore's
// Admin.CreateKeysets). The name is checked with [ValidateName] first, and refused with
// [ErrDuplicateName] when another tenant has it (in any case). An error of keysets is returned as it
// is, after the rollback.
func Create(ctx context.Context, db DB, name string, keysets KeysetCreator, opts ...Option) (Tenant, error) {
	if err := ValidateName(name); err != nil {
		return Tenant{}, err
	}
	var t Tenant
	var keysetErr error
	o := apply(opts)
	err := pgx.BeginFunc(ctx, db, func(tx pgx.Tx) error {
		if err := claimName(ctx, tx, name, tenantseal.TenantID{}); err != nil {
			return err
		}
		rows, err := tx.Query(ctx, "INSERT INTO tenantseal.tenants (name, key) VALUES ($1, $2::text) RETURNING "+tenantColumns, name, o.key)
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
	case errors.Is(err, ErrDuplicateName):
		return Tenant{}, err
	case err != nil:
		return Tenant{}, fmt.Errorf("tenants: create: %w", err)
	}
	t.HasKeysets = keysets != nil
	with := "with keysets"
	if keysets == nil {
		with = "without keysets"
	}
	o.record(ctx, t.ID, "create", fmt.Sprintf("created %q, %s", t.Name, with))
	return t, nil
}

// Rename gives the tenant id the name name, checked with [ValidateName] and refused with
// [ErrDuplicateName] when another tenant has it. Renaming a deleted tenant is refused with [ErrDeleted].
func Rename(ctx context.Context, db DB, id tenantseal.TenantID, name string, opts ...Option) error {
	if err := ValidateName(name); err != nil {
		return err
	}
	var old string
	var status Status
	err := pgx.BeginFunc(ctx, db, func(tx pgx.Tx) error {
		if err := tx.QueryRow(ctx, "SELECT name, status FROM tenantseal.tenants WHERE id = $1 FOR UPDATE", id).Scan(&old, &status); err != nil {
			return err
		}
		if status == StatusDeleted || old == name {
			return nil
		}
		if err := claimName(ctx, tx, name, id); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, "UPDATE tenantseal.tenants SET name = $2 WHERE id = $1", id, name)
		return err
	})
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return fmt.Errorf("%w: %s", ErrNotFound, id)
	case errors.Is(err, ErrDuplicateName):
		return err
	case err != nil:
		return fmt.Errorf("tenants: rename %s: %w", id, err)
	case status == StatusDeleted:
		return fmt.Errorf("%w: %s: cannot rename it", ErrDeleted, id)
	case old != name:
		apply(opts).record(ctx, id, "rename", fmt.Sprintf("renamed from %q to %q", old, name))
	}
	return nil
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
func Suspend(ctx context.Context, db DB, id tenantseal.TenantID, opts ...Option) error {
	return setStatus(ctx, db, id, StatusSuspended, opts)
}

// Resume marks a suspended tenant active again; resuming an active tenant changes nothing. It fails
// with [ErrNotFound], or [ErrDeleted] for a deleted tenant.
func Resume(ctx context.Context, db DB, id tenantseal.TenantID, opts ...Option) error {
	return setStatus(ctx, db, id, StatusActive, opts)
}

// Delete marks the tenant deleted, for good; deleting a deleted tenant changes nothing. Its rows and
// keysets stay: [Shred] makes its encrypted fields unreadable. It fails with [ErrNotFound].
func Delete(ctx context.Context, db DB, id tenantseal.TenantID, opts ...Option) error {
	return setStatus(ctx, db, id, StatusDeleted, opts)
}

// setStatus sets the tenant's status in one statement, which leaves a deleted tenant alone, and records
// a change.
func setStatus(ctx context.Context, db DB, id tenantseal.TenantID, to Status, opts []Option) error {
	var from Status
	err := db.QueryRow(ctx, `UPDATE tenantseal.tenants t SET status = $2 FROM (SELECT id, status FROM tenantseal.tenants WHERE id = $1 FOR UPDATE) old
		WHERE t.id = old.id AND (old.status <> 'deleted' OR $2 = 'deleted') RETURNING old.status`, id, string(to)).Scan(&from)
	if err == nil {
		if from != to {
			apply(opts).record(ctx, id, string(to), fmt.Sprintf("status %s, was %s", to, from))
		}
		return nil
	}
	if !errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("tenants: set %s %s: %w", id, to, err)
	}
	// Nothing changed: a deletion is final, so the tenant is missing or deleted, for good.
	if _, err := Get(ctx, db, id); err != nil {
		return err
	}
	return fmt.Errorf("%w: %s: cannot mark it %s", ErrDeleted, id, to)
}
