package authn

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/tenantseal/tenantseal"
	"github.com/tenantseal/tenantseal/db"
)

// AuthorizeElevation is a db.Config.AuthorizeElevation that grants elevation only with step-up:
//
//	cfg.AuthorizeElevation = authenticator.AuthorizeElevation
//
// The Principal must be one this Authenticator verified in the same context (a Principal built by hand
// cannot elevate), from a staff token: an issuer's StaffAudiences, never a tenant user's token, whatever
// its roles. The token must show multi-factor authentication (an amr of StepUp.AMR or an acr of
// StepUp.ACR), an auth_time at most StepUp.MaxAge old and must not have expired; these are checked at
// the grant and again before every elevated statement, so an elevation lapses with its login. At the
// grant the token's jti is spent in StepUp.Ledger: a token grants one elevation (one request through
// [Authenticator.StepUp], one [Authenticator.Elevate]), and a token without jti none. A second grant is
// refused whichever process of the service sees it when they share a [DBLedger]. Each
// refusal is a [*StepUpError] and is recorded as tenantseal.EventStepUpRefused.
func (a *Authenticator) AuthorizeElevation(ctx context.Context, req db.ElevationRequest) error {
	problem := a.stepUpProblem(ctx, req)
	if problem == "" {
		return nil
	}
	err := &StepUpError{Problem: problem, ACRValues: a.cfg.StepUp.ACR, MaxAge: int(a.cfg.StepUp.MaxAge / time.Second)}
	ev := tenantseal.Event{Kind: tenantseal.EventStepUpRefused, TargetTenant: req.Tenant, Operation: "elevate",
		Detail: fmt.Sprintf("%s; elevation reason %q; source %s", problem, req.Reason, sourceFrom(ctx))}
	if req.Use {
		ev.Operation = "elevated use"
	}
	a.record(ctx, ev)
	return err
}

// stepUpProblem says why req may not elevate, or "".
func (a *Authenticator) stepUpProblem(ctx context.Context, req db.ElevationRequest) string {
	p, su := req.Principal, a.cfg.StepUp
	v, ok := verifiedFrom(ctx)
	switch {
	case !ok:
		return "no verified token in the context"
	case !v.staff:
		return "not a staff token: a tenant user's token never elevates"
	case !sameLogin(v.principal, p):
		return "the principal differs from the one its token verified"
	case req.Tenant != p.Tenant:
		return "the elevation names another tenant than the one the principal was moved into"
	}
	now, skew := a.cfg.Now(), a.cfg.Skew
	switch {
	case !now.Before(p.Auth.Expires.Add(skew)):
		return "the token has expired"
	case !slices.ContainsFunc(p.Auth.AMR, func(m string) bool { return slices.Contains(su.AMR, m) }) &&
		!(p.Auth.ACR != "" && slices.Contains(su.ACR, p.Auth.ACR)):
		return "no multi-factor authentication in amr or acr"
	case p.Auth.AuthTime.IsZero():
		return "no auth_time in the token"
	case now.Sub(p.Auth.AuthTime) > su.MaxAge+skew:
		return fmt.Sprintf("last login %v ago, more than %v", now.Sub(p.Auth.AuthTime).Truncate(time.Second), su.MaxAge)
	case req.Use:
		return ""
	case p.Auth.TokenID == "":
		return "no jti in the token: it cannot be spent once"
	}
	fresh, err := a.ledger.Spend(ctx, p.Auth.Issuer, p.Auth.TokenID, p.Auth.Expires.Add(skew).Sub(now))
	switch {
	case errors.Is(err, errCacheFull):
		return err.Error()
	case err != nil:
		a.cfg.Logger.ErrorContext(ctx, "tenantseal authn: token ledger failed", "issuer", p.Auth.Issuer, "error", err)
		return "cannot tell whether the token granted an elevation before: " + err.Error()
	case !fresh:
		return "the token granted an elevation already: log in again"
	}
	return ""
}

// sameLogin reports whether p is the verified Principal v, but for the tenant a staff Principal is
// moved into.
func sameLogin(v, p tenantseal.Principal) bool {
	va, pa := v.Auth, p.Auth
	return v.Subject == p.Subject && slices.Equal(v.Roles, p.Roles) &&
		va.Issuer == pa.Issuer && va.Audience == pa.Audience && va.TokenID == pa.TokenID && va.ACR == pa.ACR &&
		va.Expires.Equal(pa.Expires) && va.AuthTime.Equal(pa.AuthTime) && slices.Equal(va.AMR, pa.AMR)
}

