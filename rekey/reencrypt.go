package rekey

import (
	"bytes"
	"context"
	"crypto/sha256"
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

// MaxListed bounds [ReencryptStats.Quarantined]: the quarantine list itself ([Quarantined]) holds
// every entry.
const MaxListed = 100

// ReencryptOptions configure [Reencrypt].
type ReencryptOptions struct {
	// Lock is a connection of its own (a *pgx.Conn, as any role) that holds the run's advisory lock on
	// the tenant for as long as the run lasts, so that two runs for one tenant never overlap: the
	// second fails at once with [ErrBusy]. Required.
	Lock Session
	// BatchSize is the number of rows read and rewritten per round. Default DefaultBatchSize.
	BatchSize int
	// Progress, if set, is called after each committed batch with the rows examined and the total.
	Progress func(done, total int64)
}

// ReencryptStats summarise a run. They count what committed: an interrupted run reports the batches
// that reached the database and nothing of the one in flight.
type ReencryptStats struct {
	Examined  int64 // rows read
	Rewritten int64 // rows rewritten under the primary keys
	Raced     int64 // rows changed by a concurrent write between read and rewrite, left as written
	// Unreadable counts the values found not to decrypt for their row in this run: left untouched,
	// added to the quarantine list and, through the Keyring's Recorder, to the audit log.
	Unreadable int64
	// Skipped counts values on the quarantine list that are as they were found: not examined again.
	Skipped int64
	// Released counts values taken off the quarantine list because they were written again since and
	// now decrypt (a repair from a backup, say).
	Released int64
	// Quarantined names the first MaxListed values found unreadable in this run.
	Quarantined []Unreadable
}

// Unreadable is one stored value that does not decrypt for its row, as the quarantine list keeps it.
type Unreadable struct {
	Table  string // the table as regclass text
	Column string
	Row    string // the row key (its id)
	KeyID  uint32 // the key the ciphertext names, 0 when it names none
	Reason string // tampered, unknown_key or shredded
}

func (u Unreadable) String() string {
	return fmt.Sprintf("%s.%s row %s (key %d, %s)", u.Table, u.Column, u.Row, u.KeyID, u.Reason)
}

// ErrBusy means another re-encryption of the tenant holds its lock. Use errors.Is.
var ErrBusy = errors.New("rekey: another re-encryption of this tenant is running")

// ErrUnreadable means a run left values that do not decrypt, quarantined. Use errors.Is.
var ErrUnreadable = errors.New("rekey: values that do not decrypt were quarantined")

// Reencrypt rewrites every ciphertext and blind index of the Principal's tenant (from ctx) that is not
// under the tenant's primary keys. Each row is rewritten only if it still holds what was read (compare
// and set), so a concurrent application write is never overwritten: such rows are counted in Raced and
// a second run picks them up if they still need it. It is resumable: a run after an interruption skips
// what is already done. One run per tenant at a time: opts.Lock holds the tenant's advisory lock.
//
// A value that does not decrypt is left as it is, named on the quarantine list (tenantseal.quarantine:
// table, column, row, key, reason) and, by the Keyring's Recorder, in the audit log; the run goes on and
// fails with [ErrUnreadable] (and [keys.ErrTampered] unless every such value was shredded) once every
// other row is done. A later run leaves quarantined values alone until they are written again. See
// [Quarantined], [Release] and keys.RetireOptions.SkipQuarantined for the ways forward. Run it through
// the app's pool.
func Reencrypt(ctx context.Context, db DB, kr *keys.Keyring, opts ReencryptOptions) (ReencryptStats, error) {
	var st ReencryptStats
	tenant, err := tenantseal.TenantFrom(ctx)
	if err != nil {
		return st, err
	}
	if opts.BatchSize <= 0 {
		opts.BatchSize = DefaultBatchSize
	}
	unlock, err := lock(ctx, opts.Lock, tenant)
	if err != nil {
		return st, err
	}
	defer unlock()
	kr.Invalidate(tenant) // the primary keys as they are now, not as cached
	aeadPrimary, prfPrimary, err := kr.PrimaryKeyIDs(ctx)
	if err != nil {
		return st, err
	}
	cols, err := pgstore.Columns(ctx, db)
	if err != nil {
		return st, err
	}
	known, err := quarantined(ctx, db)
	if err != nil {
		return st, err
	}
	r := &run{db: db, kr: kr, tenant: tenant, aeadPrimary: aeadPrimary, prfPrimary: prfPrimary, opts: opts, st: &st, known: known}
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
	if st.Unreadable > 0 {
		err := fmt.Errorf("%w: %d values of tenant %s (see the quarantine list)", ErrUnreadable, st.Unreadable, tenant)
		if !r.allShredded {
			err = fmt.Errorf("%w: %w", keys.ErrTampered, err)
		}
		return st, err
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
	known                   map[quarantineKey][]byte // the quarantine list: digests by value
	allShredded             bool                     // every unreadable value so far was shredded
}

// row is one row as read: its key, then the values that [table.read] selects.
type row struct {
	id   string
	vals [][]byte
}

// batch is what one round writes, counted once it commits.
type batch struct {
	b                            pgx.Batch
	rewritten, raced, unreadable int64
	skipped, released            int64
	found                        []Unreadable
	quarantine                   map[quarantineKey][]byte // entries added (digest) or removed (nil)
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

		bt := &batch{quarantine: map[quarantineKey][]byte{}}
		for _, rec := range recs {
			sets, conds, args, err := r.rewrite(ctx, t, rec, bt)
			if err != nil {
				return err
			}
			if len(sets) == 0 {
				continue
			}
			args = append([]any{r.tenant, rec.id}, args...)
			bt.b.Queue(t.update(sets, conds), args...).Exec(func(tag pgconn.CommandTag) error {
				if tag.RowsAffected() == 1 {
					bt.rewritten++
				} else {
					bt.raced++
				}
				return nil
			})
		}
		r.queueQuarantine(t, bt)
		if err := ctx.Err(); err != nil {
			return wrap("rewrite "+t.name, err) // interrupted before this batch was sent: nothing of it counts
		}
		if bt.b.Len() > 0 {
			// A batch, once sent, is not cancelled: cancelled during its COMMIT, the server may still
			// commit it after the client gave up, and the counts would miss rows the database holds.
			// An interruption stops the run between batches (the Query above fails with ctx).
			wctx := context.WithoutCancel(ctx)
			if err := r.db.Tx(wctx, func(tx pgx.Tx) error { return tx.SendBatch(wctx, &bt.b).Close() }); err != nil {
				return wrap("rewrite "+t.name, err)
			}
		}
		// Committed: now it counts.
		r.commit(int64(len(recs)), bt)
		if r.opts.Progress != nil {
			r.opts.Progress(r.st.Examined, r.total)
		}
	}
}

// commit adds a committed batch to the stats and the known quarantine list.
func (r *run) commit(examined int64, bt *batch) {
	r.st.Examined += examined
	r.st.Rewritten += bt.rewritten
	r.st.Raced += bt.raced
	r.st.Unreadable += bt.unreadable
	r.st.Skipped += bt.skipped
	r.st.Released += bt.released
	for _, u := range bt.found {
		if len(r.st.Quarantined) < MaxListed {
			r.st.Quarantined = append(r.st.Quarantined, u)
		}
	}
	for k, d := range bt.quarantine {
		if d == nil {
			delete(r.known, k)
		} else {
			r.known[k] = d
		}
	}
}

// testHookAfterRead runs between reading a batch and rewriting it, so that tests can write in that window.
var testHookAfterRead func()

// rewrite returns the SET and compare-and-set clauses of [table.update], and their arguments, that move
// one row's stale ciphertexts and blind indexes under the primary keys; none when it is current. Values
// that do not decrypt go to bt's quarantine entries instead.
func (r *run) rewrite(ctx context.Context, t *table, rec row, bt *batch) (sets, conds []string, args []any, err error) {
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
		qk := quarantineKey{table: t.name, column: c.Column, row: rec.id}
		digest := sha256.Sum256(ct)
		old, listed := r.known[qk]
		if listed && bytes.Equal(old, digest[:]) {
			bt.skipped++
			continue
		}
		if listed {
			// Written again since it was found: off the list, and examined like any other value.
			bt.quarantine[qk] = nil
			bt.released++
		}
		keyID, _ := keys.CiphertextKeyID(ct)
		staleCT := keyID != r.aeadPrimary
		staleIdx := c.BlindIndex != "" && (len(bidx) < 4 || binary.BigEndian.Uint32(bidx) != r.prfPrimary)
		if !staleCT && !staleIdx {
			continue
		}
		f := keys.Field{Table: c.Name, Column: c.Column, Row: rec.id}
		pt, err := r.kr.Decrypt(ctx, f, ct)
		var fe *keys.FieldError
		if errors.As(err, &fe) {
			if listed {
				bt.released-- // back on the list after all
			}
			r.found(bt, qk, fe, digest[:])
			continue
		}
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

// found notes a value that does not decrypt: counted, listed, and queued for the quarantine list.
func (r *run) found(bt *batch, qk quarantineKey, fe *keys.FieldError, digest []byte) {
	reason := "tampered"
	switch {
	case errors.Is(fe, keys.ErrShredded):
		reason = "shredded"
	case errors.Is(fe, keys.ErrUnknownKey):
		reason = "unknown_key"
	}
	if r.st.Unreadable+bt.unreadable == 0 {
		r.allShredded = true
	}
	r.allShredded = r.allShredded && reason == "shredded"
	bt.unreadable++
	bt.found = append(bt.found, Unreadable{Table: qk.table, Column: qk.column, Row: qk.row, KeyID: fe.KeyID, Reason: reason})
	bt.quarantine[qk] = digest
}

// queueQuarantine adds the batch's changes of the quarantine list to its transaction.
func (r *run) queueQuarantine(t *table, bt *batch) {
	reasons := map[quarantineKey]Unreadable{}
	for _, u := range bt.found {
		reasons[quarantineKey{u.Table, u.Column, u.Row}] = u
	}
	for k, digest := range bt.quarantine {
		if digest == nil {
			bt.b.Queue(quarantineRelease, r.tenant, t.name, k.column, k.row)
			continue
		}
		u := reasons[k]
		var keyID *int64
		if u.KeyID != 0 {
			id := int64(u.KeyID)
			keyID = &id
		}
		bt.b.Queue(quarantineAdd, r.tenant, t.name, k.column, k.row, keyID, u.Reason, digest)
	}
}
