package audit

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tenantseal/tenantseal"
)

// DefaultPageSize is how many entries [Query] returns, and [Tail], [Follow] and [Export] read per
// statement, unless Filter.Limit says otherwise.
const DefaultPageSize = 1000

// DefaultFollowInterval is how often [Follow] polls unless FollowOptions.Interval says otherwise.
const DefaultFollowInterval = time.Second

// ErrPartialLog means the connected role sees only part of the audit log: row-level security hides the
// other tenants' entries from it (the app role), so Verify would report them deleted and a tail or an
// export would be silently incomplete. Connect as the auditor role. Use errors.Is.
var ErrPartialLog = errors.New("audit: the connected role sees only part of the audit log")

// Filter selects entries.
type Filter struct {
	AfterSeq int64                // only entries with a larger sequence number
	Since    time.Time            // only entries at or after this time (zero: all)
	Tenant   tenantseal.TenantID  // only entries whose acting or target tenant is this one (zero: all)
	Kind     tenantseal.EventKind // only this kind (empty: all)
	// Limit bounds the entries of a Query, and the entries that Tail, Follow and Export read per
	// statement. Default DefaultPageSize.
	Limit int
}

// Query returns entries in sequence order. As the auditor it sees all tenants; as the app role, under a
// tenant context, only that tenant's.
func Query(ctx context.Context, q Querier, f Filter) ([]Entry, error) {
	if f.Limit <= 0 {
		f.Limit = DefaultPageSize
	}
	const sql = "SELECT " + entryColumns + ` FROM tenantseal.audit_log
		WHERE seq > $1 AND ($2::timestamptz IS NULL OR at >= $2)
		  AND ($3::uuid IS NULL OR tenant_id = $3 OR target_tenant = $3) AND ($4 = '' OR kind = $4)
		ORDER BY seq LIMIT $5`
	var since, tenant any
	if !f.Since.IsZero() {
		since = f.Since
	}
	if !f.Tenant.IsZero() {
		tenant = f.Tenant
	}
	rows, err := q.Query(ctx, sql, f.AfterSeq, since, tenant, string(f.Kind), f.Limit)
	if err != nil {
		return nil, fmt.Errorf("audit: query: %w", err)
	}
	out, err := pgx.CollectRows(rows, scanEntry)
	if err != nil {
		return nil, fmt.Errorf("audit: query: %w", err)
	}
	return out, nil
}

// wholeLogSQL tells whether the connected role sees every row of the audit log: a superuser, a BYPASSRLS
// role, or one that a permissive SELECT policy with USING (true) applies to (the auditor's, the owner's).
const wholeLogSQL = `
SELECT r.rolname, r.rolsuper OR r.rolbypassrls OR EXISTS (
    SELECT 1 FROM pg_policy p, unnest(p.polroles) AS pr(oid)
     WHERE p.polrelid = 'tenantseal.audit_log'::regclass AND p.polpermissive AND p.polcmd IN ('r', '*')
       AND pg_get_expr(p.polqual, p.polrelid) = 'true'
       AND CASE WHEN pr.oid = 0 THEN true ELSE pg_has_role(pr.oid, 'USAGE') END)
  FROM pg_roles r WHERE r.rolname = current_user`

// CheckWholeLog fails with [ErrPartialLog] unless the connected role sees every entry of the audit log.
// [Verify] checks it itself; call it before [Tail], [Follow] or [Export] when the output must be complete.
func CheckWholeLog(ctx context.Context, q Querier) error {
	rows, err := q.Query(ctx, wholeLogSQL)
	if err != nil {
		return fmt.Errorf("audit: check the connected role: %w", err)
	}
	var role string
	var whole bool
	if _, err := pgx.ForEachRow(rows, []any{&role, &whole}, func() error { return nil }); err != nil {
		return fmt.Errorf("audit: check the connected role: %w", err)
	}
	if !whole {
		return fmt.Errorf("%w (role %s, under row-level security)", ErrPartialLog, role)
	}
	return nil
}

// head returns the sequence number of the newest entry, 0 for an empty log. Sequence numbers are
// assigned under a lock on the chain head, in commit order: every entry up to it is committed, and
// reading past it later misses nothing.
func head(ctx context.Context, q Querier) (int64, error) {
	return number(ctx, q, "read the newest entry", "SELECT coalesce(max(seq), 0) FROM tenantseal.audit_log")
}

// number runs sql, a query of one bigint, for what.
func number(ctx context.Context, q Querier, what, sql string) (int64, error) {
	rows, err := q.Query(ctx, sql)
	if err != nil {
		return 0, fmt.Errorf("audit: %s: %w", what, err)
	}
	n, err := pgx.CollectExactlyOneRow(rows, pgx.RowTo[int64])
	if err != nil {
		return 0, fmt.Errorf("audit: %s: %w", what, err)
	}
	return n, nil
}

// each calls fn for every entry after f.AfterSeq that matches f, up to seq upTo, in sequence order, a
// page of f.Limit at a time.
func each(ctx context.Context, q Querier, f Filter, upTo int64, fn func(*Entry) error) error {
	if f.Limit <= 0 {
		f.Limit = DefaultPageSize
	}
	for {
		page, err := Query(ctx, q, f)
		if err != nil {
			return err
		}
		for i := range page {
			if page[i].Seq > upTo {
				return nil
			}
			if err := fn(&page[i]); err != nil {
				return err
			}
			f.AfterSeq = page[i].Seq
		}
		if len(page) < f.Limit {
			return nil
		}
	}
}

