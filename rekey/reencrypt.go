package rekey

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/tenantseal/tenantseal"
	"github.com/tenantseal/tenantseal/keys"
	"github.com/tenantseal/tenantseal/keys/pgstore"
)

// DefaultBatchSize is the [ReencryptOptions.BatchSize] used when none is set.
const DefaultBatchSize = 500

// ReencryptOptions configure [Reencrypt].
type ReencryptOptions struct {
	// BatchSize is the number of rows read and rewritten per round. Default DefaultBatchSize.
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

// Reencrypt rewrites every ciphertext and blind index of the Principal's tenant (from ctx) that is not
// under the tenant's primary keys. Each row is rewritten only if it still holds what was read (compare
// and set), so a concurrent application write is never overwritten: such rows are counted in Raced and
// a second run picks them up if they still need it. It is resumable: a run after an interruption skips
// what is already done. Rows that do not decrypt are left as they are, counted in Tampered, and make
// the run fail with [keys.ErrTampered] once every other row is done. Run it through the app's pool.
func Reencrypt(ctx context.Context, db DB, kr *keys.Keyring, opts ReencryptOptions) (ReencryptStats, error) {
	var st ReencryptStats
	tenant, err := tenantseal.TenantFrom(ctx)
	if err != nil {
		return st, err
	}
	if opts.BatchSize <= 0 {
		opts.BatchSize = DefaultBatchSize
	}
	kr.Invalidate(tenant) // the primary keys as they are now, not as cached
	aeadPrimary, prfPrimary, err := kr.PrimaryKeyIDs(ctx)
	if err != nil {
		return st, err
	}
	cols, err := pgstore.Columns(ctx, db)
	if err != nil {
		return st, err
	}
	r := &run{db: db, kr: kr, tenant: tenant, aeadPrimary: aeadPrimary, prfPrimary: prfPrimary, opts: opts, st: &st}
	ts := tables(cols)
	for _, t := range ts {
		var n int64
		if err := db.QueryRow(ctx, t.count, tenant).Scan(&n); err != nil {
			return st, wrap("count "+t.name, err)
		}
		r.total += n
	}
	for _, t := range ts {
		if err := r.table(ctx, t); err != nil {
			return st, err
		}
	}
	if st.Tampered > 0 {
		return st, fmt.Errorf("%w: %d rows of tenant %s could not be re-encrypted", keys.ErrTampered, st.Tampered, tenant)
	}
	return st, nil
}

// run is one call of [Reencrypt].
type run struct {
	db                      DB
	kr                      *keys.Keyring
	tenant                  tenantseal.TenantID
	aeadPrimary, prfPrimary uint32
	opts                    ReencryptOptions
	total                   int64
	st                      *ReencryptStats
}

// row is one row as read: its key, then the values that [table.read] selects.
type row struct {
	id   string
	vals [][]byte
}

func (r *run) table(ctx context.Context, t *table) error {
	after := firstID
	for {
		rows, err := r.db.Query(ctx, t.read, r.tenant, after, r.opts.BatchSize)
		if err != nil {
			return wrap("read "+t.name, err)
		}
		recs, err := pgx.CollectRows(rows, func(cr pgx.CollectableRow) (row, error) {
			x := row{vals: make([][]byte, t.nvals)}
			dest := []any{&x.id}
			for i := range x.vals {
				dest = append(dest, &x.vals[i])
			}
			return x, cr.Scan(dest...)
		})
		if err != nil {
			return wrap("read "+t.name, err)
		}
		if len(recs) == 0 {
			return nil
		}
		after = recs[len(recs)-1].id
		if testHookAfterRead != nil {
			testHookAfterRead()
		}

		b := &pgx.Batch{}
		for _, rec := range recs {
			r.st.Examined++
			sets, conds, args, err := r.rewrite(ctx, t, rec)
			if errors.Is(err, keys.ErrTampered) || errors.Is(err, keys.ErrUnknownKey) {
				r.st.Tampered++
				continue
			}
			if err != nil {
				return err
			}
			if len(sets) == 0 {
				continue
			}
			args = append([]any{r.tenant, rec.id}, args...)
			b.Queue(t.update(sets, conds), args...).Exec(func(tag pgconn.CommandTag) error {
				if tag.RowsAffected() == 1 {
					r.st.Rewritten++
				} else {
					r.st.Raced++
				}
				return nil
			})
		}
		if b.Len() > 0 {
			if err := r.db.Tx(ctx, func(tx pgx.Tx) error { return tx.SendBatch(ctx, b).Close() }); err != nil {
				return wrap("rewrite "+t.name, err)
			}
		}
		if r.opts.Progress != nil {
			r.opts.Progress(r.st.Examined, r.total)
		}
	}
}

// testHookAfterRead runs between reading a batch and rewriting it, so that tests can write in that window.
var testHookAfterRead func()

// rewrite returns the SET and compare-and-set clauses of [table.update], and their arguments, that move
// one row's stale ciphertexts and blind indexes under the primary keys; none when it is current.
func (r *run) rewrite(ctx context.Context, t *table, rec row) (sets, conds []string, args []any, err error) {
	// set adds "col = new" and the condition that col still holds old (which may be NULL for an index).
	set := func(column string, next, old []byte, nullable bool) {
		col := pgx.Identifier{column}.Sanitize()
		n := firstParam + len(args)
		sets = append(sets, col+" = "+param(n))
		op := " = "
		if nullable {
			op = " IS NOT DISTINCT FROM "
		}
		conds = append(conds, col+op+param(n+1))
		args = append(args, next, old)
	}
	i := 0
	for _, c := range t.cols {
		ct := rec.vals[i]
		i++
		var bidx []byte
		if c.BlindIndex != "" {
			bidx = rec.vals[i]
			i++
		}
		if ct == nil {
			continue
		}
		keyID, _ := keys.CiphertextKeyID(ct)
		staleCT := keyID != r.aeadPrimary
		staleIdx := c.BlindIndex != "" && (len(bidx) < 4 || binary.BigEndian.Uint32(bidx) != r.prfPrimary)
		if !staleCT && !staleIdx {
			continue
		}
		f := keys.Field{Table: c.Name, Column: c.Column, Row: rec.id}
		pt, err := r.kr.Decrypt(ctx, f, ct)
		if err != nil {
			return nil, nil, nil, err
		}
		next := ct
		if staleCT {
			if next, err = r.kr.Encrypt(ctx, f, pt); err != nil {
				return nil, nil, nil, err
			}
		}
		set(c.Column, next, ct, false)
		if c.BlindIndex != "" {
			norm, _ := keys.NormalizerByName(c.Normalizer) // checked by pgstore.Columns
			idx, err := r.kr.BlindIndex(ctx, f, string(pt), norm)
			if err != nil {
				return nil, nil, nil, err
			}
			if !bytes.Equal(idx, bidx) {
				set(c.BlindIndex, idx, bidx, true)
			}
		}
	}
	return sets, conds, args, nil
}
