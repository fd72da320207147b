package authn

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tenantseal/tenantseal"
)

// RowQuerier runs one query for one row: the app role's db.Pool.Unscoped(), a *pgxpool.Pool or a
// *pgx.Conn.
type RowQuerier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// Defaults of [DBRegistryConfig].
const (
	DefaultRegistryTTL         = 30 * time.Second
	DefaultRegistryNegativeTTL = 10 * time.Second
	DefaultRegistryMaxEntries  = 10_000
)

// DBRegistryConfig configures a [DBRegistry].
type DBRegistryConfig struct {
	// TTL is how long an answer naming an active tenant is held in the process. A suspension, a
	// deletion or an unbinding takes effect within it. Default DefaultRegistryTTL.
	TTL time.Duration
	// NegativeTTL is how long any other answer (no tenant bound, bound for other issuers only, a
	// tenant not active) is held: a resumption or a new binding takes effect within it, and a client
	// repeating a refused token costs the database one lookup per NegativeTTL. Default
	// DefaultRegistryNegativeTTL.
	NegativeTTL time.Duration
	// MaxEntries bounds the answers held. Default DefaultRegistryMaxEntries.
	MaxEntries int
	// Now returns the current time. Default time.Now.
	Now func() time.Time
}

// DBRegistry is a [Registry] whose bindings live in tenantseal's schema, managed by the owner
// (`tenantseal tenants bind`, tenants.Bind): it asks tenantseal.tenant_binding, as the app role, for the
// tenant that an issuer names by a tenant claim's value, and holds the answer in the process for
// DBRegistryConfig.TTL (NegativeTTL for a refusal). It refuses a tenant that is suspended or deleted
// with an [*InactiveTenantError].
//
// The app role cannot read the bindings: the function answers one (issuer, claim value) pair, which a
// caller must know, with that tenant's key and status, and it counts and logs every lookup that finds
// no active tenant (tenants.RefusedLookups). A value bound for other issuers is refused with
// ErrIssuerMismatch and its tenant when the issuer asking is bound to some tenant itself, and as
// ErrUnknownTenant otherwise. It is safe for concurrent use.
type DBRegistry struct {
	q   RowQuerier
	cfg DBRegistryConfig

	mu      sync.Mutex
	entries map[registryKey]registryEntry
}

type registryKey struct{ issuer, claim string }

type registryEntry struct {
	tenant tenantseal.TenantID
	err    error
	until  time.Time
}

// NewDBRegistry returns a registry that looks bindings up through q, a connection as the app role.
func NewDBRegistry(q RowQuerier, cfg DBRegistryConfig) (*DBRegistry, error) {
	if q == nil {
		return nil, errors.New("authn: NewDBRegistry needs a connection")
	}
	if cfg.TTL < 0 || cfg.NegativeTTL < 0 || cfg.MaxEntries < 0 {
		return nil, errors.New("authn: DBRegistryConfig TTL, NegativeTTL and MaxEntries must not be negative")
	}
	setDefault(&cfg.TTL, DefaultRegistryTTL)
	setDefault(&cfg.NegativeTTL, DefaultRegistryNegativeTTL)
	setDefault(&cfg.MaxEntries, DefaultRegistryMaxEntries)
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &DBRegistry{q: q, cfg: cfg, entries: map[registryKey]registryEntry{}}, nil
}

// InactiveTenantError refuses a token whose tenant is bound but suspended or deleted.
// errors.Is(err, ErrUnknownTenant) holds.
type InactiveTenantError struct {
	Tenant tenantseal.TenantID
	Status string // "suspended" or "deleted"
}

func (e *InactiveTenantError) Error() string {
	return ErrUnknownTenant.Error() + ": the tenant is " + e.Status
}

// Is makes errors.Is(err, ErrUnknownTenant) true.
func (e *InactiveTenantError) Is(target error) bool { return target == ErrUnknownTenant }

