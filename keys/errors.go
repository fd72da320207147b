package keys

import (
	"errors"
	"fmt"
)

// Sentinel errors; use errors.Is. None of their messages, nor the messages that wrap them, contain
// plaintext, key material or ciphertext.
var (
	// ErrTampered means a ciphertext failed to decrypt under the associated data of the tenant, table,
	// column and row it was read from: it was altered, truncated, or copied from elsewhere.
	ErrTampered = errors.New("tenantseal: ciphertext does not decrypt for this tenant, table, column and row")
	// ErrUnknownKey means a ciphertext names a key id that the tenant's keyset does not hold (or no longer
	// enables).
	ErrUnknownKey = errors.New("tenantseal: ciphertext names a key the tenant's keyset does not hold")
	// ErrFieldTooLarge means a plaintext or ciphertext exceeds the configured size limit.
	ErrFieldTooLarge = errors.New("tenantseal: field exceeds the size limit")
	// ErrNoKeyset means the tenant has no keyset the caller can read: not created, shredded, or another
	// tenant's.
	ErrNoKeyset = errors.New("tenantseal: no keyset for this tenant")
	// ErrKeysetTampered means a wrapped keyset failed to open under the KEK with its tenant as associated
	// data: a wrong KEK, or a keyset row copied from another tenant or altered.
	ErrKeysetTampered = errors.New("tenantseal: wrapped keyset does not open for this tenant")
	// ErrKEK means the key-encryption key is missing, unreadable or not the one the database was set up with.
	ErrKEK = errors.New("tenantseal: key-encryption key unavailable or wrong")
	// ErrKeyInUse means a key cannot be retired because rows still need it.
	ErrKeyInUse = errors.New("tenantseal: key still used by rows")
	// ErrShredded means the tenant's keysets were crypto-shredded: its encrypted fields are gone for good,
	// by an operator's decision, not by tampering. It matches [ErrNoKeyset] too.
	ErrShredded = fmt.Errorf("%w: crypto-shredded", ErrNoKeyset)
)

// FieldError reports a ciphertext that cannot be read, with where it was read from. It matches
// [ErrTampered] with errors.Is; one naming a key the tenant does not hold matches [ErrUnknownKey] too.
// One of a shredded tenant matches [ErrShredded] (and not ErrTampered): the shred destroyed it. It never
// holds the ciphertext or any plaintext.
type FieldError struct {
	Table, Column, Row string
	KeyID              uint32 // the key id the ciphertext names, 0 when unreadable
	Reason             error  // ErrTampered, ErrUnknownKey or ErrShredded
	detail             string
}

func (e *FieldError) Error() string {
	return fmt.Sprintf("%v: %s.%s row %s%s", e.Reason, e.Table, e.Column, e.Row, e.detail)
}

// Unwrap returns the sentinels the error matches.
func (e *FieldError) Unwrap() []error {
	switch e.Reason {
	case ErrUnknownKey:
		return []error{ErrTampered, ErrUnknownKey}
	case ErrShredded:
		return []error{ErrShredded}
	}
	return []error{e.Reason}
}
