package cli

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/tenantseal/tenantseal"
	"github.com/tenantseal/tenantseal/db"
	"github.com/tenantseal/tenantseal/keys"
	"github.com/tenantseal/tenantseal/keys/pgstore"
	"github.com/tenantseal/tenantseal/rekey"
)

func (r *keysRun) createWith(ctx context.Context, o *ownerSide) error {
	if r.all {
		rows, err := o.conn.Query(ctx, `SELECT t.key FROM tenantseal.tenants t
			WHERE t.status <> 'deleted' AND t.shredded_at IS NULL
			  AND NOT EXISTS (SELECT 1 FROM tenantseal.tenant_keysets k WHERE k.tenant_id = t.id)
			ORDER BY t.created_at, t.id`)
		if err != nil {
			return fmt.Errorf("keys create: %w", ownerError(err))
		}
		ids, err := pgx.CollectRows(rows, pgx.RowTo[tenantseal.TenantID])
		if err != nil {
			return fmt.Errorf("keys create: %w", ownerError(err))
		}
		for _, id := range ids {
			if err := o.admin.CreateKeysets(ctx, id); err != nil {
				return r.tenantError(id, err)
			}
			r.s.printf("tenant %s: created its keysets (aead, prf), wrapped by %s\n", id, o.kek.ID)
		}
		if len(ids) == 0 {
			r.s.printf("every tenant has its keysets: nothing to do\n")
		}
		return nil
	}
	if err := requireTenant(ctx, o.conn, "keys create", r.tenant); err != nil {
		return err
	}
	var n int
	if err := o.conn.QueryRow(ctx, "SELECT count(*) FROM tenantseal.tenant_keysets WHERE tenant_id = $1", r.tenant).Scan(&n); err != nil {
		return fmt.Errorf("keys create: %w", ownerError(err))
	}
	if n == 2 {
		r.s.printf("tenant %s already has its keysets: nothing to do\n", r.tenant)
		return nil
	}
	if err := o.admin.CreateKeysets(ctx, r.tenant); err != nil {
		return r.tenantError(r.tenant, err)
	}
	r.s.printf("tenant %s: created its keysets (aead, prf), wrapped by %s\n", r.tenant, o.kek.ID)
	return nil
}

func (r *keysRun) rotateWith(ctx context.Context, o *ownerSide) error {
	ids, err := r.tenants(ctx, o)
	if err != nil || len(ids) == 0 {
		return err
	}
	for _, id := range ids {
		added, err := o.admin.Rotate(o.ctx, id)
		if err != nil {
			return r.tenantError(id, err)
		}
		r.s.printf("tenant %s: rotated; new primary keys: %s\n", id, added)
	}
	r.s.info("next: 'tenantseal keys reencrypt %s' moves the stored values under the new keys; 'tenantseal keys retire %s' then disables the old ones once no application cache can still encrypt under them ('tenantseal keys status' says when)\n",
		r.selector(), r.selector())
	return nil
}

// owned runs fn with the owner side (the connection, the checked KEK, the audit log), closed after it.
func (r *keysRun) owned(ctx context.Context, fn func(context.Context, *ownerSide) error) error {
	o, err := r.connect(ctx)
	if err != nil {
		return err
	}
	return o.close(ctx, fn(ctx, o))
}

// withApp runs fn with the owner side, the selected tenants and a pool as the app role, which
// reencrypt, retire and destroy read rows through. With no tenant selected fn does not run.
func (r *keysRun) withApp(ctx context.Context, fn func(context.Context, *ownerSide, []tenantseal.TenantID, *db.Pool) error) error {
	app, err := r.app.resolve()
	if err != nil {
		return err
	}
	return r.owned(ctx, func(ctx context.Context, o *ownerSide) error {
		ids, err := r.tenants(ctx, o)
		if err != nil || len(ids) == 0 {
			return err
		}
		pool, err := r.app.open(ctx, o.conn, app)
		if err != nil {
			return err
		}
		defer pool.Close()
		return fn(ctx, o, ids, pool)
	})
}

