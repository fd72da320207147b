package bootstrap_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"testing"
	"time"

	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/tenantseal/tenantseal"
	"github.com/tenantseal/tenantseal/bootstrap"
	"github.com/tenantseal/tenantseal/db"
	"github.com/tenantseal/tenantseal/internal/dsn"
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
	atEnd(t, func(ctx context.Context, c *pgx.Conn) {
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

// snapshot copies what a bootstrap.Options.Save receives, as a secrets file would keep it.
type snapshot struct {
	saved []bootstrap.Result
}

func (s *snapshot) save(_ context.Context, res *bootstrap.Result) error {
	s.saved = append(s.saved, *res)
	return nil
}

// last returns the result saved last; the test fails when none was.
func (s *snapshot) last(t testing.TB) *bootstrap.Result {
	t.Helper()
	if len(s.saved) == 0 {
		t.Fatal("got nothing saved, want the connection strings saved before any password was set")
	}
	return &s.saved[len(s.saved)-1]
}

// mustSmoke proves a bootstrapped database works for an application: the owner creates a tenant, and
// the app role, signing with the result's key, reads it back under that tenant's context.
func mustSmoke(t testing.TB, res *bootstrap.Result) {
	t.Helper()
	ctx := testContext(t)
	var tenant tenantseal.TenantID
	if err := mustConn(t, res.OwnerDSN).QueryRow(ctx, "INSERT INTO tenantseal.tenants (name) VALUES ('acme') RETURNING id").Scan(&tenant); err != nil {
		t.Fatalf("create a tenant as the owner: %v", err)
	}
	cfg, err := db.ParseConfig(res.AppDSN)
	if err != nil {
		t.Fatal(err)
	}
	cfg.SigningKey = res.ContextKey
	cfg.RolePrefix = strings.TrimSuffix(res.Roles.Owner, "_owner")
	p, err := db.Open(ctx, cfg)
	if err != nil {
		t.Fatalf("db.Open as the app role: %v", err)
	}
	defer p.Close()
	var names []string
	rows, err := p.Query(tenantseal.WithPrincipal(ctx, tenantseal.Principal{Tenant: tenant, Subject: "smoke"}), "SELECT name FROM tenantseal.tenants")
	if err == nil {
		names, err = pgx.CollectRows(rows, pgx.RowTo[string])
	}
	if err != nil || len(names) != 1 || names[0] != "acme" {
		t.Errorf("as the app role under the tenant: got %q (%v), want [acme]", names, err)
	}
}

// mustRole creates a role named name with attrs (and LOGIN PASSWORD password when password is given)
// and drops it when the test ends, after dropping the databases it owns.
func mustRole(t testing.TB, name, attrs, password string) {
	t.Helper()
	super := mustConn(t, superDSN(t))
	stmt := "CREATE ROLE " + pgx.Identifier{name}.Sanitize() + " " + attrs
	if password != "" {
		stmt += " LOGIN PASSWORD '" + password + "'"
	}
	if _, err := super.Exec(testContext(t), stmt); err != nil {
		t.Fatalf("create role %s: %v", name, err) // not the statement: it holds the password
	}
	atEnd(t, func(ctx context.Context, c *pgx.Conn) {
		rows, err := c.Query(ctx, "SELECT datname::text FROM pg_database WHERE datdba = (SELECT oid FROM pg_roles WHERE rolname = $1)", name)
		if err != nil {
			t.Errorf("clean up: %v", err)
			return
		}
		dbs, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			t.Errorf("clean up: %v", err)
		}
		for _, d := range dbs {
			if _, err := c.Exec(ctx, "DROP DATABASE "+pgx.Identifier{d}.Sanitize()+" WITH (FORCE)"); err != nil {
				t.Errorf("clean up: %v", err)
			}
		}
		if _, err := c.Exec(ctx, "DROP OWNED BY "+pgx.Identifier{name}.Sanitize()+"; DROP ROLE "+pgx.Identifier{name}.Sanitize()); err != nil {
			t.Errorf("clean up: drop role %s: %v", name, err)
		}
	})
}

// roleDSN returns superDSN with the user and password of another role, on database.
func roleDSN(t testing.TB, user, password, database string) string {
	t.Helper()
	s, err := dsn.Parse(superDSN(t))
	if err != nil {
		t.Fatal(err)
	}
	s.Set(dsn.User, user)
	s.Set(dsn.Password, password)
	s.Set(dsn.Database, database)
	return s.URL()
}

// freshRole returns a role name that no other test uses, ending in suffix.
func freshRole(t testing.TB, suffix string) string {
	t.Helper()
	b := make([]byte, 4)
	rand.Read(b)
	return "x" + hex.EncodeToString(b) + "_" + suffix
}

// atEnd runs clean on a superuser's connection of its own when the test ends, passed or failed.
func atEnd(t testing.TB, clean func(context.Context, *pgx.Conn)) {
	t.Helper()
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
		clean(ctx, c)
	})
}
