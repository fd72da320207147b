// Package invoicing is an example service a team could copy: an HTTP JSON API over the reference
// domain (customers and invoices, examples/reference) in which every request acts for the tenant of
// its verified access token, and PostgreSQL row-level security keeps the tenants apart.
//
// It uses all of tenantseal: [authn] middleware turns each bearer token into a Principal, whose tenant
// the repositories ([repo], through [reference]) and the pool ([db]) send to the database with every
// statement; email, phone, notes and memos are encrypted with the tenant's own keys ([keys]) and
// customers are found by a blind index of their email; every refusal and every elevated read lands in
// the audit log ([audit]); support staff read a tenant's data only read-only, elevated with step-up;
// background jobs carry the enqueuing Principal in a signed envelope.
//
// # Routes
//
//	GET  /healthz                        no token
//	GET  /v1/customers                   the tenant's customers, ?limit= and ?after= (cursor)
//	POST /v1/customers                   {"display_name", "email", "phone", "notes"}
//	GET  /v1/customers/search?email=     by email, compared trimmed and lower-cased
//	GET  /v1/customers/{id}
//	GET  /v1/invoices                    ?limit=, ?after=, ?status=
//	POST /v1/invoices                    {"customer_id", "amount_minor", "currency", "memo"}
//	GET  /v1/invoices/{id}               with its customer
//	POST /v1/invoices/{id}/issue         202: a background job issues it, as the caller's tenant
//	ANY  /admin/tenants/{tenant}/v1/...  the routes above for staff, read-only, elevated into {tenant}
//	                                     for the reason in the X-Elevation-Reason header
//
// A tenant named by the client (the X-Tenant-ID header, ?tenant=, ?tenant_id=, a "tenant_id" body
// field) must be the token's: otherwise 403, recorded as a tenant mismatch.
//
// cmd/invoicing-dev starts it with one command on a throwaway PostgreSQL and a loopback test identity
// provider, and prints curl calls to paste.
package invoicing
