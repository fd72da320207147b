// Package repo provides typed, tenant-scoped repositories over your own tables, with transparent field
// encryption.
//
// # Describing a table
//
// A struct describes its table once, in `ts` tags; [New] checks the description against the live
// catalog and builds every statement from it, so a tag naming a missing column or an encrypted field of
// an unsupported type fails at start, not at the first query:
//
//	type Patient struct {
//		ClinicID tenantseal.TenantID `ts:"clinic_id,tenant"`
//		ID       repo.ID             `ts:"patient_id,pk"`
//		Name     string              `ts:"display_name"`
//		Email    string              `ts:"email,encrypted,bidx=email_bidx,normalize=email"`
//		Version  int64               `ts:"version,version"`
//		Created  time.Time           `ts:"created_at,readonly"`
//	}
//
//	patients, err := repo.New[Patient](ctx, pool, keyring, "clinic.patients")
//
// Two columns are required, named as you like: the tenant column (tag option tenant, a
// tenantseal.TenantID on a uuid column) and the row's id (pk, an [ID] on a uuid column), which together
// identify a row: every statement compares both. Other options: encrypted (string, []byte or *string in
// Go; bytea ciphertext in the database, registered in tenantseal.encrypted_columns), bidx=col (its blind
// index column), normalize=exact|lower|email, version (optimistic concurrency), readonly (set by the
// database), updated (set to now() by Update; on Insert the column's default applies).
//
// Row-level security on the table is yours to declare: tenantseal.protect_table does it for a tenant
// column named tenant_id; for another name, write the policy comparing it with
// (SELECT tenantseal.current_tenant()). A miss by id is reported to the recorder as it is
// (tenantseal.EventLookupMiss), with no further query, so that it takes the caller the same time whether
// the id is another tenant's or nobody's; the audit writer has the database tell the two apart on its
// own role (tenantseal.exists_elsewhere) and records another tenant's id as a foreign_id attempt. That
// function reads the columns tenant_id and id, so for a table whose columns are named otherwise no miss
// is reported.
//
// # Using it
//
// Every method takes ctx first and the tenant only from its tenantseal.Principal: Get, List (keyset
// pagination with an opaque cursor), Count, Insert, InsertMany, Update (compare-and-set on the version),
// Delete and FindBy (on a blind index). Reads are one round trip, and every query carries an explicit
// predicate on the tenant column beside row-level security. [Table.With] runs a repository inside a
// db.Pool.Tx transaction beside custom SQL; [Table.Columns], [Table.Dest] and [Table.DB] let that SQL (a
// join, say) read rows through the repository's mapping and decryption.
//
// # Errors
//
// [ErrNotFound] (also for another tenant's row: no existence oracle), [ErrConflict] (stale version),
// [ErrTenantMismatch] (a struct naming another tenant; nothing written), [ErrNoTenant],
// [ErrInvalidCursor], [ErrInvalidQuery], [ErrTampered]; each is returned as it is (a tenant mismatch as a
// [*MismatchError] that matches ErrTenantMismatch). A database error
// arrives as "repo: <operation> <table>: <cause>", its *pgconn.PgError reachable with errors.As. No
// message contains decrypted data.
package repo
