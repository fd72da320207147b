package cli_test

import (
	"strings"
	"testing"

	"github.com/tenantseal/tenantseal/db"
	"github.com/tenantseal/tenantseal/integration"
)

func TestDemo(t *testing.T) {
	t.Parallel()
	prefix, database := freshNames(t)
	r := run(t, "demo", "--dsn", superDSN(), "--prefix", prefix, "--database", database)
	if r.code != 0 || r.stderr != "" {
		t.Fatalf("got %v, want exit 0 and no stderr", r)
	}
	wantContains(t, "stdout", r.stdout,
		"created database "+database,
		`acme lists all customers and sees only its own: [`, `"Acme buyer"]`,
		`globex lists all customers and sees only its own: [`, `"Globex buyer"]`,
		"PASS  acme reads globex's customer by its id: no row",
		"PASS  acme updates globex's customer: 0 rows affected",
		"PASS  acme deletes globex's customer: 0 rows affected",
		"PASS  a call without a Principal is refused before any SQL is sent (db.ErrNoTenant)",
		"(SQLSTATE TS401): tenantseal: tenant context signature does not verify",
		"dropped database "+database,
		"\nisolation demo passed (")
	if strings.Contains(r.stdout, "FAIL") {
		t.Errorf("got FAIL lines:\n%s", r.stdout)
	}

	// It cleaned up after itself on a server it did not start.
	var n int
	roles := db.Roles(prefix)
	err := mustConn(t, superDSN()).QueryRow(testContext(t),
		"SELECT (SELECT count(*) FROM pg_database WHERE datname = $1) + (SELECT count(*) FROM pg_roles WHERE rolname = ANY($2))",
		database, []string{roles.Owner, roles.App, roles.Auditor}).Scan(&n)
	if err != nil || n != 0 {
		t.Errorf("got %d leftover databases and roles (%v), want 0", n, err)
	}
}

func TestDemoLeavesExistingDatabasesAlone(t *testing.T) {
	t.Parallel()
	d := integration.NewDatabase(t)
	r := run(t, "demo", "--dsn", superDSN(), "--database", d.Name, "--prefix", prefixOf(d.Roles))
	wantFailure(t, r, 1, "database "+d.Name, "already exist", "--database and --prefix")
	c := mustConn(t, d.OwnerDSN)
	if err := c.Ping(testContext(t)); err != nil {
		t.Errorf("the database is gone after the refused demo: %v", err)
	}
	var n int
	if err := c.QueryRow(testContext(t), "SELECT count(*) FROM tenantseal.context_keys").Scan(&n); err != nil || n != 1 {
		t.Errorf("got %d context keys, %v, want the database untouched with its 1 key", n, err)
	}
}
