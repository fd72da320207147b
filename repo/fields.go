package repo

import (
	"context"
	"errors"
	"reflect"

	"github.com/tenantseal/tenantseal"
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

// dests returns scan destinations for one row of the select list into v, and the slots that receive
// its ciphertexts.
func (t *Table[T]) dests(v *T) ([]any, [][]byte) {
	rv := reflect.ValueOf(v).Elem()
	cts := make([][]byte, len(t.s.fields))
	dest := make([]any, len(t.s.fields))
	for i, f := range t.s.fields {
		if f.encrypted {
			dest[i] = &cts[i]
		} else {
			dest[i] = rv.Field(f.index).Addr().Interface()
		}
	}
	return dest, cts
}

// decrypt fills rv's encrypted fields from cts, each bound to the row's own tenant and key.
func (t *Table[T]) decrypt(ctx context.Context, rv reflect.Value, cts [][]byte) error {
	tenant := rv.Field(t.s.tenantField().index).Interface().(tenantseal.TenantID)
	row := t.idOf(rv).String()
	for i, f := range t.s.fields {
		if !f.encrypted {
			continue
		}
		fv := rv.Field(f.index)
		if cts[i] == nil {
			fv.SetZero()
			continue
		}
		pt, err := t.kr.Decrypt(ctx, keys.Field{Table: t.s.table, Column: f.column, Row: row, Tenant: tenant}, cts[i])
		if err != nil {
			return err
		}
		switch f.kind {
		case encString:
			fv.SetString(string(pt))
		case encBytes:
			fv.SetBytes(pt)
		default:
			s := string(pt)
			fv.Set(reflect.ValueOf(&s))
		}
	}
	return nil
}

// collectRows runs a query of the select list and decrypts every row; a row whose encrypted field does
// not decrypt for it (a *keys.FieldError) does not fail the others: that row's error is at its index in
// unreadable, nil for the others. The rows are read to the end before anything is decrypted: a keyring
// miss needs a connection, and this one must be free by then (a pool whose every connection waits on a
// keyring load would otherwise never make progress).
func (t *Table[T]) collectRows(ctx context.Context, op, sql string, args ...any) (out []T, unreadable []error, err error) {
	rows, err := t.q.Query(ctx, sql, args...)
	if err != nil {
		return nil, nil, t.dbErr(op, err)
	}
	var cts [][][]byte
	for rows.Next() {
		out = append(out, *new(T))
		dest, ct := t.dests(&out[len(out)-1])
		if err := rows.Scan(dest...); err != nil {
			rows.Close()
			return nil, nil, t.dbErr(op, err)
		}
		cts = append(cts, ct)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, nil, t.dbErr(op, err)
	}
	unreadable = make([]error, len(out))
	var fe *keys.FieldError
	for i := range out {
		err := t.decrypt(ctx, reflect.ValueOf(&out[i]).Elem(), cts[i])
		switch {
		case errors.As(err, &fe):
			unreadable[i] = err
		case err != nil:
			return nil, nil, err
		}
	}
	return out, unreadable, nil
}
