package cli_test

import (
	"encoding/json"
	"fmt"
	"io/fs"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/tenantseal/tenantseal/examples/reference"
	"github.com/tenantseal/tenantseal/internal/pgtest"
	"github.com/tenantseal/tenantseal/migrations"
)

func moved(from, to uint) string { return fmt.Sprintf("migrated from version %d to %d\n", from, to) }

// statusText is what `migrate status` prints at version v.
func statusText(v uint, dirty string) string {
	var b strings.Builder
	for _, m := range migrations.List(v) {
		mark := " "
		if m.Applied {
			mark = "x"
		}
		fmt.Fprintf(&b, "[%s] %04d %s\n", mark, m.Version, m.Name)
	}
	fmt.Fprintf(&b, "version %d, dirty: %s\n", v, dirty)
	return b.String()
}

func TestMigrate(t *testing.T) {
	t.Parallel()
	prefix, database := freshNames(t)
	secrets := filepath.Join(t.TempDir(), "secrets.env")
	boot := []string{"bootstrap", "--dsn", superDSN(t), "--prefix", prefix, "--database", database, "--out", secrets}
	r := mustRun(t, append(boot, "--no-migrate")...)
	wantContains(t, "stdout", r.stdout, "no context key yet")
	if env := readSecretsFile(t, secrets); env["TENANTSEAL_CONTEXT_KEY"] != "" {
		t.Errorf("got a context key after --no-migrate, want none")
	}

	// No --dsn: the owner connection string comes from the secrets file.
	l := migrations.Latest()
	all0 := migrations.List(0)
	if len(all0) < 2 {
		t.Fatalf("got %d migrations, this test needs at least 2", len(all0))
	}
	prev := all0[len(all0)-2].Version // what a down from the latest leaves
	archive := func(n int) string { return filepath.Join(t.TempDir(), fmt.Sprintf("audit-%d.jsonl", n)) }
	first, second := archive(1), archive(2)
	all := "--confirm-loss=tenants,keysets,audit-log,tenant-keks"
	steps := []struct {
		args []string
		want string // exact stdout
	}{
		{[]string{"version"}, "0\n"},
		{[]string{"status"}, statusText(0, "no")},
		{[]string{"up"}, moved(0, l)},
		{[]string{"up"}, fmt.Sprintf("at version %d: nothing to do\n", l)},
		{[]string{"status"}, statusText(l, "no")},
		{[]string{"down", "--confirm-loss", "tenant-keks"}, moved(l, prev)},
		{[]string{"status"}, statusText(prev, "no")},
		{[]string{"goto", fmt.Sprint(l)}, moved(prev, l)},
		{[]string{"down", "--all", all, "--archive-audit", first}, "archived the audit log to " + first + " before dropping it\n" + moved(l, 0)},
		{[]string{"goto", "1"}, moved(0, 1)},
		{[]string{"goto", "0", "--confirm-loss", "tenants"}, moved(1, 0)},
		{[]string{"up"}, moved(0, l)},
		{[]string{"down", fmt.Sprint(len(all0)), all, "--archive-audit", second}, "archived the audit log to " + second + " before dropping it\n" + moved(l, 0)},
		{[]string{"force", fmt.Sprint(l)}, fmt.Sprintf("forced version %d (clean); nothing was run\n", l)},
		{[]string{"version"}, fmt.Sprintf("%d\n", l)},
		{[]string{"force", "0"}, "forced version 0 (clean); nothing was run\n"},
		{[]string{"version"}, "0\n"},
		{[]string{"up", "--secrets", secrets}, moved(0, l)}, // flags after the subcommand
	}
	for _, st := range steps {
		args := append([]string{"migrate", "--secrets", secrets}, st.args...)
		r := run(t, args...)
		// Migrations may say what they did (reverting 0001 drops the schema with what is left in it, and
		// PostgreSQL says so): notices, nothing else.
		quiet := regexp.MustCompile(`^(tenantseal: NOTICE: [^\n]*\n)*$`).MatchString(r.stderr)
		if r.code != 0 || r.stdout != st.want || !quiet {
			t.Fatalf("migrate %s: got %v, want exit 0 and stdout %q", strings.Join(st.args, " "), r, st.want)
		}
	}
	r = run(t, "migrate", "--secrets", secrets, "down", fmt.Sprint(len(all0)+1))
	wantFailure(t, r, 1, fmt.Sprintf("only %d migration(s) applied", len(all0)))
	// Each archive ends with the record of the revert that dropped it.
	for _, a := range []string{first, second} {
		lines := strings.Split(strings.TrimSpace(mustRead(t, a)), "\n")
		wantContains(t, "archive", lines[len(lines)-1], `"kind":"migrate"`, `"operation":"revert"`, "destroying audit-log (0004: the audit log (")
	}

	// Bootstrap again, now on a migrated database: it adds the context key and keeps the passwords.
	before := readSecretsFile(t, secrets)
	r = mustRun(t, boot...)
	wantContains(t, "stdout", r.stdout, "created context signing key")
	after := readSecretsFile(t, secrets)
	if after["TENANTSEAL_CONTEXT_KEY"] == "" || after["TENANTSEAL_APP_DSN"] != before["TENANTSEAL_APP_DSN"] {
		t.Errorf("got %q and app DSN changed %v, want a key and the same DSNs", after["TENANTSEAL_CONTEXT_KEY"], after["TENANTSEAL_APP_DSN"] != before["TENANTSEAL_APP_DSN"])
	}
}

