package cli_test

import (
	"fmt"
	"net/url"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/tenantseal/tenantseal/internal/pgtest"
	"github.com/tenantseal/tenantseal/keys"
)

// TestNoCommandPrintsAPassword runs every command that connects with a pgx5:// connection string, the
// scheme the README tells users to write for the stock migrate CLI, from --dsn, the environment and the
// secrets file, against a server that is not there and against one that refuses the password: no
// password may reach stdout or stderr, in any spelling.
func TestNoCommandPrintsAPassword(t *testing.T) {
	t.Parallel()
	const secret = "Pgx5-s3cret-pw"

	d := pgtest.NewDatabase(t)
	cc, err := pgx.ParseConfig(d.OwnerDSN)
	if err != nil {
		t.Fatal(err)
	}
	// Each server fails every command for its reason: it connects with the pgx5:// string.
	servers := []struct{ name, hostPort, reason string }{
		{"unreachable", "127.0.0.1:1", "connection refused"},
		{"wrong password", fmt.Sprintf("%s:%d", cc.Host, cc.Port), "password authentication failed"},
	}
	key := fmt.Sprintf("%s:%x", d.ContextKey.ID, d.ContextKey.Secret)
	kek, err := keys.InitLocalKEK(filepath.Join(t.TempDir(), "kek.json"))
	if err != nil {
		t.Fatal(err)
	}
	for _, srv := range servers {
		name, hostPort := srv.name, srv.hostPort
		owner := fmt.Sprintf("pgx5://%s:%s@%s/%s?%s", d.Roles.Owner, secret, hostPort, d.Name, d.TLSParams().Encode())
		app := strings.Replace(owner, d.Roles.Owner, d.Roles.App, 1)
		auditor := strings.Replace(owner, d.Roles.Owner, d.Roles.Auditor, 1)
		secrets := filepath.Join(t.TempDir(), "secrets.env")
		mustWrite(t, secrets, fmt.Sprintf("TENANTSEAL_OWNER_DSN=%s\nTENANTSEAL_APP_DSN=%s\nTENANTSEAL_AUDITOR_DSN=%s\nTENANTSEAL_CONTEXT_KEY=%s\nTENANTSEAL_KEK_URI=%s\n",
			owner, app, auditor, key, kek))
		for _, args := range [][]string{
			{"bootstrap", "--dsn", owner, "--out", filepath.Join(t.TempDir(), "s.env")},
			// The secrets file describes this database and prefix: bootstrap goes on to connect.
			{"bootstrap", "--dsn", owner, "--print", "--out", secrets, "--database", d.Name, "--prefix", prefixOf(d.Roles)},
			{"migrate", "version", "--dsn", owner},
			{"migrate", "up", "--secrets", secrets},
			{"tenants", "list", "--dsn", owner},
			{"tenants", "create", "--name", "x", "--no-keys", "--secrets", secrets},
			{"keys", "check", "--secrets", secrets},
			{"keys", "reencrypt", "--all", "--secrets", secrets},
			{"audit", "verify", "--dsn", auditor},
			{"audit", "tail", "--secrets", secrets},
			{"context-key", "rotate", "--print", "--dsn", owner},
			{"lint", "--dsn", owner},
			{"isolation-check", "--dsn", owner, "--app-dsn", app, "--context-key", key},
			{"evidence", "export", filepath.Join(t.TempDir(), "bundle"), "--secrets", secrets, "--isolation-dsn", owner},
			{"demo", "--dsn", owner},
			{"bench", "--dsn", owner, "--tenants", "1", "--customers", "50", "--rounds", "1", "--flat=false", "--out", t.TempDir()},
		} {
			t.Run(name+"/"+strings.Join(args[:2], " "), func(t *testing.T) {
				r := run(t, args...)
				want := 1
				if args[0] == "isolation-check" {
					want = 3 // its own status for a check that could not run
				}
				if r.code != want || !strings.Contains(r.stdout+r.stderr, srv.reason) {
					t.Errorf("got %v, want exit %d for %q", r, want, srv.reason)
				}
				if strings.Contains(r.stdout+r.stderr, "s3cret") {
					t.Errorf("the output shows the password:\n%v", r)
				}
			})
		}
	}
}

// TestPasswordFromTheEnvironmentNeverPrinted: the owner connection string in $TENANTSEAL_OWNER_DSN, of
// any form, is redacted as --dsn is.
func TestPasswordFromTheEnvironmentNeverPrinted(t *testing.T) {
	const secret = "env-s3cret pw'"
	for _, v := range []string{
		"pgx5://u:" + url.PathEscape(secret) + "@127.0.0.1:1/x?connect_timeout=1",
		"postgresql://u:" + url.PathEscape(secret) + "@127.0.0.1:1/x?connect_timeout=1",
		`host=127.0.0.1 port=1 user=u password='env-s3cret pw\'' connect_timeout=1`,
		"mysql://u:" + url.PathEscape(secret) + "@127.0.0.1:1/x",
	} {
		t.Run(v, func(t *testing.T) {
			t.Setenv("TENANTSEAL_OWNER_DSN", v)
			r := run(t, "tenants", "list", "--secrets", filepath.Join(t.TempDir(), "none.env"))
			if r.code == 0 {
				t.Fatalf("got exit 0, want a failure: %v", r)
			}
			for _, s := range []string{secret, url.PathEscape(secret), "env-s3cret"} {
				if strings.Contains(r.stdout+r.stderr, s) {
					t.Errorf("the output shows the password as %q:\n%v", s, r)
				}
			}
		})
	}
}
