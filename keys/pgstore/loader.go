package pgstore

import (
	"context"
	"fmt"
	"regexp"

	"github.com/jackc/pgx/v5"

	"github.com/tenantseal/tenantseal"
	"github.com/tenantseal/tenantseal/keys"
)

// Querier runs a query; *db.Pool satisfies it (so do *pgx.Conn and pgxpool.Pool for owner-side tools,
// and pgx.Tx).
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
// lets each Principal read only its own tenant's keysets, and any other tenant's fail with
// [keys.ErrNoKeyset].
func Loader(q Querier) keys.Loader { return poolLoader{q} }

func (l poolLoader) LoadKeysets(ctx context.Context, tenant tenantseal.TenantID) (keys.Wrapped, error) {
	q := l.q
	if o, ok := ctx.Value(querierKey{}).(Querier); ok {
		q = o
	}
	rows, err := q.Query(ctx, `SELECT k.purpose, k.wrapped, k.kek_id, (SELECT ciphertext FROM tenantseal.kek_canary)
		FROM tenantseal.tenant_keysets k WHERE k.tenant_id = $1`, tenant)
	if err != nil {
		return keys.Wrapped{}, wrap("load keysets", err)
	}
	var w keys.Wrapped
	for rows.Next() {
		var purpose, kekID string
		var wrapped, canary []byte
		if err := rows.Scan(&purpose, &wrapped, &kekID, &canary); err != nil {
			rows.Close()
			return keys.Wrapped{}, wrap("load keysets", err)
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
		return keys.Wrapped{}, wrap("load keysets", err)
	}
	if w.AEAD == nil || w.PRF == nil {
		return keys.Wrapped{}, fmt.Errorf("%w (tenant %s)", keys.ErrNoKeyset, tenant)
	}
	return w, nil
}

// wrap says what failed with one prefix in front: pgstore's before a bare cause (Postgres, the network,
// a cancelled context), none before an error that carries one already (a sentinel's, or db's when the
// Querier is a *db.Pool), which then names what failed after its text.
func wrap(what string, err error) error {
	if prefixed.MatchString(err.Error()) {
		return fmt.Errorf("%w (pgstore: %s)", err, what)
	}
	return fmt.Errorf("pgstore: %s: %w", what, err)
}

var prefixed = regexp.MustCompile(`^[a-z][a-z0-9/]*: `)
