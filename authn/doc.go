// Package authn turns an OIDC access token into the [tenantseal.Principal] that every statement runs
// under: the tenant always comes from a verified token, never from the client.
//
// # Issuers
//
// An [Authenticator] trusts the identity providers of [Config.Issuers], several at once: each with its
// exact issuer URL, its audiences, its signature algorithms (asymmetric only) and where its tokens name
// the tenant and the roles ([ClaimMapping]). A [Registry] binds each tenant to the value of that claim
// and to the issuers allowed to speak for it: [DBRegistry] reads the bindings that the owner keeps in
// tenantseal's schema (`tenantseal tenants bind`), through a lookup that answers the app role one
// (issuer, claim value) pair at a time, and holds answers for a short TTL; [StaticRegistry] holds them
// in memory:
//
//	reg, err := authn.NewDBRegistry(pool.Unscoped(), authn.DBRegistryConfig{})
//	// or: authn.NewStaticRegistry(authn.Binding{Tenant: acme, Claim: "org_8f3k", Issuers: []string{auth0}})
//	a, err := authn.New(ctx, authn.Config{
//		Issuers: []authn.Issuer{{
//			URL:       "https://acme.eu.auth0.com/",
//			Audiences: []string{"https://api.example.com"},
//			Claims:    authn.ClaimMapping{Tenant: authn.ClaimPath{"org_id"}, Roles: authn.ClaimPath{"https://example.com/roles"}},
//		}, {
//			URL:            "https://sso.example.com/realms/staff",
//			StaffAudiences: []string{"support-console"},
//			Claims:         authn.ClaimMapping{Roles: authn.ClaimPath{"realm_access", "roles"}},
//		}},
//		Registry: reg,
//		Recorder: auditWriter,
//	})
//	defer a.Close()
//
// Signing keys are fetched from each issuer's JWKS (found through discovery unless Issuer.JWKSURL is
// set), held by kid, refreshed in the background, and fetched again on a token with an unknown kid at
// most once per Config.MinRefetchInterval and issuer: forged tokens cannot make the service flood the
// identity provider.
//
// # What is verified, and where
//
//	header:    compact JWS, one signature, alg in the issuer's list (never none or HS*), a kid,
//	           typ at+jwt when the issuer sets it (Issuer.TypedTokens), no ID token
//	signature: go-oidc's verifier with the issuer's key for the kid (go-jose)
//	iss:       exactly a configured issuer; the token's key comes from that issuer only
//	aud:       one of the issuer's tenant audiences, or of its staff audiences, not both
//	time:      exp, nbf, iat at Config.Now within Config.Skew; exp - iat at most Config.MaxLifetime
//	tenant:    the issuer's tenant claim names exactly one tenant, bound to this issuer by the Registry
//	subject:   issuer URL + "#" + sub, so two issuers' users never share a subject
//	client:    a tenant in a header, query parameter, path or body must be the token's ([Authenticator.CheckTenant])
//
// Each refusal is a [*TokenError] or [*MismatchError] (errors.Is with the sentinels of this package),
// recorded through Config.Recorder with the request's source, and counted per source: a burst raises
// an audit.Alert ([BurstConfig]).
//
// # Middleware
//
// [Authenticator.Middleware] has the signature of net/http and chi middleware. It answers refusals with
// RFC 6750 challenges and serves the request with the Principal in its context, which the db, repo and
// keys packages take the tenant from:
//
//	mux.Handle("/v1/", a.Middleware(api))
//
//	func (s *server) getInvoice(w http.ResponseWriter, r *http.Request) {
//		inv, err := s.invoices.Get(r.Context(), id) // the token's tenant, enforced by PostgreSQL
//	}
//
// # Step-up for elevation
//
// Staff tokens (Issuer.StaffAudiences) name no tenant: behind [Authenticator.StaffMiddleware] they read
// nothing until [Authenticator.Elevate], or the [Authenticator.StepUp] middleware, moves the staff
// Principal into one tenant through db.Pool.Elevate: read-only, time-boxed, each statement recorded with
// its reason. Give the pool [Authenticator.AuthorizeElevation] as db.Config.AuthorizeElevation: it
// refuses tenant users' tokens whatever their roles, and staff tokens without MFA in amr or acr, with an
// auth_time older than StepUp.MaxAge, or whose jti granted an elevation already, at the grant and again
// before every elevated statement. A token grants one elevation: StepUp.Ledger remembers spent tokens,
// in the process by default, or for every process of the service with a [DBLedger]. A refusal answers with the RFC 9470 challenge
// insufficient_user_authentication.
//
// # Background jobs
//
// A [Sealer] carries the Principal through a job queue: [Sealer.Seal] when enqueuing, [Sealer.Open]
// when dequeuing, which refuses an envelope that is tampered with, expired or attached to another
// job's payload, and returns the context the job runs in, as the tenant that enqueued it.
//
// Package authntest is an OpenID provider for tests and development: it signs tokens, rotates keys and
// serves discovery and JWKS on loopback.
package authn
