package cli_test

import (
	"fmt"
	"net"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tenantseal/tenantseal/internal/pgtest"
)

func TestConnectionFailures(t *testing.T) {
	t.Parallel()
	d := pgtest.NewDatabase(t)
	owner, err := url.Parse(d.OwnerDSN)
	if err != nil {
		t.Fatal(err)
	}
	wrongPassword := *owner
	wrongPassword.User = url.UserPassword(d.Roles.Owner, "wr0ng-pa55word")
	missingDB := *owner
	missingDB.Path = "/no_such_database"
	cc, err := pgx.ParseConfig(d.OwnerDSN)
	if err != nil {
		t.Fatal(err)
	}
	tlsq := d.TLSParams()
	keywordWrong := fmt.Sprintf("host=%s port=%d user=%s password=wr0ng-pa55word dbname=%s sslmode=%s sslrootcert='%s'", cc.Host, cc.Port, cc.User, cc.Database,
		tlsq.Get("sslmode"), tlsq.Get("sslrootcert"))
	hostPort := fmt.Sprintf("%s:%d", cc.Host, cc.Port)
	silent := silentServer(t)
	tlsQuery := tlsq.Encode()

	tests := []struct {
		name   string
		args   []string
		within time.Duration
		want   []string
	}{
		{"unreachable, timeout in the DSN", []string{"migrate", "version", "--dsn", "postgres://u:s3cret-pw@127.0.0.1:1/x?connect_timeout=2&" + tlsQuery},
			5 * time.Second, []string{"cannot connect to 127.0.0.1:1", `user "u"`, "connection refused"}},
		{"unreachable, --connect-timeout", []string{"tenants", "list", "--connect-timeout", "2s", "--dsn", "postgres://u:s3cret-pw@127.0.0.1:1/x?" + tlsQuery},
			5 * time.Second, []string{"cannot connect to 127.0.0.1:1"}},
		{"unreachable bootstrap", []string{"bootstrap", "--out", filepath.Join(t.TempDir(), "s.env"), "--connect-timeout", "2s", "--dsn", "postgres://u:s3cret-pw@127.0.0.1:1/x?" + tlsQuery},
			5 * time.Second, []string{"cannot connect to 127.0.0.1:1"}},
		// A server that accepts and never answers: the connect timeout, not the kernel, ends the attempt.
		{"silent server, --connect-timeout", []string{"migrate", "version", "--connect-timeout", "1s", "--dsn", "postgres://u:s3cret-pw@" + silent + "/x?" + tlsQuery},
			4 * time.Second, []string{"cannot connect to " + silent, "timed out after 1s"}},
		{"silent server, timeout in the DSN", []string{"tenants", "list", "--dsn", "postgres://u:s3cret-pw@" + silent + "/x?connect_timeout=1&" + tlsQuery},
			4 * time.Second, []string{"cannot connect to " + silent, "timed out after 1s"}},
		{"wrong password", []string{"migrate", "version", "--dsn", wrongPassword.String()},
			10 * time.Second, []string{"cannot connect to " + hostPort, fmt.Sprintf("as user %q", d.Roles.Owner), "password authentication failed"}},
		{"wrong password, keyword/value DSN", []string{"tenants", "list", "--dsn", keywordWrong},
			10 * time.Second, []string{"password authentication failed"}},
		{"missing database", []string{"migrate", "status", "--dsn", missingDB.String()},
			10 * time.Second, []string{`database "no_such_database" does not exist`}},
		{"bootstrap as a non-superuser", []string{"bootstrap", "--out", filepath.Join(t.TempDir(), "s.env"), "--dsn", d.OwnerDSN},
			10 * time.Second, []string{"must be a superuser"}},
		{"context-key rotate as the app role", []string{"context-key", "rotate", "--print", "--dsn", d.AppDSN},
			10 * time.Second, []string{"connect as the owner role"}},
		{"malformed DSN", []string{"migrate", "version", "--dsn", "postgres://u:s3cret-pw@h:port/x"},
			time.Second, []string{"cannot parse", "invalid port"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			start := time.Now()
			r := run(t, tc.args...)
			if el := time.Since(start); el > tc.within {
				t.Errorf("took %v, want at most %v", el, tc.within)
			}
			t.Logf("stderr: %s", r.stderr)
			wantFailure(t, r, 1, tc.want...)
			for _, secret := range []string{"s3cret-pw", "wr0ng-pa55word"} {
				if strings.Contains(r.stderr, secret) {
					t.Errorf("stderr %q reveals the password", r.stderr)
				}
			}
			if r.stdout != "" {
				t.Errorf("got stdout %q, want none", r.stdout)
			}
		})
	}
}

