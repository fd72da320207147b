package cli_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tenantseal/tenantseal"

	"github.com/jackc/pgx/v5"

	"github.com/tenantseal/tenantseal/db"
	"github.com/tenantseal/tenantseal/internal/cli"
	"github.com/tenantseal/tenantseal/internal/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

func testContext(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// result is what one cli.Run returned and printed.
type result struct {
	code           int
	stdout, stderr string
}

func (r result) String() string {
	return fmt.Sprintf("exit %d\n--- stdout:\n%s--- stderr:\n%s", r.code, r.stdout, r.stderr)
}

// run runs the command line args in process.
func run(t testing.TB, args ...string) result {
	t.Helper()
	return runWith(t, cli.Options{}, args...)
}

// runWith runs args in process as a build with opts does.
func runWith(t testing.TB, opts cli.Options, args ...string) result {
	t.Helper()
	var out, errb bytes.Buffer
	code := cli.RunWith(opts, args, strings.NewReader(""), &out, &errb)
	return result{code: code, stdout: out.String(), stderr: errb.String()}
}

// mustRun runs args and fails the test unless it exits 0.
func mustRun(t testing.TB, args ...string) result {
	t.Helper()
	return mustRunWith(t, cli.Options{}, args...)
}

// mustRunWith runs args as a build with opts does, and fails the test unless it exits 0.
func mustRunWith(t testing.TB, opts cli.Options, args ...string) result {
	t.Helper()
	r := runWith(t, opts, args...)
	if r.code != 0 {
		t.Fatalf("tenantseal %s: got %v, want exit 0", strings.Join(args, " "), r)
	}
	return r
}

// wantFailure checks that r failed with code and exactly one stderr line "tenantseal: ..." that contains
// every string in want.
func wantFailure(t testing.TB, r result, code int, want ...string) {
	t.Helper()
	if r.code != code {
		t.Errorf("got exit %d, want %d; %v", r.code, code, r)
	}
	lines := strings.Split(strings.TrimSuffix(r.stderr, "\n"), "\n")
	if len(lines) != 1 || !strings.HasPrefix(lines[0], "tenantseal: ") || !strings.HasSuffix(r.stderr, "\n") {
		t.Errorf("got stderr %q, want one line starting with \"tenantseal: \"", r.stderr)
	}
	for _, w := range want {
		if !strings.Contains(r.stderr, w) {
			t.Errorf("got stderr %q, want it to contain %q", r.stderr, w)
		}
	}
}

func wantContains(t testing.TB, what, got string, want ...string) {
	t.Helper()
	for _, w := range want {
		if !strings.Contains(got, w) {
			t.Errorf("got %s %q, want it to contain %q", what, got, w)
		}
	}
}

func superDSN(t testing.TB) string { return pgtest.SharedCluster(t).Server.SuperDSN }

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// freshNames returns a role prefix and database name no other test uses, and drops whatever a test
// creates under them when it ends.
func freshNames(t testing.TB) (prefix, database string) {
	t.Helper()
	prefix = "c" + randomHex(4)
	database = prefix + "_db"
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		c, err := pgx.Connect(ctx, superDSN(t))
		if err != nil {
			t.Errorf("clean up: %v", err)
			return
		}
		defer c.Close(ctx)
		stmts := []string{"DROP DATABASE IF EXISTS " + database + " WITH (FORCE)"}
		r := db.Roles(prefix)
		for _, r := range []string{r.App, r.Auditor, r.AuditWriter, r.Probe, r.Owner} {
			stmts = append(stmts, "DROP ROLE IF EXISTS "+r)
		}
		for _, s := range stmts {
			if _, err := c.Exec(ctx, s); err != nil {
				t.Errorf("clean up: %s: %v", s, err)
			}
		}
	})
	return prefix, database
}

func mustConn(t testing.TB, dsn string) *pgx.Conn {
	t.Helper()
	ctx := testContext(t)
	c, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(context.Background()) })
	return c
}

