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
// tenantseal.TenantID on a uuid, bigint, integer, text or varchar column) and the row's key (pk), which
// together identify a row: every statement compares both. Other options: encrypted (string, []byte or
// *string in Go; bytea ciphertext in the database, registered in tenantseal.encrypted_columns), bidx=col
// (its blind index column), normalize=exact|lower|email, version (optimistic concurrency), readonly
// (set by the database), updated (set to now() by Update; on Insert the column's default applies).
//
// # Row keys
//
// The pk field is an [ID] on a uuid column, an int64 on a bigint or integer column (identity and serial
// included), an int32 on an integer column, or a string on a text or varchar column; the primary key
// may be (tenant, key) or the key alone with a UNIQUE (tenant, key) beside it. Get and Delete take an
// [ID] whatever the key: [NewID] or [ParseID] for uuids, [IntID] and [TextID] for the others; an ID of
// another kind fails with [ErrInvalidQuery] before anything is sent. One ID type rather than a second
// type parameter (Table[T, K]) keeps every repository a Table[T], so the code written for uuid tables
// (Table[Customer], Page.Unreadable, events' row keys) compiles and reads the same for the others, and
// an ID carries its kind, so an integer 7 and a text "7" never compare equal.
//
//	type Project struct {
//		CompanyID tenantseal.TenantID `ts:"company_id,tenant"` // bigint, the registry's key
//		ID        int64               `ts:"id,pk"`             // bigint GENERATED ALWAYS AS IDENTITY
//		Title     string              `ts:"title"`
//	}
//	p := Project{Title: "Apollo"}
//	err := projects.Insert(ctx, &p)             // p.ID is the identity the database chose
//	got, err := projects.Get(ctx, repo.IntID(p.ID))
//
// A zero uuid key is filled by [NewID] on Insert. A zero key of another type is left to the database's
// default (identity, serial, DEFAULT) and read back; a GENERATED ALWAYS key is never written, and
// a zero key where the column has no default is refused. Encrypted fields are bound to the row's key,
// its canonical text (a uuid's the same as before keys of other types, so stored ciphertexts still
// open): for a generated key they are written by an UPDATE right after the INSERT, in one transaction,
// so their columns must be nullable or have a default. List orders by the key, whatever its type.
//
// Row-level security on the table is yours to declare, and [New] refuses a table without it, enabled
// and forced: tenantseal.protect_table(tbl, tenant_column => ...) does it for a tenant column of any
// name and records the column in tenantseal.tenant_tables, which New compares with the tag (a struct
// tagging another column as tenant is refused); a policy of your own compares the column with
// (SELECT tenantseal.current_tenant()) or (SELECT tenantseal.current_tenant_key()::<its type>). A miss
// by key is reported to the recorder as it is (tenantseal.EventLookupMiss), with no further query, so
// that it takes the caller the same time whether the key is another tenant's or nobody's; the audit
// writer has the database tell the two apart on its own role (tenantseal.exists_elsewhere) and records
// another tenant's key as a foreign_id attempt. That function answers for the tables protect_table
// protected, by their row key column (id, else the one primary key column beside the tenant's), so a
// miss is reported for those tables whose pk is that column.
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
// On a db.Pool with read replicas, the reads (Get, List, Count, FindBy) run on a replica when ctx comes
// from db.ReadFromReplica; Insert, InsertMany, Update and Delete always run on the primary, whatever ctx
// says, and so do reads under db.OnPrimary (to read one's own writes).
//
// # Errors
//
// [ErrNotFound] (also for another tenant's row: no existence oracle), [ErrConflict] (stale version),
// [ErrTenantMismatch] (a struct naming another tenant; nothing written), [ErrNoTenant],
// [ErrInvalidCursor], [ErrInvalidQuery] (also an id of another kind than the key), [ErrTampered]; each is returned as it is (a tenant mismatch as a
// [*MismatchError] that matches ErrTenantMismatch). A database error
// arrives as "repo: <operation> <table>: <cause>", its *pgconn.PgError reachable with errors.As. No
// message contains decrypted data.
package repo