// keyring returns a Keyring over the app pool that opens tenants' own KEKs with the build's KMS clients
// and records unreadable values in the audit log.
func (r *keysRun) keyring(ctx context.Context, o *ownerSide, pool *db.Pool) (*keys.Keyring, error) {
	clients := r.s.kmsClients(ctx)
	return keys.NewKeyring(keys.Config{KEK: o.kek, Loader: pgstore.Loader(pool), Recorder: o.log.w, MeterProvider: r.s.meters,
		OpenKEK: func(ctx context.Context, uri string) (*keys.KEK, error) {
			return keys.OpenKEKWith(ctx, uri, clients...)
		}})
}

// asTenant is ctx acting for tenant, as the operator: the app role's row-level security then shows
// that tenant's rows alone.
func asTenant(ctx context.Context, tenant tenantseal.TenantID, sub string) context.Context {
	return tenantseal.WithPrincipal(ctx, tenantseal.Principal{Tenant: tenant, Subject: operatorName() + " (tenantseal keys " + sub + ")"})
}

func (r *keysRun) reencryptWith(ctx context.Context, o *ownerSide, ids []tenantseal.TenantID, pool *db.Pool) error {
	kr, err := r.keyring(ctx, o, pool)
	if err != nil {
		return err
	}
	tty := isTerminal(r.s.stderr) && !r.s.quiet
	var raced int64
	var unreadable []string
	for _, id := range ids {
		tctx := asTenant(ctx, id, "reencrypt")
		bar := newProgress(r.s.stderr, tty, "tenant "+id.String(), time.Now)
		if r.s.quiet {
			bar = nil
		}
		opts := rekey.ReencryptOptions{Lock: o.conn, BatchSize: r.batch}
		if bar != nil {
			opts.Progress = bar.update
		}
		st, err := rekey.Reencrypt(tctx, pool, kr, opts)
		if bar != nil {
			bar.finish()
		}
		stats := fmt.Sprintf("tenant %s: examined %d, rewritten %d, raced %d, unreadable %d", id, st.Examined, st.Rewritten, st.Raced, st.Unreadable)
		if st.Examined > 0 {
			o.log.w.Record(o.ctx, tenantseal.Event{Kind: tenantseal.EventKeyReencrypt, TargetTenant: id, Operation: "reencrypt",
				Detail: strings.TrimPrefix(stats, "tenant "+id.String()+": ")})
		}
		if st.Skipped > 0 || st.Released > 0 {
			stats += fmt.Sprintf(", quarantined left alone %d, released %d", st.Skipped, st.Released)
		}
		if err != nil && !errors.Is(err, rekey.ErrUnreadable) {
			if st.Examined > 0 {
				r.s.printf("%s (stopped: these committed; run again to resume)\n", stats)
			}
			if errors.Is(err, rekey.ErrBusy) {
				return fmt.Errorf("keys reencrypt: %s: wait for it to end (one run per tenant at a time)", unprefixed(strings.TrimPrefix(err.Error(), "rekey: ")))
			}
			return r.tenantError(id, err)
		}
		r.s.printf("%s\n", stats)
		for _, u := range st.Quarantined {
			r.s.printf("tenant %s: unreadable: %s\n", id, u)
		}
		if n := st.Unreadable - int64(len(st.Quarantined)); n > 0 {
			r.s.printf("tenant %s: and %d more unreadable values: 'tenantseal keys quarantine --tenant %s' lists them all\n", id, n, id)
		}
		raced += st.Raced
		if st.Unreadable > 0 {
			unreadable = append(unreadable, fmt.Sprintf("%d of tenant %s", st.Unreadable, id))
		}
	}
	if raced > 0 {
		r.s.info("%d rows changed while being re-encrypted and were left as the application wrote them: run 'tenantseal keys reencrypt %s' again to move those still under an old key\n",
			raced, r.selector())
	}
	if len(unreadable) > 0 {
		return fmt.Errorf("keys reencrypt: values that do not decrypt were left untouched, recorded in the audit log (kind %s) and quarantined (%s); the way forward: restore them from a backup, or re-enable a retired key they name ('keys enable', then 'keys quarantine --release'), and reencrypt again; or accept them as lost: 'keys retire --skip-quarantined'",
			tenantseal.EventTampered, strings.Join(unreadable, ", "))
	}
	if raced == 0 {
		r.s.info("next: 'tenantseal keys retire %s'\n", r.selector())
	}
	return nil
}

