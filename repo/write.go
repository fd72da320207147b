package repo

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"unsafe"

	"github.com/jackc/pgx/v5"

	"github.com/tenantseal/tenantseal"
	"github.com/tenantseal/tenantseal/db"
	"github.com/tenantseal/tenantseal/keys/pgstore"
)

// Insert writes v, filling its tenant from the Principal and its key when zero, and reads back the
// columns the database sets (readonly, updated, version). A zero key is a new [NewID] for a uuid key;
// for a key the database generates (identity, serial, a default) it is left to the database and read
// back, and a GENERATED ALWAYS key is never written. A tenant id other than the Principal's fails with
// [ErrTenantMismatch] before anything is sent.
//
// Encrypted fields are bound to the row's key: for a key the database generates, they are written by
// an UPDATE right after the INSERT, in the same transaction, so their columns must be nullable (or
// have a default) until then.
func (t *Table[T]) Insert(ctx context.Context, v *T) error {
	return t.InsertMany(ctx, []*T{v})
}

// maxParams is PostgreSQL's limit of bind parameters per statement.
const maxParams = 65535

// InsertMany writes vs with multi-row INSERTs (COPY FROM is refused under row-level security), all in
// one transaction when the repository runs on a pool. Every row is checked before anything is sent:
// one foreign tenant id fails the whole call with nothing written. Rows whose key the database
// generates take one INSERT each (RETURNING does not promise the order of a multi-row INSERT, and
// such a row has nothing else to be matched by), sent in one batch where the repository runs on a
// transaction or a pool.
func (t *Table[T]) InsertMany(ctx context.Context, vs []*T) error {
	ctx = t.keyCtx(db.OnPrimary(ctx))
	if len(vs) == 0 {
		return nil
	}
	var known, generated []*T
	for _, v := range vs {
		if _, err := t.tenantOf(ctx, "insert", v); err != nil {
			return err
		}
		gen, err := t.fillKey(v)
		if err != nil {
			return err
		}
		if gen {
			generated = append(generated, v)
		} else {
			known = append(known, v)
		}
	}
	width := len(t.st.insertArgs)
	args := make([]any, 0, len(known)*width)
	for _, v := range known {
		var err error
		if args, err = t.writeArgs(ctx, args, v, t.st.insertArgs); err != nil {
			return err
		}
	}
	inserted := func(id ID) (*T, error) {
		if len(known) == 1 && t.keyOf(known[0]) == id {
			return known[0], nil
		}
		return nil, fmt.Errorf("returned id %s was not inserted", id)
	}
	if len(known) > 1 {
		byID := make(map[ID]*T, len(known))
		for _, v := range known {
			byID[t.keyOf(v)] = v
		}
		inserted = func(id ID) (*T, error) {
			v, ok := byID[id]
			if !ok {
				return nil, fmt.Errorf("returned id %s was not inserted", id)
			}
			return v, nil
		}
	}
	genArgs := make([][]any, len(generated))
	for i, v := range generated {
		row, err := t.writeArgs(ctx, make([]any, 0, len(t.st.genArgs)), v, t.st.genArgs)
		if err != nil {
			return err
		}
		genArgs[i] = row
	}
	chunk := maxParams / width
	run := func(kctx context.Context, q DBTX) error {
		for start := 0; start < len(known); start += chunk {
			n := min(chunk, len(known)-start)
			res, err := q.Query(ctx, t.st.insert(n, width), args[start*width:(start+n)*width]...)
			if err != nil {
				return t.dbErr("insert into", err)
			}
			if err := t.readReturned(res, inserted); err != nil {
				return t.dbErr("insert into", err)
			}
		}
		return t.insertGenerated(ctx, kctx, q, generated, genArgs)
	}
	statements := (len(known) + chunk - 1) / chunk
	if len(generated) > 0 {
		statements += len(generated) * (1 + btoi(t.st.seal != ""))
	}
	if pool, ok := t.q.(*db.Pool); ok && statements > 1 {
		// Keyset loads for the seals go through the transaction: its connection is taken.
		return pool.Tx(ctx, func(tx pgx.Tx) error { return run(pgstore.WithQuerier(ctx, tx), tx) })
	}
	return run(ctx, t.q)
}

