package cli_test

import (
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tenantseal/tenantseal/db"
	"github.com/tenantseal/tenantseal/internal/pgtest"
	"github.com/tenantseal/tenantseal/migrations"
)

func TestBootstrap(t *testing.T) {
	t.Parallel()
	database, out, args, roles := bootstrapArgs(t)

	r := mustRun(t, args...)
	wantContains(t, "stdout", r.stdout,
		"created role "+roles.Owner, "created role "+roles.App, "created role "+roles.Auditor,
		"created database "+database, fmt.Sprintf("migrated from version 0 to %d", migrations.Latest()), "created context signing key", "wrote "+out)
	if r.stderr != "" {
		t.Errorf("got stderr %q, want none", r.stderr)
	}
	first := mustRead(t, out)
	if !strings.HasPrefix(first, "# tenantseal secrets: keep out of version control\n") {
		t.Errorf("got file starting %q, want the header comment", first[:min(60, len(first))])
	}
	env := readSecretsFile(t, out)
	for _, k := range []string{"TENANTSEAL_OWNER_DSN", "TENANTSEAL_APP_DSN", "TENANTSEAL_AUDITOR_DSN", "TENANTSEAL_AUDIT_WRITER_DSN", "TENANTSEAL_CONTEXT_KEY"} {
		if env[k] == "" {
			t.Fatalf("secrets file has no %s line:\n%s", k, first)
		}
	}
	for _, line := range strings.Split(r.stdout, "\n") {
		for _, secret := range []string{env["TENANTSEAL_APP_DSN"], strings.SplitN(env["TENANTSEAL_CONTEXT_KEY"], ":", 2)[1]} {
			if strings.Contains(line, secret) {
				t.Errorf("stdout line %q reveals a secret", line)
			}
		}
	}

	// The file is enough to run the application: the app role under the key sees its tenant's rows.
	key, err := db.ParseContextKey(env["TENANTSEAL_CONTEXT_KEY"])
	if err != nil {
		t.Fatal(err)
	}
	tenant := parseTenant(t, mustRun(t, "tenants", "create", "--no-keys", "--secrets", out, "--name", "acme"))
	pool := mustPool(t, env["TENANTSEAL_APP_DSN"], prefixOf(roles), key)
	var name string
	if err := pool.QueryRow(as(testContext(t), tenant), "SELECT name FROM tenantseal.tenants").Scan(&name); err != nil || name != "acme" {
		t.Errorf("app pool with the written key: got %q, %v, want \"acme\"", name, err)
	}
	mustConn(t, env["TENANTSEAL_AUDITOR_DSN"])
	mustConn(t, env["TENANTSEAL_AUDIT_WRITER_DSN"])

	t.Run("second run changes nothing", func(t *testing.T) {
		r := mustRun(t, args...)
		wantContains(t, "stdout", r.stdout, "nothing to do", out+" is up to date")
		if got := mustRead(t, out); got != first {
			t.Errorf("got file\n%s\nwant it unchanged:\n%s", got, first)
		}
	})

	t.Run("print writes nothing", func(t *testing.T) {
		before, err := os.Stat(out)
		if err != nil {
			t.Fatal(err)
		}
		r := mustRun(t, append(args, "--print")...)
		if r.stdout != first {
			t.Errorf("got stdout\n%s\nwant the secrets file\n%s", r.stdout, first)
		}
		wantContains(t, "stderr", r.stderr, "nothing to do")
		after, err := os.Stat(out)
		if err != nil || !after.ModTime().Equal(before.ModTime()) {
			t.Errorf("--print touched the file: %v", err)
		}
		wantOnlyFiles(t, filepath.Dir(out), "secrets.env")
	})

	t.Run("loose mode is tightened and other lines kept", func(t *testing.T) {
		mustWrite(t, out, first+"MY_SETTING=1\n")
		if err := os.Chmod(out, 0o644); err != nil {
			t.Fatal(err)
		}
		mustRun(t, args...)
		env := readSecretsFile(t, out) // checks 0600
		if env["MY_SETTING"] != "1" {
			t.Errorf("got MY_SETTING=%q, want the line kept", env["MY_SETTING"])
		}
		mustWrite(t, out, first)
	})

	t.Run("unknown passwords need --reset-passwords", func(t *testing.T) {
		other := filepath.Join(t.TempDir(), "other.env")
		r := run(t, "bootstrap", "--dsn", superDSN(t), "--prefix", prefixOf(roles), "--database", database, "--out", other)
		wantFailure(t, r, 1, "role "+roles.Owner+" exists", "--reset-passwords")
		if _, err := os.Stat(other); !os.IsNotExist(err) {
			t.Errorf("a failed bootstrap left %s behind: %v", other, err)
		}
		wantOnlyFiles(t, filepath.Dir(other))
	})

	t.Run("a wrong password in the file is reported, then reset", func(t *testing.T) {
		u, err := url.Parse(env["TENANTSEAL_APP_DSN"])
		if err != nil {
			t.Fatal(err)
		}
		u.User = url.UserPassword(roles.App, "not-the-password")
		mustWrite(t, out, strings.Replace(first, env["TENANTSEAL_APP_DSN"], u.String(), 1))
		r := run(t, args...)
		wantFailure(t, r, 1, "role "+roles.App, "--reset-passwords")
		if strings.Contains(r.stderr, "not-the-password") {
			t.Errorf("stderr %q reveals the password", r.stderr)
		}

		r = mustRun(t, append(args, "--reset-passwords", "app")...)
		wantContains(t, "stdout", r.stdout, "reset the password of role "+roles.App, "wrote "+out)
		wantContains(t, "stderr", r.stderr, "warning: giving "+roles.App+" new passwords")
		if strings.Contains(r.stdout, "reset the password of role "+roles.Owner) {
			t.Errorf("got %q, want only the app role's password reset", r.stdout)
		}
		env := readSecretsFile(t, out)
		if env["TENANTSEAL_APP_DSN"] == u.String() || env["TENANTSEAL_APP_DSN"] == "" {
			t.Fatalf("got app DSN unchanged after --reset-passwords")
		}
		for _, k := range []string{"TENANTSEAL_OWNER_DSN", "TENANTSEAL_APP_DSN", "TENANTSEAL_AUDITOR_DSN"} {
			mustConn(t, env[k])
		}
		if env["TENANTSEAL_CONTEXT_KEY"] != strings.TrimSpace(strings.Split(strings.Split(first, "TENANTSEAL_CONTEXT_KEY=")[1], "\n")[0]) {
			t.Errorf("--reset-passwords changed the context key")
		}
	})
}