func mustExec(t testing.TB, dsn, sql string, args ...any) {
	t.Helper()
	if _, err := mustConn(t, dsn).Exec(testContext(t), sql, args...); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

// readSecretsFile checks that path has mode 0600 and returns its KEY=VALUE lines.
func readSecretsFile(t testing.TB, path string) map[string]string {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := fi.Mode().Perm(); got != 0o600 {
		t.Errorf("%s: got mode %04o, want 0600", path, got)
	}
	return parseEnv(t, mustRead(t, path))
}

func parseEnv(t testing.TB, data string) map[string]string {
	t.Helper()
	m := map[string]string{}
	for _, l := range strings.Split(data, "\n") {
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		k, v, ok := strings.Cut(l, "=")
		if !ok {
			t.Fatalf("secrets line %q is not KEY=VALUE", l)
		}
		m[k] = v
	}
	return m
}

func mustRead(t testing.TB, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func mustWrite(t testing.TB, path, data string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
}

// secretsFor writes a secrets file for d, as bootstrap would, and returns its path.
func secretsFor(t testing.TB, d *pgtest.Database) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "secrets.env")
	mustWrite(t, path, fmt.Sprintf("# tenantseal secrets: keep out of version control\nTENANTSEAL_OWNER_DSN=%s\nTENANTSEAL_APP_DSN=%s\nTENANTSEAL_AUDITOR_DSN=%s\nTENANTSEAL_AUDIT_WRITER_DSN=%s\nTENANTSEAL_CONTEXT_KEY=%s:%x\n",
		d.OwnerDSN, d.AppDSN, d.AuditorDSN, d.AuditWriterDSN, d.ContextKey.ID, d.ContextKey.Secret))
	return path
}

func prefixOf(roles db.RoleNames) string { return strings.TrimSuffix(roles.Owner, "_owner") }

// mustPool opens an app pool that signs with key.
func mustPool(t testing.TB, appDSN, prefix string, key db.ContextKey) *db.Pool {
	t.Helper()
	cfg, err := db.ParseConfig(appDSN)
	if err != nil {
		t.Fatal(err)
	}
	cfg.SigningKey = key
	cfg.RolePrefix = prefix
	p, err := db.Open(testContext(t), cfg)
	if err != nil {
		t.Fatalf("db.Open: %v", err)
	}
	t.Cleanup(p.Close)
	return p
}

// mustTenant creates a tenant without keysets with `tenantseal tenants create --no-keys` and returns its
// id.
func mustTenant(t testing.TB, ownerDSN, name string) tenantseal.TenantID {
	t.Helper()
	return parseTenant(t, mustRun(t, "tenants", "create", "--no-keys", "--dsn", ownerDSN, "--audit-dsn", writerDSNFor(t, ownerDSN), "--name", name))
}

// writerDSNFor returns the audit writer's connection string of the database of ownerDSN, whose roles
// are the shared cluster's.
func writerDSNFor(t testing.TB, ownerDSN string) string {
	t.Helper()
	cc, err := pgx.ParseConfig(ownerDSN)
	if err != nil {
		t.Fatal(err)
	}
	return pgtest.WithDatabase(pgtest.SharedCluster(t).Template.AuditWriterDSN, cc.Database)
}

// parseTenant returns the tenant id that `tenants create` printed.
func parseTenant(t testing.TB, r result) tenantseal.TenantID {
	t.Helper()
	id, err := tenantseal.ParseTenantID(strings.TrimSpace(r.stdout))
	if err != nil {
		t.Fatalf("tenants create: got stdout %q, want a tenant id: %v", r.stdout, err)
	}
	return id
}

func as(ctx context.Context, tenant tenantseal.TenantID) context.Context {
	return tenantseal.WithPrincipal(ctx, tenantseal.Principal{Tenant: tenant, Subject: "cli-test"})
}
