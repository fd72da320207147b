package repo

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"

	"github.com/tenantseal/tenantseal/keys/pgstore"

	"github.com/tenantseal/tenantseal"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/tenantseal/tenantseal/db"
	"github.com/tenantseal/tenantseal/keys"
)

// DBTX is what a repository runs statements on: a *db.Pool (each statement one round trip under the
// Principal's tenant context) or a pgx.Tx begun by db.Pool.Tx (the transaction's context).
type DBTX interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// List bounds.
const (
	DefaultLimit = 50
	MaxLimit     = 1000
)

// ErrInvalidCursor means a List cursor was not one that List returned. Use errors.Is.
var ErrInvalidCursor = errors.New("tenantseal: invalid cursor")

// Table is a typed, tenant-scoped repository over one table, described by the `ts` tags of T (see
// [New]). Every method takes the tenant from the Principal in ctx, and every query carries an explicit
// tenant_id predicate besides row-level security. Encrypted fields are encrypted before they leave the
// process and decrypted after they arrive. A Table is safe for concurrent use.
type Table[T any] struct {
	q   DBTX
	tx  pgx.Tx // set by With: keyset loads go through it too
	kr  *keys.Keyring
	s   *schema
	rec tenantseal.Recorder

	cols      string // every mapped column, in field order
	getSQL    string
	insertSQL string // columns and RETURNING; VALUES appended per call
	insertCol []int  // fields written by Insert, in order
	retCols   []int  // fields read back by Insert and Update
	updateSQL string
	updateSet []int // fields written by Update, in order ($3 onwards)
}

// New describes T against table and returns its repository. Errors in the description (a tag naming a
// missing column, an encrypted field of an unsupported type or on a non-bytea column, an encrypted column
// not registered in tenantseal.encrypted_columns) are reported here, not at the first query.
func New[T any](ctx context.Context, pool *db.Pool, kr *keys.Keyring, table string) (*Table[T], error) {
	if pool == nil || kr == nil {
		return nil, errors.New("repo: New needs a *db.Pool and a *keys.Keyring")
	}
	rel, err := pool.Describe(ctx, table)
	if err != nil {
		return nil, fmt.Errorf("repo: %w", err)
	}
	registry, err := pgstore.Columns(ctx, pool.Unscoped())
	if err != nil {
		return nil, fmt.Errorf("repo: %w", err)
	}
	s, err := parseSchema(reflect.TypeFor[T](), rel, registry)
	if err != nil {
		return nil, err
	}
	if rel.Columns["tenant_id"] == "" || s.fields[s.tenant].column != "tenant_id" {
		return nil, fmt.Errorf("repo: %s: the tenant field must map tenant_id", rel.QualifiedName())
	}
	t := &Table[T]{q: pool, kr: kr, s: s, rec: pool}
	t.prepare()
	return t, nil
}

// With returns a copy of the repository that runs on tx, to combine repository calls and custom SQL in
// one transaction of db.Pool.Tx.
func (t *Table[T]) With(tx pgx.Tx) *Table[T] {
	c := *t
	c.q, c.tx = tx, tx
	return &c
}

// keyCtx makes keyset loads run on the repository's transaction, if it has one, instead of waiting for
// another connection of the pool.
func (t *Table[T]) keyCtx(ctx context.Context) context.Context {
	if t.tx != nil {
		return pgstore.WithQuerier(ctx, t.tx)
	}
	return ctx
}

func ident(s string) string { return pgx.Identifier{s}.Sanitize() }

