// Package rekey moves a tenant's stored ciphertexts and blind indexes under its current primary keys
// after a rotation, and counts which keys stored values still need, so that retired keys are safe to
// disable.
package rekey

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"

	"github.com/tenantseal/tenantseal/keys"
	"github.com/tenantseal/tenantseal/keys/pgstore"

	"github.com/tenantseal/tenantseal"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/tenantseal/tenantseal/db"
)

// byTable groups columns by table, keeping the registry's order.
func byTable(cols []pgstore.Column) [][]pgstore.Column {
	var out [][]pgstore.Column
	for _, c := range cols {
		if n := len(out); n > 0 && out[n-1][0].Table == c.Table {
			out[n-1] = append(out[n-1], c)
			continue
		}
		out = append(out, []pgstore.Column{c})
	}
	return out
}

// Usage counts, for the tenant of the Principal in ctx, how many ciphertexts and blind indexes each key
// id still produces, across every registered column. Run it through the app's *db.Pool.
func Usage(ctx context.Context, pool *db.Pool) (keys.KeyUsage, error) {
	tenant, err := tenantseal.TenantFrom(ctx)
	if err != nil {
		return keys.KeyUsage{}, err
	}
	cols, err := pgstore.Columns(ctx, pool)
	if err != nil {
		return keys.KeyUsage{}, err
	}
	u := keys.KeyUsage{AEAD: map[uint32]int64{}, PRF: map[uint32]int64{}}
	count := func(table, column string, from int, into map[uint32]int64) error {
		sql := fmt.Sprintf("SELECT substring(%[2]s FROM %[3]d FOR 4), count(*) FROM %[1]s WHERE tenant_id = $1 AND %[2]s IS NOT NULL GROUP BY 1",
			table, pgx.Identifier{column}.Sanitize(), from)
		rows, err := pool.Query(ctx, sql, tenant)
		if err != nil {
			return err
		}
		var prefix []byte
		var n int64
		_, err = pgx.ForEachRow(rows, []any{&prefix, &n}, func() error {
			if len(prefix) == 4 {
				into[binary.BigEndian.Uint32(prefix)] += n
			}
			return nil
		})
		return err
	}
	for _, c := range cols {
		if err := count(c.Table, c.Column, 2, u.AEAD); err != nil {
			return keys.KeyUsage{}, fmt.Errorf("rekey: usage of %s.%s: %w", c.Table, c.Column, err)
		}
		if c.BlindIndex != "" {
			if err := count(c.Table, c.BlindIndex, 1, u.PRF); err != nil {
				return keys.KeyUsage{}, fmt.Errorf("rekey: usage of %s.%s: %w", c.Table, c.BlindIndex, err)
			}
		}
	}
	return u, nil
}

// ReencryptOptions configure [Reencrypt].
type ReencryptOptions struct {
	// BatchSize is the number of rows read and rewritten per round. Default 500.
	BatchSize int
	// Progress, if set, is called after each batch with the rows examined and the total.
	Progress func(done, total int64)
}

// ReencryptStats summarise a run.
type ReencryptStats struct {
	Examined  int64 // rows read
	Rewritten int64 // rows rewritten under the primary keys
	Raced     int64 // rows changed by a concurrent write between read and rewrite, left as written
	Tampered  int64 // rows whose ciphertext did not decrypt, left untouched
}

// Reencrypt rewrites every ciphertext and blind index of the Principal's tenant that is not under the
// tenant's primary keys. Each row is rewritten only if it still holds what was read (compare and set),
// so a concurrent application write is never overwritten: such rows are counted in Raced and a second
// run picks them up if they still need it. It is resumable: a run after an interruption skips what is
// already done. Run it through the app's *db.Pool, with a Principal of the tenant.
func Reencrypt(ctx context.Context, pool *db.Pool, kr *keys.Keyring, opts ReencryptOptions) (ReencryptStats, error) {
	var st ReencryptStats
	tenant, err := tenantseal.TenantFrom(ctx)
	if err != nil {
		return st, err
	}
	if opts.BatchSize <= 0 {
		opts.BatchSize = 500
	}
	kr.Invalidate(tenant) // the primary keys as they are now, not as cached
	aeadPrimary, prfPrimary, err := kr.PrimaryKeyIDs(ctx)
	if err != nil {
		return st, err
	}
	cols, err := pgstore.Columns(ctx, pool)
	if err != nil {
		return st, err
	}
	tables := byTable(cols)
	var total int64
	for _, tc := range tables {
		var n int64
		if err := pool.QueryRow(ctx, fmt.Sprintf("SELECT count(*) FROM %s WHERE tenant_id = $1", tc[0].Table), tenant).Scan(&n); err != nil {
			return st, fmt.Errorf("rekey: count %s: %w", tc[0].Table, err)
		}
		total += n
	}
	for _, tc := range tables {
		if err := reencryptTable(ctx, pool, kr, tenant, tc, aeadPrimary, prfPrimary, opts, total, &st); err != nil {
			return st, err
		}
	}
	if st.Tampered > 0 {
		return st, fmt.Errorf("%w: %d rows of tenant %s could not be re-encrypted", keys.ErrTampered, st.Tampered, tenant)
	}
	return st, nil
}

