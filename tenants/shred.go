package tenants

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tenantseal/tenantseal"
	"github.com/tenantseal/tenantseal/keys/pgstore"
)

// Shredded is what [Shred] destroyed.
type Shredded struct {
	// Purposes are the purposes of the destroyed keysets (aead, prf), sorted; none for a tenant that had
	// none.
	Purposes []string
	// KEKIDs name the key-encryption keys that wrapped them, sorted. Backups taken before the shred still
	// hold the keysets wrapped by these: destroying the KEKs (after rotating to a new one) shreds those
	// copies too.
	KEKIDs []string
	// Role is the database role that ran the shred, as recorded.
	Role string
	// Already is set when the tenant was shredded before and has had no keysets since: nothing was
	// done, and nothing recorded. At is then when it was shredded; otherwise now.
	Already bool
	At      time.Time
}

// Shred crypto-shreds the tenant id: it destroys the tenant's keysets, so that every encrypted field of
// the tenant is unreadable for good and its blind indexes match nothing, and marks the tenant shredded
// (Tenant.ShreddedAt), so that reads of its old values report keys.ErrShredded, not tampering; its rows
// and unencrypted columns stay. Processes that cached the keysets keep them until their keyring cache
// TTL, or their next version check.
//
// After the keysets are gone it records a tenantseal.EventShred through rec, targeting the tenant and
// naming the keysets and the database role that ran it (the Principal in ctx, if any, is recorded by
// rec as usual). rec is required: a shred is never unrecorded. An audit.Writer queues the event; flush
// it to know that the log holds it.
//
// Shred is idempotent: a tenant shredded before, with no keysets since, is left as it is and reported
// with Shredded.Already, and nothing is recorded. A tenant created without keysets is marked shredded
// (and recorded), so that it is never given any unnoticed. It fails with [ErrNotFound].
func Shred(ctx context.Context, db DB, rec tenantseal.Recorder, id tenantseal.TenantID) (Shredded, error) {
	if rec == nil {
		return Shredded{}, errors.New("tenants: shred: a Recorder is required")
	}
	var s Shredded
	err := pgx.BeginFunc(ctx, db, func(tx pgx.Tx) error {
		// The tenant's row, locked: a concurrent Create of keysets for it waits for the shred.
		var at *time.Time
		if err := tx.QueryRow(ctx, "SELECT current_user, shredded_at FROM tenantseal.tenants WHERE id = $1 FOR UPDATE", id).Scan(&s.Role, &at); err != nil {
			return err
		}
		rows, err := tx.Query(ctx, "DELETE FROM tenantseal.tenant_keysets WHERE tenant_id = $1 RETURNING purpose, kek_id", id)
		if err != nil {
			return err
		}
		var purpose, kekID string
		if _, err = pgx.ForEachRow(rows, []any{&purpose, &kekID}, func() error {
			s.Purposes = append(s.Purposes, purpose)
			s.KEKIDs = append(s.KEKIDs, kekID)
			return nil
		}); err != nil {
			return err
		}
		if at != nil && len(s.Purposes) == 0 {
			s.Already, s.At = true, at.UTC()
			return nil
		}
		if err := pgstore.MarkShredded(ctx, tx, id); err != nil {
			return err
		}
		return tx.QueryRow(ctx, "SELECT shredded_at FROM tenantseal.tenants WHERE id = $1", id).Scan(&s.At)
	})
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return Shredded{}, fmt.Errorf("%w: %s", ErrNotFound, id)
	case err != nil:
		return Shredded{}, fmt.Errorf("tenants: shred %s: %w", id, err)
	case s.Already:
		return s, nil
	}
	s.At = s.At.UTC()
	slices.Sort(s.Purposes)
	slices.Sort(s.KEKIDs)
	s.KEKIDs = slices.Compact(s.KEKIDs)
	what := fmt.Sprintf("destroyed %d keysets (%s)", len(s.Purposes), strings.Join(s.Purposes, ", "))
	if len(s.Purposes) == 0 {
		what = "marked shredded; it had no keysets"
	}
	rec.Record(ctx, tenantseal.Event{Kind: tenantseal.EventShred, TargetTenant: id, Table: "tenantseal.tenant_keysets",
		Operation: "shred", Detail: what + " as database role " + s.Role})
	return s, nil
}
