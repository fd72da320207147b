package repo

import (
	"context"
	"strings"
)

// The methods below let custom SQL (a join, a report) read T through the repository's mapping and
// decryption. Such SQL must carry the tenant predicate itself, on every table it reads.

// DB returns what the repository runs statements on: the pool, or the transaction given to [Table.With].
// Custom SQL sent on it runs under the same tenant context as the repository's own statements.
func (t *Table[T]) DB() DBTX { return t.q }

// Columns returns T's mapped columns as a select list, in the order [Table.Dest] scans them, each
// qualified by alias (quoted as an identifier) unless alias is empty.
func (t *Table[T]) Columns(alias string) string {
	if alias == "" {
		return t.st.selectList
	}
	q := ident(alias) + "."
	cols := make([]string, len(t.s.fields))
	for i, f := range t.s.fields {
		cols[i] = q + f.ident
	}
	return strings.Join(cols, ", ")
}

// Dest returns the scan destinations of one row of [Table.Columns] into v, and the function that
// decrypts v's encrypted fields once the row is scanned, each bound to v's tenant and row key: a
// ciphertext moved from another row fails with [ErrTampered]. Call decrypt after the rows are closed
// (as List does): a keyring miss needs a connection, maybe this one.
func (t *Table[T]) Dest(v *T) (dest []any, decrypt func(context.Context) error) {
	r := t.newReader(1, v)
	return r.dest, func(ctx context.Context) error {
		spans := make([]ctSpan, len(r.slots))
		for i, c := range r.slots {
			spans[i] = c.span
		}
		return r.decrypt(t.keyCtx(ctx), v, spans)
	}
}
