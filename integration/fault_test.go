package integration_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/tenantseal/tenantseal"

	"github.com/jackc/pgx/v5"

	"github.com/tenantseal/tenantseal/db"
	"github.com/tenantseal/tenantseal/internal/pgtest"
)

// recoverWithin bounds how long the pool may take to serve again once the server is back.
const recoverWithin = 30 * time.Second

// faultEnv is a database on a server of its own that the test may stop, kill, pause and restart.
type faultEnv struct {
	srv    *pgtest.Server
	d      *pgtest.Database
	pool   *db.Pool
	a, b   tenantseal.TenantID
	super  func() *pgx.Conn
	commit map[tenantseal.TenantID]int // rows committed per tenant, the ground truth to find after every fault
}

func newFaultEnv(t *testing.T) *faultEnv {
	t.Helper()
	ctx := testContext(t, 3*time.Minute)
	srv, err := pgtest.StartFaultServer(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := srv.Stop(ctx); err != nil {
			t.Errorf("stop the fault server: %v", err)
		}
	})
	cluster, err := pgtest.NewCluster(ctx, srv)
	if err != nil {
		t.Fatal(err)
	}
	d, err := cluster.CreateDatabase(ctx)
	if err != nil {
		t.Fatal(err)
	}
	e := &faultEnv{srv: srv, d: d, commit: map[tenantseal.TenantID]int{}}
	e.a, e.b = mustTenant(t, d, "a"), mustTenant(t, d, "b")
	e.pool = mustPool(t, d, d.AppDSN, func(c *db.Config) {
		c.PoolConfig.MaxConns = 4
		c.PoolConfig.HealthCheckPeriod = 500 * time.Millisecond
	})
	e.super = func() *pgx.Conn { return mustConn(t, d.SuperDSN) }
	for _, tenant := range []tenantseal.TenantID{e.a, e.b} {
		e.insert(t, tenant, "before")
	}
	return e
}

func (e *faultEnv) insert(t *testing.T, tenant tenantseal.TenantID, name string) {
	t.Helper()
	ctx := as(testContext(t, 30*time.Second), tenant, "fault")
	if _, err := e.pool.Exec(ctx, "INSERT INTO customers (tenant_id, display_name) VALUES ($1, $2)", tenant, name); err != nil {
		t.Fatalf("insert %s: %v", name, err)
	}
	e.commit[tenant]++
}

// inFlight is a transaction of tenant a that has written rows and waits for the fault before it writes
// more and commits.
type inFlight struct {
	marker  string
	started chan struct{}
	resume  chan struct{}
	done    chan error
}

