package evidence

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tenantseal/tenantseal/keys/pgstore"
)

// Keys is keys.json: the state of every tenant's keys and of the context signing keys. It holds ids,
// states and dates, never key material: the key ids come from the key list Tink stores beside each
// wrapped keyset, read without any KEK.
type Keys struct {
	Schema  string       `json:"schema"`
	Tenants []TenantKeys `json:"tenants"`
	// MaxCacheTTL bounds how long a process keeps opened keysets, WriteGrace how long a write encrypted
	// just before may take to commit; RetireWait is how long after a rotation old keys may be retired.
	MaxCacheTTL string         `json:"max_cache_ttl"`
	WriteGrace  string         `json:"write_grace"`
	RetireWait  string         `json:"retire_wait"`
	Context     ContextSigning `json:"context_signing"`
}

// TenantKeys are one tenant's keysets.
type TenantKeys struct {
	ID         string     `json:"id"`
	Name       string     `json:"name"`
	ShreddedAt *time.Time `json:"shredded_at"`
	// Region is where the tenant's data is to live, RetentionPolicy its retention policy, as the
	// registry records them; null when none is.
	Region          *string `json:"region"`
	RetentionPolicy *string `json:"retention_policy"`
	// KEK names the key-encryption key that wraps the keysets: its id, and its URI when it is the
	// tenant's own (a KMS key reference; a URI names a key, it is not one).
	KEK KEKRef `json:"kek"`
	// LastRotation is when the current primary keys took over.
	LastRotation *time.Time `json:"last_rotation"`
	Quarantined  int64      `json:"quarantined"`
	Keysets      []Keyset   `json:"keysets"`
}

// KEKRef names a KEK.
type KEKRef struct {
	ID  string `json:"id"`
	Own bool   `json:"own"`
	URI string `json:"uri,omitempty"`
}

// Keyset is one keyset of a tenant.
type Keyset struct {
	Purpose string `json:"purpose"`
	Version int64  `json:"version"`
	Keys    []Key  `json:"keys"`
}

// Key is one key of a keyset.
type Key struct {
	ID          uint32     `json:"id"`
	State       string     `json:"state"` // primary, enabled, disabled, destroyed, unknown
	CreatedAt   *time.Time `json:"created_at"`
	DisabledAt  *time.Time `json:"disabled_at"`
	DestroyedAt *time.Time `json:"destroyed_at"`
}

// ContextSigning is how the database verifies tenant contexts.
type ContextSigning struct {
	// AllowUnsigned says the database accepts unsigned tenant contexts (plain tenant ids).
	AllowUnsigned bool         `json:"allow_unsigned"`
	Keys          []ContextKey `json:"keys"`
}

// ContextKey is one signing key of the tenant context, by id.
type ContextKey struct {
	ID        string     `json:"id"`
	CreatedAt time.Time  `json:"created_at"`
	NotAfter  *time.Time `json:"not_after"`
	// State is "current" (no end), "retiring" (accepted until NotAfter) or "retired".
	State string `json:"state"`
}

// readKeys reads keys.json as the owner, the only role that reads every tenant's keysets and the
// context keys' table (of which it reads the ids and dates alone).
func readKeys(ctx context.Context, owner pgx.Tx, now time.Time) (*Keys, error) {
	st, err := pgstore.Status(ctx, owner)
	if err != nil {
		return nil, fmt.Errorf("evidence: key status: %w", err)
	}
	out := &Keys{Schema: SchemaKeys, Tenants: []TenantKeys{}}
	type placement struct{ region, policy *string }
	placed := map[string]placement{}
	rows, err := owner.Query(ctx, "SELECT t.key, g.region, g.retention_policy FROM tenantseal.tenants t JOIN tenantseal.tenant_governance g ON g.tenant_id = t.id")
	if err != nil {
		return nil, fmt.Errorf("evidence: tenant regions: %w", err)
	}
	var key string
	var pl placement
	if _, err := pgx.ForEachRow(rows, []any{&key, &pl.region, &pl.policy}, func() error { placed[key] = pl; return nil }); err != nil {
		return nil, fmt.Errorf("evidence: tenant regions: %w", err)
	}
	for _, t := range st {
		pl := placed[t.Tenant.String()]
		tk := TenantKeys{ID: t.Tenant.String(), Name: t.Name, ShreddedAt: t.ShreddedAt, Quarantined: t.Quarantined, Region: pl.region, RetentionPolicy: pl.policy,
			KEK: KEKRef{ID: t.KEKID, Own: t.OwnKEK, URI: t.KEKURI}, Keysets: []Keyset{}}
		if !t.PrimarySince.IsZero() {
			ps := t.PrimarySince
			tk.LastRotation = &ps
		}
		for _, ks := range t.Keysets {
			k := Keyset{Purpose: ks.Purpose, Version: ks.Version, Keys: []Key{}}
			for _, key := range ks.Keys {
				k.Keys = append(k.Keys, Key{ID: key.ID, State: key.Status, CreatedAt: key.CreatedAt, DisabledAt: key.DisabledAt, DestroyedAt: key.DestroyedAt})
			}
			tk.Keysets = append(tk.Keysets, k)
		}
		out.Tenants = append(out.Tenants, tk)
	}
	ks, err := pgstore.ReadKeySettings(ctx, owner)
	if err != nil {
		return nil, fmt.Errorf("evidence: key settings: %w", err)
	}
	out.MaxCacheTTL, out.WriteGrace, out.RetireWait = ks.MaxCacheTTL.String(), ks.WriteGrace.String(), ks.RetireWait.String()

	if err := owner.QueryRow(ctx, "SELECT allow_unsigned FROM tenantseal.settings").Scan(&out.Context.AllowUnsigned); err != nil {
		return nil, fmt.Errorf("evidence: context settings: %w", err)
	}
	// The key's ipad and opad are never selected.
	rows, err = owner.Query(ctx, "SELECT kid, created_at, not_after FROM tenantseal.context_keys ORDER BY created_at, kid")
	if err != nil {
		return nil, fmt.Errorf("evidence: context keys: %w", err)
	}
	out.Context.Keys, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (ContextKey, error) {
		var k ContextKey
		err := r.Scan(&k.ID, &k.CreatedAt, &k.NotAfter)
		k.CreatedAt = k.CreatedAt.UTC()
		switch {
		case k.NotAfter == nil:
			k.State = "current"
		case k.NotAfter.After(now):
			k.State = "retiring"
		default:
			k.State = "retired"
		}
		if k.NotAfter != nil {
			u := k.NotAfter.UTC()
			k.NotAfter = &u
		}
		return k, err
	})
	if err != nil {
		return nil, fmt.Errorf("evidence: context keys: %w", err)
	}
	return out, nil
}
