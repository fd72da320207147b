package citus_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tenantseal/tenantseal"
	"github.com/tenantseal/tenantseal/bootstrap"
	"github.com/tenantseal/tenantseal/db"
	"github.com/tenantseal/tenantseal/internal/dsn"
	"github.com/tenantseal/tenantseal/internal/pgtest"
	"github.com/tenantseal/tenantseal/tenants"
)

// cluster is one test's tenantseal database on every node of the Citus cluster.
type cluster struct {
	super   string // superuser, the coordinator's database postgres
	name    string
	workers []bootstrap.Node
	res     *bootstrap.Result
	owner   *pgx.Conn
	// coordinator is the node TENANTSEAL_CITUS_DSN names.
	coordinator bootstrap.Node
}

func testContext(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// newCluster makes a database of the test's own on every node of the cluster TENANTSEAL_CITUS_DSN
// names, with the citus extension and the same workers, and bootstraps tenantseal there.
func newCluster(t testing.TB) *cluster { t.Helper(); return newDatabase(t, true) }

// newDatabase is newCluster, or with citus false a database on the coordinator's server alone, without
// the extension: one PostgreSQL server, for a comparison on the same machine.
func newDatabase(t testing.TB, citus bool) *cluster {
	t.Helper()
	raw := os.Getenv("TENANTSEAL_CITUS_DSN")
	if raw == "" {
		t.Skip("TENANTSEAL_CITUS_DSN names no Citus coordinator (a superuser connection string): see the README's \"Scaling out\" to run these tests")
	}
	ctx := testContext(t)
	conn, err := pgx.Connect(ctx, raw)
	if err != nil {
		t.Fatalf("connect to TENANTSEAL_CITUS_DSN: %v", err)
	}
	defer conn.Close(ctx)
	workers, err := bootstrap.CitusWorkers(ctx, conn)
	if err != nil || workers == nil {
		t.Fatalf("TENANTSEAL_CITUS_DSN is not a Citus coordinator with workers: %v", err)
	}
	s, err := dsn.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	s.Set(dsn.Database, "postgres")
	c := &cluster{super: s.ConnString(), workers: workers, name: "tscitus_" + randomHex(4)}
	coordinator := bootstrap.Node{Host: s.Get(dsn.Host), Port: 5432}
	if p := s.Get(dsn.Port); p != "" {
		fmt.Sscan(p, &coordinator.Port)
	}
	c.coordinator = coordinator
	nodes := []bootstrap.Node{coordinator}
	if citus {
		nodes = append(nodes, workers...)
	} else {
		c.workers = nil
	}
	for _, n := range nodes {
		c.node(t, n, "postgres", "CREATE DATABASE "+c.name)
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			c.exec(ctx, n, "postgres", fmt.Sprintf("DROP DATABASE IF EXISTS %s WITH (FORCE)", c.name))
			for _, r := range []string{"owner", "app", "auditor", "audit_writer", "probe"} {
				c.exec(ctx, n, "postgres", fmt.Sprintf("DROP ROLE IF EXISTS %s_%s", c.name, r))
			}
		})
		if citus {
			c.node(t, n, c.name, "CREATE EXTENSION citus")
		}
		if v := os.Getenv(pgtest.VerifierEnv); v != "" {
			// As make test's second pass: the migrations of every node select this verifier.
			c.node(t, n, "postgres", fmt.Sprintf("ALTER DATABASE %s SET tenantseal.verifier = '%s'", c.name, v))
		}
	}
	if citus {
		c.node(t, coordinator, c.name, fmt.Sprintf("SELECT citus_set_coordinator_host('%s', %d)", coordinator.Host, coordinator.Port))
		for _, w := range workers {
			c.node(t, coordinator, c.name, fmt.Sprintf("SELECT citus_add_node('%s', %d)", w.Host, w.Port))
		}
	}
	c.res, err = bootstrap.RunCluster(ctx, c.super, bootstrap.Options{Database: c.name, RolePrefix: c.name})
	if err != nil {
		t.Fatalf("bootstrap the cluster: %v", err)
	}
	return c
}

func (c *cluster) exec(ctx context.Context, n bootstrap.Node, database, sql string) error {
	d, err := bootstrap.NodeDSN(c.super, n)
	if err != nil {
		return err
	}
	d, err = dsn.WithDatabase(d, database)
	if err != nil {
		return err
	}
	conn, err := pgx.Connect(ctx, d)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, sql)
	return err
}

// node runs sql as the superuser on node n's database.
func (c *cluster) node(t testing.TB, n bootstrap.Node, database, sql string) {
	t.Helper()
	if err := c.exec(testContext(t), n, database, sql); err != nil {
		t.Fatalf("%s on %s: %v", sql, n, err)
	}
}

// superIn is the superuser's connection string to the test's database on the coordinator.
func (c *cluster) superIn(t testing.TB) string {
	t.Helper()
	d, err := dsn.WithDatabase(c.super, c.name)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// ownerExec runs each statement as the owner role on the coordinator, and fails t at the first error.
func (c *cluster) ownerExec(t testing.TB, sqls ...string) {
	t.Helper()
	for _, sql := range sqls {
		if _, err := c.ownerConn(t).Exec(testContext(t), sql); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
}

// ownerConn is a connection as the owner role to the coordinator, one for the test.
func (c *cluster) ownerConn(t testing.TB) *pgx.Conn {
	t.Helper()
	if c.owner != nil {
		return c.owner
	}
	conn, err := pgx.Connect(testContext(t), c.res.OwnerDSN)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	c.owner = conn
	return conn
}

// workerQuery runs sql as the superuser on every worker's copy of the database and returns the first
// column of its one row, by worker.
func (c *cluster) workerValues(t testing.TB, sql string) []string {
	t.Helper()
	var out []string
	for _, w := range c.workers {
		d, _ := bootstrap.NodeDSN(c.super, w)
		d, _ = dsn.WithDatabase(d, c.name)
		conn, err := pgx.Connect(testContext(t), d)
		if err != nil {
			t.Fatal(err)
		}
		var v string
		err = conn.QueryRow(testContext(t), sql).Scan(&v)
		conn.Close(context.Background())
		if err != nil {
			t.Fatalf("%s on worker %s: %v", sql, w, err)
		}
		out = append(out, v)
	}
	return out
}

// pool opens the app role's pool on the coordinator.
func (c *cluster) pool(t testing.TB, mod func(*db.Config)) *db.Pool {
	t.Helper()
	cfg, err := db.ParseConfig(c.res.AppDSN)
	if err != nil {
		t.Fatal(err)
	}
	cfg.RolePrefix = c.name
	cfg.SigningKey = c.res.ContextKey
	cfg.AllowPlaintextLoopback = true
	if mod != nil {
		mod(cfg)
	}
	p, err := db.Open(testContext(t), cfg)
	if err != nil {
		t.Fatalf("open the app pool on the coordinator: %v", err)
	}
	t.Cleanup(p.Close)
	return p
}

// tenant creates a tenant without keysets.
func (c *cluster) tenant(t testing.TB, name string) tenantseal.TenantID {
	t.Helper()
	tn, err := tenants.Create(testContext(t), c.ownerConn(t), name, nil)
	if err != nil {
		t.Fatal(err)
	}
	return tn.ID
}

func as(t testing.TB, id tenantseal.TenantID) context.Context {
	return tenantseal.WithPrincipal(testContext(t), tenantseal.Principal{Tenant: id, Subject: "user-" + id.String()[:8]})
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
