package integration_test

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/tenantseal/tenantseal"

	"github.com/jackc/pgx/v5"

	"github.com/tenantseal/tenantseal/db"
	"github.com/tenantseal/tenantseal/internal/pgbouncer"
	"github.com/tenantseal/tenantseal/internal/pgtest"
)

// workload is many goroutines of many tenants on one pool, each checking after every statement that it
// sees its own tenant's rows and nothing else.
type workload struct {
	goroutines, iterations int
	tenants                []tenantseal.TenantID
}

// result is what a workload observed: the server processes that served it and the rows each tenant
// inserted.
type result struct {
	pids     map[int32]bool
	inserted map[tenantseal.TenantID]int
}

func (w workload) run(t *testing.T, ctx context.Context, pool *db.Pool) result {
	t.Helper()
	var (
		mu  sync.Mutex
		res = result{pids: map[int32]bool{}, inserted: map[tenantseal.TenantID]int{}}
		wg  sync.WaitGroup
	)
	for g := range w.goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tenant := w.tenants[g%len(w.tenants)]
			ctx := as(ctx, tenant, fmt.Sprintf("worker-%d", g))
			var mine []string // display names this goroutine inserted, all committed
			pids := map[int32]bool{}
			fail := func(i int, format string, a ...any) {
				t.Errorf("goroutine %d (tenant %s) step %d: %s", g, tenant, i, fmt.Sprintf(format, a...))
			}
			for i := range w.iterations {
				switch i % 4 {
				case 0: // one round trip: context and INSERT in one batch
					name := fmt.Sprintf("w%d-%d", g, i)
					if _, err := pool.Exec(ctx, "INSERT INTO customers (tenant_id, display_name) VALUES ($1, $2)", tenant, name); err != nil {
						fail(i, "insert: %v", err)
						return
					}
					mine = append(mine, name)
				case 1: // a scan: only own rows, and every own insert is there
					rows, err := pool.Query(ctx, "SELECT tenant_id, display_name, pg_backend_pid() FROM customers")
					if err != nil {
						fail(i, "scan: %v", err)
						return
					}
					seen := map[string]bool{}
					var tid tenantseal.TenantID
					var name string
					var pid int32
					_, err = pgx.ForEachRow(rows, []any{&tid, &name, &pid}, func() error {
						if tid != tenant {
							return fmt.Errorf("saw a row of tenant %s", tid)
						}
						seen[name] = true
						pids[pid] = true
						return nil
					})
					if err != nil {
						fail(i, "scan: %v", err)
						return
					}
					for _, n := range mine {
						if !seen[n] {
							fail(i, "own committed row %q missing from the scan", n)
						}
					}
				case 2: // a transaction of several statements under one context
					err := pool.Tx(ctx, func(tx pgx.Tx) error {
						name := fmt.Sprintf("w%d-%d", g, i)
						if _, err := tx.Exec(ctx, "INSERT INTO customers (tenant_id, display_name) VALUES ($1, $2)", tenant, name); err != nil {
							return err
						}
						var foreign int
						var current tenantseal.TenantID
						var pid int32
						if err := tx.QueryRow(ctx, "SELECT count(*) FILTER (WHERE tenant_id <> $1), tenantseal.current_tenant(), pg_backend_pid() FROM customers", tenant).Scan(&foreign, &current, &pid); err != nil {
							return err
						}
						if foreign != 0 || current != tenant {
							return fmt.Errorf("in a transaction: %d foreign rows, current tenant %s", foreign, current)
						}
						pids[pid] = true
						mine = append(mine, name)
						return nil
					})
					if err != nil {
						fail(i, "tx: %v", err)
						return
					}
				case 3: // the context the database sees
					var current tenantseal.TenantID
					var pid int32
					if err := pool.QueryRow(ctx, "SELECT tenantseal.current_tenant(), pg_backend_pid()").Scan(&current, &pid); err != nil || current != tenant {
						fail(i, "current_tenant() = %s (%v), want %s", current, err, tenant)
						return
					}
					pids[pid] = true
				}
			}
			mu.Lock()
			defer mu.Unlock()
			for p := range pids {
				res.pids[p] = true
			}
			res.inserted[tenant] += len(mine)
		}()
	}
	wg.Wait()
	return res
}

