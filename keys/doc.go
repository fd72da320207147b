// Package keys encrypts sensitive fields with each tenant's own Tink keysets and computes blind indexes
// for exact lookups, so that a stolen backup, a read replica or an injected query never yields a
// sensitive field in clear, and one tenant's ciphertext is useless anywhere but its own row.
//
// Package keys is crypto only: it holds no SQL. Package pgstore keeps the wrapped keysets in PostgreSQL
// and administers them; package rekey moves stored values under new keys.
//
// # Keys
//
// A key-encryption key ([KEK]) wraps every tenant keyset and never lives in the database: a local keyset
// file for development ([InitLocalKEK], "local-keyset://<path>") or a KMS key through Tink's KMS client
// registry ("gcp-kms://", "aws-kms://", "hcvault://"), opened with [OpenKEK]. Each tenant has an
// AES-256-GCM keyset for fields and an HMAC-SHA256 PRF keyset for blind indexes ([NewTenantKeysets]),
// stored wrapped with the tenant id as associated data: a keyset copied to another tenant fails to open
// ([ErrKeysetTampered]). A [Loader] fetches them; with pgstore it reads through row-level security, so
// each Principal reads only its own tenant's.
//
// # Fields
//
// A [Keyring] takes the tenant from the Principal in the context (tenantseal.WithPrincipal), never from
// an argument:
//
//	kr, err := keys.NewKeyring(keys.Config{KEK: kek, Loader: pgstore.Loader(pool), Recorder: auditWriter})
//	ctx = tenantseal.WithPrincipal(ctx, principal)
//	f := keys.Field{Table: "customers", Column: "email", Row: id}
//	ct, err := kr.Encrypt(ctx, f, []byte(email))
//	pt, err := kr.Decrypt(ctx, f, ct)
//
// [Keyring.Encrypt] binds each ciphertext to tenant, table, column and row through Tink's associated
// data; [Keyring.Decrypt] of a ciphertext copied to another column, row or tenant, truncated or altered,
// fails with [ErrTampered] as a [*FieldError], and the [tenantseal.Recorder] receives an event. A
// [Field] whose Tenant (read from the row) is not the Principal's is refused with
// [tenantseal.ErrTenantMismatch] before any key is used, and recorded. Opened keysets are cached,
// bounded in entries and TTL; concurrent misses for one tenant open it once. A read of many fields (a
// page of rows) decrypts them with one [Decrypter], which looks the keys up once for all of them.
//
// # Blind indexes
//
// [Keyring.BlindIndex] is a 4-byte key id and a 16-byte truncated HMAC of the normalised value (see
// [NormalizerByName]), bound to tenant, table and column. What it leaks: which rows of one tenant and
// column hold equal values, and so how often a value repeats there. What it does not: anything across
// tenants or columns, whose keys or inputs differ, nor the value itself to anyone without the tenant's
// PRF key. [Keyring.BlindIndexes] returns the index under every enabled key, so lookups keep matching
// across a rotation.
//
// # Lifecycle
//
// Storage code changes keysets only in their wrapped form, and never holds an opened one:
// [RotateWrapped] adds a new primary key, [RetireWrapped] disables the keys a [KeyUsage] shows unused,
// [EnableWrapped] turns them back on, [DestroyWrapped] removes them for good, [Rewrap] moves a keyset to
// a new KEK, and [KEK.NewCanary] and [KEK.OpensCanary] tell a wrong KEK from a tampered keyset.
// [WrappedKeys] lists a wrapped keyset's keys without the KEK.
//
// # Caches and rotation
//
// A Keyring caches opened keysets for the shorter of Config.CacheTTL and the bound the store declares
// ([Wrapped.CacheBound]: pgstore's is the database's max_cache_ttl), so a retirement that waits that
// long after a rotation (pgstore's Admin.Retire does) can never disable a key some cache still
// encrypts under. Sooner than that, caches learn of changes: over a [VersionLoader] a Keyring checks the
// stored version every Config.Revalidate, and a ciphertext naming a key the cached keysets lack makes it
// read them again (at most once a second per tenant), so that a process that cached before a rotation
// reads values written after it instead of calling them tampered.
//
// # KEKs in a KMS, and per tenant
//
// [OpenKEK] opens KMS keys through Tink's registry ([RegisterKMSClient]); [OpenKEKWith] takes clients
// of the caller's own; package keys/kms provides AWS KMS, Google Cloud KMS and Vault. A tenant may have
// a KEK of its own ([Wrapped.KEKURI], bring your own key), which the Keyring opens with Config.OpenKEK:
// its customer disabling that key makes its keysets, and only its, fail to open. A KEK's id is a
// fingerprint of the key, not of its URI's spelling.
//
// Nothing here puts plaintext, key material or ciphertext into an error, an event, a log or a String
// method.
package keys
