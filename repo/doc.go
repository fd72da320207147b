// Package repo provides typed, tenant-scoped repositories with transparent field encryption.
//
// # Describing a table
//
// A struct describes its table once, in `ts` tags; [New] checks the description against the live
// catalog, so a tag naming a missing column or an encrypted field of an unsupported type fails at start,
// not at the first query:
//
//	type Customer struct {
//		TenantID    tenantseal.TenantID `ts:"tenant_id,tenant"`
//		ID          repo.ID     `ts:"id,pk"`
//		DisplayName string      `ts:"display_name"`
//		Email       string      `ts:"email,encrypted,bidx=email_bidx,normalize=email"`
//		Version     int64       `ts:"version,version"`
//		CreatedAt   time.Time   `ts:"created_at,readonly"`
//	}
//
//	customers, err := repo.New[Customer](ctx, pool, keyring, "public.customers")
//
// Options: pk (the id, a [ID]), tenant (the tenant column, a tenantseal.TenantID), encrypted (string, []byte or
// *string in Go; bytea ciphertext in the database, registered in tenantseal.encrypted_columns), bidx=col
// (its blind index column), normalize=exact|lower|email, version (optimistic concurrency), readonly (set
// by the database), updated (set to now() by Update).
//
// # Using it
//
// Every method takes ctx first and the tenant only from its tenantseal.Principal: Get, List (keyset pagination
// with an opaque cursor), Count, Insert, InsertMany, Update (compare-and-set on the version), Delete and
// FindBy (on a blind index). Reads are one round trip, and every query carries an explicit tenant_id
// predicate beside row-level security. [Table.With] runs a repository inside a db.Pool.Tx transaction
// beside custom SQL.
//
// # Errors
//
// [ErrNotFound] (also for another tenant's row: no existence oracle), [ErrConflict] (stale version),
// [ErrTenantMismatch] (a struct naming another tenant; nothing written), [ErrNoTenant], [ErrTampered],
// and a wrapped *pgconn.PgError for anything else. No message contains decrypted data.
//
// The reference domain's repositories are [Customers], [Invoices] and [Documents].
package repo
