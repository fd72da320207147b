package keys

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/tenantseal/tenantseal"

	"github.com/tink-crypto/tink-go/v2/aead"
	"github.com/tink-crypto/tink-go/v2/keyset"
	"github.com/tink-crypto/tink-go/v2/prf"
	tinkpb "github.com/tink-crypto/tink-go/v2/proto/tink_go_proto"
	"github.com/tink-crypto/tink-go/v2/tink"
)

// Defaults of [Config].
const (
	DefaultCacheEntries = 10_000
	DefaultCacheTTL     = 5 * time.Minute
	DefaultMaxFieldSize = 1 << 20
	// BlindIndexSize is the length of a blind index: a 4-byte key id and 16 bytes of keyed PRF output.
	BlindIndexSize = 4 + 16
	tinkPrefixSize = 5
	// Overhead of a ciphertext over its plaintext: Tink prefix, GCM nonce and tag.
	ciphertextOverhead = tinkPrefixSize + 12 + 16
)

// Wrapped is a tenant's keysets as stored: encrypted by the KEK.
type Wrapped struct {
	AEAD, PRF []byte
	// KEKID fingerprints the KEK that wrapped them.
	KEKID string
	// Canary is the database's KEK canary, to tell a wrong KEK from a tampered keyset.
	Canary []byte
}

// Loader fetches a tenant's wrapped keysets, or fails with [ErrNoKeyset]. A [Keyring] asks only for
// the tenant of the Principal in ctx; a loader that reads through row-level security (pgstore's) serves
// no other tenant's keysets either, except under an elevation.
type Loader interface {
	LoadKeysets(ctx context.Context, tenant tenantseal.TenantID) (Wrapped, error)
}

// Config configures a [Keyring].
type Config struct {
	// KEK unwraps tenant keysets. Required.
	KEK *KEK
	// Loader fetches wrapped keysets; usually pgstore.Loader over the app's connection pool. Required.
	Loader Loader
	// CacheEntries bounds how many tenants' opened keysets stay in memory. Default DefaultCacheEntries.
	CacheEntries int
	// CacheTTL bounds how long an opened keyset is used before it is read again: how long a rotation or a
	// shred takes to reach this process. Default DefaultCacheTTL.
	CacheTTL time.Duration
	// MaxFieldSize bounds a plaintext, in bytes. Default DefaultMaxFieldSize.
	MaxFieldSize int
	// Now returns the current time. Default time.Now.
	Now func() time.Time
	// Recorder, if set, receives an event for every ciphertext that fails to decrypt for its row.
	Recorder tenantseal.Recorder
}

// Keyring encrypts and decrypts fields and computes blind indexes with each tenant's own keysets.
// It is safe for concurrent use. Nothing of a keyset appears in its String output or its errors.
type Keyring struct {
	kek   *KEK
	load  Loader
	cache *cache
	max   int
	rec   tenantseal.Recorder
}

// tenantKeys are one tenant's opened keysets.
type tenantKeys struct {
	aead        tink.AEAD
	aeadPrimary uint32
	aeadEnabled map[uint32]bool
	prf         *prf.Set
}

