package bench

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
)

// The verifiers of tenant contexts a bench database can run (tenantseal.select_verifier).
const (
	verifierC       = "c"
	verifierPLpgSQL = "plpgsql"
)

// verifierOf asks which verifier ds's database runs now.
func (ds *dataset) verifierOf(ctx context.Context) (string, error) {
	c, err := pgx.Connect(ctx, ds.res.OwnerDSN)
	if err != nil {
		return "", err
	}
	defer c.Close(context.WithoutCancel(ctx))
	var v string
	err = c.QueryRow(ctx, "SELECT tenantseal.verifier()").Scan(&v)
	return v, err
}

// useVerifier makes ds's database run verifier v, unless it does already. Without the extension every
// variant runs the plpgsql verifier (the report says so).
func (ds *dataset) useVerifier(ctx context.Context, v string) error {
	if v == "" || v == ds.verifier || v == verifierC && !ds.hasC {
		return nil
	}
	c, err := pgx.Connect(ctx, ds.res.OwnerDSN)
	if err != nil {
		return err
	}
	defer c.Close(context.WithoutCancel(ctx))
	if _, err := c.Exec(ctx, "SELECT tenantseal.select_verifier($1)", v); err != nil {
		return fmt.Errorf("bench: select the %s verifier: %w", v, err)
	}
	ds.verifier = v
	return nil
}

// before returns a variant's preparation: the verifier it measures.
func (ds *dataset) before(v string) func(context.Context) error {
	return func(ctx context.Context) error { return ds.useVerifier(ctx, v) }
}

// setTokenCache sets tenantseal_verify.token_cache_size on the whole server (size < 0: back to its
// default) and waits until new sessions see it.
func setTokenCache(ctx context.Context, superDSN string, size int) error {
	c, err := pgx.Connect(ctx, superDSN)
	if err != nil {
		return err
	}
	defer c.Close(context.WithoutCancel(ctx))
	stmt := "ALTER SYSTEM RESET tenantseal_verify.token_cache_size"
	want := "1024"
	if size >= 0 {
		stmt = "ALTER SYSTEM SET tenantseal_verify.token_cache_size = " + strconv.Itoa(size)
		want = strconv.Itoa(size)
	}
	// The setting exists once the library is loaded in the session.
	for _, s := range []string{"LOAD 'tenantseal_verify'", stmt, "SELECT pg_reload_conf()"} {
		if _, err := c.Exec(ctx, s); err != nil {
			return fmt.Errorf("bench: %s: %w", s, err)
		}
	}
	for range 100 {
		n, err := pgx.Connect(ctx, superDSN)
		if err != nil {
			return err
		}
		var got string
		_, err = n.Exec(ctx, "LOAD 'tenantseal_verify'")
		if err == nil {
			err = n.QueryRow(ctx, "SELECT current_setting('tenantseal_verify.token_cache_size')").Scan(&got)
		}
		n.Close(context.WithoutCancel(ctx))
		if err != nil {
			return err
		}
		if got == want {
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("bench: tenantseal_verify.token_cache_size stays at its old value")
}