// silentServer accepts TCP connections and never says a word, like a hung server or a firewall that
// swallows packets after the handshake.
func silentServer(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		l.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	return l.Addr().String()
}

func TestUsageErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		args []string
		want string
	}{
		{nil, "missing command"},
		{[]string{"frobnicate"}, `unknown command "frobnicate"`},
		{[]string{"help", "frobnicate"}, `unknown command "frobnicate"`},
		{[]string{"migrate"}, "missing subcommand"},
		{[]string{"migrate", "sideways"}, `unknown subcommand "sideways"`},
		{[]string{"migrate", "force"}, "needs exactly one version"},
		{[]string{"migrate", "goto", "-1"}, "version must be"},
		{[]string{"migrate", "force", "x"}, "version must be"},
		{[]string{"migrate", "down", "x"}, "N must be a positive number"},
		{[]string{"migrate", "down", "1", "--all"}, "not both"},
		{[]string{"migrate", "up", "--all"}, "--all goes with down only"},
		{[]string{"migrate", "up", "extra"}, `unexpected argument "extra"`},
		{[]string{"migrate", "up", "--confirm-loss", "keysets"}, "--confirm-loss and --archive-audit go with down and goto only"},
		{[]string{"migrate", "down", "--confirm-loss", "all"}, `--confirm-loss "all": want tenants, keysets, audit-log, tenant-keks`},
		{[]string{"migrate", "up", "--format", "json"}, "--format json goes with status only"},
		{[]string{"migrate", "export"}, "needs exactly one directory"},
		{[]string{"bootstrap", "--dsn", "postgres://x:s3cret@h/db", "--reset-passwords", "everyone"}, `--reset-passwords "everyone": want role kinds or names`},
		{[]string{"migrate", "--bogus", "up"}, "flag provided but not defined: -bogus"},
		{[]string{"migrate", "--connect-timeout", "soon", "up"}, "invalid value"},
		{[]string{"tenants"}, "missing subcommand"},
		{[]string{"tenants", "create"}, "--name NAME is required"},
		{[]string{"tenants", "list", "--name", "x"}, "--name goes with create, rename only"},
		{[]string{"tenants", "shred"}, "needs exactly one tenant id"},
		{[]string{"tenants", "shred", "ac\tme", "--confirm", "ac\tme"}, `tenant id "ac\tme" is not a tenant id`},
		{[]string{"tenants", "create", "--name", "x", "--no-keys", "--kek", "local-keyset:///k.json"}, "--kek or --no-keys, not both"},
		{[]string{"tenants", "list", "--confirm", "x"}, "--confirm goes with delete, shred only"},
		{[]string{"tenants", "suspend"}, "needs exactly one tenant id"},
		{[]string{"tenants", "resume", "a", "b"}, "needs exactly one tenant id"},
		{[]string{"tenants", "suspend", "ac\tme"}, `tenant id "ac\tme" is not a tenant id`},
		{[]string{"tenants", "delete", "00000000-0000-4000-8000-000000000001"}, "--confirm with the tenant id again is required: deleting a tenant is final"},
		{[]string{"tenants", "delete", "00000000-0000-4000-8000-000000000001", "--confirm", "00000000-0000-4000-8000-000000000002"}, "does not repeat the tenant id"},
		{[]string{"tenants", "frobnicate"}, `unknown subcommand "frobnicate": want create, list, rename, suspend, resume, delete, shred, set-region, set-retention, bind, unbind or bindings`},
		{[]string{"tenants", "rename", "00000000-0000-4000-8000-000000000001"}, "--name NAME is required"},
		{[]string{"tenants", "rename", "00000000-0000-4000-8000-000000000001", "--name", "bad\x00"}, "--name: holds a control character"},
		{[]string{"tenants", "list", "--format", "yaml"}, `--format "yaml": want text or json`},
		{[]string{"tenants", "list", "--quiet", "--verbose"}, "--quiet or --verbose, not both"},
		{[]string{"tenants", "create", "--name", "tab\there"}, "--name: holds a control character: want 1 to 200 bytes"},
		{[]string{"tenants", "list", "--no-keys"}, "--no-keys goes with create only"},
		{[]string{"keys"}, "missing subcommand"},
		{[]string{"keys", "frobnicate"}, `unknown subcommand "frobnicate"`},
		{[]string{"keys", "check", "extra"}, `unexpected argument "extra"`},
		{[]string{"keys", "create"}, "give either --tenant T or --all"},
		{[]string{"keys", "rotate"}, "give either --tenant T or --all"},
		{[]string{"keys", "retire", "--all", "--tenant", "00000000-0000-4000-8000-000000000001"}, "give either --tenant T or --all"},
		{[]string{"keys", "rotate", "--tenant", "ac\x00me"}, `--tenant "ac\x00me" is not a tenant id`},
		{[]string{"keys", "rotate", "--tenant", "00000000-0000-0000-0000-000000000000"}, "is not a tenant id"},
		{[]string{"keys", "reencrypt", "--all", "--batch", "0"}, "--batch must be at least 1"},
		{[]string{"keys", "check", "--batch", "5"}, "--batch goes with reencrypt only"},
		{[]string{"keys", "rotate", "--all", "--app-dsn", "postgres://x:s3cret@h/db"}, "--app-dsn goes with reencrypt, retire, destroy, quarantine only"},
		{[]string{"keys", "destroy", "--tenant", "00000000-0000-4000-8000-000000000001"}, "--confirm with the tenant id again is required"},
		{[]string{"keys", "destroy", "--tenant", "00000000-0000-4000-8000-000000000001", "--confirm", "x"}, "does not repeat the tenant id"},
		{[]string{"keys", "enable", "--tenant", "00000000-0000-4000-8000-000000000001", "--key", "k1"}, `--key "k1": want key ids`},
		{[]string{"keys", "rotate-kek", "--shared"}, "--shared goes with --tenant T"},
		{[]string{"keys", "rotate", "--all", "--format", "json"}, "--format goes with status, quarantine only"},
		{[]string{"keys", "quarantine"}, "--tenant T is required"},
		{[]string{"keys", "init-kek", "--kek", "local-keyset:///k.json"}, "--kek goes with check, create"},
		{[]string{"keys", "check", "--all"}, "--all goes with create, rotate, reencrypt, retire only"},
		{[]string{"keys", "rotate-kek"}, "--new <uri> is required"},
		{[]string{"context-key"}, "missing subcommand"},
		{[]string{"context-key", "rotate", "--overlap", "-1s"}, "--overlap must not be negative"},
		{[]string{"bootstrap"}, "--dsn <superuser connection string> is required"},
		{[]string{"bootstrap", "--dsn", "postgres://x:s3cret@h/db", "extra"}, `unexpected argument "extra"`},
		{[]string{"lint", "extra"}, `unexpected argument "extra"`},
		{[]string{"lint", "--format", "xml"}, `--format must be text, json or sarif, got "xml"`},
		{[]string{"lint", "--global-table", "plans"}, `--global-table "plans": want schema.table`},
		{[]string{"lint", "--schema", "public,"}, "empty name"},
		{[]string{"lint", "--prefix", ""}, "--prefix must not be empty"},
		{[]string{"demo", "extra"}, `unexpected argument "extra"`},
		{[]string{"version", "extra"}, `unexpected argument "extra"`},
	}
	for _, tc := range tests {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			r := run(t, tc.args...)
			wantFailure(t, r, 2, tc.want)
			if strings.Contains(r.stderr, "s3cret") {
				t.Errorf("stderr %q reveals the password", r.stderr)
			}
		})
	}
}

