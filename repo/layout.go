package repo

import (
	"context"
	"reflect"
	"unsafe"

	"github.com/jackc/pgx/v5/pgtype"

	"github.com/tenantseal/tenantseal"
	"github.com/tenantseal/tenantseal/keys"
)

// The fields the repository reads and writes itself (the tenant, the pk, the encrypted ones) are
// reached through their offsets in T, taken by parseSchema from the struct type, not by reflection on
// every row. parseSchema checks that each of them has exactly the type its accessor assumes: the tenant
// a tenantseal.TenantID, the pk the type of its keyKind, an encrypted field that of its encKind.

// tenantOfRow returns v's tenant field.
func (s *schema) tenantOfRow(v unsafe.Pointer) *tenantseal.TenantID {
	return (*tenantseal.TenantID)(unsafe.Add(v, s.fields[s.tenant].offset))
}

// keyOfRow returns the key of the row v as an ID.
func (s *schema) keyOfRow(v unsafe.Pointer) ID {
	p := unsafe.Add(v, s.fields[s.pk].offset)
	switch s.key {
	case keyInt64:
		return IntID(*(*int64)(p))
	case keyInt32:
		return IntID(int64(*(*int32)(p)))
	case keyText:
		return TextID(*(*string)(p))
	}
	return *(*ID)(p)
}

// rowKey returns the row key of id (ID.String) for encryption's associated data, appending its text to
// buf, which only ever grows: the strings it returns stay as they are, and a List formats all its rows'
// keys with one allocation.
func rowKey(buf *[]byte, id ID) string {
	if id.kind == textID || id.kind == noID {
		return id.s
	}
	start := len(*buf)
	*buf = id.appendText(*buf)
	return unsafe.String(&(*buf)[start], len(*buf)-start)
}

// ctSpan is where one encrypted column of a row is in a reader's buffer of ciphertexts.
type ctSpan struct {
	start, end int
	null       bool
}

// ctSlot receives one encrypted column: pgx hands it bytes that are valid only during the call, which
// it appends to the reader's buffer.
type ctSlot struct {
	buf  *[]byte
	span ctSpan
}

// ScanBytes implements pgtype.BytesScanner.
func (c *ctSlot) ScanBytes(v []byte) error {
	c.span = ctSpan{start: len(*c.buf), null: v == nil}
	*c.buf = append(*c.buf, v...)
	c.span.end = len(*c.buf)
	return nil
}

// tenantSlot scans the tenant column. Every row of a query is of the Principal's tenant: a row whose
// tenant column holds what the previous row's did takes that row's TenantID rather than formatting,
// parsing or hashing its key again.
type tenantSlot struct {
	dst  *tenantseal.TenantID
	have bool // last is the TenantID of u, s or n, whichever the column's type scans
	last tenantseal.TenantID
	u    [16]byte
	s    string
	n    int64
}

// ScanUUID implements pgtype.UUIDScanner.
func (c *tenantSlot) ScanUUID(v pgtype.UUID) error {
	return reuseTenant(c, &c.u, v.Bytes, v.Valid, func() error { return c.dst.ScanUUID(v) })
}

// ScanText implements pgtype.TextScanner.
func (c *tenantSlot) ScanText(v pgtype.Text) error {
	return reuseTenant(c, &c.s, v.String, v.Valid, func() error { return c.dst.ScanText(v) })
}

// ScanInt64 implements pgtype.Int64Scanner.
func (c *tenantSlot) ScanInt64(v pgtype.Int8) error {
	return reuseTenant(c, &c.n, v.Int64, v.Valid, func() error { return c.dst.ScanInt64(v) })
}

// reuseTenant gives c's row the previous row's TenantID when the column holds raw, what it held there
// (*last), and scans it with scan otherwise.
func reuseTenant[V comparable](c *tenantSlot, last *V, raw V, valid bool, scan func() error) error {
	if c.have && valid && raw == *last {
		*c.dst = c.last
		return nil
	}
	c.have = false
	if err := scan(); err != nil {
		return err
	}
	c.have, *last, c.last = true, raw, *c.dst
	return nil
}

// rowReader scans rows of the select list: its destinations, made once per query, point into one
// row (a scratch row zeroed before each scan, or the caller's for Dest), its encrypted columns into one
// buffer of ciphertexts that the rows' decryption reads after the last row.
type rowReader[T any] struct {
	s     *schema
	row   T
	dest  []any
	slots []ctSlot // of the encrypted fields, in field order
	cts   []byte
	spans []ctSpan // of every row scanned, len(slots) per row
	keys  []byte   // the rows' keys as text, see rowKey
	strs  []string // the targets of *string fields, one allocation for all rows
	dec   keys.Decrypter
	ten   tenantSlot
	// fixed backs the slices above in the reader's own allocation where they fit: for a Get, one
	// allocation instead of six.
	fixed struct {
		dest  [16]any
		slots [4]ctSlot
		spans [4]ctSpan
		cts   [192]byte
		keys  [40]byte
	}
}

