package keys

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/tenantseal/tenantseal"
	"github.com/tenantseal/tenantseal/internal/process"

	"github.com/tink-crypto/tink-go/v2/aead"
	"github.com/tink-crypto/tink-go/v2/keyset"
	"github.com/tink-crypto/tink-go/v2/prf"
	tinkpb "github.com/tink-crypto/tink-go/v2/proto/tink_go_proto"
	"github.com/tink-crypto/tink-go/v2/tink"
	"go.opentelemetry.io/otel/metric"
)

// Defaults of [Config].
const (
	DefaultCacheEntries = 10_000
	DefaultCacheTTL     = 5 * time.Minute
	DefaultRevalidate   = 10 * time.Second
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
	// Version changes whenever the stored keysets change (rotation, retirement, re-enabling,
	// destruction, re-wrapping): see [VersionLoader]. Zero when the store keeps none.
	Version int64
	// CacheBound is the longest any process may keep these keysets opened, as the store declares it
	// (pgstore: tenantseal.key_settings.max_cache_ttl): a Keyring caches them for the shorter of it and
	// Config.CacheTTL. Retiring an old key is safe once this long has passed since the rotation, because
	// no cache can then still encrypt under it. Zero: no bound beyond the Keyring's own.
	CacheBound time.Duration
	// Shredded says the tenant's keysets were crypto-shredded before these were made: a ciphertext
	// naming a key they lack is one the shred destroyed ([ErrShredded]), not a tampered one.
	Shredded bool
	// KEKURI, when set, names the tenant's own KEK (bring your own key: a key the customer holds in its
	// KMS), which wraps these keysets instead of the Keyring's: the Keyring opens it with
	// Config.OpenKEK, and Canary is then that KEK's. Empty: the Keyring's own KEK.
	KEKURI string
}

// Loader fetches a tenant's wrapped keysets, or fails with [ErrNoKeyset] ([ErrShredded] after a
// crypto-shred). A [Keyring] asks only for the tenant of the Principal in ctx; a loader that reads
// through row-level security (pgstore's) serves no other tenant's keysets either, except under an
// elevation.
type Loader interface {
	LoadKeysets(ctx context.Context, tenant tenantseal.TenantID) (Wrapped, error)
}

// VersionLoader is a [Loader] that can also tell cheaply whether a tenant's stored keysets changed. A
// Keyring over one asks at most every Config.Revalidate per tenant and reloads on a change, so that
// rotations, retirements and shreds reach it in seconds rather than at the end of its cache TTL. The
// answer is an optimisation, never what safety rests on: an entry still expires at its TTL when the
// store cannot answer.
type VersionLoader interface {
	Loader
	// KeysetVersion returns a number that changes whenever the tenant's stored keysets change (any
	// value, -1 say, when it has none), as [Wrapped.Version] reports it.
	KeysetVersion(ctx context.Context, tenant tenantseal.TenantID) (int64, error)
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
	// shred takes at most to reach this process. The store may declare a shorter bound
	// ([Wrapped.CacheBound]), which then applies. Default DefaultCacheTTL.
	CacheTTL time.Duration
	// Revalidate is how often a cached keyset is checked against the stored version when the Loader is a
	// [VersionLoader]: one cheap query per tenant and interval. Default DefaultRevalidate; negative: never.
	Revalidate time.Duration
	// MaxFieldSize bounds a plaintext, in bytes. Default DefaultMaxFieldSize.
	MaxFieldSize int
	// Now returns the current time. Default time.Now.
	Now func() time.Time
	// Recorder, if set, receives an event for every ciphertext that fails to decrypt for its row, and one
	// (tenantseal.EventKeyUnwrap) for every keyset unwrapped with a KEK: on a cache miss only, naming
	// the tenant, the purpose, the KEK's id and this process, never key material.
	Recorder tenantseal.Recorder
	// Instance names this process in the unwrap events. Default "<host>/<pid>".
	Instance string
	// OpenKEK opens the KEK of a tenant that has one of its own ([Wrapped.KEKURI]). Default: [OpenKEK],
	// through the KMS clients registered with [RegisterKMSClient]. Opened KEKs are kept for the
	// Keyring's life; a customer that revokes its key makes its keysets fail to open at the next load.
	OpenKEK func(ctx context.Context, uri string) (*KEK, error)
	// MeterProvider provides tenantseal.keys.unwraps, which counts keyset unwraps (see [AttrPurpose]).
	// Default otel.GetMeterProvider(), which records nothing until the application installs one.
	MeterProvider metric.MeterProvider
}

