package cli_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/tenantseal/tenantseal/internal/pgtest"
)

const adoptCRM = `
CREATE SCHEMA crm;
CREATE TABLE crm.accounts (id bigint PRIMARY KEY, name text NOT NULL);
CREATE TABLE crm.contacts (id bigint PRIMARY KEY, account_id bigint NOT NULL, email text NOT NULL UNIQUE);
CREATE TABLE crm.plans (id int PRIMARY KEY, name text);
CREATE TABLE crm.schema_migrations (version bigint PRIMARY KEY);
INSERT INTO crm.accounts VALUES (1, 'one'), (2, 'two');
INSERT INTO crm.contacts VALUES (1, 1, 'a@one.test'), (2, 2, 'b@two.test');
`

// adoptFlags declares adoptCRM on the command line.
var adoptFlags = []string{"--schema", "crm", "--tenant-column", "account_id", "--registry", "crm.accounts(id)",
	"--registry-name", "name", "--global-table", "crm.plans", "--exclude", "crm.schema_migrations"}

func TestAdoptDryRun(t *testing.T) {
	t.Parallel()
	d := pgtest.NewDatabase(t)
	mustExec(t, d.OwnerDSN, adoptCRM)

	r := mustRun(t, append([]string{"adopt", "--dsn", d.OwnerDSN, "--dry-run"}, adoptFlags...)...)
	wantContains(t, "stdout", r.stdout,
		"changes to schema crm:\n",
		"tenant-key crm.contacts: unique key contacts_email_key spans tenants",
		`ADD CONSTRAINT "contacts_email_key" UNIQUE ("account_id", email);`,
		`SELECT tenantseal.adopt_registry('"crm"."accounts"'::regclass, key_column => 'id', name_column => 'name');`,
		`SELECT tenantseal.protect_table('"crm"."contacts"'::regclass, tenant_column => 'account_id');`,
		`GRANT SELECT ON "crm"."plans" TO "`+d.Roles.App+`";`)
	if strings.Contains(r.stdout, "schema_migrations") {
		t.Errorf("the excluded table is in the plan:\n%s", r.stdout)
	}

	// The same declaration as a file gives the same plan; the flags override it.
	decl := filepath.Join(t.TempDir(), "adopt.json")
	mustWrite(t, decl, `{"schemas": ["crm"], "tenant_column": "tenant_id",
		"registry": {"table": "crm.accounts", "name": "name"}, "global": ["crm.plans"], "exclude": ["crm.schema_migrations"]}`)
	r2 := mustRun(t, "adopt", "--dsn", d.OwnerDSN, "--dry-run", "--declaration", decl, "--tenant-column", "account_id")
	if diff := cmp.Diff(r.stdout, r2.stdout); diff != "" {
		t.Errorf("declaration file vs flags (-flags +file):\n%s", diff)
	}
	// With --prefix the roles are named, not asked for; they must exist.
	r3 := mustRun(t, append([]string{"adopt", "--dsn", d.OwnerDSN, "--dry-run", "--prefix", prefixOf(d.Roles)}, adoptFlags...)...)
	if r3.stdout != r.stdout {
		t.Errorf("--prefix %s: got\n%s\nwant\n%s", prefixOf(d.Roles), r3.stdout, r.stdout)
	}
	wantFailure(t, run(t, append([]string{"adopt", "--dsn", d.OwnerDSN, "--dry-run", "--prefix", "other"}, adoptFlags...)...), 2,
		"adopt: invalid options: roles other_app, other_owner, other_probe do not exist")
}

func TestAdoptWritesFiles(t *testing.T) {
	t.Parallel()
	d := pgtest.NewDatabase(t)
	mustExec(t, d.OwnerDSN, adoptCRM)
	dir := t.TempDir()
	mustWrite(t, filepath.Join(dir, "0007_app.up.sql"), "SELECT 1;")
	mustWrite(t, filepath.Join(dir, "0007_app.down.sql"), "SELECT 1;")

	r := mustRun(t, append([]string{"adopt", "--dsn", d.OwnerDSN, "--dir", dir}, adoptFlags...)...)
	up, down := filepath.Join(dir, "0008_tenantseal_adopt.up.sql"), filepath.Join(dir, "0008_tenantseal_adopt.down.sql")
	wantContains(t, "stdout", r.stdout, "wrote "+up+" and "+down+": ")
	wantContains(t, "stderr", r.stderr, "migrate -path "+dir)
	upSQL, err := os.ReadFile(up)
	if err != nil {
		t.Fatal(err)
	}
	downSQL, err := os.ReadFile(down)
	if err != nil {
		t.Fatal(err)
	}
	wantContains(t, "up file", string(upSQL), "\n-- crm.contacts: tenant table: ", `SELECT tenantseal.protect_table('"crm"."contacts"'::regclass, tenant_column => 'account_id');`)
	wantContains(t, "down file", string(downSQL), `SELECT tenantseal.unprotect_table('"crm"."contacts"'::regclass);`,
		`SELECT tenantseal.release_registry('"crm"."accounts"'::regclass);`)

	// Run again, it numbers after its own files.
	mustRun(t, append([]string{"adopt", "--dsn", d.OwnerDSN, "--dir", dir, "--name", "again"}, adoptFlags...)...)
	if _, err := os.Stat(filepath.Join(dir, "0009_again.up.sql")); err != nil {
		t.Errorf("second run: %v", err)
	}
}

