package cli

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"time"

	"github.com/tenantseal/tenantseal"
	"github.com/tenantseal/tenantseal/audit"
	"github.com/tenantseal/tenantseal/keys"
	"github.com/tenantseal/tenantseal/tenants"
)

// shredTenant runs `tenants shred T --confirm T` (confirmed already). It needs no KEK: destroying keysets
// reads none, and an operator must be able to shred a tenant even when the KEK is out of reach.
func shredTenant(ctx context.Context, s *session, conn *connFlags, id tenantseal.TenantID) error {
	// The audit log takes appends from the app role only: without its connection string nothing is
	// shredded.
	appDSN, err := conn.roleDSN("app", "", "", keyAppDSN)
	if err != nil {
		return err
	}
	acfg, err := audit.ParseConfig(appDSN)
	if err != nil {
		return fmt.Errorf("tenants shred: %s: %w", keyAppDSN, err)
	}
	c, err := ownerConnect(ctx, conn)
	if err != nil {
		return err
	}
	defer c.Close(context.WithoutCancel(ctx))

	// Opened before the shred, so that a writer that cannot even start stops it. The spool is the library's
	// default, in the working directory: the next writer started there replays what this one could not
	// write.
	acfg.SpoolPath = audit.DefaultSpoolPath
	acfg.Logger = slog.New(slog.NewTextHandler(s.stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	w, err := audit.NewWriter(ctx, acfg)
	if err != nil {
		return fmt.Errorf("tenants shred: cannot record a shred in the audit log, so nothing was shredded: %w", err)
	}
	defer w.Close(context.WithoutCancel(ctx))

	done, err := tenants.Shred(ctx, c, w, id)
	if errors.Is(err, tenants.ErrNoKeysets) {
		return fmt.Errorf("tenants shred: tenant %s has no keysets: nothing to shred (already shredded, or created with --no-keys)", id)
	}
	if err != nil {
		return tenantError("shred", id, err)
	}
	s.printf("shredded tenant %s: destroyed its %d keysets (%s): its encrypted fields no longer decrypt and its blind indexes match nothing; its rows and unencrypted columns remain\n",
		id, len(done.Purposes), strings.Join(done.Purposes, ", "))
	s.printf("processes that cached the tenant's keysets keep them until their keyring cache TTL expires (%v unless configured): restart them to end that sooner\n",
		keys.DefaultCacheTTL)
	s.printf("backups taken before now still hold the keysets, wrapped by the KEK %s: to shred those copies too, rotate the KEK ('tenantseal keys rotate-kek --new <uri>') and destroy the old one: every backup from before the rotation then loses its keysets, for all tenants\n",
		strings.Join(done.KEKIDs, ", "))
	return flushShred(ctx, s, w, id)
}

// flushShred waits until the database holds the shred event that tenants.Shred recorded. The shred has
// happened whatever this returns: a failure says so, and where the event waits, on stderr, and exits 1.
func flushShred(ctx context.Context, s *session, w *audit.Writer, id tenantseal.TenantID) error {
	// The keysets are gone: an interrupt now must not cost their record.
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	written, err := w.Flush(wctx)
	if cerr := w.Close(wctx); err == nil && !written {
		err = cerr
	}
	var msg string
	switch {
	case written:
		s.printf("recorded the shred in the audit log (kind %s)\n", tenantseal.EventShred)
		return nil
	case err != nil:
		msg = fmt.Sprintf("tenants shred: tenant %s was shredded, but recording that in the audit log failed: %v", id, err)
	default:
		spool, aerr := filepath.Abs(audit.DefaultSpoolPath)
		if aerr != nil {
			spool = audit.DefaultSpoolPath
		}
		msg = fmt.Sprintf("tenants shred: tenant %s was shredded, but the audit log could not be written (see the log lines above): the shred event waits in the spool file %s, which the next audit writer started in that directory replays", id, spool)
	}
	// Printed here, not returned: exit would replace any message with "interrupted" after a signal.
	fmt.Fprintln(s.stderr, "tenantseal: "+s.redact(oneLine(msg)))
	return errReported
}