func (r *keysRun) retireWith(ctx context.Context, o *ownerSide, ids []tenantseal.TenantID, pool *db.Pool) error {
	var refused []error
	for _, id := range ids {
		// Usage reads through row-level security, as the app role: it counts what the application sees.
		u, err := rekey.Usage(asTenant(ctx, id, "retire"), pool)
		if err != nil {
			return r.tenantError(id, err)
		}
		retired, err := o.admin.Retire(o.ctx, id, u, keys.RetireOptions{SkipQuarantined: r.skip})
		var soon *pgstore.TooSoonError
		switch {
		case errors.As(err, &soon):
			err = fmt.Errorf("tenant %s was rotated at %s: application processes may cache its old keysets, and encrypt under the old keys, until %s (in %s: the database's max_cache_ttl plus write_grace): retire after that, and run 'tenantseal keys reencrypt %s' again first if retire then says rows need the old keys",
				id, soon.PrimarySince.Format(time.RFC3339), soon.After.Format(time.RFC3339), soon.After.Sub(soon.Now).Round(time.Second), r.selector())
		case errors.Is(err, keys.ErrKeyInUse):
			err = fmt.Errorf("%s%s", unprefixed(err.Error()), quarantineHint(u, r.skip, id))
		case err != nil:
			return r.tenantError(id, err)
		}
		if err != nil {
			refused = append(refused, err)
			if len(ids) > 1 {
				r.s.printf("tenant %s: nothing retired: %s\n", id, err)
			}
			continue
		}
		if len(retired) == 0 {
			r.s.printf("tenant %s: no key to retire\n", id)
		} else {
			r.s.printf("tenant %s: retired %s ('tenantseal keys enable --tenant %s' turns them back on until they are destroyed)\n", id, retired, id)
		}
	}
	switch len(refused) {
	case 0:
		return nil
	case 1:
		return fmt.Errorf("keys retire: %w", refused[0])
	default:
		return fmt.Errorf("keys retire: %d tenants kept their old keys (see above)", len(refused))
	}
}

// quarantineHint says, when quarantined values hold a key back, how to go on without them.
func quarantineHint(u keys.KeyUsage, skip bool, id tenantseal.TenantID) string {
	if skip {
		return ""
	}
	for _, m := range []map[uint32]int64{u.QuarantinedAEAD, u.QuarantinedPRF} {
		for _, n := range m {
			if n > 0 {
				return fmt.Sprintf(" (some of them are quarantined as unreadable: 'tenantseal keys quarantine --tenant %s' lists them; --skip-quarantined goes on without them)", id)
			}
		}
	}
	return ""
}

func (r *keysRun) enableWith(ctx context.Context, o *ownerSide) error {
	if err := requireTenant(ctx, o.conn, "keys enable", r.tenant); err != nil {
		return err
	}
	enabled, err := o.admin.Enable(o.ctx, r.tenant, r.keyIDs...)
	if err != nil {
		return r.tenantError(r.tenant, err)
	}
	if len(enabled) == 0 {
		r.s.printf("tenant %s: no disabled key to enable\n", r.tenant)
		return nil
	}
	r.s.printf("tenant %s: enabled %s\n", r.tenant, enabled)
	r.s.info("values under them decrypt again in every process at its next version check; quarantined values they name are examined again after 'tenantseal keys quarantine --tenant %s --release' and a reencrypt\n", r.tenant)
	return nil
}

func (r *keysRun) destroyWith(ctx context.Context, o *ownerSide, _ []tenantseal.TenantID, pool *db.Pool) error {
	u, err := rekey.Usage(asTenant(ctx, r.tenant, "destroy"), pool)
	if err != nil {
		return r.tenantError(r.tenant, err)
	}
	destroyed, err := o.admin.Destroy(o.ctx, r.tenant, u, keys.RetireOptions{SkipQuarantined: r.skip})
	if errors.Is(err, keys.ErrKeyInUse) {
		return fmt.Errorf("keys destroy: %s%s", unprefixed(err.Error()), quarantineHint(u, r.skip, r.tenant))
	}
	if err != nil {
		return r.tenantError(r.tenant, err)
	}
	if len(destroyed) == 0 {
		r.s.printf("tenant %s: no retired key to destroy (retire them first)\n", r.tenant)
		return nil
	}
	r.s.printf("tenant %s: destroyed %s: gone for good\n", r.tenant, destroyed)
	return nil
}
