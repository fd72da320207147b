package rekey

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/tenantseal/tenantseal"
)

// Session is a database session of its own: a *pgx.Conn satisfies it. [Reencrypt] holds the tenant's
// advisory lock on it, which PostgreSQL releases by itself if the process dies.
type Session interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
}

// lockClass is the first key of tenantseal's advisory locks on re-encryption; the second is a hash of
// the tenant id. Two tenants whose ids hash alike exclude each other, which costs time, never data.
const lockClass = 0x74735245 // "tsRE"

// lock takes the tenant's re-encryption lock on s, or fails with ErrBusy naming the holder's backend.
func lock(ctx context.Context, s Session, tenant tenantseal.TenantID) (unlock func(), err error) {
	if s == nil {
		return nil, fmt.Errorf("rekey: ReencryptOptions.Lock is required: a connection of its own that holds the tenant's lock while the run lasts")
	}
	var ok bool
	if err := s.QueryRow(ctx, "SELECT pg_try_advisory_lock($1, hashtext($2))", lockClass, tenant.String()).Scan(&ok); err != nil {
		return nil, wrap("lock tenant", err)
	}
	if !ok {
		var pid int32
		err := s.QueryRow(ctx, `SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted AND objsubid = 2
			AND classid = $1::bigint::oid AND objid = ((hashtext($2)::bigint + 4294967296) % 4294967296)::oid LIMIT 1`,
			lockClass, tenant.String()).Scan(&pid)
		if err != nil {
			return nil, fmt.Errorf("%w (tenant %s)", ErrBusy, tenant)
		}
		return nil, fmt.Errorf("%w (tenant %s, backend pid %d)", ErrBusy, tenant, pid)
	}
	return func() {
		// Even when ctx has ended: a lock left behind would keep the next run out until the session ends.
		s.Exec(context.WithoutCancel(ctx), "SELECT pg_advisory_unlock($1, hashtext($2))", lockClass, tenant.String())
	}, nil
}

// quarantineKey names one stored value.
type quarantineKey struct{ table, column, row string }

const (
	quarantineAdd = `INSERT INTO tenantseal.quarantine (tenant_id, table_name, column_name, row_key, key_id, reason, digest)
		VALUES ($1, $2::regclass, $3, $4, $5, $6, $7)
		ON CONFLICT (tenant_id, table_name, column_name, row_key) DO UPDATE
		SET key_id = excluded.key_id, reason = excluded.reason, digest = excluded.digest, found_at = now()`
	quarantineRelease = `DELETE FROM tenantseal.quarantine WHERE tenant_id = $1 AND table_name = $2::regclass AND column_name = $3 AND row_key = $4`
	quarantineList    = `SELECT table_name::text, column_name::text, row_key, coalesce(key_id, 0), reason, digest, found_at
		FROM tenantseal.quarantine WHERE tenant_id = $1 ORDER BY found_at, 1, 2, 3`
)

// quarantined returns the tenant's quarantine list as digests by value.
func quarantined(ctx context.Context, db DB) (map[quarantineKey][]byte, error) {
	entries, err := Quarantined(ctx, db)
	if err != nil {
		return nil, err
	}
	out := make(map[quarantineKey][]byte, len(entries))
	for _, e := range entries {
		out[quarantineKey{e.Table, e.Column, e.Row}] = e.digest
	}
	return out, nil
}

// QuarantineEntry is one entry of the quarantine list.
type QuarantineEntry struct {
	Unreadable
	FoundAt time.Time
	digest  []byte
}

// Quarantined returns the quarantine list of the Principal's tenant (from ctx), the oldest first: every
// value a re-encryption found unreadable and that was not written again since. Run it through the
// app's pool.
func Quarantined(ctx context.Context, db DB) ([]QuarantineEntry, error) {
	tenant, err := tenantseal.TenantFrom(ctx)
	if err != nil {
		return nil, err
	}
	rows, err := db.Query(ctx, quarantineList, tenant)
	if err != nil {
		return nil, wrap("read the quarantine list", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (QuarantineEntry, error) {
		var e QuarantineEntry
		var id int64
		err := r.Scan(&e.Table, &e.Column, &e.Row, &id, &e.Reason, &e.digest, &e.FoundAt)
		e.KeyID, e.FoundAt = uint32(id), e.FoundAt.UTC()
		return e, err
	})
	if err != nil {
		return nil, wrap("read the quarantine list", err)
	}
	return out, nil
}

// Release empties the quarantine list of the Principal's tenant (from ctx) and returns how many entries
// it removed, so that the next [Reencrypt] examines those values again: after a key they name was
// enabled again, say. Values still unreadable go back on the list, and to the audit log, again.
func Release(ctx context.Context, db DB) (int64, error) {
	tenant, err := tenantseal.TenantFrom(ctx)
	if err != nil {
		return 0, err
	}
	var n int64
	err = db.Tx(ctx, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, "DELETE FROM tenantseal.quarantine WHERE tenant_id = $1", tenant)
		n = tag.RowsAffected()
		return err
	})
	if err != nil {
		return 0, wrap("release the quarantine list", err)
	}
	return n, nil
}