// fixedOr returns fixed[:0:n] when n fits in it, else a new slice of capacity n.
func fixedOr[E any](fixed []E, n int) []E {
	if n <= len(fixed) {
		return fixed[:0:n]
	}
	return make([]E, 0, n)
}

// newReader returns a reader for about rows rows that scans into into, or its own row when into is
// nil.
func (t *Table[T]) newReader(rows int, into *T) *rowReader[T] {
	s := t.s
	rows = min(rows, maxRowsHint)
	r := &rowReader[T]{s: s, dec: t.kr.Decrypter()}
	r.dest = fixedOr(r.fixed.dest[:], len(s.fields))[:len(s.fields)]
	r.slots = fixedOr(r.fixed.slots[:], s.encrypted)
	r.keys = r.fixed.keys[:0]
	if into == nil {
		into = &r.row
	}
	rv := reflect.ValueOf(into).Elem()
	for i, f := range s.fields {
		switch {
		case i == s.tenant:
			r.ten.dst = rv.Field(f.index).Addr().Interface().(*tenantseal.TenantID)
			r.dest[i] = &r.ten
			continue
		case !f.encrypted:
			r.dest[i] = rv.Field(f.index).Addr().Interface()
			continue
		}
		r.slots = append(r.slots, ctSlot{buf: &r.cts, span: ctSpan{null: true}}) // NULL until scanned
		r.dest[i] = &r.slots[len(r.slots)-1]
	}
	if s.encrypted > 0 {
		r.cts = fixedOr(r.fixed.cts[:], rows*s.encrypted*64)
		r.spans = fixedOr(r.fixed.spans[:], rows*s.encrypted)
	}
	return r
}

// maxRowsHint bounds what a reader allocates ahead: a List of MaxLimit may return a few rows.
const maxRowsHint = 128

// scan reads the current row into r.row and keeps its ciphertexts.
func (r *rowReader[T]) scan(row interface{ Scan(...any) error }) error {
	r.row = *new(T)
	if err := row.Scan(r.dest...); err != nil {
		return err
	}
	if id, ok := r.dest[r.s.pk].(*ID); ok {
		if err := r.s.uuidKey(id); err != nil {
			return err
		}
	}
	for _, c := range r.slots {
		r.spans = append(r.spans, c.span)
	}
	return nil
}

// rowSpans returns the spans of the n-th row scanned.
func (r *rowReader[T]) rowSpans(n int) []ctSpan {
	return r.spans[n*len(r.slots) : (n+1)*len(r.slots)]
}

// decrypt fills the encrypted fields of v from its ciphertexts (spans), each bound to the row's own
// tenant and key.
func (r *rowReader[T]) decrypt(ctx context.Context, v *T, spans []ctSpan) error {
	s := r.s
	if s.encrypted == 0 {
		return nil
	}
	p := unsafe.Pointer(v)
	tenant := *s.tenantOfRow(p)
	row := rowKey(&r.keys, s.keyOfRow(p))
	k := 0
	for _, f := range s.fields {
		if !f.encrypted {
			continue
		}
		sp := spans[k]
		k++
		fp := unsafe.Add(p, f.offset)
		if sp.null {
			switch f.kind {
			case encString:
				*(*string)(fp) = ""
			case encBytes:
				*(*[]byte)(fp) = nil
			default:
				*(**string)(fp) = nil
			}
			continue
		}
		pt, err := r.dec.Decrypt(ctx, keys.Field{Table: s.table, Column: f.column, Row: row, Tenant: tenant}, r.cts[sp.start:sp.end:sp.end])
		if err != nil {
			return err
		}
		switch f.kind {
		case encBytes:
			*(*[]byte)(fp) = pt
		case encString:
			*(*string)(fp) = plaintextString(pt)
		default:
			if r.strs == nil {
				r.strs = make([]string, 0, max(1, cap(r.spans)/s.encrypted*s.stringPtrs))
			}
			r.strs = append(r.strs, plaintextString(pt))
			*(**string)(fp) = &r.strs[len(r.strs)-1]
		}
	}
	return nil
}

// plaintextString returns pt, which Decrypt made for this field alone and nothing else holds, as a
// string without copying it.
func plaintextString(pt []byte) string { return unsafe.String(unsafe.SliceData(pt), len(pt)) }
