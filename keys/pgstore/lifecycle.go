package pgstore

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tenantseal/tenantseal"
	"github.com/tenantseal/tenantseal/keys"
)

// ErrTooSoon means a retirement came before every application cache could have dropped the keysets
// that the last rotation replaced: a process might still encrypt under the key about to be disabled.
// It is returned as a [*TooSoonError], which says when to try again. Use errors.Is.
var ErrTooSoon = errors.New("tenantseal: too soon to retire keys: application caches may still encrypt under them")

// TooSoonError reports a refused retirement and when it will be allowed.
type TooSoonError struct {
	Tenant tenantseal.TenantID
	// PrimarySince is when the current primary keys took over (the last rotation).
	PrimarySince time.Time
	// After is when the retirement will be allowed: PrimarySince plus the longest cache TTL any process
	// may use (tenantseal.key_settings.max_cache_ttl) and the write grace.
	After time.Time
	// Now is the database's time when it refused.
	Now time.Time
}

func (e *TooSoonError) Error() string {
	return fmt.Sprintf("%v: tenant %s was rotated at %s; processes may cache its keysets until %s (in %s)",
		ErrTooSoon, e.Tenant, e.PrimarySince.UTC().Format(time.RFC3339), e.After.UTC().Format(time.RFC3339), e.After.Sub(e.Now).Round(time.Second))
}

// Unwrap returns [ErrTooSoon].
func (e *TooSoonError) Unwrap() error { return ErrTooSoon }

// storedKeyset is one row of tenantseal.tenant_keysets.
type storedKeyset struct {
	tenant  tenantseal.TenantID
	purpose string
	wrapped []byte
	kekID   string
}

// Both lock the rows they read: a concurrent change waits instead of losing an update.
const (
	lockTenantKeysets = `SELECT t.key, k.purpose, k.wrapped, k.kek_id FROM tenantseal.tenant_keysets k
		JOIN tenantseal.tenants t ON t.id = k.tenant_id WHERE k.tenant_id = $1 ORDER BY k.purpose FOR UPDATE OF k`
	// The keysets of the shared KEK: not those of tenants with a KEK of their own.
	lockSharedKeysets = `SELECT t.key, k.purpose, k.wrapped, k.kek_id FROM tenantseal.tenant_keysets k
		JOIN tenantseal.tenants t ON t.id = k.tenant_id
		WHERE k.tenant_id NOT IN (SELECT tenant_id FROM tenantseal.tenant_keks) AND NOT starts_with(t.name, '` + IsolationTenantPrefix + `')
		ORDER BY k.tenant_id, k.purpose FOR UPDATE OF k`
)

// lockKeysets runs one of the statements above.
func lockKeysets(ctx context.Context, tx pgx.Tx, sql string, args ...any) ([]storedKeyset, error) {
	rows, err := tx.Query(ctx, sql, args...)
	if err != nil {
		return nil, wrap("read keysets", err)
	}
	ks, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (storedKeyset, error) {
		var k storedKeyset
		return k, r.Scan(&k.tenant, &k.purpose, &k.wrapped, &k.kekID)
	})
	if err != nil {
		return nil, wrap("read keysets", err)
	}
	return ks, nil
}

// storeKeyset replaces a keyset and bumps its version, which caches compare; newPrimary also restarts
// the clock of the retire rule.
func storeKeyset(ctx context.Context, tx pgx.Tx, k storedKeyset, wrapped []byte, kek *keys.KEK, newPrimary bool) error {
	if _, err := tx.Exec(ctx, `UPDATE tenantseal.tenant_keysets SET wrapped = $3, kek_id = $4, updated_at = now(), version = version + 1,
			primary_since = CASE WHEN $5 THEN clock_timestamp() ELSE primary_since END
		WHERE tenant_id = $1 AND purpose = $2`, k.tenant, k.purpose, wrapped, kek.ID, newPrimary); err != nil {
		return wrap("store "+k.purpose+" keyset", err)
	}
	return nil
}

