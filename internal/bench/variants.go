package bench

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"

	"github.com/tenantseal/tenantseal/keys/pgstore"

	"github.com/tenantseal/tenantseal"
	"github.com/tenantseal/tenantseal/internal/token"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tenantseal/tenantseal/db"
	"github.com/tenantseal/tenantseal/examples/reference"
	"github.com/tenantseal/tenantseal/keys"
	"github.com/tenantseal/tenantseal/repo"
)

// The same query in every read variant: one customer by tenant and id.
const (
	pointCols  = "id, display_name, email, phone, notes, version"
	pointPlain = "SELECT " + pointCols + " FROM customers_plain WHERE tenant_id = $1 AND id = $2"
	pointRLS   = "SELECT " + pointCols + " FROM customers WHERE tenant_id = $1 AND id = $2"
	pointKeyed = "SELECT " + pointCols + " FROM customers_keyed WHERE tenant_key = $1 AND id = $2"
	listPlain  = "SELECT tenant_id, id, display_name, email, phone, notes, created_at, updated_at, version FROM customers_plain WHERE tenant_id = $1 ORDER BY tenant_id, id LIMIT $2"
)

type row struct {
	id                 [16]byte
	name               string
	email, phone, note []byte
	version            int64
}

func scanPoint(r pgx.Row) error {
	var x row
	return r.Scan(&x.id, &x.name, &x.email, &x.phone, &x.note, &x.version)
}

// pick draws a tenant and one of its customers at random; without rng, the next tenant in order and
// its first customer (primed uses that to read every tenant once).
func (ds *dataset) pick(rng *rand.Rand) (tenantseal.TenantID, repo.ID) {
	if rng == nil {
		t := int(ds.next.Add(1)-1) % len(ds.tenants)
		return ds.tenants[t], ds.ids[t][0]
	}
	t := rng.IntN(len(ds.tenants))
	ids := ds.ids[t]
	return ds.tenants[t], ids[rng.IntN(len(ids))]
}

// u64 is a random number from rng, or from the shared source where rng is nil (the priming reads of
// [dataset.primed]).
func u64(rng *rand.Rand) uint64 {
	if rng == nil {
		return rand.Uint64()
	}
	return rng.Uint64()
}

func appPool(ctx context.Context, ds *dataset, clients int, mode pgx.QueryExecMode, dsn string) (*pgxpool.Pool, error) {
	pc, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, err
	}
	pc.MaxConns = int32(clients)
	if mode != 0 {
		pc.ConnConfig.DefaultQueryExecMode = mode
	}
	return pgxpool.NewWithConfig(ctx, pc)
}

func principal(ctx context.Context, t tenantseal.TenantID) context.Context {
	return tenantseal.WithPrincipal(ctx, tenantseal.Principal{Tenant: t, Subject: "bench"})
}

func (ds *dataset) dbPool(unsigned bool, dsn string, mode pgx.QueryExecMode) func(ctx context.Context, clients int) (*db.Pool, error) {
	return func(ctx context.Context, clients int) (*db.Pool, error) {
		res := *ds.res
		res.AppDSN = dsn
		return openPool(ctx, &res, clients, func(c *db.Config) {
			c.Unsigned = unsigned
			c.ExecMode = mode
		})
	}
}

// baseline is variant 1: raw pgx, one dedicated connection per client, no pool, no RLS (the plain copy).
func (ds *dataset) baseline(dsn string, mode pgx.QueryExecMode) func(ctx context.Context, clients int) (op, func(), error) {
	return func(ctx context.Context, clients int) (op, func(), error) {
		conns := make(chan *pgx.Conn, clients)
		for range clients {
			cc, err := pgx.ParseConfig(dsn)
			if err != nil {
				return nil, nil, err
			}
			if mode != 0 {
				cc.DefaultQueryExecMode = mode
			}
			c, err := pgx.ConnectConfig(ctx, cc)
			if err != nil {
				return nil, nil, err
			}
			conns <- c
		}
		o := func(ctx context.Context, rng *rand.Rand) error {
			c := <-conns
			defer func() { conns <- c }()
			t, id := ds.pick(rng)
			return scanPoint(c.QueryRow(ctx, pointPlain, t, id))
		}
		return o, func() {
			for range clients {
				(<-conns).Close(context.Background())
			}
		}, nil
	}
}

// signedRead is variants 4 and 5: the point read through db.Pool, one round trip.
func (ds *dataset) signedRead(dsn string, mode pgx.QueryExecMode, unsigned bool) func(ctx context.Context, clients int) (op, func(), error) {
	return ds.signedReadOf(pointRLS, dsn, mode, unsigned)
}

