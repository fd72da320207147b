package keys

import (
	"encoding/binary"
	"strings"
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
}

// associatedData encodes tenant and field unambiguously: every part is length-prefixed.
func associatedData(domain string, tenant tenantseal.TenantID, table, column, row string) []byte {
	b := make([]byte, 0, len(domain)+16+len(table)+len(column)+len(row)+16)
	b = append(b, domain...)
	b = append(b, tenant[:]...)
	for _, s := range []string{table, column, row} {
		b = binary.AppendUvarint(b, uint64(len(s)))
		b = append(b, s...)
	}
	return b
}

const (
	fieldDomain = "tenantseal/field/v1\x00"
	bidxDomain  = "tenantseal/bidx/v1\x00"
)

// Normalizer turns a value into the form its blind index is computed over, so that lookups match values
// that differ only in ways the field does not care about.
type Normalizer func(string) string

// Normalizers by the names used in tenantseal.encrypted_columns.normalizer.
var Normalizers = map[string]Normalizer{
	"exact": func(s string) string { return s },
	"lower": func(s string) string { return strings.ToLower(strings.TrimSpace(s)) },
	"email": NormalizeEmail,
}

// NormalizeEmail trims surrounding space and lower-cases an e-mail address.
func NormalizeEmail(s string) string {
	return strings.ToLower(strings.TrimFunc(s, unicode.IsSpace))
}