// KeyChange is what a lifecycle method changed in one keyset.
type KeyChange struct {
	Purpose string   // keys.PurposeAEAD or keys.PurposePRF
	IDs     []uint32 // the keys added, disabled, enabled or destroyed
}

// KeyChanges is what one lifecycle call changed, keyset by keyset.
type KeyChanges []KeyChange

// IDs returns the ids of every key changed.
func (cs KeyChanges) IDs() []uint32 {
	var out []uint32
	for _, c := range cs {
		out = append(out, c.IDs...)
	}
	return out
}

// String describes the changes for an operator: "aead key 123, prf key 456", or "no key".
func (cs KeyChanges) String() string {
	var parts []string
	for _, c := range cs {
		for _, id := range c.IDs {
			parts = append(parts, fmt.Sprintf("%s key %d", c.Purpose, id))
		}
	}
	if len(parts) == 0 {
		return "no key"
	}
	return strings.Join(parts, ", ")
}

// editKeysets runs edit on each of the tenant's keysets, locked, stores what it returns and keeps the
// key history, all in one transaction; before, if set, runs first on the locked keysets and may refuse.
// It records kind through the Admin's Recorder after the commit, with what changed. newPrimary marks
// an edit that makes new primary keys.
func (a *Admin) editKeysets(ctx context.Context, kind tenantseal.EventKind, tenant tenantseal.TenantID, newPrimary bool,
	before func(tx pgx.Tx, ks []storedKeyset) error, edit func(k storedKeyset, kek *keys.KEK) ([]byte, []uint32, error)) (KeyChanges, error) {
	var out KeyChanges
	var role string
	what := strings.ReplaceAll(strings.TrimPrefix(string(kind), "key_"), "_", " ") + " keys"
	err := a.inTx(ctx, what, true, func(tx pgx.Tx) error {
		out = nil
		ks, err := lockKeysets(ctx, tx, lockTenantKeysets, tenant)
		if err != nil {
			return err
		}
		if len(ks) == 0 {
			return a.noKeysets(ctx, tx, tenant)
		}
		if before != nil {
			if err := before(tx, ks); err != nil {
				return err
			}
		}
		kek, _, err := a.tenantKEK(ctx, tx, tenant)
		if err != nil {
			return err
		}
		for _, k := range ks {
			next, ids, err := edit(k, kek)
			if errors.Is(err, keys.ErrKeysetTampered) && k.kekID != kek.ID {
				return fmt.Errorf("%w: tenant %s's %s keyset was wrapped by %s, not %s", keys.ErrKEK, tenant, k.purpose, k.kekID, kek.ID)
			}
			if err != nil {
				return err
			}
			if len(ids) == 0 {
				continue
			}
			if err := storeKeyset(ctx, tx, k, next, kek, newPrimary); err != nil {
				return err
			}
			if err := keyHistory(ctx, tx, kind, tenant, k.purpose, ids); err != nil {
				return err
			}
			out = append(out, KeyChange{Purpose: k.purpose, IDs: ids})
		}
		return tx.QueryRow(ctx, "SELECT current_user").Scan(&role)
	})
	if err != nil {
		return nil, err
	}
	if len(out) > 0 {
		a.record(ctx, tenantseal.Event{Kind: kind, TargetTenant: tenant, Table: "tenantseal.tenant_keysets", Operation: strings.TrimPrefix(string(kind), "key_"),
			Detail: fmt.Sprintf("%s as database role %s", out, role)})
	}
	return out, nil
}

// noKeysets explains a tenant without keysets: shredded, or never given any.
func (a *Admin) noKeysets(ctx context.Context, tx pgx.Tx, tenant tenantseal.TenantID) error {
	var shredded bool
	err := tx.QueryRow(ctx, "SELECT shredded_at IS NOT NULL FROM tenantseal.tenants WHERE id = $1", tenant).Scan(&shredded)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return wrap("read tenant", err)
	}
	if shredded {
		return fmt.Errorf("%w (tenant %s)", keys.ErrShredded, tenant)
	}
	return fmt.Errorf("%w (tenant %s)", keys.ErrNoKeyset, tenant)
}