// Tail returns the last n entries that match f, oldest first, among those up to the newest entry when it
// starts, whose sequence number it returns as head: pass it as Filter.AfterSeq to [Follow] to go on
// without a gap or a repeat.
//
// [Query] reads forward only, so Tail reads windows that end at head, doubling from n entries back, until
// one holds n matches or reaches f.AfterSeq: a sparse filter costs a few index range scans, not a transfer
// of the whole log.
func Tail(ctx context.Context, q Querier, f Filter, n int) (entries []Entry, headSeq int64, err error) {
	if n < 0 {
		return nil, 0, fmt.Errorf("audit: tail: n = %d, want 0 or more", n)
	}
	if headSeq, err = head(ctx, q); err != nil {
		return nil, 0, err
	}
	if n == 0 || headSeq <= f.AfterSeq {
		return nil, headSeq, nil
	}
	if f.Limit <= 0 {
		f.Limit = DefaultPageSize
	}
	from := f.AfterSeq
	for w := int64(n); ; w *= 2 {
		f.AfterSeq = max(headSeq-w, from)
		var got []Entry
		err := each(ctx, q, f, headSeq, func(e *Entry) error {
			got = append(got, *e)
			if len(got) >= 2*n+f.Limit {
				got = append(got[:0], got[len(got)-n:]...) // keep memory bounded in a dense window
			}
			return nil
		})
		if err != nil {
			return nil, 0, err
		}
		if len(got) >= n || f.AfterSeq == from {
			return got[max(len(got)-n, 0):], headSeq, nil
		}
	}
}

// FollowOptions configures [Follow].
type FollowOptions struct {
	// Interval is the time between polls. Default DefaultFollowInterval.
	Interval time.Duration
	// Polled, if set, is called after each poll, once fn has seen its entries: to flush output, say. An
	// error ends Follow with it.
	Polled func() error
}

// Follow calls fn, in sequence order, for every entry that matches f and is newer than f.AfterSeq, as
// entries arrive: it polls every opts.Interval and reads up to the newest entry each time, so a sparse
// filter never rescans what it has read. It returns only when ctx ends (ctx.Err()), or with the error of
// a query, fn or opts.Polled.
func Follow(ctx context.Context, q Querier, f Filter, opts FollowOptions, fn func(*Entry) error) error {
	interval := opts.Interval
	if interval <= 0 {
		interval = DefaultFollowInterval
	}
	t := time.NewTimer(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
		h, err := head(ctx, q)
		if err != nil {
			return err
		}
		if h > f.AfterSeq {
			if err := each(ctx, q, f, h, fn); err != nil {
				return err
			}
			f.AfterSeq = h
		}
		if opts.Polled != nil {
			if err := opts.Polled(); err != nil {
				return err
			}
		}
		t.Reset(interval)
	}
}

// Export writes every entry that matches f, up to the newest when it starts, to w as JSON lines (one
// [Entry] per line, its JSON field names), oldest first, a page at a time: for a SIEM, for a log of any
// size. It returns the number of entries written.
func Export(ctx context.Context, q Querier, w io.Writer, f Filter) (int64, error) {
	h, err := head(ctx, q)
	if err != nil {
		return 0, err
	}
	bw := bufio.NewWriter(w)
	enc := json.NewEncoder(bw)
	var n int64
	err = each(ctx, q, f, h, func(e *Entry) error {
		if err := enc.Encode(e); err != nil {
			return fmt.Errorf("audit: export entry %d: %w", e.Seq, err)
		}
		n++
		return nil
	})
	if err != nil {
		return n, err
	}
	if err := bw.Flush(); err != nil {
		return n, fmt.Errorf("audit: export: %w", err)
	}
	return n, nil
}

// OwnEvents returns, in order, the entries the tenant of the Principal in ctx acted in, through q, a
// db.Pool or one of its transactions (the app role reads no audit table: its sequence numbers and
// indexes would tell other tenants' volume). Each entry's Seq numbers it within the tenant, from 1; it
// carries no hashes. At most limit entries (1000 at most, DefaultPageSize when 0) after the one numbered
// after.
func OwnEvents(ctx context.Context, q Querier, after int64, limit int) ([]Entry, error) {
	if limit <= 0 {
		limit = DefaultPageSize
	}
	rows, err := q.Query(ctx, `SELECT n, event_id::text, at, kind, subject, tenant_id::text, target_tenant::text, table_name, operation,
		row_key, sqlstate, request_id, detail, reported_at FROM tenantseal.tenant_audit_log($1, $2)`, after, limit)
	if err != nil {
		return nil, fmt.Errorf("audit: own events: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Entry, error) {
		var e Entry
		err := r.Scan(&e.Seq, &e.EventID, &e.At, &e.Kind, &e.Subject, &e.TenantID, &e.TargetTenant, &e.Table, &e.Operation,
			&e.RowKey, &e.SQLState, &e.RequestID, &e.Detail, &e.ReportedAt)
		e.At = e.At.UTC()
		return e, err
	})
	if err != nil {
		return nil, fmt.Errorf("audit: own events: %w", err)
	}
	return out, nil
}

// ContextRefusals returns how many tenant contexts the database has refused (TS401) since it was
// migrated, as it counts them itself: in a sequence, which no rollback undoes. It counts the refusals
// that SQL injected into the application caught itself (DO ... EXCEPTION), which reach no Recorder: more
// refusals than invalid_context entries in the log (allowing for those still on their way, and for the
// isolation suite's own attempts) mean such attempts. The database also writes each refusal to the
// server log at LOG level. Connect as the auditor role.
func ContextRefusals(ctx context.Context, q Querier) (int64, error) {
	return number(ctx, q, "context refusals", "SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM tenantseal.context_refusals")
}
