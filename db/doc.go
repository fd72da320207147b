// Package db runs SQL under a verified tenant context, so that PostgreSQL row-level security, not
// application code, decides which rows a request can touch.
//
// # Principal and context
//
// Authentication middleware puts the caller into the request's context with
// [tenantseal.WithPrincipal]. No method of this package takes a tenant id as an argument: the tenant
// always comes from the Principal. A context without one fails with [tenantseal.ErrNoTenant] before any
// SQL is sent.
//
// # Scoped execution
//
// Every statement runs under a token that names the tenant and subject, expires after Config.TokenTTL and
// is signed with Config.SigningKey. It is set with set_config(..., true), transaction-local, in the same
// round trip as the statement ([Pool.Exec], [Pool.Query], [Pool.QueryRow]) or as BEGIN ([Pool.Tx]). The
// database verifies it once per statement in a SECURITY DEFINER function and raises SQLSTATE TS401
// ([ErrInvalidContext]) for anything forged, altered, expired or signed with a retired key.
//
// # Safe roles
//
// [Open] refuses to serve as a role that row-level security would not restrict: a superuser, a role with
// BYPASSRLS, a member of the owner role, or a table owner. Connect as the app role that
// `tenantseal bootstrap` creates.
//
// # Elevation
//
// Support staff read across tenants only through [Pool.Elevate]: a reason, a TTL no longer than
// Config.MaxElevation, read-only, reported to Config.OnElevatedUse.
package db
