package db_test

import (
	"context"
	"crypto/rand"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5"

	"github.com/tenantseal/tenantseal"
	"github.com/tenantseal/tenantseal/db"
	"github.com/tenantseal/tenantseal/internal/pgtest"
)

// The replica tests share one replica set and do not run in parallel: the lag test pauses the shared
// standby's replay.

// replicaPool opens a pool on d whose replica is standby, checked every 50 ms.
func replicaPool(t *testing.T, d *pgtest.Database, standby *pgtest.Server, maxLag time.Duration, edit ...func(*db.Config)) *db.Pool {
	t.Helper()
	cfg := mustConfig(t, d, d.AppDSN)
	r, err := db.ParseReplica(standby.On(d.AppDSN))
	if err != nil {
		t.Fatal(err)
	}
	cfg.Replicas = []db.ReplicaConfig{r}
	cfg.ReplicaMaxLag = maxLag
	cfg.ReplicaCheckInterval = 50 * time.Millisecond
	for _, e := range edit {
		e(cfg)
	}
	return mustOpen(t, cfg)
}

// where runs one query under ctx and returns whether it ran on a standby and the customers it saw, in
// the same statement, so on the same session.
func where(t *testing.T, ctx context.Context, q interface {
	QueryRow(context.Context, string, ...any) pgx.Row
}) (standby bool, names []string) {
	t.Helper()
	err := q.QueryRow(ctx, "SELECT pg_is_in_recovery(), coalesce(array_agg(display_name ORDER BY display_name), '{}') FROM customers").Scan(&standby, &names)
	if err != nil {
		t.Fatal(err)
	}
	return standby, names
}