// Elevator is what [Authenticator.Elevate] needs of a pool; *db.Pool is one.
type Elevator interface {
	Elevate(ctx context.Context, tenant tenantseal.TenantID, reason string, ttl time.Duration) (context.Context, error)
}

// Elevate moves the staff Principal of ctx into tenant and elevates it there, through pool, for reason
// and ttl: the context returned reads tenant's rows read-only, every statement recorded with the
// reason. Moved into the tenant, the staff Principal reads through the repositories and the keyring
// as that tenant's users do; it names no tenant before, so without the elevation it reads nothing. pool's db.Config.AuthorizeElevation must be a.AuthorizeElevation, which requires the step-up;
// without that hook only the pool's own checks apply. On any error, ctx is returned as it was: never a
// context that acts for tenant without the elevation.
func (a *Authenticator) Elevate(ctx context.Context, pool Elevator, tenant tenantseal.TenantID, reason string, ttl time.Duration) (context.Context, error) {
	v, ok := verifiedFrom(ctx)
	if !ok || !v.staff {
		// Refused and recorded as the hook refuses it.
		return ctx, a.AuthorizeElevation(ctx, db.ElevationRequest{Principal: principalOrZero(ctx), Tenant: tenant, Reason: reason})
	}
	if tenant.IsZero() {
		return ctx, tenantseal.ErrNoTenant
	}
	p := clonePrincipal(v.principal)
	p.Tenant = tenant
	elevated, err := pool.Elevate(tenantseal.WithPrincipal(ctx, p), tenant, reason, ttl)
	if err != nil {
		return ctx, err
	}
	return elevated, nil
}

func principalOrZero(ctx context.Context) tenantseal.Principal {
	p, _ := tenantseal.PrincipalFrom(ctx)
	return p
}

// StepUp returns middleware for staff routes, behind [Authenticator.StaffMiddleware], that elevates
// each request through pool into the tenant, and for the reason, that target reads from it, for ttl. A
// request whose target fails gets 400; one refused elevation gets the challenge of
// [Authenticator.WriteError] (401 insufficient_user_authentication without step-up). Each request
// spends its token's jti: a staff client logs in again, with MFA, for every elevated request.
func (a *Authenticator) StepUp(pool Elevator, ttl time.Duration, target func(*http.Request) (tenantseal.TenantID, string, error)) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			tenant, reason, err := target(r)
			if err != nil {
				writeJSONError(w, http.StatusBadRequest, "invalid_request", err.Error())
				return
			}
			ctx, err := a.Elevate(r.Context(), pool, tenant, reason, ttl)
			if err != nil {
				a.WriteError(w, err)
				return
			}
			next.ServeHTTP(w, r.WithContext(ctx))
		})
	}
}

// TokenLedger remembers the staff tokens that granted an elevation, so that each token grants one:
// [Authenticator.AuthorizeElevation] spends a token's jti at the grant. The default, StepUp.Ledger nil,
// is held in the process: a second process, or the same after a restart, would let the token elevate
// again. [DBLedger] is shared by every process of one database.
type TokenLedger interface {
	// Spend spends the token of issuer with id jti, which stays valid for remaining, and reports
	// whether it was unspent: true once per token for as long as it is valid, false after. It must
	// remember the token for at least remaining. An error refuses the elevation.
	Spend(ctx context.Context, issuer, jti string, remaining time.Duration) (bool, error)
}

// replayCache is the in-process TokenLedger: spent token ids until their tokens expire.
type replayCache struct {
	mu    sync.Mutex
	max   int
	now   func() time.Time
	spent map[string]time.Time // id -> forget after
}

func newReplayCache(max int, now func() time.Time) *replayCache {
	return &replayCache{max: max, now: now, spent: map[string]time.Time{}}
}

// errCacheFull refuses an elevation when the cache holds StepUp.ReplayCacheSize live ids.
var errCacheFull = errors.New("too many elevations in flight: the replay cache is full")

// Spend implements TokenLedger.
func (c *replayCache) Spend(_ context.Context, issuer, jti string, remaining time.Duration) (bool, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	id, now := issuer+"#"+jti, c.now()
	if t, ok := c.spent[id]; ok && now.Before(t) {
		return false, nil
	}
	if len(c.spent) >= c.max {
		for k, t := range c.spent {
			if !now.Before(t) {
				delete(c.spent, k)
			}
		}
		if len(c.spent) >= c.max {
			return false, errCacheFull
		}
	}
	c.spent[id] = now.Add(remaining)
	return true, nil
}