func (t *Table[T]) prepare() {
	s := t.s
	rel := s.rel.QualifiedName()
	var cols, ins, sets, ret []string
	for i, f := range s.fields {
		cols = append(cols, ident(f.column))
		switch {
		case f.readonly || i == s.version:
			ret = append(ret, ident(f.column))
			t.retCols = append(t.retCols, i)
		default:
			ins = append(ins, ident(f.column))
			t.insertCol = append(t.insertCol, i)
			if f.blindIndex != "" {
				ins = append(ins, ident(f.blindIndex))
			}
			if f.updated {
				ret = append(ret, ident(f.column))
				t.retCols = append(t.retCols, i)
			}
		}
		if i == s.pk || i == s.tenant || f.readonly || i == s.version {
			continue
		}
		if f.updated {
			sets = append(sets, ident(f.column)+" = now()")
			continue
		}
		sets = append(sets, fmt.Sprintf("%s = $%d", ident(f.column), len(t.updateSet)+3))
		t.updateSet = append(t.updateSet, i)
		if f.blindIndex != "" {
			sets = append(sets, fmt.Sprintf("%s = $%d", ident(f.blindIndex), len(t.updateSet)+3))
			t.updateSet = append(t.updateSet, -1-i) // the blind index of field i
		}
	}
	t.cols = strings.Join(cols, ", ")
	t.getSQL = fmt.Sprintf("SELECT %s FROM %s WHERE tenant_id = $1 AND id = $2", t.cols, rel)
	t.insertSQL = fmt.Sprintf("INSERT INTO %s (%s) VALUES ", rel, strings.Join(ins, ", "))
	if len(ret) > 0 {
		t.insertSQL += "%s RETURNING id, " + strings.Join(ret, ", ")
	} else {
		t.insertSQL += "%s RETURNING id"
	}
	where := "tenant_id = $1 AND id = $2"
	if s.version >= 0 {
		sets = append(sets, fmt.Sprintf("%[1]s = %[1]s + 1", ident(s.fields[s.version].column)))
		where += fmt.Sprintf(" AND %s = $%d", ident(s.fields[s.version].column), len(t.updateSet)+3)
	}
	retList := "1"
	nulls := "NULL::int"
	if len(ret) > 0 {
		retList = strings.Join(ret, ", ")
		var ns []string
		for _, i := range t.retCols {
			ns = append(ns, "NULL::"+s.rel.Columns[s.fields[i].column])
		}
		nulls = strings.Join(ns, ", ")
	}
	// One round trip tells success (true), a stale version (false) and a missing row (no row) apart.
	t.updateSQL = fmt.Sprintf(`WITH u AS (UPDATE %[1]s SET %[2]s WHERE %[3]s RETURNING %[4]s)
SELECT true, * FROM u
UNION ALL
SELECT false, %[5]s WHERE NOT EXISTS (SELECT 1 FROM u) AND EXISTS (SELECT 1 FROM %[1]s WHERE tenant_id = $1 AND id = $2)`,
		rel, strings.Join(sets, ", "), where, retList, nulls)
}

// tenantOf returns the Principal's tenant and checks v's tenant field against it, filling it when zero.
func (t *Table[T]) tenantOf(ctx context.Context, op string, v *T) (tenantseal.TenantID, error) {
	tenant, err := tenantseal.TenantFrom(ctx)
	if err != nil {
		return tenant, err
	}
	if v == nil {
		return tenant, errors.New("repo: nil row")
	}
	tf := reflect.ValueOf(v).Elem().Field(t.s.fields[t.s.tenant].index)
	given := tf.Interface().(tenantseal.TenantID)
	switch {
	case given.IsZero():
		tf.Set(reflect.ValueOf(tenant))
	case given != tenant:
		ev := tenantseal.Event{Kind: tenantseal.EventTenantMismatch, TargetTenant: given, Table: t.s.table, Operation: op}
		if id := t.idOf(reflect.ValueOf(v).Elem()); !id.IsZero() {
			ev.RowKey = id.String() // a new row has no id yet
		}
		t.rec.Record(ctx, ev)
		return tenant, &MismatchError{Table: t.s.table, Given: given, Principal: tenant}
	}
	return tenant, nil
}

// notFound answers a miss by id with ErrNotFound, first asking the database whether the id belongs to
// another tenant, and recording the attempt if it does. The caller learns nothing either way.
func (t *Table[T]) notFound(ctx context.Context, op string, id ID) error {
	var elsewhere bool
	err := t.q.QueryRow(ctx, "SELECT tenantseal.exists_elsewhere($1::regclass, $2)", t.s.rel.QualifiedName(), id).Scan(&elsewhere)
	if err == nil && elsewhere {
		t.rec.Record(ctx, tenantseal.Event{Kind: tenantseal.EventForeignID, Table: t.s.table, Operation: op, RowKey: id.String()})
	}
	return ErrNotFound
}

