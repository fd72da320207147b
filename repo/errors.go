package repo

import (
	"errors"

	"github.com/tenantseal/tenantseal"

	"github.com/tenantseal/tenantseal/keys"
)

// Errors of the repositories; use errors.Is. Anything else from the database arrives wrapped, its
// *pgconn.PgError reachable with errors.As. No message contains decrypted data.
var (
	// ErrNotFound means no row with that id (or value) exists for the Principal's tenant. Another
	// tenant's row is not found either: the repositories are no existence oracle.
	ErrNotFound = errors.New("tenantseal: not found")
	// ErrConflict means an Update carried a stale version: someone else updated the row first.
	ErrConflict = errors.New("tenantseal: stale version")
	// ErrTenantMismatch means a struct carried a tenant id other than the Principal's. Nothing was written.
	ErrTenantMismatch = errors.New("tenantseal: tenant id differs from the principal's")
	// ErrTooLarge means a document body exceeds the repository's limit.
	ErrTooLarge = errors.New("tenantseal: body exceeds the size limit")
	// ErrNoTenant is tenantseal.ErrNoTenant: the context has no Principal.
	ErrNoTenant = tenantseal.ErrNoTenant
	// ErrTampered is keys.ErrTampered: a stored ciphertext does not decrypt for its row.
	ErrTampered = keys.ErrTampered
)