// fillKey gives v a key when its pk is zero and says whether the database is to generate it instead.
// A key written where the database generates it always is refused.
func (t *Table[T]) fillKey(v *T) (generated bool, err error) {
	pk := t.s.pkField()
	switch zero := reflect.ValueOf(v).Elem().Field(pk.index).IsZero(); {
	case t.s.gen == alwaysDefault && !zero:
		return false, fmt.Errorf("repo: insert into %s: %s.%s is set, but %s is GENERATED ALWAYS: leave it zero", t.s.table, reflect.TypeFor[T]().Name(), pk.name, pk.column)
	case !zero:
		return false, nil
	case t.s.key == keyUUID && t.s.gen != alwaysDefault:
		*(*ID)(unsafe.Add(unsafe.Pointer(v), pk.offset)) = NewID()
		return false, nil
	case t.s.gen == noDefault:
		return false, fmt.Errorf("repo: insert into %s: %s.%s is zero, and %s has no default to fill it", t.s.table, reflect.TypeFor[T]().Name(), pk.name, pk.column)
	}
	return true, nil
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// insertGenerated inserts rows whose key the database generates, one statement each, sets their keys
// and then writes their encrypted fields, bound to those keys (keyset loads on kctx).
func (t *Table[T]) insertGenerated(ctx, kctx context.Context, q DBTX, rows []*T, args [][]any) error {
	if len(rows) == 0 {
		return nil
	}
	pk := t.s.pkField()
	err := perRow(ctx, q, t.st.genInsert, args, func(i int, res pgx.Rows) error {
		return t.readReturned(res, func(id ID) (*T, error) {
			setKey(reflect.ValueOf(rows[i]).Elem().Field(pk.index), id)
			return rows[i], nil
		})
	})
	if err != nil || t.st.seal == "" {
		return t.dbErr("insert into", err)
	}
	seals := make([][]any, len(rows))
	for i, v := range rows {
		key, _ := t.s.keyArg(t.keyOf(v)) // the database's own key: of the table's kind
		row, err := t.writeArgs(kctx, append(make([]any, 0, 2+len(t.st.sealArgs)), *t.s.tenantOfRow(unsafe.Pointer(v)), key), v, t.st.sealArgs)
		if err != nil {
			return err
		}
		seals[i] = row
	}
	err = perRow(ctx, q, t.st.seal, seals, func(i int, res pgx.Rows) error {
		return t.readReturned(res, func(ID) (*T, error) { return rows[i], nil })
	})
	return t.dbErr("insert into", err)
}

// setKey sets the pk field fv to id, a key the database returned for it.
func setKey(fv reflect.Value, id ID) {
	switch id.kind {
	case intID:
		fv.SetInt(id.n)
	case textID:
		fv.SetString(id.s)
	default:
		fv.Set(reflect.ValueOf(id))
	}
}

// batcher is what a pgx.Tx has beyond DBTX: several statements in one round trip.
type batcher interface {
	SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults
}

// perRow runs sql, a statement of one row, once for each of args, in one batch when q can send one, and
// hands each statement's rows to fn, which reads them to the end.
func perRow(ctx context.Context, q DBTX, sql string, args [][]any, read func(i int, res pgx.Rows) error) (err error) {
	fn := func(i int, res pgx.Rows) error {
		if err := read(i, res); err != nil {
			return err
		}
		if n := res.CommandTag().RowsAffected(); n != 1 {
			return fmt.Errorf("a statement of one row affected %d", n)
		}
		return nil
	}
	b, ok := q.(batcher)
	if !ok || len(args) == 1 {
		for i, a := range args {
			res, err := q.Query(ctx, sql, a...)
			if err != nil {
				return err
			}
			if err := fn(i, res); err != nil {
				return err
			}
		}
		return nil
	}
	batch := &pgx.Batch{}
	for _, a := range args {
		batch.Queue(sql, a...)
	}
	br := b.SendBatch(ctx, batch)
	defer func() {
		if cerr := br.Close(); err == nil {
			err = cerr
		}
	}()
	for i := range args {
		res, err := br.Query()
		if err != nil {
			return err
		}
		if err := fn(i, res); err != nil {
			return err
		}
	}
	return nil
}

// readReturned reads what an INSERT or UPDATE returned (the pk, then the readBack fields) into the rows
// that target names by their key: exactly one row for each returned one.
func (t *Table[T]) readReturned(res pgx.Rows, target func(ID) (*T, error)) error {
	// One allocation holds the returned key and fields; its destinations are made once per statement.
	ret := &struct {
		id  ID
		row T
	}{}
	rv := reflect.ValueOf(&ret.row).Elem()
	dest := make([]any, 1, 1+len(t.st.readBack))
	dest[0] = &ret.id
	for _, i := range t.st.readBack {
		dest = append(dest, rv.Field(t.s.fields[i].index).Addr().Interface())
	}
	_, err := pgx.ForEachRow(res, dest, func() error {
		if err := t.s.uuidKey(&ret.id); err != nil {
			return err
		}
		v, err := target(ret.id)
		if err != nil {
			return err
		}
		tv := reflect.ValueOf(v).Elem()
		for _, i := range t.st.readBack {
			f := t.s.fields[i]
			tv.Field(f.index).Set(rv.Field(f.index))
		}
		ret.row = *new(T) // each row scans into zero values
		return nil
	})
	return err
}

// Update writes v's fields when its version (if the table has a version column) is still the stored
// one, bumps the version and reads back what the database sets. It fails with [ErrConflict] on a stale
// version, [ErrNotFound] when no row of the tenant has v's id, and [ErrTenantMismatch] (nothing sent)
// when v names another tenant.
func (t *Table[T]) Update(ctx context.Context, v *T) error {
	ctx = t.keyCtx(db.OnPrimary(ctx))
	tenant, err := t.tenantOf(ctx, "update", v)
	if err != nil {
		return err
	}
	rv := reflect.ValueOf(v).Elem()
	id := t.keyOf(v)
	if rv.Field(t.s.pkField().index).IsZero() {
		return ErrNotFound
	}
	key, _ := t.s.keyArg(id) // the field's own key: of the table's kind
	args, err := t.writeArgs(ctx, append(make([]any, 0, 3+len(t.st.updateArgs)), tenant, key), v, t.st.updateArgs)
	if err != nil {
		return err
	}
	if t.s.version >= 0 {
		args = append(args, rv.Field(t.s.fields[t.s.version].index).Interface())
	}
	// On a conflict the returned columns are NULL: scan them through pointers.
	var ok bool
	var pk *ID
	dest := []any{&ok, &pk}
	ptrs := make([]reflect.Value, len(t.st.readBack))
	for k, i := range t.st.readBack {
		ptrs[k] = reflect.New(reflect.PointerTo(rv.Field(t.s.fields[i].index).Type()))
		dest = append(dest, ptrs[k].Interface())
	}
	err = t.q.QueryRow(ctx, t.st.update, args...).Scan(dest...)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return t.notFound(ctx, "update", id)
	case err != nil:
		return t.dbErr("update", err)
	case !ok:
		return ErrConflict
	}
	for k, i := range t.st.readBack {
		if p := ptrs[k].Elem(); !p.IsNil() {
			rv.Field(t.s.fields[i].index).Set(p.Elem())
		}
	}
	return nil
}

// Delete removes the row with id, or fails with [ErrNotFound] (also for another tenant's row). An id of
// another kind than the table's key fails with [ErrInvalidQuery]; nothing is sent.
func (t *Table[T]) Delete(ctx context.Context, id ID) error {
	ctx = db.OnPrimary(ctx)
	tenant, err := tenantseal.TenantFrom(ctx)
	if err != nil {
		return err
	}
	key, err := t.s.keyArg(id)
	if err != nil {
		return err
	}
	tag, err := t.q.Exec(ctx, t.st.del, tenant, key)
	if err != nil {
		return t.dbErr("delete from", err)
	}
	if tag.RowsAffected() == 0 {
		return t.notFound(ctx, "delete", id)
	}
	return nil
}
