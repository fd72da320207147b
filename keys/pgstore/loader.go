package pgstore

import (
	"context"
	"fmt"
	"regexp"
	"time"

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
// [keys.ErrNoKeyset]. It is a [keys.VersionLoader]: a Keyring over it notices stored changes within
// keys.Config.Revalidate. It reports the database's cache bound (tenantseal.key_settings.max_cache_ttl)
// as [keys.Wrapped.CacheBound], so that no Keyring caches longer than the retire rule assumes.
func Loader(q Querier) keys.Loader { return poolLoader{q} }

func (l poolLoader) querier(ctx context.Context) Querier {
	if o, ok := ctx.Value(querierKey{}).(Querier); ok {
		return o
	}
	return l.q
}

// loadKeysets reads the tenant's row (shredded or not, as the app role may see its own) with its
// keysets, its own KEK's URI and canary or else the database's canary, and the cache bound in
// microseconds.
const loadKeysets = `SELECT t.shredded_at IS NOT NULL, k.purpose, k.wrapped, k.kek_id, k.version,
		coalesce(o.canary, (SELECT ciphertext FROM tenantseal.kek_canary)), coalesce(o.kek_uri, ''),
		(SELECT (extract(epoch FROM max_cache_ttl) * 1000000)::bigint FROM tenantseal.key_settings)
	FROM tenantseal.tenants t LEFT JOIN tenantseal.tenant_keysets k ON k.tenant_id = t.id
		LEFT JOIN tenantseal.tenant_keks o ON o.tenant_id = t.id
	WHERE t.id = $1`

func (l poolLoader) LoadKeysets(ctx context.Context, tenant tenantseal.TenantID) (keys.Wrapped, error) {
	rows, err := l.querier(ctx).Query(ctx, loadKeysets, tenant)
	if err != nil {
		return keys.Wrapped{}, wrap("load keysets", err)
	}
	var w keys.Wrapped
	for rows.Next() {
		var purpose, kekID *string
		var version *int64
		var bound *int64
		var wrapped, canary []byte
		if err := rows.Scan(&w.Shredded, &purpose, &wrapped, &kekID, &version, &canary, &w.KEKURI, &bound); err != nil {
			rows.Close()
			return keys.Wrapped{}, wrap("load keysets", err)
		}
		if purpose == nil {
			continue // the tenant, without keysets
		}
		switch *purpose {
		case keys.PurposeAEAD:
			w.AEAD = wrapped
		case keys.PurposePRF:
			w.PRF = wrapped
		}
		w.KEKID, w.Canary, w.Version = *kekID, canary, w.Version+*version
		if bound != nil {
			w.CacheBound = time.Duration(*bound) * time.Microsecond
		}
	}
	if err := rows.Err(); err != nil {
		return keys.Wrapped{}, wrap("load keysets", err)
	}
	if w.AEAD == nil || w.PRF == nil {
		if w.Shredded {
			return keys.Wrapped{}, fmt.Errorf("%w (tenant %s)", keys.ErrShredded, tenant)
		}
		return keys.Wrapped{}, fmt.Errorf("%w (tenant %s)", keys.ErrNoKeyset, tenant)
	}
	return w, nil
}

// KeysetVersion is the sum of the versions of the tenant's stored keysets, which every change raises;
// -1 when it has none.
func (l poolLoader) KeysetVersion(ctx context.Context, tenant tenantseal.TenantID) (int64, error) {
	rows, err := l.querier(ctx).Query(ctx, "SELECT coalesce(sum(version), -1)::bigint FROM tenantseal.tenant_keysets WHERE tenant_id = $1", tenant)
	if err != nil {
		return 0, wrap("read keyset version", err)
	}
	v, err := pgx.CollectExactlyOneRow(rows, pgx.RowTo[int64])
	if err != nil {
		return 0, wrap("read keyset version", err)
	}
	return v, nil
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
