package pgtest_test

import (
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/tenantseal/tenantseal/internal/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// TestConnectionStringsVerifyFull: every connection string of a test database verifies the server's
// certificate and name, and its session runs over TLS.
func TestConnectionStringsVerifyFull(t *testing.T) {
	t.Parallel()
	d := pgtest.NewDatabase(t)
	for name, dsn := range map[string]string{"super": d.SuperDSN, "owner": d.OwnerDSN, "app": d.AppDSN,
		"auditor": d.AuditorDSN, "audit writer": d.AuditWriterDSN} {
		cfg, err := pgx.ParseConfig(dsn)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if tc := cfg.TLSConfig; tc == nil || tc.InsecureSkipVerify || tc.ServerName != cfg.Host || len(cfg.Fallbacks) != 0 {
			t.Errorf("%s: got a TLS config that does not verify the server's certificate and name (or has fallbacks), want verify-full", name)
		}
		var ssl bool
		if err := pgtest.Conn(t, dsn).QueryRow(pgtest.Context(t), "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()").Scan(&ssl); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if !ssl {
			t.Errorf("%s: got a session without TLS, want TLS", name)
		}
	}
}
