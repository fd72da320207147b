package db

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/tenantseal/tenantseal"
)

// MaxReasonLen is the longest elevation reason, in bytes.
const MaxReasonLen = 500

type elevation struct {
	tenant tenantseal.TenantID // of the support case: the one tenant the elevation reads
	reason string
	ttl    time.Duration
	until  time.Time
}

type elevationKey struct{}

// Elevate returns a copy of ctx whose statements through p may read, never write, the rows of tenant,
// the tenant of the support case, for ttl: just-in-time access for support staff. The Principal in ctx
// (staff, of its own tenant) must hold the pool's ElevationRole and ttl must not exceed its
// MaxElevation; Elevate refuses with [ErrElevation] otherwise, and the pool checks both again at every
// use. The token names tenant and the elevation: the database honours it only for an active tenant and
// in a read-only transaction, which the pool begins for every elevated statement. There is no elevation
// to all tenants. The elevation ends ttl after this call, by the pool's clock: then the pool refuses to
// sign and the database refuses any token still in flight. Every elevated use is reported with its
// reason to Config.OnElevatedUse and recorded, naming tenant as its target.
func (p *Pool) Elevate(ctx context.Context, tenant tenantseal.TenantID, reason string, ttl time.Duration) (context.Context, error) {
	pr, ok := tenantseal.PrincipalFrom(ctx)
	if !ok || pr.Tenant.IsZero() {
		return ctx, tenantseal.ErrNoTenant
	}
	if tenant.IsZero() {
		return ctx, fmt.Errorf("%w: name the tenant of the support case", ErrElevation)
	}
	reason = strings.TrimSpace(reason)
	switch {
	case reason == "":
		return ctx, fmt.Errorf("%w: a reason is required", ErrElevation)
	case len(reason) > MaxReasonLen:
		return ctx, fmt.Errorf("%w: reason longer than %d bytes", ErrElevation, MaxReasonLen)
	case ttl <= 0:
		return ctx, fmt.Errorf("%w: ttl must be positive", ErrElevation)
	case ttl > p.cfg.MaxElevation:
		return ctx, fmt.Errorf("%w: ttl %v exceeds the maximum %v", ErrElevation, ttl, p.cfg.MaxElevation)
	case !pr.HasRole(p.cfg.ElevationRole):
		return ctx, fmt.Errorf("%w: principal lacks the %q role", ErrElevation, p.cfg.ElevationRole)
	}
	e := elevation{tenant: tenant, reason: reason, ttl: ttl, until: p.cfg.Now().Add(ttl)}
	if err := p.authorizeElevation(ctx, pr, e, false); err != nil {
		return ctx, err
	}
	return context.WithValue(ctx, elevationKey{}, e), nil
}

// ElevationRequest is what Config.AuthorizeElevation decides on.
type ElevationRequest struct {
	Principal tenantseal.Principal
	Tenant    tenantseal.TenantID // the tenant of the support case, whose rows the elevation reads
	Reason    string
	Until     time.Time // when the elevation ends
	// Use is false when [Pool.Elevate] asks before granting, true before each use of a granted elevation.
	Use bool
}

// authorizeElevation asks Config.AuthorizeElevation, if set; its refusal always satisfies
// errors.Is(err, ErrElevation).
func (p *Pool) authorizeElevation(ctx context.Context, pr tenantseal.Principal, e elevation, use bool) error {
	if p.cfg.AuthorizeElevation == nil {
		return nil
	}
	err := p.cfg.AuthorizeElevation(ctx, ElevationRequest{Principal: pr, Tenant: e.tenant, Reason: e.reason, Until: e.until, Use: use})
	if err == nil || errors.Is(err, ErrElevation) {
		return err
	}
	return fmt.Errorf("%w: %w", ErrElevation, err)
}

// ElevationFrom returns the reason and end of the elevation in ctx, if any.
func ElevationFrom(ctx context.Context) (reason string, until time.Time, ok bool) {
	e, ok := ctx.Value(elevationKey{}).(elevation)
	return e.reason, e.until, ok
}