// NewKeyring returns a Keyring.
func NewKeyring(cfg Config) (*Keyring, error) {
	if cfg.KEK == nil {
		return nil, fmt.Errorf("%w: Config.KEK is nil", ErrKEK)
	}
	if cfg.Loader == nil {
		return nil, errors.New("keys: Config.Loader is nil")
	}
	if cfg.CacheEntries == 0 {
		cfg.CacheEntries = DefaultCacheEntries
	}
	if cfg.CacheTTL == 0 {
		cfg.CacheTTL = DefaultCacheTTL
	}
	if cfg.MaxFieldSize == 0 {
		cfg.MaxFieldSize = DefaultMaxFieldSize
	}
	if cfg.CacheEntries < 0 || cfg.CacheTTL < 0 || cfg.MaxFieldSize < 0 {
		return nil, errors.New("keys: negative CacheEntries, CacheTTL or MaxFieldSize")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Keyring{kek: cfg.KEK, load: cfg.Loader, cache: newCache(cfg.CacheEntries, cfg.CacheTTL, cfg.Now), max: cfg.MaxFieldSize, rec: cfg.Recorder}, nil
}

func (k *Keyring) String() string {
	return fmt.Sprintf("Keyring(%s, %d tenants cached)", k.kek, k.cache.len())
}

// CacheStats reports cache hits, misses and keyset loads since the Keyring was made.
type CacheStats struct {
	Hits, Misses, Loads int64
	Entries             int
}

// Stats returns the cache counters.
func (k *Keyring) Stats() CacheStats {
	return CacheStats{Hits: k.cache.hits.Load(), Misses: k.cache.misses.Load(), Loads: k.cache.loads.Load(), Entries: k.cache.len()}
}

// Invalidate drops the tenant's opened keysets: the next use reads them again.
func (k *Keyring) Invalidate(tenant tenantseal.TenantID) { k.cache.invalidate(tenant) }

// tenant returns the Principal's tenant (from ctx), the only tenant whose keys a call may use. A field
// naming another tenant (Field.Tenant) is refused and recorded before any key is loaded or used, so a
// warm cache never serves one Principal the keys of another.
func (k *Keyring) tenant(ctx context.Context, f Field, op string) (tenantseal.TenantID, error) {
	tenant, err := tenantseal.TenantFrom(ctx)
	if err != nil {
		return tenant, err
	}
	if !f.Tenant.IsZero() && f.Tenant != tenant {
		if k.rec != nil {
			k.rec.Record(ctx, tenantseal.Event{Kind: tenantseal.EventTenantMismatch, TargetTenant: f.Tenant,
				Table: f.Table, Operation: op, RowKey: f.Row, Detail: "column " + f.Column})
		}
		return tenant, fmt.Errorf("%w: %s %s.%s of tenant %s", tenantseal.ErrTenantMismatch, op, f.Table, f.Column, f.Tenant)
	}
	return tenant, nil
}

// keys returns the opened keysets of tenant, which [Keyring.tenant] took from ctx.
func (k *Keyring) keys(ctx context.Context, tenant tenantseal.TenantID) (*tenantKeys, error) {
	return k.cache.get(ctx, tenant, func(ctx context.Context) (*tenantKeys, error) {
		w, err := k.load.LoadKeysets(ctx, tenant)
		if err != nil {
			return nil, err
		}
		return k.open(tenant, w)
	})
}

// tenantKeys returns the Principal's tenant and its opened keysets.
func (k *Keyring) tenantKeys(ctx context.Context, f Field, op string) (tenantseal.TenantID, *tenantKeys, error) {
	tenant, err := k.tenant(ctx, f, op)
	if err != nil {
		return tenant, nil, err
	}
	t, err := k.keys(ctx, tenant)
	return tenant, t, err
}

// open unwraps and builds a tenant's keysets. The stored KEK id only names the KEK in errors: the key
// decides, so a KEK reached under another URI (a moved file, another URI form) still works.
func (k *Keyring) open(tenant tenantseal.TenantID, w Wrapped) (*tenantKeys, error) {
	ah, err := unwrap(k.kek, w.AEAD, tenant, PurposeAEAD)
	if err == nil {
		var ph *keyset.Handle
		if ph, err = unwrap(k.kek, w.PRF, tenant, PurposePRF); err == nil {
			return build(ah, ph)
		}
	}
	if w.Canary != nil && !k.kek.OpensCanary(w.Canary) {
		return nil, fmt.Errorf("%w: %s does not open the database's KEK canary (keysets were wrapped by %s)", ErrKEK, k.kek.ID, w.KEKID)
	}
	return nil, err
}

func build(ah, ph *keyset.Handle) (*tenantKeys, error) {
	a, err := aead.New(ah)
	if err != nil {
		return nil, fmt.Errorf("keys: build AEAD: %w", err)
	}
	p, err := prf.NewPRFSet(ph)
	if err != nil {
		return nil, fmt.Errorf("keys: build PRF: %w", err)
	}
	info := ah.KeysetInfo()
	t := &tenantKeys{aead: a, aeadPrimary: info.GetPrimaryKeyId(), aeadEnabled: map[uint32]bool{}, prf: p}
	for _, ki := range info.GetKeyInfo() {
		if ki.GetStatus() == tinkpb.KeyStatusType_ENABLED {
			t.aeadEnabled[ki.GetKeyId()] = true
		}
	}
	return t, nil
}

// Encrypt encrypts plaintext for field f under the primary key of the Principal's tenant (from ctx).
func (k *Keyring) Encrypt(ctx context.Context, f Field, plaintext []byte) ([]byte, error) {
	if len(plaintext) > k.max {
		return nil, fmt.Errorf("%w: encrypt %s.%s: %d bytes, limit %d", ErrFieldTooLarge, f.Table, f.Column, len(plaintext), k.max)
	}
	tenant, t, err := k.tenantKeys(ctx, f, "encrypt")
	if err != nil {
		return nil, err
	}
	ct, err := t.aead.Encrypt(plaintext, associatedData(fieldDomain, tenant, f.Table, f.Column, f.Row))
	if err != nil {
		return nil, fmt.Errorf("keys: encrypt %s.%s: %w", f.Table, f.Column, err)
	}
	return ct, nil
}

// Decrypt decrypts ciphertext read from field f with the keys of the Principal's tenant (from ctx). A
// ciphertext that was altered, truncated or copied from another column, row or tenant fails with
// [ErrTampered]; one naming a key the tenant does not hold (or has retired) with [ErrUnknownKey]; a field
// whose Tenant is another tenant's with [tenantseal.ErrTenantMismatch], before any key is used.
func (k *Keyring) Decrypt(ctx context.Context, f Field, ciphertext []byte) ([]byte, error) {
	if len(ciphertext) > k.max+ciphertextOverhead {
		return nil, fmt.Errorf("%w: decrypt %s.%s: ciphertext of %d bytes", ErrFieldTooLarge, f.Table, f.Column, len(ciphertext))
	}
	tenant, err := k.tenant(ctx, f, "decrypt")
	if err != nil {
		return nil, err
	}
	id, ok := CiphertextKeyID(ciphertext)
	if !ok || len(ciphertext) < ciphertextOverhead {
		return nil, k.tampered(ctx, tenant, &FieldError{Table: f.Table, Column: f.Column, Row: f.Row, Reason: ErrTampered, detail: ": malformed ciphertext"})
	}
	t, err := k.keys(ctx, tenant)
	if err != nil {
		return nil, err
	}
	if !t.aeadEnabled[id] {
		return nil, k.tampered(ctx, tenant, &FieldError{Table: f.Table, Column: f.Column, Row: f.Row, KeyID: id, Reason: ErrUnknownKey, detail: fmt.Sprintf(": key %d", id)})
	}
	pt, err := t.aead.Decrypt(ciphertext, associatedData(fieldDomain, tenant, f.Table, f.Column, f.Row))
	if err != nil {
		return nil, k.tampered(ctx, tenant, &FieldError{Table: f.Table, Column: f.Column, Row: f.Row, KeyID: id, Reason: ErrTampered})
	}
	return pt, nil
}

// tampered records e and returns it.
func (k *Keyring) tampered(ctx context.Context, tenant tenantseal.TenantID, e *FieldError) error {
	if k.rec != nil {
		k.rec.Record(ctx, tenantseal.Event{Kind: tenantseal.EventTampered, TargetTenant: tenant, Table: e.Table, Operation: "decrypt",
			RowKey: e.Row, Detail: fmt.Sprintf("column %s: %s%s", e.Column, strings.TrimPrefix(e.Reason.Error(), "tenantseal: "), e.detail)})
	}
	return e
}

// CiphertextKeyID returns the id of the key that produced a ciphertext, from its Tink prefix.
func CiphertextKeyID(ciphertext []byte) (uint32, bool) {
	if len(ciphertext) < tinkPrefixSize || ciphertext[0] != 1 {
		return 0, false
	}
	return binary.BigEndian.Uint32(ciphertext[1:5]), true
}

// BlindIndex returns the blind index of value for field f (its Row is ignored) under the primary PRF
// key of the Principal's tenant (from ctx): the key id and a truncated HMAC-SHA256 of the normalised
// value, bound to tenant, table and column. Equal values of one tenant and column have equal indexes; nothing links them across tenants
// (their keys differ) or columns.
func (k *Keyring) BlindIndex(ctx context.Context, f Field, value string, norm Normalizer) ([]byte, error) {
	tenant, t, err := k.tenantKeys(ctx, f, "blind index")
	if err != nil {
		return nil, err
	}
	return blindIndex(t.prf, t.prf.PrimaryID, tenant, f, value, norm)
}

// BlindIndexes returns the value's blind index under every enabled PRF key, the primary first: a lookup
// matches rows written before a rotation too, until they are re-encrypted.
func (k *Keyring) BlindIndexes(ctx context.Context, f Field, value string, norm Normalizer) ([][]byte, error) {
	tenant, t, err := k.tenantKeys(ctx, f, "blind index")
	if err != nil {
		return nil, err
	}
	out := make([][]byte, 0, len(t.prf.PRFs))
	first, err := blindIndex(t.prf, t.prf.PrimaryID, tenant, f, value, norm)
	if err != nil {
		return nil, err
	}
	out = append(out, first)
	for id := range t.prf.PRFs {
		if id == t.prf.PrimaryID {
			continue
		}
		b, err := blindIndex(t.prf, id, tenant, f, value, norm)
		if err != nil {
			return nil, err
		}
		out = append(out, b)
	}
	return out, nil
}

func blindIndex(set *prf.Set, id uint32, tenant tenantseal.TenantID, f Field, value string, norm Normalizer) ([]byte, error) {
	if norm != nil {
		value = norm(value)
	}
	p, ok := set.PRFs[id]
	if !ok {
		return nil, fmt.Errorf("%w: PRF key %d", ErrUnknownKey, id)
	}
	out, err := p.ComputePRF(associatedData(bidxDomain, tenant, f.Table, f.Column, value), 16)
	if err != nil {
		return nil, fmt.Errorf("keys: blind index %s.%s: %w", f.Table, f.Column, err)
	}
	b := make([]byte, BlindIndexSize)
	binary.BigEndian.PutUint32(b, id)
	copy(b[4:], out)
	return b, nil
}

// PrimaryKeyIDs returns the ids of the primary AEAD and PRF keys of the Principal's tenant (from ctx), as
// the Keyring holds them.
func (k *Keyring) PrimaryKeyIDs(ctx context.Context) (aeadID, prfID uint32, err error) {
	_, t, err := k.tenantKeys(ctx, Field{}, "read key ids")
	if err != nil {
		return 0, 0, err
	}
	return t.aeadPrimary, t.prf.PrimaryID, nil
}
