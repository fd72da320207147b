package pgstore

import (
	"context"
	"errors"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tenantseal/tenantseal"
	"github.com/tenantseal/tenantseal/keys"
)

// TenantKeys is the state of one tenant's keys, as [Status] reports it: nothing secret, and read without
// any KEK.
type TenantKeys struct {
	Tenant tenantseal.TenantID
	Name   string
	// ShreddedAt is when the tenant was crypto-shredded, nil if never.
	ShreddedAt *time.Time
	// KEKID names the KEK that wraps the keysets; OwnKEK says it is the tenant's own (KEKURI), not the
	// database's shared one. Empty without keysets.
	KEKID  string
	OwnKEK bool
	KEKURI string
	// PrimarySince is when the current primary keys took over; RetireAfter is when [Admin.Retire] will
	// allow retiring the keys they replaced. Zero without keysets.
	PrimarySince, RetireAfter time.Time
	// Keysets are the tenant's keysets, AEAD first.
	Keysets []KeysetState
	// Quarantined counts the tenant's values on the quarantine list.
	Quarantined int64
}

// KeysetState is one keyset of a tenant.
type KeysetState struct {
	Purpose string // keys.PurposeAEAD or keys.PurposePRF
	Version int64  // raised by every change
	Keys    []KeyState
}

// KeyState is one key of a keyset, destroyed ones included.
type KeyState struct {
	ID uint32
	// Status is "primary", "enabled", "disabled", "destroyed", or "unknown" for a keyset stored by a
	// version of tenantseal that did not describe its keys (changing the keyset describes them).
	Status string
	// CreatedAt is when the key was added, nil when that was before tenantseal kept the date.
	CreatedAt               *time.Time
	DisabledAt, DestroyedAt *time.Time
}

// Status reports the keys of the tenants ids (every tenant when none), oldest tenant first. Connect as
// the owner: it reads every tenant's rows.
func Status(ctx context.Context, q Querier, ids ...tenantseal.TenantID) ([]TenantKeys, error) {
	rows, err := q.Query(ctx, `SELECT t.key, t.name, t.shredded_at, coalesce(o.kek_uri, ''),
			(SELECT count(*) FROM tenantseal.quarantine x WHERE x.tenant_id = t.id),
			k.purpose, k.wrapped, k.kek_id, k.version, k.primary_since, k.primary_since + tenantseal.key_retire_wait()
		FROM tenantseal.tenants t LEFT JOIN tenantseal.tenant_keysets k ON k.tenant_id = t.id
			LEFT JOIN tenantseal.tenant_keks o ON o.tenant_id = t.id
		WHERE coalesce(cardinality($1::uuid[]), 0) = 0 OR t.id = ANY($1)
		ORDER BY t.created_at, t.id, k.purpose`, ids)
	if err != nil {
		return nil, wrap("read key status", err)
	}
	var out []TenantKeys
	var last *TenantKeys
	var (
		tk                     TenantKeys
		purpose, kekID         *string
		wrapped                []byte
		version                *int64
		primarySince, retireAt *time.Time
	)
	_, err = pgx.ForEachRow(rows, []any{&tk.Tenant, &tk.Name, &tk.ShreddedAt, &tk.KEKURI, &tk.Quarantined,
		&purpose, &wrapped, &kekID, &version, &primarySince, &retireAt}, func() error {
		if last == nil || last.Tenant != tk.Tenant {
			out = append(out, tk)
			last = &out[len(out)-1]
			last.OwnKEK = last.KEKURI != ""
		}
		if purpose == nil {
			return nil
		}
		last.KEKID = *kekID
		if last.PrimarySince.IsZero() || primarySince.After(last.PrimarySince) {
			last.PrimarySince, last.RetireAfter = primarySince.UTC(), retireAt.UTC()
		}
		ks := KeysetState{Purpose: *purpose, Version: *version}
		if info, err := keys.WrappedKeys(wrapped); err == nil {
			for _, ki := range info {
				st := "disabled"
				switch {
				case ki.Primary:
					st = "primary"
				case ki.Enabled:
					st = "enabled"
				}
				ks.Keys = append(ks.Keys, KeyState{ID: ki.ID, Status: st})
			}
		} else if !errors.Is(err, keys.ErrNoKeyInfo) {
			return err
		}
		last.Keysets = append(last.Keysets, ks)
		return nil
	})
	if err != nil {
		return nil, wrap("read key status", err)
	}
	return out, keyHistoryInto(ctx, q, out)
}

// keyHistoryInto adds the dates of tenantseal.tenant_keys to the keys of ts, and the destroyed keys.
func keyHistoryInto(ctx context.Context, q Querier, ts []TenantKeys) error {
	if len(ts) == 0 {
		return nil
	}
	ids := make([]tenantseal.TenantID, len(ts))
	for i, t := range ts {
		ids[i] = t.Tenant
	}
	rows, err := q.Query(ctx, `SELECT t.key, k.purpose, k.key_id, k.created_at, k.disabled_at, k.destroyed_at
		FROM tenantseal.tenant_keys k JOIN tenantseal.tenants t ON t.id = k.tenant_id
		WHERE k.tenant_id = ANY($1) ORDER BY k.tenant_id, k.purpose, k.created_at NULLS FIRST, k.key_id`, ids)
	if err != nil {
		return wrap("read key history", err)
	}
	byTenant := map[tenantseal.TenantID]*TenantKeys{}
	for i := range ts {
		byTenant[ts[i].Tenant] = &ts[i]
	}
	var (
		tenant                       tenantseal.TenantID
		purpose                      string
		id                           int64
		created, disabled, destroyed *time.Time
	)
	_, err = pgx.ForEachRow(rows, []any{&tenant, &purpose, &id, &created, &disabled, &destroyed}, func() error {
		t := byTenant[tenant]
		i := slices.IndexFunc(t.Keysets, func(k KeysetState) bool { return k.Purpose == purpose })
		if i < 0 {
			return nil // shredded: its keysets are gone, and so is the point of their keys' dates
		}
		ks := &t.Keysets[i]
		j := slices.IndexFunc(ks.Keys, func(k KeyState) bool { return k.ID == uint32(id) })
		if j < 0 {
			st := "unknown"
			if destroyed != nil {
				st = "destroyed"
			}
			ks.Keys = append(ks.Keys, KeyState{ID: uint32(id), Status: st})
			j = len(ks.Keys) - 1
		}
		k := &ks.Keys[j]
		k.CreatedAt, k.DisabledAt, k.DestroyedAt = utc(created), utc(disabled), utc(destroyed)
		return nil
	})
	if err != nil {
		return wrap("read key history", err)
	}
	return nil
}

func utc(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC()
	return &u
}
