package repo

import (
	"errors"

	"github.com/tenantseal/tenantseal"
	"github.com/tenantseal/tenantseal/keys"
)

// Errors of the repositories; use errors.Is. They are returned as they are, never wrapped in more text,
// so each message has one prefix. An error of the database arrives as "repo: <operation> <table>:
// <cause>", its *pgconn.PgError reachable with errors.As; errors of the keyring arrive as the keys
// package made them. No message contains decrypted data.
var (
	// ErrNotFound means no row with that key (or value) exists for the Principal's tenant. Another
	// tenant's row is not found either: the repositories are no existence oracle.
	ErrNotFound = errors.New("tenantseal: not found")
	// ErrConflict means an Update carried a stale version: someone else updated the row first.
	ErrConflict = errors.New("tenantseal: stale version")
	// ErrInvalidCursor means a List cursor was not one that List returned.
	ErrInvalidCursor = errors.New("tenantseal: invalid cursor")
	// ErrInvalidQuery means a List, Count or FindBy named a column it cannot compare (missing, encrypted,
	// without a blind index) or a limit out of range, or a Get or Delete took an ID of another kind than
	// the table's key (or out of an integer key's range). Nothing was sent.
	ErrInvalidQuery = errors.New("tenantseal: invalid query")
	// ErrTenantMismatch is tenantseal.ErrTenantMismatch: a struct carried a tenant id other than the
	// Principal's, reported as a [*MismatchError]. Nothing was written.
	ErrTenantMismatch = tenantseal.ErrTenantMismatch
	// ErrNoTenant is tenantseal.ErrNoTenant: the context has no Principal.
	ErrNoTenant = tenantseal.ErrNoTenant
	// ErrTampered is keys.ErrTampered: a stored ciphertext does not decrypt for its row.
	ErrTampered = keys.ErrTampered
)
