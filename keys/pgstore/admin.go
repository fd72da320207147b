package pgstore

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/tenantseal/tenantseal"
	"github.com/tenantseal/tenantseal/keys"
)

// Beginner starts transactions; *pgx.Conn and *pgxpool.Pool connected as the owner role satisfy it, and
// so does a pgx.Tx (each call then runs in a savepoint of it).
type Beginner interface {
	Begin(ctx context.Context) (pgx.Tx, error)
}

// Admin manages tenant keysets as the owner role: creation with the tenant, rotation, retirement, KEK
// rotation and crypto-shredding. Application processes never need it. Every method runs in one
// transaction: it changes everything it says or nothing.
type Admin struct {
	db  Beginner
	kek *keys.KEK
}

// NewAdmin returns an Admin that works through db with kek. kek may be nil for [Admin.Shred] and
// [Admin.Tenants], which open no keyset; the other methods then fail with [keys.ErrKEK].
func NewAdmin(db Beginner, kek *keys.KEK) *Admin { return &Admin{db: db, kek: kek} }

// inTx runs fn in a transaction of a.db, rolled back unless fn and the commit succeed. fn's errors are
// returned as they are; those of BEGIN and COMMIT are named by what.
func (a *Admin) inTx(ctx context.Context, what string, needKEK bool, fn func(pgx.Tx) error) (err error) {
	if needKEK && a.kek == nil {
		return fmt.Errorf("%w: %s: the Admin has no KEK", keys.ErrKEK, what)
	}
	tx, err := a.db.Begin(ctx)
	if err != nil {
		return wrap(what, err)
	}
	defer func() {
		if rbErr := tx.Rollback(context.WithoutCancel(ctx)); rbErr != nil && !errors.Is(rbErr, pgx.ErrTxClosed) && err == nil {
			err = wrap(what+": rollback", rbErr)
		}
	}()
	if err := fn(tx); err != nil {
		return err
	}
	if err := tx.Commit(ctx); err != nil {
		return wrap(what+": commit", err)
	}
	return nil
}

// CreateTenant inserts a tenant into tenantseal.tenants and gives it its keysets, in one transaction, and
// returns its id.
func (a *Admin) CreateTenant(ctx context.Context, name string) (tenantseal.TenantID, error) {
	var id tenantseal.TenantID
	err := a.inTx(ctx, "create tenant", true, func(tx pgx.Tx) error {
		if err := tx.QueryRow(ctx, "INSERT INTO tenantseal.tenants (name) VALUES ($1) RETURNING id", name).Scan(&id); err != nil {
			return wrap("create tenant", err)
		}
		return a.createKeysets(ctx, tx, id)
	})
	return id, err
}

// CreateKeysets gives an existing tenant its keysets, in a transaction of its own; it is a no-op for a
// tenant that has them. [Admin.CreateKeysetsIn] does the same inside a transaction of the caller's.
func (a *Admin) CreateKeysets(ctx context.Context, tenant tenantseal.TenantID) error {
	return a.inTx(ctx, "create keysets", true, func(tx pgx.Tx) error { return a.createKeysets(ctx, tx, tenant) })
}

// CreateKeysetsIn gives tenant its keysets inside tx, a transaction of the caller's that may also create
// the tenant's row (tenants.Create takes it as its KeysetCreator): the keysets and, on first use, the
// database's KEK canary commit or roll back with tx. The Admin's own connection is not used.
func (a *Admin) CreateKeysetsIn(ctx context.Context, tx pgx.Tx, tenant tenantseal.TenantID) error {
	if a.kek == nil {
		return fmt.Errorf("%w: create keysets: the Admin has no KEK", keys.ErrKEK)
	}
	return a.createKeysets(ctx, tx, tenant)
}

func (a *Admin) createKeysets(ctx context.Context, tx pgx.Tx, tenant tenantseal.TenantID) error {
	if err := a.ensureCanary(ctx, tx); err != nil {
		return err
	}
	w, err := keys.NewTenantKeysets(a.kek, tenant)
	if err != nil {
		return err
	}
	for _, k := range []struct {
		purpose string
		wrapped []byte
	}{{keys.PurposeAEAD, w.AEAD}, {keys.PurposePRF, w.PRF}} {
		if _, err := tx.Exec(ctx, `INSERT INTO tenantseal.tenant_keysets (tenant_id, purpose, kek_id, wrapped)
			VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING`, tenant, k.purpose, a.kek.ID, k.wrapped); err != nil {
			return wrap("store "+k.purpose+" keyset", err)
		}
	}
	return nil
}

