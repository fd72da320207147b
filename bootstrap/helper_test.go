package bootstrap_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tenantseal/tenantseal/db"
	"github.com/tenantseal/tenantseal/internal/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

func testContext(t testing.TB) context.Context { return pgtest.Context(t) }

func mustConn(t testing.TB, dsn string) *pgx.Conn { return pgtest.Conn(t, dsn) }

func superDSN(t testing.TB) string { return pgtest.SharedCluster(t).Server.SuperDSN }

// freshNames returns a role prefix and a database name that no other test uses and, before the test
// creates anything under them, registers a cleanup that drops the database and all five roles when the
// test ends, passed or failed: the server may be someone else's (TENANTSEAL_TEST_DSN).
func freshNames(t testing.TB) (prefix, database string) {
	t.Helper()
	b := make([]byte, 4)
	rand.Read(b)
	prefix = "b" + hex.EncodeToString(b)
	database = prefix + "_db"
	super := superDSN(t)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		c, err := pgx.Connect(ctx, super)
		if err != nil {
			t.Errorf("clean up: %v", err)
			return
		}
		defer c.Close(ctx)
		stmts := []string{"DROP DATABASE IF EXISTS " + pgx.Identifier{database}.Sanitize() + " WITH (FORCE)"}
		r := db.Roles(prefix)
		for _, role := range []string{r.App, r.Auditor, r.AuditWriter, r.Probe, r.Owner} {
			stmts = append(stmts, "DROP ROLE IF EXISTS "+pgx.Identifier{role}.Sanitize())
		}
		for _, s := range stmts {
			if _, err := c.Exec(ctx, s); err != nil {
				t.Errorf("clean up: %s: %v", s, err)
			}
		}
		var left int
		if err := c.QueryRow(ctx, "SELECT count(*) FROM pg_roles WHERE rolname LIKE $1", prefix+"\\_%").Scan(&left); err != nil || left != 0 {
			t.Errorf("clean up: got %d roles left with prefix %s (%v), want 0", left, prefix, err)
		}
	})
	return prefix, database
}

func mustExec(t testing.TB, c *pgx.Conn, sql string) {
	t.Helper()
	if _, err := c.Exec(testContext(t), sql); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}