func TestMigrateDirty(t *testing.T) {
	t.Parallel()
	d := pgtest.NewDatabase(t)
	mustExec(t, d.OwnerDSN, "UPDATE tenantseal_migrations.schema_migrations SET dirty = true")
	l := migrations.Latest()

	for _, args := range [][]string{{"up"}, {"down"}, {"down", "--all"}, {"goto", "1"}, {"version"}, {"status"}} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			r := run(t, append([]string{"migrate", "--dsn", d.OwnerDSN}, args...)...)
			wantFailure(t, r, 1, fmt.Sprintf("dirty at version %d", l), fmt.Sprintf("`tenantseal migrate force %d`", (&migrations.DirtyError{Version: int(l)}).LastGood()))
			switch args[0] {
			case "status":
				if want := statusText(l, "yes"); r.stdout != want {
					t.Errorf("got stdout %q, want %q", r.stdout, want)
				}
			case "version":
				if want := fmt.Sprintf("%d (dirty)\n", l); r.stdout != want {
					t.Errorf("got stdout %q, want %q", r.stdout, want)
				}
			}
		})
	}

	// The schema is in fact complete: mark it so.
	mustRun(t, "migrate", "--dsn", d.OwnerDSN, "--audit-dsn", d.AuditWriterDSN, "force", fmt.Sprint(l))
	if r := mustRun(t, "migrate", "--dsn", d.OwnerDSN, "version"); r.stdout != fmt.Sprintf("%d\n", l) {
		t.Errorf("after force %d: got version %q", l, r.stdout)
	}
}

