package cli

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/tenantseal/tenantseal/keys/pgstore"
	"github.com/tenantseal/tenantseal/rekey"

	"github.com/tenantseal/tenantseal"

	"github.com/tenantseal/tenantseal/db"
	"github.com/tenantseal/tenantseal/keys"
)

func (r *keysRun) create(ctx context.Context) error {
	o, err := r.connect(ctx)
	if err != nil {
		return err
	}
	defer o.close(ctx)
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

func (r *keysRun) rotate(ctx context.Context) error {
	o, err := r.connect(ctx)
	if err != nil {
		return err
	}
	defer o.close(ctx)
	ids, err := r.tenants(ctx, o)
	if err != nil || len(ids) == 0 {
		return err
	}
	// Reads the rotated keysets back as the owner, to print the new primary key ids.
	kr, err := keys.NewKeyring(keys.Config{KEK: o.kek, Loader: pgstore.Loader(o.conn)})
	if err != nil {
		return err
	}
	for _, id := range ids {
		if err := o.admin.Rotate(ctx, id); err != nil {
			return r.tenantError(id, err)
		}
		// The operator acts for the tenant it names: the keyring reads that tenant's keysets only.
		as := tenantseal.WithPrincipal(ctx, tenantseal.Principal{Tenant: id, Subject: "tenantseal keys rotate"})
		if a, p, err := kr.PrimaryKeyIDs(as); err == nil {
			r.s.printf("tenant %s: rotated; new primary keys: aead %d, prf %d\n", id, a, p)
		} else {
			r.s.printf("tenant %s: rotated\n", id)
		}
	}
	r.s.printf("next: once every app process has reloaded the keysets (its keyring cache TTL, %v unless configured), run 'tenantseal keys reencrypt %s', then 'tenantseal keys retire %s'\n",
		keys.DefaultCacheTTL, r.selector(), r.selector())
	return nil
}

// appSide connects as the owner (with the KEK), lists the selected tenants and opens a pool as the app
// role, which reencrypt and retire read rows through. With no tenant selected it returns none and
// nothing to close.
func (r *keysRun) appSide(ctx context.Context) (*ownerSide, []tenantseal.TenantID, *db.Pool, error) {
	app, err := r.app.resolve()
	if err != nil {
		return nil, nil, nil, err
	}
	o, err := r.connect(ctx)
	if err != nil {
		return nil, nil, nil, err
	}
	ids, err := r.tenants(ctx, o)
	if err != nil || len(ids) == 0 {
		o.close(ctx)
		return nil, nil, nil, err
	}
	pool, err := r.app.open(ctx, o.conn, app)
	if err != nil {
		o.close(ctx)
		return nil, nil, nil, err
	}
	return o, ids, pool, nil
}

func (r *keysRun) reencrypt(ctx context.Context) error {
	o, ids, pool, err := r.appSide(ctx)
	if err != nil || len(ids) == 0 {
		return err
	}
	defer o.close(ctx)
	defer pool.Close()
	kr, err := keys.NewKeyring(keys.Config{KEK: o.kek, Loader: pgstore.Loader(pool)})
	if err != nil {
		return err
	}

	tty := isTerminal(r.s.stderr)
	var raced int64
	var tampered []string
	for _, id := range ids {
		tctx := tenantseal.WithPrincipal(ctx, tenantseal.Principal{Tenant: id, Subject: "tenantseal-reencrypt"})
		bar := newProgress(r.s.stderr, tty, "tenant "+id.String(), time.Now)
		st, err := rekey.Reencrypt(tctx, pool, kr, rekey.ReencryptOptions{BatchSize: r.batch, Progress: bar.update})
		bar.finish()
		stats := fmt.Sprintf("tenant %s: examined %d, rewritten %d, raced %d, tampered %d", id, st.Examined, st.Rewritten, st.Raced, st.Tampered)
		if err != nil && !errors.Is(err, keys.ErrTampered) {
			if st.Examined > 0 {
				r.s.printf("%s (stopped: run again to resume)\n", stats)
			}
			return r.tenantError(id, err)
		}
		r.s.printf("%s\n", stats)
		raced += st.Raced
		if st.Tampered > 0 {
			tampered = append(tampered, fmt.Sprintf("%d of tenant %s", st.Tampered, id))
		}
	}
	if raced > 0 {
		r.s.printf("%d rows changed while being re-encrypted and were left as the application wrote them: run 'tenantseal keys reencrypt %s' again to move those still under an old key\n",
			raced, r.selector())
	}
	if len(tampered) > 0 {
		return fmt.Errorf("keys reencrypt: rows that do not decrypt were left untouched (%s): they were altered, copied from another row or tenant, or are under a retired key; retire refuses while they name an old key",
			strings.Join(tampered, ", "))
	}
	if raced == 0 {
		r.s.printf("next: 'tenantseal keys retire %s'\n", r.selector())
	}
	return nil
}

func (r *keysRun) retire(ctx context.Context) error {
	o, ids, pool, err := r.appSide(ctx)
	if err != nil || len(ids) == 0 {
		return err
	}
	defer o.close(ctx)
	defer pool.Close()

	var refused []error
	for _, id := range ids {
		// Usage reads through row-level security, as the app role: it counts what the application sees.
		tctx := tenantseal.WithPrincipal(ctx, tenantseal.Principal{Tenant: id, Subject: "tenantseal-retire"})
		u, err := rekey.Usage(tctx, pool)
		if err != nil {
			return r.tenantError(id, err)
		}
		retired, err := o.admin.Retire(tctx, id, u)
		if errors.Is(err, keys.ErrKeyInUse) {
			refused = append(refused, err)
			if len(ids) > 1 {
				r.s.printf("tenant %s: nothing retired: %s\n", id, unprefixed(err.Error()))
			}
			continue
		}
		if err != nil {
			return r.tenantError(id, err)
		}
		if len(retired) == 0 {
			r.s.printf("tenant %s: no key to retire\n", id)
		} else {
			r.s.printf("tenant %s: retired keys %s\n", id, joinIDs(retired))
		}
	}
	switch len(refused) {
	case 0:
		return nil
	case 1:
		return fmt.Errorf("keys retire: %w", refused[0])
	default:
		return fmt.Errorf("keys retire: %d tenants still have rows under old keys (see above): run 'tenantseal keys reencrypt %s' first", len(refused), r.selector())
	}
}