func reencryptTable(ctx context.Context, pool *db.Pool, kr *keys.Keyring, tenant tenantseal.TenantID, cols []pgstore.Column,
	aeadPrimary, prfPrimary uint32, opts ReencryptOptions, total int64, st *ReencryptStats) error {
	table := cols[0].Table
	// Selected: id, then each column's ciphertext and, where it has one, its blind index.
	var sel []string
	for _, c := range cols {
		sel = append(sel, pgx.Identifier{c.Column}.Sanitize())
		if c.BlindIndex != "" {
			sel = append(sel, pgx.Identifier{c.BlindIndex}.Sanitize())
		}
	}
	query := fmt.Sprintf("SELECT id::text, %s FROM %s WHERE tenant_id = $1 AND id > $2::uuid ORDER BY id LIMIT $3",
		strings.Join(sel, ", "), table)
	after := "00000000-0000-0000-0000-000000000000"
	for {
		rows, err := pool.Query(ctx, query, tenant, after, opts.BatchSize)
		if err != nil {
			return fmt.Errorf("rekey: read %s: %w", table, err)
		}
		type rec struct {
			id   string
			vals [][]byte
		}
		recs, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (rec, error) {
			x := rec{vals: make([][]byte, len(sel))}
			dest := []any{&x.id}
			for i := range x.vals {
				dest = append(dest, &x.vals[i])
			}
			return x, r.Scan(dest...)
		})
		if err != nil {
			return fmt.Errorf("rekey: read %s: %w", table, err)
		}
		if len(recs) == 0 {
			return nil
		}
		after = recs[len(recs)-1].id
		if testHookAfterRead != nil {
			testHookAfterRead()
		}

		b := &pgx.Batch{}
		for _, r := range recs {
			st.Examined++
			sets, conds, args, err := rewriteRow(ctx, kr, tenant, cols, r.id, r.vals, aeadPrimary, prfPrimary)
			if errors.Is(err, keys.ErrTampered) || errors.Is(err, keys.ErrUnknownKey) {
				st.Tampered++
				continue
			}
			if err != nil {
				return err
			}
			if len(sets) == 0 {
				continue
			}
			args = append([]any{tenant, r.id}, args...)
			b.Queue(fmt.Sprintf("UPDATE %s SET %s WHERE tenant_id = $1 AND id = $2::uuid AND %s", table,
				strings.Join(sets, ", "), strings.Join(conds, " AND ")), args...).Exec(func(tag pgconn.CommandTag) error {
				if tag.RowsAffected() == 1 {
					st.Rewritten++
				} else {
					st.Raced++
				}
				return nil
			})
		}
		if b.Len() > 0 {
			if err := pool.Tx(ctx, func(tx pgx.Tx) error { return tx.SendBatch(ctx, b).Close() }); err != nil {
				return fmt.Errorf("rekey: rewrite %s: %w", table, err)
			}
		}
		if opts.Progress != nil {
			opts.Progress(st.Examined, total)
		}
	}
}

// testHookAfterRead runs between reading a batch and rewriting it, so that tests can write in that window.
var testHookAfterRead func()

// rewriteRow returns the SET and compare-and-set clauses, and their arguments (numbered from $3), that
// move one row's stale ciphertexts and blind indexes under the primary keys; none when it is current.
func rewriteRow(ctx context.Context, kr *keys.Keyring, tenant tenantseal.TenantID, cols []pgstore.Column, id string, vals [][]byte,
	aeadPrimary, prfPrimary uint32) (sets, conds []string, args []any, err error) {
	i := 0
	for _, c := range cols {
		ct := vals[i]
		i++
		var bidx []byte
		if c.BlindIndex != "" {
			bidx = vals[i]
			i++
		}
		if ct == nil {
			continue
		}
		keyID, _ := keys.CiphertextKeyID(ct)
		staleCT := keyID != aeadPrimary
		staleIdx := c.BlindIndex != "" && (len(bidx) < 4 || binary.BigEndian.Uint32(bidx) != prfPrimary)
		if !staleCT && !staleIdx {
			continue
		}
		f := keys.Field{Table: c.Name, Column: c.Column, Row: id}
		pt, err := kr.Decrypt(ctx, f, ct)
		if err != nil {
			return nil, nil, nil, err
		}
		next := ct
		if staleCT {
			if next, err = kr.Encrypt(ctx, f, pt); err != nil {
				return nil, nil, nil, err
			}
		}
		n := len(args) + 3
		sets = append(sets, fmt.Sprintf("%s = $%d", pgx.Identifier{c.Column}.Sanitize(), n))
		conds = append(conds, fmt.Sprintf("%s = $%d", pgx.Identifier{c.Column}.Sanitize(), n+1))
		args = append(args, next, ct)
		if c.BlindIndex != "" {
			norm, _ := keys.NormalizerByName(c.Normalizer) // checked by pgstore.Columns
			idx, err := kr.BlindIndex(ctx, f, string(pt), norm)
			if err != nil {
				return nil, nil, nil, err
			}
			if !bytes.Equal(idx, bidx) {
				n := len(args) + 3
				sets = append(sets, fmt.Sprintf("%s = $%d", pgx.Identifier{c.BlindIndex}.Sanitize(), n))
				conds = append(conds, fmt.Sprintf("%s IS NOT DISTINCT FROM $%d", pgx.Identifier{c.BlindIndex}.Sanitize(), n+1))
				args = append(args, idx, bidx)
			}
		}
	}
	return sets, conds, args, nil
}