// checkTruth compares what the workload inserted with what the superuser sees, per tenant.
func checkTruth(t *testing.T, ctx context.Context, superDSN string, res result) {
	t.Helper()
	super := mustConn(t, superDSN)
	for tenant, want := range res.inserted {
		var got int
		if err := super.QueryRow(ctx, "SELECT count(*) FROM customers WHERE tenant_id = $1", tenant).Scan(&got); err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Errorf("tenant %s: %d rows stored, want the %d it inserted", tenant, got, want)
		}
	}
}

func sizes() (goroutines, iterations int) {
	if testing.Short() {
		return 24, 40
	}
	return 48, 120
}

func tenants(t *testing.T, d *pgtest.Database, n int) []tenantseal.TenantID {
	var out []tenantseal.TenantID
	for i := range n {
		out = append(out, mustTenant(t, d, fmt.Sprintf("tenant-%d", i)))
	}
	return out
}

// Many goroutines and tenants through one pgx pool (under -race in make test).
func TestPoolConcurrentTenants(t *testing.T) {
	t.Parallel()
	d := pgtest.NewDatabase(t)
	ctx := testContext(t, 3*time.Minute)
	g, n := sizes()
	pool := mustPool(t, d, d.AppDSN, func(c *db.Config) { c.PoolConfig.MaxConns = 8 })
	res := workload{goroutines: g, iterations: n, tenants: tenants(t, d, 8)}.run(t, ctx, pool)
	checkTruth(t, ctx, d.SuperDSN, res)
	if len(res.pids) < 2 {
		t.Errorf("the workload ran on %d server connections, want several", len(res.pids))
	}
}

