package repo

import (
	"context"
	"errors"
	"reflect"

	"github.com/tenantseal/tenantseal/keys"
)

// writeArgs returns the values that args bind for the row rv: encrypted fields encrypted and bound to
// their table, column and row, blind indexes computed from the plaintext.
func (t *Table[T]) writeArgs(ctx context.Context, rv reflect.Value, args []arg) ([]any, error) {
	row := t.idOf(rv).String()
	out := make([]any, 0, len(args))
	for _, a := range args {
		f := t.s.fields[a.field]
		fv := rv.Field(f.index)
		if !f.encrypted {
			out = append(out, fv.Interface())
			continue
		}
		pt, null := plaintext(f, fv)
		switch {
		case null:
			out = append(out, nil)
		case a.blindIndex:
			norm, _ := keys.NormalizerByName(f.normalizer) // checked by New
			bidx, err := t.kr.BlindIndex(ctx, keys.Field{Table: t.s.table, Column: f.column}, string(pt), norm)
			if err != nil {
				return nil, err
			}
			out = append(out, bidx)
		default:
			ct, err := t.kr.Encrypt(ctx, keys.Field{Table: t.s.table, Column: f.column, Row: row}, pt)
			if err != nil {
				return nil, err
			}
			out = append(out, ct)
		}
	}
	return out, nil
}

// plaintext returns an encrypted field's value as bytes, or null for a nil pointer or slice.
func plaintext(f field, fv reflect.Value) (pt []byte, null bool) {
	switch f.kind {
	case encString:
		return []byte(fv.String()), false
	case encBytes:
		if fv.IsNil() {
			return nil, true
		}
		return fv.Bytes(), false
	default: // encStringPtr
		if fv.IsNil() {
			return nil, true
		}
		return []byte(fv.Elem().String()), false
	}
}

// collectRows runs a query of the select list and decrypts every row; a row whose encrypted field does
// not decrypt for it (a *keys.FieldError) does not fail the others: that row's error is at its index in
// unreadable, nil for the others. The rows are read to the end before anything is decrypted: a keyring
// miss needs a connection, and this one must be free by then (a pool whose every connection waits on a
// keyring load would otherwise never make progress).
// hint is how many rows the query is expected to return.
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
		err := r.decrypt(ctx, t.kr, &out[i], r.rowSpans(i))
		switch {
		case errors.As(err, &fe):
			unreadable[i] = err
		case err != nil:
			return nil, nil, err
		}
	}
	return out, unreadable, nil
}
