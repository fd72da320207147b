package tenants

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/tenantseal/tenantseal"
)

// Shredded is what [Shred] destroyed.
type Shredded struct {
	// Purposes are the purposes of the destroyed keysets (aead, prf), sorted.
	Purposes []string
	// KEKIDs name the key-encryption keys that wrapped them, sorted. Backups taken before the shred still
	// hold the keysets wrapped by these: destroying the KEKs (after rotating to a new one) shreds those
	// copies too.
	KEKIDs []string
	// Role is the database role that ran the shred, as recorded.
	Role string
}

// Shred crypto-shreds the tenant id: it destroys the tenant's keysets, so that every encrypted field of
// the tenant is unreadable for good and its blind indexes match nothing; its rows and unencrypted
// columns stay. Processes that cached the keysets keep them until their keyring cache TTL.
//
// After the keysets are gone it records a tenantseal.EventShred through rec, targeting the tenant and
// naming the keysets and the database role that ran it (the Principal in ctx, if any, is recorded by
// rec as usual). rec is required: a shred is never unrecorded. An audit.Writer queues the event; flush
// it to know that the log holds it.
//
// It fails with [ErrNotFound], or [ErrNoKeysets] for a tenant with no keysets (shredded already, or
// created without), and then records nothing.
func Shred(ctx context.Context, db DB, rec tenantseal.Recorder, id tenantseal.TenantID) (Shredded, error) {
	if rec == nil {
		return Shredded{}, errors.New("tenants: shred: a Recorder is required")
	}
	var s Shredded
	err := pgx.BeginFunc(ctx, db, func(tx pgx.Tx) error {
		// The tenant's row, locked: a concurrent Create of keysets for it waits for the shred.
		if err := tx.QueryRow(ctx, "SELECT current_user FROM tenantseal.tenants WHERE id = $1 FOR UPDATE", id).Scan(&s.Role); err != nil {
			return err
		}
		rows, err := tx.Query(ctx, "DELETE FROM tenantseal.tenant_keysets WHERE tenant_id = $1 RETURNING purpose, kek_id", id)
		if err != nil {
			return err
		}
		var purpose, kekID string
		_, err = pgx.ForEachRow(rows, []any{&purpose, &kekID}, func() error {
			s.Purposes = append(s.Purposes, purpose)
			s.KEKIDs = append(s.KEKIDs, kekID)
			return nil
		})
		return err
	})
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return Shredded{}, fmt.Errorf("%w: %s", ErrNotFound, id)
	case err != nil:
		return Shredded{}, fmt.Errorf("tenants: shred %s: %w", id, err)
	case len(s.Purposes) == 0:
		return Shredded{}, fmt.Errorf("%w: %s: nothing to shred", ErrNoKeysets, id)
	}
	slices.Sort(s.Purposes)
	slices.Sort(s.KEKIDs)
	s.KEKIDs = slices.Compact(s.KEKIDs)
	rec.Record(ctx, tenantseal.Event{Kind: tenantseal.EventShred, TargetTenant: id, Table: "tenantseal.tenant_keysets",
		Operation: "shred", Detail: fmt.Sprintf("destroyed %d keysets (%s) as database role %s", len(s.Purposes), strings.Join(s.Purposes, ", "), s.Role)})
	return s, nil
}
