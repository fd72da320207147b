package repo

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"reflect"
	"strings"

	"github.com/tenantseal/tenantseal"

	"github.com/jackc/pgx/v5"

	"github.com/tenantseal/tenantseal/keys"
)

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
		return fmt.Errorf("repo: update %s: %w (zero id)", t.s.table, ErrNotFound)
	}
	sets, err := t.writeArgs(ctx, tenant, rv, t.updateSet)
	if err != nil {
		return wrapErr("update "+t.s.table, err)
	}
	args := append([]any{tenant, id}, sets...)
	if t.s.version >= 0 {
		args = append(args, rv.Field(t.s.fields[t.s.version].index).Interface())
	}
	// On a conflict the read-back columns are NULL: scan them through pointers.
	var ok bool
	dest := []any{&ok}
	ptrs := make([]reflect.Value, len(t.retCols))
	for k, i := range t.retCols {
		ptrs[k] = reflect.New(reflect.PointerTo(rv.Field(t.s.fields[i].index).Type()))
		dest = append(dest, ptrs[k].Interface())
	}
	err = t.q.QueryRow(ctx, t.updateSQL, args...).Scan(dest...)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return t.notFound(ctx, "update", id)
	case err != nil:
		return wrapErr("update "+t.s.table, err)
	case !ok:
		return ErrConflict
	}
	for k, i := range t.retCols {
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
	tag, err := t.q.Exec(ctx, t.s.deleteSQL(), tenant, id)
	if err != nil {
		return wrapErr("delete from "+t.s.table, err)
	}
	if tag.RowsAffected() == 0 {
		return t.notFound(ctx, "delete", id)
	}
	return nil
}

// Cond is an equality condition on a plain (not encrypted) column; build it with [Eq].
type Cond struct {
	column string
	value  any
}

// Eq matches rows whose column equals value. Encrypted columns cannot be compared: use FindBy on a
// blind-indexed field.
func Eq(column string, value any) Cond { return Cond{column, value} }

// ListOptions page through a table in id order.
type ListOptions struct {
	// Limit is the page size: DefaultLimit when 0, at most MaxLimit.
	Limit int
	// After is the cursor of the previous Page, empty for the first page.
	After string
}

// Page is one page of rows and the cursor of the next, empty after the last.
type Page[T any] struct {
	Items []T
	Next  string
}

func (t *Table[T]) where(conds []Cond, args []any) (string, []any, error) {
	var sb strings.Builder
	sb.WriteString("tenant_id = $1")
	for _, c := range conds {
		f, ok := t.s.byColumn(c.column)
		if !ok {
			return "", nil, fmt.Errorf("repo: %s has no column %q", t.s.table, c.column)
		}
		if f.encrypted {
			return "", nil, fmt.Errorf("repo: %s.%s is encrypted: equality needs FindBy on a blind index", t.s.table, c.column)
		}
		args = append(args, c.value)
		fmt.Fprintf(&sb, " AND %s = $%d", ident(c.column), len(args))
	}
	return sb.String(), args, nil
}

func encodeCursor(id ID) string { return base64.RawURLEncoding.EncodeToString(id[:]) }

func decodeCursor(s string) (ID, error) {
	var id ID
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || len(b) != len(id) {
		return id, ErrInvalidCursor
	}
	copy(id[:], b)
	return id, nil
}