func startBouncer(t *testing.T, d *pgtest.Database, poolSize int) *pgbouncer.Bouncer {
	t.Helper()
	u, err := url.Parse(d.AppDSN)
	if err != nil {
		t.Fatal(err)
	}
	pw, _ := u.User.Password()
	b, err := pgbouncer.Start(testContext(t, time.Minute), pgbouncer.Options{
		Upstream: d.SuperDSN, Databases: []string{d.Name}, PoolSize: poolSize,
		Users: map[string]string{d.Roles.App: pw},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Stop)
	return b
}

func appPassword(t *testing.T, d *pgtest.Database) string {
	u, err := url.Parse(d.AppDSN)
	if err != nil {
		t.Fatal(err)
	}
	pw, _ := u.User.Password()
	return pw
}

// The same workload through pgbouncer in transaction pooling mode, with far fewer server connections than
// clients: every statement still runs under its own tenant's context.
func TestPgBouncerConcurrentTenants(t *testing.T) {
	t.Parallel()
	d := pgtest.NewDatabase(t)
	const serverConns = 4
	b := startBouncer(t, d, serverConns)
	ctx := testContext(t, 3*time.Minute)
	g, n := sizes()
	pool := mustPool(t, d, b.DSN(d.Roles.App, appPassword(t, d), d.Name), func(c *db.Config) {
		c.ExecMode = pgx.QueryExecModeCacheDescribe
		c.PoolConfig.MaxConns = int32(g)
	})
	res := workload{goroutines: g, iterations: n, tenants: tenants(t, d, 8)}.run(t, ctx, pool)
	checkTruth(t, ctx, d.SuperDSN, res)
	if len(res.pids) == 0 || len(res.pids) > serverConns {
		t.Errorf("served by %d server connections, want 1..%d (pgbouncer's pool)", len(res.pids), serverConns)
	}
	if clients := pool.Stat().TotalConns(); clients <= serverConns {
		t.Errorf("the pool opened %d client connections, want more than the %d server connections", clients, serverConns)
	}
}

// pgx's default statement cache breaks under transaction pooling; db.Config.ExecMode fixes it. Two pools
// through a database with one server connection share that session one after the other.
func TestPgBouncerNeedsExecMode(t *testing.T) {
	t.Parallel()
	d := pgtest.NewDatabase(t)
	b := startBouncer(t, d, 2)
	dsn := b.DSN(d.Roles.App, appPassword(t, d), d.Name+b.SingleSuffix)
	tenant := mustTenant(t, d, "a")
	ctx := as(testContext(t, time.Minute), tenant, "bouncer")

	// Both pools prepare the same named statements on the one server session.
	open := func(mode pgx.QueryExecMode) (*db.Pool, error) {
		cfg, err := db.ParseConfig(dsn)
		if err != nil {
			return nil, err
		}
		cfg.SigningKey, cfg.RolePrefix, cfg.ExecMode = d.ContextKey, prefixOf(d), mode
		cfg.PoolConfig.MaxConns = 1
		p, err := db.Open(ctx, cfg)
		if err == nil {
			t.Cleanup(p.Close)
		}
		return p, err
	}
	round := func(mode pgx.QueryExecMode) error {
		a, err := open(mode)
		if err != nil {
			return err
		}
		c, err := open(mode)
		if err != nil {
			return err
		}
		for range 5 {
			for _, p := range []*db.Pool{a, c} {
				var n int
				if err := p.QueryRow(ctx, "SELECT count(*) FROM customers WHERE tenant_id = $1", tenant).Scan(&n); err != nil {
					return err
				}
			}
		}
		return nil
	}
	err := round(pgx.QueryExecModeCacheStatement)
	if got := sqlState(err); got != "42P05" && got != "26000" {
		t.Errorf("default exec mode through pgbouncer: got %v (SQLSTATE %q), want 42P05 or 26000", err, got)
	}
	for _, mode := range []pgx.QueryExecMode{pgx.QueryExecModeCacheDescribe, pgx.QueryExecModeDescribeExec, pgx.QueryExecModeExec} {
		if err := round(mode); err != nil {
			t.Errorf("exec mode %v through pgbouncer: %v", mode, err)
		}
	}
	// The simple protocol would work too, with the token in the statement text, where every session of
	// the role reads it: refused.
	if err := round(pgx.QueryExecModeSimpleProtocol); !errors.Is(err, db.ErrUnsafeExecMode) {
		t.Errorf("the simple protocol through pgbouncer: got %v, want db.ErrUnsafeExecMode", err)
	}
}

// Through one server session shared by turns: the tenant context of one client is gone for the next.
func TestPgBouncerContextDoesNotCarryOver(t *testing.T) {
	t.Parallel()
	d := pgtest.NewDatabase(t)
	b := startBouncer(t, d, 2)
	dsn := b.DSN(d.Roles.App, appPassword(t, d), d.Name+b.SingleSuffix)
	ctx := testContext(t, time.Minute)
	a := mustTenant(t, d, "a")
	pool := mustPool(t, d, dsn, func(c *db.Config) { c.ExecMode = pgx.QueryExecModeExec })
	if _, err := pool.Exec(as(ctx, a, "alice"), "INSERT INTO customers (tenant_id, display_name) VALUES ($1, 'a')", a); err != nil {
		t.Fatal(err)
	}
	next, err := pgx.Connect(ctx, dsn+"&default_query_exec_mode=exec")
	if err != nil {
		t.Fatal(err)
	}
	defer next.Close(context.Background())
	var setting string
	var pid1, pid2 int32
	var n int
	if err := pool.QueryRow(as(ctx, a, "alice"), "SELECT pg_backend_pid()").Scan(&pid1); err != nil {
		t.Fatal(err)
	}
	if err := next.QueryRow(ctx, "SELECT coalesce(current_setting('tenantseal.context', true), ''), pg_backend_pid(), (SELECT count(*) FROM customers)").Scan(&setting, &pid2, &n); err != nil {
		t.Fatal(err)
	}
	if pid1 != pid2 {
		t.Fatalf("the two clients ran on server processes %d and %d, want one shared session", pid1, pid2)
	}
	if setting != "" || n != 0 {
		t.Errorf("the next client of the session sees context %q and %d rows, want none", setting, n)
	}
	// A session-level setting survives into the next client's transaction (hence transaction-local
	// contexts), unless it is reset in the transaction that made it, as db.Pool does after every
	// statement, also one that SQL injected into it set.
	tok := "v1.x.y"
	const leave = "SELECT set_config('tenantseal.context', $1, false)"
	rows, err := pool.Unscoped().Query(ctx, leave, tok)
	if err != nil {
		t.Fatal(err)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	seen := func() string {
		t.Helper()
		if err := next.QueryRow(ctx, "SELECT coalesce(current_setting('tenantseal.context', true), '')").Scan(&setting); err != nil {
			t.Fatal(err)
		}
		return setting
	}
	if got := seen(); got != "" {
		t.Errorf("a session-level setting made through db.Pool: the next client sees %q, want it reset", got)
	}
	raw, err := pgx.Connect(ctx, dsn+"&default_query_exec_mode=exec")
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close(context.Background())
	if _, err := raw.Exec(ctx, leave, tok); err != nil {
		t.Fatal(err)
	}
	if got := seen(); got != tok {
		t.Errorf("a session-level setting made without db.Pool: the next client sees %q, want %q (it leaks: hence the reset)", got, tok)
	}
}