// keyHistory keeps tenantseal.tenant_keys, the ages and fates of keys, in step with a change.
func keyHistory(ctx context.Context, tx pgx.Tx, kind tenantseal.EventKind, tenant tenantseal.TenantID, purpose string, ids []uint32) error {
	var sql string
	switch kind {
	case tenantseal.EventKeyRotate:
		sql = `INSERT INTO tenantseal.tenant_keys (tenant_id, purpose, key_id) SELECT $1, $2, unnest($3::bigint[]) ON CONFLICT DO NOTHING`
	case tenantseal.EventKeyRetire:
		sql = `INSERT INTO tenantseal.tenant_keys (tenant_id, purpose, key_id, created_at, disabled_at) SELECT $1, $2, unnest($3::bigint[]), NULL, now()
			ON CONFLICT (tenant_id, purpose, key_id) DO UPDATE SET disabled_at = now()`
	case tenantseal.EventKeyEnable:
		sql = `UPDATE tenantseal.tenant_keys SET disabled_at = NULL WHERE tenant_id = $1 AND purpose = $2 AND key_id = ANY($3::bigint[])`
	case tenantseal.EventKeyDestroy:
		sql = `INSERT INTO tenantseal.tenant_keys (tenant_id, purpose, key_id, created_at, destroyed_at) SELECT $1, $2, unnest($3::bigint[]), NULL, now()
			ON CONFLICT (tenant_id, purpose, key_id) DO UPDATE SET destroyed_at = now()`
	default:
		return nil
	}
	wide := make([]int64, len(ids))
	for i, id := range ids {
		wide[i] = int64(id)
	}
	if _, err := tx.Exec(ctx, sql, tenant, purpose, wide); err != nil {
		return wrap("record key history", err)
	}
	return nil
}

// Rotate adds a new primary key to the tenant's AEAD and PRF keysets and returns the new keys. Old keys
// keep decrypting (and old blind indexes keep matching) until re-encryption (package rekey) and
// [Admin.Retire], which waits until no cache can still encrypt under them.
func (a *Admin) Rotate(ctx context.Context, tenant tenantseal.TenantID) (KeyChanges, error) {
	return a.editKeysets(ctx, tenantseal.EventKeyRotate, tenant, true, nil, func(k storedKeyset, kek *keys.KEK) ([]byte, []uint32, error) {
		next, id, err := keys.RotateWrapped(kek, tenant, k.purpose, k.wrapped)
		return next, []uint32{id}, err
	})
}

// Retire disables every enabled, non-primary key of the tenant's keysets that usage (rekey.Usage, run
// for this tenant) shows no stored value needs, and returns the keys it disabled; [Admin.Enable] turns
// them back on. It refuses, changing nothing, with a [*TooSoonError] ([ErrTooSoon]) until every
// application cache can have dropped the keysets of before the last rotation (the database's
// max_cache_ttl plus write_grace since then), with [keys.ErrKeyInUse] while a value still needs a
// non-primary key, and with [tenantseal.ErrTenantMismatch] a usage counted for another tenant.
func (a *Admin) Retire(ctx context.Context, tenant tenantseal.TenantID, usage keys.KeyUsage, opts keys.RetireOptions) (KeyChanges, error) {
	before := func(tx pgx.Tx, ks []storedKeyset) error {
		if !retirable(ks) {
			return nil // nothing to disable: no wait either
		}
		return retireWait(ctx, tx, tenant)
	}
	return a.editKeysets(ctx, tenantseal.EventKeyRetire, tenant, false, before, func(k storedKeyset, kek *keys.KEK) ([]byte, []uint32, error) {
		return keys.RetireWrapped(kek, tenant, k.purpose, k.wrapped, usage, opts)
	})
}