// A failure in the first migration: the advice is `force 0`, which must leave the database at no
// migration, from where up works once the schema is repaired.
func TestMigrateDirtyFirstVersion(t *testing.T) {
	t.Parallel()
	d := pgtest.NewDatabase(t)
	// The test template carries the examples' tables, which reference tenants: remove them first.
	ref, err := reference.NewMigrator(testContext(t), d.OwnerDSN, migrations.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := ref.Down(testContext(t), 0); err != nil {
		t.Fatal(err)
	}
	ref.Close()
	mustRun(t, "migrate", "--dsn", d.OwnerDSN, "--audit-dsn", d.AuditWriterDSN, "goto", "1",
		"--confirm-loss", "keysets,audit-log,tenant-keks", "--archive-audit", filepath.Join(t.TempDir(), "audit.jsonl"))
	mustExec(t, d.OwnerDSN, "UPDATE tenantseal_migrations.schema_migrations SET dirty = true")

	r := run(t, "migrate", "--dsn", d.OwnerDSN, "up")
	wantFailure(t, r, 1, "dirty at version 1", "`tenantseal migrate force 0`")

	// Repair by hand: undo what the first migration did.
	var down []byte
	down, err = fs.ReadFile(migrations.FS(), "0001_foundation.down.sql")
	if err != nil {
		t.Fatal(err)
	}
	mustExec(t, d.OwnerDSN, string(down))
	mustRun(t, "migrate", "--dsn", d.OwnerDSN, "force", "0")
	if r := mustRun(t, "migrate", "--dsn", d.OwnerDSN, "version"); r.stdout != "0\n" {
		t.Errorf("after force 0: got version %q, want \"0\\n\"", r.stdout)
	}
	if r := mustRun(t, "migrate", "--dsn", d.OwnerDSN, "--audit-dsn", d.AuditWriterDSN, "up"); r.stdout != moved(0, migrations.Latest()) {
		t.Errorf("up after the repair: got %q", r.stdout)
	}
}

// Not parallel: it sets an environment variable.
func TestMigrateOwnerDSNFromEnvironment(t *testing.T) {
	d := pgtest.NewDatabase(t)
	t.Setenv("TENANTSEAL_OWNER_DSN", d.OwnerDSN)
	// --secrets names a file that does not exist: the environment wins before it is read.
	r := mustRun(t, "migrate", "--secrets", filepath.Join(t.TempDir(), "absent.env"), "version")
	if want := fmt.Sprintf("%d\n", migrations.Latest()); r.stdout != want {
		t.Errorf("got stdout %q, want %q", r.stdout, want)
	}
}

// A revert that destroys data refuses, naming and counting the losses, and changes nothing; confirmed,
// it is recorded first. Status and export serve machines and binary-only installs.
func TestMigrateLossesStatusExport(t *testing.T) {
	t.Parallel()
	d := pgtest.NewDatabase(t)
	secrets := secretsFor(t, d)
	mustTenant(t, d.OwnerDSN, "acme")
	l := migrations.Latest()
	r := run(t, "migrate", "goto", "3", "--secrets", secrets)
	// Only what holds data needs naming: no tenant has a KEK of its own here.
	wantFailure(t, r, 2, "reverting 0004 drops the audit log (1 entries)", "confirm with --confirm-loss audit-log")
	if strings.Contains(r.stderr, "tenant-keks") {
		t.Errorf("got %q, want no confirmation asked for the empty tenant KEKs", r.stderr)
	}
	if v := mustRun(t, "migrate", "version", "--secrets", secrets).stdout; v != fmt.Sprintf("%d\n", l) {
		t.Errorf("after the refusal: got version %q, want %d", v, l)
	}
	wantFailure(t, run(t, "migrate", "down", "--all", "--confirm-loss", "keysets,everything", "--secrets", secrets), 2,
		`--confirm-loss "everything": want tenants, keysets, audit-log, tenant-keks`)

	var st struct {
		Schema     string
		Version    uint
		Dirty      bool
		Migrations []struct {
			Version uint
			Name    string
			Applied bool
		}
	}
	r = mustRun(t, "migrate", "status", "--format", "json", "--secrets", secrets)
	if err := json.Unmarshal([]byte(r.stdout), &st); err != nil || st.Schema != "tenantseal/migrate-status/v1" || st.Version != l || st.Dirty ||
		len(st.Migrations) != len(migrations.List(0)) || !st.Migrations[0].Applied || st.Migrations[0].Name != "foundation" {
		t.Errorf("status --format json: got %+v (%v) from %s", st, err, r.stdout)
	}

	dir := filepath.Join(t.TempDir(), "sql")
	r = mustRun(t, "migrate", "export", dir)
	wantContains(t, "stdout", r.stdout, fmt.Sprintf("wrote %d migration files to %s", 2*len(migrations.List(0)), dir))
	wantContains(t, "stderr", r.stderr, "migrate -source file://"+dir)
	if got := mustRead(t, filepath.Join(dir, "0001_foundation.up.sql")); !strings.Contains(got, "CREATE SCHEMA tenantseal") {
		t.Errorf("exported 0001: got %.80q", got)
	}
	mustWrite(t, filepath.Join(dir, "0003_keys.up.sql"), "-- mine\n")
	wantFailure(t, run(t, "migrate", "export", dir), 1, "refusing to overwrite it")
}
