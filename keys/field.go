package keys

import (
	"encoding/binary"
	"strings"
	"sync"
	"unicode"

	"github.com/tenantseal/tenantseal"
)

// Field names where a ciphertext lives: table, column and the row's key (its id, in canonical text
// form). All three, with the tenant, are the associated data of the ciphertext, so a ciphertext copied
// to another column, row or tenant fails to decrypt.
type Field struct {
	Table  string
	Column string
	Row    string
	// Tenant, when not zero, is the tenant the row belongs to as read from the row itself. The Keyring
	// always uses the Principal's tenant (from ctx); a Tenant naming another fails the call with
	// [tenantseal.ErrTenantMismatch], and the attempt is recorded.
	Tenant tenantseal.TenantID
}

// associatedData encodes tenant and field unambiguously, every part length-prefixed, into a buffer of
// adBuffers: the caller hands it back with release once the primitive has used it (Tink's primitives
// neither keep nor change their associated data).
func associatedData(domain string, tenant tenantseal.TenantID, table, column, row string) *[]byte {
	p := adBuffers.Get().(*[]byte)
	b := append((*p)[:0], domain...)
	h := tenant.Handle()
	b = append(b, h[:]...)
	for _, s := range [...]string{table, column, row} {
		b = binary.AppendUvarint(b, uint64(len(s)))
		b = append(b, s...)
	}
	*p = b
	return p
}

// adBuffers keep associated data for the call that builds it: one allocation per buffer, not one per
// field. A blind index's carries the normalised value, so a buffer is cleared before it is reused.
var adBuffers = sync.Pool{New: func() any { return new([]byte) }}

// maxPooledAD is the largest buffer kept for reuse; larger ones (long blind-indexed values) go to the
// garbage collector.
const maxPooledAD = 1 << 10

func release(p *[]byte) {
	clear(*p)
	if cap(*p) <= maxPooledAD {
		*p = (*p)[:0]
		adBuffers.Put(p)
	}
}

const (
	fieldDomain = "tenantseal/field/v1\x00"
	bidxDomain  = "tenantseal/bidx/v1\x00"
)

// Normalizer turns a value into the form its blind index is computed over, so that lookups match values
// that differ only in ways the field does not care about.
type Normalizer func(string) string

// NormalizerByName returns the normalizer of a name used in tenantseal.encrypted_columns.normalizer and
// in repository tags: "exact", "lower" or "email".
func NormalizerByName(name string) (Normalizer, bool) {
	switch name {
	case "exact":
		return normalizeExact, true
	case "lower":
		return normalizeLower, true
	case "email":
		return NormalizeEmail, true
	}
	return nil, false
}

// NormalizerNames lists the names [NormalizerByName] accepts.
func NormalizerNames() []string { return []string{"exact", "lower", "email"} }

func normalizeExact(s string) string { return s }

func normalizeLower(s string) string { return strings.ToLower(strings.TrimSpace(s)) }

// NormalizeEmail trims surrounding space and lower-cases an e-mail address.
func NormalizeEmail(s string) string {
	return strings.ToLower(strings.TrimFunc(s, unicode.IsSpace))
}
