package keys

import (
	"context"
	"errors"
	"fmt"

	"github.com/tenantseal/tenantseal"

	"github.com/jackc/pgx/v5"
	"github.com/tink-crypto/tink-go/v2/keyset"
	tinkpb "github.com/tink-crypto/tink-go/v2/proto/tink_go_proto"
)

// Beginner starts transactions; *pgx.Conn and *pgxpool.Pool connected as the owner role satisfy it.
type Beginner interface {
	Begin(ctx context.Context) (pgx.Tx, error)
}

// Admin manages tenant keysets as the owner role: creation with the tenant, rotation, retirement, KEK
// rotation and crypto-shredding. Application processes never need it.
type Admin struct {
	DB  Beginner
	KEK *KEK
}

// CreateTenant inserts a tenant and its keysets in one transaction and returns its id.
func (a *Admin) CreateTenant(ctx context.Context, name string) (tenantseal.TenantID, error) {
	var id tenantseal.TenantID
	err := pgx.BeginFunc(ctx, a.DB, func(tx pgx.Tx) error {
		if err := tx.QueryRow(ctx, "INSERT INTO public.tenants (name) VALUES ($1) RETURNING id", name).Scan(&id); err != nil {
			return fmt.Errorf("keys: create tenant: %w", err)
		}
		return a.createKeysets(ctx, tx, id)
	})
	return id, err
}

// CreateKeysets gives an existing tenant its keysets; it is a no-op for a tenant that has them.
func (a *Admin) CreateKeysets(ctx context.Context, tenant tenantseal.TenantID) error {
	return pgx.BeginFunc(ctx, a.DB, func(tx pgx.Tx) error { return a.createKeysets(ctx, tx, tenant) })
}

func (a *Admin) createKeysets(ctx context.Context, tx pgx.Tx, tenant tenantseal.TenantID) error {
	if err := a.ensureCanary(ctx, tx); err != nil {
		return err
	}
	w, err := NewTenantKeysets(a.KEK, tenant)
	if err != nil {
		return err
	}
	for purpose, wrapped := range map[string][]byte{PurposeAEAD: w.AEAD, PurposePRF: w.PRF} {
		if _, err := tx.Exec(ctx, `INSERT INTO tenantseal.tenant_keysets (tenant_id, purpose, kek_id, wrapped)
			VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING`, tenant, purpose, a.KEK.ID, wrapped); err != nil {
			return fmt.Errorf("keys: store %s keyset: %w", purpose, err)
		}
	}
	return nil
}

// ensureCanary stores the KEK canary on first use and otherwise checks that this KEK opens it.
func (a *Admin) ensureCanary(ctx context.Context, tx pgx.Tx) error {
	var ct []byte
	err := tx.QueryRow(ctx, "SELECT ciphertext FROM tenantseal.kek_canary").Scan(&ct)
	if errors.Is(err, pgx.ErrNoRows) {
		c, err := a.KEK.canary()
		if err != nil {
			return fmt.Errorf("%w: encrypt canary: %w", ErrKEK, err)
		}
		_, err = tx.Exec(ctx, "INSERT INTO tenantseal.kek_canary (kek_id, ciphertext) VALUES ($1, $2)", a.KEK.ID, c)
		return err
	}
	if err != nil {
		return fmt.Errorf("keys: read KEK canary: %w", err)
	}
	if !a.KEK.checkCanary(ct) {
		return fmt.Errorf("%w: %s does not open the database's KEK canary", ErrKEK, a.KEK.ID)
	}
	return nil
}

