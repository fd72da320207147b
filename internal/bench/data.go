package bench

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/tenantseal/tenantseal/keys/pgstore"

	"github.com/tenantseal/tenantseal"

	"github.com/jackc/pgx/v5"
	"github.com/tink-crypto/tink-go/v2/aead"
	"github.com/tink-crypto/tink-go/v2/keyset"

	"github.com/tenantseal/tenantseal/bootstrap"
	"github.com/tenantseal/tenantseal/db"
	"github.com/tenantseal/tenantseal/examples/reference"
	"github.com/tenantseal/tenantseal/internal/dsn"
	"github.com/tenantseal/tenantseal/keys"
	"github.com/tenantseal/tenantseal/repo"
)

// dataset is a bootstrapped database loaded with tenants and customers, and the ids to query.
type dataset struct {
	res     *bootstrap.Result
	super   string // superuser DSN of the bench database
	kek     *keys.KEK
	tenants []tenantseal.TenantID
	ids     [][]repo.ID // customer ids per tenant
	// hasC: the migrations installed the C verifier; verifier: the one the database runs now.
	hasC     bool
	verifier string
	plain    bool         // customers_plain exists
	keyed    bool         // customers_keyed exists
	next     atomic.Int64 // the next tenant of pick without a random source
}

// newKEK returns an in-memory KEK: the bench database is thrown away with its keys.
func newKEK() (*keys.KEK, error) {
	h, err := keyset.NewHandle(aead.AES256GCMKeyTemplate())
	if err != nil {
		return nil, err
	}
	a, err := aead.New(h)
	if err != nil {
		return nil, err
	}
	return keys.NewKEK("bench", a), nil
}

// newDatabase bootstraps database name with roles of the same prefix and the examples' tables.
func newDatabase(ctx context.Context, superDSN, name string) (*dataset, error) {
	res, err := bootstrap.Run(ctx, superDSN, bootstrap.Options{Database: name, RolePrefix: name})
	if err != nil {
		return nil, err
	}
	if err := reference.Migrate(ctx, res.OwnerDSN); err != nil {
		return nil, err
	}
	// Variants 3 and 4 use plain tenant ids: only a throwaway database may accept them.
	owner, err := pgx.Connect(ctx, res.OwnerDSN)
	if err != nil {
		return nil, err
	}
	defer owner.Close(context.WithoutCancel(ctx))
	if _, err := owner.Exec(ctx, "UPDATE tenantseal.settings SET allow_unsigned = true"); err != nil {
		return nil, err
	}
	super, err := dsn.WithDatabase(superDSN, res.Database)
	if err != nil {
		return nil, err
	}
	ds := &dataset{res: res, super: super}
	if ds.verifier, err = ds.verifierOf(ctx); err != nil {
		return nil, fmt.Errorf("bench: which verifier: %w", err)
	}
	ds.hasC = ds.verifier == verifierC
	return ds, nil
}

// plainCopyOnce makes customers_plain unless it exists.
func (ds *dataset) plainCopyOnce(ctx context.Context) error {
	if ds.plain {
		return nil
	}
	return ds.plainCopy(ctx)
}

// plainCopy makes customers_plain, a copy of customers without row-level security, for the baselines.
func (ds *dataset) plainCopy(ctx context.Context) error {
	ds.plain = true
	super, err := pgx.Connect(ctx, ds.super)
	if err != nil {
		return err
	}
	defer super.Close(context.WithoutCancel(ctx))
	for _, stmt := range []string{
		"CREATE TABLE customers_plain (LIKE customers INCLUDING ALL)",
		"INSERT INTO customers_plain SELECT * FROM customers",
		"ALTER TABLE customers_plain OWNER TO " + pgx.Identifier{ds.res.Roles.Owner}.Sanitize(),
		"GRANT SELECT, INSERT ON customers_plain TO " + pgx.Identifier{ds.res.Roles.App}.Sanitize(),
		"ANALYZE customers_plain",
	} {
		if _, err := super.Exec(ctx, stmt); err != nil {
			return fmt.Errorf("bench: %s: %w", strings.Fields(stmt)[0], err)
		}
	}
	return nil
}

