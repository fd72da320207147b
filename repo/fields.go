package repo

import (
	"context"
	"errors"
	"reflect"
	"unsafe"

	"github.com/tenantseal/tenantseal/keys"
)

// writeArgs appends to dst the values that args bind for the row v: encrypted fields encrypted and
// bound to their table, column and row, blind indexes computed from the plaintext.
func (t *Table[T]) writeArgs(ctx context.Context, dst []any, v *T, args []arg) ([]any, error) {
	p := unsafe.Pointer(v)
	var row string // the row key, made at the first ciphertext
	var keyBuf []byte
	for _, a := range args {
		f := t.s.fields[a.field]
		if a.field == t.s.pk {
			if key, err := t.s.keyArg(t.keyOf(v)); err == nil {
				dst = append(dst, key)
				continue
			}
		}
		if !f.encrypted {
			// A pointer to the field, which pgx reads through: no copy of the value boxed per row.
			dst = append(dst, reflect.NewAt(f.typ, unsafe.Add(p, f.offset)).Interface())
			continue
		}
		pt, null := f.plaintext(p)
		switch {
		case null:
			dst = append(dst, nil)
		case a.blindIndex:
			norm, _ := keys.NormalizerByName(f.normalizer) // checked by New
			bidx, err := t.kr.BlindIndex(ctx, keys.Field{Table: t.s.table, Column: f.column}, plaintextString(pt), norm)
			if err != nil {
				return nil, err
			}
			dst = append(dst, bidx)
		default:
			if row == "" {
				row = rowKey(&keyBuf, t.keyOf(v))
			}
			ct, err := t.kr.Encrypt(ctx, keys.Field{Table: t.s.table, Column: f.column, Row: row}, pt)
			if err != nil {
				return nil, err
			}
			dst = append(dst, ct)
		}
	}
	return dst, nil
}

// plaintext returns an encrypted field of the row v as bytes, or null for a nil pointer or slice. The
// bytes of a string field are the string's own: they are only read (Keyring.Encrypt does not change
// its plaintext).
func (f field) plaintext(v unsafe.Pointer) (pt []byte, null bool) {
	fp := unsafe.Add(v, f.offset)
	switch f.kind {
	case encString:
		return stringBytes(*(*string)(fp)), false
	case encBytes:
		b := *(*[]byte)(fp)
		return b, b == nil
	default: // encStringPtr
		sp := *(**string)(fp)
		if sp == nil {
			return nil, true
		}
		return stringBytes(*sp), false
	}
}

// stringBytes returns the bytes of s, not to be changed.
func stringBytes(s string) []byte { return unsafe.Slice(unsafe.StringData(s), len(s)) }

// collectRows runs a query of the select list and decrypts every row; a row whose encrypted field does
// not decrypt for it (a *keys.FieldError) does not fail the others: that row's error is at its index in
// unreadable, nil for the others. The rows are read to the end before anything is decrypted: a keyring
// miss needs a connection, and this one must be free by then (a pool whose every connection waits on a
// keyring load would otherwise never make progress). hint is how many rows the query is expected to
// return.
func (t *Table[T]) collectRows(ctx context.Context, op string, hint int, sql string, args ...any) (out []T, unreadable []error, err error) {
	rows, err := t.q.Query(ctx, sql, args...)
	if err != nil {
		return nil, nil, t.dbErr(op, err)
	}
	out = make([]T, 0, min(hint, maxRowsHint))
	r := t.newReader(hint, nil)
	for rows.Next() {
		if err := r.scan(rows); err != nil {
			rows.Close()
			return nil, nil, t.dbErr(op, err)
		}
		out = append(out, r.row)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, nil, t.dbErr(op, err)
	}
	unreadable = make([]error, len(out))
	var fe *keys.FieldError
	for i := range out {
		err := r.decrypt(ctx, &out[i], r.rowSpans(i))
		switch {
		case errors.As(err, &fe):
			unreadable[i] = err
		case err != nil:
			return nil, nil, err
		}
	}
	return out, unreadable, nil
}