// signedReadOf is signedRead of the point read sql ($1 the tenant, $2 the id).
func (ds *dataset) signedReadOf(sql, dsn string, mode pgx.QueryExecMode, unsigned bool) func(ctx context.Context, clients int) (op, func(), error) {
	open := ds.dbPool(unsigned, dsn, mode)
	return func(ctx context.Context, clients int) (op, func(), error) {
		p, err := open(ctx, clients)
		if err != nil {
			return nil, nil, err
		}
		return func(ctx context.Context, rng *rand.Rand) error {
			t, id := ds.pick(rng)
			return scanPoint(p.QueryRow(principal(ctx, t), sql, t, id))
		}, p.Close, nil
	}
}

// variants returns the variants in report order.
func (ds *dataset) variants() []variant {
	repos := func(ctx context.Context, clients int) (*db.Pool, *reference.Customers, error) {
		p, err := ds.dbPool(false, ds.res.AppDSN, 0)(ctx, clients)
		if err != nil {
			return nil, nil, err
		}
		kr, err := keys.NewKeyring(keys.Config{KEK: ds.kek, Loader: pgstore.Loader(p)})
		if err != nil {
			p.Close()
			return nil, nil, err
		}
		c, err := reference.NewCustomers(ctx, p, kr)
		if err != nil {
			p.Close()
			return nil, nil, err
		}
		return p, c, nil
	}
	c := ds.before(verifierC)
	vs := []variant{
		{ID: 1, Name: "baseline: raw pgx, no RLS", setup: ds.baseline(ds.res.AppDSN, 0)},
		{ID: 2, Name: "app-side filter, pgx pool", setup: func(ctx context.Context, clients int) (op, func(), error) {
			p, err := appPool(ctx, ds, clients, 0, ds.res.AppDSN)
			if err != nil {
				return nil, nil, err
			}
			return func(ctx context.Context, rng *rand.Rand) error {
				t, id := ds.pick(rng)
				return scanPoint(p.QueryRow(ctx, pointPlain, t, id))
			}, p.Close, nil
		}},
		{ID: 3, Name: "RLS recipe: BEGIN, set_config, query, COMMIT", setup: func(ctx context.Context, clients int) (op, func(), error) {
			p, err := appPool(ctx, ds, clients, 0, ds.res.AppDSN)
			if err != nil {
				return nil, nil, err
			}
			return func(ctx context.Context, rng *rand.Rand) error {
				t, id := ds.pick(rng)
				return pgx.BeginFunc(ctx, p, func(tx pgx.Tx) error {
					if _, err := tx.Exec(ctx, "SELECT set_config('tenantseal.context', $1, true)", token.Unsigned(t.Handle())); err != nil {
						return err
					}
					return scanPoint(tx.QueryRow(ctx, pointRLS, t, id))
				})
			}, p.Close, nil
		}},
		{ID: 4, Name: "tenantseal, unsigned context" + ds.cName(), before: c, setup: ds.signedRead(ds.res.AppDSN, 0, true)},
		{ID: 5, Name: "tenantseal, signed context" + ds.cName(), before: c, setup: ds.signedRead(ds.res.AppDSN, 0, false)},
		{ID: 51, Name: "tenantseal, signed context, plpgsql verifier", before: ds.before(verifierPLpgSQL), setup: ds.signedRead(ds.res.AppDSN, 0, false)},
		{ID: 52, Name: "tenantseal, signed context, text tenant column (policy by tenant key)" + ds.cName(), before: func(ctx context.Context) error {
			if err := ds.keyedCopy(ctx); err != nil {
				return err
			}
			return c(ctx)
		}, setup: ds.signedReadOf(pointKeyed, ds.res.AppDSN, 0, false)},
		{ID: 6, Name: "repository Get, decrypted", before: c, setup: func(ctx context.Context, clients int) (op, func(), error) {
			p, c, err := repos(ctx, clients)
			if err != nil {
				return nil, nil, err
			}
			return func(ctx context.Context, rng *rand.Rand) error {
				t, id := ds.pick(rng)
				_, err := c.Get(principal(ctx, t), id)
				return err
			}, p.Close, nil
		}},
		{ID: 10, Name: "invoicing service: GET /v1/customers/{id} over HTTP (OIDC token, registry, repository Get, JSON)" + ds.cName(), before: c, setup: ds.serviceRead()},
		{ID: 71, Name: "baseline: raw pgx list of 50, no RLS", setup: func(ctx context.Context, clients int) (op, func(), error) {
			p, err := appPool(ctx, ds, clients, 0, ds.res.AppDSN)
			if err != nil {
				return nil, nil, err
			}
			return func(ctx context.Context, rng *rand.Rand) error {
				t, _ := ds.pick(rng)
				rows, err := p.Query(ctx, listPlain, t, 51) // the limit bound, as the repository binds it
				if err != nil {
					return err
				}
				var x reference.Customer
				_, err = pgx.ForEachRow(rows, []any{&x.TenantID, &x.ID, &x.DisplayName, new([]byte), new([]byte), new([]byte), &x.CreatedAt, &x.UpdatedAt, &x.Version}, func() error { return nil })
				return err
			}, p.Close, nil
		}},
		{ID: 7, Name: "repository List(50), decrypted", before: c, setup: func(ctx context.Context, clients int) (op, func(), error) {
			p, c, err := repos(ctx, clients)
			if err != nil {
				return nil, nil, err
			}
			return func(ctx context.Context, rng *rand.Rand) error {
				t, _ := ds.pick(rng)
				pg, err := c.List(principal(ctx, t), repo.ListOptions{Limit: 50})
				if err == nil && len(pg.Items) != 50 {
					err = fmt.Errorf("listed %d rows, want 50", len(pg.Items))
				}
				return err
			}, p.Close, nil
		}},
		{ID: 81, Name: "baseline: raw pgx insert, no RLS", setup: func(ctx context.Context, clients int) (op, func(), error) {
			p, err := appPool(ctx, ds, clients, 0, ds.res.AppDSN)
			if err != nil {
				return nil, nil, err
			}
			return func(ctx context.Context, rng *rand.Rand) error {
				t, _ := ds.pick(rng)
				// Values of the sizes the repository stores: ciphertexts and a 20-byte blind index.
				bidx := make([]byte, 20)
				for i := range bidx {
					bidx[i] = byte(u64(rng))
				}
				_, err := p.Exec(ctx, "INSERT INTO customers_plain (tenant_id, id, display_name, email, email_bidx, phone, notes) VALUES ($1, $2, $3, $4, $5, $6, $7)",
					t, repo.NewID(), "New customer", make([]byte, 60), bidx, make([]byte, 44), make([]byte, 38))
				return err
			}, p.Close, nil
		}},
		{ID: 8, Name: "repository Insert, encrypted + blind index", before: c, setup: func(ctx context.Context, clients int) (op, func(), error) {
			p, c, err := repos(ctx, clients)
			if err != nil {
				return nil, nil, err
			}
			return func(ctx context.Context, rng *rand.Rand) error {
				t, _ := ds.pick(rng)
				notes := "notes"
				cu := reference.Customer{DisplayName: "New customer", Email: fmt.Sprintf("n%x@bench.example", u64(rng)), Phone: "+1 555 0100", Notes: &notes}
				return c.Insert(principal(ctx, t), &cu)
			}, p.Close, nil
		}},
	}
	return vs
}