// Not parallel: it clears an environment variable, which would otherwise name the server.
func TestSecretsFileNamedButAbsent(t *testing.T) {
	t.Setenv("TENANTSEAL_OWNER_DSN", "")
	r := run(t, "migrate", "version", "--secrets", filepath.Join(t.TempDir(), "absent.env"))
	wantFailure(t, r, 1, "absent.env", "no such file")
}

// Not parallel: it clears an environment variable.
func TestNoOwnerDSN(t *testing.T) {
	t.Setenv("TENANTSEAL_OWNER_DSN", "")
	t.Chdir(t.TempDir()) // no tenantseal-secrets.env here
	r := run(t, "migrate", "version")
	wantFailure(t, r, 2, "no owner connection string", "--dsn", "TENANTSEAL_OWNER_DSN", "tenantseal bootstrap")
}

func TestHelp(t *testing.T) {
	t.Parallel()
	r := mustRun(t, "help")
	for _, name := range []string{"bootstrap", "migrate", "tenants", "keys", "context-key", "lint", "demo", "version"} {
		wantContains(t, "help", r.stdout, "\t"+name+" ")
	}
	if r2 := mustRun(t, "-h"); r2.stdout != r.stdout {
		t.Errorf("-h: got %q, want the same as help", r2.stdout)
	}

	tests := []struct {
		command string
		want    []string
	}{
		{"bootstrap", []string{"Usage: tenantseal bootstrap", "-reset-passwords", "-no-migrate", "-print", "0600"}},
		{"migrate", []string{"Usage: tenantseal migrate", "force V", "export DIR", "--confirm-loss", "tenantseal/migrate-status/v1", "-dsn", "-secrets", "-connect-timeout"}},
		{"tenants", []string{"create --name NAME [--id ID] [--no-keys]", "list", "rename T --name NAME", "suspend T", "resume T", "delete T --confirm T", "shred T --confirm T",
			"exit 2", "tenantseal/tenants/v1", "-kek", "-confirm", "-quiet", "-verbose"}},
		{"keys", []string{"init-kek", "check", "create --tenant T", "rotate --tenant T | --all", "retire", "rotate-kek --new URI",
			"Resumable: it skips rows already under the", "max_cache_ttl", "enable --tenant T", "destroy --tenant T --confirm T", "status [--tenant T]",
			"tenantseal/keys-status/v1", "-kek", "-batch", "-app-dsn", "-prefix", "TENANTSEAL_KEK_URI"}},
		{"context-key", []string{"rotate", "-overlap", "restart every one of them", "TS401"}},
		{"lint", []string{"Usage: tenantseal lint", "TS001 error", "TS016 error", "-format", "-schema", "-global-table", "-prefix", "-tenant-function", "exit"}},
		{"demo", []string{"-dsn", "-prefix", "-database"}},
		{"version", []string{"Usage: tenantseal version"}},
	}
	for _, tc := range tests {
		t.Run(tc.command, func(t *testing.T) {
			r := mustRun(t, "help", tc.command)
			wantContains(t, "stdout", r.stdout, tc.want...)
			// -h prints the same usage, on stderr, and succeeds.
			h := mustRun(t, tc.command, "-h")
			if h.stderr != r.stdout || h.stdout != "" {
				t.Errorf("%s -h: got %v, want the usage of help %s on stderr", tc.command, h, tc.command)
			}
		})
	}
}

func TestVersion(t *testing.T) {
	t.Parallel()
	r := mustRun(t, "version")
	if !strings.HasPrefix(r.stdout, "tenantseal ") || strings.Count(r.stdout, "\n") != 1 {
		t.Errorf("got %q, want one line starting with \"tenantseal \"", r.stdout)
	}
}