// Tenant implements [Registry].
func (r *DBRegistry) Tenant(ctx context.Context, issuer, claim string) (tenantseal.TenantID, error) {
	k, now := registryKey{issuer, claim}, r.cfg.Now()
	r.mu.Lock()
	e, ok := r.entries[k]
	r.mu.Unlock()
	if ok && now.Before(e.until) {
		return e.tenant, e.err
	}
	tenant, err := r.lookup(ctx, issuer, claim)
	if err != nil && !errors.Is(err, ErrUnknownTenant) && !errors.Is(err, ErrIssuerMismatch) {
		return tenantseal.TenantID{}, err // not held: the next request asks again
	}
	ttl := r.cfg.TTL
	if err != nil {
		ttl = r.cfg.NegativeTTL
	}
	r.store(k, registryEntry{tenant: tenant, err: err, until: now.Add(ttl)}, now)
	return tenant, err
}

// Forget drops every answer held, so that the next lookup of each binding asks the database: after a
// change the process must see at once, in tests or an operator's tool.
func (r *DBRegistry) Forget() {
	r.mu.Lock()
	defer r.mu.Unlock()
	clear(r.entries)
}

func (r *DBRegistry) store(k registryKey, e registryEntry, now time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.entries[k]; !ok && len(r.entries) >= r.cfg.MaxEntries {
		for old, oe := range r.entries {
			if !now.Before(oe.until) {
				delete(r.entries, old)
			}
		}
		for old := range r.entries { // still full: make room for one, the map picks which
			if len(r.entries) < r.cfg.MaxEntries {
				break
			}
			delete(r.entries, old)
		}
	}
	r.entries[k] = e
}

// lookup asks the database, as the app role.
func (r *DBRegistry) lookup(ctx context.Context, issuer, claim string) (tenantseal.TenantID, error) {
	if len(issuer) > maxIssuerLen || len(claim) > MaxClaimLen {
		return tenantseal.TenantID{}, ErrUnknownTenant
	}
	var key, status *string
	var other bool
	err := r.q.QueryRow(ctx, "SELECT tenant_key, tenant_status, other_issuer FROM tenantseal.tenant_binding($1, $2)", issuer, claim).
		Scan(&key, &status, &other)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return tenantseal.TenantID{}, ErrUnknownTenant
	case err != nil:
		return tenantseal.TenantID{}, fmt.Errorf("authn: look the tenant binding up: %w", err)
	case key == nil || status == nil:
		return tenantseal.TenantID{}, errors.New("authn: the tenant binding lookup answered no tenant and no reason")
	}
	id, err := tenantseal.ParseTenantID(*key)
	if err != nil {
		return tenantseal.TenantID{}, fmt.Errorf("authn: the tenant binding lookup answered a malformed key: %w", err)
	}
	if other {
		return id, ErrIssuerMismatch
	}
	if *status != "active" {
		return tenantseal.TenantID{}, &InactiveTenantError{Tenant: id, Status: *status}
	}
	return id, nil
}

// maxIssuerLen is the longest issuer tenantseal.tenant_bindings holds.
const maxIssuerLen = 2000

// DBLedger is a [TokenLedger] in tenantseal's schema (tenantseal.spent_tokens), shared by every process
// of the service: a staff token that granted an elevation in one is refused by all the others, and
// after a restart. The app role may spend a token through it, never unspend one, and cannot read it.
type DBLedger struct{ q RowQuerier }

// NewDBLedger returns a ledger that spends tokens through q, a connection as the app role.
func NewDBLedger(q RowQuerier) *DBLedger { return &DBLedger{q: q} }

// Spend implements [TokenLedger].
func (l *DBLedger) Spend(ctx context.Context, issuer, jti string, remaining time.Duration) (bool, error) {
	var fresh bool
	if err := l.q.QueryRow(ctx, "SELECT tenantseal.spend_token($1, $2, $3)", issuer, jti, remaining).Scan(&fresh); err != nil {
		return false, fmt.Errorf("authn: spend the token in the database: %w", err)
	}
	return fresh, nil
}
