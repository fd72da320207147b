package pgtest_test

import (
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/tenantseal/tenantseal/internal/pgtest"
)

func TestWithDatabase(t *testing.T) {
	for _, tc := range []struct{ dsn, want string }{
		{"postgres://u:p@h:5432/postgres?sslmode=disable", "o'db"},
		{"host=h port=5432 user=u password=p dbname=postgres sslmode=disable", "o'db"},
		{"host=h user=u", `back\slash`},
	} {
		cfg, err := pgx.ParseConfig(pgtest.WithDatabase(tc.dsn, tc.want))
		if err != nil {
			t.Errorf("%s: %v", tc.dsn, err)
			continue
		}
		if cfg.Database != tc.want || cfg.Host != "h" || cfg.User != "u" {
			t.Errorf("%s: got database %q host %q user %q, want %q on h as u", tc.dsn, cfg.Database, cfg.Host, cfg.User, tc.want)
		}
	}
}
