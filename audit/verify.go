package audit

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// Querier runs queries; connect as the auditor role (a *pgx.Conn or pool).
type Querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// Break is the first broken link of the chain.
type Break struct {
	Seq    int64  // the row at which the chain stops holding
	Reason string // what does not hold there
}

func (b *Break) Error() string {
	return fmt.Sprintf("audit chain broken at seq %d: %s", b.Seq, b.Reason)
}

// VerifyResult is the outcome of [Verify].
type VerifyResult struct {
	Rows  int64
	Break *Break // nil when the whole chain holds
}

// verifyPage is how many entries Verify and a Checkpointer read per statement.
const verifyPage = 5000

var genesis = make([]byte, sha256.Size)

// canonical is the encoding the database hashes (tenantseal.audit_canonical): seq and time in
// microseconds as big-endian int64, then each text field as a big-endian int32 length and its UTF-8 bytes,
// NULL as length -1, then, when it is set, the reported time in microseconds as big-endian int64.
func canonical(e *Entry) []byte {
	b := make([]byte, 0, 256)
	b = binary.BigEndian.AppendUint64(b, uint64(e.Seq))
	b = binary.BigEndian.AppendUint64(b, uint64(e.At.UnixMicro()))
	kind := string(e.Kind)
	for _, f := range []*string{&e.EventID, &kind, e.Subject, e.TenantID, e.TargetTenant, e.Table, e.Operation, e.RowKey, e.SQLState, e.RequestID, e.Detail} {
		if f == nil {
			b = append(b, 0xff, 0xff, 0xff, 0xff)
			continue
		}
		b = binary.BigEndian.AppendUint32(b, uint32(len(*f)))
		b = append(b, *f...)
	}
	if e.ReportedAt != nil {
		b = binary.BigEndian.AppendUint64(b, uint64(e.ReportedAt.UnixMicro()))
	}
	return b
}

func chainHash(prev []byte, e *Entry) []byte {
	h := sha256.New()
	h.Write(prev)
	h.Write(canonical(e))
	return h.Sum(nil)
}

const entryColumns = `seq, event_id::text, at, kind, subject, tenant_id::text, target_tenant::text, table_name, operation, row_key,
	sqlstate, request_id, detail, prev_hash, hash, reported_at`

// entriesFrom reads at most limit entries from seq from on, in order.
func entriesFrom(ctx context.Context, q Querier, from int64, limit int) ([]Entry, error) {
	rows, err := q.Query(ctx, "SELECT "+entryColumns+" FROM tenantseal.audit_log WHERE seq >= $1 ORDER BY seq LIMIT $2", from, limit)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, scanEntry)
}

func scanEntry(r pgx.CollectableRow) (Entry, error) {
	var e Entry
	err := r.Scan(&e.Seq, &e.EventID, &e.At, &e.Kind, &e.Subject, &e.TenantID, &e.TargetTenant, &e.Table, &e.Operation,
		&e.RowKey, &e.SQLState, &e.RequestID, &e.Detail, &e.PrevHash, &e.Hash, &e.ReportedAt)
	e.At = e.At.UTC()
	if e.ReportedAt != nil {
		utc := e.ReportedAt.UTC()
		e.ReportedAt = &utc
	}
	return e, err
}

// Verify walks the whole chain in sequence order and reports the first link that does not hold: a row
// edited (its hash no longer matches its content), deleted (a gap in the sequence, or a missing tail
// against the chain head), inserted or reordered (a previous hash that does not match the row before).
// Connect as the auditor role: for a role that sees only part of the log, the rows hidden from it would
// look deleted, so Verify refuses it with [ErrPartialLog].
func Verify(ctx context.Context, q Querier) (VerifyResult, error) { return walk(ctx, q, nil) }

// walk is [Verify] that calls visit, when not nil, with every entry that holds, in order; a Break that
// visit returns ends the walk with it.
func walk(ctx context.Context, q Querier, visit func(*Entry) *Break) (VerifyResult, error) {
	var res VerifyResult
	if err := CheckWholeLog(ctx, q); err != nil {
		return res, err
	}
	prev, want := genesis, int64(1)
	for {
		entries, err := entriesFrom(ctx, q, want, verifyPage)
		if err != nil {
			return res, fmt.Errorf("audit: verify: %w", err)
		}
		for i := range entries {
			e := &entries[i]
			switch {
			case e.Seq != want:
				res.Break = &Break{Seq: want, Reason: fmt.Sprintf("row %d is missing (the next row is %d): deleted", want, e.Seq)}
			case !bytes.Equal(e.PrevHash, prev):
				res.Break = &Break{Seq: e.Seq, Reason: "its previous hash does not match the row before it: inserted, replaced or reordered"}
			case !bytes.Equal(e.Hash, chainHash(prev, e)):
				res.Break = &Break{Seq: e.Seq, Reason: "its content does not match its hash: edited"}
			case visit != nil:
				res.Break = visit(e)
			}
			if res.Break != nil {
				return res, nil
			}
			res.Rows++
			prev, want = e.Hash, e.Seq+1
		}
		if len(entries) < verifyPage {
			break
		}
	}
	// Rows removed from the end leave no gap: the head, locked by every append, still names the last.
	rows, err := q.Query(ctx, "SELECT seq, hash FROM tenantseal.audit_head")
	if err != nil {
		return res, fmt.Errorf("audit: verify: read chain head: %w", err)
	}
	var headSeq int64
	var headHash []byte
	n := 0
	_, err = pgx.ForEachRow(rows, []any{&headSeq, &headHash}, func() error { n++; return nil })
	if err != nil {
		return res, fmt.Errorf("audit: verify: read chain head: %w", err)
	}
	switch {
	case n != 1:
		res.Break = &Break{Seq: want, Reason: "the chain head is missing"}
	case headSeq != want-1:
		res.Break = &Break{Seq: want, Reason: fmt.Sprintf("the chain head names row %d but the log ends at %d: rows deleted at the end", headSeq, want-1)}
	case !bytes.Equal(headHash, prev):
		res.Break = &Break{Seq: want - 1, Reason: "the chain head's hash does not match the last row"}
	}
	return res, nil
}