func TestAdoptRefuses(t *testing.T) {
	t.Parallel()
	d := pgtest.NewDatabase(t)
	mustExec(t, d.OwnerDSN, adoptCRM+`
		CREATE TABLE crm.loose (id int PRIMARY KEY);
		CREATE TABLE crm.notes (id int PRIMARY KEY, account_id bigint, contact_id bigint REFERENCES crm.contacts (id));
		INSERT INTO crm.notes VALUES (1, NULL, 1), (2, 1, 2);`)
	dir := filepath.Join(t.TempDir(), "migrations")

	r := run(t, append([]string{"adopt", "--dsn", d.OwnerDSN, "--dir", dir}, adoptFlags...)...)
	wantFailure(t, r, 2, "adopt: refused, nothing generated: ",
		"crm.loose: no tenant column account_id and no foreign key path to a tenant table: declare it global",
		"crm.notes: tenant column account_id is nullable and 1 row holds NULL",
		"crm.notes: foreign key notes_contact_id_fkey to crm.contacts would pair the tenant columns, but 1 row points at another tenant's row, e.g. (contact_id)=(2) of tenant 1 points at a row of tenant 2",
		"; nothing written")
	if strings.Contains(r.stderr, d.OwnerDSN) {
		t.Errorf("the message quotes the connection string: %s", r.stderr)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("refused, but the directory exists: %v", err)
	}
	wantFailure(t, run(t, append([]string{"adopt", "--dsn", d.OwnerDSN, "--dry-run"}, adoptFlags...)...), 2, "refused")

	// Declared away, it goes through (and the nullable column with a NULL stays refused until fixed).
	mustExec(t, d.OwnerDSN, "UPDATE crm.notes SET account_id = 1 WHERE id = 1; UPDATE crm.notes SET account_id = 2 WHERE id = 2")
	mustRun(t, append([]string{"adopt", "--dsn", d.OwnerDSN, "--dir", dir, "--exclude", "crm.loose"}, adoptFlags...)...)
}

func TestAdoptBadInput(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	badDecl := filepath.Join(dir, "bad.json")
	mustWrite(t, badDecl, `{"tenant_colum": "x"}`)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"adopt"}, "--dir is required"},
		{[]string{"adopt", "--dry-run", "--dir", dir}, "--dry-run writes no files"},
		{[]string{"adopt", "--dry-run", "extra"}, `unexpected argument "extra"`},
		{[]string{"adopt", "--dry-run", "--declaration", filepath.Join(dir, "missing.json")}, "--declaration: open"},
		{[]string{"adopt", "--dry-run", "--declaration", badDecl}, `unknown field "tenant_colum"`},
		{[]string{"adopt", "--dry-run", "--registry", "companies(id"}, "want schema.table(key)"},
		{[]string{"adopt", "--dry-run", "--registry-name", "name"}, "--registry-name needs a registry"},
		{[]string{"adopt", "--dry-run", "--table-tenant-column", "shop.billing"}, "want schema.table=column"},
		{[]string{"adopt", "--dry-run", "--prefix", ""}, "--prefix must not be empty"},
		{[]string{"adopt", "--dry-run", "--secrets", filepath.Join(dir, "none.env")}, "none.env"},
	} {
		wantFailure(t, run(t, tc.args...), map[bool]int{true: 1, false: 2}[strings.HasSuffix(tc.want, ".env")], tc.want)
	}
	r := mustRun(t, "adopt", "-h")
	wantContains(t, "usage", r.stderr, "Usage: tenantseal adopt", "-declaration", "-dry-run", "-registry", "refuses")
}