// List returns a page of the tenant's rows matching every condition, in id order (creation order for
// ids from NewID). Pages are stable under concurrent inserts: a cursor resumes after the last row seen.
func (t *Table[T]) List(ctx context.Context, opts ListOptions, conds ...Cond) (Page[T], error) {
	ctx = t.keyCtx(ctx)
	var page Page[T]
	tenant, err := tenantseal.TenantFrom(ctx)
	if err != nil {
		return page, err
	}
	limit := opts.Limit
	switch {
	case limit == 0:
		limit = DefaultLimit
	case limit < 0 || limit > MaxLimit:
		return page, fmt.Errorf("repo: list limit %d outside 1..%d", limit, MaxLimit)
	}
	w, args, err := t.where(conds, []any{tenant})
	if err != nil {
		return page, err
	}
	if opts.After != "" {
		after, err := decodeCursor(opts.After)
		if err != nil {
			return page, err
		}
		args = append(args, after)
		w += fmt.Sprintf(" AND id > $%d", len(args))
	}
	args = append(args, limit+1)
	sql := fmt.Sprintf("SELECT %s FROM %s WHERE %s ORDER BY tenant_id, id LIMIT $%d", t.cols, t.s.rel.QualifiedName(), w, len(args))
	items, err := t.collect(ctx, sql, args...)
	if err != nil {
		return page, wrapErr("list "+t.s.table, err)
	}
	if len(items) > limit {
		items = items[:limit]
		page.Next = encodeCursor(t.idOf(reflect.ValueOf(&items[limit-1]).Elem()))
	}
	page.Items = items
	return page, nil
}

// collect runs a query selecting t.cols and decrypts every row. The rows are read to the end before
// anything is decrypted: a keyring miss needs a connection, and this one must be free by then (a pool
// whose every connection waits on a keyring load would otherwise never make progress).
func (t *Table[T]) collect(ctx context.Context, sql string, args ...any) ([]T, error) {
	rows, err := t.q.Query(ctx, sql, args...)
	if err != nil {
		return nil, err
	}
	var out []T
	var cts [][][]byte
	for rows.Next() {
		out = append(out, *new(T))
		dest, ct := t.dests(&out[len(out)-1])
		if err := rows.Scan(dest...); err != nil {
			rows.Close()
			return nil, err
		}
		cts = append(cts, ct)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	for i := range out {
		if err := t.decrypt(ctx, reflect.ValueOf(&out[i]).Elem(), cts[i]); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// Count returns how many of the tenant's rows match every condition.
func (t *Table[T]) Count(ctx context.Context, conds ...Cond) (int64, error) {
	tenant, err := tenantseal.TenantFrom(ctx)
	if err != nil {
		return 0, err
	}
	w, args, err := t.where(conds, []any{tenant})
	if err != nil {
		return 0, err
	}
	var n int64
	err = t.q.QueryRow(ctx, fmt.Sprintf("SELECT count(*) FROM %s WHERE %s", t.s.rel.QualifiedName(), w), args...).Scan(&n)
	return n, wrapErr("count "+t.s.table, err)
}

// FindBy returns the tenant's rows whose encrypted, blind-indexed column equals value after
// normalisation, in id order (at most MaxLimit). The lookup is an index scan on the blind index; each
// candidate is decrypted and compared, so a truncated-index collision never yields a wrong row.
func (t *Table[T]) FindBy(ctx context.Context, column, value string) ([]T, error) {
	ctx = t.keyCtx(ctx)
	tenant, err := tenantseal.TenantFrom(ctx)
	if err != nil {
		return nil, err
	}
	f, ok := t.s.byColumn(column)
	if !ok || f.blindIndex == "" {
		return nil, fmt.Errorf("repo: %s.%s has no blind index", t.s.table, column)
	}
	norm, _ := keys.NormalizerByName(f.normalizer) // checked by New
	idx, err := t.kr.BlindIndexes(ctx, keys.Field{Table: t.s.table, Column: f.column}, value, norm)
	if err != nil {
		return nil, wrapErr("find in "+t.s.table, err)
	}
	sql := fmt.Sprintf("SELECT %s FROM %s WHERE tenant_id = $1 AND %s = ANY($2) ORDER BY tenant_id, id LIMIT %d",
		t.cols, t.s.rel.QualifiedName(), ident(f.blindIndex), MaxLimit)
	rows, err := t.collect(ctx, sql, tenant, idx)
	if err != nil {
		return nil, wrapErr("find in "+t.s.table, err)
	}
	want := norm(value)
	out := rows[:0]
	for _, r := range rows {
		pt, null := plaintext(f, reflect.ValueOf(&r).Elem().Field(f.index))
		if !null && norm(string(pt)) == want {
			out = append(out, r)
		}
	}
	return out, nil
}
