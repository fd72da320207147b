package pgstore

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/tenantseal/tenantseal"
	"github.com/tenantseal/tenantseal/keys"
)

// UseTenantKEK gives the tenant a KEK of its own (bring your own key), or moves it from its own to
// another: its keysets are re-wrapped under next, which uri names (an application's Keyring opens it by
// that URI, so the URI must open the same key wherever the application runs), keys and rows unchanged,
// in one transaction. The KEK that wraps them now (the shared one, or the tenant's previous own) must
// open them. Revoking next in its KMS then makes this tenant's keysets, and only this tenant's,
// unreadable.
func (a *Admin) UseTenantKEK(ctx context.Context, tenant tenantseal.TenantID, uri string, next *keys.KEK) error {
	if uri == "" || next == nil {
		return fmt.Errorf("%w: a tenant's own KEK needs its URI and the opened KEK", keys.ErrKEK)
	}
	return a.rewrapTenant(ctx, tenant, uri, next)
}

// UseSharedKEK moves a tenant with a KEK of its own back to the database's shared KEK, the Admin's: its
// keysets are re-wrapped under it, in one transaction. A tenant without its own KEK is left as it is.
func (a *Admin) UseSharedKEK(ctx context.Context, tenant tenantseal.TenantID) error {
	if a.kek == nil {
		return fmt.Errorf("%w: the Admin has no KEK", keys.ErrKEK)
	}
	return a.rewrapTenant(ctx, tenant, "", a.kek)
}

// rewrapTenant re-wraps the tenant's keysets under next: its own KEK named uri, or with "" the shared.
func (a *Admin) rewrapTenant(ctx context.Context, tenant tenantseal.TenantID, uri string, next *keys.KEK) error {
	var from *keys.KEK
	var fromURI, role string
	n := 0
	err := a.inTx(ctx, "change the tenant's KEK", false, func(tx pgx.Tx) error {
		ks, err := lockKeysets(ctx, tx, lockTenantKeysets, tenant)
		if err != nil {
			return err
		}
		if len(ks) == 0 {
			return a.noKeysets(ctx, tx, tenant)
		}
		if from, fromURI, err = a.tenantKEK(ctx, tx, tenant); err != nil {
			return err
		}
		if fromURI == uri && from.ID == next.ID {
			return nil // there already
		}
		if uri == "" {
			if err := a.ensureCanary(ctx, tx); err != nil {
				return err
			}
		}
		for _, k := range ks {
			w, err := keys.Rewrap(from, next, tenant, k.purpose, k.wrapped)
			if err != nil {
				return err
			}
			if err := storeKeyset(ctx, tx, k, w, next, false); err != nil {
				return err
			}
			n++
		}
		if uri == "" {
			if _, err := tx.Exec(ctx, "DELETE FROM tenantseal.tenant_keks WHERE tenant_id = $1", tenant); err != nil {
				return wrap("forget the tenant's KEK", err)
			}
		} else {
			c, err := next.NewCanary()
			if err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, `INSERT INTO tenantseal.tenant_keks (tenant_id, kek_uri, kek_id, canary) VALUES ($1, $2, $3, $4)
				ON CONFLICT (tenant_id) DO UPDATE SET kek_uri = excluded.kek_uri, kek_id = excluded.kek_id, canary = excluded.canary, created_at = now()`,
				tenant, uri, next.ID, c); err != nil {
				return wrap("store the tenant's KEK", err)
			}
		}
		return tx.QueryRow(ctx, "SELECT current_user").Scan(&role)
	})
	if err != nil || n == 0 {
		return err
	}
	to := "its own KEK " + next.ID
	if uri == "" {
		to = "the shared KEK " + next.ID
	}
	a.record(ctx, tenantseal.Event{Kind: tenantseal.EventKEKRotate, TargetTenant: tenant, Table: "tenantseal.tenant_keysets", Operation: "rotate tenant kek",
		Detail: fmt.Sprintf("re-wrapped %d keysets from %s to %s as database role %s", n, from.ID, to, role)})
	return nil
}
