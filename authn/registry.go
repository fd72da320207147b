package authn

import (
	"context"
	"fmt"
	"slices"

	"github.com/tenantseal/tenantseal"
)

// Registry maps the value of an issuer's tenant claim to a tenant, and knows which issuers may speak
// for which tenant: a token of issuer X that names a tenant bound to issuer Y is refused. It is the
// only place where a token's claim becomes a tenant id.
type Registry interface {
	// Tenant returns the tenant that issuer names with claim, the value of its tenant claim. It fails
	// with [ErrUnknownTenant] when no tenant is bound to claim, and with [ErrIssuerMismatch] when a
	// tenant is bound to claim but not for issuer, returning that tenant as well so the refusal can
	// name it. Any other error refuses the request as unavailable (HTTP 503), never as authenticated.
	// A registry that knows tenant status refuses a suspended or deleted tenant with ErrUnknownTenant.
	// It is called once per request: keep it in memory or cache it.
	Tenant(ctx context.Context, issuer, claim string) (tenantseal.TenantID, error)
}

// Binding binds one tenant to the value by which identity providers name it.
type Binding struct {
	Tenant tenantseal.TenantID
	// Claim is the tenant claim's value for this tenant: an Auth0 organization id, a Keycloak
	// organization alias, an Entra ID tenant id, or the tenant id itself for a custom claim.
	Claim string
	// Issuers are the issuer URLs that may name the tenant by Claim. At least one.
	Issuers []string
}

// StaticRegistry is a [Registry] held in memory, built once from bindings: for configuration files
// and tests. It is safe for concurrent use.
type StaticRegistry struct {
	byClaim map[string][]Binding
}

// NewStaticRegistry returns a registry of bindings. A claim value may be bound several times, for
// different issuers (two identity providers may both call a tenant "acme"), but one issuer may not
// name two tenants by one value.
func NewStaticRegistry(bindings ...Binding) (*StaticRegistry, error) {
	r := &StaticRegistry{byClaim: map[string][]Binding{}}
	for _, b := range bindings {
		switch {
		case b.Tenant.IsZero():
			return nil, fmt.Errorf("authn: binding of claim %q has no tenant", b.Claim)
		case b.Claim == "":
			return nil, fmt.Errorf("authn: binding of tenant %s has no claim value", b.Tenant)
		case len(b.Issuers) == 0:
			return nil, fmt.Errorf("authn: binding of tenant %s has no issuer", b.Tenant)
		}
		for _, other := range r.byClaim[b.Claim] {
			for _, iss := range b.Issuers {
				if slices.Contains(other.Issuers, iss) {
					return nil, fmt.Errorf("authn: issuer %s names two tenants by %q", iss, b.Claim)
				}
			}
		}
		b.Issuers = slices.Clone(b.Issuers)
		r.byClaim[b.Claim] = append(r.byClaim[b.Claim], b)
	}
	return r, nil
}

// Tenant implements [Registry].
func (r *StaticRegistry) Tenant(_ context.Context, issuer, claim string) (tenantseal.TenantID, error) {
	bs := r.byClaim[claim]
	for _, b := range bs {
		if slices.Contains(b.Issuers, issuer) {
			return b.Tenant, nil
		}
	}
	if len(bs) > 0 {
		return bs[0].Tenant, ErrIssuerMismatch
	}
	return tenantseal.TenantID{}, ErrUnknownTenant
}
