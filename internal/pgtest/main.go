package pgtest

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The process's shared cluster, started by the first test that needs a database.
var (
	sharedMu  sync.Mutex
	shared    *Cluster
	sharedErr error
	started   bool
)

// Main runs a test binary's tests and, if any of them asked for a database, removes the server and
// what the run created on it afterwards, also when the run is interrupted. Tests that need no database
// never start one. Call it from TestMain:
//
//	func TestMain(m *testing.M) { pgtest.Main(m) }
func Main(m *testing.M) {
	// Remove the container on SIGINT/SIGTERM too: no reaper runs here.
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	go func() {
		if _, ok := <-sig; ok {
			stop(20 * time.Second)
			os.Exit(130)
		}
	}()
	code := m.Run()
	signal.Stop(sig)
	close(sig)
	stop(30 * time.Second)
	os.Exit(code)
}

// stop removes the shared cluster and its server, and the shared replica set, if a test started them.
func stop(within time.Duration) {
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	stopReplicaSet(ctx)
	sharedMu.Lock()
	defer sharedMu.Unlock()
	if shared == nil {
		return
	}
	if !shared.Server.Started() {
		// Someone else's server (TENANTSEAL_TEST_DSN): drop what this process created there.
		if err := shared.Close(ctx); err != nil {
			fmt.Fprintln(os.Stderr, "pgtest: clean up:", err)
		}
	}
	if err := shared.Server.Stop(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "pgtest: stop server:", err)
	}
	shared = nil
}

// SharedCluster returns the process's cluster, starting the server and the migrated template on first
// use. It fails the test when they cannot be started.
func SharedCluster(t testing.TB) *Cluster {
	t.Helper()
	sharedMu.Lock()
	defer sharedMu.Unlock()
	if !started {
		started = true
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		s, err := StartServer(ctx)
		if err == nil {
			var c *Cluster
			if c, err = NewCluster(ctx, s); err != nil {
				s.Stop(context.WithoutCancel(ctx))
			}
			shared = c
		}
		sharedErr = err
	}
	if sharedErr != nil {
		t.Fatalf("pgtest: start the shared cluster: %v", sharedErr)
	}
	return shared
}

// NewDatabase gives t its own migrated database on the process's shared cluster and drops it when t
// ends, whether it passed or not.
func NewDatabase(t testing.TB) *Database {
	t.Helper()
	c := SharedCluster(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	d, err := c.CreateDatabase(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := c.DropDatabase(ctx, d.Name); err != nil {
			t.Errorf("pgtest: drop %s: %v", d.Name, err)
		}
	})
	return d
}
