package repo

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"unsafe"

	"github.com/jackc/pgx/v5"

	"github.com/tenantseal/tenantseal"
	"github.com/tenantseal/tenantseal/keys"
)

// List bounds.
const (
	DefaultLimit = 50
	MaxLimit     = 1000
)

// Get returns the row with id, or [ErrNotFound] (also when it is another tenant's). An id of another
// kind than the table's key fails with [ErrInvalidQuery]; nothing is sent.
func (t *Table[T]) Get(ctx context.Context, id ID) (T, error) {
	ctx = t.keyCtx(ctx)
	var v T
	tenant, err := tenantseal.TenantFrom(ctx)
	if err != nil {
		return v, err
	}
	key, err := t.s.keyArg(id)
	if err != nil {
		return v, err
	}
	r := t.newReader(1, nil)
	err = r.scan(t.q.QueryRow(ctx, t.st.get, tenant, key))
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return v, t.notFound(ctx, "get", id)
	case err != nil:
		return v, t.dbErr("get", err)
	}
	if err := r.decrypt(ctx, &r.row, r.rowSpans(0)); err != nil {
		return v, err
	}
	v = r.row
	return v, nil
}

// Cond is an equality condition on a plain (not encrypted) column; build it with [Eq].
type Cond struct {
	column string
	value  any
}

// Eq matches rows whose column equals value. Encrypted columns cannot be compared: use FindBy on a
// blind-indexed field.
func Eq(column string, value any) Cond { return Cond{column, value} }

// ListOptions page through a table in pk order.
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
	// Unreadable names the rows of the page that List left out of Items because an encrypted field of
	// theirs does not decrypt for them: tampered, under a key the tenant no longer holds, or
	// crypto-shredded (errors.Is keys.ErrShredded, which is no alarm). The cursor goes past them. Empty
	// unless some row is unreadable: a caller that must account for every row checks it.
	Unreadable []Unreadable
}

// Unreadable is a row that a List left out, and why: a *keys.FieldError naming the column.
type Unreadable struct {
	ID  ID
	Err error
}

// where appends conds to sb as " AND column = $n", their values to args ($1 is the tenant).
func (t *Table[T]) where(sb *strings.Builder, conds []Cond, args []any) ([]any, error) {
	for _, c := range conds {
		f, ok := t.s.byColumn(c.column)
		if !ok {
			return nil, fmt.Errorf("%w: %s has no column %q", ErrInvalidQuery, t.s.table, c.column)
		}
		if f.encrypted {
			return nil, fmt.Errorf("%w: %s.%s is encrypted: equality needs FindBy on a blind index", ErrInvalidQuery, t.s.table, c.column)
		}
		args = append(args, c.value)
		sb.WriteString(" AND " + f.ident + " = " + placeholder(len(args)))
	}
	return args, nil
}

// List returns a page of the tenant's rows matching every condition, in pk order (creation order for
// ids from NewID and for identity and serial keys). Pages are stable under concurrent inserts: a cursor resumes after the last row seen.
// A row whose encrypted field does not decrypt is named in Page.Unreadable instead of failing the page
// (the Keyring records a tampered one).
// A cursor List did not return fails with [ErrInvalidCursor], a limit out of range or a condition on a
// missing or encrypted column with [ErrInvalidQuery]; nothing is sent then.
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
		return page, fmt.Errorf("%w: list limit %d outside 1..%d", ErrInvalidQuery, limit, MaxLimit)
	}
	var sb strings.Builder
	sb.WriteString(t.st.selectFrom)
	args, err := t.where(&sb, conds, []any{tenant})
	if err != nil {
		return page, err
	}
	if opts.After != "" {
		after, err := t.s.decodeCursor(opts.After)
		if err != nil {
			return page, err
		}
		args = append(args, after)
		sb.WriteString(t.st.pkAfter + placeholder(len(args)))
	}
	args = append(args, limit+1)
	sb.WriteString(t.st.orderBy + " LIMIT " + placeholder(len(args)))
	rows, unreadable, err := t.collectRows(ctx, "list", limit+1, sb.String(), args...)
	if err != nil {
		return page, err
	}
	if len(rows) > limit {
		rows, unreadable = rows[:limit], unreadable[:limit]
		page.Next = t.s.encodeCursor(t.keyOf(&rows[limit-1]))
	}
	// One unreadable row does not cost the caller the page: it is named, and the others come back.
	page.Items = rows[:0]
	for i := range rows {
		if unreadable[i] != nil {
			page.Unreadable = append(page.Unreadable, Unreadable{ID: t.keyOf(&rows[i]), Err: unreadable[i]})
			continue
		}
		page.Items = append(page.Items, rows[i])
	}
	return page, nil
}

