package isolation

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
)

// What the suite creates, it names after its run: its tenants are called "tenantseal-isolation run
// <id>", its probe schema tenantseal_isolation_probe_<id>, its retired context key tsretired-<id>. While
// a run is alive, its superuser session holds the advisory lock of its id. A run that was killed (no
// deferred cleanup ran) leaves its objects behind and its lock free: the next run removes them.

// mark is the name of the suite's tenants in tenantseal.tenants during this run.
func (s *suite) mark() string { return subject + " run " + s.runID }

// runOf returns the run id in a tenant name that the suite gave, and whether it is one.
func runOf(name string) (string, bool) {
	if name == subject {
		return "", true // before runs had ids
	}
	id, ok := strings.CutPrefix(name, subject+" run ")
	return id, ok
}

// claim takes this run's advisory lock on the superuser session.
func (s *suite) claim(ctx context.Context) error {
	if _, err := s.super.Exec(ctx, "SELECT pg_advisory_lock(hashtext($1), hashtext($2))", subject, s.runID); err != nil {
		return fmt.Errorf("isolation: take the run's lock: %w", err)
	}
	return nil
}

// sweep removes what runs that are no longer alive left behind in the database: their tenants with
// their rows in the discovered tables and their keysets, their probe schemas and retired keys. It
// returns how many objects it removed.
func (s *suite) sweep(ctx context.Context) (int, error) {
	dead := map[string]bool{}
	isDead := func(run string) (bool, error) {
		if run == s.runID {
			return false, nil
		}
		if d, ok := dead[run]; ok {
			return d, nil
		}
		if run == "" {
			dead[run] = true
			return true, nil
		}
		var free bool
		if err := s.super.QueryRow(ctx, "SELECT pg_try_advisory_lock(hashtext($1), hashtext($2))", subject, run).Scan(&free); err != nil {
			return false, err
		}
		dead[run] = free
		return free, nil
	}
	defer func() {
		for run, d := range dead {
			if d && run != "" {
				_, _ = s.super.Exec(context.WithoutCancel(ctx), "SELECT pg_advisory_unlock(hashtext($1), hashtext($2))", subject, run)
			}
		}
	}()
	var keys, handles []string
	if s.cat.tenants {
		keyCol := "id::text"
		if s.cat.tenantKeys {
			keyCol = "key"
		}
		rows, err := s.super.Query(ctx, "SELECT "+keyCol+", id::text, name FROM tenantseal.tenants WHERE name = $1 OR name LIKE $2",
			subject, subject+" run %")
		if err != nil {
			return 0, fmt.Errorf("isolation: find earlier runs' tenants: %w", err)
		}
		type left struct{ key, handle, name string }
		var found []left
		var l left
		if _, err := pgx.ForEachRow(rows, []any{&l.key, &l.handle, &l.name}, func() error {
			found = append(found, l)
			return nil
		}); err != nil {
			return 0, fmt.Errorf("isolation: find earlier runs' tenants: %w", err)
		}
		for _, l := range found {
			run, _ := runOf(l.name)
			d, err := isDead(run)
			if err != nil {
				return 0, fmt.Errorf("isolation: %w", err)
			}
			if d {
				keys, handles = append(keys, l.key), append(handles, l.handle)
			}
		}
	}
	n := len(keys)
	if n > 0 {
		if err := s.remove(ctx, s.super, keys, handles); err != nil {
			return 0, err
		}
	}
	for run, d := range dead {
		if !d || run == "" {
			continue
		}
		for _, g := range s.cat.globals {
			tag, err := s.super.Exec(ctx, fmt.Sprintf("DELETE FROM %s x WHERE strpos(x::text, $1) > 0", g.qname()), "ts"+run)
			if err != nil {
				return n, fmt.Errorf("isolation: remove an earlier run's copies from %s: %w", g, err)
			}
			n += int(tag.RowsAffected())
		}
	}
	schemas, err := strs(ctx, s.super, `SELECT nspname::text FROM pg_namespace WHERE starts_with(nspname, $1)`, probePrefix+"_")
	if err != nil {
		return n, fmt.Errorf("isolation: find earlier runs' probe schemas: %w", err)
	}
	for _, sc := range schemas {
		if d, err := isDead(strings.TrimPrefix(sc, probePrefix+"_")); err != nil || !d {
			continue
		}
		if _, err := s.super.Exec(ctx, "DROP SCHEMA IF EXISTS "+ident(sc)+" CASCADE"); err != nil {
			return n, fmt.Errorf("isolation: drop an earlier run's probe schema %s: %w", sc, err)
		}
		n++
	}
	if s.cat.ctxKeys {
		kids, err := strs(ctx, s.super, "SELECT kid FROM tenantseal.context_keys WHERE starts_with(kid, 'tsretired-')")
		if err != nil {
			return n, fmt.Errorf("isolation: find earlier runs' retired keys: %w", err)
		}
		for _, kid := range kids {
			if d, err := isDead(strings.TrimPrefix(kid, "tsretired-")); err != nil || !d {
				continue
			}
			if _, err := s.super.Exec(ctx, "DELETE FROM tenantseal.context_keys WHERE kid = $1", kid); err != nil {
				return n, fmt.Errorf("isolation: remove an earlier run's retired key: %w", err)
			}
			n++
		}
	}
	return n, nil
}

