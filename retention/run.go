package retention

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tenantseal/tenantseal"
	"github.com/tenantseal/tenantseal/tenants"
)

// DefaultBatchSize is the [Options.BatchSize] used when none is set.
const DefaultBatchSize = 1000

// ErrBusy means another retention run holds the database's retention lock. Use errors.Is.
var ErrBusy = errors.New("retention: another retention run is in progress")

// App is the application's connection pool (*db.Pool): every transaction of Tx runs under the tenant
// context of the Principal in ctx, so that row-level security keeps a deletion to that tenant's rows.
type App interface {
	Tx(ctx context.Context, fn func(pgx.Tx) error) error
}

// Options configure [Run].
type Options struct {
	// Tenants limits the run to these tenants; none: every tenant that has a retention policy.
	Tenants []tenantseal.TenantID
	// DryRun changes nothing and records nothing: the Report's certificates say what a run would
	// delete and shred now.
	DryRun bool
	// BatchSize is the number of rows deleted per transaction. Default DefaultBatchSize.
	BatchSize int
	// Progress, if set, is called after each committed batch with the certificate of what has
	// committed so far for that tenant and table.
	Progress func(Certificate)
}

// Report is what a run did: its certificates, as recorded (in a dry run, as planned), and the tenants
// whose rows it could not examine.
type Report struct {
	Certificates []Certificate
	Skipped      []Skipped
}

// Skipped is a tenant whose rows a run left alone, and why.
type Skipped struct {
	Tenant tenantseal.TenantID
	Reason string
}

// lockClass is the first key of the advisory lock that one retention run holds; the second is 0.
const lockClass = 0x74735254 // "tsRT"

// plan is one tenant's part of a run, as the owner reads it.
type plan struct {
	id         tenantseal.TenantID
	status     tenants.Status
	policy     string
	version    int
	deletedAt  *time.Time
	grace      *time.Duration
	shredDue   bool
	purposes   []string // of the keysets it has
	shreddedAt *time.Time
	rules      []rule
	hasPolicy  bool
}

// rule is a Rule of the run, with its cut-off and the SQL identifiers of its table.
type rule struct {
	Rule
	cutoff     time.Time
	table      string // sanitized identifier
	tenantCol  string // sanitized identifier
	tenantType string // the tenant column's type, as format_type names it
	column     string // sanitized identifier
}

// Run applies every selected tenant's retention policy, tenant by tenant, and records a deletion
// certificate through rec for each deletion (required unless opts.DryRun):
//
//   - rows of each rule's table whose timestamp column is before the cut-off (the database's time at
//     the start of the run less the rule's maximum age) are deleted through app, as the tenant, in
//     batches of opts.BatchSize, each its own transaction: row-level security keeps each deletion to
//     that tenant's rows. Only an active tenant's rows can be deleted so: the database refuses the
//     tenant context of a suspended or deleted one, which the Report then lists as skipped.
//   - a tenant deleted longer ago than its policy's grace period has its keysets crypto-shredded with
//     tenants.Shred (which records its own tenantseal.EventShred as well).
//
// The certificate of a table is recorded once its rows are deleted, or, when the run stops (ctx
// cancelled: after the batch in flight; an error), for the rows that committed, marked partial. Nothing deleted, nothing recorded:
// a second run finds nothing more and records no certificate. A run may stop at any point; a later run
// resumes. One run at a time: owner holds the run's advisory lock, and a second run fails with
// [ErrBusy]. The operator's Principal in ctx is the certificates' Principal; owner is the owner role's
// connection of its own.
func Run(ctx context.Context, owner *pgx.Conn, app App, rec tenantseal.Recorder, opts Options) (Report, error) {
	if rec == nil && !opts.DryRun {
		return Report{}, errors.New("retention: run: a Recorder is required: every deletion is certified in the audit log")
	}
	if opts.BatchSize <= 0 {
		opts.BatchSize = DefaultBatchSize
	}
	if !opts.DryRun {
		var ok bool
		if err := owner.QueryRow(ctx, "SELECT pg_try_advisory_lock($1, 0)", lockClass).Scan(&ok); err != nil {
			return Report{}, fmt.Errorf("retention: lock: %w", err)
		}
		if !ok {
			return Report{}, ErrBusy
		}
		defer owner.Exec(context.WithoutCancel(ctx), "SELECT pg_advisory_unlock($1, 0)", lockClass)
	}
	plans, err := plans(ctx, owner, opts.Tenants)
	if err != nil {
		return Report{}, err
	}
	r := &run{ctx: ctx, owner: owner, app: app, rec: rec, opts: opts}
	for _, p := range plans {
		if err := r.tenant(p); err != nil {
			return r.report, err
		}
	}
	return r.report, nil
}

type run struct {
	ctx    context.Context
	owner  *pgx.Conn
	app    App
	rec    tenantseal.Recorder
	opts   Options
	report Report
}

