package cli

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/tenantseal/tenantseal/keys"
)

// shredTenant runs `tenants shred T --confirm T`. It needs no KEK: destroying keysets reads none, and an
// operator must be able to shred a tenant even when the KEK is out of reach.
func shredTenant(ctx context.Context, s *session, conn *connFlags, arg, confirm string, confirmSet bool) error {
	id, err := parseTenant("tenants shred", "tenant id", arg)
	if err != nil {
		return err
	}
	if !confirmSet || confirm == "" {
		return usageErrorf("tenants shred: --confirm with the tenant id again is required: shredding makes every encrypted field of tenant %s unreadable for good", id)
	}
	if confirm != arg {
		return usageErrorf("tenants shred: --confirm %q does not repeat the tenant id %q: nothing was shredded", confirm, arg)
	}
	dsn, err := conn.ownerDSN()
	if err != nil {
		return err
	}
	c, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return err
	}
	defer c.Close(context.WithoutCancel(ctx))
	if err := requireTenant(ctx, c, "tenants shred", id); err != nil {
		return err
	}
	// What is about to go, for the report: the keyset purposes and the KEKs that wrap backed-up copies.
	var purposes, kekIDs []string
	rows, err := c.Query(ctx, "SELECT purpose, kek_id FROM tenantseal.tenant_keysets WHERE tenant_id = $1 ORDER BY purpose", id)
	if err != nil {
		return fmt.Errorf("tenants shred: %w", ownerError(err))
	}
	var purpose, kekID string
	if _, err := pgx.ForEachRow(rows, []any{&purpose, &kekID}, func() error {
		purposes = append(purposes, purpose)
		if !slices.Contains(kekIDs, kekID) {
			kekIDs = append(kekIDs, kekID)
		}
		return nil
	}); err != nil {
		return fmt.Errorf("tenants shred: %w", err)
	}

	n, err := (&keys.Admin{DB: c}).Shred(ctx, id)
	if errors.Is(err, keys.ErrNoKeyset) {
		return fmt.Errorf("tenants shred: tenant %s has no keysets: nothing to shred (already shredded, or created with --no-keys)", id)
	}
	if err != nil {
		return fmt.Errorf("tenants shred: %w", ownerError(err))
	}
	s.printf("shredded tenant %s: destroyed its %d keysets (%s): its encrypted fields no longer decrypt and its blind indexes match nothing; its rows and unencrypted columns remain\n",
		id, n, strings.Join(purposes, ", "))
	s.printf("processes that cached the tenant's keysets keep them until their keyring cache TTL expires (%v unless configured): restart them to end that sooner\n",
		keys.DefaultCacheTTL)
	s.printf("backups taken before now still hold the keysets, wrapped by the KEK %s: to shred those copies too, rotate the KEK ('tenantseal keys rotate-kek --new <uri>') and destroy the old one: every backup from before the rotation then loses its keysets, for all tenants\n",
		strings.Join(kekIDs, ", "))
	return nil
}
