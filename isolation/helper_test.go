package isolation_test

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/tenantseal/tenantseal/internal/pgtest"
	"github.com/tenantseal/tenantseal/isolation"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

func mustExec(t testing.TB, dsn, sql string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c := pgtest.Conn(t, dsn)
	if _, err := c.Exec(ctx, sql); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

func suiteConfig(d *pgtest.Database, short bool) isolation.Config {
	return isolation.Config{SuperDSN: d.SuperDSN, AppDSN: d.AppDSN, ContextKey: d.ContextKey, Short: short}
}

func mustWrite(t testing.TB, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}
