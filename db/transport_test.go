package db_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/tenantseal/tenantseal/db"
	"github.com/tenantseal/tenantseal/internal/dsn"
	"github.com/tenantseal/tenantseal/internal/pgbouncer"
	"github.com/tenantseal/tenantseal/internal/pgtest"
	"github.com/tenantseal/tenantseal/internal/pgtls"
)

// otherCA writes the certificate of an authority that signed nothing the servers present.
func otherCA(t testing.TB) string {
	t.Helper()
	f, err := pgtls.NewFiles(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return f.CA
}

func TestCheckTransport(t *testing.T) {
	t.Parallel()
	ca := otherCA(t)
	for _, tc := range []struct {
		name, conn string
		allow      bool
		want       string // "" when accepted, else a part of the refusal
	}{
		{"verify-full", "host=db.example.com sslmode=verify-full sslrootcert=" + ca, false, ""},
		{"verify-full, system roots", "host=db.example.com sslrootcert=system", false, ""},
		{"verify-full, several hosts", "host=a.example.com,b.example.com sslmode=verify-full sslrootcert=" + ca, false, ""},
		{"disable", "host=db.example.com sslmode=disable", false, "does not use TLS"},
		{"allow", "host=db.example.com sslmode=allow", false, "does not use TLS"},
		{"prefer", "host=db.example.com sslmode=prefer", false, "does not verify"},
		{"default (prefer)", "host=db.example.com", false, "does not verify"},
		{"require", "host=db.example.com sslmode=require", false, "does not verify"},
		{"require with a root certificate (verify-ca)", "host=db.example.com sslmode=require sslrootcert=" + ca, false, "does not verify"},
		{"verify-ca", "host=db.example.com sslmode=verify-ca sslrootcert=" + ca, false, "does not verify"},
		{"Unix socket", "host=/var/run/postgresql", false, "Unix socket"},
		{"disable to loopback, not allowed", "host=127.0.0.1 sslmode=disable", false, "does not use TLS"},
		{"disable to 127.0.0.1, allowed", "host=127.0.0.1 sslmode=disable", true, ""},
		{"disable to 127.9.9.9, allowed", "host=127.9.9.9 sslmode=disable", true, ""},
		{"disable to ::1, allowed", "host=::1 sslmode=disable", true, ""},
		{"prefer to localhost, allowed", "host=localhost", true, ""},
		{"Unix socket, allowed", "host=/var/run/postgresql", true, ""},
		{"disable to another host, allowed", "host=192.0.2.7 sslmode=disable", true, "loopback hosts only"},
		{"disable to a name, allowed", "host=db.example.com sslmode=disable", true, "loopback hosts only"},
		{"loopback then another host, allowed", "host=127.0.0.1,192.0.2.7 sslmode=disable", true, "192.0.2.7"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := pgconn.ParseConfig(tc.conn + " password=s3cret-pw")
			if err != nil {
				t.Fatal(err)
			}
			err = db.CheckTransport(cfg, tc.allow)
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("got %v, want the configuration accepted", err)
			case tc.want != "" && !errors.Is(err, db.ErrInsecureTransport):
				t.Errorf("got %v, want ErrInsecureTransport", err)
			case tc.want != "" && !strings.Contains(err.Error(), tc.want):
				t.Errorf("got %q, want it to say %q", err, tc.want)
			case err != nil && strings.Contains(err.Error(), "s3cret-pw"):
				t.Errorf("got %q, which reveals the password", err)
			}
		})
	}
}

