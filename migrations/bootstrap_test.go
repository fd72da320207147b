package migrations_test

import (
	"net/url"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/tenantseal/tenantseal/internal/pgtest"
	"github.com/tenantseal/tenantseal/migrations"
)

func TestBootstrapKeepsConnectionSettings(t *testing.T) {
	t.Parallel()
	s := pgtest.SharedCluster(t).Server
	// The harness's connection string is a URL, or keyword/value under TENANTSEAL_TEST_DSN.
	dsn := s.SuperDSN + " connect_timeout=7"
	if u, err := url.Parse(s.SuperDSN); err == nil && strings.Contains(s.SuperDSN, "://") {
		q := u.Query()
		q.Set("connect_timeout", "7")
		u.RawQuery = q.Encode()
		dsn = u.String()
	}
	prefix := "bk" + newUUID()[:8]
	res, err := migrations.Bootstrap(testContext(t), dsn, migrations.BootstrapOptions{
		Database: prefix + "_db", RolePrefix: prefix, SkipMigrate: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c := mustConn(t, s.SuperDSN)
		ctx := testContext(t)
		c.Exec(ctx, "DROP DATABASE "+prefix+"_db WITH (FORCE)")
		for _, r := range []string{res.Roles.Owner, res.Roles.App, res.Roles.Auditor} {
			c.Exec(ctx, "DROP ROLE "+r)
		}
	})
	for _, dsn := range []string{res.OwnerDSN, res.AppDSN, res.AuditorDSN} {
		got, err := url.Parse(dsn)
		if err != nil {
			t.Fatal(err)
		}
		if got.Query().Get("connect_timeout") != "7" || got.Query().Get("sslmode") != "disable" {
			t.Errorf("got settings %q, want connect_timeout=7 and sslmode=disable carried over", got.RawQuery)
		}
	}
	if cfg, err := pgx.ParseConfig(dsn); err != nil || strings.Contains(res.String(), cfg.Password) {
		t.Errorf("BootstrapResult.String shows credentials (%v)", err)
	}
	mustConn(t, res.OwnerDSN) // the generated DSN works
}