func mustInsertCustomer(t *testing.T, ctx context.Context, p *db.Pool, name string) {
	t.Helper()
	tenant, err := tenantseal.TenantFrom(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Exec(ctx, "INSERT INTO customers (tenant_id, display_name) VALUES ($1, $2)", tenant, name); err != nil {
		t.Fatal(err)
	}
}

func TestReplicaRouting(t *testing.T) {
	rs := pgtest.SharedReplicaSet(t)
	d := rs.NewDatabase(t)
	ctx := testContext(t)
	p := replicaPool(t, d, rs.Replica, time.Minute)
	a, b := mustTenant(t, d, "a"), mustTenant(t, d, "b")
	actx, bctx := as(ctx, a, "alice"), as(ctx, b, "bob")
	mustInsertCustomer(t, actx, p, "a1")
	mustInsertCustomer(t, bctx, p, "b1")
	if err := rs.WaitReplayed(ctx, rs.Replica); err != nil {
		t.Fatal(err)
	}
	pgtest.WaitReplica(t, p, true)

	for _, tc := range []struct {
		name    string
		ctx     context.Context
		standby bool
		want    []string
	}{
		{"default", actx, false, []string{"a1"}},
		{"ReadFromReplica", db.ReadFromReplica(actx), true, []string{"a1"}},
		{"other tenant on the replica", db.ReadFromReplica(bctx), true, []string{"b1"}},
		{"OnPrimary after ReadFromReplica", db.OnPrimary(db.ReadFromReplica(actx)), false, []string{"a1"}},
		{"ReadFromReplica after OnPrimary", db.ReadFromReplica(db.OnPrimary(actx)), false, []string{"a1"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			standby, names := where(t, tc.ctx, p)
			if standby != tc.standby || !cmp.Equal(names, tc.want) {
				t.Errorf("got standby=%v %v, want standby=%v %v", standby, names, tc.standby, tc.want)
			}
		})
	}

	rctx := db.ReadFromReplica(actx)
	t.Run("Exec writes on the primary", func(t *testing.T) {
		mustInsertCustomer(t, rctx, p, "a2") // a standby would refuse it with 25006
		// Read-your-writes: at once, whatever the standby has replayed.
		if standby, names := where(t, db.OnPrimary(rctx), p); standby || !cmp.Equal(names, []string{"a1", "a2"}) {
			t.Errorf("after the write: got standby=%v %v, want the primary's [a1 a2]", standby, names)
		}
	})
	t.Run("a write through Query on the replica writes nothing", func(t *testing.T) {
		var n int
		err := p.QueryRow(rctx, "INSERT INTO customers (tenant_id, display_name) VALUES ($1, 'ax') RETURNING 1", a).Scan(&n)
		if sqlState(err) != "25006" {
			t.Fatalf("got %v, want SQLSTATE 25006 (read-only transaction)", err)
		}
		if _, names := where(t, actx, p); !cmp.Equal(names, []string{"a1", "a2"}) {
			t.Errorf("on the primary: got %v, want [a1 a2]", names)
		}
	})
	t.Run("transactions", func(t *testing.T) {
		for _, tc := range []struct {
			name    string
			opts    pgx.TxOptions
			standby bool
		}{
			{"read-only", pgx.TxOptions{AccessMode: pgx.ReadOnly}, true},
			{"read-write", pgx.TxOptions{}, false},
		} {
			var standby bool
			var names []string
			err := p.TxWith(rctx, tc.opts, func(tx pgx.Tx) error {
				standby, names = where(t, rctx, tx)
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if standby != tc.standby || len(names) == 0 || names[0] != "a1" {
				t.Errorf("%s: got standby=%v %v, want standby=%v and a's rows", tc.name, standby, names, tc.standby)
			}
		}
	})
	t.Run("unscoped sees no tenant's rows on the replica", func(t *testing.T) {
		var standby bool
		var n int
		if err := p.Unscoped().QueryRow(db.ReadFromReplica(ctx), "SELECT pg_is_in_recovery(), count(*) FROM customers").Scan(&standby, &n); err != nil {
			t.Fatal(err)
		}
		if !standby || n != 0 {
			t.Errorf("got standby=%v and %d rows, want the standby and 0 rows", standby, n)
		}
	})
	t.Run("elevation", func(t *testing.T) {
		staff, err := p.Elevate(as(ctx, a, "sam", "support"), b, "ticket 12: read on the replica", time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		staff = db.ReadFromReplica(staff)
		if standby, names := where(t, staff, p); !standby || !cmp.Equal(names, []string{"b1"}) {
			t.Errorf("elevated read: got standby=%v %v, want the standby and [b1]", standby, names)
		}
		var standby bool
		var names []string
		if err := p.Tx(staff, func(tx pgx.Tx) error {
			standby, names = where(t, staff, tx)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		if !standby || !cmp.Equal(names, []string{"b1"}) {
			t.Errorf("elevated transaction: got standby=%v %v, want the standby and [b1]", standby, names)
		}
	})
	t.Run("a forged context is refused on the standby, not failed as a write", func(t *testing.T) {
		c := mustConn(t, rs.Replica.On(d.AppDSN))
		tx, err := c.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer tx.Rollback(ctx)
		if _, err := tx.Exec(ctx, "SELECT set_config($1, $2, true)", db.ContextSetting, "v1.forged.token"); err != nil {
			t.Fatal(err)
		}
		var n int
		err = tx.QueryRow(ctx, "SELECT count(*) FROM customers").Scan(&n)
		if sqlState(err) != db.SQLStateInvalidContext {
			t.Errorf("got %v (%d rows), want SQLSTATE %s", err, n, db.SQLStateInvalidContext)
		}
	})
	t.Run("a key retired on the primary is refused on the standby", func(t *testing.T) {
		if standby, _ := where(t, rctx, p); !standby {
			t.Fatal("not read on the standby")
		}
		mustExec(t, mustConn(t, d.OwnerDSN), "UPDATE tenantseal.context_keys SET not_after = now() WHERE kid = $1", d.ContextKey.ID)
		if err := rs.WaitReplayed(ctx, rs.Replica); err != nil {
			t.Fatal(err)
		}
		var n int
		err := p.QueryRow(rctx, "SELECT count(*) FROM customers WHERE pg_is_in_recovery()").Scan(&n)
		if !errors.Is(err, db.ErrInvalidContext) {
			t.Errorf("got %v (%d rows), want ErrInvalidContext", err, n)
		}
	})
}

func TestReplicaLag(t *testing.T) {
	rs := pgtest.SharedReplicaSet(t)
	d := rs.NewDatabase(t)
	ctx := testContext(t)
	const maxLag = 500 * time.Millisecond
	p := replicaPool(t, d, rs.Replica, maxLag)
	strict := replicaPool(t, d, rs.Replica, maxLag, func(c *db.Config) { c.ReplicaNoFallback = true })
	a := mustTenant(t, d, "a")
	actx := as(ctx, a, "alice")
	rctx := db.ReadFromReplica(actx)
	mustInsertCustomer(t, actx, p, "a1")
	if err := rs.WaitReplayed(ctx, rs.Replica); err != nil {
		t.Fatal(err)
	}
	pgtest.WaitReplica(t, p, true)
	pgtest.WaitReplica(t, strict, true)

	super := mustConn(t, rs.Replica.SuperDSN)
	mustExec(t, super, "SELECT pg_wal_replay_pause()")
	resumed := false
	t.Cleanup(func() {
		if !resumed {
			_, _ = super.Exec(context.Background(), "SELECT pg_wal_replay_resume()")
		}
	})
	mustInsertCustomer(t, actx, p, "a2")
	st := pgtest.WaitReplica(t, p, false)
	if st.Lag <= maxLag || !strings.Contains(st.Err.Error(), "lag") {
		t.Errorf("status of the paused replica: %+v, want a lag over %v", st, maxLag)
	}
	// The standby does not have a2; the primary answers instead, with it.
	if standby, names := where(t, rctx, p); standby || !cmp.Equal(names, []string{"a1", "a2"}) {
		t.Errorf("lagging replica: got standby=%v %v, want the primary's [a1 a2]", standby, names)
	}
	pgtest.WaitReplica(t, strict, false)
	var n int
	if err := strict.QueryRow(rctx, "SELECT count(*) FROM customers").Scan(&n); !errors.Is(err, db.ErrNoReplica) {
		t.Errorf("no fallback: got %v (%d rows), want ErrNoReplica", err, n)
	}

	mustExec(t, super, "SELECT pg_wal_replay_resume()")
	resumed = true
	pgtest.WaitReplica(t, p, true)
	if standby, names := where(t, rctx, p); !standby || !cmp.Equal(names, []string{"a1", "a2"}) {
		t.Errorf("caught up: got standby=%v %v, want the standby with [a1 a2]", standby, names)
	}
}

func TestReplicaDies(t *testing.T) {
	rs := pgtest.SharedReplicaSet(t)
	d := rs.NewDatabase(t)
	ctx := testContext(t)
	standby, err := rs.StartReplica(ctx)
	if err != nil {
		t.Fatal(err)
	}
	p := replicaPool(t, d, standby, time.Minute)
	strict := replicaPool(t, d, standby, time.Minute, func(c *db.Config) { c.ReplicaNoFallback = true })
	a, b := mustTenant(t, d, "a"), mustTenant(t, d, "b")
	actx, bctx := as(ctx, a, "alice"), as(ctx, b, "bob")
	mustInsertCustomer(t, actx, p, "a1")
	mustInsertCustomer(t, bctx, p, "b1")
	if err := rs.WaitReplayed(ctx, standby); err != nil {
		t.Fatal(err)
	}
	pgtest.WaitReplica(t, p, true)
	pgtest.WaitReplica(t, strict, true)
	for _, q := range []*db.Pool{p, strict} {
		if on, names := where(t, db.ReadFromReplica(actx), q); !on || !cmp.Equal(names, []string{"a1"}) {
			t.Fatalf("before: got standby=%v %v, want the standby with [a1]", on, names)
		}
	}

	if err := standby.StopContainer(ctx); err != nil {
		t.Fatal(err)
	}
	// At once, before any check has noticed: the pool falls back on the connection failure itself.
	for _, tc := range []struct {
		ctx  context.Context
		want []string
	}{{actx, []string{"a1"}}, {bctx, []string{"b1"}}, {actx, []string{"a1"}}} {
		if on, names := where(t, db.ReadFromReplica(tc.ctx), p); on || !cmp.Equal(names, tc.want) {
			t.Errorf("after the replica died: got standby=%v %v, want the primary's %v", on, names, tc.want)
		}
	}
	for range 2 {
		var names []string
		err := strict.QueryRow(db.ReadFromReplica(bctx), "SELECT array_agg(display_name) FROM customers").Scan(&names)
		if !errors.Is(err, db.ErrNoReplica) {
			t.Errorf("no fallback: got %v %v, want ErrNoReplica", err, names)
		}
	}
	if st := pgtest.WaitReplica(t, p, false); st.Err == nil {
		t.Errorf("status of the dead replica: %+v, want its error", st)
	}

	// A replica that cannot be reached at Open is no error there: reads run on the primary meanwhile.
	late := replicaPool(t, d, standby, time.Minute)
	if st := late.Replicas()[0]; st.Usable || st.Err == nil {
		t.Errorf("status of a replica down at Open: %+v, want not usable, with its error", st)
	}
	if on, names := where(t, db.ReadFromReplica(actx), late); on || !cmp.Equal(names, []string{"a1"}) {
		t.Errorf("replica down at Open: got standby=%v %v, want the primary's [a1]", on, names)
	}
}

// Open holds a replica's role to the checks it makes on the primary's.
func TestReplicaUnsafeRole(t *testing.T) {
	rs := pgtest.SharedReplicaSet(t)
	d := rs.NewDatabase(t)
	cfg := mustConfig(t, d, d.AppDSN)
	r, err := db.ParseReplica(pgtest.WithDatabase(rs.Replica.SuperDSN, d.Name))
	if err != nil {
		t.Fatal(err)
	}
	cfg.Replicas = []db.ReplicaConfig{r}
	p, err := db.Open(testContext(t), cfg)
	if err == nil {
		p.Close()
	}
	if !errors.Is(err, db.ErrUnsafeRole) || !strings.Contains(err.Error(), "replica") {
		t.Errorf("a superuser on the replica: got %v, want ErrUnsafeRole naming the replica", err)
	}
}

func TestReplicaConfig(t *testing.T) {
	t.Parallel()
	base, err := db.ParseConfig("postgres://app@localhost/x?sslmode=verify-full")
	if err != nil {
		t.Fatal(err)
	}
	base.SigningKey = db.ContextKey{ID: "k1", Secret: make([]byte, 32)}
	if _, err := rand.Read(base.SigningKey.Secret); err != nil {
		t.Fatal(err)
	}
	r, err := db.ParseReplica("postgres://app@standby/x?sslmode=verify-full&default_query_exec_mode=simple_protocol")
	if err != nil {
		t.Fatal(err)
	}
	plain, err := db.ParseReplica("postgres://app@standby/x?sslmode=prefer")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		edit func(*db.Config)
		want string
	}{
		{"check interval not below the lag bound", func(c *db.Config) {
			c.Replicas = []db.ReplicaConfig{r}
			c.ReplicaMaxLag, c.ReplicaCheckInterval = time.Second, time.Second
		}, "ReplicaCheckInterval"},
		{"nil pool config", func(c *db.Config) { c.Replicas = []db.ReplicaConfig{{}} }, "Replicas[0].PoolConfig is nil"},
		{"simple protocol on a replica", func(c *db.Config) { c.Replicas = []db.ReplicaConfig{r} }, "replica standby:5432"},
		{"a replica without verified TLS", func(c *db.Config) { c.Replicas = []db.ReplicaConfig{plain} }, "replica standby:5432: tenantseal: refusing to connect to standby"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := *base
			tc.edit(&cfg)
			_, err := db.Open(testContext(t), &cfg)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %v, want an error naming %q", err, tc.want)
			}
		})
	}
}

func TestParseLSN(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in   string
		want uint64
		ok   bool
	}{
		{"0/0", 0, true},
		{"0/16B3748", 0x16B3748, true},
		{"1/0", 1 << 32, true},
		{"FFFFFFFF/FFFFFFFF", 1<<64 - 1, true},
		{"", 0, false},
		{"16B3748", 0, false},
		{"1/2/3", 0, false},
		{"100000000/0", 0, false},
		{"0/x", 0, false},
	} {
		got, err := db.ParseLSN(tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("ParseLSN(%q) = %#x, %v; want %#x, ok %v", tc.in, got, err, tc.want, tc.ok)
		}
	}
}

// Two standbys share the reads, in turn; when one dies the other takes them all, and the primary none.
func TestReplicaRoundRobin(t *testing.T) {
	rs := pgtest.SharedReplicaSet(t)
	d := rs.NewDatabase(t)
	ctx := testContext(t)
	// The shared standby and one of the test's own, which it stops.
	first := rs.Replica
	second, err := rs.StartReplica(ctx)
	if err != nil {
		t.Fatal(err)
	}
	cfg := mustConfig(t, d, d.AppDSN)
	for _, s := range []*pgtest.Server{first, second} {
		r, err := db.ParseReplica(s.On(d.AppDSN))
		if err != nil {
			t.Fatal(err)
		}
		cfg.Replicas = append(cfg.Replicas, r)
	}
	cfg.ReplicaCheckInterval = 50 * time.Millisecond
	p := mustOpen(t, cfg)
	a := mustTenant(t, d, "a")
	actx := db.ReadFromReplica(as(ctx, a, "alice"))
	mustInsertCustomer(t, as(ctx, a, "alice"), p, "a1")
	for _, s := range []*pgtest.Server{first, second} {
		if err := rs.WaitReplayed(ctx, s); err != nil {
			t.Fatal(err)
		}
	}
	waitUsable := func(n int) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for {
			usable := 0
			for _, st := range p.Replicas() {
				if st.Usable {
					usable++
				}
			}
			if usable == n {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%d usable replicas after 30 s, want %d: %+v", usable, n, p.Replicas())
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	// served reads n times and counts the servers, by the address they listen on.
	served := func(n int) map[string]int {
		t.Helper()
		seen := map[string]int{}
		for range n {
			var standby bool
			var addr string
			var names []string
			if err := p.QueryRow(actx, "SELECT pg_is_in_recovery(), host(inet_server_addr()), array_agg(display_name) FROM customers").Scan(&standby, &addr, &names); err != nil {
				t.Fatal(err)
			}
			if !standby || !cmp.Equal(names, []string{"a1"}) {
				t.Fatalf("a read on the replicas: standby=%v %v, want a standby with [a1]", standby, names)
			}
			seen[addr]++
		}
		return seen
	}
	waitUsable(2)
	if seen := served(20); len(seen) != 2 {
		t.Errorf("20 reads with two usable standbys ran on %v, want both", seen)
	}
	if err := second.StopContainer(ctx); err != nil {
		t.Fatal(err)
	}
	waitUsable(1)
	if seen := served(10); len(seen) != 1 {
		t.Errorf("10 reads after one standby died ran on %v, want the other one alone", seen)
	}
}
