// Package retention keeps each tenant's data no longer than its retention policy says: what the
// `tenantseal retention` commands do, as library calls, run by an operator as the owner role.
//
// # Policies
//
// A [Policy] is named and versioned (tenantseal.retention_policies): its [Rule]s delete the rows of a
// protected tenant table whose timestamp column is older than a maximum age, and its ShredAfter is the
// grace period after which a deleted tenant's keysets are crypto-shredded. [SetPolicy] creates or
// changes one, raising its version; tenants.SetRetentionPolicy gives a tenant its policy. Only the
// owner reads or writes policies: the app role has no privilege on them.
//
//	p, changed, err := retention.SetPolicy(ctx, owner, auditWriter, retention.Policy{Name: "standard",
//		Rules: []retention.Rule{{Table: "public.events", Column: "created_at", MaxAge: 90 * retention.Day}},
//		ShredAfter: &grace})
//
// # The retention job
//
// [Run] applies the policies, tenant by tenant: it deletes, in batches, through the application's pool
// and as the tenant (so that row-level security keeps every deletion to that tenant's rows), the rows
// past each rule's cut-off, and shreds the tenants deleted longer ago than their grace period with
// tenants.Shred. Every deletion is recorded in the audit log as a deletion [Certificate]
// (tenantseal.EventDeletionCertificate): tenant, table, row count, cut-off, policy and version, with
// the operator as the Principal; never row contents or keys. A run that finds nothing records nothing.
// Options.DryRun changes and records nothing and returns what a run would do. A run may be stopped at
// any point (what committed is certified, marked partial) and resumes when run again.
package retention