// TestOpenRefusesUnverifiedTransport: db.Open connects only over TLS that verifies the server's
// certificate and name, unless plaintext to loopback is allowed explicitly.
func TestOpenRefusesUnverifiedTransport(t *testing.T) {
	t.Parallel()
	d := pgtest.NewDatabase(t)
	password, _ := dsn.Parse(d.AppDSN)
	for _, tc := range []struct {
		name     string
		settings []string
		allow    bool
		want     string // a part of the error; "" when Open must succeed
		insecure bool   // refused by the transport rule (before any connection)
	}{
		{"sslmode=disable", []string{"sslmode", "disable", "sslrootcert", ""}, false, "does not use TLS", true},
		{"sslmode=prefer", []string{"sslmode", "prefer"}, false, "does not verify", true},
		{"sslmode=require without verification", []string{"sslmode", "require", "sslrootcert", ""}, false, "does not verify", true},
		{"sslmode=verify-ca", []string{"sslmode", "verify-ca"}, false, "does not verify", true},
		{"wrong CA", []string{"sslrootcert", otherCA(t)}, false, "certificate signed by unknown authority", false},
		// 127.0.0.2 reaches the same published port; the certificate names 127.0.0.1, ::1 and localhost.
		{"wrong host name", []string{"host", "127.0.0.2"}, false, "not 127.0.0.2", false},
		{"plaintext to another host, allowed", []string{"host", "192.0.2.7", "sslmode", "disable"}, true, "loopback hosts only", true},
		{"plaintext to loopback, allowed", []string{"sslmode", "disable", "sslrootcert", ""}, true, "", false},
		{"verify-full", nil, false, "", false},
		{"verify-full with channel_binding=require", []string{"channel_binding", "require"}, false, "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cfg := d.Config(t, pgtest.WithSettings(d.AppDSN, tc.settings...))
			cfg.AllowPlaintextLoopback = tc.allow
			cfg.PoolConfig.ConnConfig.ConnectTimeout = 5 * time.Second
			p, err := db.Open(testContext(t), cfg)
			if tc.want == "" {
				if err != nil {
					t.Fatalf("db.Open: %v", err)
				}
				defer p.Close()
				return
			}
			if err == nil {
				p.Close()
				t.Fatalf("db.Open succeeded, want it refused (%s)", tc.want)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %q, want it to say %q", err, tc.want)
			}
			if got := errors.Is(err, db.ErrInsecureTransport); got != tc.insecure {
				t.Errorf("got errors.Is(err, ErrInsecureTransport) %v, want %v", got, tc.insecure)
			}
			if pw := password.Get(dsn.Password); strings.Contains(err.Error(), pw) {
				t.Errorf("got %q, which reveals the password", err)
			}
		})
	}
}

// TestOpenSessionTLS: every pool's session runs over TLS as the server sees it; a client certificate is
// presented when the connection string names one; plaintext allowed to loopback is plaintext.
func TestOpenSessionTLS(t *testing.T) {
	t.Parallel()
	d := pgtest.NewDatabase(t)
	files := pgtest.SharedCluster(t).Server.TLS
	if files.ClientCert == "" {
		t.Fatal("this test needs a server the harness started, with its certificates (not TENANTSEAL_TEST_DSN)")
	}
	for _, tc := range []struct {
		name     string
		settings []string
		allow    bool
		ssl      bool
		clientDN string
	}{
		{"verify-full", nil, false, true, ""},
		{"verify-full with a client certificate", []string{"sslcert", files.ClientCert, "sslkey", files.ClientKey}, false, true, "/CN=" + pgtls.ClientCommonName},
		{"plaintext to loopback, allowed", []string{"sslmode", "disable", "sslrootcert", ""}, true, false, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cfg := d.Config(t, pgtest.WithSettings(d.AppDSN, tc.settings...))
			cfg.AllowPlaintextLoopback = tc.allow
			p := mustOpen(t, cfg)
			ctx := as(testContext(t), mustTenant(t, d, "acme-"+strings.ReplaceAll(tc.name, " ", "-")), "alice")
			var ssl bool
			var clientDN string
			if err := p.QueryRow(ctx, "SELECT ssl, coalesce(client_dn, '') FROM pg_stat_ssl WHERE pid = pg_backend_pid()").Scan(&ssl, &clientDN); err != nil {
				t.Fatal(err)
			}
			if ssl != tc.ssl || clientDN != tc.clientDN {
				t.Errorf("got ssl %v, client_dn %q; want %v, %q", ssl, clientDN, tc.ssl, tc.clientDN)
			}
		})
	}
}

// TestOpenRefusesPlaintextBehindPooler: a pooler that the client reaches over verified TLS but that goes
// on to the server in plaintext is found in pg_stat_ssl, and the pool refuses the connection.
func TestOpenRefusesPlaintextBehindPooler(t *testing.T) {
	t.Parallel()
	d := pgtest.NewDatabase(t)
	app, err := dsn.Parse(d.AppDSN)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name            string
		serverPlaintext bool
	}{{"TLS on both legs", false}, {"plaintext to the server", true}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b, err := pgbouncer.Start(testContext(t), pgbouncer.Options{Upstream: d.SuperDSN, Databases: []string{d.Name},
				Users: map[string]string{d.Roles.App: app.Get(dsn.Password)}, ServerPlaintext: tc.serverPlaintext})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(b.Stop)
			cfg := d.Config(t, b.DSN(d.Roles.App, app.Get(dsn.Password), d.Name))
			cfg.ExecMode = pgx.QueryExecModeCacheDescribe
			p, err := db.Open(testContext(t), cfg)
			if !tc.serverPlaintext {
				if err != nil {
					t.Fatalf("db.Open: %v; pgbouncer's log: %s", err, b.Log())
				}
				p.Close()
				return
			}
			if err == nil {
				p.Close()
				t.Fatal("db.Open succeeded, want it refused: the server's session is plaintext")
			}
			if !errors.Is(err, db.ErrInsecureTransport) || !strings.Contains(err.Error(), "pg_stat_ssl") {
				t.Errorf("got %v, want ErrInsecureTransport naming pg_stat_ssl", err)
			}
		})
	}
}