// keyedCopy makes customers_keyed, a copy of customers whose tenant column is text and named
// tenant_key, protected by protect_table: its policy compares the column with
// tenantseal.current_tenant_key() cast to text, the form every tenant column that is not a uuid gets
// (bigint, integer, text keys), where customers' compares tenant_id with current_tenant().
func (ds *dataset) keyedCopy(ctx context.Context) error {
	if ds.keyed {
		return nil
	}
	ds.keyed = true
	super, err := pgx.Connect(ctx, ds.super)
	if err != nil {
		return err
	}
	defer super.Close(context.WithoutCancel(ctx))
	owner, err := pgx.Connect(ctx, ds.res.OwnerDSN)
	if err != nil {
		return err
	}
	defer owner.Close(context.WithoutCancel(ctx))
	for _, s := range []struct {
		c    *pgx.Conn
		stmt string
	}{
		{super, "CREATE TABLE customers_keyed AS SELECT tenant_id::text AS tenant_key, " + pointCols + " FROM customers"},
		{super, "ALTER TABLE customers_keyed ALTER COLUMN tenant_key SET NOT NULL, ADD PRIMARY KEY (tenant_key, id)"},
		{super, "ALTER TABLE customers_keyed OWNER TO " + pgx.Identifier{ds.res.Roles.Owner}.Sanitize()},
		{super, "ANALYZE customers_keyed"},
		{owner, "SELECT tenantseal.protect_table('customers_keyed', tenant_column => 'tenant_key')"},
	} {
		if _, err := s.c.Exec(ctx, s.stmt); err != nil {
			return fmt.Errorf("bench: %s: %w", strings.Fields(s.stmt)[0], err)
		}
	}
	return nil
}

func openPool(ctx context.Context, res *bootstrap.Result, maxConns int, edit func(*db.Config)) (*db.Pool, error) {
	cfg, err := db.ParseConfig(res.AppDSN)
	if err != nil {
		return nil, err
	}
	cfg.SigningKey = res.ContextKey
	cfg.RolePrefix = strings.TrimSuffix(res.Roles.Owner, "_owner")
	cfg.PoolConfig.MaxConns = int32(maxConns)
	if edit != nil {
		edit(cfg)
	}
	return db.Open(ctx, cfg)
}