// bouncerVariants are variants 1 and 5 through pgbouncer in transaction pooling mode, where pgx's
// default statement cache fails: both use QueryExecModeCacheDescribe.
func (ds *dataset) bouncerVariants(dsn string) []variant {
	mode := pgx.QueryExecModeCacheDescribe
	return []variant{
		{ID: 91, Name: "baseline through pgbouncer", setup: ds.baseline(dsn, mode)},
		{ID: 95, Name: "tenantseal, signed, through pgbouncer", before: ds.before(verifierC), setup: ds.signedRead(dsn, mode, false)},
	}
}

// cName marks the variants that run the C verifier, when the database has it.
func (ds *dataset) cName() string {
	if ds.hasC {
		return ", C verifier"
	}
	return ", plpgsql verifier (no C verifier on this server)"
}

// primed is setup, then [dataset.prime].
func (ds *dataset) primed(setup func(ctx context.Context, clients int) (op, func(), error)) func(ctx context.Context, clients int) (op, func(), error) {
	return func(ctx context.Context, clients int) (op, func(), error) {
		o, cleanup, err := setup(ctx, clients)
		if err != nil {
			return nil, nil, err
		}
		if err := ds.prime(ctx, o, clients); err != nil {
			cleanup()
			return nil, nil, err
		}
		return o, cleanup, nil
	}
}

// prime does o once on every tenant of ds, by clients goroutines, before o is measured: the steady
// state of an application whose every tenant is active, with each tenant's token signed and cached by
// the pool and its keyset opened by the keyring, rather than a pool that signs a token and opens a
// keyset for nearly every operation because the run is shorter than one visit of every tenant. Every
// Go variant is primed, the baselines too, so that each pays the same.
func (ds *dataset) prime(ctx context.Context, o op, clients int) error {
	var left atomic.Int64
	left.Store(int64(len(ds.tenants)))
	errs := make([]error, clients)
	var wg sync.WaitGroup
	for w := range clients {
		wg.Go(func() {
			for left.Add(-1) >= 0 && ctx.Err() == nil {
				if errs[w] = o(ctx, nil); errs[w] != nil {
					left.Store(0)
					return
				}
			}
		})
	}
	wg.Wait()
	if err := errors.Join(append(errs, ctx.Err())...); err != nil {
		return fmt.Errorf("priming: %w", err)
	}
	return nil
}