// Count returns how many of the tenant's rows match every condition.
func (t *Table[T]) Count(ctx context.Context, conds ...Cond) (int64, error) {
	tenant, err := tenantseal.TenantFrom(ctx)
	if err != nil {
		return 0, err
	}
	var sb strings.Builder
	sb.WriteString(t.st.countFrom)
	args, err := t.where(&sb, conds, []any{tenant})
	if err != nil {
		return 0, err
	}
	var n int64
	err = t.q.QueryRow(ctx, sb.String(), args...).Scan(&n)
	return n, t.dbErr("count", err)
}

// FindBy returns the tenant's rows whose encrypted, blind-indexed column equals value after
// normalisation, in pk order (at most MaxLimit). The lookup is an index scan on the blind index; each
// candidate is decrypted and compared, so a truncated-index collision never yields a wrong row. A
// candidate that does not decrypt does not fail the others: FindBy returns the rows that match with an
// [*UnreadableError] naming the candidates it could not read.
func (t *Table[T]) FindBy(ctx context.Context, column, value string) ([]T, error) {
	ctx = t.keyCtx(ctx)
	tenant, err := tenantseal.TenantFrom(ctx)
	if err != nil {
		return nil, err
	}
	sql, ok := t.st.findBy[column]
	if !ok {
		return nil, fmt.Errorf("%w: %s.%s has no blind index", ErrInvalidQuery, t.s.table, column)
	}
	f, _ := t.s.byColumn(column)
	norm, _ := keys.NormalizerByName(f.normalizer) // checked by New
	idx, err := t.kr.BlindIndexes(ctx, keys.Field{Table: t.s.table, Column: f.column}, value, norm)
	if err != nil {
		return nil, err
	}
	rows, unreadable, err := t.collectRows(ctx, "find in", 1, sql, tenant, idx)
	if err != nil {
		return nil, err
	}
	want := norm(value)
	out := rows[:0]
	var bad []Unreadable
	for i := range rows {
		if unreadable[i] != nil {
			bad = append(bad, Unreadable{ID: t.keyOf(&rows[i]), Err: unreadable[i]})
			continue
		}
		pt, null := f.plaintext(unsafe.Pointer(&rows[i]))
		if !null && norm(plaintextString(pt)) == want {
			out = append(out, rows[i])
		}
	}
	if len(bad) > 0 {
		return out, &UnreadableError{Rows: bad}
	}
	return out, nil
}

// UnreadableError is FindBy's report of candidate rows whose encrypted fields do not decrypt: whether
// they match cannot be told. FindBy returns it with the matches it could read. errors.Is sees the first
// row's cause ([ErrTampered], keys.ErrShredded, ...).
type UnreadableError struct {
	Rows []Unreadable
}

func (e *UnreadableError) Error() string {
	return fmt.Sprintf("repo: %d candidate rows do not decrypt, the first %s: %v", len(e.Rows), e.Rows[0].ID, e.Rows[0].Err)
}

func (e *UnreadableError) Unwrap() error { return e.Rows[0].Err }