func (r *run) skip(id tenantseal.TenantID, format string, args ...any) {
	r.report.Skipped = append(r.report.Skipped, Skipped{Tenant: id, Reason: fmt.Sprintf(format, args...)})
}

// tenant applies the policy of one tenant.
func (r *run) tenant(p plan) error {
	if !p.hasPolicy {
		r.skip(p.id, "has no retention policy")
		return nil
	}
	if len(p.rules) > 0 {
		if p.status == tenants.StatusActive {
			for _, ru := range p.rules {
				if err := r.rows(p, ru); err != nil {
					return err
				}
			}
		} else {
			r.skip(p.id, "is %s: its rows are not examined, as the database refuses the tenant context of a tenant that is not active", p.status)
		}
	}
	if p.shredDue && (len(p.purposes) > 0 || p.shreddedAt == nil) {
		return r.shred(p)
	}
	return nil
}

// rows deletes, or in a dry run counts, the rows of one rule past its cut-off.
func (r *run) rows(p plan, ru rule) error {
	c := Certificate{Tenant: p.id, Policy: p.policy, Version: p.version, Table: ru.Table, Column: ru.Column, MaxAge: ru.MaxAge, Cutoff: ru.cutoff}
	where := fmt.Sprintf("%s = $1::text::%s AND %s < $2::timestamptz", ru.tenantCol, ru.tenantType, ru.column)
	tctx := tenantseal.WithPrincipal(r.ctx, tenantseal.Principal{Tenant: p.id, Subject: subject(r.ctx) + " (tenantseal retention)"})
	if r.opts.DryRun {
		err := r.app.Tx(tctx, func(tx pgx.Tx) error {
			return tx.QueryRow(tctx, "SELECT count(*) FROM "+ru.table+" WHERE "+where, p.id.String(), ru.cutoff).Scan(&c.Rows)
		})
		if err != nil {
			return fmt.Errorf("retention: tenant %s: count %s: %w", p.id, ru.Table, err)
		}
		if c.Rows > 0 {
			r.report.Certificates = append(r.report.Certificates, c)
		}
		return nil
	}
	del := "DELETE FROM " + ru.table + " WHERE ctid = ANY (ARRAY(SELECT ctid FROM " + ru.table + " WHERE " + where + " LIMIT $3))"
	var err error
	for {
		if err = r.ctx.Err(); err != nil {
			break
		}
		// The batch in flight completes whatever happens to ctx meanwhile: a cancellation between its
		// commit and the reply would leave rows deleted that no certificate counts.
		bctx := context.WithoutCancel(tctx)
		var n int64
		err = r.app.Tx(bctx, func(tx pgx.Tx) error {
			tag, err := tx.Exec(bctx, del, p.id.String(), ru.cutoff, r.opts.BatchSize)
			n = tag.RowsAffected()
			return err
		})
		if err != nil {
			break
		}
		if n == 0 {
			break
		}
		c.Rows += n
		if r.opts.Progress != nil {
			r.opts.Progress(c)
		}
	}
	if c.Rows > 0 {
		c.Partial = err != nil
		r.certify(c)
	}
	if err != nil {
		return fmt.Errorf("retention: tenant %s: delete from %s: %w", p.id, ru.Table, err)
	}
	return nil
}

// certify records c and adds it to the report. The record survives the run's cancellation.
func (r *run) certify(c Certificate) {
	r.rec.Record(context.WithoutCancel(r.ctx), c.Event())
	r.report.Certificates = append(r.report.Certificates, c)
}

// shred crypto-shreds a tenant whose grace period is over.
func (r *run) shred(p plan) error {
	c := Certificate{Tenant: p.id, Policy: p.policy, Version: p.version, Table: keysetsTable, DeletedAt: *p.deletedAt, Grace: *p.grace}
	if r.opts.DryRun {
		c.Shredded = p.purposes
		r.report.Certificates = append(r.report.Certificates, c)
		return nil
	}
	if err := r.ctx.Err(); err != nil {
		return fmt.Errorf("retention: tenant %s: shred: %w", p.id, err)
	}
	s, err := tenants.Shred(r.ctx, r.owner, r.rec, p.id)
	if err != nil {
		return fmt.Errorf("retention: tenant %s: %w", p.id, err)
	}
	if s.Already {
		return nil
	}
	c.Shredded = s.Purposes
	r.certify(c)
	return nil
}

// subject is the operator's name in ctx, for the tenant Principal of the deletions.
func subject(ctx context.Context) string {
	if p, ok := tenantseal.PrincipalFrom(ctx); ok && p.Subject != "" {
		return p.Subject
	}
	return "retention"
}