func TestBootstrapPrintWritesNothing(t *testing.T) {
	t.Parallel()
	prefix, database := freshNames(t)
	dir := t.TempDir()
	out := filepath.Join(dir, "secrets.env")
	r := mustRun(t, "bootstrap", "--dsn", superDSN(t), "--prefix", prefix, "--database", database, "--out", out, "--print")
	env := parseEnv(t, r.stdout)
	for _, k := range []string{"TENANTSEAL_OWNER_DSN", "TENANTSEAL_APP_DSN", "TENANTSEAL_AUDITOR_DSN", "TENANTSEAL_AUDIT_WRITER_DSN", "TENANTSEAL_CONTEXT_KEY"} {
		if env[k] == "" {
			t.Errorf("stdout has no %s line:\n%s", k, r.stdout)
		}
	}
	wantContains(t, "stderr", r.stderr, "created database "+database)
	wantOnlyFiles(t, dir)
}

// bootstrapArgs returns a fresh database name, a secrets file in a temp directory, the bootstrap command
// line for them and the roles it creates.
func bootstrapArgs(t testing.TB) (database, out string, args []string, roles db.RoleNames) {
	t.Helper()
	prefix, database := freshNames(t)
	out = filepath.Join(t.TempDir(), "secrets.env")
	args = []string{"bootstrap", "--dsn", superDSN(t), "--prefix", prefix, "--database", database, "--out", out}
	return database, out, args, db.Roles(prefix)
}

// wantOnlyFiles checks that dir holds exactly names: no temp file is left behind.
func wantOnlyFiles(t testing.TB, dir string, names ...string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range entries {
		got = append(got, e.Name())
	}
	if strings.Join(got, ",") != strings.Join(names, ",") {
		t.Errorf("got files %q in %s, want %q", got, dir, names)
	}
}

// An existing database keeps its owner without --take-ownership, and bootstrap warns of what PUBLIC
// may do there; with it, the owner role owns it. A bootstrap that fails part-way (a schema in the
// migrations' way) has written its passwords: once the schema is gone, running it again completes
// without --reset-passwords.
func TestBootstrapExistingDatabaseTakeOwnership(t *testing.T) {
	t.Parallel()
	database, out, args, roles := bootstrapArgs(t)
	mustExec(t, superDSN(t), "CREATE DATABASE "+database)
	in := pgtest.WithDatabase(superDSN(t), database)
	mustExec(t, in, "CREATE SCHEMA tenantseal")
	owner := func() string {
		t.Helper()
		var o string
		if err := mustConn(t, superDSN(t)).QueryRow(testContext(t), "SELECT datdba::regrole::text FROM pg_database WHERE datname = $1", database).Scan(&o); err != nil {
			t.Fatal(err)
		}
		return o
	}
	before := owner()

	r := run(t, args...)
	wantFailure(t, r, 1, "0001_foundation.up.sql", "CREATE SCHEMA tenantseal")
	env := readSecretsFile(t, out)
	for _, k := range []string{"TENANTSEAL_OWNER_DSN", "TENANTSEAL_APP_DSN", "TENANTSEAL_AUDITOR_DSN", "TENANTSEAL_AUDIT_WRITER_DSN"} {
		if env[k] == "" {
			t.Errorf("after the failed bootstrap: the secrets file has no %s, want the passwords written before they were set", k)
		}
	}
	mustExec(t, in, "DROP SCHEMA tenantseal")

	r = mustRun(t, args...)
	if strings.Contains(r.stdout, "reset the password") || owner() != before {
		t.Errorf("got stdout %q and database owner %s, want no password reset and the owner %s kept", r.stdout, owner(), before)
	}
	wantContains(t, "stderr", r.stderr, "warning: every role, the app role included, may create temporary tables", "--take-ownership")
	again := readSecretsFile(t, out)
	for _, k := range []string{"TENANTSEAL_OWNER_DSN", "TENANTSEAL_APP_DSN", "TENANTSEAL_AUDITOR_DSN", "TENANTSEAL_AUDIT_WRITER_DSN"} {
		if again[k] != env[k] {
			t.Errorf("%s changed after the failed bootstrap, want the written password kept", k)
		}
		mustConn(t, again[k])
	}

	r = mustRun(t, append(args, "--take-ownership")...)
	wantContains(t, "stdout", r.stdout, "made "+roles.Owner+" the owner of database "+database)
	if got := owner(); got != roles.Owner {
		t.Errorf("after --take-ownership: got owner %s, want %s", got, roles.Owner)
	}
	if r.stderr != "" {
		t.Errorf("after --take-ownership: got stderr %q, want no warning", r.stderr)
	}
}
