// Package rekey moves a tenant's stored ciphertexts and blind indexes under its current primary keys
// after a rotation, and counts which keys stored values still need, so that retiring the others is safe.
//
// # Rotation, step by step
//
// An operator (the owner role) rotates a tenant's keysets with [pgstore.Admin.Rotate]: new values are
// written under the new primary keys, old ones keep decrypting. [Reencrypt], run as the app role with a
// Principal of the tenant, rewrites every registered column (tenantseal.encrypted_columns) still under
// an old key; [Usage] then counts what each key id still produces, and [pgstore.Admin.Retire] disables
// the keys nothing needs, once no application cache can still encrypt under them:
//
//	ctx := tenantseal.WithPrincipal(ctx, tenantseal.Principal{Tenant: id, Subject: "rekey"})
//	st, err := rekey.Reencrypt(ctx, pool, kr, rekey.ReencryptOptions{Lock: conn})
//	// ...
//	u, err := rekey.Usage(ctx, pool)
//	// ...
//	retired, err := admin.Retire(ctx, id, u, keys.RetireOptions{})
//
// One run per tenant at a time: ReencryptOptions.Lock, a connection of its own, holds the tenant's
// advisory lock for the run, and a second run fails at once with [ErrBusy]. Its counts are of what
// committed, so an interrupted run reports what the database holds.
//
// # Unreadable values
//
// A value that does not decrypt for its row (tampered, copied from another row, under a key the
// keyset lacks, or crypto-shredded) is left as it is, named in [ReencryptStats.Quarantined], recorded by
// the Keyring's Recorder, and put on the tenant's quarantine list (tenantseal.quarantine, [Quarantined]).
// The ways forward: restore the value (a later run sees it written again, and takes it off the list);
// enable the key it names again and [Release] the list, so the next run examines it again; or accept
// the loss and retire with keys.RetireOptions.SkipQuarantined, which [Usage] makes possible by counting
// quarantined values apart.
//
// # Concurrent writes
//
// Each row is rewritten only if it still holds what was read (compare and set), so an application write
// that lands meanwhile is never overwritten: it counts in [ReencryptStats.Raced], and a second run moves
// it if it still needs moving. A run is resumable: what is already under the primary keys is skipped.
//
// # Tables
//
// Every registered table must carry the tenant in a tenant_id column and a uuid row key in id, which is
// also the row part of the ciphertexts' associated data. Identifiers are quoted, so any table, schema
// or column name works.
//
// Errors carry one prefix: "rekey: " before a cause from Postgres; an error that has one already (a
// sentinel's "tenantseal: ", db's) keeps it in front, and what failed follows.
package rekey
