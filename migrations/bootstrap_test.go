package migrations_test

import (
	"net/url"
	"strings"
	"testing"

	"github.com/tenantseal/tenantseal/integration"
	"github.com/tenantseal/tenantseal/migrations"
)

func TestBootstrapKeepsConnectionSettings(t *testing.T) {
	t.Parallel()
	s := integration.SharedCluster().Server
	u, err := url.Parse(s.SuperDSN)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("connect_timeout", "7")
	u.RawQuery = q.Encode()
	prefix := "bk" + newUUID()[:8]
	res, err := migrations.Bootstrap(testContext(t), u.String(), migrations.BootstrapOptions{
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
	if strings.Contains(res.String(), u.User.String()) {
		t.Error("BootstrapResult.String shows credentials")
	}
	mustConn(t, res.OwnerDSN) // the generated DSN works
}
