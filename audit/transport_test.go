package audit_test

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tenantseal/tenantseal"
	"github.com/tenantseal/tenantseal/audit"
	"github.com/tenantseal/tenantseal/internal/dsn"
	"github.com/tenantseal/tenantseal/internal/pgtest"
)

// The audit writer's pool follows the transport rule of db.Open: TLS verify-full, or plaintext to
// loopback when allowed explicitly; the refusal names the host, never the password.
func TestWriterRefusesUnverifiedTransport(t *testing.T) {
	t.Parallel()
	d := pgtest.NewDatabase(t)
	password, _ := dsn.Parse(d.AuditWriterDSN)
	for _, tc := range []struct {
		name     string
		settings []string
		allow    bool
		refused  string // a part of the error; "" when the writer must open and write
	}{
		{"sslmode=disable", []string{"sslmode", "disable", "sslrootcert", ""}, false, "does not use TLS"},
		{"sslmode=require without verification", []string{"sslmode", "require", "sslrootcert", ""}, false, "does not verify"},
		{"plaintext to another host, allowed", []string{"host", "192.0.2.7", "sslmode", "disable"}, true, "loopback hosts only"},
		{"plaintext to loopback, allowed", []string{"sslmode", "disable", "sslrootcert", ""}, true, ""},
		{"verify-full", nil, false, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cfg, err := audit.ParseConfig(pgtest.WithSettings(d.AuditWriterDSN, tc.settings...))
			if err != nil {
				t.Fatal(err)
			}
			cfg.SpoolPath, cfg.Logger, cfg.AllowPlaintextLoopback = filepath.Join(t.TempDir(), "audit.spool"), quiet, tc.allow
			w, err := audit.NewWriter(testContext(t), cfg)
			if tc.refused != "" {
				if err == nil {
					w.Close(testContext(t))
					t.Fatalf("NewWriter succeeded, want it refused (%s)", tc.refused)
				}
				var te *tenantseal.TransportError
				if !errors.As(err, &te) || !errors.Is(err, tenantseal.ErrInsecureTransport) || !strings.Contains(err.Error(), tc.refused) {
					t.Errorf("got %v, want a *tenantseal.TransportError saying %q", err, tc.refused)
				}
				if pw := password.Get(dsn.Password); strings.Contains(err.Error(), pw) {
					t.Errorf("got %q, which reveals the password", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer w.Close(testContext(t))
			ctx := tenantseal.WithPrincipal(testContext(t), tenantseal.Principal{Tenant: tenantseal.TenantIDFromUUID([16]byte{1}), Subject: "s"})
			w.Record(ctx, tenantseal.Event{Kind: tenantseal.EventForeignID, Table: "customers", Operation: "select"})
			if ok, err := w.Flush(ctx); !ok || err != nil {
				t.Fatalf("flush over %s: got %v, %v; want it written", tc.name, ok, err)
			}
		})
	}
}
