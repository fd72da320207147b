package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/tenantseal/tenantseal/db"
)

// appFlags are the flags of the commands that act as the app role as well as the owner: they open a
// db.Pool, so that row-level security and the signed tenant context apply to them as to the application.
type appFlags struct {
	dsn    string
	prefix string
	conn   *connFlags
}

// appConn registers --app-dsn and --prefix, for the subcommands named in with.
func (f *flags) appConn(conn *connFlags, with string) *appFlags {
	a := &appFlags{conn: conn}
	f.StringVar(&a.dsn, "app-dsn", "", "with "+with+": app role connection string (default $"+keyAppDSN+", then the secrets file)")
	f.StringVar(&a.prefix, "prefix", "", "with "+with+": role name prefix (default: the database's, as the owner connection tells it)")
	return a
}

// appConfig is what opening the app pool needs, resolved before anything connects.
type appConfig struct {
	dsn string
	key db.ContextKey
}

// resolve finds the app connection string (--app-dsn, $TENANTSEAL_APP_DSN, the secrets file) and the
// context key that signs the tenant context ($TENANTSEAL_CONTEXT_KEY, the secrets file).
func (a *appFlags) resolve() (appConfig, error) {
	name := a.conn.f.name
	var sf *secretsFile
	fromFile := func(key string) (string, error) {
		if sf == nil {
			var err error
			sf, err = readSecrets(a.conn.secrets)
			switch {
			case errors.Is(err, os.ErrNotExist) && !a.conn.f.set("secrets"):
				sf = &secretsFile{}
			case err != nil:
				return "", err
			}
		}
		return sf.get(key), nil
	}

	dsn := a.dsn
	if dsn == "" {
		dsn = os.Getenv(keyAppDSN)
	}
	if dsn == "" {
		v, err := fromFile(keyAppDSN)
		if err != nil {
			return appConfig{}, err
		}
		if dsn = v; dsn == "" {
			return appConfig{}, usageErrorf("%s: no app connection string: pass --app-dsn, set $%s, or add a %s line to the secrets file %s", name, keyAppDSN, keyAppDSN, a.conn.secrets)
		}
	}
	dsn, err := a.conn.prepare(dsn)
	if err != nil {
		return appConfig{}, err
	}

	ks := os.Getenv(keyContextKey)
	source := "$" + keyContextKey
	if ks == "" {
		if ks, err = fromFile(keyContextKey); err != nil {
			return appConfig{}, err
		}
		source = a.conn.secrets
	}
	if ks == "" {
		return appConfig{}, usageErrorf("%s: no context key to sign the tenant context: set $%s or add a %s line (bootstrap writes it) to the secrets file %s", name, keyContextKey, keyContextKey, a.conn.secrets)
	}
	if _, secret, ok := strings.Cut(ks, ":"); ok {
		a.conn.f.s.secret(strings.TrimSpace(secret))
	}
	key, err := db.ParseContextKey(ks)
	if err != nil {
		return appConfig{}, fmt.Errorf("%s from %s: %w", keyContextKey, source, err)
	}
	return appConfig{dsn: dsn, key: key}, nil
}

// open opens the app pool. Without --prefix the role prefix is the database's own, as the migrations
// tell it.
func (a *appFlags) open(ctx context.Context, owner *pgx.Conn, cfg appConfig) (*db.Pool, error) {
	prefix := a.prefix
	if prefix == "" {
		var err error
		if prefix, err = db.DatabaseRolePrefix(ctx, owner); err != nil {
			return nil, fmt.Errorf("cannot tell the role prefix (pass --prefix): %w", ownerError(err))
		}
	} else if err := db.CheckRolePrefix(ctx, owner, prefix); err != nil {
		// The pool refuses members of <prefix>_owner: a prefix that names no role would make that check
		// vacuous.
		return nil, fmt.Errorf("--prefix %q: %w (give the prefix that bootstrap used)", prefix, err)
	}
	pc, err := db.ParseConfig(cfg.dsn)
	if err != nil {
		return nil, err
	}
	pc.SigningKey = cfg.key
	pc.RolePrefix = prefix
	pc.MeterProvider, pc.Logger = a.conn.f.s.meters, a.conn.f.s.logger()
	pc.AllowPlaintextLoopback = allowPlaintextLoopback()
	pool, err := db.Open(ctx, pc)
	if err != nil {
		return nil, fmt.Errorf("open the app pool: %w", err)
	}
	return pool, nil
}
