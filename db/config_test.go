package db_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tenantseal/tenantseal/db"
)

func FuzzParseContextKey(f *testing.F) {
	f.Add("k1:" + strings.Repeat("ab", 32))
	f.Add("k1:" + strings.Repeat("ab", 31))
	f.Add("K1:" + strings.Repeat("ab", 32))
	f.Add(":")
	f.Add("k1:zz")
	f.Fuzz(func(t *testing.T, s string) {
		k, err := db.ParseContextKey(s)
		if err != nil {
			if strings.Contains(err.Error(), s) && len(s) > 8 {
				t.Errorf("error %q repeats the input, which may hold a secret", err)
			}
			return
		}
		if len(k.Secret) < 32 || k.ID == "" {
			t.Errorf("accepted %q as %v with a %d-byte secret", s, k, len(k.Secret))
		}
		// Neither String nor %v nor %#v shows the secret.
		for _, out := range []string{k.String(), fmt.Sprintf("%v", k), fmt.Sprintf("%#v", k), fmt.Sprintf("%+v", k)} {
			if strings.Contains(strings.ToLower(out), fmt.Sprintf("%x", k.Secret[:8])) {
				t.Errorf("formatted key %q shows the secret", out)
			}
		}
	})
}

// The simple protocol writes parameters into the statement text, where every session of the role reads
// the tenant context token (pg_stat_activity): Open refuses it, however it is asked for, before it
// connects.
func TestOpenRefusesTheSimpleProtocol(t *testing.T) {
	const dsn = "postgres://app:pw@127.0.0.1:1/db"
	for _, tc := range []struct {
		name string
		dsn  string
		mode pgx.QueryExecMode
		want error
	}{
		{"Config.ExecMode", dsn, pgx.QueryExecModeSimpleProtocol, db.ErrUnsafeExecMode},
		{"default_query_exec_mode in the connection string", dsn + "?default_query_exec_mode=simple_protocol", 0, db.ErrUnsafeExecMode},
		{"ExecMode overrides a safe connection string", dsn + "?default_query_exec_mode=cache_describe", pgx.QueryExecModeSimpleProtocol, db.ErrUnsafeExecMode},
		{"cache_describe, for pgbouncer", dsn + "?default_query_exec_mode=cache_describe", 0, nil},
		{"exec", dsn, pgx.QueryExecModeExec, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := db.ParseConfig(tc.dsn)
			if err != nil {
				t.Fatal(err)
			}
			cfg.SigningKey = db.ContextKey{ID: "k1", Secret: make([]byte, 32)}
			cfg.ExecMode = tc.mode
			cfg.PoolConfig.ConnConfig.ConnectTimeout = 100 * time.Millisecond
			p, err := db.Open(t.Context(), cfg)
			if p != nil {
				p.Close()
			}
			switch {
			case tc.want != nil && !errors.Is(err, tc.want):
				t.Errorf("got %v, want %v", err, tc.want)
			case tc.want != nil && !strings.Contains(err.Error(), "cache_describe"):
				t.Errorf("error %q does not name the safe modes", err)
			case tc.want == nil && errors.Is(err, db.ErrUnsafeExecMode):
				t.Errorf("got %v, want the mode accepted (and no server to reach)", err)
			}
		})
	}
}
