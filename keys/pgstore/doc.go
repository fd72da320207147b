// Package pgstore keeps tenant keysets and the registry of encrypted columns in PostgreSQL, for package
// keys, which knows nothing of storage.
//
// # Loading keysets
//
// The application's [keys.Keyring] loads wrapped keysets through the app role's pool with [Loader]:
// row-level security on tenantseal.tenant_keysets lets each Principal read only its own tenant's
// keysets, so even a Keyring asked for another tenant's would get [keys.ErrNoKeyset].
//
//	kr, err := keys.NewKeyring(keys.Config{KEK: kek, Loader: pgstore.Loader(pool)})
//
// Inside a transaction, [WithQuerier] makes the load use it rather than a second connection.
// [CheckKEK] tells at startup whether a KEK is the one the database's keysets were wrapped with.
//
// # Administering keysets
//
// An [Admin] (the owner role, never the application) creates a tenant's keysets, rotates, retires,
// re-enables and destroys keys, re-wraps every keyset under a new KEK, gives a tenant a KEK of its own
// and crypto-shreds a tenant; with [Admin.WithRecorder] it records each change as an operator action:
//
//	admin := pgstore.NewAdmin(ownerConn, kek).WithRecorder(auditWriter)
//	added, err := admin.Rotate(ctx, tenant)
//	// ... package rekey moves stored values under the new keys and counts what still needs the old ones
//	retired, err := admin.Retire(ctx, tenant, usage, keys.RetireOptions{})
//
// # Rotation that loses nothing
//
// Every change raises the keyset's version (the Loader reports it, so Keyrings notice within seconds),
// and a rotation records when the new primary took over. [Admin.Retire] refuses with [ErrTooSoon] until
// the database's max_cache_ttl plus write_grace ([ReadKeySettings], [Admin.SetKeySettings]) have passed
// since then: the Loader caps every Keyring's cache at max_cache_ttl, so no process can then still
// encrypt under a key about to be disabled. A retired key is disabled, not gone: [Admin.Enable] turns it
// back on, until [Admin.Destroy] removes it, which refuses while a stored value still names it.
// [Status] reports every tenant's keys, their ages, its KEK and when retiring is allowed, without a KEK.
//
// [Admin.CreateKeysetsIn] works inside a transaction of the caller's, so that a tenant's row and its
// keysets commit together.
//
// # The registry
//
// [Columns] reads tenantseal.encrypted_columns: which columns hold ciphertext, their blind index
// columns and normalizers. Applications register their own columns in their migrations.
//
// Errors carry one prefix: "pgstore: " before a cause from Postgres, or the sentinel's
// "tenantseal: " with what failed after it.
package pgstore