// ensureCanary stores the KEK canary on first use and otherwise checks that this KEK opens it.
func (a *Admin) ensureCanary(ctx context.Context, tx pgx.Tx) error {
	var ct []byte
	err := tx.QueryRow(ctx, "SELECT ciphertext FROM tenantseal.kek_canary").Scan(&ct)
	if errors.Is(err, pgx.ErrNoRows) {
		c, err := a.kek.NewCanary()
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, "INSERT INTO tenantseal.kek_canary (kek_id, ciphertext) VALUES ($1, $2)", a.kek.ID, c); err != nil {
			return wrap("store KEK canary", err)
		}
		return nil
	}
	if err != nil {
		return wrap("read KEK canary", err)
	}
	if !a.kek.OpensCanary(ct) {
		return fmt.Errorf("%w: %s does not open the database's KEK canary", keys.ErrKEK, a.kek.ID)
	}
	return nil
}

// CheckKEK verifies that kek is the KEK the database was set up with: a clear startup error
// ([keys.ErrKEK]) instead of failures at the first decryption. A database without keysets yet passes:
// the first keysets created store the canary.
func CheckKEK(ctx context.Context, q Querier, kek *keys.KEK) error {
	rows, err := q.Query(ctx, "SELECT ciphertext FROM tenantseal.kek_canary")
	if err != nil {
		return wrap("read KEK canary", err)
	}
	cts, err := pgx.CollectRows(rows, pgx.RowTo[[]byte])
	if err != nil {
		return wrap("read KEK canary", err)
	}
	if len(cts) == 0 {
		return nil
	}
	if !kek.OpensCanary(cts[0]) {
		return fmt.Errorf("%w: %s does not open the database's KEK canary", keys.ErrKEK, kek.ID)
	}
	return nil
}

// storedKeyset is one row of tenantseal.tenant_keysets.
type storedKeyset struct {
	tenant  tenantseal.TenantID
	purpose string
	wrapped []byte
	kekID   string
}

// Both lock the rows they read: a concurrent rotation waits instead of losing an update.
const (
	lockTenantKeysets = `SELECT tenant_id, purpose, wrapped, kek_id FROM tenantseal.tenant_keysets WHERE tenant_id = $1
		ORDER BY purpose FOR UPDATE`
	lockAllKeysets = `SELECT tenant_id, purpose, wrapped, kek_id FROM tenantseal.tenant_keysets ORDER BY 1, 2 FOR UPDATE`
)

// lockKeysets runs one of the statements above.
func lockKeysets(ctx context.Context, tx pgx.Tx, sql string, args ...any) ([]storedKeyset, error) {
	rows, err := tx.Query(ctx, sql, args...)
	if err != nil {
		return nil, wrap("read keysets", err)
	}
	ks, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (storedKeyset, error) {
		var k storedKeyset
		return k, r.Scan(&k.tenant, &k.purpose, &k.wrapped, &k.kekID)
	})
	if err != nil {
		return nil, wrap("read keysets", err)
	}
	return ks, nil
}

func storeKeyset(ctx context.Context, tx pgx.Tx, k storedKeyset, wrapped []byte, kek *keys.KEK) error {
	if _, err := tx.Exec(ctx, "UPDATE tenantseal.tenant_keysets SET wrapped = $3, kek_id = $4, updated_at = now() WHERE tenant_id = $1 AND purpose = $2",
		k.tenant, k.purpose, wrapped, kek.ID); err != nil {
		return wrap("store "+k.purpose+" keyset", err)
	}
	return nil
}

// editKeysets runs edit on each of the tenant's keysets, locked, and stores what it returns.
func (a *Admin) editKeysets(ctx context.Context, what string, tenant tenantseal.TenantID, edit func(k storedKeyset) ([]byte, error)) error {
	return a.inTx(ctx, what, true, func(tx pgx.Tx) error {
		ks, err := lockKeysets(ctx, tx, lockTenantKeysets, tenant)
		if err != nil {
			return err
		}
		if len(ks) == 0 {
			return fmt.Errorf("%w (tenant %s)", keys.ErrNoKeyset, tenant)
		}
		for _, k := range ks {
			next, err := edit(k)
			if errors.Is(err, keys.ErrKeysetTampered) && k.kekID != a.kek.ID {
				return fmt.Errorf("%w: tenant %s's %s keyset was wrapped by %s, not %s", keys.ErrKEK, tenant, k.purpose, k.kekID, a.kek.ID)
			}
			if err != nil {
				return err
			}
			if err := storeKeyset(ctx, tx, k, next, a.kek); err != nil {
				return err
			}
		}
		return nil
	})
}

