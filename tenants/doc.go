// Package tenants administers the tenants of a tenantseal database: what the `tenantseal tenants`
// commands do, as library calls.
//
// # Running as the owner
//
// Every function here takes a connection as the owner role (a *pgx.Conn, *pgxpool.Pool or pgx.Tx): the
// owner administers tenantseal.tenants and tenantseal.tenant_keysets, which the app role may only read, each
// tenant its own row. Application processes never need this package; operators' tools do.
//
// # Lifecycle
//
// [Create] inserts a tenant and, through a [KeysetCreator] the caller supplies, its keysets, in one
// transaction: a tenant exists with its keysets or not at all, and this package needs no key-encryption
// key for a tenant created without keysets. keys/pgstore's Admin creates keysets:
//
//	t, err := tenants.Create(ctx, owner, "Acme", func(ctx context.Context, tx pgx.Tx, id tenantseal.TenantID) error {
//		return pgstore.NewAdmin(tx, kek).CreateKeysets(ctx, id)
//	})
//
// [List] and [Get] read tenants; [Suspend], [Resume] and [Delete] change tenantseal.tenants.status between
// [StatusActive], [StatusSuspended] and [StatusDeleted]; [Rename] renames. Deletion is final: a deleted
// tenant cannot be suspended, resumed or renamed. With the [Recording] option each change is recorded
// (tenantseal.EventTenantChange) with the operator in ctx as who made it.
//
// # Crypto-shredding
//
// [Shred] destroys a tenant's keysets, so that every encrypted field of the tenant is unreadable for
// good, marks it shredded (Tenant.ShreddedAt: reads of its old values then report keys.ErrShredded, no
// tampering alarm), and records it in the audit log through a tenantseal.Recorder (an audit.Writer),
// naming the database role that ran it. It needs no key-encryption key: an operator must be able to
// shred a tenant when the KEK is out of reach. A second shred is a no-op (Shredded.Already), so that
// automation may repeat it.
//
// # Identity bindings
//
// [Bind] lets an issuer's tokens whose tenant claim has a value act for a tenant, [Unbind] ends it and
// [Bindings] lists them (tenantseal.tenant_bindings, which the app role cannot read). An authn database
// registry answers the app role one (issuer, claim value) pair at a time through
// tenantseal.tenant_binding, which counts every lookup that finds no active tenant: [RefusedLookups].
// With [Recording], each binding and unbinding is recorded as the operator's.
//
// # Residency and retention
//
// [SetRegion] records where a tenant's data is to live ([ValidateRegion]: eu, eu-west-1), and
// [SetRetentionPolicy] gives it a retention policy, which package retention defines and applies; both
// live in tenantseal.tenant_governance, which only the owner reads or writes. The database dates a
// tenant's deletion itself (Tenant.DeletedAt): a policy's grace period before the shred counts from it.
// With [Recording], each change is recorded as the operator's.
//
// # Names
//
// A tenant's name is 1 to [MaxNameLen] bytes of valid UTF-8 without control characters; [ValidateName]
// checks it before the database sees it. No two tenants share a name, compared without regard to case
// ([ErrDuplicateName]): [Create] and [Rename] check under a lock of their own.
package tenants
