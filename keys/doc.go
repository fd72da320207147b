// Package keys encrypts sensitive fields with each tenant's own Tink keysets and computes blind indexes
// for exact lookups, so that a stolen backup, a read replica or an injected query never yields a
// sensitive field in clear, and one tenant's ciphertext is useless anywhere but its own row.
//
// # Keys
//
// A key-encryption key ([KEK]) wraps every tenant keyset and never lives in the database: a local keyset
// file for development ([InitLocalKEK], "local-keyset://<path>") or a KMS key through Tink's KMS client
// registry ("gcp-kms://", "aws-kms://", "hcvault://"), opened with [OpenKEK]. Each tenant has an AES-256-GCM
// keyset for fields and an HMAC-SHA256 PRF keyset for blind indexes, stored wrapped in
// tenantseal.tenant_keysets with the tenant id as associated data: a keyset row copied to another
// tenant fails to open ([ErrKeysetTampered]). The app role reads only its own tenant's row.
//
// # Fields
//
// [Keyring.Encrypt] binds each ciphertext to tenant, table, column and row through Tink's associated
// data; [Keyring.Decrypt] of a ciphertext copied to another column, row or tenant, truncated or altered,
// fails with [ErrTampered] as a [*FieldError]. Opened keysets are cached, bounded in entries and TTL;
// concurrent misses for one tenant open it once.
//
// # Blind indexes
//
// [Keyring.BlindIndex] is a 4-byte key id and a 16-byte truncated HMAC of the normalised value (see
// [Normalizers]), bound to tenant, table and column. What it leaks: which rows of one tenant and column
// hold equal values, and so how often a value repeats there. What it does not: anything across tenants or
// columns, whose keys or inputs differ, nor the value itself to anyone without the tenant's PRF key.
// [Keyring.BlindIndexes] returns the index under every enabled key, so lookups keep matching across a
// rotation.
//
// # Lifecycle
//
// [Admin] (the owner role) creates keysets with the tenant, rotates them, retires keys no row needs any
// more, re-wraps everything under a new KEK and crypto-shreds a tenant. [Reencrypt] (the app role)
// rewrites stale ciphertexts under the current primary keys with compare-and-set, so a concurrent
// application write is never lost. [Usage] tells [Admin.Retire] which keys rows still need.
//
// Nothing here puts plaintext, key material or ciphertext into an error, a log or a String method.
package keys
