package db

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/tenantseal/tenantseal"
)

// MaxReasonLen is the longest elevation reason, in bytes.
const MaxReasonLen = 500

type elevation struct {
	reason string
	ttl    time.Duration
	until  time.Time
}

type elevationKey struct{}

// Elevate returns a copy of ctx whose statements through p may read, never write, every tenant's rows
// for ttl: just-in-time access for support staff. The Principal in ctx must hold the pool's
// ElevationRole and ttl must not exceed its MaxElevation; Elevate refuses with [ErrElevation] otherwise,
// and the pool checks both again at every use. The elevation ends ttl after this call, by the pool's
// clock: then the pool refuses to sign and the database refuses any token still in flight. Every
// elevated use is reported with its reason to Config.OnElevatedUse and recorded.
func (p *Pool) Elevate(ctx context.Context, reason string, ttl time.Duration) (context.Context, error) {
	pr, ok := tenantseal.PrincipalFrom(ctx)
	if !ok || pr.Tenant.IsZero() {
		return ctx, tenantseal.ErrNoTenant
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
	return context.WithValue(ctx, elevationKey{}, elevation{reason: reason, ttl: ttl, until: p.cfg.Now().Add(ttl)}), nil
}

// ElevationFrom returns the reason and end of the elevation in ctx, if any.
func ElevationFrom(ctx context.Context) (reason string, until time.Time, ok bool) {
	e, ok := ctx.Value(elevationKey{}).(elevation)
	return e.reason, e.until, ok
}