// remove deletes the rows of the tenants with the given keys (and handles) from every discovered table,
// their keysets and their registration, with triggers and foreign key checks off.
func (s *suite) remove(ctx context.Context, conn *pgx.Conn, keys, handles []string) error {
	err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		if err := s.replicaRole(ctx, tx); err != nil {
			return err
		}
		all := s.cat.all()
		for i := len(all) - 1; i >= 0; i-- {
			t := all[i]
			if _, err := tx.Exec(ctx, fmt.Sprintf("DELETE FROM %s WHERE %s::text = ANY($1)", t.qname(), ident(t.tenantCol)), keys); err != nil {
				return fmt.Errorf("%s: %w", t, err)
			}
		}
		if s.cat.keysets {
			if _, err := tx.Exec(ctx, "DELETE FROM tenantseal.tenant_keysets WHERE tenant_id = ANY($1::uuid[])", handles); err != nil {
				return fmt.Errorf("keysets: %w", err)
			}
		}
		if s.cat.tenants {
			if _, err := tx.Exec(ctx, "DELETE FROM tenantseal.tenants WHERE id = ANY($1::uuid[])", handles); err != nil {
				return fmt.Errorf("tenants: %w", err)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("isolation: clean up: %w", err)
	}
	return nil
}

// cleanup removes everything the suite wrote: its tenants' rows, keysets and registrations, its probe
// objects and keys, and refreshes the materialized views it refreshed. It runs on a connection of its
// own: the suite's may have died with a cancelled statement.
func (s *suite) cleanup(ctx context.Context) error {
	conn, err := pgx.Connect(ctx, s.cfg.SuperDSN)
	if err != nil {
		return fmt.Errorf("isolation: clean up: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var errs []error
	if len(s.tenants) > 0 && s.cat != nil {
		errs = append(errs, s.remove(ctx, conn, s.tenantStrings(), s.handles()))
		errs = append(errs, s.removeCopies(ctx, conn))
	}
	if s.probeSchema != "" {
		_, err := conn.Exec(ctx, "DROP SCHEMA IF EXISTS "+ident(s.probeSchema)+" CASCADE")
		errs = append(errs, err)
	}
	if s.retiredKid != "" {
		_, err := conn.Exec(ctx, "DELETE FROM tenantseal.context_keys WHERE kid = $1", s.retiredKid)
		errs = append(errs, err)
	}
	for _, v := range s.refreshed {
		_, err := conn.Exec(ctx, "REFRESH MATERIALIZED VIEW "+v)
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("isolation: clean up: %w", err)
	}
	return nil
}

// removeCopies deletes from the tables without a tenant column the rows that hold a marker of this run
// (they all start with "ts" and the run's id): copies that triggers made of the suite's rows.
func (s *suite) removeCopies(ctx context.Context, conn *pgx.Conn) error {
	// The rows are found first and deleted whole one by one: a DELETE whose condition casts the row
	// to text (a STABLE function of its columns) is refused on a Citus reference table.
	for _, g := range s.cat.globals {
		copies, err := strs(ctx, conn, fmt.Sprintf("SELECT x::text FROM %s x WHERE strpos(x::text, $1) > 0", g.qname()), "ts"+s.runID)
		if err != nil {
			return fmt.Errorf("%s: %w", g, err)
		}
		for _, c := range copies {
			if _, err := conn.Exec(ctx, fmt.Sprintf("DELETE FROM %[1]s x WHERE x = $1::%[1]s", g.qname()), c); err != nil {
				return fmt.Errorf("%s: %w", g, err)
			}
		}
	}
	return nil
}