// retirable reports whether any keyset holds an enabled key that is not its primary, reading only what
// the wrapped keysets state in clear: a keyset that says nothing counts as retirable.
func retirable(ks []storedKeyset) bool {
	for _, k := range ks {
		info, err := keys.WrappedKeys(k.wrapped)
		if err != nil {
			return true
		}
		for _, ki := range info {
			if ki.Enabled && !ki.Primary {
				return true
			}
		}
	}
	return false
}

// retireWait fails with a *TooSoonError until the tenant's primary keys are older than the retire wait.
func retireWait(ctx context.Context, tx pgx.Tx, tenant tenantseal.TenantID) error {
	var e TooSoonError
	var ok bool
	if err := tx.QueryRow(ctx, `SELECT max(primary_since), max(primary_since) + tenantseal.key_retire_wait(), now(),
			now() >= max(primary_since) + tenantseal.key_retire_wait()
		FROM tenantseal.tenant_keysets WHERE tenant_id = $1`, tenant).Scan(&e.PrimarySince, &e.After, &e.Now, &ok); err != nil {
		return wrap("read the retire wait", err)
	}
	if ok {
		return nil
	}
	e.Tenant = tenant
	return &e
}

// Enable turns the tenant's disabled keys back on (those of ids, every one when ids is empty) and
// returns them: what undoes [Admin.Retire]. Destroyed keys are gone for good.
func (a *Admin) Enable(ctx context.Context, tenant tenantseal.TenantID, ids ...uint32) (KeyChanges, error) {
	return a.editKeysets(ctx, tenantseal.EventKeyEnable, tenant, false, nil, func(k storedKeyset, kek *keys.KEK) ([]byte, []uint32, error) {
		return keys.EnableWrapped(kek, tenant, k.purpose, k.wrapped, ids)
	})
}

// Destroy removes the tenant's disabled keys from its keysets, key material and all, and returns them:
// values still under them would be lost for good, so it refuses with [keys.ErrKeyInUse] while usage
// (rekey.Usage, counted after the retirement) shows any. Nothing undoes it; callers confirm first.
func (a *Admin) Destroy(ctx context.Context, tenant tenantseal.TenantID, usage keys.KeyUsage, opts keys.RetireOptions) (KeyChanges, error) {
	return a.editKeysets(ctx, tenantseal.EventKeyDestroy, tenant, false, nil, func(k storedKeyset, kek *keys.KEK) ([]byte, []uint32, error) {
		return keys.DestroyWrapped(kek, tenant, k.purpose, k.wrapped, usage, opts)
	})
}

// tenantKEK returns the KEK that wraps the tenant's keysets, and its URI: the tenant's own
// (tenantseal.tenant_keks), opened and checked against its canary, or the Admin's, with "".
func (a *Admin) tenantKEK(ctx context.Context, tx pgx.Tx, tenant tenantseal.TenantID) (*keys.KEK, string, error) {
	var uri string
	var canary []byte
	err := tx.QueryRow(ctx, "SELECT kek_uri, canary FROM tenantseal.tenant_keks WHERE tenant_id = $1", tenant).Scan(&uri, &canary)
	if errors.Is(err, pgx.ErrNoRows) {
		if a.kek == nil {
			return nil, "", fmt.Errorf("%w: the Admin has no KEK", keys.ErrKEK)
		}
		return a.kek, "", nil
	}
	if err != nil {
		return nil, "", wrap("read the tenant's KEK", err)
	}
	kek, err := a.openTenantKEK(ctx, tenant, uri, canary)
	if err != nil {
		return nil, "", err
	}
	return kek, uri, nil
}

// openTenantKEK opens the own KEK of tenant at uri and checks it against the tenant's canary.
func (a *Admin) openTenantKEK(ctx context.Context, tenant tenantseal.TenantID, uri string, canary []byte) (*keys.KEK, error) {
	kek, err := a.open(ctx, uri)
	if err != nil {
		return nil, fmt.Errorf("%w (the own KEK of tenant %s)", err, tenant)
	}
	if !kek.OpensCanary(canary) {
		return nil, fmt.Errorf("%w: %s does not open the KEK canary of tenant %s", keys.ErrKEK, kek.ID, tenant)
	}
	return kek, nil
}
