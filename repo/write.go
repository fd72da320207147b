package repo

import (
	"context"
	"errors"
	"fmt"
	"reflect"

	"github.com/jackc/pgx/v5"

	"github.com/tenantseal/tenantseal"
	"github.com/tenantseal/tenantseal/db"
)

// Insert writes v, filling its id when zero and its tenant from the Principal, and reads back the
// columns the database sets (readonly, updated, version). A tenant id other than the Principal's fails
// with [ErrTenantMismatch] before anything is sent.
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
	for _, v := range vs {
		if _, err := t.tenantOf(ctx, "insert", v); err != nil {
			return err
		}
		if idf := reflect.ValueOf(v).Elem().Field(t.s.pkField().index); idf.Interface().(ID).IsZero() {
			idf.Set(reflect.ValueOf(NewID()))
		}
	}
	width := len(t.st.insertArgs)
	args := make([]any, 0, len(vs)*width)
	byID := make(map[ID]reflect.Value, len(vs))
	for _, v := range vs {
		rv := reflect.ValueOf(v).Elem()
		row, err := t.writeArgs(ctx, rv, t.st.insertArgs)
		if err != nil {
			return err
		}
		args = append(args, row...)
		byID[t.idOf(rv)] = rv
	}
	chunk := maxParams / width
	run := func(q DBTX) error {
		for start := 0; start < len(vs); start += chunk {
			n := min(chunk, len(vs)-start)
			res, err := q.Query(ctx, t.st.insert(n, width), args[start*width:(start+n)*width]...)
			if err != nil {
				return t.dbErr("insert into", err)
			}
			if err := t.readBackInserted(res, byID); err != nil {
				return t.dbErr("insert into", err)
			}
		}
		return nil
	}
	if pool, ok := t.q.(*db.Pool); ok && len(vs) > chunk {
		return pool.Tx(ctx, func(tx pgx.Tx) error { return run(tx) })
	}
	return run(t.q)
}

// readBackInserted sets the columns the database chose on the inserted rows. RETURNING order is not
// promised: rows are matched by id.
func (t *Table[T]) readBackInserted(res pgx.Rows, byID map[ID]reflect.Value) error {
	var id ID
	tmp := make([]reflect.Value, len(t.st.readBack))
	dest := []any{&id}
	for k, i := range t.st.readBack {
		tmp[k] = reflect.New(reflect.TypeFor[T]().Field(t.s.fields[i].index).Type)
		dest = append(dest, tmp[k].Interface())
	}
	_, err := pgx.ForEachRow(res, dest, func() error {
		rv, ok := byID[id]
		if !ok {
			return fmt.Errorf("returned id %s was not inserted", id)
		}
		for k, i := range t.st.readBack {
			rv.Field(t.s.fields[i].index).Set(tmp[k].Elem())
		}
		return nil
	})
	return err
}

// Update writes v's fields when its version (if the table has a version column) is still the stored
// one, bumps the version and reads back what the database sets. It fails with [ErrConflict] on a stale
// version, [ErrNotFound] when no row of the tenant has v's id, and [ErrTenantMismatch] (nothing sent)
// when v names another tenant.
func (t *Table[T]) Update(ctx context.Context, v *T) error {
	ctx = t.keyCtx(ctx)
	tenant, err := t.tenantOf(ctx, "update", v)
	if err != nil {
		return err
	}
	rv := reflect.ValueOf(v).Elem()
	id := t.idOf(rv)
	if id.IsZero() {
		return ErrNotFound
	}
	sets, err := t.writeArgs(ctx, rv, t.st.updateArgs)
	if err != nil {
		return err
	}
	args := append([]any{tenant, id}, sets...)
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

// Delete removes the row with id, or fails with [ErrNotFound] (also for another tenant's row).
func (t *Table[T]) Delete(ctx context.Context, id ID) error {
	tenant, err := tenantseal.TenantFrom(ctx)
	if err != nil {
		return err
	}
	tag, err := t.q.Exec(ctx, t.st.del, tenant, id)
	if err != nil {
		return t.dbErr("delete from", err)
	}
	if tag.RowsAffected() == 0 {
		return t.notFound(ctx, "delete", id)
	}
	return nil
}
