package cli

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/tenantseal/tenantseal"

	"github.com/jackc/pgx/v5"

	"github.com/tenantseal/tenantseal/audit"
	"github.com/tenantseal/tenantseal/keys"
)

// eventShred is the audit event kind of a crypto-shred.
const eventShred = "shred"

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
	// The audit log takes appends from the app role only: without its connection string nothing is
	// shredded.
	appDSN, err := conn.roleDSN("app", "", "", keyAppDSN)
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

	// Opened before the shred, so that a writer that cannot even start stops it. The spool is the library's
	// default, in the working directory: the next writer started there replays what this one could not
	// write.
	w, err := audit.NewWriter(ctx, audit.Config{AppDSN: appDSN, SpoolPath: audit.DefaultSpoolPath,
		Logger: slog.New(slog.NewTextHandler(s.stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))})
	if err != nil {
		return fmt.Errorf("tenants shred: cannot record a shred in the audit log, so nothing was shredded: %w", err)
	}
	defer w.Close(context.WithoutCancel(ctx))

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
	return recordShred(ctx, s, w, id, fmt.Sprintf("destroyed %d keysets (%s) as database role %s", n, strings.Join(purposes, ", "), c.Config().User))
}

// recordShred appends the shred event and waits until the database holds it. The shred has happened
// whatever this returns: a failure says so, and where the event waits, on stderr, and exits 1.
func recordShred(ctx context.Context, s *session, w *audit.Writer, id tenantseal.TenantID, detail string) error {
	w.Record(ctx, tenantseal.Event{Kind: eventShred, TargetTenant: id, Table: "tenantseal.tenant_keysets", Operation: "shred", Detail: detail})
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
		s.printf("recorded the shred in the audit log (kind %s)\n", eventShred)
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
