package cli

import (
	"context"
	"strings"
	"time"

	"github.com/tenantseal/tenantseal"
	"github.com/tenantseal/tenantseal/keys"
	"github.com/tenantseal/tenantseal/tenants"
)

// shredTenant runs `tenants shred T --confirm T` (confirmed already). It needs no KEK: destroying keysets
// reads none, and an operator must be able to shred a tenant even when the KEK is out of reach. A second
// shred is a no-op that succeeds, so that automation may repeat it.
func shredTenant(ctx context.Context, s *session, conn *connFlags, id tenantseal.TenantID) error {
	// The audit log is opened before the shred: a writer that cannot even start stops it.
	c, log, err := ownerWithLog(ctx, s, conn, "tenants shred")
	if err != nil {
		return err
	}
	defer c.Close(context.WithoutCancel(ctx))
	done, err := tenants.Shred(asOperator(ctx), c, log.w, id)
	if err != nil {
		return log.close(ctx, tenantError("shred", id, err))
	}
	log.done = "tenant " + id.String() + " was shredded"
	if done.Already {
		s.printf("tenant %s was shredded already, at %s: nothing to do\n", id, done.At.Format(time.RFC3339))
		return log.close(ctx, nil)
	}
	if len(done.Purposes) == 0 {
		s.printf("shredded tenant %s: it had no keysets; it is marked shredded, so that none are given to it unnoticed\n", id)
	} else {
		s.printf("shredded tenant %s: destroyed its %d keysets (%s): its encrypted fields no longer decrypt and its blind indexes match nothing; its rows and unencrypted columns remain\n",
			id, len(done.Purposes), strings.Join(done.Purposes, ", "))
		s.info("processes that cached the tenant's keysets keep them until their next version check (keys.Config.Revalidate, %v unless configured), at most until their cache expires (the database's max_cache_ttl): restart them to end that sooner\n",
			keys.DefaultRevalidate)
		s.info("backups taken before now still hold the keysets, wrapped by the KEK %s: to shred those copies too, rotate the KEK ('tenantseal keys rotate-kek --new <uri>') and destroy the old one: every backup from before the rotation then loses its keysets, for all tenants\n",
			strings.Join(done.KEKIDs, ", "))
	}
	if err := log.close(ctx, nil); err != nil {
		return err
	}
	s.info("recorded the shred in the audit log (kind %s)\n", tenantseal.EventShred)
	return nil
}
