package cli_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tenantseal/tenantseal/db"
	"github.com/tenantseal/tenantseal/internal/pgtest"
	"github.com/tenantseal/tenantseal/migrations"
)

// tenantsList is `tenants list --format json`.
type tenantsList struct {
	Schema  string
	Tenants []struct {
		ID, Name, Status, Keysets string
		ShreddedAt                *string `json:"shredded_at"`
	}
}

func TestTenantsNamesJSONAndRoles(t *testing.T) {
	t.Parallel()
	e := newKeysEnv(t)
	acme := e.tenant(t, "Acme")
	globex := e.tenant(t, "Globex")

	wantFailure(t, run(t, "tenants", "create", "--name", "ACME", "--secrets", e.secrets), 1,
		"another tenant has that name: tenant "+acme.String()+" is named so already", "without regard to case")
	wantFailure(t, run(t, "tenants", "rename", globex.String(), "--name", "acme", "--secrets", e.secrets), 1, "another tenant has that name")
	r := mustRun(t, "tenants", "rename", globex.String(), "--name", "Globex Corp", "--secrets", e.secrets)
	if r.stdout != "tenant "+globex.String()+" is named Globex Corp\n" {
		t.Errorf("rename: got %q", r.stdout)
	}
	wantFailure(t, run(t, "tenants", "rename", "00000000-0000-4000-8000-000000000001", "--name", "x", "--secrets", e.secrets), 1, "no tenant 00000000-0000-4000-8000-000000000001")
	mustRun(t, "tenants", "shred", acme.String(), "--confirm", acme.String(), "--secrets", e.secrets)

	var l tenantsList
	r = mustRun(t, "tenants", "list", "--format", "json", "--secrets", e.secrets)
	if err := json.Unmarshal([]byte(r.stdout), &l); err != nil || l.Schema != "tenantseal/tenants/v1" || len(l.Tenants) != 2 {
		t.Fatalf("list --format json: got %+v (%v) from %s", l, err, r.stdout)
	}
	if got := l.Tenants[0]; got.ID != acme.String() || got.Keysets != "shredded" || got.ShreddedAt == nil || got.Status != "active" {
		t.Errorf("the shredded tenant: got %+v, want keysets shredded with its time", got)
	}
	if got := l.Tenants[1]; got.Name != "Globex Corp" || got.Keysets != "yes" || got.ShreddedAt != nil {
		t.Errorf("the other tenant: got %+v", got)
	}
	if r.stderr != "" {
		t.Errorf("--format json: got stderr %q, want none", r.stderr)
	}

	// A role that row-level security restricts would list one tenant or none: refused, naming the role
	// needed.
	for _, dsn := range []string{e.d.AppDSN, e.d.AuditorDSN} {
		r := run(t, "tenants", "list", "--dsn", dsn)
		wantFailure(t, r, 1, "tenants list needs the owner role "+e.d.Roles.Owner, "but is connected as", "connect as the owner role")
		if r.stdout != "" {
			t.Errorf("got stdout %q, want no table", r.stdout)
		}
	}
	wantFailure(t, run(t, "keys", "status", "--dsn", e.d.AppDSN), 1, "keys status needs the owner role")
}

func TestSecretsFilePermissionsAndBootstrapPlace(t *testing.T) {
	t.Parallel()
	d := pgtest.NewDatabase(t)
	secrets := secretsFor(t, d)
	for _, mode := range []os.FileMode{0o640, 0o604} {
		if err := os.Chmod(secrets, mode); err != nil {
			t.Fatal(err)
		}
		wantFailure(t, run(t, "tenants", "list", "--secrets", secrets), 1, fmt.Sprintf("is open to its group or others (mode %04o)", mode), "chmod 600 "+secrets)
	}
	if err := os.Chmod(secrets, 0o600); err != nil {
		t.Fatal(err)
	}
	mustRun(t, "tenants", "list", "--secrets", secrets)

	// bootstrap never rewrites a file that describes another database.
	before := mustRead(t, secrets)
	prefix, database := freshNames(t)
	r := run(t, "bootstrap", "--dsn", superDSN(t), "--prefix", prefix, "--database", database, "--out", secrets)
	wantFailure(t, r, 1, "describes database \""+d.Name+"\"", "refusing to repoint it", "--out")
	if mustRead(t, secrets) != before {
		t.Error("the refused bootstrap changed the secrets file")
	}
	var n int
	if err := mustConn(t, superDSN(t)).QueryRow(testContext(t), "SELECT count(*) FROM pg_roles WHERE rolname LIKE $1", prefix+"%").Scan(&n); err != nil || n != 0 {
		t.Errorf("the refused bootstrap created %d roles (%v), want none", n, err)
	}
}

// Not parallel: it sets TENANTSEAL_SECRETS.
func TestSecretsFromEnvironment(t *testing.T) {
	d := pgtest.NewDatabase(t)
	t.Setenv("TENANTSEAL_OWNER_DSN", "")
	t.Setenv("TENANTSEAL_SECRETS", secretsFor(t, d))
	t.Chdir(t.TempDir()) // no tenantseal-secrets.env here
	if r := mustRun(t, "migrate", "version"); r.stdout != fmt.Sprintf("%d\n", migrations.Latest()) {
		t.Errorf("got %q, want the version, through the file $TENANTSEAL_SECRETS names", r.stdout)
	}
	t.Setenv("TENANTSEAL_SECRETS", filepath.Join(t.TempDir(), "absent.env"))
	wantFailure(t, run(t, "migrate", "version"), 1, "absent.env", "no such file")
}