// CheckKEK verifies that kek is the KEK the database was set up with: a clear startup error instead of
// failures at the first decryption.
func CheckKEK(ctx context.Context, q interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}, kek *KEK) error {
	rows, err := q.Query(ctx, "SELECT ciphertext FROM tenantseal.kek_canary")
	if err != nil {
		return fmt.Errorf("keys: read KEK canary: %w", err)
	}
	cts, err := pgx.CollectRows(rows, pgx.RowTo[[]byte])
	if err != nil {
		return fmt.Errorf("keys: read KEK canary: %w", err)
	}
	if len(cts) == 0 {
		return nil // no tenant keyset exists yet: the first one will store the canary
	}
	if !kek.checkCanary(cts[0]) {
		return fmt.Errorf("%w: %s does not open the database's KEK canary", ErrKEK, kek.ID)
	}
	return nil
}

// editKeysets runs edit on each of the tenant's keysets, locked, and stores the result re-wrapped.
func (a *Admin) editKeysets(ctx context.Context, tenant tenantseal.TenantID, edit func(purpose string, m *keyset.Manager, info *tinkpb.KeysetInfo) error) error {
	return pgx.BeginFunc(ctx, a.DB, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, "SELECT purpose, wrapped, kek_id FROM tenantseal.tenant_keysets WHERE tenant_id = $1 ORDER BY purpose FOR UPDATE", tenant)
		if err != nil {
			return fmt.Errorf("keys: %w", err)
		}
		type row struct {
			purpose string
			wrapped []byte
			kekID   string
		}
		rs, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (row, error) {
			var x row
			return x, r.Scan(&x.purpose, &x.wrapped, &x.kekID)
		})
		if err != nil {
			return fmt.Errorf("keys: %w", err)
		}
		if len(rs) == 0 {
			return fmt.Errorf("%w (tenant %s)", ErrNoKeyset, tenant)
		}
		for _, r := range rs {
			h, err := unwrap(a.KEK, r.wrapped, tenant, r.purpose)
			if err != nil && r.kekID != a.KEK.ID {
				return fmt.Errorf("%w: tenant %s's %s keyset was wrapped by %s, not %s", ErrKEK, tenant, r.purpose, r.kekID, a.KEK.ID)
			}
			if err != nil {
				return err
			}
			m := keyset.NewManagerFromHandle(h)
			if err := edit(r.purpose, m, h.KeysetInfo()); err != nil {
				return err
			}
			nh, err := m.Handle()
			if err != nil {
				return fmt.Errorf("keys: %w", err)
			}
			w, err := wrap(a.KEK, nh, tenant, r.purpose)
			if err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, "UPDATE tenantseal.tenant_keysets SET wrapped = $3, kek_id = $4, updated_at = now() WHERE tenant_id = $1 AND purpose = $2", tenant, r.purpose, w, a.KEK.ID); err != nil {
				return fmt.Errorf("keys: store %s keyset: %w", r.purpose, err)
			}
		}
		return nil
	})
}

// Rotate adds a new primary key to the tenant's AEAD and PRF keysets. Old keys keep decrypting (and old
// blind indexes keep matching) until re-encryption and retirement.
func (a *Admin) Rotate(ctx context.Context, tenant tenantseal.TenantID) error {
	return a.editKeysets(ctx, tenant, func(purpose string, m *keyset.Manager, _ *tinkpb.KeysetInfo) error {
		id, err := m.Add(template(purpose))
		if err != nil {
			return fmt.Errorf("keys: rotate %s: %w", purpose, err)
		}
		return m.SetPrimary(id)
	})
}

// KeyUsage counts, per key id, the rows that still need a key: ciphertexts for AEAD keys, blind indexes
// for PRF keys. [Usage] computes it.
type KeyUsage struct {
	AEAD, PRF map[uint32]int64
}

