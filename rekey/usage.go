package rekey

import (
	"context"
	"encoding/binary"

	"github.com/jackc/pgx/v5"

	"github.com/tenantseal/tenantseal"
	"github.com/tenantseal/tenantseal/keys"
	"github.com/tenantseal/tenantseal/keys/pgstore"
)

// Usage counts, for the tenant of the Principal in ctx, how many ciphertexts and blind indexes each key
// id still produces, across every registered column, and how many of those are quarantined: what
// [pgstore.Admin.Retire] needs to know. Run it through the app's pool.
func Usage(ctx context.Context, db DB) (keys.KeyUsage, error) {
	tenant, err := tenantseal.TenantFrom(ctx)
	if err != nil {
		return keys.KeyUsage{}, err
	}
	cols, err := pgstore.Columns(ctx, db)
	if err != nil {
		return keys.KeyUsage{}, err
	}
	u := keys.KeyUsage{Tenant: tenant, AEAD: map[uint32]int64{}, PRF: map[uint32]int64{},
		QuarantinedAEAD: map[uint32]int64{}, QuarantinedPRF: map[uint32]int64{}}
	count := func(c pgstore.Column, column string, from int, into, quarantined map[uint32]int64) error {
		rows, err := db.Query(ctx, usageSQL(c, column, from), tenant, c.Table, c.Column)
		if err != nil {
			return wrap("usage of "+c.Table+"."+column, err)
		}
		var prefix []byte
		var n, q int64
		_, err = pgx.ForEachRow(rows, []any{&prefix, &n, &q}, func() error {
			if len(prefix) == 4 {
				id := binary.BigEndian.Uint32(prefix)
				into[id] += n
				if q > 0 {
					quarantined[id] += q
				}
			}
			return nil
		})
		if err != nil {
			return wrap("usage of "+c.Table+"."+column, err)
		}
		return nil
	}
	for _, c := range cols {
		if err := count(c, c.Column, 2, u.AEAD, u.QuarantinedAEAD); err != nil {
			return keys.KeyUsage{}, err
		}
		if c.BlindIndex != "" {
			if err := count(c, c.BlindIndex, 1, u.PRF, u.QuarantinedPRF); err != nil {
				return keys.KeyUsage{}, err
			}
		}
	}
	return u, nil
}