// MismatchError reports a struct whose tenant id differs from the Principal's. It matches
// ErrTenantMismatch with errors.Is.
type MismatchError struct {
	Table            string
	Given, Principal tenantseal.TenantID
}

func (e *MismatchError) Error() string {
	return fmt.Sprintf("%v: %s row names tenant %s, principal's tenant is %s; nothing was written", ErrTenantMismatch, e.Table, e.Given, e.Principal)
}

// Unwrap makes errors.Is(err, ErrTenantMismatch) true.
func (e *MismatchError) Unwrap() error { return ErrTenantMismatch }

func (t *Table[T]) idOf(rv reflect.Value) ID {
	return rv.Field(t.s.fields[t.s.pk].index).Interface().(ID)
}

// writeArgs returns the values of the fields at idx (a negative entry -1-i is field i's blind index),
// with encrypted fields encrypted and bound to tenant and row.
func (t *Table[T]) writeArgs(ctx context.Context, tenant tenantseal.TenantID, rv reflect.Value, idx []int) ([]any, error) {
	id := t.idOf(rv).String()
	args := make([]any, 0, len(idx)+2)
	for _, i := range idx {
		if i < 0 {
			continue // blind index: appended right after its field below
		}
		f := t.s.fields[i]
		fv := rv.Field(f.index)
		if !f.encrypted {
			args = append(args, fv.Interface())
			continue
		}
		pt, null := plaintext(f, fv)
		if null {
			args = append(args, nil)
			if f.blindIndex != "" {
				args = append(args, nil)
			}
			continue
		}
		ct, err := t.kr.Encrypt(ctx, keys.Field{Table: t.s.table, Column: f.column, Row: id}, pt)
		if err != nil {
			return nil, err
		}
		args = append(args, ct)
		if f.blindIndex != "" {
			norm, _ := keys.NormalizerByName(f.normalizer) // checked by New
			bidx, err := t.kr.BlindIndex(ctx, keys.Field{Table: t.s.table, Column: f.column}, string(pt), norm)
			if err != nil {
				return nil, err
			}
			args = append(args, bidx)
		}
	}
	return args, nil
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

// scan reads one row of t.cols into v and decrypts its encrypted fields.
func (t *Table[T]) scan(ctx context.Context, row pgx.Row, v *T) error {
	dest, cts := t.dests(v)
	if err := row.Scan(dest...); err != nil {
		return err
	}
	return t.decrypt(ctx, reflect.ValueOf(v).Elem(), cts)
}

func (t *Table[T]) decrypt(ctx context.Context, rv reflect.Value, cts [][]byte) error {
	tenant := rv.Field(t.s.fields[t.s.tenant].index).Interface().(tenantseal.TenantID)
	id := t.idOf(rv).String()
	for i, f := range t.s.fields {
		if !f.encrypted {
			continue
		}
		fv := rv.Field(f.index)
		if cts[i] == nil {
			fv.SetZero()
			continue
		}
		pt, err := t.kr.Decrypt(ctx, keys.Field{Table: t.s.table, Column: f.column, Row: id, Tenant: tenant}, cts[i])
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

func wrapErr(op string, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("repo: %s: %w", op, err)
}

// Get returns the row with id, or [ErrNotFound] (also when it is another tenant's).
func (t *Table[T]) Get(ctx context.Context, id ID) (T, error) {
	ctx = t.keyCtx(ctx)
	var v T
	tenant, err := tenantseal.TenantFrom(ctx)
	if err != nil {
		return v, err
	}
	err = t.scan(ctx, t.q.QueryRow(ctx, t.getSQL, tenant, id), &v)
	if errors.Is(err, pgx.ErrNoRows) {
		return v, t.notFound(ctx, "get", id)
	}
	return v, wrapErr("get "+t.s.table, err)
}

// Insert writes v, filling its id when zero and its tenant from the Principal, and reads back the
// columns the database sets (readonly, version). A tenant id other than the Principal's fails with
// [ErrTenantMismatch] before anything is sent.
func (t *Table[T]) Insert(ctx context.Context, v *T) error {
	return t.InsertMany(ctx, []*T{v})
}

// maxParams is PostgreSQL's limit of bind parameters per statement.
const maxParams = 65535

// InsertMany writes vs with multi-row INSERTs (COPY FROM is refused under row-level security), all in
// one transaction when the repository runs on a pool. Every row is checked before anything is sent:
// one foreign tenant id fails the whole call with nothing written.
func (t *Table[T]) InsertMany(ctx context.Context, vs []*T) error {
	ctx = t.keyCtx(ctx)
	if len(vs) == 0 {
		return nil
	}
	var tenant tenantseal.TenantID
	for _, v := range vs {
		var err error
		if tenant, err = t.tenantOf(ctx, "insert", v); err != nil {
			return err
		}
		rv := reflect.ValueOf(v).Elem()
		if idf := rv.Field(t.s.fields[t.s.pk].index); idf.Interface().(ID).IsZero() {
			idf.Set(reflect.ValueOf(NewID()))
		}
	}
	rows := make([][]any, len(vs))
	for i, v := range vs {
		args, err := t.writeArgs(ctx, tenant, reflect.ValueOf(v).Elem(), t.insertCol)
		if err != nil {
			return wrapErr("insert into "+t.s.table, err)
		}
		rows[i] = args
	}
	byID := make(map[ID]reflect.Value, len(vs))
	for _, v := range vs {
		rv := reflect.ValueOf(v).Elem()
		byID[t.idOf(rv)] = rv
	}
	chunk := maxParams / len(rows[0])
	run := func(q DBTX) error {
		for start := 0; start < len(rows); start += chunk {
			var sb strings.Builder
			var args []any
			for n, r := range rows[start:min(start+chunk, len(rows))] {
				if n > 0 {
					sb.WriteString(", ")
				}
				sb.WriteByte('(')
				for j := range r {
					if j > 0 {
						sb.WriteString(", ")
					}
					fmt.Fprintf(&sb, "$%d", len(args)+j+1)
				}
				sb.WriteByte(')')
				args = append(args, r...)
			}
			res, err := q.Query(ctx, fmt.Sprintf(t.insertSQL, sb.String()), args...)
			if err != nil {
				return err
			}
			// RETURNING order is not promised: match rows by id.
			var id ID
			tmp := make([]reflect.Value, len(t.retCols))
			dest := []any{&id}
			for k, i := range t.retCols {
				tmp[k] = reflect.New(reflect.TypeFor[T]().Field(t.s.fields[i].index).Type)
				dest = append(dest, tmp[k].Interface())
			}
			_, err = pgx.ForEachRow(res, dest, func() error {
				rv, ok := byID[id]
				if !ok {
					return fmt.Errorf("returned id %s was not inserted", id)
				}
				for k, i := range t.retCols {
					rv.Field(t.s.fields[i].index).Set(tmp[k].Elem())
				}
				return nil
			})
			if err != nil {
				return err
			}
		}
		return nil
	}
	var err error
	if pool, ok := t.q.(*db.Pool); ok && len(rows) > chunk {
		err = pool.Tx(ctx, func(tx pgx.Tx) error { return run(tx) })
	} else {
		err = run(t.q)
	}
	return wrapErr("insert into "+t.s.table, err)
}

// qualifiedCols lists t's columns prefixed with alias, in field order.
func (t *Table[T]) qualifiedCols(alias string) string {
	cols := make([]string, len(t.s.fields))
	for i, f := range t.s.fields {
		cols[i] = alias + "." + ident(f.column)
	}
	return strings.Join(cols, ", ")
}

// dests returns scan destinations for one row of t into v, and the slots for its ciphertexts.
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

// scanJoined scans a row holding a's columns then b's, and decrypts both.
func scanJoined[A, B any](ctx context.Context, row pgx.Row, ta *Table[A], a *A, tb *Table[B], b *B) error {
	da, ca := ta.dests(a)
	dbs, cb := tb.dests(b)
	if err := row.Scan(append(da, dbs...)...); err != nil {
		return err
	}
	if err := ta.decrypt(ctx, reflect.ValueOf(a).Elem(), ca); err != nil {
		return err
	}
	return tb.decrypt(ctx, reflect.ValueOf(b).Elem(), cb)
}
