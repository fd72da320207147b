package cli_test

import (
	"strings"
	"testing"

	"github.com/tenantseal/tenantseal/internal/dsn"
	"github.com/tenantseal/tenantseal/internal/pgtest"
	"github.com/tenantseal/tenantseal/internal/pgtls"
)

// TestCommandsRefuseUnverifiedTransport: a command connects only over TLS that verifies the server's
// certificate and name; $TENANTSEAL_ALLOW_PLAINTEXT_LOOPBACK=1 allows plaintext, to loopback only.
// Not parallel: it sets the environment.
func TestCommandsRefuseUnverifiedTransport(t *testing.T) {
	d := pgtest.NewDatabase(t)
	other, err := pgtls.NewFiles(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	owner, err := dsn.Parse(d.OwnerDSN)
	if err != nil {
		t.Fatal(err)
	}
	with := func(settings ...string) string { return pgtest.WithSettings(d.OwnerDSN, settings...) }
	for _, tc := range []struct {
		name  string
		dsn   string
		allow bool
		want  string // "" when the command must succeed
	}{
		{"sslmode=disable", with("sslmode", "disable", "sslrootcert", ""), false, "does not use TLS"},
		{"sslmode=prefer", with("sslmode", "prefer"), false, "does not verify"},
		{"sslmode=require without verification", with("sslmode", "require", "sslrootcert", ""), false, "does not verify"},
		{"wrong CA", with("sslrootcert", other.CA), false, "certificate signed by unknown authority"},
		{"wrong host name", with("host", "127.0.0.2"), false, "not 127.0.0.2"},
		{"verify-full", d.OwnerDSN, false, ""},
		{"plaintext to loopback, allowed", with("sslmode", "disable", "sslrootcert", ""), true, ""},
		{"plaintext to another host, allowed", with("host", "192.0.2.7", "sslmode", "disable", "sslrootcert", ""), true, "loopback hosts only"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			allow := ""
			if tc.allow {
				allow = "1"
			}
			t.Setenv("TENANTSEAL_ALLOW_PLAINTEXT_LOOPBACK", allow)
			r := run(t, "migrate", "version", "--connect-timeout", "5s", "--dsn", tc.dsn)
			if tc.want == "" {
				if r.code != 0 {
					t.Fatalf("got %v, want exit 0", r)
				}
				return
			}
			wantFailure(t, r, 1, tc.want)
			if pw := owner.Get(dsn.Password); strings.Contains(r.stderr, pw) {
				t.Errorf("stderr %q reveals the password", r.stderr)
			}
		})
	}
}