// Rotate adds a new primary key to the tenant's AEAD and PRF keysets. Old keys keep decrypting (and old
// blind indexes keep matching) until re-encryption (package rekey) and [Admin.Retire].
func (a *Admin) Rotate(ctx context.Context, tenant tenantseal.TenantID) error {
	return a.editKeysets(ctx, "rotate keysets", tenant, func(k storedKeyset) ([]byte, error) {
		return keys.RotateWrapped(a.kek, tenant, k.purpose, k.wrapped)
	})
}

// Retire disables every enabled, non-primary key of the tenant's keysets that usage (rekey.Usage, run
// for this tenant) shows no stored value needs, and returns the disabled ids. It refuses, changing
// nothing, with [keys.ErrKeyInUse] while a value still needs a non-primary key, and with
// [tenantseal.ErrTenantMismatch] a usage counted for another tenant.
func (a *Admin) Retire(ctx context.Context, tenant tenantseal.TenantID, usage keys.KeyUsage) ([]uint32, error) {
	var retired []uint32
	err := a.editKeysets(ctx, "retire keys", tenant, func(k storedKeyset) ([]byte, error) {
		next, ids, err := keys.RetireWrapped(a.kek, tenant, k.purpose, k.wrapped, usage)
		retired = append(retired, ids...)
		return next, err
	})
	if err != nil {
		return nil, err
	}
	return retired, nil
}

// Tenants lists the tenants that have keysets.
func (a *Admin) Tenants(ctx context.Context) ([]tenantseal.TenantID, error) {
	var ids []tenantseal.TenantID
	err := a.inTx(ctx, "list tenants", false, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, "SELECT DISTINCT tenant_id FROM tenantseal.tenant_keysets ORDER BY 1")
		if err == nil {
			ids, err = pgx.CollectRows(rows, pgx.RowTo[tenantseal.TenantID])
		}
		if err != nil {
			return wrap("list tenants", err)
		}
		return nil
	})
	return ids, err
}

// RotateKEK re-wraps every tenant keyset, and the canary, under next without touching row data, in one
// transaction, and returns the number of keysets re-wrapped. Afterwards every process must use next.
func (a *Admin) RotateKEK(ctx context.Context, next *keys.KEK) (int, error) {
	n := 0
	err := a.inTx(ctx, "rotate KEK", true, func(tx pgx.Tx) error {
		if err := a.ensureCanary(ctx, tx); err != nil {
			return err
		}
		ks, err := lockKeysets(ctx, tx, lockAllKeysets)
		if err != nil {
			return err
		}
		for _, k := range ks {
			w, err := keys.Rewrap(a.kek, next, k.tenant, k.purpose, k.wrapped)
			if err != nil {
				return err
			}
			if err := storeKeyset(ctx, tx, k, w, next); err != nil {
				return err
			}
			n++
		}
		c, err := next.NewCanary()
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, "UPDATE tenantseal.kek_canary SET kek_id = $1, ciphertext = $2", next.ID, c); err != nil {
			return wrap("store KEK canary", err)
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	return n, nil
}

// Shred destroys the tenant's keysets: every encrypted field of the tenant becomes permanently
// unreadable (crypto-shredding). Processes that cached the keysets keep them until their cache TTL
// (keys.Config.CacheTTL). It returns the number of keysets destroyed, or [keys.ErrNoKeyset] when there
// were none.
func (a *Admin) Shred(ctx context.Context, tenant tenantseal.TenantID) (int64, error) {
	var n int64
	err := a.inTx(ctx, "shred", false, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, "DELETE FROM tenantseal.tenant_keysets WHERE tenant_id = $1", tenant)
		if err != nil {
			return wrap("shred", err)
		}
		n = tag.RowsAffected()
		return nil
	})
	if err != nil {
		return 0, err
	}
	if n == 0 {
		return 0, fmt.Errorf("%w (tenant %s)", keys.ErrNoKeyset, tenant)
	}
	return n, nil
}