func TestContextKeyOverlapZero(t *testing.T) {
	t.Parallel()
	d := pgtest.NewDatabase(t)
	secrets := secretsFor(t, d)
	tenant := mustTenant(t, d.OwnerDSN, "acme")
	prefix := prefixOf(d.Roles)
	count := func(p *db.Pool) error {
		var n int
		return p.QueryRow(as(testContext(t), tenant), "SELECT count(*) FROM tenantseal.tenants").Scan(&n)
	}
	oldPool := mustPool(t, d.AppDSN, prefix, d.ContextKey)
	if err := count(oldPool); err != nil {
		t.Fatal(err)
	}
	// --print leaves the file naming the old key: it says so.
	r := mustRun(t, "context-key", "rotate", "--overlap", "0", "--print", "--secrets", secrets)
	key, err := db.ParseContextKey(parseEnv(t, r.stdout)["TENANTSEAL_CONTEXT_KEY"])
	if err != nil {
		t.Fatal(err)
	}
	wantContains(t, "stderr", r.stderr, "old keys ["+d.ContextKey.ID+"] are retired", "warning: "+secrets+" still holds the previous TENANTSEAL_CONTEXT_KEY", "refuses already")
	// At once: the old key's tokens are refused, the new key's accepted.
	if err := count(oldPool); !errors.Is(err, db.ErrInvalidContext) {
		t.Errorf("the old key right after --overlap 0: got %v, want db.ErrInvalidContext", err)
	}
	if err := count(mustPool(t, d.AppDSN, prefix, key)); err != nil {
		t.Errorf("the new key: %v", err)
	}
}

// Every operator action is recorded with who ran it: a subject, and no tenant. Not parallel: it sets
// TENANTSEAL_OPERATOR.
func TestOperatorActionsAreRecorded(t *testing.T) {
	t.Setenv("TENANTSEAL_OPERATOR", "ada@ops (ticket 42)")
	e := newKeysEnv(t)
	a := e.tenant(t, "a")
	for _, args := range [][]string{
		{"tenants", "rename", a.String(), "--name", "b"},
		{"tenants", "suspend", a.String()},
		{"tenants", "resume", a.String()},
		{"tenants", "bind", a.String(), "--issuer", "https://idp.example.com/", "--claim", "org_a"},
		{"tenants", "unbind", "--issuer", "https://idp.example.com/", "--claim", "org_a"},
		{"keys", "rotate", "--tenant", a.String()},
		{"context-key", "rotate", "--overlap", "1m"},
		{"keys", "rotate-kek", "--new", newLocalKEK(t)},
		{"migrate", "down", "--confirm-loss", "tenant-keks"},
		{"migrate", "up"},
		{"tenants", "delete", a.String(), "--confirm", a.String()},
	} {
		mustRun(t, append(args, "--secrets", e.secrets)...)
	}
	es := entriesOf(t, mustRun(t, "audit", "tail", "-n", "100", "--format", "json", "--secrets", e.secrets).stdout, true)
	var got []string
	for _, en := range es {
		if strval(en.Subject) != "ada@ops (ticket 42)" || en.TenantID != nil {
			t.Errorf("entry %+v: want the operator as subject and no tenant", en)
		}
		got = append(got, string(en.Kind)+" "+strval(en.Operation))
	}
	want := []string{"tenant_change create", "tenant_change rename", "tenant_change suspended", "tenant_change active",
		"tenant_change bind", "tenant_change unbind", "key_rotate rotate",
		"context_key_rotate rotate", "kek_rotate rotate kek", "migrate revert", "migrate up", "tenant_change deleted"}
	if strings.Join(got, "; ") != strings.Join(want, "; ") {
		t.Errorf("recorded:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestKeysSettings(t *testing.T) {
	t.Parallel()
	d := pgtest.NewDatabase(t)
	secrets := secretsFor(t, d)
	if r := mustRun(t, "keys", "settings", "--secrets", secrets); r.stdout != "max_cache_ttl 5m0s, write_grace 1m0s: keys retire waits 6m0s after a rotation\n" {
		t.Errorf("defaults: got %q", r.stdout)
	}
	r := mustRun(t, "keys", "settings", "--max-cache-ttl", "1m", "--write-grace", "0s", "--secrets", secrets)
	if r.stdout != "max_cache_ttl 1m0s, write_grace 0s: keys retire waits 5m0s after a rotation\n" {
		t.Errorf("lowered: got %q, want the old bound still in the wait", r.stdout)
	}
	wantContains(t, "stderr", r.stderr, "earlier, longer bound")
	wantFailure(t, run(t, "keys", "settings", "--max-cache-ttl", "0s", "--secrets", secrets), 2, "--max-cache-ttl must be positive")
}
