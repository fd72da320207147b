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

// Elevate returns a copy of ctx whose statements may read, never write, every tenant's rows for ttl:
// just-in-time access for support staff. The tenantseal.Principal in ctx must hold the pool's ElevationRole and ttl
// must not exceed its MaxElevation; the pool checks both at use and refuses with [ErrElevation]. Once ttl
// has passed, the pool refuses to sign and the database refuses any token still in flight. Every elevated
// use is reported with its reason to Config.OnElevatedUse.
func Elevate(ctx context.Context, reason string, ttl time.Duration) (context.Context, error) {
	if _, ok := tenantseal.PrincipalFrom(ctx); !ok {
		return ctx, tenantseal.ErrNoTenant
	}
	reason = strings.TrimSpace(reason)
	if reason == "" {
		return ctx, fmt.Errorf("%w: a reason is required", ErrElevation)
	}
	if len(reason) > MaxReasonLen {
		return ctx, fmt.Errorf("%w: reason longer than %d bytes", ErrElevation, MaxReasonLen)
	}
	if ttl <= 0 {
		return ctx, fmt.Errorf("%w: ttl must be positive", ErrElevation)
	}
	return context.WithValue(ctx, elevationKey{}, elevation{reason: reason, ttl: ttl, until: time.Now().Add(ttl)}), nil
}

// ElevationFrom returns the reason and end of the elevation in ctx, if any.
func ElevationFrom(ctx context.Context) (reason string, until time.Time, ok bool) {
	e, ok := ctx.Value(elevationKey{}).(elevation)
	return e.reason, e.until, ok
}
