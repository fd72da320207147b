// Package tenantseal holds the foundation types that every other package of tenantseal shares: who a
// request acts for ([Principal], [TenantID]) and what is recorded when someone tries to cross a tenant
// boundary ([Event], [EventKind], [Recorder]).
//
// It imports nothing of the rest of tenantseal, so the connection pool ([github.com/tenantseal/tenantseal/db]),
// the field encryption ([github.com/tenantseal/tenantseal/keys]) and the audit log
// ([github.com/tenantseal/tenantseal/audit]) all stand on it without importing each other.
//
// # Principal
//
// Authentication middleware, once the caller's credentials are verified, puts the caller into the
// request's context:
//
//	ctx = tenantseal.WithPrincipal(ctx, tenantseal.Principal{Tenant: tenant, Subject: user})
//
// No method of tenantseal takes a tenant id as an argument: the tenant always comes from the Principal
// in the context, and a context without one fails with [ErrNoTenant] before anything is sent.
package tenantseal