// plans reads, as the owner, the selected tenants with their policies and rules, and the cut-offs of
// this run (the database's time now, less each rule's age).
func plans(ctx context.Context, owner *pgx.Conn, only []tenantseal.TenantID) ([]plan, error) {
	var keys []string
	for _, id := range only {
		keys = append(keys, id.String())
	}
	rows, err := owner.Query(ctx, `SELECT t.key, t.status, p.name IS NOT NULL, coalesce(p.name, ''), coalesce(p.version, 0), t.deleted_at,
			(extract(epoch FROM p.shred_after) * 1000000)::bigint,
			coalesce(t.status = 'deleted' AND t.deleted_at + p.shred_after <= now(), false),
			ARRAY(SELECT k.purpose FROM tenantseal.tenant_keysets k WHERE k.tenant_id = t.id ORDER BY k.purpose), t.shredded_at
		FROM tenantseal.tenants t LEFT JOIN tenantseal.tenant_governance g ON g.tenant_id = t.id
			LEFT JOIN tenantseal.retention_policies p ON p.name = g.retention_policy
		WHERE CASE WHEN $1::text[] IS NULL THEN p.name IS NOT NULL ELSE t.key = ANY ($1) END
		ORDER BY t.created_at, t.id`, keys)
	if err != nil {
		return nil, fmt.Errorf("retention: read tenants: %w", err)
	}
	ps, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (plan, error) {
		var p plan
		var grace *int64
		err := row.Scan(&p.id, &p.status, &p.hasPolicy, &p.policy, &p.version, &p.deletedAt, &grace, &p.shredDue, &p.purposes, &p.shreddedAt)
		if grace != nil {
			g := time.Duration(*grace) * time.Microsecond
			p.grace = &g
		}
		return p, err
	})
	if err != nil {
		return nil, fmt.Errorf("retention: read tenants: %w", err)
	}
	for _, id := range only {
		found := false
		for _, p := range ps {
			found = found || p.id == id
		}
		if !found {
			return nil, fmt.Errorf("%w: %s", tenants.ErrNotFound, id)
		}
	}
	rules, err := cutoffs(ctx, owner)
	if err != nil {
		return nil, err
	}
	for i := range ps {
		ps[i].rules = rules[ps[i].policy]
	}
	return ps, nil
}

// cutoffs reads every rule, by policy, with its cut-off, and checks that its table is still a
// protected tenant table with the column: a rule that is not stops the run before it deletes anything.
func cutoffs(ctx context.Context, owner *pgx.Conn) (map[string][]rule, error) {
	rows, err := owner.Query(ctx, `SELECT r.policy, r.relid::text, n.nspname, c.relname, r.time_column,
			(extract(epoch FROM r.max_age) * 1000000)::bigint, now() - r.max_age,
			tt.tenant_column, format_type(a.atttypid, a.atttypmod),
			EXISTS (SELECT 1 FROM pg_attribute x WHERE x.attrelid = r.relid AND x.attname = r.time_column AND x.attnum > 0 AND NOT x.attisdropped)
		FROM tenantseal.retention_rules r
			LEFT JOIN pg_class c ON c.oid = r.relid LEFT JOIN pg_namespace n ON n.oid = c.relnamespace
			LEFT JOIN tenantseal.tenant_tables tt ON tt.relid = r.relid
			LEFT JOIN pg_attribute a ON a.attrelid = r.relid AND a.attname = tt.tenant_column AND a.attnum > 0 AND NOT a.attisdropped
		ORDER BY r.policy, r.relid::text`)
	if err != nil {
		return nil, fmt.Errorf("retention: read rules: %w", err)
	}
	out := map[string][]rule{}
	var problems []string
	var policy, table string
	var nsp, rel, tcol, ttype *string
	var col string
	var age int64
	var cutoff time.Time
	var hasCol bool
	_, err = pgx.ForEachRow(rows, []any{&policy, &table, &nsp, &rel, &col, &age, &cutoff, &tcol, &ttype, &hasCol}, func() error {
		switch {
		case rel == nil:
			problems = append(problems, fmt.Sprintf("policy %s names a table that no longer exists (oid %s)", policy, table))
		case tcol == nil || ttype == nil:
			problems = append(problems, fmt.Sprintf("policy %s: %s is no longer a protected tenant table", policy, table))
		case !hasCol:
			problems = append(problems, fmt.Sprintf("policy %s: %s has no column %s any more", policy, table, col))
		default:
			out[policy] = append(out[policy], rule{
				Rule:   Rule{Table: table, Column: col, MaxAge: time.Duration(age) * time.Microsecond},
				cutoff: cutoff, table: pgx.Identifier{*nsp, *rel}.Sanitize(), tenantCol: pgx.Identifier{*tcol}.Sanitize(),
				tenantType: *ttype, column: pgx.Identifier{col}.Sanitize()})
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("retention: read rules: %w", err)
	}
	if len(problems) > 0 {
		return nil, fmt.Errorf("retention: nothing was deleted: %s: change the policies ('tenantseal retention policy set')", strings.Join(problems, "; "))
	}
	return out, nil
}