func (e *faultEnv) begin(t *testing.T, marker string) *inFlight {
	f := &inFlight{marker: marker, started: make(chan struct{}), resume: make(chan struct{}), done: make(chan error, 1)}
	go func() {
		ctx := as(context.Background(), e.a, "fault")
		f.done <- e.pool.Tx(ctx, func(tx pgx.Tx) error {
			for i := range 3 {
				if _, err := tx.Exec(ctx, "INSERT INTO customers (tenant_id, display_name) VALUES ($1, $2)", e.a, fmt.Sprintf("%s-%d", marker, i)); err != nil {
					return err
				}
			}
			close(f.started)
			<-f.resume
			// Bounded: against a paused server the statement would otherwise wait for it.
			sctx, cancel := context.WithTimeout(ctx, 3*time.Second)
			defer cancel()
			_, err := tx.Exec(sctx, "INSERT INTO customers (tenant_id, display_name) VALUES ($1, $2)", e.a, marker+"-last")
			return err
		})
	}()
	select {
	case <-f.started:
	case err := <-f.done:
		t.Fatalf("the transaction failed before the fault: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("the transaction did not get going within 30s")
	}
	return f
}

// finish lets the transaction go on after the fault and returns how it ended.
func (f *inFlight) finish(t *testing.T) error {
	close(f.resume)
	select {
	case err := <-f.done:
		return err
	case <-time.After(30 * time.Second):
		t.Fatal("the interrupted transaction did not return within 30s")
		return nil
	}
}

// recovered waits until the pool serves tenant a again and returns how long that took.
func (e *faultEnv) recovered(t *testing.T) time.Duration {
	t.Helper()
	start := time.Now()
	var last error
	for time.Since(start) < recoverWithin {
		ctx, cancel := context.WithTimeout(as(context.Background(), e.a, "fault"), 5*time.Second)
		var n int
		last = e.pool.QueryRow(ctx, "SELECT count(*) FROM customers").Scan(&n)
		cancel()
		if last == nil {
			return time.Since(start)
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("the pool did not serve again within %v of the server's return: %v", recoverWithin, last)
	return 0
}

// check verifies the state after a fault: the interrupted transaction left nothing (or, if it
// committed, everything), every committed row is there, each tenant sees exactly its own rows, and no
// connection of the pool carries a tenant context.
func (e *faultEnv) check(t *testing.T, marker string, committed bool) {
	t.Helper()
	ctx := testContext(t, 30*time.Second)
	super := e.super()
	var partial int
	if err := super.QueryRow(ctx, "SELECT count(*) FROM customers WHERE display_name LIKE $1", marker+"-%").Scan(&partial); err != nil {
		t.Fatal(err)
	}
	want := 0
	if committed {
		want = 4
		e.commit[e.a] += 4
	}
	if partial != want {
		t.Errorf("the interrupted transaction left %d rows, want %d (all or nothing)", partial, want)
	}
	for tenant, n := range e.commit {
		var truth, seen, foreign int
		if err := super.QueryRow(ctx, "SELECT count(*) FROM customers WHERE tenant_id = $1", tenant).Scan(&truth); err != nil {
			t.Fatal(err)
		}
		if truth != n {
			t.Errorf("tenant %s: %d rows stored, want the %d committed", tenant, truth, n)
		}
		if err := e.pool.QueryRow(as(ctx, tenant, "fault"), "SELECT count(*), count(*) FILTER (WHERE tenant_id <> $1) FROM customers", tenant).Scan(&seen, &foreign); err != nil {
			t.Fatal(err)
		}
		if seen != n || foreign != 0 {
			t.Errorf("tenant %s sees %d rows (%d foreign), want its %d", tenant, seen, foreign, n)
		}
	}
	// Every connection at once, none with a context: what a reconnect or a reused session might carry.
	var wg sync.WaitGroup
	start := make(chan struct{})
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			rows, err := e.pool.Unscoped().Query(ctx, "SELECT coalesce(current_setting('tenantseal.context', true), ''), (SELECT count(*) FROM customers), pg_sleep(0.05)::text")
			if err != nil {
				t.Errorf("unscoped: %v", err)
				return
			}
			var setting, sleep string
			var n int
			if _, err := pgx.ForEachRow(rows, []any{&setting, &n, &sleep}, func() error { return nil }); err != nil {
				t.Errorf("unscoped: %v", err)
			}
			if setting != "" || n != 0 {
				t.Errorf("a pooled connection carries context %q and sees %d rows, want none", setting, n)
			}
		}()
	}
	close(start)
	wg.Wait()
	if _, err := e.pool.Exec(ctx, "SELECT 1"); !errors.Is(err, tenantseal.ErrNoTenant) {
		t.Errorf("a call without a Principal: got %v, want ErrNoTenant", err)
	}
}

// Faults in the middle of transactions: the server stopped, killed, paused, restarted. Sequential: they
// share one server.
func TestFaults(t *testing.T) {
	t.Parallel()
	e := newFaultEnv(t)
	ctx := testContext(t, 5*time.Minute)

	t.Run("stop", func(t *testing.T) {
		f := e.begin(t, "stop")
		if err := e.srv.Halt(ctx, 10*time.Second); err != nil {
			t.Fatal(err)
		}
		if err := f.finish(t); err == nil {
			t.Fatal("the transaction committed across a stopped server")
		}
		// While the server is down, calls fail instead of hanging.
		dctx, cancel := context.WithTimeout(as(ctx, e.b, "fault"), 15*time.Second)
		_, err := e.pool.Exec(dctx, "SELECT 1")
		timedOut := dctx.Err() != nil
		cancel()
		if err == nil || timedOut {
			t.Errorf("a call against the stopped server: got %v, want a prompt error", err)
		}
		if err := e.srv.Restart(ctx); err != nil {
			t.Fatal(err)
		}
		t.Logf("served again %v after the restart", e.recovered(t))
		e.check(t, "stop", false)
	})

	t.Run("kill", func(t *testing.T) {
		f := e.begin(t, "kill")
		if err := e.srv.Kill(ctx); err != nil {
			t.Fatal(err)
		}
		if err := f.finish(t); err == nil {
			t.Fatal("the transaction committed across a killed server")
		}
		if err := e.srv.Restart(ctx); err != nil {
			t.Fatal(err)
		}
		t.Logf("served again %v after the restart", e.recovered(t))
		e.check(t, "kill", false)
	})

	t.Run("pause", func(t *testing.T) {
		f := e.begin(t, "pause")
		if err := e.srv.Pause(ctx); err != nil {
			t.Fatal(err)
		}
		err := f.finish(t) // its next statement times out against the frozen server
		if uerr := e.srv.Unpause(ctx); uerr != nil {
			t.Fatal(uerr)
		}
		if err == nil {
			t.Fatal("the transaction committed while the server was paused")
		}
		t.Logf("served again %v after unpausing", e.recovered(t))
		e.check(t, "pause", false)
	})

	t.Run("restart", func(t *testing.T) {
		f := e.begin(t, "restart")
		if err := e.srv.Halt(ctx, 10*time.Second); err != nil {
			t.Fatal(err)
		}
		if err := e.srv.Restart(ctx); err != nil {
			t.Fatal(err)
		}
		if err := f.finish(t); err == nil {
			t.Fatal("the transaction committed across a restart")
		}
		t.Logf("served again %v after the restart", e.recovered(t))
		e.check(t, "restart", false)
		// Work goes on as before.
		e.insert(t, e.b, "after")
		e.check(t, "restart", false)
	})
}
