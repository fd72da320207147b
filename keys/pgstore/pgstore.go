// Package pgstore keeps tenant keysets and the registry of encrypted columns in PostgreSQL: it loads
// wrapped keysets for a [keys.Keyring] through row-level security, and reads
// tenantseal.encrypted_columns. Package keys itself knows nothing of storage.
package pgstore

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/tenantseal/tenantseal"
	"github.com/tenantseal/tenantseal/keys"
)

// Querier runs a query; *db.Pool satisfies it (so do *pgx.Conn and pgxpool.Pool for owner-side tools).
type Querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

type querierKey struct{}

// WithQuerier returns a copy of ctx under which [Loader] reads keysets through q instead of its
// pool: inside a transaction, pass the transaction, so that a keyset load does not wait for a second
// connection (the repositories' With(tx) does this).
func WithQuerier(ctx context.Context, q Querier) context.Context {
	return context.WithValue(ctx, querierKey{}, q)
}

type poolLoader struct{ q Querier }

// Loader reads wrapped keysets through q, which for the app is its *db.Pool: row-level security then
// lets each Principal read only its own tenant's keysets.
func Loader(q Querier) keys.Loader { return poolLoader{q} }

func (l poolLoader) LoadKeysets(ctx context.Context, tenant tenantseal.TenantID) (keys.Wrapped, error) {
	q := l.q
	if o, ok := ctx.Value(querierKey{}).(Querier); ok {
		q = o
	}
	rows, err := q.Query(ctx, `SELECT k.purpose, k.wrapped, k.kek_id, (SELECT ciphertext FROM tenantseal.kek_canary)
		FROM tenantseal.tenant_keysets k WHERE k.tenant_id = $1`, tenant)
	if err != nil {
		return keys.Wrapped{}, fmt.Errorf("pgstore: load keysets: %w", err)
	}
	var w keys.Wrapped
	for rows.Next() {
		var purpose, kekID string
		var wrapped, canary []byte
		if err := rows.Scan(&purpose, &wrapped, &kekID, &canary); err != nil {
			rows.Close()
			return keys.Wrapped{}, fmt.Errorf("pgstore: load keysets: %w", err)
		}
		switch purpose {
		case keys.PurposeAEAD:
			w.AEAD = wrapped
		case keys.PurposePRF:
			w.PRF = wrapped
		}
		w.KEKID, w.Canary = kekID, canary
	}
	if err := rows.Err(); err != nil {
		return keys.Wrapped{}, fmt.Errorf("pgstore: load keysets: %w", err)
	}
	if w.AEAD == nil || w.PRF == nil {
		return keys.Wrapped{}, fmt.Errorf("%w (tenant %s)", keys.ErrNoKeyset, tenant)
	}
	return w, nil
}

// Column is an encrypted column as registered in tenantseal.encrypted_columns.
type Column struct {
	Table      string // relation as regclass text, e.g. customers or app.customers
	Name       string // relation name without schema: the table part of the associated data
	Column     string
	BlindIndex string // blind index column, "" for none
	Normalizer string // key of Normalizers
}

// Columns reads the registry of encrypted columns.
func Columns(ctx context.Context, q Querier) ([]Column, error) {
	rows, err := q.Query(ctx, `SELECT e.table_name::text, c.relname::text, e.column_name::text, coalesce(e.blind_index_column::text, ''), e.normalizer
		FROM tenantseal.encrypted_columns e JOIN pg_class c ON c.oid = e.table_name ORDER BY 1, 3`)
	if err != nil {
		return nil, fmt.Errorf("pgstore: read encrypted columns: %w", err)
	}
	cols, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Column, error) {
		var c Column
		return c, r.Scan(&c.Table, &c.Name, &c.Column, &c.BlindIndex, &c.Normalizer)
	})
	if err != nil {
		return nil, fmt.Errorf("pgstore: read encrypted columns: %w", err)
	}
	for _, c := range cols {
		if _, ok := keys.NormalizerByName(c.Normalizer); !ok {
			return nil, fmt.Errorf("pgstore: %s.%s: unknown normalizer %q", c.Table, c.Column, c.Normalizer)
		}
	}
	return cols, nil
}
