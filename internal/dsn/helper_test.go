package dsn_test

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// pgconnView is what pgconn makes of a connection string, in comparable form.
type pgconnView struct {
	Host, Database, User, Password string
	Port                           uint16
	ConnectTimeout                 time.Duration
	RuntimeParams                  map[string]string
	Fallbacks                      []string
	TLS                            bool
}

func view(cfg *pgconn.Config) pgconnView {
	v := pgconnView{Host: cfg.Host, Port: cfg.Port, Database: cfg.Database, User: cfg.User, Password: cfg.Password,
		ConnectTimeout: cfg.ConnectTimeout, RuntimeParams: cfg.RuntimeParams, TLS: cfg.TLSConfig != nil}
	for _, f := range cfg.Fallbacks {
		v.Fallbacks = append(v.Fallbacks, f.Host+":"+strconv.Itoa(int(f.Port)))
		if f.TLSConfig != nil {
			v.Fallbacks = append(v.Fallbacks, "tls")
		}
	}
	return v
}

func mustPgconn(t testing.TB, connString string) pgconnView {
	t.Helper()
	cfg, err := pgconn.ParseConfig(connString)
	if err != nil {
		t.Fatalf("pgconn.ParseConfig(%q): %v", connString, err)
	}
	return view(cfg)
}

// pgxForm is connString as pgx itself reads it: golang-migrate's schemes are postgres:// to pgx.
func pgxForm(connString string) string {
	for _, p := range []string{"pgx5://", "pgx4://", "pgx://"} {
		if rest, ok := strings.CutPrefix(connString, p); ok {
			return "postgres://" + rest
		}
	}
	return connString
}