// Keyring encrypts and decrypts fields and computes blind indexes with each tenant's own keysets.
// It is safe for concurrent use. Nothing of a keyset appears in its String output or its errors.
type Keyring struct {
	kek     *KEK
	load    Loader
	cache   *cache
	max     int
	rec     tenantseal.Recorder
	inst    string
	openKEK func(ctx context.Context, uri string) (*KEK, error)
	unwraps metric.Int64Counter

	mu   sync.Mutex
	keks map[string]*KEK // tenants' own KEKs, by URI
}

// tenantKeys are one tenant's opened keysets.
type tenantKeys struct {
	aead        tink.AEAD
	aeadPrimary uint32
	aeadEnabled map[uint32]bool
	prf         *prf.Set
	hmacs       map[uint32]*hmacPRF // prf's HMAC keys, computed without Tink's per-call keying
	version     int64               // Wrapped.Version
	cacheBound  time.Duration       // Wrapped.CacheBound
	shredded    bool                // Wrapped.Shredded
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
	if cfg.Revalidate == 0 {
		cfg.Revalidate = DefaultRevalidate
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
	if cfg.OpenKEK == nil {
		cfg.OpenKEK = OpenKEK
	}
	if cfg.Instance == "" {
		cfg.Instance = process.Name()
	}
	unwraps, err := newUnwrapCounter(cfg.MeterProvider)
	if err != nil {
		return nil, err
	}
	return &Keyring{kek: cfg.KEK, load: cfg.Loader, cache: newCache(cfg.CacheEntries, cfg.CacheTTL, cfg.Revalidate, cfg.Now), max: cfg.MaxFieldSize,
		rec: cfg.Recorder, inst: cfg.Instance, openKEK: cfg.OpenKEK, unwraps: unwraps, keks: map[string]*KEK{}}, nil
}

func (k *Keyring) String() string {
	return fmt.Sprintf("Keyring(%s, %d tenants cached)", k.kek, k.cache.len())
}

// CacheStats reports cache hits, misses, keyset loads and version checks since the Keyring was made.
type CacheStats struct {
	Hits, Misses, Loads, Checks int64
	Entries                     int
}

// Stats returns the cache counters.
func (k *Keyring) Stats() CacheStats {
	return CacheStats{Hits: k.cache.hits.Load(), Misses: k.cache.misses.Load(), Loads: k.cache.loads.Load(),
		Checks: k.cache.checks.Load(), Entries: k.cache.len()}
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
	load := func(ctx context.Context) (*tenantKeys, error) {
		w, err := k.load.LoadKeysets(ctx, tenant)
		if err != nil {
			return nil, err
		}
		return k.open(ctx, tenant, w)
	}
	var version versionFunc
	if vl, ok := k.load.(VersionLoader); ok {
		version = func(ctx context.Context) (int64, error) { return vl.KeysetVersion(ctx, tenant) }
	}
	return k.cache.get(ctx, tenant, load, version)
}

// keysWith returns the opened keysets of tenant that enable AEAD key id: the cached ones, or, when they
// do not and were loaded a while ago, the stored ones read again (a key added or re-enabled since).
func (k *Keyring) keysWith(ctx context.Context, tenant tenantseal.TenantID, id uint32) (*tenantKeys, error) {
	t, err := k.keys(ctx, tenant)
	if err != nil || t.aeadEnabled[id] || !k.cache.stale(tenant, t) {
		return t, err
	}
	return k.keys(ctx, tenant)
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

// open unwraps and builds a tenant's keysets, with the tenant's own KEK if it has one. The stored KEK id
// only names the KEK in errors: the key decides, so a KEK reached under another URI (a moved file,
// another URI form) still works.
func (k *Keyring) open(ctx context.Context, tenant tenantseal.TenantID, w Wrapped) (*tenantKeys, error) {
	kek := k.kek
	if w.KEKURI != "" {
		var err error
		if kek, err = k.tenantKEK(ctx, w.KEKURI); err != nil {
			return nil, fmt.Errorf("%w (the own KEK of tenant %s)", err, tenant)
		}
	}
	ah, err := unwrap(kek, w.AEAD, tenant, PurposeAEAD)
	k.unwrapped(ctx, tenant, PurposeAEAD, kek, w.KEKURI != "", err)
	if err == nil {
		var ph *keyset.Handle
		ph, err = unwrap(kek, w.PRF, tenant, PurposePRF)
		k.unwrapped(ctx, tenant, PurposePRF, kek, w.KEKURI != "", err)
		if err == nil {
			t, err := build(ah, ph)
			if err != nil {
				return nil, err
			}
			t.version, t.cacheBound, t.shredded = w.Version, w.CacheBound, w.Shredded
			return t, nil
		}
	}
	if w.Canary != nil && !kek.OpensCanary(w.Canary) {
		return nil, fmt.Errorf("%w: %s does not open the KEK canary of tenant %s (its keysets were wrapped by %s)", ErrKEK, kek.ID, tenant, w.KEKID)
	}
	return nil, err
}

// unwrapped records that tenant's keyset of purpose was unwrapped with kek (the tenant's own when own),
// or failed to open: the KEK's id and this process, nothing of the keys.
func (k *Keyring) unwrapped(ctx context.Context, tenant tenantseal.TenantID, purpose string, kek *KEK, own bool, err error) {
	kind, outcome := "shared", "ok"
	if own {
		kind = "own"
	}
	if err != nil {
		outcome = "error"
	}
	k.unwraps.Add(ctx, 1, metric.WithAttributes(AttrPurpose.String(purpose), AttrKEK.String(kind), AttrOutcome.String(outcome)))
	if k.rec == nil {
		return
	}
	which := "shared"
	if own {
		which = "the tenant's own"
	}
	d := fmt.Sprintf("%s keyset unwrapped with %s KEK %s by %s", purpose, which, kek.ID, k.inst)
	if err != nil {
		d = fmt.Sprintf("%s keyset did not open with %s KEK %s in %s", purpose, which, kek.ID, k.inst)
	}
	k.rec.Record(ctx, tenantseal.Event{Kind: tenantseal.EventKeyUnwrap, TargetTenant: tenant, Table: "tenantseal.tenant_keysets",
		Operation: "unwrap", RowKey: purpose, Detail: d})
}

// tenantKEK returns the opened KEK of uri, opening it on first use.
func (k *Keyring) tenantKEK(ctx context.Context, uri string) (*KEK, error) {
	k.mu.Lock()
	kek, ok := k.keks[uri]
	k.mu.Unlock()
	if ok {
		return kek, nil
	}
	kek, err := k.openKEK(ctx, uri)
	if err != nil {
		return nil, err
	}
	k.mu.Lock()
	k.keks[uri] = kek
	k.mu.Unlock()
	return kek, nil
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
	t := &tenantKeys{aead: a, aeadPrimary: info.GetPrimaryKeyId(), aeadEnabled: map[uint32]bool{}, prf: p, hmacs: hmacPRFs(ph)}
	for _, ki := range info.GetKeyInfo() {
		if ki.GetStatus() == tinkpb.KeyStatusType_ENABLED {
			t.aeadEnabled[ki.GetKeyId()] = true
		}
	}
	return t, nil
}

// Encrypt encrypts plaintext for field f under the primary key of the Principal's tenant (from ctx). It
// neither changes nor keeps plaintext.
func (k *Keyring) Encrypt(ctx context.Context, f Field, plaintext []byte) ([]byte, error) {
	if len(plaintext) > k.max {
		return nil, fmt.Errorf("%w: encrypt %s.%s: %d bytes, limit %d", ErrFieldTooLarge, f.Table, f.Column, len(plaintext), k.max)
	}
	tenant, t, err := k.tenantKeys(ctx, f, "encrypt")
	if err != nil {
		return nil, err
	}
	ad := associatedData(fieldDomain, tenant, f.Table, f.Column, f.Row)
	ct, err := t.aead.Encrypt(plaintext, *ad)
	release(ad)
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
	d := k.Decrypter()
	return d.Decrypt(ctx, f, ciphertext)
}

// Decrypter decrypts the fields of one read (the rows of a page, say) as [Keyring.Decrypt] does, but
// looks the tenant's keys up once for all of them rather than once per field: again only for a
// ciphertext naming a key they do not enable (which may load them anew) or for another tenant. It is
// for one goroutine and one call: it keeps the keys it looked up for as long as it lives.
type Decrypter struct {
	k      *Keyring
	tenant tenantseal.TenantID
	keys   *tenantKeys // of tenant; nil before the first lookup
}

// Decrypter returns a [Decrypter] that uses the Keyring's keys.
func (k *Keyring) Decrypter() Decrypter { return Decrypter{k: k} }

// Decrypt decrypts ciphertext read from field f with the keys of the Principal's tenant (from ctx), as
// [Keyring.Decrypt] does.
func (d *Decrypter) Decrypt(ctx context.Context, f Field, ciphertext []byte) ([]byte, error) {
	k := d.k
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
	t := d.keys
	if t == nil || d.tenant != tenant || !t.aeadEnabled[id] {
		d.keys = nil
		t, err = k.keysWith(ctx, tenant, id)
		if errors.Is(err, ErrShredded) {
			// Not an attack: the shred destroyed the value, and this says which one.
			return nil, &FieldError{Table: f.Table, Column: f.Column, Row: f.Row, KeyID: id, Reason: ErrShredded, detail: ": the tenant's keysets were shredded"}
		}
		if err != nil {
			return nil, err
		}
		d.tenant, d.keys = tenant, t
	}
	if !t.aeadEnabled[id] {
		if t.shredded {
			// Not an attack: the key went with the shred, and so did the value.
			return nil, &FieldError{Table: f.Table, Column: f.Column, Row: f.Row, KeyID: id, Reason: ErrShredded, detail: fmt.Sprintf(": key %d", id)}
		}
		return nil, k.tampered(ctx, tenant, &FieldError{Table: f.Table, Column: f.Column, Row: f.Row, KeyID: id, Reason: ErrUnknownKey, detail: fmt.Sprintf(": key %d", id)})
	}
	ad := associatedData(fieldDomain, tenant, f.Table, f.Column, f.Row)
	pt, err := t.aead.Decrypt(ciphertext, *ad)
	release(ad)
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
	return blindIndex(t, t.prf.PrimaryID, tenant, f, value, norm)
}

// BlindIndexes returns the value's blind index under every enabled PRF key, the primary first: a lookup
// matches rows written before a rotation too, until they are re-encrypted.
func (k *Keyring) BlindIndexes(ctx context.Context, f Field, value string, norm Normalizer) ([][]byte, error) {
	tenant, t, err := k.tenantKeys(ctx, f, "blind index")
	if err != nil {
		return nil, err
	}
	out := make([][]byte, 0, len(t.prf.PRFs))
	first, err := blindIndex(t, t.prf.PrimaryID, tenant, f, value, norm)
	if err != nil {
		return nil, err
	}
	out = append(out, first)
	for id := range t.prf.PRFs {
		if id == t.prf.PrimaryID {
			continue
		}
		b, err := blindIndex(t, id, tenant, f, value, norm)
		if err != nil {
			return nil, err
		}
		out = append(out, b)
	}
	return out, nil
}

func blindIndex(t *tenantKeys, id uint32, tenant tenantseal.TenantID, f Field, value string, norm Normalizer) ([]byte, error) {
	if norm != nil {
		value = norm(value)
	}
	p, ok := t.prf.PRFs[id]
	if !ok {
		return nil, fmt.Errorf("%w: PRF key %d", ErrUnknownKey, id)
	}
	ad := associatedData(bidxDomain, tenant, f.Table, f.Column, value)
	defer release(ad)
	if h := t.hmacs[id]; h != nil {
		// The key id, then the whole HMAC in the same allocation, cut to its first 16 bytes.
		b := binary.BigEndian.AppendUint32(make([]byte, 0, 4+h.size), id)
		b = h.appendPRF(b, *ad)
		clear(b[BlindIndexSize:])
		return b[:BlindIndexSize:BlindIndexSize], nil
	}
	out, err := p.ComputePRF(*ad, 16)
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
