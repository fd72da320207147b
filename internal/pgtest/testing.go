package pgtest

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tenantseal/tenantseal/db"
)

// Context returns a context for one test: cancelled when the test ends, and after two minutes at most.
func Context(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// Conn connects to dsn for the rest of the test.
func Conn(t testing.TB, dsn string) *pgx.Conn {
	t.Helper()
	c, err := pgx.Connect(Context(t), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(context.Background()) })
	return c
}

// RolePrefix returns the prefix of the database's roles.
func (d *Database) RolePrefix() string { return strings.TrimSuffix(d.Roles.Owner, "_owner") }

// Config returns a db.Config for dsn (usually AppDSN) that signs with the database's context key.
func (d *Database) Config(t testing.TB, dsn string) *db.Config {
	t.Helper()
	cfg, err := db.ParseConfig(dsn)
	if err != nil {
		t.Fatal(err)
	}
	cfg.SigningKey = d.ContextKey
	cfg.RolePrefix = d.RolePrefix()
	return cfg
}

// Pool opens a db.Pool as the app role for the rest of the test; edit adjusts its configuration first.
func (d *Database) Pool(t testing.TB, edit ...func(*db.Config)) *db.Pool {
	t.Helper()
	cfg := d.Config(t, d.AppDSN)
	for _, e := range edit {
		e(cfg)
	}
	p, err := db.Open(Context(t), cfg)
	if err != nil {
		t.Fatalf("db.Open: %v", err)
	}
	t.Cleanup(p.Close)
	return p
}