// loadMain creates tenants with keysets and their customers through the repositories (encrypted fields
// and blind indexes as an application writes them), invoices beside them, and the plain copy of
// customers without row-level security that the baseline variants read.
func loadMain(ctx context.Context, cfg *Config, superDSN string) (*dataset, error) {
	ds, err := newDatabase(ctx, superDSN, "bench")
	if err != nil {
		return nil, err
	}
	res := ds.res
	if ds.kek, err = newKEK(); err != nil {
		return nil, err
	}
	kek := ds.kek
	owner, err := pgx.Connect(ctx, res.OwnerDSN)
	if err != nil {
		return nil, err
	}
	defer owner.Close(context.WithoutCancel(ctx))
	admin := pgstore.NewAdmin(owner, kek)
	for i := range cfg.Tenants {
		id, err := admin.CreateTenant(ctx, fmt.Sprintf("tenant-%d", i))
		if err != nil {
			return nil, err
		}
		ds.tenants = append(ds.tenants, id)
	}
	pool, err := openPool(ctx, res, 4, nil)
	if err != nil {
		return nil, err
	}
	defer pool.Close()
	kr, err := keys.NewKeyring(keys.Config{KEK: kek, Loader: pgstore.Loader(pool)})
	if err != nil {
		return nil, err
	}
	customers, err := reference.NewCustomers(ctx, pool, kr)
	if err != nil {
		return nil, err
	}
	ds.ids = make([][]repo.ID, len(ds.tenants))
	// Two loaders: one encrypts while the other's rows travel.
	var wg sync.WaitGroup
	errs := make(chan error, 2)
	next := make(chan int)
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for t := range next {
				tctx := tenantseal.WithPrincipal(ctx, tenantseal.Principal{Tenant: ds.tenants[t], Subject: "bench-loader"})
				rows := make([]*reference.Customer, cfg.CustomersPerTenant)
				for i := range rows {
					notes := fmt.Sprintf("account notes for customer %d of tenant %d", i, t)
					rows[i] = &reference.Customer{DisplayName: fmt.Sprintf("Customer %d", i),
						Email: fmt.Sprintf("c%d@t%d.example", i, t), Phone: "+1 555 0100", Notes: &notes}
				}
				if err := customers.InsertMany(tctx, rows); err != nil {
					errs <- err
					return
				}
				ids := make([]repo.ID, len(rows))
				for i, r := range rows {
					ids[i] = r.ID
				}
				ds.ids[t] = ids
			}
		}()
	}
	for t := range ds.tenants {
		if t%100 == 0 {
			fmt.Fprintf(cfg.Progress, "  loading tenant %d of %d\n", t+1, len(ds.tenants))
		}
		select {
		case next <- t:
		case err := <-errs:
			close(next)
			wg.Wait()
			return nil, err
		}
	}
	close(next)
	wg.Wait()
	select {
	case err := <-errs:
		return nil, err
	default:
	}
	super, err := pgx.Connect(ctx, ds.super)
	if err != nil {
		return nil, err
	}
	defer super.Close(context.WithoutCancel(ctx))
	for _, stmt := range []string{
		`INSERT INTO invoices (tenant_id, id, customer_id, amount_minor, currency, status)
		   SELECT tenant_id, gen_random_uuid(), id, 1000 + (random() * 9000)::int, 'EUR', 'issued'
		     FROM customers WHERE random() < 0.5`,
		"ANALYZE",
	} {
		if _, err := super.Exec(ctx, stmt); err != nil {
			return nil, fmt.Errorf("bench: %s: %w", strings.Fields(stmt)[0], err)
		}
	}
	return ds, ds.plainCopy(ctx)
}

// loadFlat creates n tenants with rows customers each, in bulk (the flatness check reads without
// decrypting, so no keysets are needed), in its own database.
func loadFlat(ctx context.Context, superDSN, name string, n, rows int) (*dataset, error) {
	ds, err := newDatabase(ctx, superDSN, name)
	if err != nil {
		return nil, err
	}
	super, err := pgx.Connect(ctx, ds.super)
	if err != nil {
		return nil, err
	}
	defer super.Close(context.WithoutCancel(ctx))
	for _, s := range []struct {
		sql  string
		args []any
	}{
		{"INSERT INTO tenantseal.tenants (name) SELECT 'flat-' || g FROM generate_series(1, $1::int) g", []any{n}},
		{`INSERT INTO customers (tenant_id, id, display_name)
		   SELECT t.id, gen_random_uuid(), 'Customer ' || g FROM tenantseal.tenants t, generate_series(1, $1::int) g`, []any{rows}},
		{"ANALYZE", nil},
	} {
		if _, err := super.Exec(ctx, s.sql, s.args...); err != nil {
			return nil, fmt.Errorf("bench: load flat: %w", err)
		}
	}
	r, err := super.Query(ctx, "SELECT tenant_id, id FROM customers ORDER BY tenant_id")
	if err != nil {
		return nil, err
	}
	idx := map[tenantseal.TenantID]int{}
	var t tenantseal.TenantID
	var id repo.ID
	_, err = pgx.ForEachRow(r, []any{&t, &id}, func() error {
		i, ok := idx[t]
		if !ok {
			i = len(ds.tenants)
			idx[t] = i
			ds.tenants = append(ds.tenants, t)
			ds.ids = append(ds.ids, nil)
		}
		ds.ids[i] = append(ds.ids[i], id)
		return nil
	})
	return ds, err
}