// Retire disables every enabled, non-primary key that usage shows no row needs. It refuses, changing
// nothing, with [ErrKeyInUse] while a row still needs a non-primary key. It returns the disabled ids.
func (a *Admin) Retire(ctx context.Context, tenant tenantseal.TenantID, usage KeyUsage) ([]uint32, error) {
	var retired []uint32
	err := a.editKeysets(ctx, tenant, func(purpose string, m *keyset.Manager, info *tinkpb.KeysetInfo) error {
		used := usage.AEAD
		if purpose == PurposePRF {
			used = usage.PRF
		}
		for _, ki := range info.GetKeyInfo() {
			id := ki.GetKeyId()
			if id == info.GetPrimaryKeyId() || ki.GetStatus() != tinkpb.KeyStatusType_ENABLED {
				continue
			}
			if n := used[id]; n > 0 {
				return fmt.Errorf("%w: %d stored values of tenant %s still need %s key %d: run keys reencrypt first", ErrKeyInUse, n, tenant, purpose, id)
			}
			if err := m.Disable(id); err != nil {
				return fmt.Errorf("keys: disable %s key %d: %w", purpose, id, err)
			}
			retired = append(retired, id)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return retired, nil
}

// Tenants lists the tenants that have keysets.
func (a *Admin) Tenants(ctx context.Context) ([]tenantseal.TenantID, error) {
	var ids []tenantseal.TenantID
	err := pgx.BeginFunc(ctx, a.DB, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, "SELECT DISTINCT tenant_id FROM tenantseal.tenant_keysets ORDER BY 1")
		if err != nil {
			return err
		}
		ids, err = pgx.CollectRows(rows, pgx.RowTo[tenantseal.TenantID])
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("keys: list tenants: %w", err)
	}
	return ids, nil
}

// RotateKEK re-wraps every tenant keyset, and the canary, under next without touching row data, in one
// transaction. Afterwards every process must use next.
func (a *Admin) RotateKEK(ctx context.Context, next *KEK) (int, error) {
	n := 0
	err := pgx.BeginFunc(ctx, a.DB, func(tx pgx.Tx) error {
		if err := a.ensureCanary(ctx, tx); err != nil {
			return err
		}
		rows, err := tx.Query(ctx, "SELECT tenant_id, purpose, wrapped FROM tenantseal.tenant_keysets ORDER BY 1, 2 FOR UPDATE")
		if err != nil {
			return err
		}
		type row struct {
			tenant  tenantseal.TenantID
			purpose string
			wrapped []byte
		}
		rs, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (row, error) {
			var x row
			return x, r.Scan(&x.tenant, &x.purpose, &x.wrapped)
		})
		if err != nil {
			return err
		}
		for _, r := range rs {
			h, err := unwrap(a.KEK, r.wrapped, r.tenant, r.purpose)
			if err != nil {
				return err
			}
			w, err := wrap(next, h, r.tenant, r.purpose)
			if err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, "UPDATE tenantseal.tenant_keysets SET wrapped = $3, kek_id = $4, updated_at = now() WHERE tenant_id = $1 AND purpose = $2", r.tenant, r.purpose, w, next.ID); err != nil {
				return err
			}
			n++
		}
		c, err := next.canary()
		if err != nil {
			return fmt.Errorf("%w: encrypt canary: %w", ErrKEK, err)
		}
		_, err = tx.Exec(ctx, "UPDATE tenantseal.kek_canary SET kek_id = $1, ciphertext = $2", next.ID, c)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("keys: rotate KEK: %w", err)
	}
	return n, nil
}

// Shred destroys the tenant's keysets: every encrypted field of the tenant becomes permanently
// unreadable (crypto-shredding). Processes that cached the keysets keep them until their cache TTL.
// It returns the number of keysets destroyed.
func (a *Admin) Shred(ctx context.Context, tenant tenantseal.TenantID) (int64, error) {
	var n int64
	err := pgx.BeginFunc(ctx, a.DB, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, "DELETE FROM tenantseal.tenant_keysets WHERE tenant_id = $1", tenant)
		n = tag.RowsAffected()
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("keys: shred: %w", err)
	}
	if n == 0 {
		return 0, fmt.Errorf("%w (tenant %s)", ErrNoKeyset, tenant)
	}
	return n, nil
}
